//! How fast the sweeper clears a backlog of expired leases on Postgres: the
//! rate one instance's sweeper sustains, in viewers (one expired lease each)
//! per second.
//!
//! `cargo run --release -p stream-limit-tests --example sweep_rate [viewers] [batch]`
//! (defaults 100000 and 1000). Starts a throwaway cluster, or uses
//! `DATABASE_URL`.

use std::time::{Duration, Instant};

use stream_limit_core::{sweep_tick, LeaseStore, SweeperConfig};
use stream_limit_tests::postgres::fresh_database;
use stream_limit_tests::world::{connect, migrated_store};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let viewers: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let batch: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let db = fresh_database().await;
    let store = migrated_store(&db, 4).await;
    let sql = connect(db.url()).await;
    // Crashed players: one lease each, expired an hour ago (past any grace).
    sql.execute(
        "INSERT INTO viewers (viewer, started, leases, sweep_after)
         SELECT 'user:' || g, true,
                ARRAY[ROW(gen_random_uuid(), now() - interval '2 hours', now() - interval '1 hour',
                          60000, NULL, NULL)::stream_lease],
                now() - interval '1 hour'
           FROM generate_series(1, $1::bigint) g",
        &[&viewers],
    )
    .await
    .expect("seed the backlog");
    sql.batch_execute("VACUUM ANALYZE viewers")
        .await
        .expect("analyze");

    let config = SweeperConfig {
        interval: Duration::from_secs(3600),
        batch,
        ..SweeperConfig::default()
    };
    let started = Instant::now();
    let tick = sweep_tick(&store as &dyn LeaseStore, &config)
        .await
        .expect("sweeps");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "sweep_rate: {} expired leases of {viewers} viewers moved in {} passes of {batch} in {seconds:.2} s: {:.0} viewers/s",
        tick.expired,
        tick.passes,
        tick.expired as f64 / seconds
    );
    assert_eq!(
        tick.expired, viewers as u64,
        "one tick clears the whole backlog"
    );
}
