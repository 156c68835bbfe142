//! The deployment files of `ecosystem/` against the code they deploy.
//!
//! No container engine runs here, so what can be checked is checked: every
//! YAML file parses (yaml-rust2: maintained, pure Rust, YAML 1.2 and
//! multi-document files; `serde_yaml` is archived), nginx accepts its config
//! (`nginx -t`) and retries exactly the requests that are safe to repeat (real
//! nginx, fake instances that hang up), and the files name the binary, ports,
//! environment variables and health routes that really exist: environment
//! variables go through the service's own settings loader, which refuses
//! unknown keys, and routes are read from a running binary's `GET /api`. A
//! renamed key, route, port or binary fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use stream_limit_http::Settings;
use stream_limit_tests::nginx::{self, Nginx, Ports, Prefix};
use stream_limit_tests::service::{self, workspace_root, Service};
use yaml_rust2::{Yaml, YamlLoader};

/// The binary every file runs (`[[bin]]` of stream-limit-http).
const BINARY: &str = "stream-limit-http";
/// Where the images and units install it.
const INSTALLED: &str = "/usr/local/bin/stream-limit-http";
/// Liveness (no store call) and readiness (pings the store).
const LIVENESS: &str = "/health";
const READINESS: &str = "/health/ready";

// ---------------------------------------------------------------------------
// Reading the files

fn read(relative: &str) -> String {
    nginx::read(relative)
}

fn yaml(relative: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(relative))
        .unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}"))
}

/// A YAML scalar as text (numbers and booleans included).
fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text(value: &Yaml) -> String {
    scalar(value).unwrap_or_else(|| panic!("expected a scalar, got {value:?}"))
}

fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_vec()
        .map(|items| items.iter().filter_map(scalar).collect())
        .unwrap_or_default()
}

/// A YAML mapping of scalars (labels, environment, data).
fn map(value: &Yaml) -> BTreeMap<String, String> {
    value
        .as_hash()
        .map(|hash| {
            hash.iter()
                .filter_map(|(k, v)| Some((scalar(k)?, scalar(v)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Every file under `ecosystem/` (except `bench/`, which has its own owner),
/// as paths from the workspace root.
fn ecosystem_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read ecosystem/")
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bench") {
                    walk(&path, out);
                }
            } else if let Ok(relative) = path.strip_prefix(workspace_root()) {
                out.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    let mut files = Vec::new();
    walk(&workspace_root().join("ecosystem"), &mut files);
    files
}

// ---------------------------------------------------------------------------
// Settings: the service's own loader judges every environment

/// Names a deployment may give the service besides `STREAM_LIMIT__<SECTION>__<KEY>`.
const CONVENTIONAL: &[&str] = &["PORT", "DATABASE_URL", "RUST_LOG", "STREAM_LIMIT_CONFIG"];

/// Loads `env` with the service's settings loader, which refuses unknown keys
/// and bad values; `what` names the file in failure messages.
fn settings(what: &str, env: &BTreeMap<String, String>) -> Settings {
    for name in env.keys() {
        assert!(
            CONVENTIONAL.contains(&name.as_str()) || name.starts_with("STREAM_LIMIT__"),
            "{what}: {name} is not a variable stream-limit-http reads"
        );
    }
    let pairs = env.iter().map(|(k, v)| (k.clone(), v.clone()));
    Settings::from_sources(None, pairs)
        .unwrap_or_else(|e| panic!("{what}: the service refuses this environment: {e}\n{env:?}"))
}

/// A fleet's environment: it must name the shared database.
fn fleet_settings(what: &str, env: &BTreeMap<String, String>) -> Settings {
    assert!(
        env.get("DATABASE_URL").is_some_and(|url| url.starts_with("postgres")),
        "{what}: every instance of a fleet needs DATABASE_URL (else each keeps its own in-memory limit)"
    );
    settings(what, env)
}

#[test]
fn the_settings_loader_refuses_a_misspelt_key_so_these_checks_mean_something() {
    let env = [("STREAM_LIMIT__SERVER__PROT".to_owned(), "1".to_owned())];
    assert!(Settings::from_sources(None, env).is_err());
    let env = [("STREAM_LIMIT__SERVER__PORT".to_owned(), "8123".to_owned())];
    let loaded = Settings::from_sources(None, env).expect("a real key loads");
    assert_eq!(loaded.server.port, 8123);
}

// ---------------------------------------------------------------------------
// Every file is parseable and documented

#[test]
fn every_yaml_file_parses_and_every_file_is_explained_in_the_readme() {
    let readme = read("ecosystem/README.md");
    let files = ecosystem_files();
    assert!(files.len() >= 15, "ecosystem/ looks incomplete: {files:?}");
    for file in &files {
        if file.ends_with(".yaml") || file.ends_with(".yml") {
            let docs = yaml(file);
            assert!(!docs.is_empty(), "{file} is empty");
        }
        let name = file.strip_prefix("ecosystem/").unwrap_or(file);
        if name != "README.md" {
            assert!(
                readme.contains(name),
                "ecosystem/README.md does not say what {name} is for"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// nginx

#[test]
fn nginx_accepts_the_published_config_with_either_upstreams_file() {
    let ports = Ports::in_front_of((0..3).map(|_| service::free_port()).collect());
    let local = nginx::render(&ports);
    Prefix::new(&local)
        .test()
        .unwrap_or_else(|e| panic!("nginx -t refuses {}:\n{e}", nginx::SITE));

    // The compose variant names Docker's DNS; point it at loopback, and drop
    // `resolve` on an nginx older than 1.27.3 (the compose file pins 1.28).
    let mut compose = read(nginx::UPSTREAMS_COMPOSE).replace("app:8080", "127.0.0.1:8080");
    if nginx::version() < (1, 27, 3) {
        compose = compose.replace(" resolve ", " ");
    }
    let config = nginx::Config {
        site: local.site.clone(),
        upstreams: compose,
    };
    Prefix::new(&config)
        .test()
        .unwrap_or_else(|e| panic!("nginx -t refuses {}:\n{e}", nginx::UPSTREAMS_COMPOSE));
}

#[test]
fn both_upstreams_files_define_the_same_groups_with_the_same_failure_checks() {
    let groups = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|line| line.trim().strip_prefix("upstream "))
            .map(|rest| rest.trim_end_matches('{').trim().to_owned())
            .collect()
    };
    let local = read(nginx::UPSTREAMS);
    let compose = read(nginx::UPSTREAMS_COMPOSE);
    assert_eq!(groups(&local), groups(&compose));
    assert_eq!(
        groups(&local),
        BTreeSet::from(["stream_limit".to_owned(), "stream_limit_once".to_owned()])
    );
    assert_eq!(nginx::fail_timeout(&local), nginx::fail_timeout(&compose));
    for text in [&local, &compose] {
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("server "))
        {
            assert!(
                line.contains("max_fails="),
                "passive checks on every server: {line}"
            );
        }
    }
}

#[test]
fn nginx_error_pages_are_json_with_a_msg() {
    let site = read(nginx::SITE);
    let mut pages = 0;
    for line in site.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("return ") else {
            continue;
        };
        let Some((code, body)) = rest.split_once(' ') else {
            continue;
        };
        let body = body.trim_end_matches(';').trim_matches('\'');
        let json: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("`return {code}` body is not JSON ({e}): {body}"));
        assert!(json["msg"].is_string(), "no msg in {body}");
        pages += 1;
    }
    assert!(
        pages >= 8,
        "expected nginx's own 4xx/5xx pages, found {pages}"
    );
}

/// Fake instances that record each request they receive, then hang up
/// without answering: what nginx sees when an instance dies mid-request.
struct HangUps {
    ports: Vec<u16>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl HangUps {
    fn start(count: usize) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut ports = Vec::new();
        for _ in 0..count {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake instance");
            ports.push(listener.local_addr().expect("local address").port());
            let seen = seen.clone();
            // Detached: blocked in accept() until the test process exits.
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    hang_up(stream, &seen);
                }
            });
        }
        Self { ports, seen }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().expect("not poisoned"))
    }
}

/// Records the request line and headers (lowercased), then drops the
/// connection: recorded first, so the test never looks before it is there.
fn hang_up(stream: TcpStream, seen: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => head.push_str(&line.to_ascii_lowercase()),
        }
    }
    // Consume a body, so that closing sends FIN rather than RST.
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let _ = std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink());
    seen.lock().expect("not poisoned").push(head);
}

/// One request to nginx: method, path, extra header.
async fn through(nginx: &Nginx, method: &str, path: &str, header: Option<(&str, &str)>) -> u16 {
    let client = reqwest::Client::new();
    let mut request = client.request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        nginx.url(path),
    );
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    if method == "POST" {
        request = request
            .header("Content-Type", "application/json")
            .body("{}");
    }
    let response = request.send().await.expect("nginx answers");
    let status = response.status().as_u16();
    if method != "HEAD" {
        let body: Value = response.json().await.expect("nginx answers JSON");
        assert!(body["msg"].is_string(), "{body}");
    }
    status
}

/// A request through nginx: method, path, one header, and how many fake
/// instances it must reach (3: replayed on each; 1: sent once).
type Case<'a> = (&'a str, String, Option<(&'a str, &'a str)>, usize);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_replays_only_requests_that_are_safe_to_repeat() {
    let fakes = HangUps::start(3);
    let id = "7a0c9a52-6b9e-4b4e-9d57-3a1f0f8c2b11";
    let key = ("Idempotency-Key", "k-1");
    let session = ("Session-Id", "gw-1");
    // (method, path, header, how many instances must receive it)
    let cases: &[Case<'_>] = &[
        ("GET", "/api/startstream/1".into(), None, 1),
        ("HEAD", "/api/startstream/1".into(), None, 1),
        ("GET", format!("/api/startstream/1?streamId={id}"), None, 3),
        ("GET", "/api/startstream/1".into(), Some(key), 3),
        ("GET", "/api/endstream/1".into(), None, 1),
        ("GET", "/api/endstream/1".into(), Some(key), 1),
        ("GET", format!("/api/endstream/1?streamId={id}"), None, 3),
        ("GET", "/watch".into(), Some(session), 1),
        ("GET", format!("/watch?streamId={id}"), Some(session), 3),
        ("GET", "/watch/streams".into(), Some(session), 3),
        (
            "POST",
            format!("/watch/streams/{id}/heartbeat"),
            Some(session),
            3,
        ),
        ("DELETE", format!("/watch/streams/{id}"), Some(session), 3),
        ("POST", "/api/users/1/streams".into(), None, 1),
        ("POST", "/api/users/1/streams".into(), Some(key), 3),
        ("GET", "/api/users/1/streams".into(), None, 3),
        (
            "POST",
            format!("/api/users/1/streams/{id}/heartbeat"),
            None,
            3,
        ),
        ("DELETE", format!("/api/users/1/streams/{id}"), None, 3),
        ("GET", "/health".into(), None, 3),
        ("POST", "/api/startstream/1".into(), None, 1),
    ];
    for (method, path, header, expected) in cases {
        // A fresh nginx per case: the failures of one case must not mark the
        // fake instances down for the next.
        let nginx = Nginx::start(&Ports::in_front_of(fakes.ports.clone())).await;
        let status = through(&nginx, method, path, *header).await;
        assert_eq!(status, 502, "{method} {path}");
        let seen = fakes.take();
        assert_eq!(
            seen.len(),
            *expected,
            "{method} {path} {header:?} reached {} instances:\n{seen:?}\n{}",
            seen.len(),
            nginx.logs()
        );
        for head in &seen {
            // The detour of unsafe GETs (sent on as POST) restores the method.
            let expected_line =
                format!("{} {path} ", if *method == "HEAD" { "get" } else { method })
                    .to_ascii_lowercase();
            assert!(
                head.starts_with(&expected_line),
                "{method} {path} arrived as {head}"
            );
            if let Some((name, value)) = header {
                let wanted = format!(
                    "{}: {}",
                    name.to_ascii_lowercase(),
                    value.to_ascii_lowercase()
                );
                assert!(
                    head.contains(&wanted),
                    "{name} did not pass through: {head}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Routes: what the files probe exists in the binary

/// How ecosystem/nginx/stream-limit.conf treats each route of the service.
/// A new route fails the test below until it is classified there and here.
const CLASSIFIED: &[&str] = &[
    "GET /api",
    "GET /health",
    "GET /health/ready",
    "GET /metrics",
    "GET /api/startstream/:user_id",
    "GET /api/endstream/:user_id",
    "GET /watch",
    "GET /watch/streams",
    "POST /watch/streams/:stream_id/heartbeat",
    "DELETE /watch/streams/:stream_id",
    "POST /api/users/:user_id/streams",
    "GET /api/users/:user_id/streams",
    "POST /api/users/:user_id/streams/:stream_id/heartbeat",
    "DELETE /api/users/:user_id/streams/:stream_id",
];

/// The routes the nginx config and the probes rely on.
const RELIED_ON: &[&str] = &[
    "GET /health",
    "GET /health/ready",
    "GET /api/startstream/:user_id",
    "GET /api/endstream/:user_id",
    "GET /watch",
    "POST /watch/streams/:stream_id/heartbeat",
    "POST /api/users/:user_id/streams",
    "POST /api/users/:user_id/streams/:stream_id/heartbeat",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_the_files_rely_on_exist_and_every_route_is_classified_for_nginx() {
    let instance = Service::spawn(&[]).await;
    let http = reqwest::Client::new();
    let index: Value = http
        .get(instance.url("/api"))
        .send()
        .await
        .expect("GET /api")
        .json()
        .await
        .expect("JSON");
    let routes: BTreeSet<&str> = index
        .as_object()
        .expect("GET /api is an object")
        .keys()
        .map(String::as_str)
        .collect();
    for route in RELIED_ON {
        assert!(
            routes.contains(route),
            "the files rely on {route}, which the service no longer lists"
        );
    }
    for route in &routes {
        assert!(
            CLASSIFIED.contains(route),
            "new route {route}: decide in ecosystem/nginx/stream-limit.conf whether nginx may \
             replay it, then add it to CLASSIFIED"
        );
    }
    let live = http
        .get(instance.url(LIVENESS))
        .send()
        .await
        .expect("liveness");
    assert_eq!(live.status(), 200);
    assert_eq!(live.text().await.expect("body"), r#"{"status":"UP"}"#);
    let ready = http
        .get(instance.url(READINESS))
        .send()
        .await
        .expect("readiness");
    assert_eq!(ready.status(), 200);
}

// ---------------------------------------------------------------------------
// pm2

/// `ecosystem.config.js` as pm2 sees it, evaluated by node with `env`.
fn pm2_config(env: &[(&str, &str)]) -> Result<Value, String> {
    let node = Command::new("node")
        .arg("-e")
        .arg("console.log(JSON.stringify(require(process.argv[1])))")
        .arg(workspace_root().join("ecosystem/pm2/ecosystem.config.js"))
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .output();
    let output = node.unwrap_or_else(|e| {
        panic!(
            "node is needed to evaluate ecosystem/pm2/ecosystem.config.js ({e}); \
             install nodejs (apt-get install -y nodejs)"
        )
    });
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).expect("pm2 config as JSON"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn pm2_runs_instances_on_the_ports_nginx_balances_and_stops_them_gracefully() {
    let url = "postgres://u:p@db.invalid:5432/streams";
    let config = pm2_config(&[("DATABASE_URL", url)]).expect("the pm2 file evaluates");
    let apps = config["apps"].as_array().expect("apps");
    let upstream_ports = nginx::published_instance_ports(&read(nginx::UPSTREAMS));
    assert_eq!(
        apps.len(),
        upstream_ports.len(),
        "one app per nginx upstream server"
    );
    let mut ports = Vec::new();
    for app in apps {
        let name = app["name"].as_str().expect("name");
        let script = app["script"].as_str().expect("script");
        assert!(
            script.ends_with(&format!("/{BINARY}")),
            "{name} runs {script}"
        );
        assert_eq!(app["interpreter"], "none", "{name}: a native binary");
        assert_eq!(app["exec_mode"], "fork", "{name}");
        // SIGINT (pm2's default) would stop at once; SIGTERM drains.
        assert_eq!(app["kill_signal"], "SIGTERM", "{name}");
        for (label, extra) in [("env", "env"), ("env_production", "env_production")] {
            let mut env: BTreeMap<String, String> = app["env"]
                .as_object()
                .expect("env")
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect();
            if let Some(more) = app[extra].as_object() {
                for (k, v) in more {
                    env.insert(
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    );
                }
            }
            let loaded = fleet_settings(&format!("pm2 {name} {label}"), &env);
            let kill_timeout = app["kill_timeout"].as_u64().expect("kill_timeout");
            assert!(
                kill_timeout > loaded.server.shutdown_timeout_secs * 1000,
                "{name}: pm2 must wait longer than server.shutdown_timeout_secs before SIGKILL"
            );
            if label == "env" {
                ports.push(loaded.server.port);
            }
        }
        assert_eq!(app["env"]["DATABASE_URL"], url, "{name}");
    }
    assert_eq!(
        ports, upstream_ports,
        "pm2 ports are nginx's upstream servers"
    );
    assert!(
        ports.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive ports: {ports:?}"
    );

    let five = pm2_config(&[
        ("DATABASE_URL", url),
        ("STREAM_LIMIT_INSTANCES", "5"),
        ("STREAM_LIMIT_BASE_PORT", "9001"),
    ])
    .expect("the pm2 file evaluates");
    let ports: Vec<&str> = five["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .filter_map(|app| app["env"]["PORT"].as_str())
        .collect();
    assert_eq!(ports, ["9001", "9002", "9003", "9004", "9005"]);

    let refused = pm2_config(&[]).expect_err("a fleet without a database is refused");
    assert!(refused.contains("DATABASE_URL"), "{refused}");
}

// ---------------------------------------------------------------------------
// systemd

/// `(section, key, value)` of a unit file, in order.
fn unit(relative: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in read(relative).lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, value)) = line.split_once('=') {
            entries.push((
                section.clone(),
                key.trim().to_owned(),
                value.trim().to_owned(),
            ));
        } else {
            panic!("{relative}: not a unit line: {line}");
        }
    }
    entries
}

fn unit_values<'a>(entries: &'a [(String, String, String)], key: &str) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|(section, k, _)| section == "Service" && k == key)
        .map(|(_, _, v)| v.as_str())
        .collect()
}

/// `KEY=VALUE` lines of an environment file.
fn env_file(relative: &str) -> BTreeMap<String, String> {
    read(relative)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{relative}: {l}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn systemd_runs_one_hardened_instance_per_port_from_the_env_file() {
    let template = unit("ecosystem/systemd/stream-limit@.service");
    assert_eq!(unit_values(&template, "ExecStart"), [INSTALLED]);
    assert_eq!(unit_values(&template, "Environment"), ["PORT=%i"]);
    let env_path = unit_values(&template, "EnvironmentFile");
    assert_eq!(env_path, ["/etc/stream-limit/stream-limit.env"]);
    assert_eq!(unit_values(&template, "KillSignal"), ["SIGTERM"]);
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("DynamicUser", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
        ("MemoryDenyWriteExecute", "yes"),
    ] {
        assert_eq!(unit_values(&template, key), [value], "{key}");
    }

    // The example env file, as instance 8081 would get it.
    let mut env = env_file("ecosystem/systemd/stream-limit.env.example");
    env.insert("PORT".into(), "8081".into());
    let loaded = fleet_settings("stream-limit.env.example", &env);
    assert_eq!(loaded.server.port, 8081);
    let stop: u64 = unit_values(&template, "TimeoutStopSec")[0]
        .trim_end_matches('s')
        .parse()
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop > loaded.server.shutdown_timeout_secs,
        "systemd must outwait the drain"
    );

    let migrate = unit("ecosystem/systemd/stream-limit-migrate.service");
    assert_eq!(
        unit_values(&migrate, "ExecStart"),
        [format!("{INSTALLED} migrate")]
    );
    assert_eq!(unit_values(&migrate, "EnvironmentFile"), env_path);
    assert_eq!(unit_values(&migrate, "Type"), ["oneshot"]);

    // The README's instances are nginx's upstream servers.
    let readme = read("ecosystem/README.md");
    for port in nginx::published_instance_ports(&read(nginx::UPSTREAMS)) {
        assert!(
            readme.contains(&format!("stream-limit@{port}")),
            "README starts stream-limit@{port}"
        );
    }

    verify_with_systemd_analyze();
}

/// `systemd-analyze verify` where systemd is installed (not in every
/// container); the checks above run everywhere.
fn verify_with_systemd_analyze() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: units checked by this test's parser only");
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().expect("temp dir");
    // verify wants ExecStart to exist: point it at the freshly built binary.
    let binary = service::binary().display().to_string();
    for name in [
        "stream-limit@.service",
        "stream-limit-migrate.service",
        "stream-limit.target",
    ] {
        let text = read(&format!("ecosystem/systemd/{name}")).replace(INSTALLED, &binary);
        std::fs::write(dir.path().join(name), text).expect("write unit");
    }
    std::fs::copy(
        dir.path().join("stream-limit@.service"),
        dir.path().join("stream-limit@8081.service"),
    )
    .expect("instance unit");
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("stream-limit@8081.service"))
        .arg(dir.path().join("stream-limit-migrate.service"))
        .arg(dir.path().join("stream-limit.target"))
        .output()
        .expect("run systemd-analyze verify");
    let complaints = String::from_utf8_lossy(&output.stderr);
    let ours: Vec<&str> = complaints
        .lines()
        .filter(|l| l.contains(&*dir.path().to_string_lossy()) || l.contains("stream-limit"))
        .collect();
    assert!(
        output.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{complaints}"
    );
}

// ---------------------------------------------------------------------------
// Docker

/// Dockerfile instructions `(INSTRUCTION, arguments)`, continuation lines joined.
fn dockerfile(relative: &str) -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut pending = String::new();
    for line in read(relative).lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        if let Some(partial) = trimmed.strip_suffix('\\') {
            pending.push_str(partial);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let (instruction, args) = pending.split_once(' ').unwrap_or((&pending, ""));
        instructions.push((instruction.to_ascii_uppercase(), args.trim().to_owned()));
        pending.clear();
    }
    instructions
}

#[test]
fn the_image_builds_the_binary_runs_it_as_non_root_and_checks_liveness() {
    let steps = dockerfile("ecosystem/docker/Dockerfile");
    let stages: Vec<usize> = (0..steps.len()).filter(|&i| steps[i].0 == "FROM").collect();
    assert!(stages.len() >= 2, "multi-stage");
    assert!(
        steps[stages[0]].1.starts_with("rust:"),
        "built in a rust image"
    );
    let runtime = &steps[*stages.last().expect("a stage")..];
    let base = &runtime[0].1;
    assert!(
        base.contains("-slim") || base.contains("distroless"),
        "small runtime: {base}"
    );

    let build = steps
        .iter()
        .find(|(i, a)| i == "RUN" && a.contains("cargo build"))
        .expect("cargo build");
    assert!(
        build.1.contains("--release") && build.1.contains(&format!("-p {BINARY}")),
        "{}",
        build.1
    );
    let entrypoint = runtime
        .iter()
        .find(|(i, _)| i == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    assert_eq!(entrypoint.1, format!(r#"["{INSTALLED}"]"#));
    assert!(runtime
        .iter()
        .any(|(i, a)| i == "COPY" && a.starts_with("--from=") && a.ends_with(INSTALLED)));

    let user = runtime
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .expect("USER")
        .1
        .clone();
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "non-root: USER {user}"
    );
    assert_eq!(
        runtime
            .iter()
            .find(|(i, _)| i == "STOPSIGNAL")
            .map(|(_, a)| a.as_str()),
        Some("SIGTERM")
    );

    // ENV is the service's configuration; EXPOSE is its port.
    let mut env = BTreeMap::new();
    for (_, args) in runtime.iter().filter(|(i, _)| i == "ENV") {
        for pair in args.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV KEY=VALUE");
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    let loaded = settings("Dockerfile ENV", &env);
    let exposed = runtime.iter().find(|(i, _)| i == "EXPOSE").expect("EXPOSE");
    assert_eq!(exposed.1, loaded.server.port.to_string());

    // The healthcheck uses a tool the runtime stage installs, on liveness.
    let check = runtime
        .iter()
        .find(|(i, _)| i == "HEALTHCHECK")
        .expect("HEALTHCHECK");
    assert!(
        check.1.contains("curl") && check.1.contains(&format!("${{PORT}}{LIVENESS}\"")),
        "{}",
        check.1
    );
    assert!(runtime
        .iter()
        .any(|(i, a)| i == "RUN" && a.contains("apt-get install") && a.contains("curl")));

    let ignore = read("ecosystem/docker/Dockerfile.dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target"),
        "target/ stays out of the context"
    );
}

#[test]
fn compose_migrates_once_then_runs_three_replicas_behind_nginx() {
    let docs = yaml("ecosystem/docker/docker-compose.yml");
    let services = &docs[0]["services"];
    for name in ["postgres", "migrate", "app", "nginx"] {
        assert!(!services[name].is_badvalue(), "service {name}");
    }
    let (migrate, app, proxy) = (&services["migrate"], &services["app"], &services["nginx"]);

    // The build context is the repository root and names this Dockerfile.
    let compose_dir = workspace_root().join("ecosystem/docker");
    let context = compose_dir.join(text(&migrate["build"]["context"]));
    let dockerfile = context.join(text(&migrate["build"]["dockerfile"]));
    assert!(
        context.join("Cargo.toml").is_file(),
        "context is the workspace root"
    );
    assert!(dockerfile.ends_with("ecosystem/docker/Dockerfile") && dockerfile.is_file());
    assert_eq!(strings(&migrate["command"]), ["migrate"]);
    assert_eq!(text(&app["image"]), text(&migrate["image"]), "one image");
    assert_eq!(
        text(&app["depends_on"]["migrate"]["condition"]),
        "service_completed_successfully"
    );
    assert_eq!(app["deploy"]["replicas"].as_i64(), Some(3));

    let migrate_env = map(&migrate["environment"]);
    fleet_settings("compose migrate", &migrate_env);
    let env = map(&app["environment"]);
    let loaded = fleet_settings("compose app", &env);
    assert_eq!(env.get("DATABASE_URL"), migrate_env.get("DATABASE_URL"));
    let db_host = env["DATABASE_URL"]
        .split('@')
        .nth(1)
        .and_then(|h| h.split(':').next());
    assert_eq!(
        db_host,
        Some("postgres"),
        "the database is the postgres service"
    );

    let port = loaded.server.port;
    assert_eq!(strings(&app["expose"]), [port.to_string()]);
    let health = strings(&app["healthcheck"]["test"]).join(" ");
    assert!(
        health.contains(&format!("127.0.0.1:{port}{LIVENESS} ")),
        "{health}"
    );
    let grace = text(&app["stop_grace_period"]);
    let grace: u64 = grace
        .trim_end_matches('s')
        .parse()
        .expect("stop_grace_period in s");
    assert!(grace > loaded.server.shutdown_timeout_secs);

    // nginx: the published site plus the compose upstreams, on the site's port.
    let mounted: Vec<String> = strings(&proxy["volumes"]);
    for file in [nginx::SITE, nginx::UPSTREAMS_COMPOSE] {
        let name = Path::new(file)
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name");
        let volume = mounted
            .iter()
            .find(|v| v.starts_with(&format!("../nginx/{name}:")))
            .unwrap_or_else(|| panic!("nginx mounts {file}: {mounted:?}"));
        assert!(volume.contains(":/etc/nginx/conf.d/"), "{volume}");
        assert!(compose_dir
            .join(volume.split(':').next().expect("source"))
            .is_file());
    }
    assert!(read(nginx::SITE).contains(nginx::PUBLISHED_LISTEN));
    assert_eq!(strings(&proxy["ports"]), ["8080:8080"]);
    let upstreams = read(nginx::UPSTREAMS_COMPOSE);
    assert!(
        upstreams.contains(&format!("server app:{port} ")),
        "upstreams reach app:{port}"
    );
}

// ---------------------------------------------------------------------------
// Kubernetes

/// Every manifest of ecosystem/kubernetes, by kind.
fn manifests() -> BTreeMap<String, Yaml> {
    let kustomization = yaml("ecosystem/kubernetes/kustomization.yaml");
    let resources = strings(&kustomization[0]["resources"]);
    let on_disk: BTreeSet<String> = ecosystem_files()
        .into_iter()
        .filter_map(|f| f.strip_prefix("ecosystem/kubernetes/").map(str::to_owned))
        .filter(|f| f != "kustomization.yaml")
        .collect();
    assert_eq!(
        resources.iter().cloned().collect::<BTreeSet<_>>(),
        on_disk,
        "kustomization.yaml lists every manifest"
    );
    let mut by_kind = BTreeMap::new();
    for file in resources {
        for doc in yaml(&format!("ecosystem/kubernetes/{file}")) {
            let kind = text(&doc["kind"]);
            assert!(by_kind.insert(kind.clone(), doc).is_none(), "one {kind}");
        }
    }
    by_kind
}

/// `selector` is a subset of `labels`.
fn selects(selector: &Yaml, labels: &Yaml) -> bool {
    let (selector, labels) = (map(selector), map(labels));
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The container's environment: `env` values, secrets resolved, plus `envFrom` config maps.
fn container_env(container: &Yaml, k8s: &BTreeMap<String, Yaml>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for source in container["envFrom"].as_vec().into_iter().flatten() {
        let name = text(&source["configMapRef"]["name"]);
        assert_eq!(text(&k8s["ConfigMap"]["metadata"]["name"]), name);
        env.extend(map(&k8s["ConfigMap"]["data"]));
    }
    for var in container["env"].as_vec().into_iter().flatten() {
        let name = text(&var["name"]);
        let value = if let Some(value) = scalar(&var["value"]) {
            value
        } else {
            let secret = &var["valueFrom"]["secretKeyRef"];
            assert_eq!(
                text(&secret["name"]),
                text(&k8s["Secret"]["metadata"]["name"])
            );
            map(&k8s["Secret"]["stringData"])
                .remove(&text(&secret["key"]))
                .unwrap_or_else(|| panic!("the Secret has no {}", text(&secret["key"])))
        };
        env.insert(name, value);
    }
    env
}

#[test]
fn kubernetes_probes_ports_selectors_and_secrets_fit_together() {
    let k8s = manifests();
    let deployment = &k8s["Deployment"];
    let name = text(&deployment["metadata"]["name"]);
    let pod = &deployment["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert!(selects(
        &deployment["spec"]["selector"]["matchLabels"],
        labels
    ));
    let container = &pod["spec"]["containers"][0];
    assert!(text(&container["image"]).contains(BINARY));
    assert_eq!(
        pod["spec"]["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );

    let loaded = fleet_settings("Deployment", &container_env(container, &k8s));
    let port = &container["ports"][0];
    assert_eq!(
        port["containerPort"].as_i64(),
        Some(i64::from(loaded.server.port))
    );
    let port_name = text(&port["name"]);
    for (probe, path) in [
        ("readinessProbe", READINESS),
        ("livenessProbe", LIVENESS),
        ("startupProbe", LIVENESS),
    ] {
        assert_eq!(text(&container[probe]["httpGet"]["path"]), path, "{probe}");
        assert_eq!(
            text(&container[probe]["httpGet"]["port"]),
            port_name,
            "{probe}"
        );
    }
    let pause: u64 = strings(&container["lifecycle"]["preStop"]["exec"]["command"])
        .last()
        .and_then(|s| s.parse().ok())
        .expect("preStop sleep seconds");
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("grace");
    assert!(
        u64::try_from(grace).unwrap_or(0) > pause + loaded.server.shutdown_timeout_secs,
        "the pod must outlive the preStop pause plus the drain"
    );

    let service = &k8s["Service"];
    assert!(selects(&service["spec"]["selector"], labels));
    assert_eq!(text(&service["spec"]["ports"][0]["targetPort"]), port_name);

    let hpa = &k8s["HorizontalPodAutoscaler"];
    assert_eq!(text(&hpa["spec"]["scaleTargetRef"]["kind"]), "Deployment");
    assert_eq!(text(&hpa["spec"]["scaleTargetRef"]["name"]), name);
    assert!(hpa["spec"]["minReplicas"].as_i64().unwrap_or(0) >= 2);

    assert!(selects(
        &k8s["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        labels
    ));

    let job = &k8s["Job"]["spec"]["template"]["spec"];
    let migrate = &job["containers"][0];
    assert_eq!(strings(&migrate["args"]), ["migrate"]);
    assert_eq!(
        text(&migrate["image"]),
        text(&container["image"]),
        "one image"
    );
    fleet_settings("migration Job", &container_env(migrate, &k8s));
}
