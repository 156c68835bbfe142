//! [`ApiError`]: every error answer of the HTTP layer, and the one place that
//! maps errors to status codes and JSON bodies.
//!
//! Bodies are `{"msg": "...", "code": "..."}`. The seed contract's errors
//! (bad user id, nothing to close, unknown user, 404 route, 405) keep their
//! historical body exactly: `msg` only. 5xx bodies are fixed text; their cause
//! chain is logged here, once.

use std::error::Error as StdError;
use std::fmt::Write as _;

use actix_web::http::header::{HeaderValue, ALLOW};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use stream_limit_core::{EndReason, StoreError};

use crate::respond;
use crate::wire::{ErrorBody, Reason};

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
    /// 400: a query string or JSON body that does not parse; `detail` is the
    /// parser's own explanation (which field, which position), cut to
    /// 200 characters.
    #[error("{what}: {detail}")]
    Malformed {
        /// What did not parse, such as "request body is not valid JSON for this route".
        what: &'static str,
        /// Why, in the parser's words.
        detail: String,
    },
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
    /// (The methods the path has, for the `Allow` header.)
    MethodNotAllowed(&'static str),
    /// 410: the named stream no longer counts: a heartbeat's player should
    /// stop; a start that named it must start a new stream.
    #[error("{}", if *.on_start { "stream already ended" } else { "stream is no longer active" })]
    StreamGone {
        /// Why it stopped counting.
        reason: EndReason,
        /// Whether a start named it (rather than a heartbeat).
        on_start: bool,
    },
    /// 408: a body was announced but did not arrive within the body deadline.
    #[error("request body not received in time")]
    BodyTimeout,
    /// 413: the body is larger than `server.max_body_bytes`.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The store failed (and the policy did not fail open): 503 when it is
    /// unreachable or busy (retry), 500 when it answered with an error (a bug).
    /// The text is fixed; the cause is only logged.
    #[error("{}", match .0 {
        StoreError::Unavailable(_) => "store unavailable",
        StoreError::Busy(_) => "store busy, retry",
        StoreError::Query(_) => "internal server error",
    })]
    Store(#[from] StoreError),
}

/// The longest parser explanation an answer repeats: enough to name the
/// field and the position, without echoing a long input back.
pub(crate) const MAX_DETAIL: usize = 200;

impl ApiError {
    /// A [`ApiError::Malformed`] for `what`, explained by `error`.
    pub(crate) fn malformed(what: &'static str, error: &dyn StdError) -> Self {
        let mut detail = error.to_string();
        if let Some((cut, _)) = detail.char_indices().nth(MAX_DETAIL) {
            detail.truncate(cut);
            detail.push('…');
        }
        Self::Malformed { what, detail }
    }
}

/// What an error answers: one row of the table in [`ApiError::answer`].
struct Answer {
    status: StatusCode,
    /// `None` for the seed contract's historical bodies, which carry `msg` alone.
    code: Option<&'static str>,
}

const fn answer(status: StatusCode, code: Option<&'static str>) -> Answer {
    Answer { status, code }
}

impl ApiError {
    /// The table: every variant's status and code, in one place (its `msg` is
    /// the variant's `#[error]` text).
    fn answer(&self) -> Answer {
        use StatusCode as S;
        match self {
            Self::InvalidUserId | Self::NoActiveStreams | Self::UnknownUser => {
                answer(S::BAD_REQUEST, None)
            }
            Self::InvalidSessionId => answer(S::BAD_REQUEST, Some("invalid_session_id")),
            Self::InvalidStreamId => answer(S::BAD_REQUEST, Some("invalid_stream_id")),
            Self::InvalidViewer => answer(S::BAD_REQUEST, Some("invalid_viewer")),
            Self::InvalidIdempotencyKey => answer(S::BAD_REQUEST, Some("invalid_idempotency_key")),
            Self::InvalidMaxStreams => answer(S::BAD_REQUEST, Some("invalid_max_streams")),
            Self::BadRequest(_) | Self::Malformed { .. } => {
                answer(S::BAD_REQUEST, Some("bad_request"))
            }
            Self::Unauthorized => answer(S::UNAUTHORIZED, Some("unauthorized")),
            Self::StreamNotFound => answer(S::NOT_FOUND, Some("stream_not_found")),
            Self::RouteNotFound => answer(S::NOT_FOUND, None),
            Self::MethodNotAllowed(_) => answer(S::METHOD_NOT_ALLOWED, None),
            Self::StreamGone { .. } => answer(S::GONE, Some("stream_gone")),
            Self::BodyTimeout => answer(S::REQUEST_TIMEOUT, Some("body_timeout")),
            Self::PayloadTooLarge => answer(S::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
            Self::Store(StoreError::Unavailable(_)) => {
                answer(S::SERVICE_UNAVAILABLE, Some("store_unavailable"))
            }
            Self::Store(StoreError::Busy(_)) => answer(S::SERVICE_UNAVAILABLE, Some("store_busy")),
            Self::Store(StoreError::Query(_)) => {
                answer(S::INTERNAL_SERVER_ERROR, Some("internal_error"))
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.answer().status
    }

    fn error_response(&self) -> HttpResponse {
        let Answer { status, code } = self.answer();
        if status.is_server_error() {
            // The boundary: the only place a 5xx cause is logged. The client
            // sees the fixed `msg` of the variant, never the chain.
            tracing::error!(status = status.as_u16(), cause = %cause_chain(self), "{self}");
        }
        let msg = self.to_string();
        let reason = match self {
            Self::StreamGone { reason, .. } => Some(Reason(*reason)),
            _ => None,
        };
        let mut response = respond::json(
            status,
            &ErrorBody {
                msg: &msg,
                code,
                reason,
            },
        );
        if let Self::MethodNotAllowed(allow) = self {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
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
            body_of(ApiError::MethodNotAllowed("GET, HEAD")).await,
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
            body_of(ApiError::StreamGone {
                reason: EndReason::Revoked,
                on_start: false
            })
            .await,
            r#"{"msg":"stream is no longer active","code":"stream_gone","reason":"revoked"}"#
        );
    }
}
