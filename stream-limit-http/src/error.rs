//! [`ApiError`]: every error answer of the HTTP layer, and the one place that
//! maps errors to status codes and JSON bodies.
//!
//! Bodies are `{"msg": "...", "code": "..."}`. The seed contract's errors
//! (bad user id, nothing to close, unknown user, 404 route, 405) keep their
//! historical body exactly: `msg` only. 5xx bodies are fixed text; their cause
//! chain is logged here, once.

use std::error::Error as StdError;
use std::fmt::Write as _;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use stream_limit_core::{EndReason, StoreError};

use crate::respond;

/// An error answer. Expected outcomes with a 200 body (such as a seed refusal)
/// are not errors and never pass through here.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: a `{user_id}` path segment is not a non-negative 63-bit number.
    #[error("user_id is invalid , needs to be a number")]
    InvalidUserId,
    /// 400: the `Session-Id` header is missing, empty or malformed.
    #[error("Session-Id header is missing or invalid")]
    InvalidSessionId,
    /// 400: a stream id (path, query or body) is not a UUID.
    #[error("streamId must be a UUID")]
    InvalidStreamId,
    /// 400: an admin `{viewer}` is neither `user:<number>` nor `session:<id>`.
    #[error("viewer must be user:<number> or session:<id>")]
    InvalidViewer,
    /// 400: the `Idempotency-Key` header is empty, too long or not text.
    #[error("Idempotency-Key must be 1 to 255 characters")]
    InvalidIdempotencyKey,
    /// 400: an admin limit is outside `1..=1000`.
    #[error("maxStreams must be between 1 and 1000, or null to clear the override")]
    InvalidMaxStreams,
    /// 400: other malformed input; the message is fixed text chosen by the caller.
    #[error("{0}")]
    BadRequest(&'static str),
    /// 400 (seed `endstream`): the user holds no active stream.
    #[error("no active streams to close for user")]
    NoActiveStreams,
    /// 400 (seed `endstream`): the store has never seen the user.
    #[error("user_id not present in the database")]
    UnknownUser,
    /// 401: the admin `X-API-Key` is missing or wrong.
    #[error("missing or invalid X-API-Key")]
    Unauthorized,
    /// 404: no such stream for this viewer.
    #[error("stream not found")]
    StreamNotFound,
    /// 404: no route has this path.
    #[error("Route not found")]
    RouteNotFound,
    /// 405: the path exists, the method does not.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// 410: a start named a stream that has already ended; start a new one.
    #[error("stream already ended")]
    StreamAlreadyEnded(EndReason),
    /// 410: a heartbeat for a lease that is no longer active; the player should stop.
    #[error("stream is no longer active")]
    StreamGone(EndReason),
    /// 408: a body was announced but did not arrive within the body deadline.
    #[error("request body not received in time")]
    BodyTimeout,
    /// 413: the body is larger than `server.max_body_bytes`.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The store failed (and the policy did not fail open): 503 when it is
    /// unreachable or busy (retry), 500 when it answered with an error (a bug).
    #[error("{}", store_message(.0))]
    Store(#[from] StoreError),
}

/// The fixed client-facing text of a store failure; the cause is only logged.
fn store_message(error: &StoreError) -> &'static str {
    match error {
        StoreError::Unavailable(_) => "store unavailable",
        StoreError::Busy(_) => "store busy, retry",
        StoreError::Query(_) => "internal server error",
    }
}

impl ApiError {
    /// The stable machine-readable code, or `None` for the seed contract's
    /// historical bodies, which carry `msg` alone.
    fn code(&self) -> Option<&'static str> {
        match self {
            Self::InvalidUserId
            | Self::NoActiveStreams
            | Self::UnknownUser
            | Self::RouteNotFound
            | Self::MethodNotAllowed => None,
            Self::InvalidSessionId => Some("invalid_session_id"),
            Self::InvalidStreamId => Some("invalid_stream_id"),
            Self::InvalidViewer => Some("invalid_viewer"),
            Self::InvalidIdempotencyKey => Some("invalid_idempotency_key"),
            Self::InvalidMaxStreams => Some("invalid_max_streams"),
            Self::BadRequest(_) => Some("bad_request"),
            Self::Unauthorized => Some("unauthorized"),
            Self::StreamNotFound => Some("stream_not_found"),
            Self::StreamAlreadyEnded(_) | Self::StreamGone(_) => Some("stream_gone"),
            Self::BodyTimeout => Some("body_timeout"),
            Self::PayloadTooLarge => Some("payload_too_large"),
            Self::Store(StoreError::Unavailable(_)) => Some("store_unavailable"),
            Self::Store(StoreError::Busy(_)) => Some("store_busy"),
            Self::Store(StoreError::Query(_)) => Some("internal_error"),
        }
    }

    fn reason(&self) -> Option<EndReason> {
        match self {
            Self::StreamAlreadyEnded(reason) | Self::StreamGone(reason) => Some(*reason),
            _ => None,
        }
    }
}

/// The JSON shape of every error.
#[derive(Serialize)]
struct ErrorBody<'a> {
    msg: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<EndReason>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidUserId
            | Self::InvalidSessionId
            | Self::InvalidStreamId
            | Self::InvalidViewer
            | Self::InvalidIdempotencyKey
            | Self::InvalidMaxStreams
            | Self::BadRequest(_)
            | Self::NoActiveStreams
            | Self::UnknownUser => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::StreamNotFound | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::StreamAlreadyEnded(_) | Self::StreamGone(_) => StatusCode::GONE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Store(StoreError::Unavailable(_) | StoreError::Busy(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Store(StoreError::Query(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            // The boundary: the only place a 5xx cause is logged. The client
            // sees the fixed `msg` of the variant, never the chain.
            tracing::error!(status = status.as_u16(), cause = %cause_chain(self), "{self}");
        }
        let msg = self.to_string();
        let mut response = respond::json(
            status,
            &ErrorBody {
                msg: &msg,
                code: self.code(),
                reason: self.reason(),
            },
        );
        if matches!(self, Self::BodyTimeout | Self::PayloadTooLarge) {
            // The rest of the body may never come, or is not worth reading:
            // close instead of waiting for it to make room for the next request.
            response
                .head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close);
        }
        response
    }
}

/// `a: b: c` for an error and its sources: how every cause is logged.
pub fn cause_chain(error: &dyn StdError) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(chain, ": {cause}");
        source = cause.source();
    }
    chain
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;

    use super::*;

    async fn body_of(error: ApiError) -> String {
        let response = error.error_response();
        let bytes = to_bytes(response.into_body()).await.unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[actix_web::test]
    async fn seed_errors_keep_their_historical_bodies() {
        assert_eq!(
            body_of(ApiError::InvalidUserId).await,
            r#"{"msg":"user_id is invalid , needs to be a number"}"#
        );
        assert_eq!(
            body_of(ApiError::MethodNotAllowed).await,
            r#"{"msg":"Method not allowed"}"#
        );
        assert_eq!(
            body_of(ApiError::RouteNotFound).await,
            r#"{"msg":"Route not found"}"#
        );
    }

    #[actix_web::test]
    async fn store_errors_hide_their_cause() {
        let error = ApiError::Store(StoreError::Query(
            "relation \"leases\" does not exist".into(),
        ));
        assert_eq!(error.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body_of(error).await,
            r#"{"msg":"internal server error","code":"internal_error"}"#
        );
        let error = ApiError::Store(StoreError::Unavailable("connection refused".into()));
        assert_eq!(error.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body_of(error).await,
            r#"{"msg":"store unavailable","code":"store_unavailable"}"#
        );
        let error = ApiError::Store(StoreError::Busy("lock timeout".into()));
        assert_eq!(error.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body_of(error).await,
            r#"{"msg":"store busy, retry","code":"store_busy"}"#
        );
    }

    #[actix_web::test]
    async fn gone_errors_carry_the_reason() {
        assert_eq!(
            body_of(ApiError::StreamGone(EndReason::Revoked)).await,
            r#"{"msg":"stream is no longer active","code":"stream_gone","reason":"revoked"}"#
        );
    }
}
