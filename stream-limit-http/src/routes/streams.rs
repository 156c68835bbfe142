//! What the `/watch` routes and the `/api/users` REST routes share: both
//! address "a viewer's streams", only the viewer's source and two status codes
//! differ. The outcome → response mapping is written once here, generic over
//! [`ViewerRoute`].

use actix_web::http::header::LOCATION;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpResponse};
use serde::Serialize;
use stream_limit_core::{
    Client, EndOutcome, EndReason, HeartbeatOutcome, Lease, StartOptions, StartOutcome, StreamId,
    StreamLimiter, Timestamp, ViewerId,
};

use crate::error::ApiError;
use crate::extract::{PathStream, PathUser, SessionHeader};
use crate::respond::{json, json_with};

/// A source of the viewer for the heartbeating routes.
pub(crate) trait ViewerRoute: FromRequest + 'static {
    /// Status of a fresh admission.
    const ADMITTED: StatusCode;
    /// Status of a refusal at the limit.
    const REFUSED: StatusCode;
    /// The viewer whose streams these are.
    fn viewer(&self) -> ViewerId;
    /// Where the new lease lives, for a `Location` header.
    fn location(&self, _stream_id: StreamId) -> Option<String> {
        None
    }
}

/// `/watch`: the viewer is the `Session-Id` header. A refusal is `401`, as
/// API gateways expect (the contract's promise).
impl ViewerRoute for SessionHeader {
    const ADMITTED: StatusCode = StatusCode::OK;
    const REFUSED: StatusCode = StatusCode::UNAUTHORIZED;
    fn viewer(&self) -> ViewerId {
        ViewerId::Session(self.0.clone())
    }
}

/// `/api/users/{user_id}`: REST; a new lease is `201 Created` with a
/// `Location`, a refusal `409 Conflict`.
impl ViewerRoute for PathUser {
    const ADMITTED: StatusCode = StatusCode::CREATED;
    const REFUSED: StatusCode = StatusCode::CONFLICT;
    fn viewer(&self) -> ViewerId {
        ViewerId::User(self.0)
    }
    fn location(&self, stream_id: StreamId) -> Option<String> {
        Some(format!("/api/users/{}/streams/{stream_id}", self.0))
    }
}

/// An admitted (or replayed) lease.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdmittedBody<'a> {
    stream_id: StreamId,
    stream_count: u32,
    expires_at: &'a Timestamp,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    degraded: bool,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    evicted: &'a [StreamId],
}

/// A refusal at the limit, with what the viewer could stop instead.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefusedBody<'a> {
    msg: &'static str,
    code: &'static str,
    stream_count: u32,
    max_streams: u32,
    active_streams: &'a [Lease],
}

/// A viewer's active streams.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListBody<'a> {
    /// How many.
    pub(crate) stream_count: usize,
    /// Oldest first.
    pub(crate) active_streams: &'a [Lease],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtendedBody<'a> {
    stream_id: StreamId,
    expires_at: &'a Timestamp,
}

/// The answer to ending (or revoking) one stream; `ended` says whether this
/// call changed anything.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EndedBody {
    stream_id: StreamId,
    ended: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<EndReason>,
}

/// Starts a heartbeating stream for `viewer`: admitted `V::ADMITTED` (200 when
/// replayed), refused `V::REFUSED`, a named stream that ended `410`.
pub(crate) async fn start<V: ViewerRoute>(
    limiter: &StreamLimiter,
    viewer: &V,
    options: StartOptions,
) -> Result<HttpResponse, ApiError> {
    match limiter
        .start(viewer.viewer(), Client::Heartbeating, options)
        .await?
    {
        StartOutcome::Admitted(admission) => {
            let lease = &admission.lease;
            let status = if admission.replayed {
                StatusCode::OK
            } else {
                V::ADMITTED
            };
            let mut builder = HttpResponse::build(status);
            if let Some(location) = viewer.location(lease.stream_id) {
                builder.insert_header((LOCATION, location));
            }
            let body = AdmittedBody {
                stream_id: lease.stream_id,
                stream_count: admission.active_count,
                expires_at: &lease.expires_at,
                replayed: admission.replayed,
                degraded: admission.degraded,
                evicted: &admission.evicted,
            };
            Ok(json_with(builder, &body))
        }
        StartOutcome::Refused(refusal) => Ok(json(
            V::REFUSED,
            &RefusedBody {
                msg: "stream limit reached",
                code: "stream_limit_reached",
                stream_count: refusal.active_count(),
                max_streams: refusal.limit.get(),
                active_streams: &refusal.active,
            },
        )),
        StartOutcome::Gone(reason) => Err(ApiError::StreamAlreadyEnded(reason)),
    }
}

/// `GET …/streams`: `200 {"streamCount","activeStreams"}`.
pub(crate) async fn list<V: ViewerRoute>(
    limiter: web::Data<StreamLimiter>,
    viewer: V,
) -> Result<HttpResponse, ApiError> {
    let active = limiter.active(&viewer.viewer()).await?;
    Ok(json(
        StatusCode::OK,
        &ListBody {
            stream_count: active.len(),
            active_streams: &active,
        },
    ))
}

/// `POST …/streams/{stream_id}/heartbeat`: `200 {"streamId","expiresAt"}`,
/// `410` with the reason once the lease is over, `404` for an unknown stream.
pub(crate) async fn heartbeat<V: ViewerRoute>(
    limiter: web::Data<StreamLimiter>,
    viewer: V,
    stream: PathStream,
) -> Result<HttpResponse, ApiError> {
    match limiter.heartbeat(&viewer.viewer(), stream.0).await? {
        HeartbeatOutcome::Extended(lease) => Ok(json(
            StatusCode::OK,
            &ExtendedBody {
                stream_id: lease.stream_id,
                expires_at: &lease.expires_at,
            },
        )),
        HeartbeatOutcome::Gone(reason) => Err(ApiError::StreamGone(reason)),
        HeartbeatOutcome::NotFound => Err(ApiError::StreamNotFound),
    }
}

/// `DELETE …/streams/{stream_id}`: idempotent; see [`end_response`].
pub(crate) async fn end<V: ViewerRoute>(
    limiter: web::Data<StreamLimiter>,
    viewer: V,
    stream: PathStream,
) -> Result<HttpResponse, ApiError> {
    let outcome = limiter.end(&viewer.viewer(), stream.0).await?;
    end_response(stream.0, outcome)
}

/// `200 {"streamId","ended":true,"streamCount"}` when this call ended the
/// stream, `200 {"streamId","ended":false,"reason"}` when it had already
/// stopped, `404` when there is no such stream. Shared with the admin revoke.
pub(crate) fn end_response(
    stream_id: StreamId,
    outcome: EndOutcome,
) -> Result<HttpResponse, ApiError> {
    let body = match outcome {
        EndOutcome::Ended { active_count, .. } => EndedBody {
            stream_id,
            ended: true,
            stream_count: Some(active_count),
            reason: None,
        },
        EndOutcome::AlreadyEnded(reason) => EndedBody {
            stream_id,
            ended: false,
            stream_count: None,
            reason: Some(reason),
        },
        EndOutcome::NotFound => return Err(ApiError::StreamNotFound),
    };
    Ok(json(StatusCode::OK, &body))
}
