//! A real Prometheus server (Debian's `prometheus` package) on loopback,
//! running `ecosystem/prometheus` with the test's scrape targets, and
//! `promtool`.
//!
//! [`Prometheus::start`] copies the directory (configuration, rules, unit
//! tests) into a temporary one, sets both intervals to one second so the
//! test waits seconds rather than minutes, writes the targets file, and
//! starts the server; it is killed when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::service::{free_port, workspace_root};

/// The repository's Prometheus directory.
pub const DIRECTORY: &str = "ecosystem/prometheus";
/// The scrape and evaluation interval the test runs with.
pub const INTERVAL: &str = "1s";

/// `name` (`prometheus`, `promtool`) on `PATH` or in `/usr/bin`.
///
/// # Panics
///
/// When it is not installed (scripts/test installs Debian's `prometheus`).
pub fn binary(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .chain([Path::new("/usr/bin").join(name)])
        .find(|candidate| candidate.is_file());
    on_path.unwrap_or_else(|| {
        panic!("{name} is not installed: apt-get install -y prometheus (scripts/test does)")
    })
}

/// Runs `promtool` with `args` in `dir`, feeding `stdin`; `Ok(stdout)` when
/// it exits 0, else `Err` with everything it printed.
pub fn promtool(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new(binary("promtool"))
        .args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("promtool did not start: {e}"))?;
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(bytes)
            .map_err(|e| format!("writing to promtool: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("promtool failed to run: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!("promtool {args:?} ({}):\n{text}", output.status))
    }
}

/// A running Prometheus; killed (and its directory deleted) when dropped.
pub struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Prometheus {
    /// Starts Prometheus on `ecosystem/prometheus`, scraping `targets`
    /// (`host:port` of each instance), and waits until it is ready.
    ///
    /// # Panics
    ///
    /// When the server does not start or get ready within 30 s.
    pub async fn start(targets: &[String]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sl-prometheus-")
            .tempdir()
            .expect("a temporary directory");
        copy_dir(&workspace_root().join(DIRECTORY), dir.path());
        let config_path = dir.path().join("prometheus.yml");
        let config = fs::read_to_string(&config_path).expect("prometheus.yml");
        let fast = config
            .replace(
                "scrape_interval: 15s",
                &format!("scrape_interval: {INTERVAL}"),
            )
            .replace(
                "evaluation_interval: 15s",
                &format!("evaluation_interval: {INTERVAL}"),
            )
            .replace(
                "scrape_timeout: 10s",
                &format!("scrape_timeout: {INTERVAL}"),
            );
        assert_ne!(fast, config, "the intervals of prometheus.yml moved");
        fs::write(&config_path, fast).expect("write prometheus.yml");
        let target_list = serde_json::json!([{ "targets": targets, "labels": {} }]);
        fs::write(
            dir.path().join("targets/stream-limit.json"),
            target_list.to_string(),
        )
        .expect("write the targets");
        let port = free_port();
        let log = fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(binary("prometheus"))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir.path())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let server = Self {
            child,
            port,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = server.http.get(server.url("/-/ready")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 30 s:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The directory it runs from: the copy of `ecosystem/prometheus`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A URL of its HTTP API.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the server printed.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>` with `query`; the `data` of a `success` answer.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let response = self
            .http
            .get(self.url(&format!("/api/v1/{path}")))
            .query(query)
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        let body: Value = response.json().await.map_err(|e| format!("{e}"))?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!("{body}"))
        }
    }

    /// The result of an instant query: its samples, or Prometheus's error.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api("query", &[("query", expr)]).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The scrape targets and their health.
    pub async fn targets(&self) -> Result<Vec<Value>, String> {
        let data = self.api("targets", &[]).await?;
        Ok(data["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The alerts now pending or firing.
    pub async fn alerts(&self) -> Result<Vec<Value>, String> {
        let data = self.api("alerts", &[]).await?;
        Ok(data["alerts"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create directory");
    for entry in fs::read_dir(from).expect("read directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}
