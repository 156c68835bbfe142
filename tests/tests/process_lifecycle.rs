//! The real binary's lifecycle: SIGTERM and SIGINT both drain in-flight
//! requests before exiting cleanly.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::Value;
use stream_limit_tests::postgres::fresh_database;
use stream_limit_tests::service::Service;
use stream_limit_tests::world::connect;

/// Holds user 1's row lock so that a start for that user is in flight until
/// released, signals the process, and checks that the request still succeeds
/// and that the process then exits with success.
async fn in_flight_request_survives(signal: &str) {
    let db = fresh_database().await;
    let mut service = Service::spawn(&[("DATABASE_URL", db.url())]).await;
    let http = Client::new();
    // Create the viewer row, then lock it from outside.
    let first = http
        .get(service.url("/api/startstream/1"))
        .send()
        .await
        .expect("answers");
    assert_eq!(first.status(), StatusCode::OK);
    let mut holder = connect(db.url()).await;
    let lock = holder.transaction().await.expect("begin");
    lock.execute(
        "SELECT 1 FROM viewers WHERE viewer = 'user:1' FOR UPDATE",
        &[],
    )
    .await
    .expect("lock user 1");
    let in_flight = tokio::spawn(http.get(service.url("/api/startstream/1")).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished(), "the request waits for the lock");

    service.signal(signal);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Draining: no new connections are accepted...
    let refused = Client::new()
        .get(service.url("/health"))
        .timeout(Duration::from_secs(1))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "SIG{signal}: new connections are refused while draining"
    );
    // ...but the request already in flight completes once the lock is released.
    lock.commit().await.expect("release");
    let response = in_flight
        .await
        .expect("task")
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["streamStatus"]["streamCount"], 2);
    let clean = tokio::task::spawn_blocking(move || service.wait_exit(Duration::from_secs(10)))
        .await
        .expect("task");
    assert!(clean, "SIG{signal}: exits with success after draining");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_cleanly() {
    in_flight_request_survives("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_drains_in_flight_requests_then_exits_cleanly() {
    in_flight_request_survives("INT").await;
}
