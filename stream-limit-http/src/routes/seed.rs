//! The seed contract: `/api`, `/api/startstream/{user_id}`,
//! `/api/endstream/{user_id}`. Old clients and a test suite depend on these
//! exact bodies; new fields are only ever added beside the old keys.
//!
//! These are the hot path (one call per playback start), so responses are
//! serialized straight from borrowed structs.

use std::sync::OnceLock;

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use serde::ser::{Serialize, SerializeMap, Serializer};
use stream_limit_core::{
    Client, EndOldestOutcome, EndOutcome, EndReason, Lease, StartOutcome, StreamId, StreamLimiter,
    Timestamp, ViewerId,
};

use super::ROUTES;
use crate::error::ApiError;
use crate::extract::{IdempotencyHeader, SeedUser, StartParams};
use crate::respond::{json, json_content_type};

/// `{"streamStatus": …}`, the seed routes' envelope.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<T> {
    stream_status: T,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Allowed<'a> {
    is_new_stream_allowed: bool,
    stream_count: u32,
    stream_id: StreamId,
    expires_at: &'a Timestamp,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    degraded: bool,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    evicted: &'a [StreamId],
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Refused<'a> {
    is_new_stream_allowed: bool,
    stream_count: u32,
    active_streams: &'a [Lease],
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Closed {
    msg: &'static str,
    stream_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<EndReason>,
}

/// [`ROUTES`] as a JSON object.
struct RouteIndex;

impl Serialize for RouteIndex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(ROUTES.len()))?;
        for (route, what) in ROUTES {
            map.serialize_entry(route, what)?;
        }
        map.end()
    }
}

/// `GET /api`: every public route, keyed `"METHOD /path"`. Serialized once.
pub(crate) async fn index() -> HttpResponse {
    static INDEX: OnceLock<Bytes> = OnceLock::new();
    let body =
        INDEX.get_or_init(|| Bytes::from(serde_json::to_vec(&RouteIndex).unwrap_or_default()));
    HttpResponse::Ok()
        .insert_header(json_content_type())
        .body(body.clone())
}

/// `GET /api/startstream/{user_id}`: `200` with `isNewStreamAllowed` true or
/// false (old clients read the flag, not the status); `410` when `?streamId=`
/// names a stream that has ended. Starts get the long seed-route lease.
pub(crate) async fn start(
    limiter: web::Data<StreamLimiter>,
    user: SeedUser,
    params: StartParams,
    key: IdempotencyHeader,
) -> Result<HttpResponse, ApiError> {
    let options = params.0.parse(key)?;
    let viewer = ViewerId::User(user.0);
    match limiter.start(viewer, Client::SeedRoute, options).await? {
        StartOutcome::Admitted(admission) => Ok(json(
            StatusCode::OK,
            &Envelope {
                stream_status: Allowed {
                    is_new_stream_allowed: true,
                    stream_count: admission.active_count,
                    stream_id: admission.lease.stream_id,
                    expires_at: &admission.lease.expires_at,
                    replayed: admission.replayed,
                    degraded: admission.degraded,
                    evicted: &admission.evicted,
                },
            },
        )),
        StartOutcome::Refused(refusal) => Ok(json(
            StatusCode::OK,
            &Envelope {
                stream_status: Refused {
                    is_new_stream_allowed: false,
                    stream_count: refusal.active_count(),
                    active_streams: &refusal.active,
                },
            },
        )),
        StartOutcome::Gone(reason) => Err(ApiError::StreamAlreadyEnded(reason)),
    }
}

/// `GET /api/endstream/{user_id}`: ends the user's oldest stream, or with
/// `?streamId=` that stream (idempotently).
pub(crate) async fn end(
    limiter: web::Data<StreamLimiter>,
    user: SeedUser,
    params: StartParams,
) -> Result<HttpResponse, ApiError> {
    let viewer = ViewerId::User(user.0);
    let stream_id = params.0.parse(IdempotencyHeader::default())?.stream_id;
    let Some(stream_id) = stream_id else {
        return match limiter.end_oldest(&viewer).await? {
            EndOldestOutcome::Ended { active_count, .. } => Ok(closed(active_count, None)),
            EndOldestOutcome::NoActiveStreams => Err(ApiError::NoActiveStreams),
            EndOldestOutcome::UnknownViewer => Err(ApiError::UnknownUser),
        };
    };
    match limiter.end(&viewer, stream_id).await? {
        EndOutcome::Ended { active_count, .. } => Ok(closed(active_count, None)),
        EndOutcome::AlreadyEnded(reason) => {
            let active = limiter.active(&viewer).await?;
            let count = u32::try_from(active.len()).unwrap_or(u32::MAX);
            Ok(closed(count, Some(reason)))
        }
        EndOutcome::NotFound => Err(ApiError::StreamNotFound),
    }
}

/// `200 {"streamStatus":{"msg":"stream closed","streamCount":N}}`, or
/// `"stream already closed"` with the reason when nothing changed.
fn closed(stream_count: u32, already: Option<EndReason>) -> HttpResponse {
    let msg = if already.is_some() {
        "stream already closed"
    } else {
        "stream closed"
    };
    json(
        StatusCode::OK,
        &Envelope {
            stream_status: Closed {
                msg,
                stream_count,
                reason: already,
            },
        },
    )
}
