//! Sending a case to an instance and holding its answer, and the service's
//! log, to the contract.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use proptest::test_runner::TestCaseError;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use stream_limit_core::SessionId;
use stream_limit_http::cause_chain;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::instances::Instance;
use super::probes::{Case, HttpProbe, Probe, RawProbe, Shown};
use super::INTERNAL_TEXT;

/// Deadline of one well-formed request, answer body included.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of every step of a raw exchange (connect, write, read).
const RAW_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes read back from one raw exchange.
const RAW_READ_LIMIT: usize = 256 * 1024;

/// The instances under test and what the run has counted so far.
pub(super) struct Target<'a> {
    pub(super) instances: [Instance<'a>; 2],
    pub(super) client: Client,
    /// Requests sent, raw ones and their `/health` checks included.
    pub(super) requests: AtomicU64,
    /// How often each status was answered (0: a raw answer without one).
    pub(super) statuses: Mutex<BTreeMap<u16, u64>>,
    /// The first case that failed, as generated: the instances are stateful,
    /// so the input shrinking ends at may need the state this one left.
    pub(super) first_failure: Mutex<Option<String>>,
}

impl Target<'_> {
    pub(super) async fn check(&self, case: &Case) -> Result<(), TestCaseError> {
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
            .map_err(|e| fail(format!("no answer: {}", cause_chain(&e))))?;
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
                cause_chain(&e)
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
    pub(super) async fn health(&self, instance: &Instance<'_>) -> Result<(), String> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .client
            .get(instance.service.url("/health"))
            .timeout(HTTP_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("/health did not answer: {}", cause_chain(&e)))?;
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

/// Whether the service would take `text` as a Session-Id (and so may echo it).
fn is_valid_session_id(text: &str) -> bool {
    SessionId::parse(text).is_ok()
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
