//! Real `stream-limit-http` processes on loopback, for end-to-end tests.
//!
//! The binary is built once per test process (`cargo build`, same profile as
//! the tests), so a test run never exercises a stale binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Path of the freshly built `stream-limit-http` binary (debug profile).
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let root = workspace_root();
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--quiet",
                "-p",
                "stream-limit-http",
                "--bin",
                "stream-limit-http",
            ])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of stream-limit-http failed");
        target_dir().join("debug").join("stream-limit-http")
    })
}

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// A free TCP port on 127.0.0.1 (free when asked; the OS may reuse it later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// One running instance. Killed (SIGKILL) when dropped.
pub struct Service {
    binary: PathBuf,
    child: Option<Child>,
    port: u16,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Service {
    /// Starts an instance with `env` on a free port and waits until `/health` answers.
    /// `RUST_LOG` defaults to `warn`; the process's output goes to a log file
    /// shown when startup fails.
    pub async fn spawn(env: &[(&str, &str)]) -> Service {
        Self::spawn_on(free_port(), env).await
    }

    /// Like [`Service::spawn`], on a chosen port (to restart an instance in place).
    pub async fn spawn_on(port: u16, env: &[(&str, &str)]) -> Service {
        Self::spawn_binary(binary(), port, env).await
    }

    /// Like [`Service::spawn_on`], running another build of the service (for
    /// example [`crate::previous_release::binary`]).
    pub async fn spawn_binary(binary: &Path, port: u16, env: &[(&str, &str)]) -> Service {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let log = std::env::temp_dir().join(format!(
            "stream-limit-{port}-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        let mut service = Service {
            binary: binary.to_path_buf(),
            child: None,
            port,
            env,
            log,
        };
        service.start().await;
        service
    }

    async fn start(&mut self) {
        let out = std::fs::File::create(&self.log).expect("create the service log");
        let err = out.try_clone().expect("clone the log handle");
        let mut command = Command::new(&self.binary);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env("PORT", self.port.to_string())
            .env("STREAM_LIMIT__SERVER__HOST", "127.0.0.1")
            .env("STREAM_LIMIT__SERVER__WORKERS", "2")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if crate::postgres::citus() {
            // Against a Citus coordinator (scripts/test-citus), as users run it
            // there. Only then: older releases do not know the key.
            command.env("STREAM_LIMIT__STORE__CITUS", "true");
        }
        self.child = Some(command.spawn().expect("spawn stream-limit-http"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "stream-limit-http exited at startup ({status}):\n{}",
                    self.log_text()
                );
            }
            if self.get_health().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "stream-limit-http did not answer /health within 30 s:\n{}",
            self.log_text()
        );
    }

    async fn get_health(&self) -> bool {
        let client = reqwest::Client::new();
        matches!(
            client.get(self.url("/health")).timeout(Duration::from_secs(1)).send().await,
            Ok(r) if r.status().is_success()
        )
    }

    /// The instance's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the process printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: the crash of an instance.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (bounded) for the graceful exit; returns whether it
    /// exited successfully within `grace`.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        self.signal("TERM");
        self.wait_exit(grace)
    }

    /// Sends a signal by name (`TERM`, `INT`, ...) without waiting.
    pub fn signal(&self, name: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([&format!("-{name}"), &child.id().to_string()])
                .status();
        }
    }

    /// Waits up to `grace` for the process to exit; returns whether it exited
    /// successfully. Kills it if it is still running then.
    pub fn wait_exit(&mut self, grace: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Starts the process again on the same port with the same environment.
    pub async fn restart(&mut self) {
        self.kill();
        self.start().await;
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}
