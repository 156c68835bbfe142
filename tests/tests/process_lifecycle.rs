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

/// A second signal does not wait for the drain: with a request in flight that
/// would hold it for seconds (a body announced and never sent), the process
/// exits at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_without_waiting_for_the_drain() {
    use tokio::io::AsyncWriteExt;
    let mut service = Service::spawn(&[]).await;
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", service.port()))
        .await
        .expect("connect");
    stalled
        .write_all(b"POST /api/users/1/streams HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .expect("send the head");
    tokio::time::sleep(Duration::from_millis(300)).await;
    service.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    service.signal("TERM");
    let exited = tokio::task::spawn_blocking(move || service.wait_exit(Duration::from_secs(3)))
        .await
        .expect("task");
    // Without the second signal the drain lasts until the body deadline (5 s).
    assert!(exited, "the process exits after the second signal");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "exited {:?} after the second signal",
        started.elapsed()
    );
    drop(stalled);
}
