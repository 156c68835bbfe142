//! `/api/users/{user_id}/streams`: REST leases for numeric users, for
//! backends. A new lease is `201 Created` with a `Location`, a refusal
//! `409 Conflict`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use stream_limit_core::{StreamLimiter, ViewerId};

use super::docs::{BadBody, BadInput, Gone, NotFound, StoreFailure};
use super::streams::{self, Statuses};
use crate::error::ApiError;
use crate::extract::{
    IdempotencyHeader, OptionalJson, PathStream, PathUser, RawStart, StartParams,
};
use crate::wire::{Admitted, Ended, Extended, LimitReached, StreamList};

/// Start a stream for a numeric user.
///
/// The details (`streamId`, `deviceId`, `contentId`, `replaces`) come in an
/// optional JSON body or in the query string; naming one field in both with
/// different values is a `400`.
#[utoipa::path(post, path = "/api/users/{user_id}/streams", tag = "backend",
    operation_id = "userStart",
    params(PathUser, IdempotencyHeader, RawStart),
    request_body(content = Option<RawStart>, content_type = "application/json",
        description = "Optional; an empty body is the same as `{}`"),
    responses(
        (status = 201, description = "Admitted", body = Admitted<'static>,
            headers(("Location" = String, description = "The new lease: `/api/users/{user_id}/streams/{streamId}`")),
            links(
                ("heartbeat" = (operation_id = "userHeartbeat",
                    parameters(("path.user_id" = "$request.path.user_id"), ("path.stream_id" = "$response.body#/streamId")))),
                ("end" = (operation_id = "userEnd",
                    parameters(("path.user_id" = "$request.path.user_id"), ("path.stream_id" = "$response.body#/streamId")))),
            )),
        (status = 200, description = "Replayed: the named stream was already active", body = Admitted<'static>,
            headers(("Location" = String, description = "The lease: `/api/users/{user_id}/streams/{streamId}`"))),
        (status = 409, description = "At the limit: the active streams are listed", body = LimitReached<'static>),
        Gone, BadBody, StoreFailure,
    ))]
pub(crate) async fn start(
    limiter: web::Data<StreamLimiter>,
    user: PathUser,
    key: IdempotencyHeader,
    query: StartParams,
    body: OptionalJson<RawStart>,
) -> Result<HttpResponse, ApiError> {
    let options = body.0.merge(query.0)?.parse(key)?;
    let statuses = Statuses {
        admitted: StatusCode::CREATED,
        refused: StatusCode::CONFLICT,
    };
    let location = |stream_id| Some(format!("/api/users/{}/streams/{stream_id}", user.0));
    streams::start(
        &limiter,
        ViewerId::User(user.0),
        options,
        statuses,
        location,
    )
    .await
}

/// A numeric user's active streams, oldest first.
#[utoipa::path(get, path = "/api/users/{user_id}/streams", tag = "backend",
    operation_id = "userList",
    params(PathUser),
    responses((status = 200, description = "Active streams", body = StreamList<'static>), BadInput, StoreFailure))]
pub(crate) async fn list(
    limiter: web::Data<StreamLimiter>,
    user: PathUser,
) -> Result<HttpResponse, ApiError> {
    streams::list(&limiter, &ViewerId::User(user.0)).await
}

/// Extend a numeric user's lease by its TTL.
#[utoipa::path(post, path = "/api/users/{user_id}/streams/{stream_id}/heartbeat", tag = "backend",
    operation_id = "userHeartbeat",
    params(PathUser, PathStream),
    responses((status = 200, description = "Extended", body = Extended<'static>),
        Gone, NotFound, BadInput, StoreFailure))]
pub(crate) async fn heartbeat(
    limiter: web::Data<StreamLimiter>,
    user: PathUser,
    stream: PathStream,
) -> Result<HttpResponse, ApiError> {
    streams::heartbeat(&limiter, &ViewerId::User(user.0), stream.0).await
}

/// End a numeric user's stream. Idempotent: ending it again answers `200`
/// with `ended: false` and the reason; an unknown stream is `404`.
#[utoipa::path(delete, path = "/api/users/{user_id}/streams/{stream_id}", tag = "backend",
    operation_id = "userEnd",
    params(PathUser, PathStream),
    responses((status = 200, description = "Ended by this call, or already stopped", body = Ended),
        NotFound, BadInput, StoreFailure))]
pub(crate) async fn end(
    limiter: web::Data<StreamLimiter>,
    user: PathUser,
    stream: PathStream,
) -> Result<HttpResponse, ApiError> {
    streams::end(&limiter, &ViewerId::User(user.0), stream.0).await
}
