//! The support console (`GET /admin/console` on the admin listener) in a real
//! browser: headless Chromium, driven by `tests/console/support_console.js`
//! through Playwright, against the real binary on the in-memory store.
//!
//! The script looks a user up with a wrong key (the page shows the 401), then
//! the right one; sees both active streams with their device and content and
//! the ended one in history; revokes one (it leaves the list and heads the
//! history as `revoked`); sets the user's limit to 5 (under which, through
//! the public API, a 5th stream is admitted and a 6th refused), then clears
//! it; and
//! checks that no request the page made had a key in its URL. A full-page
//! screenshot goes to `target/test-output/support-console.png`.
//!
//! Then, through the public API: the revoked stream's heartbeat answers
//! `410 revoked`, the other one's still extends it, and the cleared limit is
//! the default again. Chromium is Debian's (`/usr/bin/chromium`);
//! `playwright-core` is installed once into `target/playwright-<version>/`
//! (see `stream_limit_tests::browser`).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use stream_limit_tests::browser::{chromium, run_node_script};
use stream_limit_tests::service::{free_port, target_dir, workspace_root, Service};

const ADMIN_KEY: &str = "support-console-key-0123456789";
/// The user whose streams the console shows.
const USER: u32 = 4242;
/// The whole browser run, install excepted (the script bounds itself to 90 s).
const BROWSER_RUN: Duration = Duration::from_secs(120);
/// What the page is served with, exactly.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
    img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The service with its admin listener on; the admin base URL beside it.
async fn service() -> (Service, String) {
    let admin_port = free_port().to_string();
    let service = Service::spawn(&[
        ("STREAM_LIMIT__ADMIN__API_KEY", ADMIN_KEY),
        ("STREAM_LIMIT__ADMIN__PORT", &admin_port),
    ])
    .await;
    (service, format!("http://127.0.0.1:{admin_port}"))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

/// `POST /api/users/{USER}/streams` with `labels`: the answer's body.
async fn start(service: &Service, labels: &Value, status: StatusCode) -> Value {
    let response = client()
        .post(service.url(&format!("/api/users/{USER}/streams")))
        .json(labels)
        .send()
        .await
        .expect("start a stream");
    assert_eq!(response.status(), status, "start {labels}");
    response.json().await.expect("a JSON answer")
}

/// A started stream's labels with its id, as the script wants them.
async fn started(service: &Service, device: &str, content: &str) -> Value {
    let labels = json!({ "deviceId": device, "contentId": content });
    let answer = start(service, &labels, StatusCode::CREATED).await;
    json!({ "streamId": answer["streamId"], "deviceId": device, "contentId": content })
}

async fn heartbeat(service: &Service, stream: &Value) -> (StatusCode, Value) {
    let response = client()
        .post(service.url(&format!(
            "/api/users/{USER}/streams/{}/heartbeat",
            stream["streamId"].as_str().expect("a stream id")
        )))
        .send()
        .await
        .expect("heartbeat");
    let status = response.status();
    (status, response.json().await.expect("a JSON answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_console_files_answer_without_a_key() {
    let (_service, admin) = service().await;
    let http = client();
    for (path, content_type) in [
        ("/admin/console", "text/html; charset=utf-8"),
        (
            "/admin/console/console.js",
            "text/javascript; charset=utf-8",
        ),
        ("/admin/console/console.css", "text/css; charset=utf-8"),
    ] {
        let response = http
            .get(format!("{admin}{path}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            header("content-type").as_deref(),
            Some(content_type),
            "{path}"
        );
        assert_eq!(
            header("content-security-policy").as_deref(),
            Some(CSP),
            "{path}"
        );
        assert_eq!(
            header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            header("referrer-policy").as_deref(),
            Some("no-referrer"),
            "{path}"
        );
        assert_eq!(
            header("cache-control").as_deref(),
            Some("no-store"),
            "{path}"
        );
    }
    // Everything else on the admin listener still needs the key, including
    // near spellings of the console's paths.
    for path in [
        "/admin/viewers/user:1/streams",
        "/admin/console/",
        "/admin/console/nope.js",
        "/admin/%63onsole",
        "/admin/openapi.json",
    ] {
        let response = http
            .get(format!("{admin}{path}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: Value = response.json().await.expect("a JSON error");
        assert_eq!(body["code"], "unauthorized", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_revokes_a_stream_and_sets_a_limit_from_the_console() {
    let chromium = chromium();
    let (service, admin) = service().await;
    let keep = started(&service, "living-room-tv", "film-9").await;
    let revoke = started(&service, "anna-phone", "series-3-episode-1").await;
    // Ended by the player, so the history is not empty; its content id is
    // markup, which the page must show as text.
    let ended = started(&service, "laptop", "<b>trailer</b> <img src=x>").await;
    let gone = client()
        .delete(service.url(&format!(
            "/api/users/{USER}/streams/{}",
            ended["streamId"].as_str().expect("a stream id")
        )))
        .send()
        .await
        .expect("end a stream");
    assert_eq!(gone.status(), StatusCode::OK);

    let output_dir = target_dir().join("test-output");
    std::fs::create_dir_all(&output_dir).expect("create target/test-output");
    let screenshot = output_dir.join("support-console.png");
    let _ = std::fs::remove_file(&screenshot);
    let case = json!({
        "url": format!("{admin}/admin/console"),
        "public": service.url(""),
        "key": ADMIN_KEY,
        "user": USER,
        "chromium": chromium,
        "screenshot": screenshot,
        "keep": keep,
        "revoke": revoke,
        "ended": ended,
    });
    let script = workspace_root().join("tests/console/support_console.js");
    let began = Instant::now();
    let run = tokio::task::block_in_place(|| {
        run_node_script(
            &script,
            &[("SUPPORT_CONSOLE_CASE", &case.to_string())],
            BROWSER_RUN,
        )
    });
    println!(
        "{}browser run: {:.1} s",
        run.stdout,
        began.elapsed().as_secs_f64()
    );
    assert!(
        run.success(),
        "the browser test failed ({}):\n{}\nservice log:\n{}",
        run.describe_status(BROWSER_RUN),
        run.text(),
        service.log_text()
    );
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
    println!("screenshot of the console: {}", screenshot.display());

    // What the page did, seen by the players.
    let (status, body) = heartbeat(&service, &revoke).await;
    assert_eq!(
        status,
        StatusCode::GONE,
        "the revoked stream's heartbeat: {body}"
    );
    assert_eq!(
        (body["code"].as_str(), body["reason"].as_str()),
        (Some("stream_gone"), Some("revoked")),
        "{body}"
    );
    let (status, body) = heartbeat(&service, &keep).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the kept stream's heartbeat: {body}"
    );
    assert_eq!(body["streamId"], keep["streamId"]);
    // Cleared, the limit is the default (3) again: two more starts fit
    // beside the kept stream, and the next refusal names 3.
    for _ in 0..2 {
        start(&service, &json!({}), StatusCode::CREATED).await;
    }
    let refusal = start(&service, &json!({}), StatusCode::CONFLICT).await;
    assert_eq!(refusal["maxStreams"], 3, "{refusal}");
    assert!(
        !service.log_text().contains("panicked"),
        "the service panicked:\n{}",
        service.log_text()
    );
}
