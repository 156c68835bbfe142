//! Middleware of both listeners: a cheap access log, and a JSON safety net.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, Next};
use actix_web::HttpResponse;
use serde::Serialize;

use crate::respond;

/// The tracing target of the access log; enable it with
/// `RUST_LOG=stream_limit_http::access=debug`.
pub(crate) const ACCESS_LOG: &str = "stream_limit_http::access";

/// Whether the access log is on. Checked once when the app is built, so with
/// the log off (the default) requests do not even pass through it.
pub(crate) fn access_log_enabled() -> bool {
    tracing::enabled!(target: ACCESS_LOG, tracing::Level::DEBUG)
}

/// One `debug` line per request: method, path, status, microseconds. Nothing
/// is formatted unless the line is enabled.
pub(crate) async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let response = next.call(req).await?;
    tracing::debug!(
        target: ACCESS_LOG,
        method = %response.request().method(),
        path = response.request().path(),
        status = response.status().as_u16(),
        micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    Ok(response)
}

/// Rewrites any error response that is not already JSON (one actix produced
/// itself, outside our [`crate::error::ApiError`]) into `{"msg": <reason>}`,
/// so that every answer the app gives is JSON. Our own errors pass untouched.
pub(crate) fn json_errors<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(ensure_json)
}

#[derive(Serialize)]
struct Fallback {
    msg: &'static str,
}

fn ensure_json<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    if status.is_server_error() {
        let cause = res.response().error().map(ToString::to_string);
        tracing::error!(
            status = status.as_u16(),
            cause = cause.as_deref().unwrap_or("none"),
            "non-JSON server error"
        );
    }
    let msg = if status.is_server_error() {
        "internal server error"
    } else {
        status.canonical_reason().unwrap_or("bad request")
    };
    let (req, _) = res.into_parts();
    let response: HttpResponse = respond::json(status, &Fallback { msg });
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}

#[cfg(test)]
mod tests {
    use actix_web::{test, web, App, HttpResponse};

    use super::*;

    #[actix_web::test]
    async fn an_error_that_actix_wrote_as_plain_text_becomes_json() {
        let app = test::init_service(
            App::new()
                .wrap(json_errors())
                .route(
                    "/plain",
                    web::get().to(|| async { HttpResponse::BadRequest().body("plain text") }),
                )
                .route(
                    "/ok",
                    web::get().to(|| async { HttpResponse::Ok().body("fine") }),
                ),
        )
        .await;
        let response =
            test::call_service(&app, test::TestRequest::get().uri("/plain").to_request()).await;
        assert_eq!(response.status(), actix_web::http::StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        assert_eq!(test::read_body(response).await, r#"{"msg":"Bad Request"}"#);
        // Successful answers pass untouched.
        let response =
            test::call_service(&app, test::TestRequest::get().uri("/ok").to_request()).await;
        assert_eq!(test::read_body(response).await, "fine");
    }
}
