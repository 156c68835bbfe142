//! REST leases of numeric users: `/api/users/{user_id}/streams`.

use reqwest::{Method, StatusCode};
use serde_json::json as body;

use crate::helpers::*;

#[tokio::test]
async fn a_rest_start_is_201_with_a_location() {
    let app = spawn_app().await;
    let response = app.request(Method::POST, "/api/users/3/streams").await;
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let created = json(response, StatusCode::CREATED).await;
    assert_eq!(
        location,
        Some(format!("/api/users/3/streams/{}", stream_id(&created)))
    );
    assert_eq!(created["streamCount"], 1);
    assert!(created["expiresAt"].is_string());
}

#[tokio::test]
async fn a_rest_start_takes_an_optional_json_body() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/users/4/streams"))
        .json(&body!({"deviceId": "phone", "contentId": "ep-1"}))
        .send()
        .await
        .expect("sent");
    json(response, StatusCode::CREATED).await;
    let list = json(app.get("/api/users/4/streams").await, StatusCode::OK).await;
    assert_eq!(list["streamCount"], 1);
    assert_eq!(list["activeStreams"][0]["deviceId"], "phone");
}

#[tokio::test]
async fn repeating_a_rest_start_with_the_same_stream_id_or_key_is_200_and_takes_no_slot() {
    let app = spawn_app().await;
    let id = uuid::Uuid::new_v4().to_string();
    let start = || {
        app.client
            .post(app.url("/api/users/5/streams"))
            .json(&body!({"streamId": id}))
    };
    let first = json(start().send().await.expect("sent"), StatusCode::CREATED).await;
    let again = json(start().send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(
        (stream_id(&first), stream_id(&again)),
        (id.clone(), id.clone())
    );
    assert_eq!(
        (again["streamCount"].as_u64(), again["replayed"].as_bool()),
        (Some(1), Some(true))
    );

    let keyed = || {
        app.client
            .post(app.url("/api/users/5/streams"))
            .header("Idempotency-Key", "k-1")
    };
    let first = json(keyed().send().await.expect("sent"), StatusCode::CREATED).await;
    let again = json(keyed().send().await.expect("sent"), StatusCode::OK).await;
    assert_eq!(stream_id(&first), stream_id(&again));
    assert_eq!(again["streamCount"], 2);
}

#[tokio::test]
async fn the_fourth_rest_start_is_409_listing_the_active_streams() {
    let app = spawn_app().await;
    for _ in 0..3 {
        json(
            app.request(Method::POST, "/api/users/6/streams").await,
            StatusCode::CREATED,
        )
        .await;
    }
    let body = json(
        app.request(Method::POST, "/api/users/6/streams").await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(body["code"], "stream_limit_reached");
    assert_eq!(body["maxStreams"], 3);
    assert_eq!(body["activeStreams"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn rest_heartbeat_and_end_follow_the_lease() {
    let app = spawn_app().await;
    let id = stream_id(
        &json(
            app.request(Method::POST, "/api/users/7/streams").await,
            StatusCode::CREATED,
        )
        .await,
    );
    let heartbeat = format!("/api/users/7/streams/{id}/heartbeat");
    let stream = format!("/api/users/7/streams/{id}");
    let body = json(app.request(Method::POST, &heartbeat).await, StatusCode::OK).await;
    assert_eq!(stream_id(&body), id);
    let body = json(app.request(Method::DELETE, &stream).await, StatusCode::OK).await;
    assert_eq!(
        (body["ended"].as_bool(), body["streamCount"].as_u64()),
        (Some(true), Some(0))
    );
    let body = json(app.request(Method::DELETE, &stream).await, StatusCode::OK).await;
    assert_eq!(
        (body["ended"].as_bool(), body["reason"].as_str()),
        (Some(false), Some("ended"))
    );
    let body = json(
        app.request(Method::POST, &heartbeat).await,
        StatusCode::GONE,
    )
    .await;
    assert_eq!(body["reason"], "ended");
    // Another user's path does not reach this stream.
    json(
        app.request(Method::DELETE, &format!("/api/users/8/streams/{id}"))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn rest_routes_refuse_a_bad_user_id_with_the_seed_body() {
    let app = spawn_app().await;
    exact(
        app.request(Method::POST, "/api/users/-4/streams").await,
        StatusCode::BAD_REQUEST,
        r#"{"msg":"user_id is invalid , needs to be a number"}"#,
    )
    .await;
}

/// An empty chunked body means "no body", as a missing one does: the start
/// is admitted rather than refused as "not valid JSON".
#[tokio::test]
async fn an_empty_chunked_body_starts_like_no_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let host = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    stream
        .write_all(
            b"POST /api/users/31/streams HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
              Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        )
        .await
        .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("read");
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
}
