//! The seed contract: `/api`, `/api/startstream/{id}`, `/api/endstream/{id}`.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::helpers::*;

const BAD_USER: &str = r#"{"msg":"user_id is invalid , needs to be a number"}"#;

/// Path segments that are not a non-negative 63-bit decimal number.
const BAD_USER_IDS: &[&str] = &[
    "abc",
    "-1",
    "+1",
    "%20",
    "1%20",
    "1.5",
    "0x10",
    "9223372036854775808",
    "99999999999999999999999999999999",
    "%E2%91%A0",
    "%EF%BC%91%EF%BC%92",
    "1;DROP%20TABLE%20users",
    "1%3BDROP%20TABLE%20users",
    "'%20OR%201=1--",
    "%00",
];

#[tokio::test]
async fn api_lists_get_api_and_every_listed_route_exists() {
    let app = spawn_app().await;
    let index = json(app.get("/api").await, StatusCode::OK).await;
    let routes = index.as_object().expect("an object");
    assert!(routes.contains_key("GET /api"), "{index}");
    assert!(routes.len() >= 13, "{index}");
    let stream = uuid::Uuid::new_v4().to_string();
    for key in routes.keys() {
        let (method, path) = key.split_once(' ').expect("METHOD /path");
        let path = path
            .replace(":user_id", "42")
            .replace(":stream_id", &stream);
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let response = app.session_request(method, "sess-1", &path).await;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED && body["msg"] != "Route not found",
            "{key} → {status} {body}"
        );
    }
}

#[tokio::test]
async fn three_starts_are_allowed_and_the_fourth_is_refused_with_200() {
    let app = spawn_app().await;
    for n in 1..=3 {
        let body = json(app.start_seed("42").await, StatusCode::OK).await;
        let status = &body["streamStatus"];
        assert_eq!(status["isNewStreamAllowed"], true, "{body}");
        assert_eq!(status["streamCount"], n, "{body}");
        assert!(
            status["streamId"].is_string() && status["expiresAt"].is_string(),
            "{body}"
        );
        assert!(
            status.get("degraded").is_none() && status.get("evicted").is_none(),
            "{body}"
        );
    }
    let body = json(app.start_seed("42").await, StatusCode::OK).await;
    let status = &body["streamStatus"];
    assert_eq!(status["isNewStreamAllowed"], false, "{body}");
    assert_eq!(status["streamCount"], 3, "{body}");
    assert_eq!(
        status["activeStreams"].as_array().map(Vec::len),
        Some(3),
        "{body}"
    );
    assert!(status.get("streamId").is_none(), "{body}");
}

#[tokio::test]
async fn a_bad_user_id_is_400_with_the_seed_body_on_start_and_end() {
    let app = spawn_app().await;
    for id in BAD_USER_IDS {
        exact(app.start_seed(id).await, StatusCode::BAD_REQUEST, BAD_USER).await;
        exact(
            app.get(&format!("/api/endstream/{id}")).await,
            StatusCode::BAD_REQUEST,
            BAD_USER,
        )
        .await;
    }
}

#[tokio::test]
async fn the_largest_63_bit_user_id_is_accepted() {
    let app = spawn_app().await;
    let body = json(app.start_seed("9223372036854775807").await, StatusCode::OK).await;
    assert_eq!(body["streamStatus"]["isNewStreamAllowed"], true);
}

#[tokio::test]
async fn endstream_closes_the_oldest_stream_and_reports_the_count_left() {
    let app = spawn_app().await;
    let first = json(app.start_seed("5").await, StatusCode::OK).await;
    json(app.start_seed("5").await, StatusCode::OK).await;
    exact(
        app.get("/api/endstream/5").await,
        StatusCode::OK,
        r#"{"streamStatus":{"msg":"stream closed","streamCount":1}}"#,
    )
    .await;
    // The oldest one went: ending it by id now reports it already closed.
    let first = first["streamStatus"]["streamId"]
        .as_str()
        .expect("id")
        .to_owned();
    exact(
        app.get(&format!("/api/endstream/5?streamId={first}")).await,
        StatusCode::OK,
        r#"{"streamStatus":{"msg":"stream already closed","streamCount":1,"reason":"ended"}}"#,
    )
    .await;
}

#[tokio::test]
async fn endstream_for_a_user_without_active_streams_is_400() {
    let app = spawn_app().await;
    json(app.start_seed("6").await, StatusCode::OK).await;
    json(app.get("/api/endstream/6").await, StatusCode::OK).await;
    exact(
        app.get("/api/endstream/6").await,
        StatusCode::BAD_REQUEST,
        r#"{"msg":"no active streams to close for user"}"#,
    )
    .await;
}

#[tokio::test]
async fn endstream_for_a_user_never_seen_is_400_not_present() {
    let app = spawn_app().await;
    exact(
        app.get("/api/endstream/77").await,
        StatusCode::BAD_REQUEST,
        r#"{"msg":"user_id not present in the database"}"#,
    )
    .await;
}

#[tokio::test]
async fn endstream_with_a_stream_id_ends_that_stream() {
    let app = spawn_app().await;
    json(app.start_seed("8").await, StatusCode::OK).await;
    let second = json(app.start_seed("8").await, StatusCode::OK).await;
    let second = second["streamStatus"]["streamId"]
        .as_str()
        .expect("id")
        .to_owned();
    exact(
        app.get(&format!("/api/endstream/8?streamId={second}"))
            .await,
        StatusCode::OK,
        r#"{"streamStatus":{"msg":"stream closed","streamCount":1}}"#,
    )
    .await;
    let unknown = uuid::Uuid::new_v4();
    let body = json(
        app.get(&format!("/api/endstream/8?streamId={unknown}"))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(body["code"], "stream_not_found");
    let body = json(
        app.get("/api/endstream/8?streamId=nope").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["code"], "invalid_stream_id");
}

#[tokio::test]
async fn a_retried_start_with_the_same_stream_id_takes_no_second_slot() {
    let app = spawn_app().await;
    let id = uuid::Uuid::new_v4();
    let path = format!("/api/startstream/9?streamId={id}");
    let first = json(app.get(&path).await, StatusCode::OK).await;
    let again = json(app.get(&path).await, StatusCode::OK).await;
    assert_eq!(first["streamStatus"]["streamCount"], 1);
    assert_eq!(again["streamStatus"]["streamCount"], 1, "{again}");
    assert_eq!(again["streamStatus"]["streamId"], id.to_string());
    assert_eq!(again["streamStatus"]["replayed"], true);
    let body = json(
        app.get(&format!("/api/startstream/9?streamId={}", "x".repeat(40)))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["code"], "invalid_stream_id");
}

#[tokio::test]
async fn restarting_an_ended_stream_id_is_410_gone() {
    let app = spawn_app().await;
    let id = uuid::Uuid::new_v4();
    json(
        app.get(&format!("/api/startstream/10?streamId={id}")).await,
        StatusCode::OK,
    )
    .await;
    json(
        app.get(&format!("/api/endstream/10?streamId={id}")).await,
        StatusCode::OK,
    )
    .await;
    exact(
        app.get(&format!("/api/startstream/10?streamId={id}")).await,
        StatusCode::GONE,
        r#"{"msg":"stream already ended","code":"stream_gone","reason":"ended"}"#,
    )
    .await;
}

#[tokio::test]
async fn seed_starts_get_the_long_session_lease_and_outlive_the_heartbeat_ttl() {
    let app = spawn_app().await;
    let body = json(app.start_seed("11").await, StatusCode::OK).await;
    let expires = time(&body["streamStatus"]["expiresAt"]);
    assert_eq!(expires - app.now(), chrono::Duration::seconds(14_400));
    // Ten minutes without any heartbeat: a seed client's stream still counts.
    app.advance(Duration::from_secs(600));
    let body = json(app.start_seed("11").await, StatusCode::OK).await;
    assert_eq!(body["streamStatus"]["streamCount"], 2, "{body}");
}

#[tokio::test]
async fn the_seed_routes_answer_405_to_other_methods() {
    let app = spawn_app().await;
    for path in ["/api", "/api/startstream/1", "/api/endstream/1"] {
        for method in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ] {
            exact(
                app.request(method, path).await,
                StatusCode::METHOD_NOT_ALLOWED,
                r#"{"msg":"Method not allowed"}"#,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn head_is_served_like_get() {
    let app = spawn_app().await;
    for path in ["/api", "/health", "/api/startstream/12"] {
        let response = app.request(Method::HEAD, path).await;
        assert_eq!(response.status(), StatusCode::OK, "HEAD {path}");
        assert_json_type(&response);
        assert!(response.bytes().await.expect("body").is_empty());
    }
}
