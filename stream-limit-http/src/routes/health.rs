//! Liveness and readiness.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use stream_limit_core::StreamLimiter;

use crate::error::cause_chain;
use crate::respond::static_json;

/// How long readiness waits for the store before calling it down.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one readiness answer is reused. `/health/ready` is public: without
/// this, anyone polling it in a loop would make every poll a database round
/// trip (12.7k checks/s raised other requests' p50 from 1.7 to 8.2 ms).
pub(crate) const READY_CACHE_TTL: Duration = Duration::from_secs(1);

/// The last readiness answer of this instance and when it was taken, shared by
/// all its workers. The lock is held across the ping, so at most one ping per
/// [`READY_CACHE_TTL`] is in flight, and callers meanwhile wait for its answer.
#[derive(Debug, Default)]
pub(crate) struct Readiness(tokio::sync::Mutex<Option<(Instant, bool)>>);

/// `GET /health`: `200 {"status":"UP"}` while the process serves. No store
/// call, no allocation: load balancers may poll it as often as they like.
pub(crate) async fn live() -> HttpResponse {
    static_json(StatusCode::OK, r#"{"status":"UP"}"#)
}

/// `GET /health/ready`: `200 {"status":"UP"}` when the store answered a ping
/// within [`PING_TIMEOUT`], else `503 {"status":"DOWN","msg":"store unavailable"}`;
/// an answer is reused for [`READY_CACHE_TTL`].
pub(crate) async fn ready(
    limiter: web::Data<StreamLimiter>,
    readiness: web::Data<Readiness>,
) -> HttpResponse {
    let mut last = readiness.0.lock().await;
    let up = match *last {
        Some((at, up)) if at.elapsed() < READY_CACHE_TTL => up,
        _ => {
            let up = ping(&limiter).await;
            *last = Some((Instant::now(), up));
            up
        }
    };
    drop(last);
    if up {
        static_json(StatusCode::OK, r#"{"status":"UP"}"#)
    } else {
        down()
    }
}

async fn ping(limiter: &StreamLimiter) -> bool {
    match tokio::time::timeout(PING_TIMEOUT, limiter.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::warn!(cause = %cause_chain(&error), "readiness: store ping failed");
            false
        }
        Err(_) => {
            tracing::warn!(
                timeout_ms = PING_TIMEOUT.as_millis() as u64,
                "readiness: store ping timed out"
            );
            false
        }
    }
}

fn down() -> HttpResponse {
    static_json(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"status":"DOWN","msg":"store unavailable"}"#,
    )
}
