//! A fresh app per test, and assertions on JSON answers.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use stream_limit_core::store::MockLeaseStore;
use stream_limit_core::{
    Clock, InMemoryStore, LeaseCounts, LeaseStore, ManualClock, StoreError, SweepReport,
};
use stream_limit_http::{Application, Settings};

/// The admin key of test apps that enable the admin listener.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// One running app and a client for it.
pub struct TestApp {
    pub address: String,
    pub admin_address: Option<String>,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
}

/// Defaults, bound to loopback on free ports, two workers.
pub fn test_settings() -> Settings {
    let mut settings =
        Settings::from_sources(None, std::iter::empty()).expect("the defaults are valid");
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.server.workers = 2;
    settings.admin.host = "127.0.0.1".into();
    settings.admin.port = 0;
    settings
}

/// [`test_settings`] with the admin listener on.
pub fn admin_settings() -> Settings {
    let mut settings = test_settings();
    settings.admin.api_key = Some(ADMIN_KEY.into());
    settings
}

/// The default app: in-memory store on a manual clock.
pub async fn spawn_app() -> TestApp {
    spawn_with(test_settings()).await
}

/// An app with these settings, on an in-memory store with a manual clock.
pub async fn spawn_with(settings: Settings) -> TestApp {
    let clock = Arc::new(ManualClock::default());
    let store = Arc::new(InMemoryStore::with_clock(clock.clone()));
    spawn_on(settings, store, clock).await
}

/// An app over `store` (a mock, typically).
pub async fn spawn_on(
    settings: Settings,
    store: Arc<dyn LeaseStore>,
    clock: Arc<ManualClock>,
) -> TestApp {
    let app = Application::with_store(settings, store)
        .await
        .expect("the app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let admin_address = app
        .admin_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        admin_address,
        client: reqwest::Client::new(),
        clock,
    }
}

/// A mock store whose sweeps (and lease counts) succeed (the sweeper runs in every app) and
/// whose other calls fail unless the test sets them up.
pub fn mock_store() -> MockLeaseStore {
    let mut store = MockLeaseStore::new();
    store
        .expect_sweep()
        .returning(|_, _, _| Ok(SweepReport::default()));
    store
        .expect_lease_counts()
        .returning(|_| Ok(LeaseCounts::default()));
    store
}

/// The error a broken store gives.
pub fn store_down() -> StoreError {
    StoreError::Unavailable("connection refused to 10.0.0.5:5432 (password=hunter2)".into())
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn request(&self, method: Method, path: &str) -> Response {
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).await
    }

    /// `GET /api/startstream/{user}`.
    pub async fn start_seed(&self, user: &str) -> Response {
        self.get(&format!("/api/startstream/{user}")).await
    }

    /// `GET /watch` as `session`.
    pub async fn watch(&self, session: &str) -> Response {
        self.watch_path(session, "/watch").await
    }

    /// `GET path` with a `Session-Id`.
    pub async fn watch_path(&self, session: &str, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .header("Session-Id", session)
            .send()
            .await
            .expect("request sent")
    }

    /// `method path` with a `Session-Id`.
    pub async fn session_request(&self, method: Method, session: &str, path: &str) -> Response {
        self.client
            .request(method, self.url(path))
            .header("Session-Id", session)
            .send()
            .await
            .expect("request sent")
    }

    /// `method path` on the admin listener with `key`.
    pub async fn admin(&self, method: Method, path: &str, key: Option<&str>) -> Response {
        let base = self.admin_address.as_ref().expect("admin listener enabled");
        let mut request = self.client.request(method, format!("{base}{path}"));
        if let Some(key) = key {
            request = request.header("X-API-Key", key);
        }
        request.send().await.expect("request sent")
    }

    /// The store's "now".
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// Asserts the status and a JSON content type, and returns the body.
pub async fn json(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "status of {}", response.url());
    assert_json_type(&response);
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts the status, a JSON content type and the exact body text.
pub async fn exact(response: Response, status: StatusCode, body: &str) {
    assert_eq!(response.status(), status, "status of {}", response.url());
    assert_json_type(&response);
    assert_eq!(response.text().await.expect("body"), body);
}

pub fn assert_json_type(response: &Response) {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(
        content_type,
        "application/json",
        "content type of {}",
        response.url()
    );
}

/// The `Session-Id` a response echoes, if any.
pub fn echoed(response: &Response) -> Option<String> {
    response
        .headers()
        .get("session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Parses an RFC 3339 `expiresAt`.
pub fn time(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {text}"))
        .with_timezone(&Utc)
}

/// A stream id from a JSON body.
pub fn stream_id(body: &Value) -> String {
    body["streamId"]
        .as_str()
        .unwrap_or_else(|| panic!("no streamId in {body}"))
        .to_owned()
}
