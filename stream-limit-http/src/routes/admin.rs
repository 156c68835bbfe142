//! The admin listener: its own port, enabled only when `admin.api_key` is set,
//! every request authenticated by `X-API-Key` (compared in constant time).
//!
//! `{viewer}` is `user:<n>` or `session:<id>`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /admin/viewers/{viewer}/streams` | `{"viewer","streamCount","activeStreams"}` |
//! | `DELETE /admin/viewers/{viewer}/streams/{stream_id}` | revoke (history says `revoked`), idempotent |
//! | `PUT /admin/viewers/{viewer}/limit` | body `{"maxStreams": n}` or `{"maxStreams": null}` to clear |
//! | `GET /admin/viewers/{viewer}/history?limit=N` | `{"history":[…]}`, newest first, `N` in 1..=1000 (default 100) |
//! | `GET /admin/openapi.json` | this API's OpenAPI 3.1 description |
//! | `GET /admin/console` | the support console (HTML, `console.js`, `console.css` beside it), served without a key |
//!
//! The console's files are the only exception to the key (see `console`):
//! they hold no data, and the page sends the key typed into it with each
//! call to the routes above.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderName;
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use stream_limit_core::{MaxStreams, StreamLimiter};
use subtle::ConstantTimeEq;

use utoipa::{IntoParams, ToSchema};

use super::docs::{BadBody, BadInput, NotFound, StoreFailure, Unauthorized};
use super::streams::end_response;
use super::{read, resource, route_not_found, GET};
use crate::error::ApiError;
use crate::extract::{JsonBody, PathStream, PathViewer};
use crate::respond::json;
use crate::wire::{Ended, HistoryEntry, StreamList};

/// The operators' header.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// History entries returned when `?limit` is absent.
const DEFAULT_HISTORY: usize = 100;
/// Most history entries one request returns.
const MAX_HISTORY: u16 = 1000;

/// The configured admin key, as app data of the admin listener.
#[derive(Debug, Clone)]
pub(crate) struct AdminKey(pub(crate) SecretString);

/// Registers the admin routes and the JSON 404.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/viewers/{viewer}")
            .service(resource("/streams", GET).route(read().to(list)))
            .service(resource("/streams/{stream_id}", "DELETE").route(web::delete().to(revoke)))
            .service(resource("/limit", "PUT").route(web::put().to(set_limit)))
            .service(resource("/history", GET).route(read().to(history))),
    )
    .service(resource("/admin/openapi.json", GET).route(read().to(openapi_json)))
    .configure(super::console::configure)
    .default_service(web::to(route_not_found));
}

/// Middleware of the whole admin app: `401` unless exactly one `X-API-Key`
/// header equals the configured key. Fails closed when no key is configured.
/// The console's own files pass without one ([`super::console::is_public`]):
/// a browser cannot send a header when it opens a page.
pub(crate) async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if super::console::is_public(req.path()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let expected = req
        .app_data::<AdminKey>()
        .map(|key| key.0.expose_secret().as_bytes());
    // Exactly one header: with two, which one a proxy or a log shows is
    // anybody's guess, so neither is trusted.
    let mut sent = req.headers().get_all(&X_API_KEY);
    let sent = match (sent.next(), sent.next()) {
        (Some(only), None) => Some(only.as_bytes()),
        _ => None,
    };
    let allowed = match (expected, sent) {
        // `ct_eq` compares every byte whatever the first difference; only the
        // length can leak, and keys are required to be long.
        (Some(expected), Some(sent)) => bool::from(expected.ct_eq(sent)),
        _ => false,
    };
    if allowed {
        next.call(req)
            .await
            .map(ServiceResponse::map_into_left_body)
    } else {
        tracing::debug!(path = req.path(), "admin request without a valid X-API-Key");
        Ok(req
            .into_response(ApiError::Unauthorized.error_response())
            .map_into_right_body())
    }
}

/// A viewer's active streams, with the viewer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ViewerStreams<'a> {
    /// `user:<n>` or `session:<id>`.
    viewer: String,
    #[serde(flatten)]
    streams: StreamList<'a>,
}

/// A viewer's active streams.
#[utoipa::path(get, path = "/admin/viewers/{viewer}/streams", tag = "admin",
    operation_id = "adminList",
    params(PathViewer),
    responses((status = 200, description = "Active streams", body = ViewerStreams<'static>),
        BadInput, Unauthorized, StoreFailure))]
pub(crate) async fn list(
    limiter: web::Data<StreamLimiter>,
    viewer: PathViewer,
) -> Result<HttpResponse, ApiError> {
    let active = limiter.active(&viewer.0).await?;
    Ok(json(
        StatusCode::OK,
        &ViewerStreams {
            viewer: viewer.0.to_string(),
            streams: StreamList::from(active.as_slice()),
        },
    ))
}

/// Revoke a stream: its heartbeat then answers `410 revoked`. Idempotent.
#[utoipa::path(delete, path = "/admin/viewers/{viewer}/streams/{stream_id}", tag = "admin",
    operation_id = "adminRevoke",
    params(PathViewer, PathStream),
    responses((status = 200, description = "Revoked by this call, or already stopped", body = Ended),
        NotFound, BadInput, Unauthorized, StoreFailure))]
pub(crate) async fn revoke(
    limiter: web::Data<StreamLimiter>,
    viewer: PathViewer,
    stream: PathStream,
) -> Result<HttpResponse, ApiError> {
    let outcome = limiter.revoke(&viewer.0, stream.0).await?;
    if matches!(outcome, stream_limit_core::EndOutcome::Ended { .. }) {
        tracing::info!(viewer = %viewer.0, stream = %stream.0, "stream revoked by an operator");
    }
    end_response(stream.0, outcome)
}

/// `{"maxStreams": n}` sets, `{"maxStreams": null}` clears; the key is required
/// so that an empty body never clears an override by accident.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LimitBody {
    /// 1 to 1000, or `null` to clear the override.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1000, required = true)]
    max_streams: Option<Option<f64>>,
}

/// Tells `"maxStreams": null` (`Some(None)`) from a missing key (`None`).
/// The number is read as JSON has it: `5` and `5.0` are the same integer.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(deserializer).map(Some)
}

/// A limit the body asked for, if it is a whole number in range.
fn max_streams(requested: f64) -> Result<MaxStreams, ApiError> {
    let whole = requested.fract() == 0.0 && (1.0..=f64::from(MaxStreams::MAX)).contains(&requested);
    let limit = whole
        .then_some(requested as u32)
        .ok_or(ApiError::InvalidMaxStreams)?;
    MaxStreams::new(limit).map_err(|_| ApiError::InvalidMaxStreams)
}

/// The override now in force.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LimitSet {
    viewer: String,
    /// `null`: the default limit applies.
    #[schema(value_type = Option<u32>)]
    max_streams: Option<MaxStreams>,
}

/// Set or clear a viewer's limit.
#[utoipa::path(put, path = "/admin/viewers/{viewer}/limit", tag = "admin",
    operation_id = "adminSetLimit",
    params(PathViewer),
    request_body(content = LimitBody, content_type = "application/json"),
    responses((status = 200, description = "Set (or cleared)", body = LimitSet),
        BadBody, Unauthorized, StoreFailure))]
pub(crate) async fn set_limit(
    limiter: web::Data<StreamLimiter>,
    viewer: PathViewer,
    body: JsonBody<LimitBody>,
) -> Result<HttpResponse, ApiError> {
    let Some(requested) = body.0.max_streams else {
        return Err(ApiError::BadRequest(
            "body must be {\"maxStreams\": n} or {\"maxStreams\": null}",
        ));
    };
    let limit = requested.map(max_streams).transpose()?;
    limiter.set_limit(&viewer.0, limit).await?;
    tracing::info!(viewer = %viewer.0, limit = ?limit.map(MaxStreams::get), "viewer limit set by an operator");
    Ok(json(
        StatusCode::OK,
        &LimitSet {
            viewer: viewer.0.to_string(),
            max_streams: limit,
        },
    ))
}

/// `?limit=`: how many entries, 1 to 1000.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// Most entries to return (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u16>,
}

/// A viewer's ended streams, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct History<'a> {
    history: Vec<HistoryEntry<'a>>,
}

/// A viewer's recent history, newest first.
#[utoipa::path(get, path = "/admin/viewers/{viewer}/history", tag = "admin",
    operation_id = "adminHistory",
    params(PathViewer, HistoryQuery),
    responses((status = 200, description = "Ended streams, newest first", body = History<'static>),
        BadInput, Unauthorized, StoreFailure))]
pub(crate) async fn history(
    limiter: web::Data<StreamLimiter>,
    viewer: PathViewer,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let max = match query.limit {
        None => DEFAULT_HISTORY,
        Some(n @ 1..=MAX_HISTORY) => usize::from(n),
        Some(_) => return Err(ApiError::BadRequest("limit must be between 1 and 1000")),
    };
    let records = limiter.history(&viewer.0, max).await?;
    let history = records.iter().map(HistoryEntry::from).collect();
    Ok(json(StatusCode::OK, &History { history }))
}

/// This description of the admin API (OpenAPI 3.1).
#[utoipa::path(get, path = "/admin/openapi.json", tag = "admin", operation_id = "adminOpenapi",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json",
        body = Object), Unauthorized))]
pub(crate) async fn openapi_json() -> HttpResponse {
    super::docs::admin_openapi_json()
}
