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
