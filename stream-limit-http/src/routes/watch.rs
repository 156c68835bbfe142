//! `/watch`: API gateways start streams for the viewer named by the
//! `Session-Id` header. The list, heartbeat and end routes are the generic ones
//! of [`super::streams`]; this module adds the start and the header echo.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use stream_limit_core::{SessionId, StreamLimiter};

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
/// request's `Session-Id` when it is a valid one (a gateway matches replies to
/// viewers by it). An invalid one is never copied into our headers: its 400
/// says why, and echoing a 128 KB or hostile value would only amplify it.
pub(crate) async fn echo_session_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Cloning a `HeaderValue` shares its bytes; no copy of the text.
    let echo = req
        .headers()
        .get(&SESSION_ID)
        .filter(|value| {
            value
                .to_str()
                .is_ok_and(|text| SessionId::parse(text).is_ok())
        })
        .cloned();
    let mut response = next.call(req).await?;
    if let Some(value) = echo {
        response.headers_mut().insert(SESSION_ID, value);
    }
    Ok(response)
}
