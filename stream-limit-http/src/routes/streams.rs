//! What the `/watch` routes and the `/api/users` REST routes share: both
//! address "a viewer's streams"; only where the viewer comes from and two
//! status codes differ ([`Statuses`]). The outcome → response mapping is
//! written once here.

use actix_web::http::header::LOCATION;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use stream_limit_core::{
    Client, EndOutcome, HeartbeatOutcome, StartOptions, StartOutcome, StreamId, StreamLimiter,
    ViewerId,
};

use crate::error::ApiError;
use crate::respond::{json, json_with};
use crate::wire::{Admitted, Ended, Extended, LimitReached, Reason, StreamList};

/// How a family of routes answers a start.
pub(crate) struct Statuses {
    /// A fresh admission (a replay is always `200`).
    pub(crate) admitted: StatusCode,
    /// A refusal at the limit.
    pub(crate) refused: StatusCode,
}

/// Starts a heartbeating stream: admitted `statuses.admitted` (200 when
/// replayed), refused `statuses.refused`, a named stream that ended `410`.
/// `location` names where a new lease lives, for a `Location` header.
pub(crate) async fn start(
    limiter: &StreamLimiter,
    viewer: ViewerId,
    options: StartOptions,
    statuses: Statuses,
    location: impl FnOnce(StreamId) -> Option<String>,
) -> Result<HttpResponse, ApiError> {
    match limiter.start(viewer, Client::Heartbeating, options).await? {
        StartOutcome::Admitted(admission) => {
            let status = if admission.replayed {
                StatusCode::OK
            } else {
                statuses.admitted
            };
            let mut builder = HttpResponse::build(status);
            if let Some(location) = location(admission.lease.stream_id) {
                builder.insert_header((LOCATION, location));
            }
            Ok(json_with(builder, &Admitted::from(&admission)))
        }
        StartOutcome::Refused(refusal) => Ok(json(statuses.refused, &LimitReached::from(&refusal))),
        StartOutcome::Gone(reason) => Err(ApiError::StreamGone {
            reason,
            on_start: true,
        }),
    }
}

/// `200 {"streamCount","activeStreams"}`.
pub(crate) async fn list(
    limiter: &StreamLimiter,
    viewer: &ViewerId,
) -> Result<HttpResponse, ApiError> {
    let active = limiter.active(viewer).await?;
    Ok(json(StatusCode::OK, &StreamList::from(active.as_slice())))
}

/// `200 {"streamId","expiresAt","heartbeatIntervalSeconds"}`, `410` with the
/// reason once the lease is over, `404` for an unknown stream.
pub(crate) async fn heartbeat(
    limiter: &StreamLimiter,
    viewer: &ViewerId,
    stream_id: StreamId,
) -> Result<HttpResponse, ApiError> {
    match limiter.heartbeat(viewer, stream_id).await? {
        HeartbeatOutcome::Extended(lease) => Ok(json(StatusCode::OK, &Extended::from(&lease))),
        HeartbeatOutcome::Gone(reason) => Err(ApiError::StreamGone {
            reason,
            on_start: false,
        }),
        HeartbeatOutcome::NotFound => Err(ApiError::StreamNotFound),
    }
}

/// Ends one stream; idempotent, see [`end_response`].
pub(crate) async fn end(
    limiter: &StreamLimiter,
    viewer: &ViewerId,
    stream_id: StreamId,
) -> Result<HttpResponse, ApiError> {
    let outcome = limiter.end(viewer, stream_id).await?;
    end_response(stream_id, outcome)
}

/// `200 {"streamId","ended":true,"streamCount"}` when this call ended the
/// stream, `200 {"streamId","ended":false,"reason"}` when it had already
/// stopped, `404` when there is no such stream. Shared with the admin revoke.
pub(crate) fn end_response(
    stream_id: StreamId,
    outcome: EndOutcome,
) -> Result<HttpResponse, ApiError> {
    let body = match outcome {
        EndOutcome::Ended { active_count, .. } => Ended {
            stream_id,
            ended: true,
            stream_count: Some(active_count),
            reason: None,
        },
        EndOutcome::AlreadyEnded(reason) => Ended {
            stream_id,
            ended: false,
            stream_count: None,
            reason: Some(Reason(reason)),
        },
        EndOutcome::NotFound => return Err(ApiError::StreamNotFound),
    };
    Ok(json(StatusCode::OK, &body))
}
