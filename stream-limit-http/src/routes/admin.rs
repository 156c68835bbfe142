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
//! | `GET /admin/viewers/{viewer}/history?limit=N` | `{"history":[…]}`, newest first, `N` ≤ 1000 (default 100) |

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderName;
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use stream_limit_core::{MaxStreams, StreamLimiter, StreamRecord};
use subtle::ConstantTimeEq;

use super::streams::{end_response, ListBody};
use super::{read, resource, route_not_found};
use crate::error::ApiError;
use crate::extract::{JsonBody, PathStream, PathViewer};
use crate::respond::json;

/// The operators' header.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// History entries returned when `?limit` is absent.
const DEFAULT_HISTORY: usize = 100;
/// Most history entries one request returns.
const MAX_HISTORY: usize = 1000;

/// The configured admin key, as app data of the admin listener.
#[derive(Debug, Clone)]
pub(crate) struct AdminKey(pub(crate) SecretString);

/// Registers the admin routes and the JSON 404.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/viewers/{viewer}")
            .service(resource("/streams").route(read().to(list)))
            .service(resource("/streams/{stream_id}").route(web::delete().to(revoke)))
            .service(resource("/limit").route(web::put().to(set_limit)))
            .service(resource("/history").route(read().to(history))),
    )
    .default_service(web::to(route_not_found));
}

/// Middleware of the whole admin app: `401` unless exactly one `X-API-Key`
/// header equals the configured key. Fails closed when no key is configured.
pub(crate) async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ViewerStreams<'a> {
    viewer: String,
    #[serde(flatten)]
    streams: ListBody<'a>,
}

async fn list(
    limiter: web::Data<StreamLimiter>,
    viewer: PathViewer,
) -> Result<HttpResponse, ApiError> {
    let active = limiter.active(&viewer.0).await?;
    let streams = ListBody {
        stream_count: active.len(),
        active_streams: &active,
    };
    Ok(json(
        StatusCode::OK,
        &ViewerStreams {
            viewer: viewer.0.to_string(),
            streams,
        },
    ))
}

async fn revoke(
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
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LimitBody {
    #[serde(default, deserialize_with = "present")]
    max_streams: Option<Option<u32>>,
}

/// Tells `"maxStreams": null` (`Some(None)`) from a missing key (`None`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(deserializer).map(Some)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LimitSet {
    viewer: String,
    max_streams: Option<MaxStreams>,
}

async fn set_limit(
    limiter: web::Data<StreamLimiter>,
    viewer: PathViewer,
    body: JsonBody<LimitBody>,
) -> Result<HttpResponse, ApiError> {
    let Some(requested) = body.0.max_streams else {
        return Err(ApiError::BadRequest(
            "body must be {\"maxStreams\": n} or {\"maxStreams\": null}",
        ));
    };
    let limit = requested
        .map(|n| MaxStreams::new(n).map_err(|_| ApiError::InvalidMaxStreams))
        .transpose()?;
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

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryEntry<'a> {
    #[serde(flatten)]
    record: &'a StreamRecord,
    duration_seconds: u64,
}

#[derive(Serialize)]
struct History<'a> {
    history: Vec<HistoryEntry<'a>>,
}

async fn history(
    limiter: web::Data<StreamLimiter>,
    viewer: PathViewer,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let max = query.limit.unwrap_or(DEFAULT_HISTORY).min(MAX_HISTORY);
    let records = limiter.history(&viewer.0, max).await?;
    let history = records
        .iter()
        .map(|record| HistoryEntry {
            record,
            duration_seconds: record.duration().as_secs(),
        })
        .collect();
    Ok(json(StatusCode::OK, &History { history }))
}
