//! `/health` and `/health/ready`.

use std::sync::Arc;

use reqwest::StatusCode;
use stream_limit_core::ManualClock;

use crate::helpers::*;

#[tokio::test]
async fn health_is_up_without_asking_the_store() {
    // The mock has no `ping` expectation: a store call would fail the request.
    let app = spawn_on(
        test_settings(),
        Arc::new(mock_store()),
        Arc::new(ManualClock::default()),
    )
    .await;
    exact(
        app.get("/health").await,
        StatusCode::OK,
        r#"{"status":"UP"}"#,
    )
    .await;
}

#[tokio::test]
async fn readiness_is_up_when_the_store_answers() {
    let app = spawn_app().await;
    exact(
        app.get("/health/ready").await,
        StatusCode::OK,
        r#"{"status":"UP"}"#,
    )
    .await;
}

#[tokio::test]
async fn readiness_is_503_down_when_the_store_does_not_answer() {
    let mut store = mock_store();
    store.expect_ping().returning(|| Err(store_down()));
    let app = spawn_on(
        test_settings(),
        Arc::new(store),
        Arc::new(ManualClock::default()),
    )
    .await;
    exact(
        app.get("/health/ready").await,
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"status":"DOWN","msg":"store unavailable"}"#,
    )
    .await;
}

/// `/health/ready` is public: a client polling it in a loop costs the store at
/// most one ping per second of this instance, not one per poll.
#[tokio::test]
async fn readiness_answers_are_reused_for_a_second() {
    let pings = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut store = mock_store();
    let counted = pings.clone();
    store.expect_ping().returning(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    });
    let app = spawn_on(
        test_settings(),
        Arc::new(store),
        Arc::new(ManualClock::default()),
    )
    .await;
    let started = std::time::Instant::now();
    for _ in 0..50 {
        assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);
    }
    let pinged = pings.load(std::sync::atomic::Ordering::SeqCst);
    // Fifty polls within the first second share one ping; a slow machine may
    // straddle the second, and so two.
    let bound = if started.elapsed() < std::time::Duration::from_secs(1) {
        1
    } else {
        2
    };
    assert!((1..=bound).contains(&pinged), "{pinged} pings for 50 polls");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);
    assert!(
        pings.load(std::sync::atomic::Ordering::SeqCst) > pinged,
        "a stale answer is renewed"
    );
}
