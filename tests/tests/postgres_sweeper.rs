//! What the Postgres sweeper forgets, and what it must keep.

use std::time::Duration;

use stream_limit_core::{EndReason, MaxStreams, OnLimit, StartRequest, StreamId, UserId, ViewerId};
use stream_limit_tests::world::World;

const GRACE: Duration = Duration::from_secs(60);
const RETENTION: Duration = Duration::from_secs(3600);

fn user(n: &str) -> ViewerId {
    ViewerId::User(UserId::parse(n).expect("valid"))
}

async fn viewer_rows(world: &World) -> Vec<String> {
    let rows = world
        .sql()
        .query("SELECT viewer FROM viewers ORDER BY viewer", &[])
        .await
        .expect("read viewers");
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn idle_viewers_are_forgotten_but_overrides_and_recent_history_are_kept() {
    let world = World::postgres().await;
    // A heartbeat for a viewer that was never seen leaves no row behind.
    world
        .store
        .heartbeat(&user("1"), StreamId::random())
        .await
        .expect("answers");
    // Clearing an override leaves a row that never started a stream.
    world
        .store
        .set_limit(&user("4"), Some(MaxStreams::new(2).expect("valid")))
        .await
        .expect("answers");
    world
        .store
        .set_limit(&user("4"), None)
        .await
        .expect("answers");
    world
        .store
        .set_limit(&user("2"), Some(MaxStreams::new(5).expect("valid")))
        .await
        .expect("answers");
    let request = StartRequest {
        replaces: None,
        viewer: user("3"),
        stream_id: StreamId::random(),
        generated_id: true,
        ttl: Duration::from_secs(10),
        default_limit: MaxStreams::DEFAULT,
        on_limit: OnLimit::Reject,
        device_id: None,
        content_id: None,
    };
    world.store.start(&request).await.expect("answers");
    world
        .store
        .end(&user("3"), request.stream_id, EndReason::Ended)
        .await
        .expect("answers");
    assert_eq!(viewer_rows(&world).await, ["user:2", "user:3", "user:4"]);

    world.advance(GRACE * 2).await;
    world
        .store
        .sweep(100, GRACE, RETENTION)
        .await
        .expect("answers");
    // The never-started row goes after the grace; the override and the viewer
    // with history stay.
    assert_eq!(viewer_rows(&world).await, ["user:2", "user:3"]);

    world.advance(RETENTION).await;
    let report = world
        .store
        .sweep(100, GRACE, RETENTION)
        .await
        .expect("answers");
    assert_eq!(report.purged, 1);
    // History went this pass; the viewer row goes on a later pass, once nothing refers to it.
    world
        .store
        .sweep(100, GRACE, RETENTION)
        .await
        .expect("answers");
    assert_eq!(viewer_rows(&world).await, ["user:2"]);
    assert_eq!(
        world.store.end_oldest(&user("3")).await.expect("answers"),
        stream_limit_core::EndOldestOutcome::UnknownViewer,
        "a viewer forgotten after the retention is unknown again"
    );
}

/// Crashed players by the thousand: one tick keeps sweeping while passes come
/// back full, so a backlog larger than a batch is cleared in one tick, not
/// one batch per interval.
#[tokio::test]
async fn one_tick_clears_a_backlog_larger_than_a_batch() {
    let world = World::postgres().await;
    world
        .sql()
        .batch_execute(
            "INSERT INTO viewers (viewer, started, leases, sweep_after)
             SELECT 'user:' || g, true,
                    ARRAY[ROW(gen_random_uuid(), now() - interval '2 hours',
                              now() - interval '1 hour', 60000, NULL, NULL)::stream_lease],
                    now() - interval '1 hour'
               FROM generate_series(1, 2500) g",
        )
        .await
        .expect("seed the backlog");
    let config = stream_limit_core::SweeperConfig {
        batch: 1000,
        grace: GRACE,
        retention: RETENTION,
        ..stream_limit_core::SweeperConfig::default()
    };
    let tick = stream_limit_core::sweep_tick(&*world.store, &config)
        .await
        .expect("sweeps");
    // 1000, 1000, 500, then a pass that finds nothing.
    assert_eq!((tick.passes, tick.expired), (4, 2500));
    let left: i64 = world
        .sql()
        .query_one(
            "SELECT count(*) FROM viewers WHERE cardinality(leases) > 0",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0);
}
