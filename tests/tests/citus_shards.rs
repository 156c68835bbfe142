//! On a Citus coordinator (`scripts/test-citus <url>`): the store's request
//! path runs every statement on one shard, while batches still form.
//!
//! A batch over viewers of two shards would be a multi-shard modification,
//! committed with two-phase commit: 200× slower per statement where it was
//! measured (ecosystem/SCALING.md). The store groups each batch by the
//! viewers' shard (`stream-limit-core/src/store/postgres/citus.rs`), computed
//! from Postgres's `hashtext` and the shard ranges; this test checks the
//! result with Citus's own counters (`citus_stat_counters`, Citus 13.1+),
//! under a load spread over many shards through a single batch worker, which
//! makes batches. Ignored by the normal test command: CI has no Citus.
//! A second test, run in both modes, checks that a store refuses distributed
//! tables unless `store.citus` is on.

use std::sync::Arc;
use std::time::Duration;

use stream_limit_core::store::postgres::{PostgresConfig, PostgresStore};
use stream_limit_core::{
    EndReason, LeaseStore, MaxStreams, OnLimit, StartOutcome, StartRequest, StreamId, UserId,
    ViewerId,
};
use stream_limit_tests::postgres::{citus, fresh_database};
use stream_limit_tests::world::connect;

const VIEWERS: u64 = 200;

/// The counters are the database's, not the test's: the tests of this file
/// run one at a time, so no other test's statements are counted.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const ROUNDS: usize = 4;

/// Queries the coordinator ran on one shard and on several, in this database.
async fn executions(client: &tokio_postgres::Client) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT query_execution_single_shard AS one, query_execution_multi_shard AS many
               FROM citus_stat_counters((SELECT oid FROM pg_database WHERE datname = current_database()))",
            &[],
        )
        .await
        .expect("read citus_stat_counters (Citus 13.1 or later, citus.enable_stat_counters on)");
    (row.get("one"), row.get("many"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Citus coordinator: scripts/test-citus <url>"]
async fn every_request_path_statement_runs_on_one_shard_while_batches_form() {
    assert!(citus(), "run through scripts/test-citus <coordinator-url>");
    let _alone = ONE_AT_A_TIME.lock().await;
    let db = fresh_database().await;
    let store = Arc::new(
        PostgresStore::connect(&PostgresConfig {
            pool_size: 4,
            // One batch in flight: what arrives meanwhile waits and travels together.
            batch_workers: 1,
            query_timeout: Duration::from_secs(30),
            pool_timeout: Duration::from_secs(10),
            citus: true,
            ..PostgresConfig::new(db.url())
        })
        .expect("valid configuration"),
    );
    store
        .check_layout()
        .await
        .expect("the tables are distributed");
    let counters = connect(db.url()).await;
    // The shard ranges are read before the first batch; warm the pool too.
    store
        .active(&ViewerId::User(UserId::parse("0").expect("valid")))
        .await
        .expect("store answers");
    let before = executions(&counters).await;

    let tasks: Vec<_> = (1..=VIEWERS)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let viewer = ViewerId::User(UserId::parse(&n.to_string()).expect("valid"));
                for _ in 0..ROUNDS {
                    let request = StartRequest {
                        replaces: None,
                        viewer: viewer.clone(),
                        stream_id: StreamId::random(),
                        generated_id: true,
                        ttl: Duration::from_secs(600),
                        default_limit: MaxStreams::DEFAULT,
                        on_limit: OnLimit::Reject,
                        device_id: None,
                        content_id: None,
                    };
                    let StartOutcome::Admitted(admitted) =
                        store.start(&request).await.expect("start answers")
                    else {
                        panic!("{viewer} refused below its limit");
                    };
                    let id = admitted.lease.stream_id;
                    store
                        .heartbeat(&viewer, id)
                        .await
                        .expect("heartbeat answers");
                    store
                        .end(&viewer, id, EndReason::Ended)
                        .await
                        .expect("end answers");
                }
                store.active(&viewer).await.expect("active answers");
                store.history(&viewer, 10).await.expect("history answers");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client task");
    }

    let after = executions(&counters).await;
    let (single, multi) = (after.0 - before.0, after.1 - before.1);
    let decisions = store.batch_sizes().decisions();
    let batched = store
        .batch_sizes()
        .buckets()
        .iter()
        .filter(|(size, _)| *size > 1)
        .map(|(_, count)| count)
        .sum::<u64>();
    eprintln!(
        "{decisions} decisions; {batched} batches of more than one; \
         {single} single-shard and {multi} multi-shard executions"
    );
    assert_eq!(multi, 0, "a request-path statement ran on several shards");
    assert!(
        single > 0,
        "the counters counted nothing: are they enabled?"
    );
    assert!(batched > 0, "no batch held more than one decision");
    db.drop_database().await;
}

/// Runs in both modes: on one Postgres either setting starts (store.citus on
/// undistributed tables only warns); on Citus, a store not configured for it
/// refuses the distributed tables instead of planning for every shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_checks_that_store_citus_matches_the_database() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let db = fresh_database().await;
    let store = |citus| {
        PostgresStore::connect(&PostgresConfig {
            pool_size: 2,
            batch_workers: 1,
            citus,
            ..PostgresConfig::new(db.url())
        })
        .expect("valid configuration")
    };
    let plain = store(false);
    plain.migrate().await.expect("migrations apply");
    let refused = plain.check_layout().await;
    if citus() {
        let error = refused.expect_err("distributed tables need store.citus");
        assert!(
            error.to_string().contains("set store.citus = true"),
            "{error}"
        );
    } else {
        refused.expect("one Postgres, store.citus off");
    }
    store(true)
        .check_layout()
        .await
        .expect("store.citus on is accepted either way");
    db.drop_database().await;
}
