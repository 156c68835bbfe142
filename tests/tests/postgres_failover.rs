//! A primary failover under load: a primary and a streaming standby on
//! loopback, two instances on a multi-host URL with
//! `target_session_attrs=read-write`, and clients starting streams through
//! both. The primary is killed (`-m immediate`) and the standby promoted, as
//! an HA manager would. The instances find the new primary with no restart,
//! answer only `201` or the documented `503` meanwhile, and readiness shows
//! the gap. Just before the kill the standby falls 300 ms behind (the
//! primary's WAL sender is stopped). With a synchronous standby no
//! acknowledged lease is lost; with asynchronous replication those of the
//! last 300 ms are, and the test measures how many (the figure is printed,
//! and written down in `ecosystem/README.md`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::Value;
use stream_limit_tests::postgres::{start_custom_cluster, ClusterSetup, CustomCluster};
use stream_limit_tests::service::{free_port, Service};
use stream_limit_tests::world::connect;
use tokio::sync::Barrier;

const CLIENTS: u64 = 8;
/// The longest the test waits for anything (replication to start, the first
/// admission on the new primary).
const PATIENCE: Duration = Duration::from_secs(30);

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// Acknowledged admissions: (viewer key, stream id, when the answer came).
    admitted: Vec<(String, String, Instant)>,
    unavailable: usize,
    unexpected: Vec<String>,
}

/// The primary's WAL sender to `standby1`.
async fn walsender_pid(primary: &CustomCluster) -> u32 {
    let row = connect(&primary.socket_settings())
        .await
        .query_one(
            "SELECT pid FROM pg_stat_replication WHERE application_name = 'standby1'",
            &[],
        )
        .await
        .expect("the WAL sender");
    u32::try_from(row.get::<_, i32>(0)).expect("a pid")
}

/// What `/health/ready` answers (bounded).
async fn readiness(http: &Client, instance: &Service) -> StatusCode {
    http.get(instance.url("/health/ready"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("readiness answers")
        .status()
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Waits (bounded) until the process `pid` has exited.
fn until_gone(pid: Option<u32>) {
    let Some(pid) = pid else { return };
    let deadline = Instant::now() + PATIENCE;
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "{pid} still runs");
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Report {
    /// Acknowledged while the standby received nothing.
    admitted_while_behind: usize,
    without_primary: Duration,
    first_admission_after_promotion: Duration,
    admitted: usize,
    lost: usize,
    unavailable: usize,
    saw_not_ready: bool,
}

/// A primary, and a standby streaming from it (synchronously or not).
fn replicated_pair(synchronous: bool) -> (CustomCluster, CustomCluster) {
    // The shared test cluster trades durability for speed; this one may not.
    let mut primary_settings = vec!["synchronous_commit=on", "full_page_writes=on", "fsync=on"];
    if synchronous {
        primary_settings.push("synchronous_standby_names=standby1");
    }
    let primary = start_custom_cluster(&ClusterSetup {
        settings: &primary_settings,
        ..ClusterSetup::default()
    })
    .unwrap_or_else(|e| panic!("the primary: {e}"));
    let standby = start_custom_cluster(&ClusterSetup {
        standby_of: Some(&primary),
        settings: &[
            "synchronous_commit=on",
            "full_page_writes=on",
            "fsync=on",
            "cluster_name=standby1",
        ],
        ..ClusterSetup::default()
    })
    .unwrap_or_else(|e| panic!("the standby: {e}"));
    (primary, standby)
}

/// Waits until the primary streams to `standby1` (in `sync` state when asked).
async fn until_streaming(primary: &CustomCluster, synchronous: bool) {
    let admin = connect(&primary.socket_settings()).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let row = admin
            .query_opt(
                "SELECT sync_state FROM pg_stat_replication
                  WHERE application_name = 'standby1' AND state = 'streaming'",
                &[],
            )
            .await
            .expect("pg_stat_replication");
        let state: Option<String> = row.map(|r| r.get(0));
        match state.as_deref() {
            Some("sync") if synchronous => return,
            Some("async") if !synchronous => return,
            _ if Instant::now() > deadline => {
                panic!("no replication within {PATIENCE:?}: {state:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One client: fresh users one after another, until `stop`.
async fn client(
    http: Client,
    instance: String,
    first_user: u64,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut user = first_user;
    while !stop.load(Ordering::Relaxed) {
        user += 1;
        let answer = http
            .post(format!("{instance}/api/users/{user}/streams"))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let outcome = match answer {
            Ok(response) => {
                let status = response.status();
                Ok((
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                ))
            }
            Err(error) => Err(format!("no answer: {error}")),
        };
        let mut seen = seen.lock().expect("not poisoned");
        match outcome {
            Ok((StatusCode::CREATED, body)) => {
                let stream = body["streamId"].as_str().expect("streamId").to_owned();
                seen.admitted
                    .push((format!("user:{user}"), stream, Instant::now()));
            }
            Ok((StatusCode::SERVICE_UNAVAILABLE, _)) => seen.unavailable += 1,
            Ok((other, body)) => seen.unexpected.push(format!("{other}: {body}")),
            Err(error) => seen.unexpected.push(error),
        }
    }
}

async fn failover(synchronous: bool) -> Report {
    let (primary, standby) = replicated_pair(synchronous);
    until_streaming(&primary, synchronous).await;
    connect(&primary.socket_settings())
        .await
        .batch_execute("CREATE DATABASE failover")
        .await
        .expect("a database, replicated");
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/failover?target_session_attrs=read-write",
        primary.port, standby.port
    );
    let env = [
        ("DATABASE_URL", url.as_str()),
        // Every answer is then either durable (201) or an honest 503.
        ("STREAM_LIMIT__LIMITS__ON_STORE_ERROR", "deny"),
        ("STREAM_LIMIT__STORE__POOL_TIMEOUT_MS", "1000"),
        ("STREAM_LIMIT__STORE__QUERY_TIMEOUT_MS", "1000"),
    ];
    let instances = [
        Service::spawn_on(free_port(), &env).await,
        Service::spawn_on(free_port(), &env).await,
    ];
    let http = Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            tokio::spawn(client(
                http.clone(),
                instances[(n % 2) as usize].url(""),
                n * 1_000_000,
                Arc::clone(&stop),
                Arc::clone(&seen),
            ))
        })
        .collect();

    // Load on a healthy primary, then the fault.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = seen.lock().expect("not poisoned").admitted.len();
    assert!(before > 0, "nothing admitted before the fault");
    // The standby falls behind: the primary's WAL sender stops sending (as
    // a slow or cut network would), for a moment under load. With a
    // synchronous standby, commits wait meanwhile; without, they are
    // acknowledged. Then the primary dies, the sender with it, and what it
    // did not send is gone.
    let sender = walsender_pid(&primary).await;
    signal(sender, "STOP");
    let behind_from = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = Instant::now();
    signal(primary.postmaster_pid().expect("the primary's pid"), "QUIT");
    signal(sender, "KILL");
    until_gone(primary.postmaster_pid().ok());
    let admitted_while_behind = seen
        .lock()
        .expect("not poisoned")
        .admitted
        .iter()
        .filter(|(_, _, at)| *at > behind_from && *at < killed)
        .count();
    // Readiness while there is no primary.
    let mut saw_not_ready = false;
    let ready_deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < ready_deadline && !saw_not_ready {
        saw_not_ready = readiness(&http, &instances[0]).await == StatusCode::SERVICE_UNAVAILABLE;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    standby.promote().expect("promote the standby");
    let promoted = Instant::now();

    // Until the new primary admits, then a little longer.
    let deadline = promoted + PATIENCE;
    let first_after = loop {
        let first = seen
            .lock()
            .expect("not poisoned")
            .admitted
            .iter()
            .map(|(_, _, at)| *at)
            .filter(|at| *at > promoted)
            .min();
        match first {
            Some(at) => break at - promoted,
            None if Instant::now() > deadline => {
                panic!("no admission within {PATIENCE:?} of the promotion")
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client ran");
    }
    // Readiness answers are reused for a second: ready again within a few.
    let mut ready = Vec::new();
    for _ in 0..50 {
        let status = readiness(&http, &instances[0]).await;
        ready.push(status.as_u16());
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ready.last(),
        Some(&200),
        "not ready again on the new primary: {ready:?}\n{}",
        instances[0].log_text()
    );

    let seen = Arc::try_unwrap(seen)
        .ok()
        .expect("clients done")
        .into_inner()
        .expect("not poisoned");
    assert!(
        seen.unexpected.is_empty(),
        "{} unexpected answers, the first: {:?}",
        seen.unexpected.len(),
        seen.unexpected.iter().take(5).collect::<Vec<_>>()
    );

    // Which acknowledged leases the new primary has.
    let mut new_primary = standby.socket_settings();
    new_primary = new_primary.replace("dbname=postgres", "dbname=failover");
    let audit = connect(&new_primary).await;
    let rows = audit
        .query(
            "SELECT v.viewer, l.stream_id::text FROM viewers v CROSS JOIN LATERAL unnest(v.leases) l",
            &[],
        )
        .await
        .expect("the leases on the new primary");
    let present: HashSet<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let lost: Vec<Instant> = seen
        .admitted
        .iter()
        .filter(|(viewer, stream, _)| !present.contains(&(viewer.clone(), stream.clone())))
        .map(|(_, _, at)| *at)
        .collect();
    // Only the lag loses leases: nothing acknowledged well before the
    // sender stopped (100 ms covers WAL not yet sent on a busy machine).
    let settled = behind_from - Duration::from_millis(100);
    assert!(
        lost.iter().all(|at| *at > settled),
        "a lease acknowledged {:?} before the standby fell behind was lost",
        lost.iter()
            .map(|at| behind_from.saturating_duration_since(*at))
            .max()
    );

    // The limit still holds, through both instances, on the new primary.
    let barrier = Arc::new(Barrier::new(20));
    let racers: Vec<_> = (0..20)
        .map(|n| {
            let url = instances[n % 2].url("/api/users/99999999/streams");
            let (http, barrier) = (http.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                let status = http.post(url).send().await.expect("answers").status();
                assert!(
                    status == StatusCode::CREATED || status == StatusCode::CONFLICT,
                    "{status}"
                );
                status == StatusCode::CREATED
            })
        })
        .collect();
    let mut admitted = 0;
    for racer in racers {
        admitted += usize::from(racer.await.expect("racer ran"));
    }
    assert_eq!(admitted, 3, "the limit after the failover");

    Report {
        admitted_while_behind,
        without_primary: promoted - killed,
        first_admission_after_promotion: first_after,
        admitted: seen.admitted.len(),
        lost: lost.len(),
        unavailable: seen.unavailable,
        saw_not_ready,
    }
}

fn print(mode: &str, report: &Report) {
    eprintln!(
        "failover ({mode}): {} ms without a primary, first admission {} ms after the promotion, \
         {} admissions acknowledged ({} while the standby was 300 ms behind), {} lost, {} answered 503",
        report.without_primary.as_millis(),
        report.first_admission_after_promotion.as_millis(),
        report.admitted,
        report.admitted_while_behind,
        report.lost,
        report.unavailable
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_synchronous_standby_a_failover_loses_no_acknowledged_lease() {
    let report = failover(true).await;
    print("synchronous", &report);
    assert_eq!(report.lost, 0, "acknowledged leases lost");
    // Commits wait for the stopped standby: only answers already on their
    // way when the sender stopped (at most one per client) arrive after it.
    assert!(
        report.admitted_while_behind <= CLIENTS as usize,
        "{} acknowledged while the standby received nothing",
        report.admitted_while_behind
    );
    assert!(
        report.saw_not_ready,
        "readiness never showed the missing primary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_asynchronous_replication_a_failover_is_survived_and_its_losses_measured() {
    let report = failover(false).await;
    print("asynchronous", &report);
    // What the standby never received is lost: the trade-off an operator
    // chooses with asynchronous replication.
    assert!(
        report.admitted_while_behind > 0,
        "no admission while the standby was behind"
    );
    assert!(report.lost > 0, "the standby had everything");
    assert!(
        report.saw_not_ready,
        "readiness never showed the missing primary"
    );
}

/// The mode an HA manager can leave behind: a primary whose
/// `synchronous_standby_names` names a standby that is gone. Every commit
/// then waits for it. Decisions answer 503 within their timeouts (their
/// outcome unknown: the commit is already in the primary's WAL), and
/// readiness says the store is down although `SELECT 1` would still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_waiting_for_a_missing_synchronous_standby_is_not_ready() {
    let primary = start_custom_cluster(&ClusterSetup {
        settings: &["synchronous_commit=on"],
        ..ClusterSetup::default()
    })
    .unwrap_or_else(|e| panic!("a primary: {e}"));
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", primary.port);
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("STREAM_LIMIT__LIMITS__ON_STORE_ERROR", "deny"),
        ("STREAM_LIMIT__STORE__QUERY_TIMEOUT_MS", "1000"),
    ];
    let instance = Service::spawn(&env).await;
    let http = Client::new();
    let start = |user: u32| {
        http.post(instance.url(&format!("/api/users/{user}/streams")))
            .timeout(Duration::from_secs(10))
            .send()
    };
    assert_eq!(
        start(1).await.expect("answers").status(),
        StatusCode::CREATED
    );

    let admin = connect(&primary.socket_settings()).await;
    for statement in [
        "ALTER SYSTEM SET synchronous_standby_names = 'gone'",
        "SELECT pg_reload_conf()",
    ] {
        admin
            .batch_execute(statement)
            .await
            .expect("name a standby that does not exist");
    }
    // Until the setting has reached the server: a commit then waits.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let probe = connect(&primary.socket_settings()).await;
        let commit = probe.simple_query("SELECT pg_logical_emit_message(true, 'test', 'probe')");
        if tokio::time::timeout(Duration::from_millis(200), commit)
            .await
            .is_err()
        {
            break;
        }
        assert!(Instant::now() < deadline, "commits never started to wait");
    }
    let asked = Instant::now();
    let answer = start(2).await.expect("answers");
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    // Readiness answers are reused for a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        readiness(&http, &instance).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // A plain query still answers: that is why readiness commits.
    admin
        .simple_query("SELECT 1")
        .await
        .expect("reads still work");

    for statement in [
        "ALTER SYSTEM RESET synchronous_standby_names",
        "SELECT pg_reload_conf()",
    ] {
        admin
            .batch_execute(statement)
            .await
            .expect("clear the missing standby");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        start(3).await.expect("answers").status(),
        StatusCode::CREATED
    );
    assert_eq!(readiness(&http, &instance).await, StatusCode::OK);
}
