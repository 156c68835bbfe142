//! Hostile input against the real `stream-limit-http` binary, on both stores.
//!
//! A property-based generator (proptest) builds requests no friendly client
//! would send, and every answer is held to the contract's "Errors and bad
//! input" section:
//!
//! - **Well-formed HTTP** (sent with reqwest, so the request itself is valid
//!   HTTP/1.1): any method, paths mixing the real route shapes with hostile
//!   segments (overflowing and negative numbers, unicode, `%00`, `%FF`, `..`,
//!   very long segments, SQL fragments), query strings (`streamId`,
//!   `deviceId`, `contentId` holding any unicode, NUL and other control
//!   characters included, invalid UUIDs, repeated keys), headers
//!   (`Session-Id`, `Idempotency-Key`, `Content-Type`, others) and bodies
//!   (valid JSON, JSON with `\u0000`, wrong types, deep nesting, truncation,
//!   bytes that are not UTF-8, sizes up to a little over the body limit).
//!   Every answer must be below 500; a body, wherever there is one, must be
//!   JSON under an `application/json` content type (`GET /metrics` alone
//!   serves Prometheus text); an error (>= 400) must carry a `msg` string;
//!   no body may contain internal text (`postgres`, `SQL`, `panicked`, ...);
//!   and a `Session-Id` header may be echoed only when it is a valid one.
//! - **Raw bytes** over TCP: garbage, request lines with spaces or control
//!   bytes, bad versions, truncated heads, broken chunked bodies, heads over
//!   actix's limits. actix-http answers some of these itself, before the app
//!   runs, with an empty-bodied 400 or 431 (a known gap), so here the checks
//!   are: no 5xx status line, and `GET /health` answers 200 right after.
//!
//! After every case the service's log must hold no new `panicked` line; at the
//! end of a run the whole log is checked again and `/health` must be 200.
//!
//! Each store runs two instances, one per `limits.on_limit` policy (`reject`
//! and `evict_oldest`, each on its own database), and every case picks one:
//! refusals then list active streams with hostile labels, and evictions free
//! slots so that heartbeats and ends of named streams answer 200 and 410.
//!
//! Every run prints its seed, its case count, how many requests it sent and
//! the statuses it saw. Replay one with
//! `STREAM_LIMIT_HOSTILE_SEED=<seed> cargo test -p stream-limit-tests --test hostile_input`;
//! `STREAM_LIMIT_HOSTILE_CASES` sets the number of cases per store (default
//! `DEFAULT_CASES`). A failure is shrunk (for at most `MAX_SHRINK_MS`) and
//! the panic names the seed, the minimal input and, because the instances
//! keep state between cases, the first failing case as it was generated.

mod checks;
mod instances;
mod probes;
mod raw;
mod requests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use reqwest::Client;
use stream_limit_tests::postgres::fresh_database;
use stream_limit_tests::replay::Replay;
use stream_limit_tests::service::Service;
use tokio::runtime::Runtime;

use checks::Target;
use instances::{spawn, Instance, Policy};
use probes::case;

/// Cases per store unless `STREAM_LIMIT_HOSTILE_CASES` says otherwise. One
/// case is one request (a raw one is followed by a `/health` check), so the
/// two stores together send well over 3,000 requests.
const DEFAULT_CASES: u32 = 2_000;
/// The body limit the service is started with (`server.max_body_bytes`).
const MAX_BODY_BYTES: usize = 16_384;
/// Longest a shrinking may run, in milliseconds: it replays against the service.
const MAX_SHRINK_MS: u32 = 60_000;
/// Text that must never reach a response body (compared case-insensitively).
/// Generated input never contains these words, so an echo cannot trip them.
const INTERNAL_TEXT: &[&str] = &[
    "postgres",
    "sql",
    "sqlstate",
    "panicked",
    "tokio",
    "deadpool",
    "violates",
    "stack backtrace",
];

#[test]
fn hostile_input_never_breaks_the_service_on_the_memory_store() {
    let runtime = runtime();
    let reject = spawn(&runtime, Policy::Reject, None);
    let evict = spawn(&runtime, Policy::EvictOldest, None);
    run_suite("memory", &runtime, [&reject, &evict]);
}

#[test]
fn hostile_input_never_breaks_the_service_on_the_postgres_store() {
    let runtime = runtime();
    let (reject_db, evict_db) =
        runtime.block_on(async { (fresh_database().await, fresh_database().await) });
    let reject = spawn(&runtime, Policy::Reject, Some(reject_db.url()));
    let evict = spawn(&runtime, Policy::EvictOldest, Some(evict_db.url()));
    run_suite("postgres", &runtime, [&reject, &evict]);
    drop((reject, evict));
    runtime.block_on(async {
        reject_db.drop_database().await;
        evict_db.drop_database().await;
    });
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
/// Runs every case against one of `services`, then checks their logs and
/// their health.
fn run_suite(store: &str, runtime: &Runtime, services: [&(Policy, Service); 2]) {
    let Replay { cases, seed } = Replay::from_env("STREAM_LIMIT_HOSTILE", DEFAULT_CASES);
    let replay = format!("STREAM_LIMIT_HOSTILE_SEED={seed} STREAM_LIMIT_HOSTILE_CASES={cases}");
    println!("hostile input ({store}): seed {seed}, {cases} cases (replay: {replay})");

    let mut runner = Replay { cases, seed }.runner(MAX_SHRINK_MS);
    let target = Target {
        instances: services.map(|(policy, service)| Instance {
            policy: *policy,
            service,
            log_seen: AtomicUsize::new(0),
        }),
        client: Client::builder()
            // A fresh connection per request: every case stands alone, and a
            // connection the server closed is never reused by mistake.
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client"),
        requests: AtomicU64::new(0),
        statuses: Mutex::new(BTreeMap::new()),
        first_failure: Mutex::new(None),
    };
    let started = Instant::now();
    let result = runner.run(&case(), |case| runtime.block_on(target.check(&case)));
    let requests = target.requests.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    println!("hostile input ({store}): seed {seed}, {requests} requests in {elapsed:.1} s");
    println!(
        "hostile input ({store}): answers by status (raw ones: every status line) {:?}",
        target.statuses.lock().expect("no panic while counting")
    );

    let mut problems = Vec::new();
    if let Err(failure) = result {
        problems.push(failure.to_string());
    }
    if let Some(first) = target
        .first_failure
        .lock()
        .expect("no panic while recording")
        .take()
    {
        problems.push(format!("first failing case, before shrinking: {first}"));
    }
    for instance in &target.instances {
        let log = instance.service.log_text();
        if let Some(line) = log.lines().find(|line| line.contains("panicked")) {
            problems.push(format!(
                "the {:?} instance's log holds a panic: {line}",
                instance.policy
            ));
        }
        if let Err(problem) = runtime.block_on(target.health(instance)) {
            problems.push(format!(
                "after the run, on {:?}: {problem}",
                instance.policy
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "hostile input ({store}), seed {seed} (replay with {replay}), {requests} requests sent:\n{}",
        problems.join("\n")
    );
}
