//! Headless Chromium, driven by Playwright from a Node script, for the pages
//! the service serves (the admin listener's support console).
//!
//! - Chromium is Debian's (`/usr/bin/chromium`, or `$CHROMIUM`): the network
//!   here reaches package registries only, so Playwright's own browser
//!   download is never used.
//! - `playwright-core` (the library without browsers) comes from the npm
//!   registry at an exact version, installed once into
//!   `target/playwright-<version>/` and reused, as
//!   `tests/schemathesis/run.sh` keeps its venv.
//! - Scripts run under `node` with that folder as `NODE_PATH`, bounded in
//!   time, their output kept in files so that a chatty script cannot fill a
//!   pipe and stall.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::service::target_dir;

/// The `playwright-core` release the scripts are written against.
pub const PLAYWRIGHT_VERSION: &str = "1.64.1";

/// Longest an `npm install` of it may take (a cold cache on a slow link).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

/// The Chromium to drive: `$CHROMIUM`, else Debian's. Panics with how to
/// install it when it is missing.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "no Chromium at {}: install Debian's (`apt-get install -y --no-install-recommends \
         chromium`) or set CHROMIUM to a Chromium binary",
        path.display()
    );
    path
}

/// The `node_modules` folder that holds `playwright-core` at
/// [`PLAYWRIGHT_VERSION`], installed from the npm registry on first use.
///
/// The install goes to a folder of its own first and is renamed into place
/// only once complete, so an interrupted install is never taken for a good
/// one, and two test processes installing at once both end with a whole one.
pub fn playwright_modules() -> PathBuf {
    let home = target_dir().join(format!("playwright-{PLAYWRIGHT_VERSION}"));
    if installed(&home) {
        return home.join("node_modules");
    }
    let staging = target_dir().join(format!(
        "playwright-{PLAYWRIGHT_VERSION}.partial-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).expect("create the playwright staging folder");
    // The pin, written down where the install reads it.
    std::fs::write(
        staging.join("package.json"),
        format!(
            r#"{{"private":true,"description":"playwright-core for the browser tests","dependencies":{{"playwright-core":"{PLAYWRIGHT_VERSION}"}}}}"#
        ),
    )
    .expect("write the staging package.json");
    let mut npm = Command::new("npm");
    npm.args([
        "install",
        "--no-audit",
        "--no-fund",
        "--no-package-lock",
        // playwright-core has no install script; none may run regardless.
        "--ignore-scripts",
        "--loglevel=error",
        "--prefix",
    ])
    .arg(&staging)
    .current_dir(&staging)
    .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
    let run = run_bounded(&mut npm, INSTALL_TIMEOUT);
    assert!(
        run.status.is_some_and(|s| s.success()) && installed(&staging),
        "npm install playwright-core@{PLAYWRIGHT_VERSION} into {} failed ({}):\n{}",
        staging.display(),
        run.describe_status(INSTALL_TIMEOUT),
        run.text()
    );
    // A stale or broken folder (another version's, a manual edit) goes first.
    if home.exists() && !installed(&home) {
        let _ = std::fs::remove_dir_all(&home);
    }
    if std::fs::rename(&staging, &home).is_err() {
        // Another process put a whole install there in the meantime.
        let _ = std::fs::remove_dir_all(&staging);
    }
    assert!(
        installed(&home),
        "playwright-core is not installed in {} after npm install",
        home.display()
    );
    home.join("node_modules")
}

/// Whether `home` holds `playwright-core` at exactly [`PLAYWRIGHT_VERSION`].
fn installed(home: &Path) -> bool {
    let manifest = home.join("node_modules/playwright-core/package.json");
    std::fs::read(manifest)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|manifest| manifest["version"] == PLAYWRIGHT_VERSION)
}

/// What a bounded run printed, and how it ended.
pub struct Run {
    /// `None`: still running at the deadline, and killed.
    pub status: Option<ExitStatus>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Run {
    /// Whether it exited with status 0 in time.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }

    /// Its exit status, or that it was killed at the deadline.
    pub fn describe_status(&self, timeout: Duration) -> String {
        match self.status {
            Some(status) => status.to_string(),
            None => format!("killed after {timeout:?}"),
        }
    }

    /// Both outputs, for a failure message.
    pub fn text(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Runs `node script` with Playwright on its module path and `env` added,
/// for at most `timeout` (then kills it).
pub fn run_node_script(script: &Path, env: &[(&str, &str)], timeout: Duration) -> Run {
    let node_available = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        node_available,
        "node is not installed: `apt-get install -y nodejs`"
    );
    let modules = playwright_modules();
    let mut node = Command::new("node");
    node.arg(script)
        .env("NODE_PATH", &modules)
        .envs(env.iter().copied());
    run_bounded(&mut node, timeout)
}

/// Runs `command` for at most `timeout`, its output in temporary files
/// (which, unlike pipes, never fill up and stall it).
fn run_bounded(command: &mut Command, timeout: Duration) -> Run {
    let logs = tempfile::tempdir().expect("a temporary folder");
    let (out, err) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut child: Child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("create the stdout file"))
        .stderr(std::fs::File::create(&err).expect("create the stderr file"))
        .spawn()
        .unwrap_or_else(|error| panic!("spawn {command:?}: {error}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |path: &Path| {
        String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
    };
    Run {
        status,
        stdout: read(&out),
        stderr: read(&err),
    }
}
