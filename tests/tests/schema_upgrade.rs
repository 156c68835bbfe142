//! Upgrading a database that holds live leases under an older schema keeps
//! every lease, its order, and the viewer's overrides.

use stream_limit_core::{EndOldestOutcome, LeaseStore, StartOutcome, StreamId, UserId, ViewerId};
use stream_limit_tests::postgres::fresh_database;
use stream_limit_tests::world::{connect, migrated_store, new_stream};

mod embedded {
    refinery::embed_migrations!("../migrations");
}

fn user(n: &str) -> ViewerId {
    ViewerId::User(UserId::parse(n).expect("valid"))
}

#[tokio::test]
async fn leases_written_under_schema_version_1_survive_the_upgrade() {
    let db = fresh_database().await;
    let mut client = connect(db.url()).await;
    embedded::migrations::runner()
        .set_target(refinery::Target::Version(1))
        .run_async(&mut client)
        .await
        .expect("version 1 applies");
    // user:1 has an override and two live leases, written newest first; user:2
    // has a lease but (as no version-1 writer would leave it) no viewer row.
    client
        .batch_execute(
            "INSERT INTO viewers (viewer, started, max_streams) VALUES ('user:1', true, 2);
             INSERT INTO leases (viewer, stream_id, started_at, expires_at, ttl_ms, device_id) VALUES
               ('user:1', '00000000-0000-4000-8000-000000000002', now() - interval '1 minute',
                now() + interval '1 hour', 3600000, 'tv'),
               ('user:1', '00000000-0000-4000-8000-000000000001', now() - interval '2 minutes',
                now() + interval '1 hour', 3600000, NULL),
               ('user:2', '00000000-0000-4000-8000-000000000003', now(),
                now() + interval '1 hour', 3600000, NULL);",
        )
        .await
        .expect("version-1 data");

    let store = migrated_store(&db, 2).await;

    let first = StreamId::from(
        uuid::Uuid::parse_str("00000000-0000-4000-8000-000000000001").expect("uuid"),
    );
    let second = StreamId::from(
        uuid::Uuid::parse_str("00000000-0000-4000-8000-000000000002").expect("uuid"),
    );
    let active = store.active(&user("1")).await.expect("answers");
    assert_eq!(
        active.iter().map(|l| l.stream_id).collect::<Vec<_>>(),
        [first, second],
        "oldest first"
    );
    assert_eq!(active[1].device_id.as_deref(), Some("tv"));
    assert_eq!(store.active(&user("2")).await.expect("answers").len(), 1);
    // The override of 2 still holds: a third start is refused.
    let third = new_stream(user("1"));
    assert!(matches!(
        store.start(&third).await.expect("answers"),
        StartOutcome::Refused(r) if r.active.len() == 2
    ));
    // And the oldest migrated lease is the one an end-oldest takes.
    assert!(matches!(
        store.end_oldest(&user("1")).await.expect("answers"),
        EndOldestOutcome::Ended { lease, active_count: 1 } if lease.stream_id == first
    ));
}

/// A rollback: this release starts on a database that a newer release has
/// already migrated further. It migrates nothing and serves, because newer
/// migrations only add; but it still refuses a schema where one of its own
/// migrations was changed.
#[tokio::test]
async fn a_release_rolled_back_onto_a_newer_schema_serves_without_migrating() {
    let db = fresh_database().await;
    let store = migrated_store(&db, 2).await;
    let client = connect(db.url()).await;
    client
        .batch_execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
             VALUES (99, 'from_a_newer_release', '2027-01-01T00:00:00Z', '42')",
        )
        .await
        .expect("a newer release's migration");

    let applied = store
        .migrate()
        .await
        .expect("a newer schema is not an error");
    assert_eq!(applied, 0, "nothing of this release is left to apply");
    let request = new_stream(user("7"));
    assert!(matches!(
        store.start(&request).await.expect("answers"),
        StartOutcome::Admitted(_)
    ));

    client
        .batch_execute("UPDATE refinery_schema_history SET checksum = '0' WHERE version = 1")
        .await
        .expect("an edited migration");
    let error = store
        .migrate()
        .await
        .expect_err("a changed migration of this release is refused");
    assert!(error.to_string().contains("migration"), "{error}");
}
