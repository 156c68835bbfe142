//! `/metrics`: Prometheus text that counts what the limiter decided.

use reqwest::StatusCode;

use crate::helpers::*;

/// The value of one sample line, e.g. `stream_limit_starts_total{outcome="admitted"}`.
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
        sample(&text, r#"stream_limit_starts_total{outcome="admitted"}"#),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, r#"stream_limit_starts_total{outcome="refused"}"#),
        Some(1.0)
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
}
