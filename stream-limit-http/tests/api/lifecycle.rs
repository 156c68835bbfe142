//! Building from settings, and stopping: both listeners close.

use std::time::Duration;

use reqwest::StatusCode;
use stream_limit_http::Application;

use crate::helpers::*;

#[tokio::test]
async fn an_app_built_from_settings_serves_and_stops_both_listeners_on_request() {
    let app = Application::build(admin_settings())
        .await
        .expect("builds on the in-memory store");
    let public = format!("http://127.0.0.1:{}", app.port());
    let admin = format!(
        "http://127.0.0.1:{}",
        app.admin_port().expect("admin enabled")
    );
    let stop = app.stop_handle();
    let running = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{public}/health"))
        .send()
        .await
        .expect("serving");
    assert_eq!(health.status(), StatusCode::OK);
    let admin_answer = client
        .get(format!("{admin}/nope"))
        .send()
        .await
        .expect("serving");
    assert_eq!(admin_answer.status(), StatusCode::UNAUTHORIZED);

    stop.stop(true).await;
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("stops in time")
        .expect("task")
        .expect("clean stop");
    let fresh = reqwest::Client::new();
    assert!(fresh.get(format!("{public}/health")).send().await.is_err());
    assert!(fresh.get(format!("{admin}/nope")).send().await.is_err());
}
