//! Real `stream-limit-http` processes on Postgres: two instances sharing one
//! database are raced over HTTP, and the contract's routes answer exactly as
//! they do on the in-memory store.

use std::sync::Arc;

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use stream_limit_tests::audit::peak_concurrency;
use stream_limit_tests::postgres::fresh_database;
use stream_limit_tests::service::Service;
use stream_limit_tests::world::connect;
use tokio::sync::Barrier;

const CLIENTS: usize = 60;
const USERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_sharing_one_database_never_admit_past_the_limit() {
    let db = fresh_database().await;
    let env = [("DATABASE_URL", db.url())];
    let instances = [Service::spawn(&env).await, Service::spawn(&env).await];
    let audit = connect(db.url()).await;
    let http = Client::new();
    for user in 0..USERS {
        let barrier = Arc::new(Barrier::new(CLIENTS));
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let url = instances[client % 2].url(&format!("/api/startstream/{user}"));
                let (http, barrier) = (http.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let response = http.get(url).send().await.expect("instance answers");
                    assert_eq!(response.status(), StatusCode::OK);
                    let body: Value = response.json().await.expect("JSON body");
                    body["streamStatus"]["isNewStreamAllowed"]
                        .as_bool()
                        .expect("flag")
                })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            admitted += usize::from(task.await.expect("task ran"));
        }
        assert_eq!(admitted, 3, "user {user}: admitted {admitted} of {CLIENTS}");
        assert_eq!(peak_concurrency(&audit, &format!("user:{user}")).await, 3);
    }
    // Each instance says how its decisions travelled: every start was in
    // some batch, and racing ones shared batches.
    let mut decisions = 0.0;
    for instance in &instances {
        let text = http
            .get(instance.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} missing from /metrics"))
        };
        let (count, sum) = (
            value("stream_limit_store_batch_size_count"),
            value("stream_limit_store_batch_size_sum"),
        );
        assert!(count >= 1.0 && sum >= count, "count {count}, sum {sum}");
        assert_eq!(
            value("stream_limit_store_batch_size_bucket{le=\"+Inf\"}"),
            count
        );
        decisions += sum;
    }
    assert_eq!(decisions, (CLIENTS * USERS) as f64);
}

/// One request of the differential script.
struct Step {
    method: Method,
    path: &'static str,
    session: Option<&'static str>,
}

fn get(path: &'static str) -> Step {
    Step {
        method: Method::GET,
        path,
        session: None,
    }
}

fn with(method: Method, path: &'static str) -> Step {
    Step {
        method,
        path,
        session: None,
    }
}

fn watch_named(session: &'static str, path: &'static str) -> Step {
    session_step(Method::GET, session, path)
}

fn session_step(method: Method, session: &'static str, path: &'static str) -> Step {
    Step {
        method,
        path,
        session: Some(session),
    }
}

fn watch(session: &'static str) -> Step {
    Step {
        method: Method::GET,
        path: "/watch",
        session: Some(session),
    }
}

/// Status, Session-Id echo and body, with generated values (ids, times) blanked.
async fn run(service: &Service, steps: &[Step]) -> Vec<(u16, Option<String>, Value)> {
    let http = Client::new();
    let mut answers = Vec::new();
    for step in steps {
        let mut request = http.request(step.method.clone(), service.url(step.path));
        if let Some(session) = step.session {
            request = request.header("Session-Id", session);
        }
        let response = request.send().await.expect("instance answers");
        let status = response.status().as_u16();
        let echo = response
            .headers()
            .get("session-id")
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let mut body: Value = response.json().await.unwrap_or(Value::Null);
        blank_generated(&mut body);
        answers.push((status, echo, body));
    }
    answers
}

fn blank_generated(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if matches!(key.as_str(), "streamId" | "expiresAt" | "startedAt") {
                    *v = Value::String("…".into());
                } else {
                    blank_generated(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(blank_generated),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_seed_route_answers_the_same_on_postgres_as_in_memory() {
    let db = fresh_database().await;
    let postgres = Service::spawn(&[("DATABASE_URL", db.url())]).await;
    let memory = Service::spawn(&[]).await;
    let script = [
        get("/health"),
        get("/health/ready"),
        get("/api/startstream/5"),
        get("/api/startstream/5"),
        get("/api/startstream/5"),
        get("/api/startstream/5"),
        get("/api/endstream/5"),
        get("/api/endstream/5"),
        get("/api/endstream/5"),
        get("/api/endstream/5"),
        get("/api/endstream/6"),
        get("/api/startstream/abc"),
        get("/api/endstream/-1"),
        get("/api/startstream/99999999999999999999999"),
        with(Method::POST, "/api/startstream/5"),
        with(Method::DELETE, "/api/endstream/5"),
        with(Method::PUT, "/api"),
        get("/no/such/route"),
        watch("s-1"),
        watch("s-1"),
        watch("s-1"),
        watch("s-1"),
        Step {
            method: Method::GET,
            path: "/watch",
            session: None,
        },
        get("/api/users/5/streams"),
        // Client-named streams: replay, heartbeat, end twice, then 410 and 404.
        watch_named(
            "s-2",
            "/watch?streamId=00000000-0000-4000-8000-000000000001",
        ),
        watch_named(
            "s-2",
            "/watch?streamId=00000000-0000-4000-8000-000000000001",
        ),
        session_step(
            Method::POST,
            "s-2",
            "/watch/streams/00000000-0000-4000-8000-000000000001/heartbeat",
        ),
        session_step(
            Method::DELETE,
            "s-2",
            "/watch/streams/00000000-0000-4000-8000-000000000001",
        ),
        session_step(
            Method::DELETE,
            "s-2",
            "/watch/streams/00000000-0000-4000-8000-000000000001",
        ),
        session_step(
            Method::POST,
            "s-2",
            "/watch/streams/00000000-0000-4000-8000-000000000001/heartbeat",
        ),
        session_step(
            Method::POST,
            "s-2",
            "/watch/streams/00000000-0000-4000-8000-000000000002/heartbeat",
        ),
        watch_named(
            "s-2",
            "/watch?streamId=00000000-0000-4000-8000-000000000001",
        ),
        get("/api/startstream/6?streamId=00000000-0000-4000-8000-000000000003"),
        get("/api/endstream/6?streamId=00000000-0000-4000-8000-000000000003"),
        get("/api/endstream/6?streamId=00000000-0000-4000-8000-000000000003"),
        get("/api/startstream/6?streamId=not-a-uuid"),
    ];
    let (on_postgres, in_memory) = (run(&postgres, &script).await, run(&memory, &script).await);
    for ((step, pg), mem) in script.iter().zip(&on_postgres).zip(&in_memory) {
        assert_eq!(
            pg, mem,
            "{} {} differs between stores",
            step.method, step.path
        );
    }
    // The script did exercise the interesting answers, not only errors.
    let statuses: Vec<u16> = in_memory.iter().map(|(s, _, _)| *s).collect();
    for status in [401, 405, 404, 410] {
        assert!(statuses.contains(&status), "the script reaches a {status}");
    }
    assert_eq!(
        in_memory[5].2["streamStatus"]["isNewStreamAllowed"],
        Value::Bool(false)
    );
}

/// Cuts every connection to `db` and refuses new ones (or lets them back in).
async fn set_reachable(admin: &tokio_postgres::Client, db: &str, reachable: bool) {
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS {reachable}"
        ))
        .await
        .expect("toggle connections");
    if !reachable {
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                &[&db],
            )
            .await
            .expect("terminate backends");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_database_goes_away_answers_stay_fast_and_json_and_recover() {
    let db = fresh_database().await;
    let timeouts = [
        ("DATABASE_URL", db.url()),
        ("STREAM_LIMIT__STORE__POOL_TIMEOUT_MS", "500"),
        ("STREAM_LIMIT__STORE__QUERY_TIMEOUT_MS", "500"),
    ];
    let open = Service::spawn(&timeouts).await;
    let closed = Service::spawn(&[
        timeouts[0],
        timeouts[1],
        timeouts[2],
        ("STREAM_LIMIT__LIMITS__ON_STORE_ERROR", "deny"),
    ])
    .await;
    let admin = connect(&stream_limit_tests::postgres::server_url()).await;
    let http = Client::new();
    set_reachable(&admin, db.name(), false).await;

    for _ in 0..3 {
        let started = std::time::Instant::now();
        let response = http
            .get(open.url("/api/startstream/1"))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(
            body["streamStatus"]["isNewStreamAllowed"],
            Value::Bool(true)
        );
        assert_eq!(
            body["streamStatus"]["degraded"],
            Value::Bool(true),
            "fail-open answers say so"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "bounded: {:?}",
            started.elapsed()
        );

        let response = http
            .get(closed.url("/api/startstream/1"))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(
            body["msg"], "store unavailable",
            "no driver detail leaks: {body}"
        );
    }
    let ready = http
        .get(open.url("/health/ready"))
        .send()
        .await
        .expect("answers");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let live = http.get(open.url("/health")).send().await.expect("answers");
    assert_eq!(
        live.status(),
        StatusCode::OK,
        "liveness does not depend on the store"
    );

    set_reachable(&admin, db.name(), true).await;
    let mut recovered = false;
    for _ in 0..50 {
        let ready = http
            .get(closed.url("/health/ready"))
            .send()
            .await
            .expect("answers");
        if ready.status() == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "the pool reconnects once the database is back");
    let response = http
        .get(closed.url("/api/startstream/2"))
        .send()
        .await
        .expect("answers");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        body["streamStatus"]["isNewStreamAllowed"],
        Value::Bool(true)
    );
    assert!(body["streamStatus"].get("degraded").is_none());
}

/// The three ways to start a stream.
#[derive(Debug, Clone, Copy)]
enum StartRoute {
    Seed,
    Watch,
    Rest,
}

impl StartRoute {
    const ALL: [StartRoute; 3] = [StartRoute::Seed, StartRoute::Watch, StartRoute::Rest];

    /// A start for viewer `n` (user `n`, or Session-Id `expired-<n>`).
    fn request(self, service: &Service, http: &Client, n: usize) -> reqwest::RequestBuilder {
        match self {
            StartRoute::Seed => http.get(service.url(&format!("/api/startstream/{n}"))),
            StartRoute::Watch => http
                .get(service.url("/watch"))
                .header("Session-Id", format!("expired-{n}")),
            StartRoute::Rest => http.post(service.url(&format!("/api/users/{n}/streams"))),
        }
    }

    /// Whether the answer admitted a stream; panics on anything that is
    /// neither an admission nor a refusal.
    async fn admitted(self, response: reqwest::Response) -> bool {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match (self, status) {
            (StartRoute::Seed, 200) => body["streamStatus"]["isNewStreamAllowed"]
                .as_bool()
                .unwrap_or_else(|| panic!("{self:?}: no flag in {body}")),
            (StartRoute::Watch, 200) | (StartRoute::Rest, 201) => true,
            (StartRoute::Watch, 401) | (StartRoute::Rest, 409) => false,
            _ => panic!("{self:?}: unexpected {status} {body}"),
        }
    }

    async fn start(self, service: &Service, http: &Client, n: usize) -> bool {
        let response = self
            .request(service, http, n)
            .send()
            .await
            .expect("instance answers");
        self.admitted(response).await
    }
}

/// The first-round bug: a viewer whose slots were all held by expired leases
/// got 500 on Postgres until the sweeper ran. On both stores, each start route
/// fills the slots, is refused, and once the leases expired (1 s leases, no
/// sweep within the test) is admitted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewer_whose_leases_all_expired_starts_again_on_every_start_route() {
    let db = fresh_database().await;
    let short = [
        ("STREAM_LIMIT__LIMITS__HEARTBEAT_TTL_SECS", "1"),
        ("STREAM_LIMIT__LIMITS__SESSION_TTL_SECS", "1"),
    ];
    let mut postgres_env = short.to_vec();
    postgres_env.push(("DATABASE_URL", db.url()));
    let services = [
        ("postgres", Service::spawn(&postgres_env).await),
        ("memory", Service::spawn(&short).await),
    ];
    let http = Client::new();
    for (store, service) in &services {
        for (n, route) in StartRoute::ALL.into_iter().enumerate() {
            for attempt in 0..4 {
                let admitted = route.start(service, &http, 700 + n).await;
                assert_eq!(admitted, attempt < 3, "{store} {route:?}: start {attempt}");
            }
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for (store, service) in &services {
        for (n, route) in StartRoute::ALL.into_iter().enumerate() {
            assert!(
                route.start(service, &http, 700 + n).await,
                "{store} {route:?}: a start after every lease expired"
            );
        }
    }
}

/// With `on_store_error = allow`, an outage under load admits at most
/// `limit × instances` streams per viewer (each instance decides on its own
/// book), answers stay bounded, and after the outage every degraded lease is
/// written back on its next heartbeat, or told it was evicted, so the store's
/// limit holds again. Prints the measured figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_under_load_admits_at_most_the_limit_per_instance_per_viewer() {
    const VIEWERS: usize = 20;
    const ATTEMPTS: usize = 15;
    let db = fresh_database().await;
    let env = [
        ("DATABASE_URL", db.url()),
        ("STREAM_LIMIT__STORE__POOL_TIMEOUT_MS", "500"),
        ("STREAM_LIMIT__STORE__QUERY_TIMEOUT_MS", "500"),
    ];
    let instances = Arc::new([Service::spawn(&env).await, Service::spawn(&env).await]);
    let admin = connect(&stream_limit_tests::postgres::server_url()).await;
    let http = Client::new();
    set_reachable(&admin, db.name(), false).await;

    // Every viewer's clients hammer both instances during the outage.
    let tasks: Vec<_> = (0..VIEWERS)
        .map(|viewer| {
            let (http, instances) = (http.clone(), instances.clone());
            tokio::spawn(async move {
                let mut admitted = Vec::new();
                let mut slowest = std::time::Duration::ZERO;
                for attempt in 0..ATTEMPTS {
                    let instance = attempt % 2;
                    let started = std::time::Instant::now();
                    let response = http
                        .get(instances[instance].url("/watch"))
                        .header("Session-Id", format!("outage-{viewer}"))
                        .send()
                        .await
                        .expect("instance answers");
                    slowest = slowest.max(started.elapsed());
                    let status = response.status();
                    let body: Value = response.json().await.expect("JSON");
                    match status.as_u16() {
                        200 => {
                            assert_eq!(body["degraded"], true, "{body}");
                            let id = body["streamId"].as_str().expect("id").to_owned();
                            admitted.push((instance, id));
                        }
                        401 => {}
                        _ => panic!("viewer {viewer}: {status} {body}"),
                    }
                }
                (admitted, slowest)
            })
        })
        .collect();
    let mut per_viewer = Vec::new();
    let mut slowest = std::time::Duration::ZERO;
    for task in tasks {
        let (admitted, slow) = task.await.expect("task");
        slowest = slowest.max(slow);
        per_viewer.push(admitted);
    }
    let most = per_viewer.iter().map(Vec::len).max().unwrap_or(0);
    let total: usize = per_viewer.iter().map(Vec::len).sum();
    assert!(
        most <= 3 * 2,
        "a viewer got {most} degraded streams from 2 instances"
    );
    assert!(
        per_viewer.iter().all(|a| a.len() == 6),
        "each instance admits exactly its limit per viewer: {:?}",
        per_viewer.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(slowest < std::time::Duration::from_secs(3), "{slowest:?}");

    set_reachable(&admin, db.name(), true).await;
    let recovering = std::time::Instant::now();
    let mut recovered = None;
    for probe in 0..100 {
        // A new viewer each time, so the local book never refuses the probe.
        let response = http
            .get(instances[0].url("/watch"))
            .header("Session-Id", format!("outage-probe-{probe}"))
            .send()
            .await
            .expect("answers");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        if status == StatusCode::OK && body["degraded"] != true {
            recovered = Some(recovering.elapsed());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let recovered = recovered.expect("the store is used again within 5 s");

    // Each degraded lease heartbeats on the instance that admitted it: at most
    // the limit of them are written back, the others learn they were evicted.
    let audit = connect(db.url()).await;
    for (viewer, admitted) in per_viewer.iter().enumerate() {
        let mut kept = 0;
        for (instance, id) in admitted {
            let response = http
                .post(instances[*instance].url(&format!("/watch/streams/{id}/heartbeat")))
                .header("Session-Id", format!("outage-{viewer}"))
                .send()
                .await
                .expect("answers");
            let status = response.status();
            let body: Value = response.json().await.expect("JSON");
            match status.as_u16() {
                200 => kept += 1,
                410 => assert_eq!(body["reason"], "evicted", "{body}"),
                _ => panic!("heartbeat after the outage: {status} {body}"),
            }
        }
        assert_eq!(
            kept, 3,
            "viewer {viewer}: the limit's worth are written back"
        );
        assert_eq!(
            peak_concurrency(&audit, &format!("session:outage-{viewer}")).await,
            3
        );
    }
    println!(
        "outage: {total} degraded admissions for {VIEWERS} viewers over 2 instances \
         (at most {most} per viewer, limit 3), slowest answer {slowest:?}, \
         store used again {recovered:?} after it came back"
    );
}
