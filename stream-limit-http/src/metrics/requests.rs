//! Requests by route family and status class, and the route a store call
//! is made for (so that admissions can be counted by route without the
//! handlers keeping books).

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use super::Metrics;

/// The families of public routes, as the `route` label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/api/startstream/…`, `/api/endstream/…`: the seed contract.
    Seed,
    /// `/watch…`: the gateway's routes, keyed by `Session-Id`.
    Watch,
    /// `/api/users/…`: REST leases.
    Rest,
    /// `/health`, `/metrics`, `/api`, `/api/openapi.json`.
    Ops,
    /// Anything else (answered 404), and store calls made outside a request.
    Other,
}

impl Route {
    /// Every family, in the order of [`Route::index`].
    pub(super) const ALL: [Route; 5] = [
        Route::Seed,
        Route::Watch,
        Route::Rest,
        Route::Ops,
        Route::Other,
    ];

    /// The `route` label.
    pub(super) fn label(self) -> &'static str {
        match self {
            Route::Seed => "seed",
            Route::Watch => "watch",
            Route::Rest => "rest",
            Route::Ops => "ops",
            Route::Other => "other",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// The family of a request path, by prefix compares (the families of
    /// `routes::configure`; the test below names a path of each).
    fn of(path: &str) -> Route {
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/api/startstream") || under("/api/endstream") {
            Route::Seed
        } else if under("/watch") {
            Route::Watch
        } else if under("/api/users") {
            Route::Rest
        } else if matches!(
            path,
            "/health" | "/health/ready" | "/metrics" | "/api" | "/api/openapi.json"
        ) {
            Route::Ops
        } else {
            Route::Other
        }
    }
}

tokio::task_local! {
    /// The route of the request this task is serving.
    static ROUTE: Route;
}

/// The route of the request being served, if any ([`Route::Other`] outside
/// one: the sweeper, a readiness probe of the admin listener).
pub(super) fn current() -> Route {
    ROUTE.try_with(|route| *route).unwrap_or(Route::Other)
}

/// The status class as an index: 1xx is 0, 5xx is 4.
pub(super) fn class_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
}

/// The `code` label of [`class_index`].
pub(super) const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Middleware of the public app: runs the request with its route known to
/// the store decorator, then counts it by route and status class.
pub(crate) async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let route = Route::of(req.path());
    let metrics = req.app_data::<web::Data<Arc<Metrics>>>().cloned();
    let result = ROUTE.scope(route, next.call(req)).await;
    if let Some(metrics) = metrics {
        let status = match &result {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        metrics.requests[route.index()][class_index(status.as_u16())].inc();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fall_in_the_family_that_serves_them() {
        for (path, route) in [
            ("/api/startstream/12", Route::Seed),
            ("/api/endstream/12", Route::Seed),
            ("/api/startstream", Route::Seed),
            ("/api/startstreams/12", Route::Other),
            ("/watch", Route::Watch),
            ("/watch/streams/x/heartbeat", Route::Watch),
            ("/watchers", Route::Other),
            ("/api/users/7/streams", Route::Rest),
            ("/health", Route::Ops),
            ("/health/ready", Route::Ops),
            ("/metrics", Route::Ops),
            ("/api", Route::Ops),
            ("/api/openapi.json", Route::Ops),
            ("/nope", Route::Other),
        ] {
            assert_eq!(Route::of(path), route, "{path}");
        }
    }

    #[test]
    fn labels_follow_the_index() {
        for (i, route) in Route::ALL.into_iter().enumerate() {
            assert_eq!(route.index(), i, "{}", route.label());
        }
        assert_eq!(
            [100, 200, 299, 302, 404, 503, 599].map(class_index),
            [0, 1, 1, 2, 3, 4, 4]
        );
    }

    #[tokio::test]
    async fn the_route_is_known_inside_its_scope_only() {
        assert_eq!(current(), Route::Other);
        assert_eq!(
            ROUTE.scope(Route::Seed, async { current() }).await,
            Route::Seed
        );
    }
}
