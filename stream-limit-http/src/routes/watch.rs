//! `/watch`: API gateways start streams for the viewer named by the
//! `Session-Id` header, and players list, heartbeat and end them. A refusal
//! is `401`, as gateways expect (the contract's promise); every answer echoes
//! a valid `Session-Id`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use stream_limit_core::{SessionId, StreamLimiter, ViewerId};

use super::docs::{BadInput, Gone, NotFound, StoreFailure};
use super::streams::{self, Statuses};
use crate::error::ApiError;
use crate::extract::{
    IdempotencyHeader, PathStream, RawStart, SessionHeader, StartParams, SESSION_ID,
};
use crate::wire::{Admitted, Ended, Extended, LimitReached, StreamList};

fn viewer(session: SessionHeader) -> ViewerId {
    ViewerId::Session(session.0)
}

/// Start a stream for the `Session-Id` viewer.
///
/// Query `streamId` (or an `Idempotency-Key` header) makes retries
/// idempotent; `replaces` names an active stream to take over in the same
/// decision.
#[utoipa::path(get, path = "/watch", tag = "gateway",
    operation_id = "watchStart",
    params(SessionHeader, IdempotencyHeader, RawStart),
    responses(
        (status = 200, description = "Admitted, or replayed (same `streamId`)", body = Admitted<'static>,
            headers(("Session-Id" = String, description = "The request's Session-Id")),
            links(
                ("heartbeat" = (operation_id = "watchHeartbeat",
                    parameters(("path.stream_id" = "$response.body#/streamId"),
                        ("header.Session-Id" = "$request.header.Session-Id")))),
                ("end" = (operation_id = "watchEnd",
                    parameters(("path.stream_id" = "$response.body#/streamId"),
                        ("header.Session-Id" = "$request.header.Session-Id")))),
            )),
        (status = 401, description = "At the limit: the active streams are listed", body = LimitReached<'static>,
            headers(("Session-Id" = String, description = "The request's Session-Id"))),
        Gone, BadInput, StoreFailure,
    ))]
pub(crate) async fn start(
    limiter: web::Data<StreamLimiter>,
    session: SessionHeader,
    params: StartParams,
    key: IdempotencyHeader,
) -> Result<HttpResponse, ApiError> {
    let options = params.0.parse(key)?;
    let statuses = Statuses {
        admitted: StatusCode::OK,
        refused: StatusCode::UNAUTHORIZED,
    };
    streams::start(&limiter, viewer(session), options, statuses, |_| None).await
}

/// The `Session-Id` viewer's active streams, oldest first.
#[utoipa::path(get, path = "/watch/streams", tag = "gateway",
    operation_id = "watchList",
    params(SessionHeader),
    responses((status = 200, description = "Active streams", body = StreamList<'static>), BadInput, StoreFailure))]
pub(crate) async fn list(
    limiter: web::Data<StreamLimiter>,
    session: SessionHeader,
) -> Result<HttpResponse, ApiError> {
    streams::list(&limiter, &viewer(session)).await
}

/// Extend a `Session-Id` viewer's lease by its TTL.
#[utoipa::path(post, path = "/watch/streams/{stream_id}/heartbeat", tag = "gateway",
    operation_id = "watchHeartbeat",
    params(SessionHeader, PathStream),
    responses((status = 200, description = "Extended", body = Extended<'static>),
        Gone, NotFound, BadInput, StoreFailure))]
pub(crate) async fn heartbeat(
    limiter: web::Data<StreamLimiter>,
    session: SessionHeader,
    stream: PathStream,
) -> Result<HttpResponse, ApiError> {
    streams::heartbeat(&limiter, &viewer(session), stream.0).await
}

/// End a `Session-Id` viewer's stream. Idempotent: ending it again answers
/// `200` with `ended: false` and the reason it stopped.
#[utoipa::path(delete, path = "/watch/streams/{stream_id}", tag = "gateway",
    operation_id = "watchEnd",
    params(SessionHeader, PathStream),
    responses((status = 200, description = "Ended by this call, or already stopped", body = Ended),
        NotFound, BadInput, StoreFailure))]
pub(crate) async fn end(
    limiter: web::Data<StreamLimiter>,
    session: SessionHeader,
    stream: PathStream,
) -> Result<HttpResponse, ApiError> {
    streams::end(&limiter, &viewer(session), stream.0).await
}

/// Middleware of the `/watch` scope: every answer, errors included, echoes the
/// request's `Session-Id` when it is a valid one (a gateway matches replies to
/// viewers by it). An invalid one is never copied into our headers: its 400
/// says why, and echoing a 128 KB or hostile value would only amplify it.
pub(crate) async fn echo_session_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Cloning a `HeaderValue` shares its bytes; no copy of the text.
    let echo = req
        .headers()
        .get(&SESSION_ID)
        .filter(|value| {
            value
                .to_str()
                .is_ok_and(|text| SessionId::parse(text).is_ok())
        })
        .cloned();
    let mut response = next.call(req).await?;
    if let Some(value) = echo {
        response.headers_mut().insert(SESSION_ID, value);
    }
    Ok(response)
}
