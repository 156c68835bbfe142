//! pm2, for real: `ecosystem/pm2/ecosystem.config.js` started by a pinned
//! pm2, with nginx (`ecosystem/nginx`) in front, as `ecosystem/README.md`
//! walks an operator through it.
//!
//! pm2 is installed once from the npm registry into
//! `target/pm2-<PM2_VERSION>/` and runs with a private `PM2_HOME` (and
//! `HOME`), so `~/.pm2` is never touched. Its daemon is killed by a drop
//! guard, and by a watchdog shell if this process dies without unwinding.
//!
//! The test migrates a fresh database, starts the file on three free
//! consecutive ports, checks pm2's list, runs the seed routes and a race of
//! starts through nginx (the answers, then the database's records), and stops
//! the fleet with `pm2 stop`: each instance drains and exits with status 0,
//! well before pm2's `kill_timeout`.
//!
//! pm2 7 has no per-app `kill_signal`: it stops every app with its daemon's
//! `PM2_KILL_SIGNAL`, SIGINT by default (`lib/God/Methods.js`), which the
//! service drains on just like SIGTERM. The shutdown lines are read from
//! pm2's log bus (`pm2 logs`), not from its log files: pm2 closes an app's
//! files as soon as the process exits and drops the lines still on their way
//! (`lib/God/ForkMode.js`), most often the last one.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::Value;
use stream_limit_tests::audit::peak_concurrency;
use stream_limit_tests::fleet::{answer, migrate, seed_start, walk_seed_routes, LIMIT};
use stream_limit_tests::nginx::{Nginx, Ports};
use stream_limit_tests::postgres::{citus, fresh_database};
use stream_limit_tests::service::{binary, target_dir, workspace_root};
use stream_limit_tests::world::connect;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

/// The pm2 release the test installs (`npm view pm2 version`).
const PM2_VERSION: &str = "7.0.4";
/// The file under test, from the workspace root.
const ECOSYSTEM: &str = "ecosystem/pm2/ecosystem.config.js";
/// Instances the file starts by default (as many as nginx's upstreams).
const INSTANCES: u16 = 3;
/// Longest any one step may take: a pm2 command, the fleet becoming ready,
/// the drain being seen.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The one-time `npm install` downloads from the registry: a little longer.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(120);
/// What `stream-limit-http/src/startup.rs` logs on the first signal, and last.
const DRAIN_LINE: &str = "shutdown signal: draining in-flight requests";
const STOPPED_LINE: &str = "stream-limit stopped";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pm2_runs_the_ecosystem_file_behind_nginx_and_stops_it_gracefully() {
    let began = Instant::now();
    let db = fresh_database().await;
    assert!(
        migrate(db.url()) >= 1 || citus(),
        "the first migrate applies the schema"
    );
    let ports = consecutive_free_ports();
    let mut pm2 = Pm2::new(install_pm2(), fleet_env(db.url(), ports[0]));
    let names = app_names(&pm2.env);
    assert_eq!(names.len(), usize::from(INSTANCES), "{names:?}");

    pm2.run(&["start", ECOSYSTEM, "--env", "production"]);
    pm2.watch_over();
    wait_until_ready(&pm2, &ports).await;
    let running = online(&pm2, &names, &ports);
    let bus = pm2.tail_logs();

    let nginx = Nginx::start(&Ports::in_front_of(ports.clone())).await;
    let http = Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("build the HTTP client");
    let instances: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    walk_seed_routes(&http, &|path| nginx.url(path), &instances).await;
    race(&http, &nginx).await;
    let audit = connect(db.url()).await;
    for viewer in ["user:42", "user:7001"] {
        assert_eq!(peak_concurrency(&audit, viewer).await, LIMIT, "{viewer}");
    }
    let access = nginx.access_log();
    for port in &ports {
        let upstream = format!("up=127.0.0.1:{port}");
        assert!(access.contains(&upstream), "nginx used {port}:\n{access}");
    }

    let stop_took = stop(&pm2, &names, &running, &bus);
    drop(bus);
    pm2.run(&["delete", ECOSYSTEM]);
    assert_eq!(
        pm2.jlist(),
        Vec::<Value>::new(),
        "pm2 delete empties its list"
    );
    pm2.kill();
    drop((nginx, audit));
    db.drop_database().await;
    println!(
        "pm2 {PM2_VERSION}: fleet on {ports:?}, stopped in {stop_took:?}, test took {:?}",
        began.elapsed()
    );
}

/// The environment of every pm2 command, as the README has the operator
/// export it: the database, the first port, the binary.
fn fleet_env(database_url: &str, base_port: u16) -> Vec<(String, String)> {
    let bin = binary().to_str().expect("a UTF-8 binary path");
    let mut env = vec![
        ("DATABASE_URL", database_url.to_owned()),
        ("STREAM_LIMIT_BASE_PORT", base_port.to_string()),
        ("STREAM_LIMIT_BIN", bin.to_owned()),
    ];
    if citus() {
        // Against a Citus coordinator (scripts/test-citus), as the service runs there.
        env.push(("STREAM_LIMIT__STORE__CITUS", "true".to_owned()));
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Checks `pm2 jlist`: exactly the file's apps, online, never restarted, each
/// on its port and running the binary itself (no node in between); returns
/// their processes. Each app's pm2 log file holds the service's startup lines.
fn online<'a>(pm2: &Pm2, names: &'a [String], ports: &[u16]) -> Vec<(&'a str, Process)> {
    let apps = pm2.jlist();
    assert_eq!(apps.len(), names.len(), "only the file's apps: {apps:?}");
    let mut running = Vec::new();
    for (name, port) in names.iter().zip(ports) {
        let app = find_app(&apps, name);
        let env = &app["pm2_env"];
        assert_eq!(env["status"], "online", "{name}: {app}");
        assert_eq!(env["PORT"], port.to_string(), "{name}: {app}");
        assert_eq!(env["restart_time"], 0, "{name} never restarted: {app}");
        let pid = app["pid"].as_u64().and_then(|p| u32::try_from(p).ok());
        let pid = pid.filter(|p| *p > 0).expect("an online app has a pid");
        let process = Process::of(pid).unwrap_or_else(|| panic!("{name}: no process {pid}"));
        assert_eq!(process.exe, fs_path(binary()), "{name} runs the binary");
        let out = env["pm_out_log_path"].as_str().expect("pm_out_log_path");
        assert!(
            Path::new(out).starts_with(pm2.pm2_home()),
            "{name} logs to {out}"
        );
        // pm2 writes its files asynchronously: give it time.
        let deadline = Instant::now() + STEP_TIMEOUT;
        let log = loop {
            let log = std::fs::read_to_string(out).unwrap_or_default();
            if log.contains("stream-limit listening") || Instant::now() > deadline {
                break log;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            log.contains("stream-limit listening"),
            "{name}'s log:\n{log}"
        );
        running.push((name.as_str(), process));
    }
    running
}

/// `pm2 stop` of the file: returns how long it took. Every instance drained
/// (its log says so, on pm2's bus), exited by itself with status 0 (pm2 sent
/// no SIGKILL), and is gone.
fn stop(pm2: &Pm2, names: &[String], running: &[(&str, Process)], bus: &LogTail) -> Duration {
    let stopping = Instant::now();
    pm2.run(&["stop", ECOSYSTEM]);
    let took = stopping.elapsed();
    let apps = pm2.jlist();
    for name in names {
        let env = &find_app(&apps, name)["pm2_env"];
        assert_eq!(env["status"], "stopped", "{name}: {env}");
        assert_eq!(env["exit_code"], 0, "{name} exited by itself: {env}");
    }
    for (name, process) in running {
        assert!(process.is_gone(), "{name} ({}) still runs", process.pid);
    }
    let pm2_log = pm2.read("pm2.log");
    assert!(
        !pm2_log.contains("SIGKILL"),
        "pm2 killed an app:\n{pm2_log}"
    );
    for name in names {
        let lines = bus.wait_for(name, &[DRAIN_LINE, STOPPED_LINE]);
        let at = |line: &str| lines.iter().position(|l| l.contains(line));
        assert!(at(DRAIN_LINE) < at(STOPPED_LINE), "{name}:\n{lines:#?}");
    }
    took
}

/// 30 clients start a stream for one new user at once, through nginx: exactly
/// [`LIMIT`] are admitted, with counts 1, 2, 3; the others are refused at 3.
async fn race(http: &Client, nginx: &Nginx) {
    const RACERS: usize = 30;
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut racers = JoinSet::new();
    for _ in 0..RACERS {
        let request = http.get(nginx.url("/api/startstream/7001"));
        let barrier = barrier.clone();
        racers.spawn(async move {
            barrier.wait().await;
            seed_start(&answer(request).await)
        });
    }
    let mut admitted = Vec::new();
    while let Some(joined) = racers.join_next().await {
        let status = joined.expect("racer ran")["streamStatus"].clone();
        if status["isNewStreamAllowed"] == true {
            admitted.push(status["streamCount"].as_u64().expect("streamCount"));
        } else {
            assert_eq!(status["streamCount"], LIMIT, "a refusal reports the limit");
        }
    }
    admitted.sort_unstable();
    assert_eq!(admitted, [1, 2, 3], "admitted with counts {admitted:?}");
}

/// `pm2` of [`PM2_VERSION`] in `target/pm2-<version>/`, installed with npm
/// unless it is there already. The install goes to a temporary directory
/// that is renamed into place, so concurrent test runs never see half of one.
fn install_pm2() -> PathBuf {
    let dir = target_dir().join(format!("pm2-{PM2_VERSION}"));
    let bin = dir.join("node_modules/.bin/pm2");
    if installed(&dir) {
        return bin;
    }
    std::fs::create_dir_all(target_dir()).expect("create the target directory");
    let staging = tempfile::Builder::new()
        .prefix(&format!(".pm2-{PM2_VERSION}-"))
        .tempdir_in(target_dir())
        .expect("create the pm2 staging directory");
    let mut npm = Command::new("npm");
    npm.args([
        "install",
        "--no-audit",
        "--no-fund",
        "--no-save",
        "--loglevel=error",
    ])
    .arg("--prefix")
    .arg(staging.path())
    .arg(format!("pm2@{PM2_VERSION}"));
    let run = within(npm, INSTALL_TIMEOUT, staging.path());
    assert!(
        run.status.success() && installed(staging.path()),
        "npm install pm2@{PM2_VERSION} failed ({}); node and npm are needed \
         (apt-get install -y nodejs npm):\n{}{}",
        run.status,
        run.stdout,
        run.stderr
    );
    if !installed(&dir) {
        // A leftover of an interrupted run, if anything: installs are renamed whole.
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::rename(staging.path(), &dir) {
            assert!(installed(&dir), "move pm2 into {}: {e}", dir.display());
        }
    }
    bin
}

/// Whether `dir` holds pm2 of [`PM2_VERSION`], ready to run.
fn installed(dir: &Path) -> bool {
    let package = std::fs::read_to_string(dir.join("node_modules/pm2/package.json"));
    let version = package
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|package| package["version"].as_str().map(str::to_owned));
    version.as_deref() == Some(PM2_VERSION) && dir.join("node_modules/.bin/pm2").is_file()
}

/// The app names of the file, as node evaluates it with `env`.
fn app_names(env: &[(String, String)]) -> Vec<String> {
    let output = Command::new("node")
        .arg("-e")
        .arg("console.log(JSON.stringify(require(process.argv[1]).apps.map((a) => a.name)))")
        .arg(workspace_root().join(ECOSYSTEM))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run node");
    assert!(output.status.success(), "node: {output:?}");
    serde_json::from_slice(&output.stdout).expect("the app names as JSON")
}

/// [`INSTANCES`] consecutive loopback ports that bind now, below the ephemeral
/// range (which `free_port` and outgoing connections draw from), so nothing
/// else in this machine's tests takes them before pm2 starts.
fn consecutive_free_ports() -> Vec<u16> {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|low| *low > 12_000)
        .unwrap_or(60_000);
    let span = u128::from(ephemeral - 10_000 - INSTANCES);
    for _ in 0..100 {
        let offset = uuid::Uuid::new_v4().as_u128() % span;
        let base = 10_000 + u16::try_from(offset).expect("below the ephemeral range");
        let ports: Vec<u16> = (base..base + INSTANCES).collect();
        let bound: Result<Vec<TcpListener>, _> = ports
            .iter()
            .map(|port| TcpListener::bind(("127.0.0.1", *port)))
            .collect();
        if bound.is_ok() {
            return ports;
        }
    }
    panic!("no {INSTANCES} consecutive free loopback ports in 100 tries");
}

/// Until every instance's `/health/ready` answers 200, for [`STEP_TIMEOUT`].
async fn wait_until_ready(pm2: &Pm2, ports: &[u16]) {
    let http = Client::new();
    let deadline = Instant::now() + STEP_TIMEOUT;
    for port in ports {
        let url = format!("http://127.0.0.1:{port}/health/ready");
        loop {
            let ready = http.get(&url).timeout(Duration::from_secs(2)).send().await;
            if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
                break;
            }
            if Instant::now() > deadline {
                panic!("{url} not ready within {STEP_TIMEOUT:?}\n{}", pm2.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The app named `name` in `pm2 jlist`'s answer.
fn find_app<'a>(apps: &'a [Value], name: &str) -> &'a Value {
    apps.iter()
        .find(|app| app["name"] == name)
        .unwrap_or_else(|| panic!("no app {name} in pm2's list: {apps:?}"))
}

/// The pm2 CLI with a home of its own; `pm2 kill` when dropped.
struct Pm2 {
    bin: PathBuf,
    /// `HOME`, with `PM2_HOME` in `pm2/`.
    home: tempfile::TempDir,
    /// What every command gets (see [`Pm2::new`]).
    env: Vec<(String, String)>,
    killed: bool,
}

impl Pm2 {
    /// Every pm2 command gets `env` and nothing of this process's environment
    /// but `PATH` (for node): pm2 hands its environment on to the apps.
    fn new(bin: PathBuf, env: Vec<(String, String)>) -> Self {
        let home = tempfile::Builder::new()
            .prefix("sl-pm2-")
            .tempdir()
            .expect("create PM2_HOME");
        Self {
            bin,
            home,
            env,
            killed: false,
        }
    }

    fn pm2_home(&self) -> PathBuf {
        self.home.path().join("pm2")
    }

    /// `env`, `PATH`, and a `HOME` and `PM2_HOME` of its own, for `command`.
    fn environment(&self, command: &mut Command) {
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("PM2_HOME", self.pm2_home())
            .env("FORCE_COLOR", "0")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        self.environment(&mut command);
        command.current_dir(workspace_root());
        command
    }

    /// Runs `pm2 <args>` within [`STEP_TIMEOUT`]; returns its output, or panics
    /// unless it succeeds.
    fn run(&self, args: &[&str]) -> String {
        let mut command = self.command();
        command.args(args);
        let run = within(command, STEP_TIMEOUT, self.home.path());
        assert!(
            run.status.success(),
            "pm2 {args:?} failed ({}):\n{}{}\n{}",
            run.status,
            run.stdout,
            run.stderr,
            self.logs()
        );
        run.stdout
    }

    /// `pm2 jlist`: the apps, as JSON.
    fn jlist(&self) -> Vec<Value> {
        let out = self.run(&["jlist"]);
        let last = out.lines().rev().find(|line| !line.trim().is_empty());
        serde_json::from_str(last.unwrap_or_default())
            .unwrap_or_else(|e| panic!("pm2 jlist is not JSON ({e}):\n{out}"))
    }

    /// A file of `PM2_HOME` (empty if missing).
    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.pm2_home().join(relative)).unwrap_or_default()
    }

    /// pm2's own log and every app log file, for failure messages.
    fn logs(&self) -> String {
        let mut text = format!("--- pm2.log ---\n{}", self.read("pm2.log"));
        let files = std::fs::read_dir(self.pm2_home().join("logs"))
            .into_iter()
            .flatten();
        for file in files.filter_map(Result::ok) {
            let name = file.file_name().to_string_lossy().into_owned();
            text += &format!("\n--- {name} ---\n{}", self.read(&format!("logs/{name}")));
        }
        text
    }

    /// `pm2 logs --lines 0`, from the moment it is connected to pm2's log bus
    /// (it has printed the line of a `pm2 reloadLogs`).
    fn tail_logs(&self) -> LogTail {
        let path = self.home.path().join("bus.log");
        let out = std::fs::File::create(&path).expect("create the bus log");
        let mut command = self.command();
        command
            .args(["logs", "--lines", "0"])
            .stdout(out)
            .stderr(Stdio::null());
        let child = command.spawn().expect("spawn pm2 logs");
        // For the watchdog (see `watch_over`), which runs before this exists.
        let pid_file = self.home.path().join("tail.pid");
        std::fs::write(&pid_file, child.id().to_string()).expect("write tail.pid");
        let tail = LogTail {
            child,
            path,
            pid_file,
        };
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !tail.text().contains("Reloading logs") {
            assert!(Instant::now() < deadline, "pm2 logs never connected");
            self.run(&["reloadLogs"]);
            std::thread::sleep(Duration::from_millis(200));
        }
        tail
    }

    /// A shell, in its own process group, that stops `pm2 logs` and runs
    /// `pm2 kill` if this test process dies without unwinding (no drop guards
    /// then); it ends with the daemon.
    fn watch_over(&self) {
        const WATCHDOG: &str = r#"
while kill -0 "$TEST_PID" 2>/dev/null && kill -0 "$DAEMON_PID" 2>/dev/null; do sleep 0.5; done
[ -s "$HOME/tail.pid" ] && kill "$(cat "$HOME/tail.pid")" 2>/dev/null
if [ -e "$PM2_HOME/pm2.pid" ]; then "$PM2" kill >/dev/null 2>&1; rm -rf "$HOME"; fi
"#;
        let daemon = self.read("pm2.pid");
        let mut shell = Command::new("sh");
        self.environment(&mut shell);
        shell
            .args(["-c", WATCHDOG])
            .env("TEST_PID", std::process::id().to_string())
            .env("DAEMON_PID", daemon.trim())
            .env("PM2", &self.bin)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut shell, 0);
        // Reaped by nobody on purpose: it must outlive us if we die.
        let _ = shell.spawn();
    }

    /// SIGKILL to the daemon and every app, by the pid files pm2 keeps.
    fn sigkill_all(&self) {
        let apps = std::fs::read_dir(self.pm2_home().join("pids"))
            .into_iter()
            .flatten();
        let files = apps.filter_map(Result::ok).map(|entry| entry.path());
        for file in files.chain([self.pm2_home().join("pm2.pid")]) {
            if let Ok(pid) = std::fs::read_to_string(&file) {
                let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            }
        }
    }

    /// `pm2 kill`: stops every app left and the daemon.
    fn kill(&mut self) {
        self.killed = true;
        self.run(&["kill"]);
    }
}

impl Drop for Pm2 {
    fn drop(&mut self) {
        if !self.killed {
            let mut command = self.command();
            command.arg("kill");
            // pm2 waits up to the file's kill_timeout (35 s) for an app to drain.
            let killed = run_within(command, Duration::from_secs(45), self.home.path());
            if !killed.is_ok_and(|run| run.status.success()) {
                self.sigkill_all();
            }
        }
    }
}

/// A running `pm2 logs`, stopped when dropped.
struct LogTail {
    child: Child,
    path: PathBuf,
    pid_file: PathBuf,
}

impl LogTail {
    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// The lines of app `name` (`<id>|<name> | <line>`) once they hold every
    /// one of `wanted`, waiting up to [`STEP_TIMEOUT`].
    fn wait_for(&self, name: &str, wanted: &[&str]) -> Vec<String> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let lines: Vec<String> = self
                .text()
                .lines()
                .filter_map(|line| {
                    let (app, rest) = line.split_once(" | ")?;
                    let app = app.trim().split_once('|')?.1;
                    (app == name).then(|| rest.to_owned())
                })
                .collect();
            if wanted.iter().all(|w| lines.iter().any(|l| l.contains(w))) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never logged {wanted:?}; pm2 logs:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LogTail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// A process, told apart from a later one with the same pid by its start time.
struct Process {
    pid: u32,
    start: String,
    exe: PathBuf,
}

impl Process {
    fn of(pid: u32) -> Option<Self> {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        Some(Self {
            pid,
            start: stat(pid)?.1,
            exe: fs_path(&exe),
        })
    }

    /// No such process any more: no pid, a zombie, or another process.
    fn is_gone(&self) -> bool {
        match stat(self.pid) {
            None => true,
            Some((state, start)) => state == "Z" || start != self.start,
        }
    }
}

/// `(state, start time)` from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(String, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "<pid> (<comm>) <state> <ppid> ...": comm may hold spaces; starttime is field 22.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some((fields.first()?.to_string(), fields.get(19)?.to_string()))
}

/// A path as the kernel names a running executable: canonical, without the
/// " (deleted)" of a binary rebuilt while it runs.
fn fs_path(path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    let path = PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text));
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// What a command printed, and how it ended.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `command` with its output in files of `dir`, killing it after `timeout`.
fn run_within(mut command: Command, timeout: Duration, dir: &Path) -> Result<Run, String> {
    let id = uuid::Uuid::new_v4().simple();
    let (out, err) = (dir.join(format!("{id}.out")), dir.join(format!("{id}.err")));
    let file = |path: &Path| std::fs::File::create(path).map_err(|e| e.to_string());
    command.stdout(file(&out)?).stderr(file(&err)?);
    let mut child = command
        .spawn()
        .map_err(|e| format!("spawn {command:?}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{command:?} did not finish within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let take = |path: &Path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let _ = std::fs::remove_file(path);
        text
    };
    Ok(Run {
        status,
        stdout: take(&out),
        stderr: take(&err),
    })
}

/// [`run_within`], panicking when the command cannot run or times out.
fn within(command: Command, timeout: Duration, dir: &Path) -> Run {
    run_within(command, timeout, dir).unwrap_or_else(|e| panic!("{e}"))
}
