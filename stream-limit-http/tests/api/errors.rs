//! Unknown routes, wrong methods, oversized and malformed input: always JSON, never 5xx.

use reqwest::{Method, StatusCode};

use crate::helpers::*;

const NOT_FOUND: &str = r#"{"msg":"Route not found"}"#;
const NOT_ALLOWED: &str = r#"{"msg":"Method not allowed"}"#;

#[tokio::test]
async fn unknown_paths_are_404_route_not_found() {
    let app = spawn_app().await;
    for path in [
        "/",
        "/nope",
        "/api/",
        "/api/startstream",
        "/api/startstream/",
        "/api/startstream/1/extra",
        "/api/startstream/1/",
        "/api/startstreams/1",
        "/api/endstream",
        "/api/endstream/",
        "/api/endstream/1/extra",
        "/api/users/1",
        "/healthz",
        "/watch/nope",
        "/%FF%FE",
        "/api/startstream/1/%2e%2e/%2e%2e/etc/passwd",
    ] {
        exact(app.get(path).await, StatusCode::NOT_FOUND, NOT_FOUND).await;
    }
    // A wrong method on an unknown path is still 404, not 405.
    for path in ["/nope", "/api/startstream/1/extra", "/api/endstream/"] {
        exact(
            app.request(Method::POST, path).await,
            StatusCode::NOT_FOUND,
            NOT_FOUND,
        )
        .await;
    }
}

#[tokio::test]
async fn wrong_methods_on_other_routes_are_405_json_too() {
    let app = spawn_app().await;
    let stream = uuid::Uuid::new_v4();
    for (method, path) in [
        (Method::POST, "/health".to_owned()),
        (Method::DELETE, "/health/ready".to_owned()),
        (Method::POST, "/watch".to_owned()),
        (Method::PUT, "/watch/streams".to_owned()),
        (Method::GET, format!("/watch/streams/{stream}/heartbeat")),
        (Method::PUT, "/api/users/1/streams".to_owned()),
        (Method::GET, format!("/api/users/1/streams/{stream}")),
    ] {
        exact(
            app.request(method, &path).await,
            StatusCode::METHOD_NOT_ALLOWED,
            NOT_ALLOWED,
        )
        .await;
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_json() {
    let mut settings = test_settings();
    settings.server.max_body_bytes = 256;
    let app = spawn_with(settings).await;
    let body = format!(r#"{{"deviceId":"{}"}}"#, "a".repeat(1000));
    let response = app
        .client
        .post(app.url("/api/users/1/streams"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("sent");
    exact(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        r#"{"msg":"request body too large","code":"payload_too_large"}"#,
    )
    .await;
}

#[tokio::test]
async fn malformed_json_and_query_strings_are_400_json() {
    let app = spawn_app().await;
    for body in [
        "{",
        "[]",
        r#"{"streamId": 5}"#,
        r#"{"deviceId": {"a": 1}}"#,
        "\u{0}",
    ] {
        let response = app
            .client
            .post(app.url("/api/users/1/streams"))
            .body(body)
            .send()
            .await
            .expect("sent");
        let json = json(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(json["code"], "bad_request", "{body}: {json}");
    }
    let json = json(
        app.get("/api/startstream/1?streamId=%FF%FE").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(json["msg"].is_string());
}

#[tokio::test]
async fn hostile_headers_never_produce_a_5xx() {
    let app = spawn_app().await;
    for value in ["%00", "' OR 1=1 --", "<script>", &"x".repeat(8000)] {
        let response = app
            .client
            .post(app.url("/api/users/1/streams"))
            .header("Idempotency-Key", value)
            .send()
            .await
            .expect("sent");
        assert!(
            !response.status().is_server_error(),
            "{value}: {}",
            response.status()
        );
        assert_json_type(&response);
    }
}

/// Postgres `text` cannot hold U+0000, so a NUL in a label once gave 500 on
/// Postgres and 201 in memory. Every start route refuses control characters in
/// `deviceId` and `contentId` with a 400, before any store sees them.
#[tokio::test]
async fn control_characters_in_labels_are_400_on_every_start_route() {
    let app = spawn_app().await;
    // The same label as a query string (seed, /watch) and as a JSON body (REST).
    for (query, body) in [
        ("deviceId=a%00b", r#"{"deviceId":"a\u0000b"}"#),
        ("contentId=%00", r#"{"contentId":"\u0000"}"#),
        ("deviceId=%1B%5B31m", r#"{"deviceId":"\u001b[31m"}"#),
    ] {
        let watch = app
            .client
            .get(app.url(&format!("/watch?{query}")))
            .header("Session-Id", "s1")
            .send()
            .await
            .expect("sent");
        let seed = app.get(&format!("/api/startstream/1?{query}")).await;
        let rest = app
            .client
            .post(app.url("/api/users/1/streams"))
            .body(body)
            .send()
            .await
            .expect("sent");
        for response in [watch, seed, rest] {
            let json = json(response, StatusCode::BAD_REQUEST).await;
            assert!(
                json["msg"]
                    .as_str()
                    .is_some_and(|m| m.contains("control characters")),
                "{query}: {json}"
            );
        }
    }
    // Nothing was admitted along the way.
    let listed = json(app.get("/api/users/1/streams").await, StatusCode::OK).await;
    assert_eq!(listed["streamCount"], 0, "{listed}");
}

#[tokio::test]
async fn a_405_names_the_methods_the_path_has() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        (Method::POST, "/api/startstream/1", "GET, HEAD"),
        (Method::PUT, "/health", "GET, HEAD"),
        (Method::PUT, "/api/users/1/streams", "GET, HEAD, POST"),
        (Method::GET, "/watch/streams/x/heartbeat", "POST"),
    ] {
        let response = app.request(method.clone(), path).await;
        let sent = response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(sent.as_deref(), Some(allow), "{method} {path}");
        exact(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"msg":"Method not allowed"}"#,
        )
        .await;
    }
}

#[tokio::test]
async fn a_body_or_query_that_does_not_parse_says_why() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/users/5/streams"))
        .header("Content-Type", "application/json")
        .body(r#"{"deviceId": 7}"#)
        .send()
        .await
        .expect("sent");
    let body = json(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["code"], "bad_request");
    let msg = body["msg"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("request body is not valid JSON for this route: invalid type: integer `7`"),
        "{msg}"
    );
    let long = format!(r#"{{"deviceId": {}}}"#, "[".repeat(1000));
    let response = app
        .client
        .post(app.url("/api/users/5/streams"))
        .body(long)
        .send()
        .await
        .expect("sent");
    let body = json(response, StatusCode::BAD_REQUEST).await;
    let msg = body["msg"].as_str().unwrap_or_default();
    assert!(msg.chars().count() <= 250, "{msg}");
    let body = json(
        app.get("/api/startstream/5?streamId=a&streamId=b").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let msg = body["msg"].as_str().unwrap_or_default();
    assert!(msg.starts_with("invalid query string: "), "{msg}");
    assert!(msg.contains("streamId"), "{msg}");
}
