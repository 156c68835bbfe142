//! `/watch`: API gateways start streams for the viewer named by the
//! `Session-Id` header. The list, heartbeat and end routes are the generic ones
//! of [`super::streams`]; this module adds the start and the header echo.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use stream_limit_core::StreamLimiter;

use super::streams;
use crate::error::ApiError;
use crate::extract::{IdempotencyHeader, SessionHeader, StartParams, SESSION_ID};

/// `GET /watch`: admitted `200 {"streamId","streamCount","expiresAt",…}`,
/// refused `401` listing the active streams, a named stream that ended `410`.
/// Query `streamId` (or an `Idempotency-Key` header) makes retries idempotent.
pub(crate) async fn start(
    limiter: web::Data<StreamLimiter>,
    session: SessionHeader,
    params: StartParams,
    key: IdempotencyHeader,
) -> Result<HttpResponse, ApiError> {
    let options = params.0.parse(key)?;
    streams::start(&limiter, &session, options).await
}

/// Middleware of the `/watch` scope: every answer, errors included, echoes the
/// request's `Session-Id` when it is printable ASCII (a gateway matches replies
/// to viewers by it; anything else is not echoed into our headers).
pub(crate) async fn echo_session_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Cloning a `HeaderValue` shares its bytes; no copy of the text.
    let echo = req
        .headers()
        .get(&SESSION_ID)
        .filter(|value| !value.is_empty() && value.as_bytes().iter().all(u8::is_ascii_graphic))
        .cloned();
    let mut response = next.call(req).await?;
    if let Some(value) = echo {
        response.headers_mut().insert(SESSION_ID, value);
    }
    Ok(response)
}
