//! Hostile input against the real `stream-limit-http` binary, on both stores.
//!
//! A property-based generator (proptest) builds requests no friendly client
//! would send, and every answer is held to the contract's "Errors and bad
//! input" section:
//!
//! - **Well-formed HTTP** (sent with reqwest, so the request itself is valid
//!   HTTP/1.1): any method, paths mixing the real route shapes with hostile
//!   segments (overflowing and negative numbers, unicode, `%00`, `%FF`, `..`,
//!   very long segments, SQL fragments), query strings (`streamId`,
//!   `deviceId`, `contentId` holding any unicode, NUL and other control
//!   characters included, invalid UUIDs, repeated keys), headers
//!   (`Session-Id`, `Idempotency-Key`, `Content-Type`, others) and bodies
//!   (valid JSON, JSON with `\u0000`, wrong types, deep nesting, truncation,
//!   bytes that are not UTF-8, sizes up to a little over the body limit).
//!   Every answer must be below 500; a body, wherever there is one, must be
//!   JSON under an `application/json` content type (`GET /metrics` alone
//!   serves Prometheus text); an error (>= 400) must carry a `msg` string;
//!   no body may contain internal text (`postgres`, `SQL`, `panicked`, ...);
//!   and a `Session-Id` header may be echoed only when it is a valid one.
//! - **Raw bytes** over TCP: garbage, request lines with spaces or control
//!   bytes, bad versions, truncated heads, broken chunked bodies, heads over
//!   actix's limits. actix-http answers some of these itself, before the app
//!   runs, with an empty-bodied 400 or 431 (a known gap), so here the checks
//!   are: no 5xx status line, and `GET /health` answers 200 right after.
//!
//! After every case the service's log must hold no new `panicked` line; at the
//! end of a run the whole log is checked again and `/health` must be 200.
//!
//! Each store runs two instances, one per `limits.on_limit` policy (`reject`
//! and `evict_oldest`, each on its own database), and every case picks one:
//! refusals then list active streams with hostile labels, and evictions free
//! slots so that heartbeats and ends of named streams answer 200 and 410.
//!
//! Every run prints its seed, its case count, how many requests it sent and
//! the statuses it saw. Replay one with
//! `STREAM_LIMIT_HOSTILE_SEED=<seed> cargo test -p stream-limit-tests --test hostile_input`;
//! `STREAM_LIMIT_HOSTILE_CASES` sets the number of cases per store (default
//! `DEFAULT_CASES`). A failure is shrunk (for at most `MAX_SHRINK_MS`) and
//! the panic names the seed, the minimal input and, because the instances
//! keep state between cases, the first failing case as it was generated.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::Union;
use proptest::test_runner::TestCaseError;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use stream_limit_tests::postgres::fresh_database;
use stream_limit_tests::replay::Replay;
use stream_limit_tests::service::Service;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use uuid::Uuid;

/// Cases per store unless `STREAM_LIMIT_HOSTILE_CASES` says otherwise. One
/// case is one request (a raw one is followed by a `/health` check), so the
/// two stores together send well over 3,000 requests.
const DEFAULT_CASES: u32 = 2_000;
/// The body limit the service is started with (`server.max_body_bytes`).
const MAX_BODY_BYTES: usize = 16_384;
/// Longest a shrinking may run, in milliseconds: it replays against the service.
const MAX_SHRINK_MS: u32 = 60_000;
/// Deadline of one well-formed request, answer body included.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of every step of a raw exchange (connect, write, read).
const RAW_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes read back from one raw exchange.
const RAW_READ_LIMIT: usize = 256 * 1024;
/// Text that must never reach a response body (compared case-insensitively).
/// Generated input never contains these words, so an echo cannot trip them.
const INTERNAL_TEXT: &[&str] = &[
    "postgres",
    "sql",
    "sqlstate",
    "panicked",
    "tokio",
    "deadpool",
    "violates",
    "stack backtrace",
];
/// Stream ids shared by all cases, so starts, heartbeats and ends meet.
const STREAM_POOL: u128 = 0x5eed_0000_0000_4000_8000_0000_0000_0000;
/// Session ids shared by all cases, so some sessions reach their limit.
const SESSION_POOL: &[&str] = &["s-1", "s-2", "s-3", "gateway:viewer/42"];

#[test]
fn hostile_input_never_breaks_the_service_on_the_memory_store() {
    let runtime = runtime();
    let reject = spawn(&runtime, Policy::Reject, None);
    let evict = spawn(&runtime, Policy::EvictOldest, None);
    run_suite("memory", &runtime, [&reject, &evict]);
}

#[test]
fn hostile_input_never_breaks_the_service_on_the_postgres_store() {
    let runtime = runtime();
    let (reject_db, evict_db) =
        runtime.block_on(async { (fresh_database().await, fresh_database().await) });
    let reject = spawn(&runtime, Policy::Reject, Some(reject_db.url()));
    let evict = spawn(&runtime, Policy::EvictOldest, Some(evict_db.url()));
    run_suite("postgres", &runtime, [&reject, &evict]);
    drop((reject, evict));
    runtime.block_on(async {
        reject_db.drop_database().await;
        evict_db.drop_database().await;
    });
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// `limits.on_limit` of an instance. Each store runs one instance of each, so
/// that refusals (which list the active streams, hostile labels included) and
/// evictions (after which heartbeats of named streams succeed or answer 410)
/// both happen within a few thousand cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Reject,
    EvictOldest,
}

impl Policy {
    fn setting(self) -> &'static str {
        match self {
            Self::Reject => "reject",
            Self::EvictOldest => "evict_oldest",
        }
    }
}

/// The real binary with the body limit the generator aims at and `policy`,
/// on the in-memory store or on the Postgres database `database_url`.
fn spawn(runtime: &Runtime, policy: Policy, database_url: Option<&str>) -> (Policy, Service) {
    let limit = MAX_BODY_BYTES.to_string();
    let mut env = vec![
        ("STREAM_LIMIT__SERVER__MAX_BODY_BYTES", limit.as_str()),
        ("STREAM_LIMIT__LIMITS__ON_LIMIT", policy.setting()),
    ];
    if let Some(url) = database_url {
        env.push(("DATABASE_URL", url));
    }
    (policy, runtime.block_on(Service::spawn(&env)))
}

/// Runs every case against one of `services`, then checks their logs and
/// their health.
fn run_suite(store: &str, runtime: &Runtime, services: [&(Policy, Service); 2]) {
    let Replay { cases, seed } = Replay::from_env("STREAM_LIMIT_HOSTILE", DEFAULT_CASES);
    let replay = format!("STREAM_LIMIT_HOSTILE_SEED={seed} STREAM_LIMIT_HOSTILE_CASES={cases}");
    println!("hostile input ({store}): seed {seed}, {cases} cases (replay: {replay})");

    let mut runner = Replay { cases, seed }.runner(MAX_SHRINK_MS);
    let target = Target {
        instances: services.map(|(policy, service)| Instance {
            policy: *policy,
            service,
            log_seen: AtomicUsize::new(0),
        }),
        client: Client::builder()
            // A fresh connection per request: every case stands alone, and a
            // connection the server closed is never reused by mistake.
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client"),
        requests: AtomicU64::new(0),
        statuses: Mutex::new(BTreeMap::new()),
        first_failure: Mutex::new(None),
    };
    let started = Instant::now();
    let result = runner.run(&case(), |case| runtime.block_on(target.check(&case)));
    let requests = target.requests.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    println!("hostile input ({store}): seed {seed}, {requests} requests in {elapsed:.1} s");
    println!(
        "hostile input ({store}): answers by status (raw ones: every status line) {:?}",
        target.statuses.lock().expect("no panic while counting")
    );

    let mut problems = Vec::new();
    if let Err(failure) = result {
        problems.push(failure.to_string());
    }
    if let Some(first) = target
        .first_failure
        .lock()
        .expect("no panic while recording")
        .take()
    {
        problems.push(format!("first failing case, before shrinking: {first}"));
    }
    for instance in &target.instances {
        let log = instance.service.log_text();
        if let Some(line) = log.lines().find(|line| line.contains("panicked")) {
            problems.push(format!(
                "the {:?} instance's log holds a panic: {line}",
                instance.policy
            ));
        }
        if let Err(problem) = runtime.block_on(target.health(instance)) {
            problems.push(format!(
                "after the run, on {:?}: {problem}",
                instance.policy
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "hostile input ({store}), seed {seed} (replay with {replay}), {requests} requests sent:\n{}",
        problems.join("\n")
    );
}

/// One running instance and how much of its log was already searched.
struct Instance<'a> {
    policy: Policy,
    service: &'a Service,
    /// Bytes of the log (whole lines) already searched for panics.
    log_seen: AtomicUsize,
}

/// The instances under test and what the run has counted so far.
struct Target<'a> {
    instances: [Instance<'a>; 2],
    client: Client,
    /// Requests sent, raw ones and their `/health` checks included.
    requests: AtomicU64,
    /// How often each status was answered (0: a raw answer without one).
    statuses: Mutex<BTreeMap<u16, u64>>,
    /// The first case that failed, as generated: the instances are stateful,
    /// so the input shrinking ends at may need the state this one left.
    first_failure: Mutex<Option<String>>,
}

impl Target<'_> {
    async fn check(&self, case: &Case) -> Result<(), TestCaseError> {
        let instance = self
            .instances
            .iter()
            .find(|instance| instance.policy == case.policy)
            .expect("an instance runs every policy");
        let outcome = match &case.probe {
            Probe::Http(http) => self.send_http(instance, http).await,
            Probe::Raw(raw) => self.send_raw(instance, raw).await,
        };
        // A panic is a failure of this case even when the answer looked fine.
        let log = instance.service.log_text();
        let seen = instance.log_seen.load(Ordering::Relaxed).min(log.len());
        let fresh = log.get(seen..).unwrap_or_default();
        let complete = fresh.rfind('\n').map_or(0, |at| at + 1);
        instance.log_seen.store(seen + complete, Ordering::Relaxed);
        let outcome = match fresh[..complete].lines().find(|l| l.contains("panicked")) {
            Some(line) => Err(fail(format!(
                "the service panicked: {line} (answer: {outcome:?})"
            ))),
            None => outcome,
        };
        if let Err(error) = &outcome {
            let mut first = self.first_failure.lock().expect("no panic while recording");
            first.get_or_insert_with(|| format!("{case:?}: {error}"));
        }
        outcome
    }

    async fn send_http(
        &self,
        instance: &Instance<'_>,
        probe: &HttpProbe,
    ) -> Result<(), TestCaseError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .client
            .request(probe.method.clone(), instance.service.url(&probe.target))
            .timeout(HTTP_TIMEOUT);
        for (name, value) in &probe.headers {
            request = request.header(name.as_str(), value.as_slice());
        }
        if let Some(body) = &probe.body {
            request = request.body(body.0.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| fail(format!("no answer: {}", error_chain(&e))))?;
        let status = response.status();
        self.count(status.as_u16());
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let content_type = header(CONTENT_TYPE.as_str());
        let content_length = header(CONTENT_LENGTH.as_str());
        let echoed = header("session-id");
        let body = response.bytes().await.map_err(|e| {
            fail(format!(
                "{status}: the body did not arrive: {}",
                error_chain(&e)
            ))
        })?;
        let answer = || {
            format!(
                "{status}, content-type {content_type:?}, body {}",
                Shown(&body)
            )
        };

        if status.is_server_error() {
            return Err(fail(format!("a 5xx answer: {}", answer())));
        }
        if let Some(echoed) = &echoed {
            let sent = probe
                .header("session-id")
                .map(|v| String::from_utf8_lossy(v.trim_ascii()).into_owned());
            if sent.as_deref() != Some(echoed.as_str()) || !is_valid_session_id(echoed) {
                return Err(fail(format!(
                    "Session-Id {echoed:?} echoed, but only a valid Session-Id sent with \
                     the request may be (sent {sent:?}): {}",
                    answer()
                )));
            }
        }
        let is_json_type = content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json"));
        if probe.method == Method::HEAD {
            // No body comes back; the headers still describe the GET's body.
            let announces_body = content_length.as_deref().is_some_and(|l| l != "0");
            if announces_body && !is_json_type && !probe.is_metrics(status) {
                return Err(fail(format!("a non-JSON content type: {}", answer())));
            }
            return Ok(());
        }
        if body.is_empty() {
            if status.as_u16() >= 400 {
                return Err(fail(format!("an error without a JSON body: {}", answer())));
            }
            return Ok(());
        }
        let lowered = String::from_utf8_lossy(&body).to_lowercase();
        if let Some(word) = INTERNAL_TEXT.iter().find(|w| lowered.contains(*w)) {
            return Err(fail(format!(
                "internal text {word:?} in the body: {}",
                answer()
            )));
        }
        if probe.is_metrics(status) {
            return Ok(());
        }
        if !is_json_type {
            return Err(fail(format!("a non-JSON content type: {}", answer())));
        }
        let parsed: Value = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("a body that is not JSON ({e}): {}", answer())))?;
        if status.as_u16() >= 400 && !parsed.get("msg").is_some_and(Value::is_string) {
            return Err(fail(format!("an error without a msg string: {}", answer())));
        }
        Ok(())
    }

    async fn send_raw(
        &self,
        instance: &Instance<'_>,
        probe: &RawProbe,
    ) -> Result<(), TestCaseError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let address = ("127.0.0.1", instance.service.port());
        let mut stream = tokio::time::timeout(RAW_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| fail("connect timed out".into()))?
            .map_err(|e| fail(format!("connect failed: {e}")))?;
        // The server may answer and close before reading everything; a failed
        // write is the server's right, not a finding.
        let _ = tokio::time::timeout(RAW_TIMEOUT, stream.write_all(&probe.0)).await;
        // Half-close: the server sees the end of the request at once instead
        // of waiting for bytes that never come.
        let _ = tokio::time::timeout(RAW_TIMEOUT, stream.shutdown()).await;
        let mut answer = Vec::new();
        let deadline = tokio::time::Instant::now() + RAW_TIMEOUT;
        let mut chunk = [0u8; 16 * 1024];
        while answer.len() < RAW_READ_LIMIT {
            match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            }
        }
        let statuses = status_codes(&answer);
        if statuses.is_empty() {
            self.count(0);
        }
        statuses.iter().for_each(|s| self.count(*s));
        if let Some(status) = statuses.into_iter().find(|s| *s >= 500) {
            return Err(fail(format!(
                "a {status} status line in the raw answer {}",
                Shown(&answer)
            )));
        }
        self.health(instance)
            .await
            .map_err(|problem| fail(format!("right after the raw request: {problem}")))
    }

    fn count(&self, status: u16) {
        *self
            .statuses
            .lock()
            .expect("no panic while counting")
            .entry(status)
            .or_default() += 1;
    }

    /// `GET /health` answers `200 {"status":"UP"}`.
    async fn health(&self, instance: &Instance<'_>) -> Result<(), String> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .client
            .get(instance.service.url("/health"))
            .timeout(HTTP_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("/health did not answer: {}", error_chain(&e)))?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        if status != StatusCode::OK || parsed != Some(json!({"status": "UP"})) {
            return Err(format!("/health answered {status} {}", Shown(&body)));
        }
        Ok(())
    }
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

/// An error and its sources, `a: b: c` (reqwest hides the cause otherwise).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(chain, ": {cause}");
        source = cause.source();
    }
    chain
}

/// The rule of `SessionId::parse`: 1 to 128 visible ASCII characters.
fn is_valid_session_id(text: &str) -> bool {
    !text.is_empty() && text.len() <= 128 && text.bytes().all(|b| b.is_ascii_graphic())
}

/// Every `HTTP/1.x NNN` status code in a raw answer (pipelined answers too).
fn status_codes(answer: &[u8]) -> Vec<u16> {
    answer
        .windows(12)
        .filter(|w| {
            w.starts_with(b"HTTP/1.") && w[8] == b' ' && w[9..12].iter().all(u8::is_ascii_digit)
        })
        .map(|w| {
            w[9..12]
                .iter()
                .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'))
        })
        .collect()
}

/// Bytes shown escaped, cut after a few hundred.
struct Shown<'a>(&'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 300;
        let cut = self.0.len().min(SHOWN);
        write!(f, "\"{}\"", self.0[..cut].escape_ascii())?;
        if self.0.len() > SHOWN {
            write!(f, "…({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// What a case sends.

/// One case: a probe and the instance (by its policy) it is sent to.
#[derive(Clone)]
struct Case {
    policy: Policy,
    probe: Probe,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "on the {:?} instance: {:?}", self.policy, self.probe)
    }
}

/// A well-formed request, or raw bytes on a fresh connection.
#[derive(Clone)]
enum Probe {
    Http(HttpProbe),
    Raw(RawProbe),
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(http) => fmt::Debug::fmt(http, f),
            Self::Raw(raw) => fmt::Debug::fmt(raw, f),
        }
    }
}

impl Probe {
    /// Everything the case sends, as text, raw and percent-decoded, lowercased.
    fn input_text(&self) -> String {
        let raw = match self {
            Self::Http(http) => {
                let mut text = format!("{} {}", http.method, http.target);
                for (name, value) in &http.headers {
                    let _ = write!(text, "\n{name}: {}", String::from_utf8_lossy(value));
                }
                if let Some(body) = &http.body {
                    text.push('\n');
                    text.push_str(&String::from_utf8_lossy(&body.0));
                }
                text
            }
            Self::Raw(raw) => String::from_utf8_lossy(&raw.0).into_owned(),
        };
        format!("{raw}\n{}", percent_decoded(&raw)).to_lowercase()
    }

    /// Whether the case mentions a word of [`INTERNAL_TEXT`], which an echo
    /// could then carry into a body: such cases are not generated.
    fn mentions_internal_text(&self) -> bool {
        let text = self.input_text();
        INTERNAL_TEXT.iter().any(|word| text.contains(word))
    }
}

/// A request reqwest can send: method, path with query, headers, body.
#[derive(Clone)]
struct HttpProbe {
    method: Method,
    /// Path and query, already in URL form (`%`-encoded where needed).
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Body>,
}

impl HttpProbe {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// `GET /metrics` answers Prometheus text, the one body that is not JSON.
    fn is_metrics(&self, status: StatusCode) -> bool {
        status == StatusCode::OK
            && (self.method == Method::GET || self.method == Method::HEAD)
            && self.target.split('?').next() == Some("/metrics")
    }
}

impl fmt::Debug for HttpProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, Shown(self.target.as_bytes()))?;
        for (name, value) in &self.headers {
            write!(f, " -H {name}:{}", Shown(value))?;
        }
        match &self.body {
            Some(body) => write!(f, " body {}", Shown(&body.0)),
            None => write!(f, " (no body)"),
        }
    }
}

/// A request body (shown cut in failure messages).
#[derive(Clone)]
struct Body(Vec<u8>);

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Shown(&self.0), f)
    }
}

/// Bytes written as they are to a fresh connection, then half-closed.
#[derive(Clone)]
struct RawProbe(Vec<u8>);

impl fmt::Debug for RawProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raw {}", Shown(&self.0))
    }
}

// ---------------------------------------------------------------------------
// Generators.

fn case() -> impl Strategy<Value = Case> {
    (select(&[Policy::Reject, Policy::EvictOldest][..]), probe())
        .prop_map(|(policy, probe)| Case { policy, probe })
}

fn probe() -> impl Strategy<Value = Probe> {
    prop_oneof![
        4 => http_probe().prop_map(Probe::Http),
        1 => raw_probe().prop_map(Probe::Raw),
    ]
    .prop_filter("input must not spell internal words", |p| {
        !p.mentions_internal_text()
    })
}

/// A weighted choice between boxed strategies of one type.
fn one_of<T: fmt::Debug + 'static>(arms: Vec<(u32, BoxedStrategy<T>)>) -> BoxedStrategy<T> {
    Union::new_weighted(arms).boxed()
}

fn fixed(texts: &'static [&'static str]) -> BoxedStrategy<String> {
    select(texts).prop_map(str::to_owned).boxed()
}

/// Every byte but the unreserved ones as `%XX`.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `%XX` decoded (lossy), for the internal-word filter.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn http_probe() -> BoxedStrategy<HttpProbe> {
    let method = one_of(vec![
        (6, Just(None).boxed()),
        (
            4,
            select(
                &[
                    "GET", "POST", "DELETE", "PUT", "HEAD", "PATCH", "OPTIONS", "PROPFIND",
                    "X-CUSTOM",
                ][..],
            )
            .prop_map(|m| Some(Method::from_bytes(m.as_bytes()).expect("a valid method token")))
            .boxed(),
        ),
    ]);
    (route(), path_suffix(), query(), method, headers(), body())
        .prop_map(
            |((path, natural), suffix, query, method, headers, body)| HttpProbe {
                method: method.unwrap_or(natural),
                target: format!("{path}{suffix}{query}"),
                headers,
                body,
            },
        )
        .boxed()
}

/// A path in URL form and the method its route answers.
fn route() -> BoxedStrategy<(String, Method)> {
    let at = |method: Method, path: &'static str| Just((path.to_owned(), method)).boxed();
    one_of(vec![
        (1, at(Method::GET, "/health")),
        (1, at(Method::GET, "/health/ready")),
        (1, at(Method::GET, "/metrics")),
        (1, at(Method::GET, "/api")),
        (1, at(Method::GET, "/")),
        (
            6,
            user_segment()
                .prop_map(|u| (format!("/api/startstream/{u}"), Method::GET))
                .boxed(),
        ),
        (
            4,
            user_segment()
                .prop_map(|u| (format!("/api/endstream/{u}"), Method::GET))
                .boxed(),
        ),
        (5, at(Method::GET, "/watch")),
        (2, at(Method::GET, "/watch/streams")),
        (
            3,
            stream_segment()
                .prop_map(|s| (format!("/watch/streams/{s}/heartbeat"), Method::POST))
                .boxed(),
        ),
        (
            2,
            stream_segment()
                .prop_map(|s| (format!("/watch/streams/{s}"), Method::DELETE))
                .boxed(),
        ),
        (
            6,
            user_segment()
                .prop_map(|u| (format!("/api/users/{u}/streams"), Method::POST))
                .boxed(),
        ),
        (
            2,
            user_segment()
                .prop_map(|u| (format!("/api/users/{u}/streams"), Method::GET))
                .boxed(),
        ),
        (
            3,
            (user_segment(), stream_segment())
                .prop_map(|(u, s)| {
                    (
                        format!("/api/users/{u}/streams/{s}/heartbeat"),
                        Method::POST,
                    )
                })
                .boxed(),
        ),
        (
            2,
            (user_segment(), stream_segment())
                .prop_map(|(u, s)| (format!("/api/users/{u}/streams/{s}"), Method::DELETE))
                .boxed(),
        ),
        (
            3,
            vec(segment(), 1..5)
                .prop_map(|segments| (format!("/{}", segments.join("/")), Method::GET))
                .boxed(),
        ),
        (
            1,
            (
                fixed(&["/api", "/watch", "/health", "/api/users"]),
                vec(segment(), 1..3),
            )
                .prop_map(|(root, s)| (format!("{root}/{}", s.join("/")), Method::GET))
                .boxed(),
        ),
    ])
}

fn path_suffix() -> BoxedStrategy<String> {
    one_of(vec![
        (12, Just(String::new()).boxed()),
        (
            1,
            fixed(&[
                "/", "//", "/x", "/..", "/.", "/%2e%2e", "/%00", ";x", "%20", "%FF",
            ]),
        ),
    ])
}

/// A `{user_id}`: mostly a small real one, so leases pile up.
fn user_segment() -> BoxedStrategy<String> {
    one_of(vec![
        (6, (0u64..3).prop_map(|n| n.to_string()).boxed()),
        (5, segment()),
    ])
}

/// A `{stream_id}`: often one of the shared pool, so ends and heartbeats hit.
fn stream_segment() -> BoxedStrategy<String> {
    one_of(vec![
        (5, pool_uuid()),
        (2, uuid_text()),
        (2, invalid_uuid()),
        (3, segment()),
    ])
}

fn pool_uuid() -> BoxedStrategy<String> {
    (0u128..3)
        .prop_map(|i| Uuid::from_u128(STREAM_POOL + i).to_string())
        .boxed()
}

/// A UUID in one of the text forms `Uuid::parse` knows.
fn uuid_text() -> BoxedStrategy<String> {
    (any::<u128>(), 0u8..5)
        .prop_map(|(n, form)| {
            let id = Uuid::from_u128(n);
            match form {
                0 => id.hyphenated().to_string(),
                1 => id.simple().to_string(),
                2 => id.braced().to_string(),
                3 => id.urn().to_string(),
                _ => id.hyphenated().to_string().to_uppercase(),
            }
        })
        .boxed()
}

fn invalid_uuid() -> BoxedStrategy<String> {
    one_of(vec![
        (
            2,
            fixed(&[
                "not-a-uuid",
                "00000000-0000-0000-0000-00000000000",
                "00000000-0000-0000-0000-0000000000000",
                "g0000000-0000-0000-0000-000000000000",
                "{00000000-0000-0000-0000-000000000000",
                "00000000-0000-0000-0000-000000000000}",
                "urn:uuid:",
                "00000000_0000_0000_0000_000000000000",
                "0",
                "-",
                "%00",
                "%FF%FE",
            ]),
        ),
        (
            1,
            (uuid_text(), any::<Index>(), hostile_char())
                .prop_map(|(id, at, c)| {
                    let mut chars: Vec<char> = id.chars().collect();
                    let at = at.index(chars.len());
                    chars[at] = c;
                    encode(&chars.into_iter().collect::<String>())
                })
                .boxed(),
        ),
    ])
}

/// A path segment in URL form.
fn segment() -> BoxedStrategy<String> {
    one_of(vec![
        (2, (0u64..100).prop_map(|n| n.to_string()).boxed()),
        (1, any::<u64>().prop_map(|n| n.to_string()).boxed()),
        (1, any::<i64>().prop_map(|n| n.to_string()).boxed()),
        (1, any::<u128>().prop_map(|n| n.to_string()).boxed()),
        (
            2,
            fixed(&[
                "9223372036854775807",
                "9223372036854775808",
                "18446744073709551615",
                "18446744073709551616",
                "-9223372036854775809",
                "340282366920938463463374607431768211456",
                "-0",
                "+1",
                "0x1f",
                "1e3",
                "1.5",
                "00000000000000000000042",
                "%31%32",
                "1%2F2",
                "%2e%2e",
                "..",
                ".",
                "%00",
                "%FF",
                "%FE%FF",
                "%C0%AF",
                "%",
                "%zz",
                "%%",
                "%2F",
                "%5C",
                "'%20OR%201=1--",
                "'%20OR%20'1'='1",
                "1;DROP%20TABLE%20leases;--",
                "1'%20UNION%20SELECT%20NULL--",
                "$(id)",
                "%7B%7B7*7%7D%7D",
                "%3Cscript%3E",
                "null",
                "undefined",
                "NaN",
                "Infinity",
                "true",
                "%EF%BC%91%EF%BC%92",
                "%D9%A1%D9%A2",
            ]),
        ),
        (2, uuid_text()),
        (1, invalid_uuid()),
        (3, text(0..30).prop_map(|t| encode(&t)).boxed()),
        (
            1,
            (
                1usize..4_000,
                fixed(&["a", "9", "%00", "%FF", "%C3%A9", "..%2F"]),
            )
                .prop_map(|(n, unit)| unit.repeat(n))
                .boxed(),
        ),
    ])
}

/// A query string, `?` included, or nothing.
fn query() -> BoxedStrategy<String> {
    let other_key = one_of(vec![
        (
            3,
            fixed(&[
                "streamid",
                "STREAMID",
                "stream_id",
                "streamId[]",
                "deviceId[0]",
                "sessionId",
                "",
            ]),
        ),
        (1, text(0..12)),
    ]);
    let pair = one_of(vec![
        (3, (fixed(&["streamId"]), stream_value()).boxed()),
        (5, (fixed(&["deviceId", "contentId"]), label()).boxed()),
        (1, (other_key, label()).boxed()),
    ])
    .prop_map(|(k, v)| format!("{}={}", encode(&k), encode(&v)));
    one_of(vec![
        (4, Just(String::new()).boxed()),
        (
            8,
            vec(pair, 1..5)
                .prop_map(|pairs| format!("?{}", pairs.join("&")))
                .boxed(),
        ),
        (
            1,
            fixed(&[
                "?",
                "?&&",
                "?=",
                "?==",
                "?streamId",
                "?streamId=",
                "?%",
                "?%zz=1",
                "?deviceId=%",
                "?deviceId=%FF%FE",
                "?contentId=%00",
                "?deviceId=a+b+%2B",
                "?;",
                "?streamId=1&streamId=2",
                "?deviceId=a&deviceId=b&deviceId=c",
            ]),
        ),
    ])
}

/// A `streamId` value (decoded text): mostly one of the pool, so that
/// replays, heartbeats and ends of named streams happen.
fn stream_value() -> BoxedStrategy<String> {
    one_of(vec![
        (5, pool_uuid()),
        (1, uuid_text()),
        (1, invalid_uuid().prop_map(|t| percent_decoded(&t)).boxed()),
        (1, label()),
    ])
}

/// A `deviceId` or `contentId` value (decoded text): half of them text a
/// client might send, the rest hostile.
fn label() -> BoxedStrategy<String> {
    one_of(vec![
        (
            6,
            proptest::string::string_regex("[a-zA-Z0-9 ._:/é😀-]{1,40}")
                .expect("a valid regex")
                .boxed(),
        ),
        (4, text(0..40)),
        (1, Just(String::new()).boxed()),
        (
            2,
            fixed(&[
                "\u{0}",
                "tv\u{0}1",
                "\u{0}\u{0}\u{0}",
                "\u{1}\u{2}\u{1b}[31m",
                "\r\n",
                "\t",
                "\u{7f}",
                "\u{feff}",
                "\u{202e}evil",
                "\u{fffd}",
                "\u{10ffff}",
                "😀🎬",
                "' OR 1=1--",
                "'; DROP TABLE leases; --",
                "\\",
                "\"",
                "{}",
            ]),
        ),
        (
            2,
            (120usize..300, hostile_char())
                .prop_map(|(n, c)| std::iter::repeat(c).take(n).collect::<String>())
                .boxed(),
        ),
        (2, pool_uuid()),
        (1, uuid_text()),
        (1, invalid_uuid()),
    ])
}

fn hostile_char() -> BoxedStrategy<char> {
    one_of(vec![
        (4, any::<char>().boxed()),
        (3, (0x20u8..0x7f).prop_map(char::from).boxed()),
        (2, (0u8..0x20).prop_map(char::from).boxed()),
        (
            2,
            select(
                &[
                    '\u{0}',
                    '\u{7f}',
                    '\u{85}',
                    '\u{a0}',
                    '\u{2028}',
                    '\u{feff}',
                    '\u{fffd}',
                    '\u{202e}',
                    '\u{10ffff}',
                    'é',
                    '𝕏',
                ][..],
            )
            .boxed(),
        ),
    ])
}

fn text(length: std::ops::Range<usize>) -> BoxedStrategy<String> {
    vec(hostile_char(), length)
        .prop_map(|chars| chars.into_iter().collect())
        .boxed()
}

/// Bytes a header value may hold: visible ASCII, space, tab and obs-text.
fn header_bytes(length: std::ops::Range<usize>) -> BoxedStrategy<Vec<u8>> {
    let byte = one_of(vec![
        (6, (0x21u8..0x7f).boxed()),
        (1, Just(b' ').boxed()),
        (1, Just(b'\t').boxed()),
        (2, (0x80u8..=0xff).boxed()),
    ]);
    vec(byte, length).boxed()
}

fn graphic(length: std::ops::RangeInclusive<usize>) -> BoxedStrategy<Vec<u8>> {
    vec(0x21u8..0x7f, length).boxed()
}

fn headers() -> BoxedStrategy<Vec<(String, Vec<u8>)>> {
    let session = one_of(vec![
        (
            6,
            select(SESSION_POOL)
                .prop_map(|s| s.as_bytes().to_vec())
                .boxed(),
        ),
        (4, graphic(1..=128)),
        (1, Just(Vec::new()).boxed()),
        (3, graphic(129..=300)),
        (2, header_bytes(1..60)),
    ]);
    let idempotency = one_of(vec![
        (3, header_bytes(1..40)),
        (1, Just(Vec::new()).boxed()),
        (1, header_bytes(250..300)),
    ]);
    let content_type = fixed(&[
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=----x",
        "application/xml",
        "*/*",
        "application/json, text/html",
        "",
    ])
    .prop_map(String::into_bytes);
    let extra_name = one_of(vec![
        (
            2,
            fixed(&[
                "accept",
                "accept-language",
                "x-api-key",
                "x-forwarded-for",
                "x-request-id",
                "cookie",
                "authorization",
                "origin",
                "range",
                "if-none-match",
                "user-agent",
                "session_id",
                "sessionid",
            ]),
        ),
        (
            1,
            proptest::string::string_regex("x-[a-z0-9-]{1,20}")
                .expect("a valid regex")
                .boxed(),
        ),
    ]);
    (
        proptest::option::weighted(0.75, session),
        proptest::option::weighted(0.25, idempotency),
        proptest::option::weighted(0.3, content_type),
        vec((extra_name, header_bytes(0..80)), 0..4),
    )
        .prop_map(|(session, key, content_type, extra)| {
            let mut headers = Vec::new();
            if let Some(v) = session {
                headers.push(("session-id".to_owned(), v));
            }
            if let Some(v) = key {
                headers.push(("idempotency-key".to_owned(), v));
            }
            if let Some(v) = content_type {
                headers.push(("content-type".to_owned(), v));
            }
            headers.extend(extra);
            headers
        })
        .boxed()
}

/// A JSON value of the wrong type for any field.
fn wrong_json() -> BoxedStrategy<Value> {
    one_of(vec![
        (1, Just(Value::Null).boxed()),
        (1, any::<bool>().prop_map(Value::from).boxed()),
        (1, any::<i64>().prop_map(Value::from).boxed()),
        (1, any::<f64>().prop_map(Value::from).boxed()),
        (1, Just(json!([])).boxed()),
        (1, Just(json!({"deviceId": "x"})).boxed()),
        (1, Just(json!([1, "2", null])).boxed()),
    ])
}

/// A start body: each field absent, a string, or of a wrong type.
fn start_json() -> BoxedStrategy<Value> {
    let field = |text: BoxedStrategy<String>| {
        one_of(vec![
            (2, Just(None).boxed()),
            (5, text.prop_map(|t| Some(Value::String(t))).boxed()),
            (1, wrong_json().prop_map(Some).boxed()),
        ])
    };
    (
        field(stream_value()),
        field(label()),
        field(label()),
        proptest::option::weighted(0.2, text(0..8)),
    )
        .prop_map(|(stream, device, content, extra)| {
            let mut body = serde_json::Map::new();
            for (key, value) in [
                ("streamId", stream),
                ("deviceId", device),
                ("contentId", content),
            ] {
                if let Some(value) = value {
                    body.insert(key.to_owned(), value);
                }
            }
            if let Some(extra) = extra {
                body.insert(extra, Value::Bool(true));
            }
            Value::Object(body)
        })
        .boxed()
}

fn body() -> BoxedStrategy<Option<Body>> {
    let json_text = start_json().prop_map(|v| v.to_string().into_bytes());
    let some = one_of(vec![
        (6, json_text.clone().boxed()),
        (1, Just(Vec::new()).boxed()),
        (
            1,
            wrong_json()
                .prop_map(|v| v.to_string().into_bytes())
                .boxed(),
        ),
        (
            2,
            (json_text.clone(), any::<Index>())
                .prop_map(|(mut bytes, at)| {
                    let keep = at.index(bytes.len());
                    bytes.truncate(keep);
                    bytes
                })
                .boxed(),
        ),
        (
            1,
            (
                1usize..3_000,
                fixed(&["[", "{\"a\":", "[{\"deviceId\":"]),
                any::<bool>(),
            )
                .prop_map(|(depth, open, closed)| {
                    let mut text = open.repeat(depth);
                    if closed {
                        text.push_str("null");
                        for _ in 0..depth {
                            text.push_str(if open == "[" { "]" } else { "}" });
                        }
                    }
                    text.into_bytes()
                })
                .boxed(),
        ),
        (1, vec(any::<u8>(), 1..300).boxed()),
        (
            1,
            fixed(&[
                "{\"deviceId\":\"a\",\"deviceId\":\"b\"}",
                "\u{feff}{}",
                "{\"deviceId\":\"\\u0000\"}",
                "{\"contentId\":\"\\ud800\"}",
                "{\"deviceId\":\"\\x00\"}",
                "{\"streamId\":1e999}",
                "deviceId=tv&contentId=film",
                "{} {}",
                "{},",
                "null",
                " ",
                "\u{0}",
            ])
            .prop_map(String::into_bytes)
            .boxed(),
        ),
        (
            2,
            (MAX_BODY_BYTES - 300..MAX_BODY_BYTES + 1_200, any::<bool>())
                .prop_map(|(size, as_string)| {
                    if as_string {
                        let pad = size.saturating_sub(16);
                        format!("{{\"deviceId\":\"{}\"}}", "a".repeat(pad)).into_bytes()
                    } else {
                        let mut bytes = vec![b' '; size.saturating_sub(2)];
                        bytes.extend_from_slice(b"{}");
                        bytes
                    }
                })
                .boxed(),
        ),
    ]);
    proptest::option::weighted(0.5, some.prop_map(Body)).boxed()
}

fn raw_probe() -> BoxedStrategy<RawProbe> {
    let request = raw_request();
    one_of(vec![
        (5, request.clone()),
        (
            2,
            (request.clone(), any::<Index>())
                .prop_map(|(mut bytes, at)| {
                    let keep = at.index(bytes.len());
                    bytes.truncate(keep);
                    bytes
                })
                .boxed(),
        ),
        (
            1,
            (request.clone(), request)
                .prop_map(|(a, b)| [a, b].concat())
                .boxed(),
        ),
        (1, vec(any::<u8>(), 1..600).boxed()),
        (1, raw_chunked()),
        (1, raw_oversize()),
    ])
    .prop_map(RawProbe)
    .boxed()
}

/// A request head (and maybe body) with hostile parts.
fn raw_request() -> BoxedStrategy<Vec<u8>> {
    let method = one_of(vec![
        (
            5,
            fixed(&["GET", "POST", "DELETE", "HEAD", "PUT", "OPTIONS"]),
        ),
        (
            1,
            fixed(&[
                "get", "G\u{0}T", "", "GET GET", "\u{1}", "TRACE", "CONNECT", "PRI", "GÉT",
            ]),
        ),
    ]);
    let version = one_of(vec![
        (5, fixed(&["HTTP/1.1"])),
        (1, fixed(&["HTTP/1.0"])),
        (
            2,
            fixed(&[
                "HTTP/2.0",
                "HTTP/0.9",
                "HTTP/1.2",
                "HTTP/9.9",
                "http/1.1",
                "HTTP/1.1 x",
                "HTTP/1",
                "HTTP/",
                "HTTX/1.1",
                "",
                "HTTP/1.1\u{0}",
                "HTTP/1.01",
                "HTTP/11",
            ]),
        ),
    ]);
    let eol = one_of(vec![
        (6, fixed(&["\r\n"])),
        (1, fixed(&["\n", "\r", "\n\r"])),
    ]);
    let body = one_of(vec![
        (3, Just(Vec::new()).boxed()),
        (1, chunked_body()),
        (1, vec(any::<u8>(), 0..200).boxed()),
        (
            1,
            start_json()
                .prop_map(|v| v.to_string().into_bytes())
                .boxed(),
        ),
    ]);
    (
        method,
        raw_target(),
        version,
        eol,
        vec(raw_header_line(), 0..6),
        body,
    )
        .prop_map(|(method, target, version, eol, headers, body)| {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(method.as_bytes());
            bytes.push(b' ');
            bytes.extend_from_slice(&target);
            bytes.push(b' ');
            bytes.extend_from_slice(version.as_bytes());
            bytes.extend_from_slice(eol.as_bytes());
            bytes.extend_from_slice(b"Host: 127.0.0.1");
            bytes.extend_from_slice(eol.as_bytes());
            for header in headers {
                bytes.extend_from_slice(&header);
                bytes.extend_from_slice(eol.as_bytes());
            }
            bytes.extend_from_slice(eol.as_bytes());
            bytes.extend_from_slice(&body);
            bytes
        })
        .boxed()
}

/// A request target: a real route, or one with bytes no URL may hold.
fn raw_target() -> BoxedStrategy<Vec<u8>> {
    one_of(vec![
        (
            4,
            (route(), query())
                .prop_map(|((path, _), query)| format!("{path}{query}").into_bytes())
                .boxed(),
        ),
        (
            2,
            (
                fixed(&[
                    "/api/startstream/",
                    "/watch/streams/",
                    "/api/users/1/streams/",
                    "/",
                ]),
                vec(any::<u8>(), 1..40),
            )
                .prop_map(|(prefix, tail)| [prefix.as_bytes(), &tail].concat())
                .boxed(),
        ),
        (
            2,
            fixed(&[
                "/../../etc/passwd",
                "/watch/../health",
                "/api/startstream/../endstream/1",
                "/api/startstream/1 2",
                "/api/startstream/\u{0}",
                "/watch\t",
                "//",
                "*",
                "http://127.0.0.1/health",
                "http://[::1/health",
                "",
                "/%",
                "/%00",
                "/api/startstream/%FF",
                "/api/startstream/é",
                "/health?%",
                "/health#frag",
                "\\health",
                "/health\r\nX-Injected: 1",
            ])
            .prop_map(String::into_bytes)
            .boxed(),
        ),
        (
            1,
            text(1..30)
                .prop_map(|t| format!("/api/startstream/{t}").into_bytes())
                .boxed(),
        ),
        (
            1,
            (1usize..20_000)
                .prop_map(|n| format!("/{}", "a".repeat(n)).into_bytes())
                .boxed(),
        ),
    ])
}

fn raw_header_line() -> BoxedStrategy<Vec<u8>> {
    one_of(vec![
        (
            3,
            fixed(&[
                "Content-Length: -1",
                "Content-Length: 18446744073709551616",
                "Content-Length: abc",
                "Content-Length: 5",
                "Content-Length: 0",
                "Content-Length: 1, 2",
                "Content-Length: 3\r\nContent-Length: 4",
                "Content-Length: +3",
                "Transfer-Encoding: chunked",
                "Transfer-Encoding: gzip",
                "Transfer-Encoding: chunked, identity",
                "Transfer-Encoding: chunked\r\nContent-Length: 3",
                "Transfer-Encoding: xchunked",
                "Connection: upgrade\r\nUpgrade: websocket",
                "Connection: close",
                "Expect: 100-continue",
                "Expect: nonsense",
                " Leading: space",
                "NoColon",
                ": no-name",
                "Bad Name: x",
                "X-Fold: a\r\n folded",
                "Session-Id: a\u{0}b",
                "Session-Id:",
                "Session-Id: s-1\r\nSession-Id: s-2",
                "Idempotency-Key: \u{1}",
                "Content-Type: application/json",
                "Host: ",
                "Host: a\r\nHost: b",
            ])
            .prop_map(String::into_bytes)
            .boxed(),
        ),
        (
            2,
            (
                fixed(&["Session-Id", "Idempotency-Key", "Content-Type", "X-Any"]),
                vec(any::<u8>(), 0..150),
            )
                .prop_map(|(name, value)| [name.as_bytes(), b": ", &value].concat())
                .boxed(),
        ),
        (1, vec(any::<u8>(), 0..60).boxed()),
    ])
}

fn chunked_body() -> BoxedStrategy<Vec<u8>> {
    fixed(&[
        "zz\r\nhello\r\n0\r\n\r\n",
        "-1\r\nx\r\n0\r\n\r\n",
        "ffffffffffffffffffff\r\nabc\r\n",
        "7fffffffffffffff\r\nabc\r\n0\r\n\r\n",
        "5\r\nhello\r\n",
        "5\r\nhel",
        "3\r\nhello\r\n0\r\n\r\n",
        "5;x=\"\r\nhello\r\n0\r\n\r\n",
        "0\r\nTrailer: \u{0}\r\n\r\n",
        "5\nhello\n0\n\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        " 5\r\nhello\r\n0\r\n\r\n",
        "5 \r\nhello\r\n0\r\n\r\n",
        "2\r\n{}\r\n0\r\n\r\n",
        "\r\n\r\n",
        "0\r\n",
    ])
    .prop_map(String::into_bytes)
    .boxed()
}

/// A chunked POST to a start route, its chunks broken or its sizes absurd.
fn raw_chunked() -> BoxedStrategy<Vec<u8>> {
    (
        fixed(&[
            "/api/users/3/streams",
            "/api/users/x/streams",
            "/watch",
            "/health",
        ]),
        chunked_body(),
        proptest::option::of(fixed(&["Content-Length: 5", "Content-Length: 100000"])),
    )
        .prop_map(|(path, body, length)| {
            let mut head = format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nSession-Id: s-chunked\r\n\
                 Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            );
            if let Some(length) = length {
                head.push_str(&length);
                head.push_str("\r\n");
            }
            head.push_str("\r\n");
            [head.into_bytes(), body].concat()
        })
        .boxed()
}

/// Heads past actix's limits: too many headers, a huge header, a huge line.
fn raw_oversize() -> BoxedStrategy<Vec<u8>> {
    one_of(vec![
        (
            1,
            (90usize..200)
                .prop_map(|n| {
                    let mut head = String::from("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
                    for i in 0..n {
                        let _ = write!(head, "X-H{i}: v\r\n");
                    }
                    head.push_str("\r\n");
                    head.into_bytes()
                })
                .boxed(),
        ),
        (
            1,
            (30_000usize..140_000)
                .prop_map(|n| {
                    format!(
                        "GET /watch HTTP/1.1\r\nHost: 127.0.0.1\r\nSession-Id: {}\r\n\r\n",
                        "s".repeat(n)
                    )
                    .into_bytes()
                })
                .boxed(),
        ),
        (
            1,
            (30_000usize..140_000)
                .prop_map(|n| {
                    format!(
                        "GET /api/startstream/1?deviceId={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                        "d".repeat(n)
                    )
                    .into_bytes()
                })
                .boxed(),
        ),
    ])
}
