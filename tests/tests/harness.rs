//! The Postgres harness itself: isolated databases that accept connections.

use stream_limit_tests::postgres::{fresh_database, TestDatabase};

/// Connects to `db` and checks that `SELECT 1` answers 1.
async fn select_one(db: &TestDatabase) {
    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .expect("the fresh database accepts connections");
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT 1", &[])
        .await
        .expect("SELECT 1 succeeds");
    assert_eq!(row.get::<_, i32>(0), 1);
}

#[tokio::test]
async fn concurrent_fresh_databases_are_distinct_and_usable() {
    let (a, b) = tokio::join!(fresh_database(), fresh_database());
    assert_ne!(a.name(), b.name());
    assert!(
        a.url().ends_with(a.name()),
        "{} names {}",
        a.url(),
        a.name()
    );
    tokio::join!(select_one(&a), select_one(&b));
    a.drop_database().await;
    b.drop_database().await;
}
