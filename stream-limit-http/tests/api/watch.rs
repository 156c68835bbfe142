//! `/watch`: the gateway's Session-Id viewers.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::helpers::*;

const BAD_SESSION: &str =
    r#"{"msg":"Session-Id header is missing or invalid","code":"invalid_session_id"}"#;

#[tokio::test]
async fn watch_without_a_usable_session_id_is_400() {
    let app = spawn_app().await;
    exact(
        app.get("/watch").await,
        StatusCode::BAD_REQUEST,
        BAD_SESSION,
    )
    .await;
    for bad in ["", "a b", "tab\there"] {
        let response = app.watch(bad).await;
        assert_eq!(echoed(&response), None, "{bad:?}");
        exact(response, StatusCode::BAD_REQUEST, BAD_SESSION).await;
    }
    // Printable but too long: refused, and not echoed either.
    let long = "s".repeat(129);
    let response = app.watch(&long).await;
    assert_eq!(echoed(&response), None);
    exact(response, StatusCode::BAD_REQUEST, BAD_SESSION).await;
    // Non-ASCII bytes: refused, not echoed.
    let response = app
        .client
        .get(app.url("/watch"))
        .header(
            "Session-Id",
            reqwest::header::HeaderValue::from_bytes(b"\xc3\xa9t\xc3\xa9").expect("obs-text"),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(echoed(&response), None);
    exact(response, StatusCode::BAD_REQUEST, BAD_SESSION).await;
}

#[tokio::test]
async fn an_admitted_watch_has_stream_id_count_expiry_and_echoes_the_session() {
    let app = spawn_app().await;
    let response = app.watch("gw-session-1").await;
    assert_eq!(echoed(&response).as_deref(), Some("gw-session-1"));
    let body = json(response, StatusCode::OK).await;
    assert!(uuid::Uuid::parse_str(&stream_id(&body)).is_ok(), "{body}");
    assert_eq!(body["streamCount"], 1);
    // Heartbeating clients get the short lease.
    assert_eq!(
        time(&body["expiresAt"]) - app.now(),
        chrono::Duration::seconds(180)
    );
}

#[tokio::test]
async fn the_fourth_watch_is_401_with_the_echo_and_the_active_streams() {
    let app = spawn_app().await;
    for _ in 0..3 {
        json(app.watch("s-4").await, StatusCode::OK).await;
    }
    let response = app.watch("s-4").await;
    assert_eq!(echoed(&response).as_deref(), Some("s-4"));
    let body = json(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["code"], "stream_limit_reached");
    assert_eq!(body["msg"], "stream limit reached");
    assert_eq!(
        (body["streamCount"].as_u64(), body["maxStreams"].as_u64()),
        (Some(3), Some(3))
    );
    let active = body["activeStreams"].as_array().expect("a list");
    assert_eq!(active.len(), 3);
    assert!(active.iter().all(|l| l["streamId"].is_string()
        && l["startedAt"].is_string()
        && l["expiresAt"].is_string()));
}

#[tokio::test]
async fn a_session_and_a_numeric_user_with_equal_text_never_share_a_count() {
    let app = spawn_app().await;
    for _ in 0..3 {
        json(app.watch("7").await, StatusCode::OK).await;
    }
    json(app.watch("7").await, StatusCode::UNAUTHORIZED).await;
    let body = json(app.start_seed("7").await, StatusCode::OK).await;
    assert_eq!(body["streamStatus"]["isNewStreamAllowed"], true);
    assert_eq!(body["streamStatus"]["streamCount"], 1);
}

#[tokio::test]
async fn a_heartbeat_extends_a_live_lease_by_the_ttl() {
    let app = spawn_app().await;
    let id = stream_id(&json(app.watch("hb").await, StatusCode::OK).await);
    app.advance(Duration::from_secs(170));
    let response = app
        .session_request(
            Method::POST,
            "hb",
            &format!("/watch/streams/{id}/heartbeat"),
        )
        .await;
    assert_eq!(echoed(&response).as_deref(), Some("hb"));
    let body = json(response, StatusCode::OK).await;
    assert_eq!(stream_id(&body), id);
    assert_eq!(
        time(&body["expiresAt"]) - app.now(),
        chrono::Duration::seconds(180)
    );
    // Without that heartbeat it would have expired by now.
    app.advance(Duration::from_secs(100));
    json(
        app.session_request(
            Method::POST,
            "hb",
            &format!("/watch/streams/{id}/heartbeat"),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn a_heartbeat_after_the_end_is_410_ended() {
    let app = spawn_app().await;
    let id = stream_id(&json(app.watch("e").await, StatusCode::OK).await);
    json(
        app.session_request(Method::DELETE, "e", &format!("/watch/streams/{id}"))
            .await,
        StatusCode::OK,
    )
    .await;
    let response = app
        .session_request(Method::POST, "e", &format!("/watch/streams/{id}/heartbeat"))
        .await;
    assert_eq!(echoed(&response).as_deref(), Some("e"));
    exact(
        response,
        StatusCode::GONE,
        r#"{"msg":"stream is no longer active","code":"stream_gone","reason":"ended"}"#,
    )
    .await;
}

#[tokio::test]
async fn a_heartbeat_after_expiry_is_410_expired_and_the_slot_is_free() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(stream_id(&json(app.watch("x").await, StatusCode::OK).await));
    }
    app.advance(Duration::from_secs(181));
    let body = json(
        app.session_request(
            Method::POST,
            "x",
            &format!("/watch/streams/{}/heartbeat", ids[0]),
        )
        .await,
        StatusCode::GONE,
    )
    .await;
    assert_eq!(body["reason"], "expired");
    // Crashed players do not lock the viewer out.
    let body = json(app.watch("x").await, StatusCode::OK).await;
    assert_eq!(body["streamCount"], 1);
}

#[tokio::test]
async fn a_heartbeat_for_an_unknown_or_malformed_stream_is_404_or_400() {
    let app = spawn_app().await;
    json(app.watch("u").await, StatusCode::OK).await;
    let unknown = uuid::Uuid::new_v4();
    exact(
        app.session_request(
            Method::POST,
            "u",
            &format!("/watch/streams/{unknown}/heartbeat"),
        )
        .await,
        StatusCode::NOT_FOUND,
        r#"{"msg":"stream not found","code":"stream_not_found"}"#,
    )
    .await;
    let body = json(
        app.session_request(Method::POST, "u", "/watch/streams/12/heartbeat")
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["code"], "invalid_stream_id");
    // Another session cannot touch this viewer's stream.
    let id = stream_id(&json(app.watch("u").await, StatusCode::OK).await);
    json(
        app.session_request(
            Method::POST,
            "other",
            &format!("/watch/streams/{id}/heartbeat"),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn ending_a_stream_twice_is_200_both_times() {
    let app = spawn_app().await;
    let id = stream_id(&json(app.watch("d").await, StatusCode::OK).await);
    let path = format!("/watch/streams/{id}");
    let response = app.session_request(Method::DELETE, "d", &path).await;
    assert_eq!(echoed(&response).as_deref(), Some("d"));
    exact(
        response,
        StatusCode::OK,
        &format!(r#"{{"streamId":"{id}","ended":true,"streamCount":0}}"#),
    )
    .await;
    exact(
        app.session_request(Method::DELETE, "d", &path).await,
        StatusCode::OK,
        &format!(r#"{{"streamId":"{id}","ended":false,"reason":"ended"}}"#),
    )
    .await;
    let unknown = uuid::Uuid::new_v4();
    json(
        app.session_request(Method::DELETE, "d", &format!("/watch/streams/{unknown}"))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn the_stream_list_shows_active_streams_with_device_and_content() {
    let app = spawn_app().await;
    json(
        app.watch_path("l", "/watch?deviceId=tv-1&contentId=film-9")
            .await,
        StatusCode::OK,
    )
    .await;
    let response = app.watch_path("l", "/watch/streams").await;
    assert_eq!(echoed(&response).as_deref(), Some("l"));
    let body = json(response, StatusCode::OK).await;
    assert_eq!(body["streamCount"], 1);
    assert_eq!(body["activeStreams"][0]["deviceId"], "tv-1");
    assert_eq!(body["activeStreams"][0]["contentId"], "film-9");
    let long = "d".repeat(129);
    json(
        app.watch_path("l", &format!("/watch?deviceId={long}"))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn the_same_idempotency_key_or_stream_id_takes_no_second_slot() {
    let app = spawn_app().await;
    let keyed = || {
        app.client
            .get(app.url("/watch"))
            .header("Session-Id", "i")
            .header("Idempotency-Key", "play-1")
    };
    let first = json(keyed().send().await.expect("sent"), StatusCode::OK).await;
    let again = json(keyed().send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(stream_id(&first), stream_id(&again));
    assert_eq!(
        (again["streamCount"].as_u64(), again["replayed"].as_bool()),
        (Some(1), Some(true))
    );
    let id = uuid::Uuid::new_v4();
    json(
        app.watch_path("i", &format!("/watch?streamId={id}")).await,
        StatusCode::OK,
    )
    .await;
    let body = json(
        app.watch_path("i", &format!("/watch?streamId={id}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (body["streamCount"].as_u64(), body["replayed"].as_bool()),
        (Some(2), Some(true))
    );
}
