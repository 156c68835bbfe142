//! The calls a load client makes, each checking its answer against the
//! client's model: what the answer must be, given the leases it holds.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use super::LoadClient;
use crate::fleet::{send, Answer};
use crate::load::{Failure, Style};

impl LoadClient {
    pub(super) async fn start(&mut self) -> Result<String, Failure> {
        let n = self.active.len() as u64;
        let fresh = Uuid::new_v4().to_string();
        let user = self.user;
        let request = match self.style {
            Style::SeedPlain => self.request(Method::GET, &format!("/api/startstream/{user}")),
            Style::SeedNamed => self.request(
                Method::GET,
                &format!("/api/startstream/{user}?streamId={fresh}"),
            ),
            Style::RestPlain => self
                .request(Method::POST, &format!("/api/users/{user}/streams"))
                .json(&json!({"deviceId": "fleet"})),
            Style::RestKeyed => self
                .request(Method::POST, &format!("/api/users/{user}/streams"))
                .header("Idempotency-Key", &fresh),
            Style::Watch => self.request(Method::GET, "/watch"),
        };
        let answer = checked(request).await?;
        let body = answer.json();
        let (ok, lease) = match self.style {
            Style::SeedPlain | Style::SeedNamed => {
                let status = &body["streamStatus"];
                let ok = answer.status == StatusCode::OK
                    && status["isNewStreamAllowed"] == true
                    && status["streamCount"] == n + 1
                    && (self.style == Style::SeedPlain || status["streamId"] == fresh.as_str());
                (ok, status["streamId"].as_str())
            }
            Style::RestPlain | Style::RestKeyed => {
                // 200 is a replay of a keyed start that nginx sent twice.
                let ok = (answer.status == StatusCode::CREATED
                    || (answer.status == StatusCode::OK && body["replayed"] == true))
                    && body["streamCount"] == n + 1;
                (ok, body["streamId"].as_str())
            }
            Style::Watch => {
                let echoed = answer.headers.get("session-id").map(|v| v.as_bytes())
                    == Some(self.session.as_bytes());
                let ok = answer.status == StatusCode::OK && echoed && body["streamCount"] == n + 1;
                (ok, body["streamId"].as_str())
            }
        };
        match lease {
            Some(id) if ok => Ok(id.to_owned()),
            _ => Err(wrong("start", n, &answer)),
        }
    }

    pub(super) async fn heartbeat(&mut self) -> Result<(), Failure> {
        let id = self.active[0].clone();
        let answer =
            checked(self.request(Method::POST, &format!("/watch/streams/{id}/heartbeat"))).await?;
        if answer.status == StatusCode::OK && answer.json()["streamId"] == id.as_str() {
            Ok(())
        } else {
            Err(wrong("heartbeat", self.active.len() as u64, &answer))
        }
    }

    /// Ends the oldest stream by its id: idempotent, so nginx may replay it,
    /// and a replay answers "already ended" (reason `ended`).
    pub(super) async fn end(&mut self) -> Result<(), Failure> {
        let id = self.active[0].clone();
        let n = self.active.len() as u64;
        let user = self.user;
        let request = match self.style {
            Style::SeedPlain | Style::SeedNamed => {
                self.request(Method::GET, &format!("/api/endstream/{user}?streamId={id}"))
            }
            Style::RestPlain | Style::RestKeyed => {
                self.request(Method::DELETE, &format!("/api/users/{user}/streams/{id}"))
            }
            Style::Watch => self.request(Method::DELETE, &format!("/watch/streams/{id}")),
        };
        let answer = checked(request).await?;
        let body = answer.json();
        let ok = answer.status == StatusCode::OK
            && match self.style {
                Style::SeedPlain | Style::SeedNamed => {
                    let status = &body["streamStatus"];
                    status["streamCount"] == n - 1
                        && (status["msg"] == "stream closed"
                            || (status["msg"] == "stream already closed"
                                && status["reason"] == "ended"))
                }
                _ => {
                    (body["ended"] == true && body["streamCount"] == n - 1)
                        || (body["ended"] == false && body["reason"] == "ended")
                }
            };
        if ok {
            Ok(())
        } else {
            Err(wrong("end", n, &answer))
        }
    }

    /// The viewer's active stream ids, oldest first.
    pub(super) async fn list(&mut self) -> Result<Vec<String>, Failure> {
        let path = match self.style {
            Style::Watch => "/watch/streams".to_owned(),
            _ => format!("/api/users/{}/streams", self.user),
        };
        let answer = checked(self.request(Method::GET, &path)).await?;
        let body = answer.json();
        let ids: Option<Vec<String>> = body["activeStreams"].as_array().map(|leases| {
            leases
                .iter()
                .filter_map(|lease| lease["streamId"].as_str().map(str::to_owned))
                .collect()
        });
        match ids {
            Some(ids) if answer.status == StatusCode::OK => Ok(ids),
            _ => Err(wrong("list", self.active.len() as u64, &answer)),
        }
    }
}

/// Sends; a transport error or a 502/503/504 is [`Failure::Retryable`].
async fn checked(request: RequestBuilder) -> Result<Answer, Failure> {
    let answer = send(request)
        .await
        .map_err(|e| Failure::Retryable(format!("transport: {e}")))?;
    if matches!(answer.status.as_u16(), 502..=504) {
        // nginx's own error pages are JSON with a msg, like the service's.
        let msg = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|v| v["msg"].as_str().map(str::to_owned));
        return match msg {
            Some(_) => Err(Failure::Retryable(format!(
                "{} {}",
                answer.status, answer.body
            ))),
            None => Err(Failure::Wrong(format!(
                "{} without a JSON msg: {}",
                answer.status, answer.body
            ))),
        };
    }
    if serde_json::from_str::<Value>(&answer.body).is_err() {
        return Err(Failure::Wrong(format!(
            "not JSON: {} {}",
            answer.status, answer.body
        )));
    }
    Ok(answer)
}

fn wrong(what: &str, active_before: u64, answer: &Answer) -> Failure {
    Failure::Wrong(format!(
        "{what} with {active_before} active: {} {}",
        answer.status, answer.body
    ))
}
