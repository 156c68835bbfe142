//! A real nginx on loopback, configured with the files of `ecosystem/nginx/`.
//!
//! The published files name fixed ports (the balancer on 8080, its loopback
//! hop on 8079, instances on 8081-8083). [`render`] rewrites exactly those
//! ports and panics if one is missing, so the tests always run the files as
//! published and a change to their ports must come with a change here.
//!
//! Everything else nginx needs (pid file, logs, temporary directories, the
//! `http {}` block that includes our two files) lives in a private prefix
//! directory written by [`Prefix`]. [`Nginx::start`] runs it in the
//! foreground (`daemon off`) as a child process, stopped when dropped; a
//! watchdog shell stops it too if the test process dies without unwinding.
//!
//! If nginx is not installed, [`binary`] panics with instructions: tests that
//! need it are never skipped silently (`scripts/test` installs it).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::service::{free_port, workspace_root};

/// The site file: classification maps, the public server, the loopback hop.
pub const SITE: &str = "ecosystem/nginx/stream-limit.conf";
/// The upstreams of instances on one machine (pm2, systemd).
pub const UPSTREAMS: &str = "ecosystem/nginx/upstreams.conf";
/// The upstreams of the docker-compose replicas.
pub const UPSTREAMS_COMPOSE: &str = "ecosystem/nginx/upstreams.compose.conf";

/// The `listen` line of the public server in [`SITE`].
pub const PUBLISHED_LISTEN: &str = "listen 8080;";
/// The loopback address of the hop in [`SITE`] (its `listen` and its upstream).
pub const PUBLISHED_HOP: &str = "127.0.0.1:8079";

/// How long nginx may take to accept connections, or to stop.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The nginx binary: `nginx` on `PATH`, else `/usr/sbin/nginx`.
///
/// # Panics
///
/// When neither exists, with what to install.
pub fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .map(|dir| dir.join("nginx"))
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx is not installed; the fleet tests run a real one. Install it \
                 (apt-get install -y nginx) or run scripts/test, which does"
            )
        })
}

/// nginx's version as `(major, minor, patch)`, from `nginx -v` (asked once).
pub fn version() -> (u32, u32, u32) {
    static VERSION: OnceLock<(u32, u32, u32)> = OnceLock::new();
    *VERSION.get_or_init(ask_version)
}

fn ask_version() -> (u32, u32, u32) {
    let output = Command::new(binary())
        .arg("-v")
        .output()
        .expect("run nginx -v");
    // "nginx version: nginx/1.22.1" (on stderr).
    let text = String::from_utf8_lossy(&output.stderr);
    let number = text
        .split('/')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected `nginx -v` output: {text:?}"));
    let mut parts = number.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

/// Reads a file of the repository, by its path from the workspace root.
pub fn read(relative: &str) -> String {
    let path = workspace_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Where the balancer and its instances listen.
#[derive(Debug, Clone)]
pub struct Ports {
    /// The public server (clients connect here).
    pub listen: u16,
    /// The loopback hop of requests that must not be replayed.
    pub hop: u16,
    /// The instances, in the order of the upstream lines.
    pub instances: Vec<u16>,
}

impl Ports {
    /// Free ports for the balancer and its hop, in front of `instances`.
    pub fn in_front_of(instances: Vec<u16>) -> Self {
        Self {
            listen: free_port(),
            hop: free_port(),
            instances,
        }
    }
}

/// The two files nginx runs: the site and its upstreams.
#[derive(Debug, Clone)]
pub struct Config {
    /// [`SITE`], rendered.
    pub site: String,
    /// [`UPSTREAMS`] (or another upstreams file), rendered.
    pub upstreams: String,
}

/// [`SITE`] and [`UPSTREAMS`] as published, with their ports replaced by `ports`.
///
/// # Panics
///
/// When a published port is not where this function expects it, or the
/// number of instances differs from the upstream file's.
pub fn render(ports: &Ports) -> Config {
    Config {
        site: render_site(&read(SITE), ports),
        upstreams: render_upstreams(&read(UPSTREAMS), &ports.instances),
    }
}

/// The site file with the public `listen` on loopback at `ports.listen` and
/// the hop at `ports.hop`.
pub fn render_site(site: &str, ports: &Ports) -> String {
    assert_eq!(
        site.matches(PUBLISHED_LISTEN).count(),
        1,
        "{SITE} must have exactly one `{PUBLISHED_LISTEN}` (the tests move it to a free port)"
    );
    assert_eq!(
        site.matches(PUBLISHED_HOP).count(),
        2,
        "{SITE} must name the hop {PUBLISHED_HOP} twice: its `listen` and its upstream"
    );
    site.replace(
        PUBLISHED_LISTEN,
        &format!("listen 127.0.0.1:{};", ports.listen),
    )
    .replace(PUBLISHED_HOP, &format!("127.0.0.1:{}", ports.hop))
}

/// The loopback instance ports of an upstreams file, in order of first appearance.
pub fn published_instance_ports(upstreams: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for (_, port) in loopback_ports(upstreams) {
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

/// `upstreams` with its i-th published instance port replaced by `instances[i]`.
pub fn render_upstreams(upstreams: &str, instances: &[u16]) -> String {
    let published = published_instance_ports(upstreams);
    assert_eq!(
        published.len(),
        instances.len(),
        "the upstreams file names {} instances ({published:?}); the test runs {}",
        published.len(),
        instances.len()
    );
    let mut out = String::with_capacity(upstreams.len());
    let mut rest = 0;
    for (at, port) in loopback_ports(upstreams) {
        let digits = at + LOOPBACK.len();
        let index = published.iter().position(|p| *p == port).unwrap_or(0);
        out.push_str(&upstreams[rest..digits]);
        out.push_str(&instances[index].to_string());
        rest = digits + port.to_string().len();
    }
    out.push_str(&upstreams[rest..]);
    out
}

const LOOPBACK: &str = "127.0.0.1:";

/// Every `127.0.0.1:<port>` outside comments: (byte offset, port).
fn loopback_ports(text: &str) -> Vec<(usize, u16)> {
    let mut found = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code = line.split('#').next().unwrap_or("");
        let mut from = 0;
        while let Some(i) = code[from..].find(LOOPBACK) {
            let start = from + i;
            let digits: String = code[start + LOOPBACK.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(port) = digits.parse() {
                found.push((offset + start, port));
            }
            from = start + LOOPBACK.len();
        }
        offset += line.len();
    }
    found
}

/// The single `fail_timeout=` of an upstreams file: how long nginx keeps an
/// instance out after a failure (a rolling restart must wait this long
/// between two instances).
///
/// # Panics
///
/// When the file has none, or several different values.
pub fn fail_timeout(upstreams: &str) -> Duration {
    let mut values: Vec<&str> = upstreams
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|code| code.split_whitespace())
        .filter_map(|word| word.strip_prefix("fail_timeout="))
        .map(|value| value.trim_end_matches(';'))
        .collect();
    values.sort_unstable();
    values.dedup();
    assert_eq!(
        values.len(),
        1,
        "expected one fail_timeout for every server, got {values:?}"
    );
    let seconds = values[0]
        .strip_suffix('s')
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("fail_timeout={} is not in whole seconds", values[0]));
    Duration::from_secs(seconds)
}

/// A private nginx prefix: a main `nginx.conf` that includes the rendered
/// files, with its own pid file, logs and temporary directories.
pub struct Prefix {
    dir: tempfile::TempDir,
}

impl Prefix {
    /// Writes `config` into a fresh prefix directory.
    pub fn new(config: &Config) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sl-nginx-")
            .tempdir()
            .expect("create the nginx prefix");
        let root = dir.path();
        std::fs::create_dir_all(root.join("conf.d")).expect("create conf.d");
        std::fs::create_dir_all(root.join("tmp")).expect("create tmp");
        std::fs::write(root.join("conf.d/upstreams.conf"), &config.upstreams)
            .expect("write upstreams.conf");
        std::fs::write(root.join("conf.d/stream-limit.conf"), &config.site)
            .expect("write stream-limit.conf");
        // nginx running as root switches its workers to `nobody`, who could not
        // enter this private directory: keep them root (loopback, test only).
        let user = if running_as_root() { "user root;" } else { "" };
        let r = root.display();
        let main = format!(
            "{user}
worker_processes 2;
pid {r}/nginx.pid;
error_log {r}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format fleet '$msec $status \"$request\" up=$upstream_addr ups=$upstream_status rt=$request_time';
    access_log {r}/access.log fleet;
    client_body_temp_path {r}/tmp/client_body;
    proxy_temp_path {r}/tmp/proxy;
    fastcgi_temp_path {r}/tmp/fastcgi;
    uwsgi_temp_path {r}/tmp/uwsgi;
    scgi_temp_path {r}/tmp/scgi;
    include {r}/conf.d/upstreams.conf;
    include {r}/conf.d/stream-limit.conf;
}}
"
        );
        std::fs::write(root.join("nginx.conf"), main).expect("write nginx.conf");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `nginx -p <prefix> -c <prefix>/nginx.conf` plus `-e` where supported
    /// (1.19.5+), so that nothing is written outside the prefix.
    fn command(&self) -> Command {
        let mut command = Command::new(binary());
        command
            .arg("-p")
            .arg(self.path())
            .arg("-c")
            .arg(self.path().join("nginx.conf"));
        if version() >= (1, 19, 5) {
            command.arg("-e").arg(self.path().join("error.log"));
        }
        command
    }

    /// `nginx -t`: whether nginx accepts the configuration, with its message.
    pub fn test(&self) -> Result<String, String> {
        let output = self.command().arg("-t").output().expect("run nginx -t");
        let text = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap_or_default()
    }
}

/// A running nginx. Stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Nginx {
    child: Option<Child>,
    prefix: Prefix,
    port: u16,
}

impl Nginx {
    /// Starts nginx with [`render`]`(ports)` and waits until it accepts connections.
    pub async fn start(ports: &Ports) -> Self {
        let prefix = Prefix::new(&render(ports));
        if let Err(message) = prefix.test() {
            panic!("nginx rejects the rendered ecosystem config:\n{message}");
        }
        let out = std::fs::File::create(prefix.path().join("stdout.log")).expect("nginx log");
        let err = out.try_clone().expect("clone the log handle");
        let child = prefix
            .command()
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn nginx");
        watch_over(child.id());
        let mut nginx = Self {
            child: Some(child),
            prefix,
            port: ports.listen,
        };
        nginx.wait_until_listening().await;
        nginx
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("nginx exited at startup ({status}):\n{}", self.logs());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {} within {STARTUP_TIMEOUT:?}:\n{}",
                self.port,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The public port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The error log and what nginx printed, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- nginx error.log ---\n{}\n--- nginx output ---\n{}",
            self.prefix.read("error.log"),
            self.prefix.read("stdout.log")
        )
    }

    /// The access log: `msec status "request" up=<addresses> ups=<statuses> rt=<time>`.
    pub fn access_log(&self) -> String {
        self.prefix.read("access.log")
    }

    /// Fast shutdown (SIGTERM, bounded), then SIGKILL of the master and its workers.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Workers outlive a killed master: kill them first, by pid.
        for worker in children_of(pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &worker.to_string()])
                .status();
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A shell, in its own process group, that sends SIGTERM to `pid` if this
/// test process disappears first (killed, aborted); it ends with nginx.
fn watch_over(pid: u32) {
    const WATCHDOG: &str = r#"
while kill -0 "$TEST_PID" 2>/dev/null && kill -0 "$NGINX_PID" 2>/dev/null; do sleep 0.5; done
kill -0 "$NGINX_PID" 2>/dev/null && kill -TERM "$NGINX_PID"
"#;
    let mut watchdog = Command::new("sh");
    watchdog
        .args(["-c", WATCHDOG])
        .env("TEST_PID", std::process::id().to_string())
        .env("NGINX_PID", pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut watchdog, 0);
    // Reaped by nobody on purpose: it must outlive us if we die.
    let _ = watchdog.spawn();
}

/// Processes whose parent is `pid`, from `/proc/*/stat`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // "<pid> (<comm>) <state> <ppid> ...": comm may hold spaces.
            let after_comm = &stat[stat.rfind(')')? + 1..];
            let ppid: u32 = after_comm.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// Whether this process runs as root, from `id -u`.
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.trim_ascii() == b"0")
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPSTREAMS: &str = "upstream a {\n    # 127.0.0.1:9999 in a comment\n    \
        server 127.0.0.1:8081 max_fails=1 fail_timeout=5s;\n    \
        server 127.0.0.1:8082 max_fails=1 fail_timeout=5s;\n}\n\
        upstream b {\n    server 127.0.0.1:8081 fail_timeout=5s;\n    server 127.0.0.1:8082 fail_timeout=5s;\n}\n";

    #[test]
    fn instance_ports_are_rewritten_in_every_upstream_but_not_in_comments() {
        assert_eq!(published_instance_ports(UPSTREAMS), [8081, 8082]);
        let rendered = render_upstreams(UPSTREAMS, &[40001, 40002]);
        assert_eq!(rendered.matches("127.0.0.1:40001").count(), 2);
        assert_eq!(rendered.matches("127.0.0.1:40002").count(), 2);
        assert!(rendered.contains("127.0.0.1:9999 in a comment"));
        assert!(!rendered.contains(":8081") && !rendered.contains(":8082"));
    }

    #[test]
    fn the_fail_timeout_is_read_from_the_upstreams() {
        assert_eq!(fail_timeout(UPSTREAMS), Duration::from_secs(5));
    }

    #[test]
    #[should_panic(expected = "names 2 instances")]
    fn a_different_number_of_instances_is_refused() {
        render_upstreams(UPSTREAMS, &[1, 2, 3]);
    }
}
