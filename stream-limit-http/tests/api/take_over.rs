//! Take-over and the heartbeat hint, over HTTP: a start that names the
//! stream it replaces, on every route family, and the interval every
//! admission and heartbeat reports.

use reqwest::{Method, StatusCode};
use serde_json::json as body;

use crate::helpers::*;

/// Default lease of heartbeating clients (`limits.heartbeat_ttl_secs`): 180 s.
const HEARTBEAT_INTERVAL: u64 = 60;

#[tokio::test]
async fn a_watch_take_over_at_the_limit_replaces_the_named_stream_and_its_heartbeat_is_gone() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let admitted = json(app.watch("tv-family").await, StatusCode::OK).await;
        assert_eq!(admitted["heartbeatIntervalSeconds"], HEARTBEAT_INTERVAL);
        ids.push(stream_id(&admitted));
    }
    let refused = json(app.watch("tv-family").await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(refused["code"], "stream_limit_reached");
    let path = format!("/watch?replaces={}", ids[1]);
    let taken = json(app.watch_path("tv-family", &path).await, StatusCode::OK).await;
    assert_eq!(taken["replaced"], ids[1].as_str());
    assert_eq!(taken["streamCount"], 3);
    let gone = json(
        app.session_request(
            Method::POST,
            "tv-family",
            &format!("/watch/streams/{}/heartbeat", ids[1]),
        )
        .await,
        StatusCode::GONE,
    )
    .await;
    assert_eq!(gone["reason"], "replaced");
    let extended = json(
        app.session_request(
            Method::POST,
            "tv-family",
            &format!("/watch/streams/{}/heartbeat", stream_id(&taken)),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(extended["heartbeatIntervalSeconds"], HEARTBEAT_INTERVAL);
}

#[tokio::test]
async fn a_rest_take_over_names_the_replaced_stream_in_the_body() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let created = json(
            app.request(Method::POST, "/api/users/80/streams").await,
            StatusCode::CREATED,
        )
        .await;
        ids.push(stream_id(&created));
    }
    let response = app
        .client
        .post(app.url("/api/users/80/streams"))
        .json(&body!({"replaces": ids[0], "deviceId": "tablet"}))
        .send()
        .await
        .expect("sent");
    let taken = json(response, StatusCode::CREATED).await;
    assert_eq!(taken["replaced"], ids[0].as_str());
    let list = json(app.get("/api/users/80/streams").await, StatusCode::OK).await;
    let active: Vec<_> = list["activeStreams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|lease| lease["streamId"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        active,
        vec![ids[1].clone(), ids[2].clone(), stream_id(&taken)]
    );
}

#[tokio::test]
async fn a_seed_take_over_and_the_seed_heartbeat_hint() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let body = json(app.start_seed("81").await, StatusCode::OK).await;
        // The seed lease (`limits.session_ttl_secs`, 4 h) over three.
        assert_eq!(body["streamStatus"]["heartbeatIntervalSeconds"], 4800);
        ids.push(
            body["streamStatus"]["streamId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let path = format!("/api/startstream/81?replaces={}", ids[2]);
    let body = json(app.get(&path).await, StatusCode::OK).await;
    assert_eq!(body["streamStatus"]["isNewStreamAllowed"], true);
    assert_eq!(body["streamStatus"]["replaced"], ids[2].as_str());
    let path = format!("/api/endstream/81?streamId={}", ids[2]);
    let body = json(app.get(&path).await, StatusCode::OK).await;
    assert_eq!(body["streamStatus"]["msg"], "stream already closed");
    assert_eq!(body["streamStatus"]["reason"], "replaced");
}

#[tokio::test]
async fn a_take_over_naming_no_active_stream_is_a_plain_start() {
    let app = spawn_app().await;
    for _ in 0..3 {
        json(app.watch("plain").await, StatusCode::OK).await;
    }
    let path = format!("/watch?replaces={}", uuid::Uuid::new_v4());
    json(
        app.watch_path("plain", &path).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let bad = json(
        app.watch_path("plain", "/watch?replaces=not-a-uuid").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(bad["msg"], "replaces must be a UUID");
}

#[tokio::test]
async fn a_rest_start_honours_the_query_and_refuses_a_body_that_disagrees_with_it() {
    let app = spawn_app().await;
    let named = uuid::Uuid::new_v4().to_string();
    let path = format!("/api/users/82/streams?streamId={named}");
    let created = json(app.request(Method::POST, &path).await, StatusCode::CREATED).await;
    assert_eq!(stream_id(&created), named);
    let replayed = json(app.request(Method::POST, &path).await, StatusCode::OK).await;
    assert_eq!(replayed["replayed"], true);
    let response = app
        .client
        .post(app.url(&path))
        .json(&body!({"streamId": uuid::Uuid::new_v4()}))
        .send()
        .await
        .expect("sent");
    let refused = json(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        refused["msg"],
        "streamId differs between the body and the query"
    );
    let response = app
        .client
        .post(app.url(&path))
        .json(&body!({"streamId": named}))
        .send()
        .await
        .expect("sent");
    json(response, StatusCode::OK).await;
}
