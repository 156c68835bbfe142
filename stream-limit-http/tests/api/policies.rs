//! `on_limit` and `on_store_error`, chosen in settings.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use stream_limit_core::{ManualClock, OnLimit, OnStoreError};

use crate::helpers::*;

#[tokio::test]
async fn evict_oldest_admits_the_new_stream_and_the_oldest_learns_it_was_evicted() {
    let mut settings = test_settings();
    settings.limits.on_limit = OnLimit::EvictOldest;
    let app = spawn_with(settings).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(stream_id(
            &json(app.watch("ev").await, StatusCode::OK).await,
        ));
    }
    let body = json(app.watch("ev").await, StatusCode::OK).await;
    assert_eq!(body["streamCount"], 3);
    assert_eq!(body["evicted"], serde_json::json!([ids[0]]));
    let body = json(
        app.session_request(
            Method::POST,
            "ev",
            &format!("/watch/streams/{}/heartbeat", ids[0]),
        )
        .await,
        StatusCode::GONE,
    )
    .await;
    assert_eq!(body["reason"], "evicted");
    // The seed route reports evictions too.
    for _ in 0..4 {
        json(app.start_seed("50").await, StatusCode::OK).await;
    }
    let body = json(app.start_seed("50").await, StatusCode::OK).await;
    assert_eq!(body["streamStatus"]["isNewStreamAllowed"], true);
    assert_eq!(
        body["streamStatus"]["evicted"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn a_failing_store_with_allow_admits_starts_marked_degraded() {
    let mut store = mock_store();
    store.expect_start().returning(|_| Err(store_down()));
    let mut settings = test_settings();
    settings.limits.on_store_error = OnStoreError::Allow;
    let app = spawn_on(settings, Arc::new(store), Arc::new(ManualClock::default())).await;
    let body = json(app.start_seed("1").await, StatusCode::OK).await;
    assert_eq!(body["streamStatus"]["isNewStreamAllowed"], true);
    assert_eq!(body["streamStatus"]["degraded"], true);
    let body = json(app.watch("s").await, StatusCode::OK).await;
    assert_eq!(body["degraded"], true);
    let body = json(
        app.request(Method::POST, "/api/users/1/streams").await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(body["degraded"], true);
    // The fallback is a local limit, not an open door: user 9's fourth start
    // is refused by this instance's own book.
    for n in 1..=4 {
        let body = json(app.start_seed("9").await, StatusCode::OK).await;
        assert_eq!(body["streamStatus"]["isNewStreamAllowed"], n <= 3, "{body}");
    }
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("stream_limit_degraded_admissions_total 6"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_failing_store_with_deny_is_503_without_internal_details() {
    let mut store = mock_store();
    store.expect_start().returning(|_| Err(store_down()));
    store.expect_heartbeat().returning(|_, _| Err(store_down()));
    store.expect_end_oldest().returning(|_| Err(store_down()));
    let mut settings = test_settings();
    settings.limits.on_store_error = OnStoreError::Deny;
    let app = spawn_on(settings, Arc::new(store), Arc::new(ManualClock::default())).await;
    const DOWN: &str = r#"{"msg":"store unavailable","code":"store_unavailable"}"#;
    exact(
        app.start_seed("1").await,
        StatusCode::SERVICE_UNAVAILABLE,
        DOWN,
    )
    .await;
    exact(app.watch("s").await, StatusCode::SERVICE_UNAVAILABLE, DOWN).await;
    exact(
        app.get("/api/endstream/1").await,
        StatusCode::SERVICE_UNAVAILABLE,
        DOWN,
    )
    .await;
    let id = uuid::Uuid::new_v4();
    exact(
        app.request(
            Method::POST,
            &format!("/api/users/1/streams/{id}/heartbeat"),
        )
        .await,
        StatusCode::SERVICE_UNAVAILABLE,
        DOWN,
    )
    .await;
}
