//! `/metrics`: Prometheus text that counts what the limiter decided.

use reqwest::StatusCode;

use crate::helpers::*;

/// The value of one sample line, e.g. `stream_limit_store_up`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_admissions_refusals_and_store_latency() {
    let app = spawn_app().await;
    for _ in 0..4 {
        app.get("/api/startstream/8").await;
    }
    app.get("/api/endstream/8").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.expect("body");
    assert_eq!(
        sample(
            &text,
            r#"stream_limit_starts_total{outcome="admitted",route="seed"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"stream_limit_starts_total{outcome="refused",route="seed"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"stream_limit_starts_total{outcome="admitted",route="watch"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"stream_limit_ends_total{outcome="ended"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"stream_limit_store_seconds_count{operation="start"}"#
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"stream_limit_http_requests_total{code="2xx",route="seed"}"#
        ),
        Some(5.0)
    );
    assert_eq!(sample(&text, "stream_limit_store_up"), Some(1.0));
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_class() {
    let app = spawn_app().await;
    app.get("/watch").await; // 400: no Session-Id
    app.get("/nowhere").await; // 404
    app.get("/api/users/5/streams").await; // 200
    app.get("/health").await;
    let text = app.get("/metrics").await.text().await.expect("body");
    for (series, value) in [
        (
            r#"stream_limit_http_requests_total{code="4xx",route="watch"}"#,
            1.0,
        ),
        (
            r#"stream_limit_http_requests_total{code="4xx",route="other"}"#,
            1.0,
        ),
        (
            r#"stream_limit_http_requests_total{code="2xx",route="rest"}"#,
            1.0,
        ),
        (
            r#"stream_limit_http_requests_total{code="2xx",route="ops"}"#,
            1.0,
        ),
        (
            r#"stream_limit_http_requests_total{code="5xx",route="seed"}"#,
            0.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series}\n{text}");
    }
}

#[tokio::test]
async fn the_sweeper_reports_active_leases_and_its_last_success() {
    let mut settings = test_settings();
    settings.sweeper.interval_secs = 1;
    let app = spawn_with(settings).await;
    for user in ["1", "1", "2"] {
        app.get(&format!("/api/startstream/{user}")).await;
    }
    // The gauge is the sweeper's: it changes at its next tick.
    let mut text = String::new();
    for _ in 0..50 {
        text = app.get("/metrics").await.text().await.expect("body");
        if sample(&text, r#"stream_limit_leases{state="active"}"#) == Some(3.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        sample(&text, r#"stream_limit_leases{state="active"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"stream_limit_leases{state="unswept"}"#),
        Some(0.0)
    );
    assert_eq!(sample(&text, "stream_limit_sweeper_lag_seconds"), Some(0.0));
    let last = sample(&text, "stream_limit_sweeper_last_success_timestamp_seconds")
        .expect("a tick succeeded");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    assert!((now - 10.0..=now).contains(&last), "{last} vs {now}");
    assert!(sample(&text, r#"stream_limit_sweeper_ticks_total{result="ok"}"#) >= Some(1.0));
}

#[tokio::test]
async fn an_unreachable_store_shows_as_store_up_0() {
    let mut store = mock_store();
    store.expect_start().returning(|_| Err(store_down()));
    let mut settings = test_settings();
    settings.limits.on_store_error = stream_limit_core::OnStoreError::Deny;
    let app = spawn_on(
        settings,
        std::sync::Arc::new(store),
        std::sync::Arc::new(stream_limit_core::ManualClock::default()),
    )
    .await;
    app.get("/api/startstream/1").await;
    let text = app.get("/metrics").await.text().await.expect("body");
    assert_eq!(sample(&text, "stream_limit_store_up"), Some(0.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"stream_limit_starts_total{outcome="error",route="seed"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"stream_limit_http_requests_total{code="5xx",route="seed"}"#
        ),
        Some(1.0),
        "{text}"
    );
}
