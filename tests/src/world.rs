//! A store plus control over its clock: the same behavioural test runs against
//! every store, with time moved by the test instead of slept.

use std::sync::Arc;
use std::time::Duration;

use stream_limit_core::domain::rules::HISTORY_PER_VIEWER;
use stream_limit_core::store::postgres::{PostgresConfig, PostgresStore};
use stream_limit_core::{
    InMemoryStore, LeaseStore, ManualClock, MaxStreams, OnLimit, StartRequest, StreamId, ViewerId,
};

use crate::postgres::{fresh_database, TestDatabase};

/// A store under test and the means to move its clock.
pub struct World {
    /// The store under test.
    pub store: Arc<dyn LeaseStore>,
    clock: WorldClock,
}

enum WorldClock {
    Manual(Arc<ManualClock>),
    /// The test's own database, whose `stream_limit_now()` adds a shift.
    Database {
        client: tokio_postgres::Client,
        /// The shift so far, in milliseconds.
        shift_ms: std::sync::atomic::AtomicI64,
    },
}

impl World {
    /// An in-memory store on a manual clock.
    pub fn memory() -> Self {
        let clock = Arc::new(ManualClock::default());
        Self {
            store: Arc::new(InMemoryStore::with_clock(clock.clone())),
            clock: WorldClock::Manual(clock),
        }
    }

    /// A Postgres store on a fresh, migrated database whose clock can be shifted.
    pub async fn postgres() -> Self {
        let db = fresh_database().await;
        let store = migrated_store(&db, 8).await;
        let client = connect(db.url()).await;
        let world = Self {
            store: Arc::new(store),
            clock: WorldClock::Database {
                client,
                shift_ms: 0.into(),
            },
        };
        world.advance(Duration::ZERO).await;
        world
    }

    /// The test database's own connection (Postgres worlds only), to inspect
    /// rows the store API does not show.
    pub fn sql(&self) -> &tokio_postgres::Client {
        match &self.clock {
            WorldClock::Database { client, .. } => client,
            WorldClock::Manual(_) => panic!("an in-memory world has no database"),
        }
    }

    /// Moves the store's clock forward.
    pub async fn advance(&self, by: Duration) {
        match &self.clock {
            WorldClock::Manual(clock) => clock.advance(by),
            WorldClock::Database { client, shift_ms } => {
                let ms = i64::try_from(by.as_millis()).expect("duration fits");
                let shift = shift_ms.fetch_add(ms, std::sync::atomic::Ordering::SeqCst) + ms;
                // Only this test's throwaway database gets a shifted clock; the
                // migration's definition (plain clock_timestamp()) is what
                // production runs. The shift is written into the function
                // itself, not read from a table: on Citus the function runs on
                // the workers (it is distributed, so the replacement reaches
                // them), where a query on a shard may not read another table.
                client
                    .batch_execute(&format!(
                        "CREATE OR REPLACE FUNCTION stream_limit_now() RETURNS timestamptz
                             LANGUAGE sql VOLATILE PARALLEL SAFE
                             AS $$ SELECT clock_timestamp() + interval '{shift} milliseconds' $$"
                    ))
                    .await
                    .expect("shift the test clock");
            }
        }
    }
}

/// A migrated [`PostgresStore`] on `db` with its own pool of `pool_size`
/// connections (one pool stands in for one service instance), keeping the
/// default history per viewer.
pub async fn migrated_store(db: &TestDatabase, pool_size: usize) -> PostgresStore {
    store_keeping(db, pool_size, HISTORY_PER_VIEWER).await
}

/// Like [`migrated_store`], but keeping every ended stream in history, so
/// that [`crate::audit::peak_concurrency`] sees the whole life of a viewer
/// however many streams it ended.
pub async fn audited_store(db: &TestDatabase, pool_size: usize) -> PostgresStore {
    store_keeping(db, pool_size, usize::MAX).await
}

async fn store_keeping(db: &TestDatabase, pool_size: usize, history: usize) -> PostgresStore {
    let store = PostgresStore::connect(&PostgresConfig {
        url: db.url().to_owned(),
        tls_ca_file: None,
        pool_size,
        pool_timeout: Duration::from_secs(10),
        query_timeout: Duration::from_secs(30),
        synchronous_commit: true,
        batch_workers: pool_size,
        max_batch: 64,
        history_per_viewer: history,
        batch_wait: Duration::ZERO,
        citus: crate::postgres::citus(),
    })
    .expect("valid pool configuration");
    store.migrate().await.expect("migrations apply");
    store
}

/// A plain client on `url`, its connection driven in the background.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// A start of a new stream (generated id, 60 s lease, the default limit,
/// refused at the limit): what most store tests send.
pub fn new_stream(viewer: ViewerId) -> StartRequest {
    StartRequest {
        replaces: None,
        viewer,
        stream_id: StreamId::random(),
        generated_id: true,
        ttl: Duration::from_secs(60),
        default_limit: MaxStreams::DEFAULT,
        on_limit: OnLimit::Reject,
        device_id: None,
        content_id: None,
    }
}
