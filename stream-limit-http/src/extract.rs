//! The edge: HTTP input becomes core domain types here, once.
//!
//! | extractor | from | domain type | error |
//! |---|---|---|---|
//! | [`PathUser`] | `{user_id}` | `UserId` | [`ApiError::InvalidUserId`] |
//! | [`SessionHeader`] | `Session-Id` header | `SessionId` | [`ApiError::InvalidSessionId`] |
//! | [`PathStream`] | `{stream_id}` | `StreamId` | [`ApiError::InvalidStreamId`] |
//! | [`PathViewer`] | `{viewer}` | `ViewerId` | [`ApiError::InvalidViewer`] |
//! | [`IdempotencyHeader`] | `Idempotency-Key` header | `StreamId` (v5) | [`ApiError::InvalidIdempotencyKey`] |
//! | [`StartParams`] | query `streamId`, `deviceId`, `contentId`, `replaces` | `StartOptions` | 400 |
//! | [`StreamQuery`] | query `streamId` | `StreamId` | [`ApiError::InvalidStreamId`] |
//! | [`JsonBody`] | a JSON body | `T` | 400 / 408 / 413 |
//! | [`OptionalJson`] | a JSON body, or none | `T` | 400 / 408 / 413 |
//!
//! Each extractor also describes its parameter for the OpenAPI document
//! ([`IntoParams`]), next to the parsing it documents.
//!
//! [`configure`] installs JSON error handlers for actix's own `Path` and
//! `Query` extractors, so malformed input never gets a non-JSON answer. Bodies
//! are read by [`JsonBody`] and [`OptionalJson`], never by `web::Json`, so that
//! every body read has a deadline.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::{PathError, QueryPayloadError};
use actix_web::http::header::{HeaderName, CONTENT_LENGTH};
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use stream_limit_core::{IdempotencyKey, SessionId, StartOptions, StreamId, UserId, ViewerId};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::Required;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// The gateway's viewer header.
pub(crate) const SESSION_ID: HeaderName = HeaderName::from_static("session-id");
/// A client's retry key for starts.
pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Longest accepted `deviceId` / `contentId`, in characters.
pub(crate) const MAX_LABEL_CHARS: usize = 128;

/// Longest wait for a request body once its head has arrived: actix's own
/// deadline for the head (`client_request_timeout`) is the same 5 s. A client
/// that announces a body and never sends it would otherwise hold its
/// connection, and a file descriptor, for ever.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest accepted body, `server.max_body_bytes`, as app data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

/// Installs JSON error handlers for `web::Path` and `web::Query`, and the body
/// limit that [`JsonBody`] and [`OptionalJson`] enforce (larger bodies get 413).
pub(crate) fn configure(max_body_bytes: usize) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(
            web::PathConfig::default().error_handler(|error: PathError, _| {
                ApiError::malformed("invalid path parameter", &error).into()
            }),
        )
        .app_data(
            web::QueryConfig::default().error_handler(|error: QueryPayloadError, _| {
                ApiError::malformed("invalid query string", &error).into()
            }),
        )
        .app_data(BodyLimit(max_body_bytes));
    }
}

/// The whole body, at most `limit` bytes, within [`BODY_TIMEOUT`].
async fn read_body(body: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    match tokio::time::timeout(BODY_TIMEOUT, body.to_bytes_limited(limit)).await {
        Err(_) => Err(ApiError::BodyTimeout),
        Ok(Err(_)) => Err(ApiError::PayloadTooLarge),
        Ok(Ok(Err(_))) => Err(ApiError::BadRequest("request body could not be read")),
        Ok(Ok(Ok(bytes))) => Ok(bytes),
    }
}

/// Reads the body and decodes it as JSON; `empty` stands in for an empty body
/// (none at all, `Content-Length: 0`, or a chunked body of no chunks).
fn json_body<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    empty: Option<fn() -> T>,
) -> Pin<Box<dyn Future<Output = Result<T, ApiError>>>> {
    let limit = req
        .app_data::<BodyLimit>()
        .map_or(DEFAULT_BODY_LIMIT, |limit| limit.0);
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit as u64) {
        // Refused before reading a byte of it.
        return Box::pin(ready(Err(ApiError::PayloadTooLarge)));
    }
    let (req, mut payload) = (req.clone(), payload.take());
    Box::pin(async move {
        let body = web::Payload::from_request(&req, &mut payload)
            .await
            .map_err(|_| ApiError::BadRequest("request body could not be read"))?;
        let bytes = read_body(body, limit).await?;
        match empty {
            // JSON `null` says "no details" as an empty body does.
            Some(default) if bytes.is_empty() || bytes.trim_ascii() == b"null" => Ok(default()),
            _ => serde_json::from_slice(&bytes).map_err(|error| {
                ApiError::malformed("request body is not valid JSON for this route", &error)
            }),
        }
    })
}

/// Without [`configure`] (unit tests of single handlers): actix's default.
const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

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
        ready(Self::read(req))
    }
}

impl IdempotencyHeader {
    /// The header of `req`, parsed.
    pub(crate) fn read(req: &HttpRequest) -> Result<Self, ApiError> {
        match req.headers().get(&IDEMPOTENCY_KEY) {
            None => Ok(Self(None)),
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|raw| IdempotencyKey::parse(raw).ok())
                .map(|key| Self(Some(key.stream_id())))
                .ok_or(ApiError::InvalidIdempotencyKey),
        }
    }
}

/// Start details as clients send them, in a query string or a JSON body.
/// Unknown fields are ignored.
#[derive(Debug, Default, Deserialize, ToSchema, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
#[schema(as = StartDetails)]
pub(crate) struct RawStart {
    /// Names the stream: repeating the start returns the same lease.
    #[schema(value_type = Option<uuid::Uuid>)]
    #[param(value_type = Option<uuid::Uuid>)]
    stream_id: Option<String>,
    /// The player's device, kept in history: at most 128 characters, no
    /// control characters; empty is the same as absent.
    #[schema(max_length = 128, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    #[param(max_length = 128, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    device_id: Option<String>,
    /// What is watched, kept in history; as `deviceId`.
    #[schema(max_length = 128, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    #[param(max_length = 128, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    content_id: Option<String>,
    /// Take-over: an active stream of this viewer that this start replaces.
    /// It is ended (reason `replaced`) in the same decision that admits the
    /// new stream; if it is not active, the start is decided as if it named
    /// nothing.
    #[schema(value_type = Option<uuid::Uuid>)]
    #[param(value_type = Option<uuid::Uuid>)]
    replaces: Option<String>,
}

impl RawStart {
    /// Parses into the core's options; `key` (from `Idempotency-Key`) names
    /// the stream unless `streamId` already does.
    pub(crate) fn parse(self, key: IdempotencyHeader) -> Result<StartOptions, ApiError> {
        let stream_id = match self.stream_id.as_deref() {
            Some(raw) => Some(StreamId::parse(raw).map_err(|_| ApiError::InvalidStreamId)?),
            None => key.0,
        };
        let replaces = self
            .replaces
            .as_deref()
            .map(|raw| {
                StreamId::parse(raw).map_err(|_| ApiError::BadRequest("replaces must be a UUID"))
            })
            .transpose()?;
        Ok(StartOptions {
            stream_id,
            replaces,
            device_id: label(
                self.device_id,
                "deviceId must be at most 128 characters, none of them control characters",
            )?,
            content_id: label(
                self.content_id,
                "contentId must be at most 128 characters, none of them control characters",
            )?,
        })
    }
}

impl RawStart {
    /// The details of a body and of a query string together; a field given in
    /// both must have the same value in both (`400` otherwise), so that no
    /// part of a request is silently ignored.
    pub(crate) fn merge(self, query: RawStart) -> Result<RawStart, ApiError> {
        fn one(
            body: Option<String>,
            query: Option<String>,
            conflict: &'static str,
        ) -> Result<Option<String>, ApiError> {
            match (body, query) {
                (Some(a), Some(b)) if a != b => Err(ApiError::BadRequest(conflict)),
                (a, b) => Ok(a.or(b)),
            }
        }
        Ok(RawStart {
            stream_id: one(
                self.stream_id,
                query.stream_id,
                "streamId differs between the body and the query",
            )?,
            device_id: one(
                self.device_id,
                query.device_id,
                "deviceId differs between the body and the query",
            )?,
            content_id: one(
                self.content_id,
                query.content_id,
                "contentId differs between the body and the query",
            )?,
            replaces: one(
                self.replaces,
                query.replaces,
                "replaces differs between the body and the query",
            )?,
        })
    }
}

/// An optional free-text label: empty means absent; longer than
/// [`MAX_LABEL_CHARS`], or holding a control character, is refused.
///
/// Control characters have no place in a device or content id, and one of
/// them, U+0000, cannot be stored in a Postgres `text` at all: refusing them
/// here keeps both stores answering the same, with a 400 rather than a 500.
fn label(raw: Option<String>, invalid: &'static str) -> Result<Option<Box<str>>, ApiError> {
    match raw {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text)
            if text.chars().count() > MAX_LABEL_CHARS || text.chars().any(char::is_control) =>
        {
            Err(ApiError::BadRequest(invalid))
        }
        Some(text) => Ok(Some(text.into_boxed_str())),
    }
}

/// Query parameters of a start: `streamId`, `deviceId`, `contentId`, `replaces`.
/// The common case, no query string, costs no allocation.
#[derive(Debug, Default)]
pub(crate) struct StartParams(pub(crate) RawStart);

impl FromRequest for StartParams {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(query_details(req).map(Self))
    }
}

/// The start details of the query string.
pub(crate) fn query_details(req: &HttpRequest) -> Result<RawStart, ApiError> {
    let query = req.query_string();
    if query.is_empty() {
        return Ok(RawStart::default());
    }
    web::Query::<RawStart>::from_query(query)
        .map(web::Query::into_inner)
        .map_err(|error| ApiError::malformed("invalid query string", &error))
}

/// A JSON body, required: read within [`BODY_TIMEOUT`], at most
/// `server.max_body_bytes` (413 beyond), 400 when it is not `T`'s JSON.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = json_body::<T>(req, payload, None);
        Box::pin(async move { body.await.map(Self) })
    }
}

/// A JSON body that may also be empty (no body at all, `Content-Length: 0`, a
/// chunked body with no data, or JSON `null`), in which case `T::default()`
/// stands in.
/// Otherwise as [`JsonBody`].
#[derive(Debug)]
pub(crate) struct OptionalJson<T>(pub(crate) T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = json_body::<T>(req, payload, Some(T::default));
        Box::pin(async move { body.await.map(Self) })
    }
}

/// The `streamId` of a query string (the seed `endstream`), if any; other
/// parameters are ignored. Read by the seed end's extractor.
#[derive(Debug, Default)]
pub(crate) struct StreamQuery(pub(crate) Option<StreamId>);

impl StreamQuery {
    /// The query of `req`, parsed: `streamId` only, other parameters ignored.
    pub(crate) fn read(req: &HttpRequest) -> Result<Self, ApiError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Query {
            stream_id: Option<String>,
        }
        let query = req.query_string();
        if query.is_empty() {
            return Ok(Self(None));
        }
        let parsed = web::Query::<Query>::from_query(query)
            .map_err(|error| ApiError::malformed("invalid query string", &error))?;
        parsed
            .into_inner()
            .stream_id
            .map(|raw| StreamId::parse(&raw).map_err(|_| ApiError::InvalidStreamId))
            .transpose()
            .map(Self)
    }
}

/// One described parameter.
fn parameter(
    name: &str,
    within: ParameterIn,
    required: bool,
    schema: ObjectBuilder,
    description: &str,
) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(within)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::Type(Type::String))
}

fn uuid_string() -> ObjectBuilder {
    string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
}

impl IntoParams for PathUser {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .maximum(Some(i64::MAX));
        vec![parameter(
            "user_id",
            ParameterIn::Path,
            true,
            schema,
            "A numeric user: digits only, at most 2^63 - 1",
        )]
    }
}

impl IntoParams for PathStream {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![parameter(
            "stream_id",
            ParameterIn::Path,
            true,
            uuid_string(),
            "The stream's id",
        )]
    }
}

impl IntoParams for SessionHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = string()
            .min_length(Some(1))
            .max_length(Some(SessionId::MAX_LEN))
            .pattern(Some(format!("^[!-~]{{1,{}}}$", SessionId::MAX_LEN)));
        vec![parameter(
            "Session-Id",
            ParameterIn::Header,
            true,
            schema,
            "The viewer, as the gateway authenticated it: visible ASCII, no spaces",
        )]
    }
}

impl IntoParams for IdempotencyHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = string()
            .min_length(Some(1))
            .max_length(Some(IdempotencyKey::MAX_LEN))
            // What a header value can hold (visible ASCII, spaces and tabs,
            // as `HeaderValue::to_str` reads it); HTTP trims the ends.
            .pattern(Some(format!(
                "^[!-~]([\\t -~]{{0,{}}}[!-~])?$",
                IdempotencyKey::MAX_LEN - 2
            )));
        vec![parameter(
            "Idempotency-Key",
            ParameterIn::Header,
            false,
            schema,
            "A retry key: names the stream (unless `streamId` does), so the same key returns the same lease",
        )]
    }
}

impl IntoParams for PathViewer {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = string().pattern(Some(format!(
            "^(user:{}|session:[!-~]{{1,{}}})$",
            decimal_at_most(&i64::MAX.to_string()),
            SessionId::MAX_LEN
        )));
        vec![parameter(
            "viewer",
            ParameterIn::Path,
            true,
            schema,
            "`user:<number>` or `session:<Session-Id>`",
        )]
    }
}

/// A regular expression for the decimal numbers from 0 to `max` (digits,
/// leading zeros allowed), as `UserId::parse` accepts them: a description
/// that stops at 19 digits would call some ids valid that the service
/// refuses, or the other way round.
fn decimal_at_most(max: &str) -> String {
    let digits: Vec<u32> = max.chars().filter_map(|c| c.to_digit(10)).collect();
    let longest = digits.len();
    let mut alternatives = vec![String::from("0")];
    if longest > 1 {
        alternatives.push(format!("[1-9][0-9]{{0,{}}}", longest - 2));
    }
    // As long as `max`: the same first digits, then a smaller one, then any.
    for (at, &digit) in digits.iter().enumerate() {
        let lowest = u32::from(at == 0);
        let prefix: String = digits[..at].iter().map(u32::to_string).collect();
        let rest = longest - at - 1;
        if at == longest - 1 {
            alternatives.push(format!("{prefix}[{lowest}-{digit}]"));
        } else if digit > lowest {
            alternatives.push(format!("{prefix}[{lowest}-{}][0-9]{{{rest}}}", digit - 1));
        }
    }
    format!("0*({})", alternatives.join("|"))
}

impl IntoParams for StreamQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![parameter(
            "streamId",
            ParameterIn::Query,
            false,
            uuid_string(),
            "End this stream rather than the oldest",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_capped_at_128_characters_not_bytes() {
        let e = "é".repeat(MAX_LABEL_CHARS);
        assert!(matches!(label(Some(e), "long"), Ok(Some(_))));
        assert!(label(Some("x".repeat(MAX_LABEL_CHARS + 1)), "long").is_err());
        assert!(matches!(label(Some(String::new()), "long"), Ok(None)));
    }

    #[test]
    fn labels_refuse_control_characters_nul_first() {
        for bad in ["a\0b", "\0", "tab\there", "\u{7f}", "\u{85}"] {
            assert!(label(Some(bad.into()), "bad").is_err(), "{bad:?}");
        }
        assert!(matches!(
            label(Some("Wohnzimmer-TV ✓".into()), "bad"),
            Ok(Some(_))
        ));
    }

    #[test]
    fn the_user_id_pattern_stops_exactly_at_the_largest_id() {
        assert_eq!(
            decimal_at_most("205"),
            "0*(0|[1-9][0-9]{0,1}|[1-1][0-9]{2}|20[0-5])"
        );
        assert_eq!(decimal_at_most("7"), "0*(0|[1-7])");
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
}
