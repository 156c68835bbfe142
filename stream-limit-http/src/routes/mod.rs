//! Every route of the public listener, registered in [`configure`]; the admin
//! listener's in `admin::configure`.
//!
//! - `health`: `/health`, `/health/ready`.
//! - `seed`: the seed contract, `/api`, `/api/startstream/{id}`, `/api/endstream/{id}`.
//! - `watch`: the gateway's `/watch` routes, keyed by `Session-Id`.
//! - `users`: REST leases of numeric users.
//! - `streams`: what `/watch` and `/api/users` share: one outcome → response
//!   mapping, parameterised by `streams::Statuses`.
//! - `admin`: the operator listener.
//! - `console`: the support console, a static page on the admin listener
//!   that calls the admin routes from the browser.
//! - `docs`: the OpenAPI description of both listeners (`/api/openapi.json`,
//!   `/admin/openapi.json`), from which `GET /api` is generated.
//!
//! Unknown paths answer `404 {"msg":"Route not found"}`; a known path with
//! another method answers `405 {"msg":"Method not allowed"}`. `HEAD` is served
//! wherever `GET` is (actix drops the body).

pub(crate) mod admin;
pub(crate) mod console;
mod docs;
pub(crate) mod health;
mod seed;
mod streams;
mod users;
mod watch;

use actix_web::middleware::from_fn;
use actix_web::{guard, web, HttpResponse, Resource, ResponseError, Route};

use crate::error::ApiError;

/// Registers the public routes and the JSON 404 for unknown paths. Every
/// route here is an operation of `docs::PublicApi` (a test calls each one).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/health", GET).route(read().to(health::live)))
        .service(resource("/health/ready", GET).route(read().to(health::ready)))
        .service(resource("/metrics", GET).route(read().to(crate::metrics::serve)))
        .service(resource("/api", GET).route(read().to(seed::index)))
        .service(resource("/api/openapi.json", GET).route(read().to(docs::openapi_json)))
        // `{prefix}/{user_id}` answered exactly as
        // `resource("{prefix}/{user_id}").route(read().to(handler))` would,
        // but without a regex: actix matches every `{param}` pattern with a
        // regex per request, and on the seed routes (the hot path) that was
        // about a tenth of the server's CPU; a static prefix is a string
        // compare, and the handler's one extractor (`seed::SeedStartRequest`,
        // `seed::SeedEndRequest`) does the rest (404 / 405 / 400) before it reads
        // anything else.
        .service(web::scope("/api/startstream").default_service(web::to(seed::start)))
        .service(web::scope("/api/endstream").default_service(web::to(seed::end)))
        .service(
            web::scope("/watch")
                .wrap(from_fn(watch::echo_session_id))
                .service(resource("", GET).route(read().to(watch::start)))
                .service(resource("/streams", GET).route(read().to(watch::list)))
                .service(
                    resource("/streams/{stream_id}/heartbeat", "POST")
                        .route(web::post().to(watch::heartbeat)),
                )
                .service(
                    resource("/streams/{stream_id}", "DELETE").route(web::delete().to(watch::end)),
                ),
        )
        .service(
            resource("/api/users/{user_id}/streams", "GET, HEAD, POST")
                .route(web::post().to(users::start))
                .route(read().to(users::list)),
        )
        .service(
            resource("/api/users/{user_id}/streams/{stream_id}/heartbeat", "POST")
                .route(web::post().to(users::heartbeat)),
        )
        .service(
            resource("/api/users/{user_id}/streams/{stream_id}", "DELETE")
                .route(web::delete().to(users::end)),
        )
        .default_service(web::to(route_not_found));
}

/// The `Allow` of a path served by [`read`] routes.
pub(crate) const GET: &str = "GET, HEAD";

/// A resource whose other methods answer the JSON 405, with `allow` (the
/// methods its routes serve) in the `Allow` header.
pub(crate) fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move { method_not_allowed(allow) }))
}

/// A route for `GET` and `HEAD`.
pub(crate) fn read() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// The default service: `404 {"msg":"Route not found"}`.
pub(crate) async fn route_not_found() -> HttpResponse {
    ApiError::RouteNotFound.error_response()
}

/// A resource's default service: `405 {"msg":"Method not allowed"}`.
fn method_not_allowed(allow: &'static str) -> HttpResponse {
    ApiError::MethodNotAllowed(allow).error_response()
}

#[cfg(test)]
mod tests {
    use actix_web::http::Method;
    use actix_web::test::{call_service, init_service, read_body, TestRequest};
    use actix_web::{App, HttpResponse};

    use super::*;
    use crate::extract::{IdempotencyHeader, PathUser, StartParams};

    #[actix_web::test]
    async fn a_seed_route_answers_like_the_user_id_resource_it_replaces() {
        let by_resource = init_service(
            App::new()
                .service(resource("/api/startstream/{user_id}", GET).route(read().to(
                    |user: PathUser, params: StartParams, key: IdempotencyHeader| async move {
                        params
                            .0
                            .parse(key)
                            .map(|_| HttpResponse::Ok().body(user.0.to_string()))
                    },
                )))
                .default_service(web::to(route_not_found)),
        )
        .await;
        let by_scope = init_service(
            App::new()
                .service(web::scope("/api/startstream").default_service(web::to(
                    |request: seed::SeedStartRequest| async move {
                        HttpResponse::Ok().body(request.user.to_string())
                    },
                )))
                .default_service(web::to(route_not_found)),
        )
        .await;
        let paths = [
            "/api/startstream",
            "/api/startstream/",
            "/api/startstream/12",
            "/api/startstream/12/",
            "/api/startstream/12/extra",
            "/api/startstream//12",
            "/api/startstream/%31%32",
            "/api/startstream/1%2F2",
            "/api/startstream/%2e%2e",
            "/api/startstream/12?streamId=x",
            // A query that fails to parse: the path's answer still comes first.
            "/api/startstream/abc?streamId=1&streamId=2",
            "/api/startstream/12/extra?streamId=1&streamId=2",
            "/api/startstream/abc",
            "/api/startstream/-1",
            "/api/startstream/9223372036854775808",
            "/api/startstreams/12",
            "/api/startstream%2F12",
            "/api/%73tartstream/12",
        ];
        let methods = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ];
        let mut statuses = std::collections::BTreeSet::new();
        for path in paths {
            for method in &methods {
                let request = || TestRequest::default().method(method.clone()).uri(path);
                let old = call_service(&by_resource, request().to_request()).await;
                let new = call_service(&by_scope, request().to_request()).await;
                assert_eq!(old.status(), new.status(), "{method} {path}");
                statuses.insert(old.status().as_u16());
                assert_eq!(
                    read_body(old).await,
                    read_body(new).await,
                    "{method} {path}"
                );
            }
        }
        // The paths above reach every answer: 200, 400, 404 and 405.
        assert_eq!(
            statuses.into_iter().collect::<Vec<_>>(),
            [200, 400, 404, 405]
        );
    }
}
