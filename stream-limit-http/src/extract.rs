//! The edge: HTTP input becomes core domain types here, once.
//!
//! | extractor | from | domain type | error |
//! |---|---|---|---|
//! | [`PathUser`] | `{user_id}` | `UserId` | [`ApiError::InvalidUserId`] |
//! | [`SeedUser`] | the path under a seed route's prefix | `UserId` | 404 / 405 / [`ApiError::InvalidUserId`] |
//! | [`SessionHeader`] | `Session-Id` header | `SessionId` | [`ApiError::InvalidSessionId`] |
//! | [`PathStream`] | `{stream_id}` | `StreamId` | [`ApiError::InvalidStreamId`] |
//! | [`PathViewer`] | `{viewer}` | `ViewerId` | [`ApiError::InvalidViewer`] |
//! | [`IdempotencyHeader`] | `Idempotency-Key` header | `StreamId` (v5) | [`ApiError::InvalidIdempotencyKey`] |
//! | [`StartParams`] | query `streamId`, `deviceId`, `contentId` | `StartOptions` | 400 |
//! | [`OptionalJson`] | a JSON body, or none | `T` | 400 / 413 |
//!
//! [`configure`] installs JSON error handlers for actix's own `Path`, `Query`
//! and `Json` extractors, so malformed input never gets a non-JSON answer.

use std::future::{ready, Future, Ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header::{HeaderName, CONTENT_LENGTH, TRANSFER_ENCODING};
use actix_web::http::Method;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use stream_limit_core::{IdempotencyKey, SessionId, StartOptions, StreamId, UserId, ViewerId};

use crate::error::ApiError;

/// The gateway's viewer header.
pub(crate) const SESSION_ID: HeaderName = HeaderName::from_static("session-id");
/// A client's retry key for starts.
pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Longest accepted `deviceId` / `contentId`, in characters.
pub(crate) const MAX_LABEL_CHARS: usize = 128;

/// Installs JSON error handlers for `web::Path`, `web::Query` and `web::Json`
/// (the latter limited to `max_body_bytes`, larger bodies getting 413).
pub(crate) fn configure(max_body_bytes: usize) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::PathConfig::default().error_handler(|_: PathError, _| {
            ApiError::BadRequest("invalid path parameter").into()
        }))
        .app_data(
            web::QueryConfig::default().error_handler(|_: QueryPayloadError, _| {
                ApiError::BadRequest("invalid query string").into()
            }),
        )
        .app_data(
            web::JsonConfig::default()
                .limit(max_body_bytes)
                // Accept `curl -d '{...}'` without a JSON content type.
                .content_type_required(false)
                .error_handler(|error, _| json_error(error).into()),
        )
        .app_data(web::PayloadConfig::new(max_body_bytes));
    }
}

fn json_error(error: JsonPayloadError) -> ApiError {
    match error {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::PayloadTooLarge
        }
        _ => ApiError::BadRequest("request body is not valid JSON for this route"),
    }
}

/// A path segment, or the given error when the route has none.
fn segment<'r>(req: &'r HttpRequest, name: &str, error: ApiError) -> Result<&'r str, ApiError> {
    req.match_info().get(name).ok_or(error)
}

/// The numeric user of a `{user_id}` route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathUser(pub(crate) UserId);

impl FromRequest for PathUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            segment(req, "user_id", ApiError::InvalidUserId)
                .and_then(|raw| UserId::parse(raw).map_err(|_| ApiError::InvalidUserId))
                .map(Self),
        )
    }
}

/// The user of a seed route, `/api/startstream/{user_id}` or
/// `/api/endstream/{user_id}`, mounted by `routes::seed_route` as a scope that
/// matched only the static prefix. This extractor finishes the routing that a
/// `{user_id}` resource would do, with the same answers: anything but one
/// non-empty segment is `404`, a method other than `GET`/`HEAD` is `405`, then
/// the id is parsed (`400`). It must be the handler's first argument, so that
/// those answers come before any other extractor's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeedUser(pub(crate) UserId);

impl FromRequest for SeedUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(seed_user(req.match_info().unprocessed(), req.method()).map(Self))
    }
}

/// `rest` is the path after the scope's prefix, as actix matched it (already
/// percent-decoded where actix decodes, exactly like a `{user_id}` segment).
fn seed_user(rest: &str, method: &Method) -> Result<UserId, ApiError> {
    // actix's `{user_id}` is the regex `[^/]+`, anchored at both ends.
    let raw = rest
        .strip_prefix('/')
        .filter(|segment| !segment.is_empty() && !segment.contains('/'))
        .ok_or(ApiError::RouteNotFound)?;
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }
    UserId::parse(raw).map_err(|_| ApiError::InvalidUserId)
}

/// The gateway session named by the `Session-Id` header.
#[derive(Debug, Clone)]
pub(crate) struct SessionHeader(pub(crate) SessionId);

impl FromRequest for SessionHeader {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = req
            .headers()
            .get(&SESSION_ID)
            .and_then(|value| value.to_str().ok())
            .and_then(|raw| SessionId::parse(raw).ok())
            .map(Self)
            .ok_or(ApiError::InvalidSessionId);
        ready(parsed)
    }
}

/// The stream of a `{stream_id}` route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathStream(pub(crate) StreamId);

impl FromRequest for PathStream {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            segment(req, "stream_id", ApiError::InvalidStreamId)
                .and_then(|raw| StreamId::parse(raw).map_err(|_| ApiError::InvalidStreamId))
                .map(Self),
        )
    }
}

/// The viewer of an admin `{viewer}` route: `user:<n>` or `session:<id>`.
#[derive(Debug, Clone)]
pub(crate) struct PathViewer(pub(crate) ViewerId);

impl FromRequest for PathViewer {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            segment(req, "viewer", ApiError::InvalidViewer)
                .and_then(|raw| ViewerId::parse(raw).map_err(|_| ApiError::InvalidViewer))
                .map(Self),
        )
    }
}

/// The stream id an `Idempotency-Key` header stands for, if one was sent.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IdempotencyHeader(pub(crate) Option<StreamId>);

impl FromRequest for IdempotencyHeader {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = match req.headers().get(&IDEMPOTENCY_KEY) {
            None => Ok(Self(None)),
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|raw| IdempotencyKey::parse(raw).ok())
                .map(|key| Self(Some(key.stream_id())))
                .ok_or(ApiError::InvalidIdempotencyKey),
        };
        ready(parsed)
    }
}

/// Start details as clients send them, in a query string or a JSON body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawStart {
    stream_id: Option<String>,
    device_id: Option<String>,
    content_id: Option<String>,
}

impl RawStart {
    /// Parses into the core's options; `key` (from `Idempotency-Key`) names
    /// the stream unless `streamId` already does.
    pub(crate) fn parse(self, key: IdempotencyHeader) -> Result<StartOptions, ApiError> {
        let stream_id = match self.stream_id.as_deref() {
            Some(raw) => Some(StreamId::parse(raw).map_err(|_| ApiError::InvalidStreamId)?),
            None => key.0,
        };
        Ok(StartOptions {
            stream_id,
            device_id: label(self.device_id, "deviceId must be at most 128 characters")?,
            content_id: label(self.content_id, "contentId must be at most 128 characters")?,
        })
    }
}

/// An optional free-text label: empty means absent, longer than
/// [`MAX_LABEL_CHARS`] is refused.
fn label(raw: Option<String>, too_long: &'static str) -> Result<Option<Box<str>>, ApiError> {
    match raw {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) if text.chars().count() > MAX_LABEL_CHARS => Err(ApiError::BadRequest(too_long)),
        Some(text) => Ok(Some(text.into_boxed_str())),
    }
}

/// Query parameters of a start or end: `streamId`, `deviceId`, `contentId`.
/// The common case, no query string, costs no allocation.
#[derive(Debug, Default)]
pub(crate) struct StartParams(pub(crate) RawStart);

impl FromRequest for StartParams {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let query = req.query_string();
        if query.is_empty() {
            return ready(Ok(Self::default()));
        }
        ready(
            web::Query::<RawStart>::from_query(query)
                .map(|q| Self(q.into_inner()))
                .map_err(|_| ApiError::BadRequest("invalid query string")),
        )
    }
}

/// A JSON body that may also be absent (no body at all, or `Content-Length: 0`),
/// in which case `T::default()` stands in.
#[derive(Debug)]
pub(crate) struct OptionalJson<T>(pub(crate) T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJson<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if has_no_body(req) {
            return Box::pin(ready(Ok(Self(T::default()))));
        }
        // Delegates to `web::Json`, so the `JsonConfig` limit and error handler apply.
        let json = web::Json::<T>::from_request(req, payload);
        Box::pin(async move { json.await.map(|j| Self(j.into_inner())) })
    }
}

fn has_no_body(req: &HttpRequest) -> bool {
    let headers = req.headers();
    match headers.get(CONTENT_LENGTH) {
        Some(length) => length.as_bytes() == b"0",
        None => !headers.contains_key(TRANSFER_ENCODING),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn labels_are_capped_at_128_characters_not_bytes() {
        let e = "é".repeat(MAX_LABEL_CHARS);
        assert!(matches!(label(Some(e), "long"), Ok(Some(_))));
        assert!(label(Some("x".repeat(MAX_LABEL_CHARS + 1)), "long").is_err());
        assert!(matches!(label(Some(String::new()), "long"), Ok(None)));
    }

    #[test]
    fn a_stream_id_in_the_query_wins_over_the_idempotency_key() {
        let named = StreamId::random();
        let raw = RawStart {
            stream_id: Some(named.to_string()),
            ..RawStart::default()
        };
        let keyed = IdempotencyHeader(Some(StreamId::random()));
        assert_eq!(raw.parse(keyed).ok().and_then(|o| o.stream_id), Some(named));
    }

    #[test]
    fn a_request_without_length_or_chunking_has_no_body() {
        assert!(has_no_body(&TestRequest::post().to_http_request()));
        let zero = TestRequest::post().insert_header((CONTENT_LENGTH, "0"));
        assert!(has_no_body(&zero.to_http_request()));
        let some = TestRequest::post().insert_header((CONTENT_LENGTH, "2"));
        assert!(!has_no_body(&some.to_http_request()));
    }
}
