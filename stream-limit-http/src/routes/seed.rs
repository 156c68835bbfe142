//! The seed contract: `/api`, `/api/startstream/{user_id}`,
//! `/api/endstream/{user_id}`, the v1 API of the Node service this one
//! replaces. Old clients and a test suite depend on these exact bodies; new
//! fields are only ever added beside the old keys.
//!
//! These are the hot path (one call per playback start), so responses are
//! serialized straight from borrowed structs, and the two `{user_id}` routes
//! are matched without a regex (see [`seed_user`]), by the one extractor
//! each handler takes.

use std::sync::OnceLock;

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use serde::Serialize;
use stream_limit_core::{
    Client, EndOldestOutcome, EndOutcome, EndReason, StartOptions, StartOutcome, StreamId,
    StreamLimiter, UserId, ViewerId,
};
use utoipa::ToSchema;

use super::docs::{self, Gone, StoreFailure};
use crate::error::ApiError;
use crate::extract::{query_details, IdempotencyHeader, PathUser, RawStart, StreamQuery};
use crate::respond::{json, json_content_type};
use crate::wire::{Admitted, Envelope, ErrorBody, Reason, Refused, SeedClosed, SeedStart};

/// A seed start's `streamStatus`: the admission or the refusal, each with
/// `isNewStreamAllowed`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum SeedStartStatus<'a> {
    /// `isNewStreamAllowed: true`.
    Admitted(SeedStart<Admitted<'a>>),
    /// `isNewStreamAllowed: false`, with the active streams.
    Refused(SeedStart<Refused<'a>>),
}

/// Every public route, keyed `"METHOD /path"` (`:name` for a path
/// parameter), each with its summary.
#[utoipa::path(get, path = "/api", tag = "seed", operation_id = "routeIndex",
    responses((status = 200, description = "Every public route, keyed `\"METHOD /path\"`",
        body = std::collections::BTreeMap<String, String>,
        example = json!({"GET /api": "Every public route, keyed \"METHOD /path\""}))))]
pub(crate) async fn index() -> HttpResponse {
    static INDEX: OnceLock<Bytes> = OnceLock::new();
    let body = INDEX.get_or_init(|| Bytes::from(docs::route_index()));
    HttpResponse::Ok()
        .insert_header(json_content_type())
        .body(body.clone())
}

/// Everything a seed start reads, in the order a `{user_id}` resource would
/// answer: the route (`404`, `405`), the id (`400`), then the query and the
/// `Idempotency-Key`. One extractor, so that no other can answer first.
pub(crate) struct SeedStartRequest {
    pub(crate) user: UserId,
    options: StartOptions,
}

impl FromRequest for SeedStartRequest {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let read = || {
            let user = route(req)?;
            let options = query_details(req)?.parse(IdempotencyHeader::read(req)?)?;
            Ok(Self { user, options })
        };
        ready(read())
    }
}

/// Everything a seed end reads, in the same order: the route, the id, then
/// `?streamId=`.
pub(crate) struct SeedEndRequest {
    user: UserId,
    stream: Option<StreamId>,
}

impl FromRequest for SeedEndRequest {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let read = || {
            let user = route(req)?;
            let stream = StreamQuery::read(req)?.0;
            Ok(Self { user, stream })
        };
        ready(read())
    }
}

/// The seed scopes match only their static prefix (no regex: see
/// `routes::configure`); this finishes the routing a `{user_id}` resource
/// would do, with the same answers.
fn route(req: &HttpRequest) -> Result<UserId, ApiError> {
    seed_user(req.match_info().unprocessed(), req.method())
}

/// `rest` is the path after the scope's prefix, as actix matched it (already
/// percent-decoded where actix decodes, exactly like a `{user_id}` segment):
/// anything but one non-empty segment is `404`, a method other than
/// `GET`/`HEAD` is `405`, then the id is parsed (`400`).
fn seed_user(rest: &str, method: &Method) -> Result<UserId, ApiError> {
    // actix's `{user_id}` is the regex `[^/]+`, anchored at both ends.
    let raw = rest
        .strip_prefix('/')
        .filter(|segment| !segment.is_empty() && !segment.contains('/'))
        .ok_or(ApiError::RouteNotFound)?;
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed(super::GET));
    }
    UserId::parse(raw).map_err(|_| ApiError::InvalidUserId)
}

/// Start a stream for a numeric user (seed contract).
///
/// `200` whether admitted or not: old clients read `isNewStreamAllowed`.
/// `?streamId=` makes retries idempotent; `?replaces=` takes over an active
/// stream in the same decision. The lease is the long seed-route one.
#[utoipa::path(get, path = "/api/startstream/{user_id}", tag = "seed",
    operation_id = "seedStart",
    params(PathUser, IdempotencyHeader, RawStart),
    responses(
        (status = 200, description = "Admitted (`isNewStreamAllowed: true`) or refused at the limit (`false`)",
            body = Envelope<SeedStartStatus<'static>>,
            links(("end" = (operation_id = "seedEnd", parameters(("path.user_id" = "$request.path.user_id"),
                ("query.streamId" = "$response.body#/streamStatus/streamId")))))),
        (status = 400, description = "`user_id` is not a number (`msg` only, the historical body), or a query value is invalid", body = ErrorBody<'static>),
        Gone, docs::NotRouted, StoreFailure,
    ))]
pub(crate) async fn start(
    limiter: web::Data<StreamLimiter>,
    request: SeedStartRequest,
) -> Result<HttpResponse, ApiError> {
    let viewer = ViewerId::User(request.user);
    let outcome = limiter
        .start(viewer, Client::SeedRoute, request.options)
        .await?;
    let status = match &outcome {
        StartOutcome::Admitted(admission) => SeedStartStatus::Admitted(SeedStart {
            is_new_stream_allowed: true,
            decision: Admitted::from(admission),
        }),
        StartOutcome::Refused(refusal) => SeedStartStatus::Refused(SeedStart {
            is_new_stream_allowed: false,
            decision: Refused::from(refusal),
        }),
        StartOutcome::Gone(reason) => {
            return Err(ApiError::StreamGone {
                reason: *reason,
                on_start: true,
            })
        }
    };
    Ok(json(
        StatusCode::OK,
        &Envelope {
            stream_status: status,
        },
    ))
}

/// End a numeric user's oldest stream, or with `?streamId=` that stream (seed contract).
///
/// Ending a stream that already stopped answers `200` with
/// `"stream already closed"` and the reason; nothing changes.
#[utoipa::path(get, path = "/api/endstream/{user_id}", tag = "seed",
    operation_id = "seedEnd",
    params(PathUser, StreamQuery),
    responses(
        (status = 200, description = "Ended (`stream closed`), or already stopped (`stream already closed`, with `reason`)",
            body = Envelope<SeedClosed>),
        (status = 400, description = "`user_id` is not a number, the user has no active stream, or was never seen (`msg` only, the historical bodies); or `streamId` is not a UUID", body = ErrorBody<'static>),
        (status = 404, description = "`streamId` names no stream of this user (`stream_not_found`), or the path is not a route", body = ErrorBody<'static>),
        (status = 405, description = "A method other than GET or HEAD", body = ErrorBody<'static>),
        StoreFailure,
    ))]
pub(crate) async fn end(
    limiter: web::Data<StreamLimiter>,
    request: SeedEndRequest,
) -> Result<HttpResponse, ApiError> {
    let viewer = ViewerId::User(request.user);
    let Some(stream_id) = request.stream else {
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
            stream_status: SeedClosed {
                msg,
                stream_count,
                reason: already.map(Reason),
            },
        },
    )
}
