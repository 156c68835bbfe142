//! The admin listener.

use reqwest::{Method, StatusCode};

use crate::helpers::*;

const UNAUTHORIZED: &str = r#"{"msg":"missing or invalid X-API-Key","code":"unauthorized"}"#;

#[tokio::test]
async fn without_a_key_there_is_no_admin_listener() {
    let app = spawn_app().await;
    assert!(app.admin_address.is_none());
    // And the admin routes are not on the public port.
    exact(
        app.get("/admin/viewers/user:1/streams").await,
        StatusCode::NOT_FOUND,
        r#"{"msg":"Route not found"}"#,
    )
    .await;
}

#[tokio::test]
async fn every_admin_request_needs_the_exact_key() {
    let app = spawn_with(admin_settings()).await;
    let path = "/admin/viewers/user:1/streams";
    let wrong_last_byte = format!("{}X", &ADMIN_KEY[..ADMIN_KEY.len() - 1]);
    let longer = format!("{ADMIN_KEY}0");
    for key in [
        None,
        Some(""),
        Some("nope"),
        Some(wrong_last_byte.as_str()),
        Some(longer.as_str()),
    ] {
        exact(
            app.admin(Method::GET, path, key).await,
            StatusCode::UNAUTHORIZED,
            UNAUTHORIZED,
        )
        .await;
    }
    exact(
        app.admin(Method::GET, "/nope", None).await,
        StatusCode::UNAUTHORIZED,
        UNAUTHORIZED,
    )
    .await;
    let body = json(
        app.admin(Method::GET, path, Some(ADMIN_KEY)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["viewer"], "user:1");
    assert_eq!(body["streamCount"], 0);
    exact(
        app.admin(Method::GET, "/nope", Some(ADMIN_KEY)).await,
        StatusCode::NOT_FOUND,
        r#"{"msg":"Route not found"}"#,
    )
    .await;
    exact(
        app.admin(Method::POST, path, Some(ADMIN_KEY)).await,
        StatusCode::METHOD_NOT_ALLOWED,
        r#"{"msg":"Method not allowed"}"#,
    )
    .await;
    let body = json(
        app.admin(Method::GET, "/admin/viewers/7/streams", Some(ADMIN_KEY))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["code"], "invalid_viewer");
}

/// Two `X-API-Key` headers are refused even when one of them is right.
#[tokio::test]
async fn two_api_key_headers_are_refused_whichever_comes_first() {
    let app = spawn_with(admin_settings()).await;
    let url = format!(
        "{}/admin/viewers/user:1/streams",
        app.admin_address.as_deref().expect("admin listener")
    );
    for (first, second) in [
        (ADMIN_KEY, "nope"),
        ("nope", ADMIN_KEY),
        (ADMIN_KEY, ADMIN_KEY),
    ] {
        let response = app
            .client
            .get(&url)
            .header("X-API-Key", first)
            .header("X-API-Key", second)
            .send()
            .await
            .expect("sent");
        exact(response, StatusCode::UNAUTHORIZED, UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn a_revoked_stream_answers_its_next_heartbeat_with_410_revoked() {
    let app = spawn_with(admin_settings()).await;
    let id = stream_id(&json(app.watch("victim").await, StatusCode::OK).await);
    let listed = json(
        app.admin(
            Method::GET,
            "/admin/viewers/session:victim/streams",
            Some(ADMIN_KEY),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stream_id(&listed["activeStreams"][0]), id);
    let revoke = format!("/admin/viewers/session:victim/streams/{id}");
    let body = json(
        app.admin(Method::DELETE, &revoke, Some(ADMIN_KEY)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["ended"], true);
    let body = json(
        app.admin(Method::DELETE, &revoke, Some(ADMIN_KEY)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (body["ended"].as_bool(), body["reason"].as_str()),
        (Some(false), Some("revoked"))
    );
    let body = json(
        app.session_request(
            Method::POST,
            "victim",
            &format!("/watch/streams/{id}/heartbeat"),
        )
        .await,
        StatusCode::GONE,
    )
    .await;
    assert_eq!(body["reason"], "revoked");
}

#[tokio::test]
async fn a_limit_of_one_refuses_the_second_start_until_cleared() {
    let app = spawn_with(admin_settings()).await;
    let set = |limit: serde_json::Value| {
        app.client
            .put(format!(
                "{}/admin/viewers/user:20/limit",
                app.admin_address.as_deref().unwrap_or_default()
            ))
            .header("X-API-Key", ADMIN_KEY)
            .json(&serde_json::json!({ "maxStreams": limit }))
            .send()
    };
    let body = json(set(1.into()).await.expect("sent"), StatusCode::OK).await;
    assert_eq!(body["maxStreams"], 1);
    json(app.start_seed("20").await, StatusCode::OK).await;
    let body = json(app.start_seed("20").await, StatusCode::OK).await;
    assert_eq!(body["streamStatus"]["isNewStreamAllowed"], false);
    let body = json(
        set(serde_json::Value::Null).await.expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert!(body["maxStreams"].is_null());
    let body = json(app.start_seed("20").await, StatusCode::OK).await;
    assert_eq!(body["streamStatus"]["streamCount"], 2);
    for bad in [0.into(), 1001.into(), (-1).into(), "three".into()] {
        json(set(bad).await.expect("sent"), StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn history_lists_how_each_stream_ended_newest_first() {
    let app = spawn_with(admin_settings()).await;
    let ended = stream_id(&json(app.watch("h").await, StatusCode::OK).await);
    json(
        app.session_request(Method::DELETE, "h", &format!("/watch/streams/{ended}"))
            .await,
        StatusCode::OK,
    )
    .await;
    let revoked = stream_id(&json(app.watch("h").await, StatusCode::OK).await);
    app.advance(std::time::Duration::from_secs(42));
    let revoke = format!("/admin/viewers/session:h/streams/{revoked}");
    json(
        app.admin(Method::DELETE, &revoke, Some(ADMIN_KEY)).await,
        StatusCode::OK,
    )
    .await;
    let body = json(
        app.admin(
            Method::GET,
            "/admin/viewers/session:h/history",
            Some(ADMIN_KEY),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let history = body["history"].as_array().expect("a list");
    let seen: Vec<_> = history
        .iter()
        .map(|r| (stream_id(r), r["reason"].as_str().map(str::to_owned)))
        .collect();
    assert_eq!(
        seen,
        vec![
            (revoked, Some("revoked".to_owned())),
            (ended, Some("ended".to_owned()))
        ]
    );
    assert_eq!(history[0]["durationSeconds"], 42);
    let body = json(
        app.admin(
            Method::GET,
            "/admin/viewers/session:h/history?limit=1",
            Some(ADMIN_KEY),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["history"].as_array().map(Vec::len), Some(1));
    json(
        app.admin(
            Method::GET,
            "/admin/viewers/session:h/history?limit=-1",
            Some(ADMIN_KEY),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}
