//! The limit under concurrent requests over real sockets.

use reqwest::StatusCode;
use tokio::task::JoinSet;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_starts_for_one_user_admit_exactly_three() {
    let app = spawn_app().await;
    let mut starts = JoinSet::new();
    for _ in 0..200 {
        let client = app.client.clone();
        let url = app.url("/api/startstream/1000");
        starts.spawn(async move { client.get(url).send().await });
    }
    let mut admitted = 0;
    while let Some(result) = starts.join_next().await {
        let response = result.expect("task").expect("request");
        let body = json(response, StatusCode::OK).await;
        if body["streamStatus"]["isNewStreamAllowed"] == true {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3);
    let listed = json(app.get("/api/users/1000/streams").await, StatusCode::OK).await;
    assert_eq!(listed["streamCount"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_watches_for_one_session_admit_exactly_three() {
    let app = spawn_app().await;
    let mut starts = JoinSet::new();
    for _ in 0..200 {
        let request = app
            .client
            .get(app.url("/watch"))
            .header("Session-Id", "busy");
        starts.spawn(async move { request.send().await.map(|r| r.status()) });
    }
    let mut admitted = 0;
    while let Some(result) = starts.join_next().await {
        match result.expect("task").expect("request") {
            StatusCode::OK => admitted += 1,
            StatusCode::UNAUTHORIZED => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(admitted, 3);
}
