//! Halfway through a rolling upgrade: the previous release's binary (built
//! from its commit) and this release's run on one migrated database, and
//! racing clients go through both. The limit holds, each sees what the other
//! decided, and neither answers a server error.

use std::sync::Arc;

use reqwest::{Client, StatusCode};
use serde_json::Value;
use stream_limit_tests::audit::peak_concurrency;
use stream_limit_tests::postgres::fresh_database;
use stream_limit_tests::previous_release;
use stream_limit_tests::service::{free_port, Service};
use stream_limit_tests::world::connect;
use tokio::sync::Barrier;

const LIMIT: u64 = 3;
const RACERS: usize = 40;
const USERS: u64 = 6;

/// What a start answered: `Some(count)` when admitted, `None` when refused.
/// Anything but the contract's answers fails the test.
async fn start(http: &Client, instance: &Service, user: u64, rest: bool) -> Option<u64> {
    let request = if rest {
        http.post(instance.url(&format!("/api/users/{user}/streams")))
    } else {
        http.get(instance.url(&format!("/api/startstream/{user}")))
    };
    let response = request.send().await.expect("instance answers");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON body");
    if rest {
        let count = body["streamCount"].as_u64();
        match status {
            StatusCode::CREATED => count,
            StatusCode::CONFLICT => None,
            other => panic!("REST start answered {other}: {body}"),
        }
    } else {
        assert_eq!(status, StatusCode::OK, "{body}");
        let verdict = &body["streamStatus"];
        match verdict["isNewStreamAllowed"].as_bool() {
            Some(true) => verdict["streamCount"].as_u64(),
            Some(false) => None,
            None => panic!("no verdict: {body}"),
        }
    }
}

/// An end of the oldest stream on the seed route: `Some(count)` when one
/// ended, `None` when there was none to end.
async fn end(http: &Client, instance: &Service, user: u64) -> Option<u64> {
    let url = instance.url(&format!("/api/endstream/{user}"));
    let response = http.get(url).send().await.expect("instance answers");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON body");
    match status {
        StatusCode::OK => body["streamStatus"]["streamCount"].as_u64(),
        StatusCode::BAD_REQUEST => None,
        other => panic!("endstream answered {other}: {body}"),
    }
}

/// [`RACERS`] tasks released together, alternating between the instances;
/// their results in racer order.
async fn race<F, Fut, T>(http: &Client, instances: &Arc<[Service; 2]>, racer: F) -> Vec<T>
where
    F: Fn(Client, Arc<[Service; 2]>, usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|n| {
            let (barrier, run) = (barrier.clone(), racer(http.clone(), instances.clone(), n));
            tokio::spawn(async move {
                barrier.wait().await;
                run.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(RACERS);
    for task in tasks {
        results.push(task.await.expect("racer ran"));
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_previous_release_and_this_one_share_the_limit_on_one_database() {
    let db = fresh_database().await;
    // Every ended stream stays in history, so the audit sees each viewer's
    // whole life (this release trims history to 32 per viewer by default).
    let env = [
        ("DATABASE_URL", db.url()),
        ("STREAM_LIMIT__STORE__HISTORY_PER_VIEWER", "1000000"),
    ];
    // This release migrates; the previous one then starts on that schema.
    let current = Service::spawn(&env).await;
    let previous = Service::spawn_binary(previous_release::binary(), free_port(), &env[..1]).await;
    let instances = Arc::new([previous, current]);
    let audit = connect(db.url()).await;
    let http = Client::new();

    // Each sees what the other admitted and ended: previous, current,
    // previous, then the current release refuses; an end through the
    // previous release makes room that the current one fills.
    let [old, new] = &*instances;
    assert_eq!(start(&http, old, 1000, false).await, Some(1));
    assert_eq!(start(&http, new, 1000, false).await, Some(2));
    assert_eq!(start(&http, old, 1000, true).await, Some(3));
    assert_eq!(start(&http, new, 1000, true).await, None);
    assert_eq!(end(&http, old, 1000).await, Some(2));
    assert_eq!(start(&http, new, 1000, false).await, Some(3));
    assert_eq!(start(&http, old, 1000, false).await, None);

    // Racing starts only: exactly the limit is admitted per user.
    for user in 0..USERS {
        let admitted = race(&http, &instances, |http, instances, racer| async move {
            let instance = &instances[racer % 2];
            start(&http, instance, user, racer % 4 >= 2).await.is_some()
        })
        .await;
        assert_eq!(
            admitted.iter().filter(|a| **a).count() as u64,
            LIMIT,
            "user {user}"
        );
        assert_eq!(
            peak_concurrency(&audit, &format!("user:{user}")).await,
            LIMIT as usize
        );
    }

    // Starts and ends racing through both: never past the limit.
    for user in 100..100 + USERS {
        race(&http, &instances, |http, instances, racer| async move {
            let instance = &instances[racer % 2];
            if racer % 3 == 2 {
                end(&http, instance, user).await;
            } else if let Some(count) = start(&http, instance, user, racer % 4 >= 2).await {
                assert!((1..=LIMIT).contains(&count), "count {count}");
            }
        })
        .await;
        let peak = peak_concurrency(&audit, &format!("user:{user}")).await;
        assert!(peak <= LIMIT as usize, "user {user}: {peak} at once");
    }
}
