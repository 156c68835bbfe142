//! The fleet, end to end: Postgres, `stream-limit-http migrate`, three real
//! instances and a real nginx running `ecosystem/nginx` (ports rewritten), all
//! on loopback. Clients only ever talk to nginx.
//!
//! [`Fleet::start`] brings it up; every process is stopped by a drop guard.
//! [`answer`] sends one request through it and keeps the whole answer.

use std::process::Command;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{json, Value};

use crate::audit::peak_concurrency;
use crate::nginx::{Nginx, Ports};
use crate::postgres::fresh_database;
use crate::service::{self, Service};
use crate::world::connect;

/// The default `limits.default_max_streams`.
pub const LIMIT: usize = 3;
/// Instances behind nginx (as many as `ecosystem/nginx/upstreams.conf` names).
pub const INSTANCES: usize = 3;
/// Longest any single HTTP call may take (nginx gives up after 10 s itself).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// `server.workers` of each instance (see [`Fleet::start`]).
/// Several, so that a graceful stop drains workers that share one pool.
const WORKERS_PER_INSTANCE: &str = "3";

/// Postgres, three instances and nginx; everything stops when dropped.
pub struct Fleet {
    /// The instances, in the order nginx's upstreams name them.
    pub instances: Vec<Service>,
    /// The load balancer in front of them.
    pub nginx: Nginx,
    /// The client every test call goes through.
    pub http: Client,
    /// A connection of its own to the fleet's database, for audits.
    pub audit: tokio_postgres::Client,
    /// Held while this fleet lives: see [`Fleet::start`].
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

impl Fleet {
    /// Migrates a fresh database (twice: the second has nothing to do), then
    /// starts [`INSTANCES`] instances on it and nginx in front of them.
    ///
    /// Fleets of one test process run one at a time: each is three instances,
    /// nginx and a load, and several at once on two cores would blur the
    /// timing windows the failure tests judge by.
    pub async fn start() -> Self {
        let db = fresh_database().await;
        Self::start_on(db.url(), &[]).await
    }

    /// [`Fleet::start`] on the database at `url` (one whose server a test
    /// may stop), each instance also given `extra_env`.
    pub async fn start_on(url: &str, extra_env: &[(&str, &str)]) -> Self {
        static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let one_at_a_time = ONE_AT_A_TIME.lock().await;
        let applied = migrate(url);
        // On Citus the schema comes migrated, to be distributed (see `fresh_database`).
        assert!(
            applied >= 1 || crate::postgres::citus(),
            "the first migrate applies the schema"
        );
        assert_eq!(migrate(url), 0, "a second migrate has nothing to do");
        // Several workers per instance: a graceful stop drains workers that
        // share one connection pool (whose connections must outlive each of them).
        // Every ended stream stays in history, so the audit sees each
        // viewer's whole life (`assert_limit_held`).
        let mut env = vec![
            ("DATABASE_URL", url),
            ("STREAM_LIMIT__SERVER__WORKERS", WORKERS_PER_INSTANCE),
            ("STREAM_LIMIT__STORE__HISTORY_PER_VIEWER", "1000000"),
        ];
        env.extend_from_slice(extra_env);
        let mut instances = Vec::new();
        for _ in 0..INSTANCES {
            instances.push(Service::spawn(&env).await);
        }
        let ports = Ports::in_front_of(instances.iter().map(Service::port).collect());
        let nginx = Nginx::start(&ports).await;
        let http = Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .expect("build the HTTP client");
        let audit = connect(url).await;
        Self {
            _one_at_a_time: one_at_a_time,
            instances,
            nginx,
            http,
            audit,
        }
    }

    /// A URL on the load balancer.
    pub fn lb(&self, path: &str) -> String {
        self.nginx.url(path)
    }

    /// Asserts that no viewer in `viewers` ever held more than [`LIMIT`]
    /// leases at once, from the database's own records.
    pub async fn assert_limit_held(&self, viewers: impl IntoIterator<Item = String>) {
        for viewer in viewers {
            let peak = peak_concurrency(&self.audit, &viewer).await;
            assert!(peak <= LIMIT, "{viewer} held {peak} leases at once");
        }
    }
}

/// Runs `stream-limit-http migrate` against `url`, as an operator does before
/// starting a fleet; returns how many migrations it applied (it prints
/// "migrations up to date (N applied now)").
///
/// # Panics
///
/// When the command fails or prints something else.
pub fn migrate(url: &str) -> usize {
    let output = Command::new(service::binary())
        .arg("migrate")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("DATABASE_URL", url)
        .output()
        .expect("run stream-limit-http migrate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stream-limit-http migrate failed ({}):\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .split('(')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected migrate output: {stdout:?}"))
}

/// An answer: status, headers, body.
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    ///
    /// # Panics
    ///
    /// When the body is not JSON (the message shows status and body).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// Sends and reads the whole answer; a transport error is `Err` (debug text).
pub(crate) async fn send(request: RequestBuilder) -> Result<Answer, String> {
    let response = request.send().await.map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(|e| format!("{e:?}"))?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Sends and expects an answer (for calls made while no instance is failing).
pub async fn answer(request: RequestBuilder) -> Answer {
    send(request).await.expect("the load balancer answers")
}

/// The contract's seed routes walked through a load balancer (`lb` makes
/// its URLs), with the exact bodies promised to existing clients, and each
/// of `instances` (base URLs) listing what was started through it: one
/// store. Leaves user 42 with no active stream.
pub async fn walk_seed_routes(http: &Client, lb: &dyn Fn(&str) -> String, instances: &[String]) {
    let get = |path: &str| http.get(lb(path));
    let exact = |answer: &Answer, status: u16, body: &str| {
        assert_eq!(
            (answer.status.as_u16(), answer.body.as_str()),
            (status, body)
        );
    };
    exact(&answer(get("/health")).await, 200, r#"{"status":"UP"}"#);
    exact(
        &answer(get("/health/ready")).await,
        200,
        r#"{"status":"UP"}"#,
    );
    let index = answer(get("/api")).await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(index.json().get("GET /api").is_some(), "{}", index.body);

    let invalid = r#"{"msg":"user_id is invalid , needs to be a number"}"#;
    exact(&answer(get("/api/startstream/abc")).await, 400, invalid);
    exact(&answer(get("/api/endstream/abc")).await, 400, invalid);
    exact(
        &answer(get("/api/endstream/42")).await,
        400,
        r#"{"msg":"user_id not present in the database"}"#,
    );
    for count in 1..=LIMIT {
        let started = answer(get("/api/startstream/42")).await;
        assert_eq!(
            seed_start(&started),
            json!({"streamStatus": {"isNewStreamAllowed": true, "streamCount": count}})
        );
        let status = &started.json()["streamStatus"];
        assert!(status["streamId"].is_string() && status["expiresAt"].is_string());
    }
    let refused = answer(get("/api/startstream/42")).await;
    assert_eq!(
        seed_start(&refused),
        json!({"streamStatus": {"isNewStreamAllowed": false, "streamCount": LIMIT}}),
        "old clients read the flag of a 200"
    );
    for instance in instances {
        let listed = answer(http.get(format!("{instance}/api/users/42/streams"))).await;
        assert_eq!(
            listed.json()["streamCount"],
            LIMIT,
            "{instance}: {}",
            listed.body
        );
    }
    for left in (0..LIMIT).rev() {
        exact(
            &answer(get("/api/endstream/42")).await,
            200,
            &format!(r#"{{"streamStatus":{{"msg":"stream closed","streamCount":{left}}}}}"#),
        );
    }
    exact(
        &answer(get("/api/endstream/42")).await,
        400,
        r#"{"msg":"no active streams to close for user"}"#,
    );
    exact(
        &answer(http.post(lb("/api/startstream/42"))).await,
        405,
        r#"{"msg":"Method not allowed"}"#,
    );
    exact(
        &answer(get("/no/such/route")).await,
        404,
        r#"{"msg":"Route not found"}"#,
    );
}

/// A seed start's answer as the contract pins it: status 200 and the two
/// keys of `streamStatus` (fields beside them, such as `streamId`, may be added).
pub fn seed_start(answer: &Answer) -> Value {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let body = answer.json();
    let keys: Vec<&String> = body.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["streamStatus"], "{}", answer.body);
    let status = &body["streamStatus"];
    json!({"streamStatus": {
        "isNewStreamAllowed": status["isNewStreamAllowed"],
        "streamCount": status["streamCount"],
    }})
}
