//! Liveness and readiness.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use stream_limit_core::StreamLimiter;

use crate::error::cause_chain;
use crate::respond::static_json;

/// How long readiness waits for the store before calling it down.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /health`: `200 {"status":"UP"}` while the process serves. No store
/// call, no allocation: load balancers may poll it as often as they like.
pub(crate) async fn live() -> HttpResponse {
    static_json(StatusCode::OK, r#"{"status":"UP"}"#)
}

/// `GET /health/ready`: `200 {"status":"UP"}` when the store answers a ping
/// within [`PING_TIMEOUT`], else `503 {"status":"DOWN","msg":"store unavailable"}`.
pub(crate) async fn ready(limiter: web::Data<StreamLimiter>) -> HttpResponse {
    match tokio::time::timeout(PING_TIMEOUT, limiter.ping()).await {
        Ok(Ok(())) => static_json(StatusCode::OK, r#"{"status":"UP"}"#),
        Ok(Err(error)) => {
            tracing::warn!(cause = %cause_chain(&error), "readiness: store ping failed");
            down()
        }
        Err(_) => {
            tracing::warn!(
                timeout_ms = PING_TIMEOUT.as_millis() as u64,
                "readiness: store ping timed out"
            );
            down()
        }
    }
}

fn down() -> HttpResponse {
    static_json(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"status":"DOWN","msg":"store unavailable"}"#,
    )
}
