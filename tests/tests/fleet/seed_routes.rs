//! The contract's seed routes, the gateway's route and the REST start answer
//! exactly through the load balancer, and every instance sees one store.

use reqwest::StatusCode;
use serde_json::json;
use stream_limit_tests::fleet::{answer, walk_seed_routes, Answer, Fleet, LIMIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_seed_routes_answer_exactly_through_the_load_balancer() {
    let fleet = Fleet::start().await;
    let http = &fleet.http;
    let get = |path: &str| http.get(fleet.lb(path));
    let exact = |answer: &Answer, status: u16, body: &str| {
        assert_eq!(
            (answer.status.as_u16(), answer.body.as_str()),
            (status, body)
        );
    };

    let instances: Vec<String> = fleet.instances.iter().map(|i| i.url("")).collect();
    walk_seed_routes(http, &|path| fleet.lb(path), &instances).await;

    // The gateway's route: Session-Id goes through nginx and comes back.
    let watch = |session: Option<&str>| {
        let request = http.get(fleet.lb("/watch"));
        match session {
            Some(session) => request.header("Session-Id", session),
            None => request,
        }
    };
    let missing = answer(watch(None)).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.json()["msg"].is_string(), "{}", missing.body);
    for count in 1..=LIMIT + 1 {
        let started = answer(watch(Some("gateway-session-7"))).await;
        let expected = if count <= LIMIT { 200 } else { 401 };
        assert_eq!(started.status.as_u16(), expected, "{}", started.body);
        assert_eq!(
            started.headers.get("session-id").map(|v| v.as_bytes()),
            Some(&b"gateway-session-7"[..]),
            "Session-Id is echoed through nginx"
        );
    }

    // A REST start without Idempotency-Key (nginx's "once" path) keeps its body.
    let created = answer(
        http.post(fleet.lb("/api/users/43/streams"))
            .json(&json!({"deviceId": "living-room-tv"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let listed = answer(get("/api/users/43/streams")).await;
    assert_eq!(
        listed.json()["activeStreams"][0]["deviceId"],
        "living-room-tv",
        "{}",
        listed.body
    );

    // nginx hides the per-instance metrics.
    exact(
        &answer(get("/metrics")).await,
        404,
        r#"{"msg":"Route not found"}"#,
    );
}
