//! Liveness and readiness.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use stream_limit_core::StreamLimiter;

use crate::error::cause_chain;
use crate::respond::static_json;
use crate::wire::Health;

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

/// The bodies, written once (`wire::Health`, checked by a test below).
const UP: &str = r#"{"status":"UP"}"#;
const DOWN: &str = r#"{"status":"DOWN","msg":"store unavailable"}"#;

/// Liveness: `200` while the process serves.
///
/// No store call, no allocation: load balancers may poll it as often as they like.
#[utoipa::path(get, path = "/health", tag = "operations", operation_id = "health",
    responses((status = 200, description = "`{\"status\":\"UP\"}`", body = Health)))]
pub(crate) async fn live() -> HttpResponse {
    static_json(StatusCode::OK, UP)
}

/// Readiness: `200` when the store answers, `503` when not.
///
/// `200 {"status":"UP"}` when the store answered a ping within 2 s, else
/// `503 {"status":"DOWN","msg":"store unavailable"}`; an answer is reused for
/// a second, so polling it costs the store at most one ping per second.
#[utoipa::path(get, path = "/health/ready", tag = "operations", operation_id = "ready",
    responses((status = 200, description = "The store answers", body = Health),
        (status = 503, description = "The store does not answer", body = Health)))]
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
        static_json(StatusCode::OK, UP)
    } else {
        static_json(StatusCode::SERVICE_UNAVAILABLE, DOWN)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_bodies_are_the_documented_shape() {
        let up = Health {
            status: "UP",
            msg: None,
        };
        let down = Health {
            status: "DOWN",
            msg: Some("store unavailable"),
        };
        assert_eq!(serde_json::to_string(&up).ok().as_deref(), Some(UP));
        assert_eq!(serde_json::to_string(&down).ok().as_deref(), Some(DOWN));
    }
}
