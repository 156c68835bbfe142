//! Routes: what the files probe exists in the binary, and nginx classifies
//! every route the binary serves.

use std::collections::BTreeSet;

use serde_json::Value;
use stream_limit_tests::service::Service;

use crate::{LIVENESS, READINESS};

/// How ecosystem/nginx/stream-limit.conf treats each route of the service.
/// A new route fails the test below until it is classified there and here.
const CLASSIFIED: &[&str] = &[
    "GET /api",
    "GET /api/openapi.json",
    "GET /health",
    "GET /health/ready",
    "GET /metrics",
    "GET /api/startstream/:user_id",
    "GET /api/endstream/:user_id",
    "GET /watch",
    "GET /watch/streams",
    "POST /watch/streams/:stream_id/heartbeat",
    "DELETE /watch/streams/:stream_id",
    "POST /api/users/:user_id/streams",
    "GET /api/users/:user_id/streams",
    "POST /api/users/:user_id/streams/:stream_id/heartbeat",
    "DELETE /api/users/:user_id/streams/:stream_id",
];

/// The routes the nginx config and the probes rely on.
const RELIED_ON: &[&str] = &[
    "GET /health",
    "GET /health/ready",
    "GET /api/startstream/:user_id",
    "GET /api/endstream/:user_id",
    "GET /watch",
    "POST /watch/streams/:stream_id/heartbeat",
    "POST /api/users/:user_id/streams",
    "POST /api/users/:user_id/streams/:stream_id/heartbeat",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_the_files_rely_on_exist_and_every_route_is_classified_for_nginx() {
    let instance = Service::spawn(&[]).await;
    let http = reqwest::Client::new();
    let index: Value = http
        .get(instance.url("/api"))
        .send()
        .await
        .expect("GET /api")
        .json()
        .await
        .expect("JSON");
    let routes: BTreeSet<&str> = index
        .as_object()
        .expect("GET /api is an object")
        .keys()
        .map(String::as_str)
        .collect();
    for route in RELIED_ON {
        assert!(
            routes.contains(route),
            "the files rely on {route}, which the service no longer lists"
        );
    }
    for route in &routes {
        assert!(
            CLASSIFIED.contains(route),
            "new route {route}: decide in ecosystem/nginx/stream-limit.conf whether nginx may \
             replay it, then add it to CLASSIFIED"
        );
    }
    let live = http
        .get(instance.url(LIVENESS))
        .send()
        .await
        .expect("liveness");
    assert_eq!(live.status(), 200);
    assert_eq!(live.text().await.expect("body"), r#"{"status":"UP"}"#);
    let ready = http
        .get(instance.url(READINESS))
        .send()
        .await
        .expect("readiness");
    assert_eq!(ready.status(), 200);
}
