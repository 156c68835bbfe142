//! Building JSON responses without intermediate values.
//!
//! Every body is serialized by `serde_json` straight from a borrowed struct
//! into the response's buffer: no `serde_json::Value`, no second copy.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde::Serialize;

/// A body of `{"msg":"internal server error"}` for the (unreachable in
/// practice) case where a response itself fails to serialize.
const FALLBACK: &str = r#"{"msg":"internal server error","code":"internal_error"}"#;

/// Most of our bodies fit; the buffer grows if not.
const INITIAL_CAPACITY: usize = 192;

/// The `Content-Type` of every body we write.
pub(crate) fn json_content_type() -> (header::HeaderName, HeaderValue) {
    (
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )
}

/// `status` with `body` as JSON.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> HttpResponse {
    json_with(HttpResponse::build(status), body)
}

/// Finishes `builder` (which may already carry headers) with `body` as JSON.
pub(crate) fn json_with<T: Serialize + ?Sized>(
    mut builder: HttpResponseBuilder,
    body: &T,
) -> HttpResponse {
    let mut buffer = Vec::with_capacity(INITIAL_CAPACITY);
    match serde_json::to_writer(&mut buffer, body) {
        Ok(()) => builder.insert_header(json_content_type()).body(buffer),
        Err(error) => {
            tracing::error!(%error, "response failed to serialize");
            static_json(StatusCode::INTERNAL_SERVER_ERROR, FALLBACK)
        }
    }
}

/// `status` with a body known at compile time: no allocation at all.
pub(crate) fn static_json(status: StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(json_content_type())
        .body(body)
}
