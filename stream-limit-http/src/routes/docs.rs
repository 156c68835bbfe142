//! The OpenAPI 3.1 description of both listeners, derived from the handlers'
//! `#[utoipa::path]` attributes and the `wire` types: [`PublicApi`] at
//! `GET /api/openapi.json`, [`AdminApi`] at `GET /admin/openapi.json` on the
//! admin listener. `GET /api` (the seed route listing) is generated from
//! [`PublicApi`] too, so the listing, the description and the routes cannot
//! drift apart (`tests/api/seed.rs` calls every listed operation).
//!
//! Also here: the parameters and error responses that many operations share.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, PathItem};
use utoipa::{Modify, OpenApi};

use crate::respond::json_content_type;
use crate::wire::Reason;

/// The public listener's API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "stream-limit",
        description = "At most N concurrent video streams per viewer. Every body is JSON; errors are \
            `{\"msg\", \"code\"}` (the seed routes' historical errors carry `msg` only). \
            The seed routes are the v1 API of the Node service this one replaces.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        super::seed::index,
        super::health::live,
        super::health::ready,
        crate::metrics::serve,
        super::seed::start,
        super::seed::end,
        super::watch::start,
        super::watch::list,
        super::watch::heartbeat,
        super::watch::end,
        super::users::start,
        super::users::list,
        super::users::heartbeat,
        super::users::end,
        openapi_json,
    ),
    components(schemas(Reason)),
    tags(
        (name = "seed", description = "The v1 routes of the Node service this replaces: exact bodies"),
        (name = "gateway", description = "API gateways: the viewer is the `Session-Id` header"),
        (name = "backend", description = "Backends: REST leases of numeric users"),
        (name = "operations", description = "Health, readiness, metrics, this description"),
    )
)]
pub(crate) struct PublicApi;

/// The admin listener's API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "stream-limit admin",
        description = "The operators' listener: on its own port, only when `admin.api_key` is set; \
            every request carries `X-API-Key`, except those for the support console's page and files.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        super::admin::list,
        super::admin::revoke,
        super::admin::set_limit,
        super::admin::history,
        super::admin::openapi_json,
        super::console::page,
    ),
    components(schemas(Reason)),
    modifiers(&AdminKeyScheme),
    security(("admin_key" = [])),
    tags((name = "admin", description = "Support and operations"))
)]
pub(crate) struct AdminApi;

/// The `X-API-Key` security scheme of [`AdminApi`].
struct AdminKeyScheme;

impl Modify for AdminKeyScheme {
    fn modify(&self, openapi: &mut Document) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "admin_key",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "X-API-Key",
                    "The configured `admin.api_key`, compared in constant time",
                ))),
            );
    }
}

/// A document as JSON bytes, made once per process.
fn cached(cell: &'static OnceLock<Bytes>, document: fn() -> Document) -> HttpResponse {
    let body = cell.get_or_init(|| Bytes::from(to_json(&document())));
    HttpResponse::Ok()
        .insert_header(json_content_type())
        .body(body.clone())
}

/// The document as OpenAPI JSON. utoipa 5.5 writes a Link's fields in
/// snake case (`operation_id`); OpenAPI spells them in camel case, and a
/// validator rejects the others, so they are renamed here.
pub(crate) fn to_json(document: &Document) -> Vec<u8> {
    let mut value = serde_json::to_value(document).unwrap_or_default();
    camel_case_links(&mut value);
    serde_json::to_vec(&value).unwrap_or_default()
}

fn camel_case_links(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(links)) = map.get_mut("links") {
                for link in links.values_mut() {
                    let Value::Object(link) = link else { continue };
                    for (snake, camel) in [
                        ("operation_id", "operationId"),
                        ("operation_ref", "operationRef"),
                        ("request_body", "requestBody"),
                    ] {
                        if let Some(field) = link.remove(snake) {
                            link.insert(camel.to_owned(), field);
                        }
                    }
                }
            }
            map.values_mut().for_each(camel_case_links);
        }
        Value::Array(items) => items.iter_mut().for_each(camel_case_links),
        _ => {}
    }
}

/// This description of the public API (OpenAPI 3.1).
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json",
        body = Object)))]
pub(crate) async fn openapi_json() -> HttpResponse {
    static DOCUMENT: OnceLock<Bytes> = OnceLock::new();
    cached(&DOCUMENT, PublicApi::openapi)
}

/// The admin API's description, served by `admin::openapi_json`.
pub(crate) fn admin_openapi_json() -> HttpResponse {
    static DOCUMENT: OnceLock<Bytes> = OnceLock::new();
    cached(&DOCUMENT, AdminApi::openapi)
}

/// The operations of a path item, as `(METHOD, summary)`.
fn operations(item: &PathItem) -> impl Iterator<Item = (&'static str, &str)> {
    [
        ("GET", &item.get),
        ("POST", &item.post),
        ("PUT", &item.put),
        ("DELETE", &item.delete),
    ]
    .into_iter()
    .filter_map(|(method, operation)| {
        let operation = operation.as_ref()?;
        Some((method, operation.summary.as_deref().unwrap_or_default()))
    })
}

/// `{"METHOD /path": summary}` for every operation of [`PublicApi`], with
/// `{name}` written `:name` as the seed listing always did.
pub(crate) fn route_index() -> Vec<u8> {
    let document = PublicApi::openapi();
    let mut index = BTreeMap::new();
    for (path, item) in &document.paths.paths {
        let path = path.replace('{', ":").replace('}', "");
        for (method, summary) in operations(item) {
            // A summary is a doc comment's first paragraph: one line here.
            let summary = summary.split_whitespace().collect::<Vec<_>>().join(" ");
            index.insert(format!("{method} {path}"), summary);
        }
    }
    serde_json::to_vec(&index).unwrap_or_default()
}

pub(crate) use responses::{
    BadBody, BadInput, Gone, NotFound, NotRouted, StoreFailure, Unauthorized,
};

/// The error answers many operations share, as the OpenAPI document lists
/// them. Only described, never built: the answers themselves are `ApiError`s.
#[allow(dead_code)]
mod responses {
    use utoipa::IntoResponses;

    use crate::wire::ErrorBody;

    /// `400`: malformed input.
    #[derive(IntoResponses)]
    pub(crate) enum BadInput {
        /// A path parameter, header or query value is invalid.
        #[response(status = 400)]
        BadRequest(#[to_schema] ErrorBody<'static>),
    }

    /// `400`, `408`, `413`: malformed input or body.
    #[derive(IntoResponses)]
    pub(crate) enum BadBody {
        /// A path parameter, header, query value or the JSON body is invalid.
        #[response(status = 400)]
        BadRequest(#[to_schema] ErrorBody<'static>),
        /// A body was announced but did not arrive within 5 s.
        #[response(status = 408)]
        Timeout(#[to_schema] ErrorBody<'static>),
        /// The body is larger than `server.max_body_bytes`.
        #[response(status = 413)]
        TooLarge(#[to_schema] ErrorBody<'static>),
    }

    /// `404 stream_not_found`.
    #[derive(IntoResponses)]
    pub(crate) enum NotFound {
        /// No such stream for this viewer (or it left the history window).
        #[response(status = 404)]
        NotFound(#[to_schema] ErrorBody<'static>),
    }

    /// `410 stream_gone`.
    #[derive(IntoResponses)]
    pub(crate) enum Gone {
        /// The named stream no longer counts; `reason` says why.
        #[response(status = 410)]
        Gone(#[to_schema] ErrorBody<'static>),
    }

    /// The seed routes' `404` / `405`.
    #[derive(IntoResponses)]
    pub(crate) enum NotRouted {
        /// Not a route (`{"msg":"Route not found"}`).
        #[response(status = 404)]
        NotFound(#[to_schema] ErrorBody<'static>),
        /// A method other than GET or HEAD (`{"msg":"Method not allowed"}`).
        #[response(status = 405)]
        MethodNotAllowed(#[to_schema] ErrorBody<'static>),
    }

    /// `500`, `503`: the store failed.
    #[derive(IntoResponses)]
    pub(crate) enum StoreFailure {
        /// The store answered with an error (`internal_error`; a bug).
        #[response(status = 500)]
        Internal(#[to_schema] ErrorBody<'static>),
        /// The store is unreachable (`store_unavailable`, when
        /// `limits.on_store_error = deny`) or busy (`store_busy`): retry.
        #[response(status = 503)]
        Unavailable(#[to_schema] ErrorBody<'static>),
    }

    /// `401`: no valid `X-API-Key`.
    #[derive(IntoResponses)]
    pub(crate) enum Unauthorized {
        /// `X-API-Key` is missing, repeated or wrong.
        #[response(status = 401)]
        Unauthorized(#[to_schema] ErrorBody<'static>),
    }
}
