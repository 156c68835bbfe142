//! The Postgres store: many stateless instances, one database, one limit.
//!
//! - `sql`: every statement, and the locking design that makes them correct.
//! - `queue`: decisions waiting for a batch; a viewer in one batch at a time.
//! - `worker`: the batch workers, one per pooled connection.
//! - `batch`: one batch, one transaction: lock, read, decide with the
//!   rules ([`ViewerBook`](crate::domain::rules::ViewerBook)), write, commit.
//! - `lease_store`: the [`LeaseStore`](crate::store::LeaseStore) methods.
//! - `rows`: decoding results into domain values, by column name.
//! - `tls`: TLS to the database, with libpq's `sslmode` meanings.
//! - `error`: [`PostgresError`] and its mapping into [`StoreError`].
//!
//! Decisions (start, heartbeat, end, end-oldest, revoke) go through the
//! batches; reads, limits and the sweeper are one statement each.

mod batch;
mod citus;
mod error;
mod lease_store;
mod queue;
mod rows;
mod sql;
mod tls;
mod worker;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::runtime::Handle;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use tokio_postgres_rustls::MakeRustlsConnect;

pub use error::PostgresError;
pub use tls::SslMode;
pub use worker::BatchSizes;

use crate::store::StoreError;
use citus::ShardMap;
use queue::{Answer, Decision, Pending, Queue};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// A libpq-style URL, e.g. `postgres://user:pass@host:5432/db`, or
    /// key/value settings (`host=db user=app`). Several hosts and
    /// `target_session_attrs=read-write` find the primary of a replicated
    /// cluster. `sslmode` (`disable`, `prefer` by default, `require`,
    /// `verify-ca`, `verify-full`) and `sslrootcert` (a PEM file, or `system`)
    /// mean what they mean to libpq ([`SslMode`]).
    pub url: String,
    /// The CA that signs the server's certificate (PEM), when the URL names
    /// none: `verify-ca` and `verify-full` need one.
    pub tls_ca_file: Option<PathBuf>,
    /// Connections per instance.
    pub pool_size: usize,
    /// Longest wait for a connection (and for connecting), so an unreachable
    /// database yields an answer in bounded time.
    pub pool_timeout: Duration,
    /// Longest time one operation may take once it has a connection (a hung
    /// network, a long lock queue). On expiry the connection is discarded and
    /// the caller gets [`StoreError::Unavailable`].
    pub query_timeout: Duration,
    /// `false` sets `synchronous_commit = off` on this store's connections:
    /// decisions are answered before their WAL is flushed. Faster; a database
    /// crash may forget the last fraction of a second of decisions.
    pub synchronous_commit: bool,
    /// How many batches may be in flight at once, each on its own pooled
    /// connection (at most `pool_size`; reads and sweeps use the rest).
    /// Fewer workers make bigger batches: decisions wait while every worker
    /// is in a round trip, then travel together.
    pub batch_workers: usize,
    /// The most decisions one transaction decides together (at most 1024).
    pub max_batch: usize,
    /// How many ended streams are kept per viewer, newest first (default
    /// [`HISTORY_PER_VIEWER`](crate::domain::rules::HISTORY_PER_VIEWER), as in
    /// memory): what `410 Gone` reasons and the admin history can show.
    pub history_per_viewer: usize,
    /// How long a worker that took fewer than `max_batch` decisions waits for
    /// more before it starts. Zero (the default): never; batches form only
    /// from what arrived while every connection was busy.
    pub batch_wait: Duration,
    /// The tables are distributed by Citus (`ecosystem/citus/distribute.sql`):
    /// each batch holds one shard's decisions, and statements are planned
    /// with their parameters so that Citus routes each to one worker.
    pub citus: bool,
}

impl PostgresConfig {
    /// A configuration with the service's defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls_ca_file: None,
            pool_size: 16,
            pool_timeout: Duration::from_secs(2),
            query_timeout: Duration::from_secs(2),
            synchronous_commit: true,
            batch_workers: 2,
            max_batch: 64,
            history_per_viewer: crate::domain::rules::HISTORY_PER_VIEWER,
            batch_wait: Duration::ZERO,
            citus: false,
        }
    }
}

/// Leases in Postgres, shared by every instance that points at the database.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    query_timeout: Duration,
    /// On Citus ([`PostgresConfig::citus`]): the shards, which the sweeper
    /// groups its work by as the queue does.
    shards: Option<Arc<ShardMap>>,
    batching: worker::Batching,
    batches: Arc<Batches>,
}

/// The batch queue and its workers' shared figures. When the last clone of
/// the store goes, the queue closes and the workers stop.
struct Batches {
    queue: Arc<Queue>,
    sizes: Arc<BatchSizes>,
    /// Longest a caller waits for its answer: a connection, the batch wait and
    /// the batch's transaction, each bounded.
    deadline: Duration,
}

impl Drop for Batches {
    fn drop(&mut self) {
        self.queue.close();
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PostgresStore {
    /// Builds the pool. Connects lazily: no I/O happens here.
    pub fn connect(config: &PostgresConfig) -> Result<Self, PostgresError> {
        let split = tls::split(&config.url)?;
        let mut pg = tokio_postgres::Config::from_str(&split.url).map_err(PostgresError::Url)?;
        let tls = split.connector(&mut pg, config.tls_ca_file.as_deref())?;
        pg.connect_timeout(config.pool_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("stream-limit");
        }
        // Server-side timeouts fire before the client-side `query_timeout`
        // for one statement, so a decision stuck on a lock (only a batch's
        // lock statement waits for locks) surfaces as `Busy` (never failed
        // open) rather than as an ambiguous client timeout. They bound each
        // statement, not a batch's whole transaction: a batch slow in every
        // statement can still reach the client timeout, and is `Unavailable`
        // with an unknown outcome.
        let query_ms = config.query_timeout.as_millis().max(4);
        // Every statement looks rows up by the viewer key, so one generic plan
        // per connection serves all parameters; the default (re-planning with
        // custom plans) spent more time planning the decide statement than
        // running it.
        //
        // A generic plan is made once per connection, often while the tables
        // are still small, and a batch joins the tables with arrays of
        // unknown length: the planner then likes hash joins over whole-table
        // scans, which stay cached as the tables grow (measured: the batch's
        // lock statement went from 0.1 ms to 3.9 ms as `viewers` reached 100k
        // rows). Every statement here has an index for its key, so the
        // planner is told to prefer index lookups (these settings only
        // penalise the other plans; a statement with no index still runs).
        // A penalised plan looks expensive enough to JIT-compile or to
        // parallelise, either of which costs milliseconds (measured: 19 ms
        // of JIT for a one-row lookup): key lookups never need them.
        //
        // On Citus a generic plan cannot be pruned to a shard (the viewer is
        // not known when it is made), so every statement would go to every
        // shard: there, each execution is planned with its parameters.
        let plans = if config.citus {
            "force_custom_plan"
        } else {
            "force_generic_plan"
        };
        let mut options = format!(
            "-c lock_timeout={} -c statement_timeout={} -c plan_cache_mode={plans} \
             -c enable_seqscan=off -c enable_hashjoin=off -c enable_mergejoin=off \
             -c jit=off -c max_parallel_workers_per_gather=0",
            query_ms / 2,
            query_ms * 3 / 4
        );
        if !config.synchronous_commit {
            options.push_str(" -c synchronous_commit=off");
        }
        if config.citus {
            // The only statements that read several shards are the sweeper's
            // candidate reads: one connection per worker for them, instead
            // of up to 16 opened per worker for each read (measured on an
            // idle cluster: 4 ms a read instead of 11-17 ms).
            options.push_str(" -c citus.max_adaptive_executor_pool_size=1");
        }
        // The URL's own `options` (a `search_path`, say) come last and win.
        if let Some(theirs) = pg.get_options() {
            options = format!("{options} {theirs}");
        }
        pg.options(&options);
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| PostgresError::NoRuntime)?;
        let manager = Manager::from_connect(
            pg,
            OnRuntime {
                runtime: runtime.clone(),
                tls,
            },
            // Fast: a broken connection surfaces as an error on use; the
            // `Verified` round trip on every checkout would double the cost.
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .wait_timeout(Some(config.pool_timeout))
            .create_timeout(Some(config.pool_timeout))
            .recycle_timeout(Some(config.pool_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(PostgresError::Build)?;
        let shards = config.citus.then(|| Arc::new(ShardMap::default()));
        let queue = Arc::new(match &shards {
            Some(shards) => Queue::by_shard(Arc::clone(shards)),
            None => Queue::default(),
        });
        let sizes = Arc::new(BatchSizes::default());
        let batching = worker::Batching {
            max: config.max_batch.clamp(1, 1 << (BatchSizes::BUCKETS - 1)),
            wait: config.batch_wait,
            timeout: config.query_timeout,
            history: config.history_per_viewer.max(1),
            citus: config.citus,
        };
        for _ in 0..config.batch_workers.clamp(1, config.pool_size.max(1)) {
            runtime.spawn(worker::run(
                Arc::clone(&queue),
                pool.clone(),
                batching,
                Arc::clone(&sizes),
                shards.clone(),
            ));
        }
        Ok(Self {
            pool,
            query_timeout: config.query_timeout,
            shards,
            batching,
            batches: Arc::new(Batches {
                queue,
                sizes,
                deadline: config.pool_timeout + config.batch_wait + config.query_timeout,
            }),
        })
    }

    /// How many decisions the batches held so far (shared: it keeps counting).
    pub fn batch_sizes(&self) -> Arc<BatchSizes> {
        Arc::clone(&self.batches.sizes)
    }

    /// Queues one decision for the next batch and waits for its answer.
    async fn decide(&self, viewer: String, decision: Decision) -> Result<Answer, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.batches.queue.push(Pending {
            viewer,
            decision,
            reply,
        });
        match tokio::time::timeout(self.batches.deadline, answer).await {
            Ok(Ok(answer)) => answer,
            // The workers are gone: the runtime that ran them is shutting down.
            Ok(Err(_)) => Err(StoreError::Unavailable(
                "the store's workers stopped".into(),
            )),
            // Its batch may still commit: the outcome is unknown, as after any timeout.
            Err(_) => Err(PostgresError::Timeout.into()),
        }
    }

    /// Decides `batch` in one transaction now, outside the queue (the
    /// sweeper's, on Citus), on a pooled connection.
    async fn decide_now(&self, batch: &[Pending]) -> Result<Vec<Answer>, PostgresError> {
        let client = self.pool.get().await?;
        let result = bounded(
            self.query_timeout,
            batch::decide(&client, batch, self.batching.history, true),
        )
        .await;
        release(client, &result);
        result
    }

    /// Applies the embedded migrations (the top-level `migrations/` folder).
    ///
    /// Safe to run from several instances starting at once: each migration is
    /// one transaction, so a loser of the race rolls back and, on retry, finds
    /// the migration applied.
    ///
    /// A database already migrated by a newer release is left as it is, when
    /// every migration of this release is applied unchanged: that is a
    /// rollback, and migrations only add, so this release runs on the newer
    /// schema (refinery alone would refuse it as "missing" migrations).
    pub async fn migrate(&self) -> Result<usize, PostgresError> {
        let mut attempt = 0;
        loop {
            let mut client = self.pool.get().await?;
            // Migrations may legitimately take longer than a request's timeouts.
            client
                .batch_execute(
                    "SET statement_timeout = 0; SET lock_timeout = 0; \
                     SET enable_seqscan = on; SET enable_hashjoin = on; SET enable_mergejoin = on",
                )
                .await?;
            let runner = embedded::migrations::runner();
            let result = match newer_schema(&runner, &mut client).await {
                Ok(Some(version)) => {
                    tracing::warn!(
                        schema_version = version,
                        "the database schema is newer than this release (a rollback?): \
                         not migrating; every migration of this release is applied, and \
                         newer ones only add"
                    );
                    Ok(0)
                }
                Ok(None) => runner
                    .run_async(&mut **client)
                    .await
                    .map(|report| report.applied_migrations().len())
                    .map_err(PostgresError::Migration),
                Err(error) => Err(error),
            };
            // This connection no longer has the request timeouts: retire it.
            drop(Object::take(client));
            match result {
                Ok(applied) => return Ok(applied),
                Err(error) if attempt < 4 => {
                    attempt += 1;
                    tracing::warn!(%error, attempt, "migration failed; retrying (another instance may be migrating)");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Checks that [`PostgresConfig::citus`] matches the database: a store not
    /// configured for Citus on distributed tables would plan its statements
    /// for every shard, which Citus refuses or runs with two-phase commit.
    /// Configured for Citus on tables not (yet) distributed, it works as on
    /// one Postgres, and a warning says to run `ecosystem/citus/distribute.sql`.
    pub async fn check_layout(&self) -> Result<(), PostgresError> {
        let distributed = self
            .query(
                "SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL AS citus",
                &[],
            )
            .await?
            .first()
            .map(|row| row.try_get::<_, bool>("citus"))
            .transpose()?
            .unwrap_or(false)
            && !self
                .query(
                    "SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'viewers'::regclass",
                    &[],
                )
                .await?
                .is_empty();
        match (distributed, self.shards.is_some()) {
            (true, false) => Err(PostgresError::Layout(
                "the viewers table is distributed by Citus: set store.citus = true \
                 (STREAM_LIMIT__STORE__CITUS=true)",
            )),
            (false, true) => {
                tracing::warn!(
                    "store.citus is set but the viewers table is not distributed: \
                     run ecosystem/citus/distribute.sql on the coordinator"
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// One statement, in its own implicit transaction.
    async fn query(
        &self,
        statement: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, PostgresError> {
        let client = self.pool.get().await?;
        let run = async {
            let statement = client.prepare_cached(statement).await?;
            Ok(client.query(&statement, params).await?)
        };
        let result = bounded(self.query_timeout, run).await;
        release(client, &result);
        result
    }

    async fn sweep_count(
        &self,
        statement: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, PostgresError> {
        let rows = self.query(statement, params).await?;
        let row = rows
            .first()
            .ok_or(PostgresError::Shape("sweep returned no count"))?;
        rows::count(row, "n")
    }
}

/// `Some(version)` when the database's newest migration is newer than this
/// release's and every migration of this release is applied unchanged.
/// `None` otherwise: the runner then migrates, or reports what diverges.
async fn newer_schema(
    runner: &refinery::Runner,
    client: &mut tokio_postgres::Client,
) -> Result<Option<u32>, PostgresError> {
    // A database never migrated has no history table yet (the runner makes it).
    let history = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await?;
    if !history.get::<_, bool>(0) {
        return Ok(None);
    }
    let applied = runner
        .get_applied_migrations_async(client)
        .await
        .map_err(PostgresError::Migration)?;
    let ours = runner.get_migrations();
    let newest = |migrations: &[refinery::Migration]| migrations.iter().map(|m| m.version()).max();
    match newest(&applied) {
        Some(version) if Some(version) > newest(ours) => {
            let unchanged = ours.iter().all(|mine| applied.contains(mine));
            Ok(unchanged.then_some(version))
        }
        _ => Ok(None),
    }
}

/// `operation`, or [`PostgresError::Timeout`] once `timeout` has passed.
async fn bounded<T>(
    timeout: Duration,
    operation: impl std::future::Future<Output = Result<T, PostgresError>>,
) -> Result<T, PostgresError> {
    tokio::time::timeout(timeout, operation)
        .await
        .unwrap_or(Err(PostgresError::Timeout))
}

/// Returns `client` to the pool, unless its operation timed out: then it may
/// be stuck mid-statement, and is never handed out again.
fn release<T>(client: Object, result: &Result<T, PostgresError>) {
    if matches!(result, Err(PostgresError::Timeout)) {
        drop(Object::take(client));
    }
}

/// Opens each connection, and drives it for its whole life, on one runtime:
/// the one that built the store.
///
/// deadpool's default connects on whichever task asks first, and a socket
/// belongs to the runtime it was opened on. Under actix every worker has its
/// own runtime, so a worker that finished draining at shutdown would take down
/// connections that other workers were still using. A `Client` talks to its
/// connection over a channel, so it works from any runtime.
struct OnRuntime {
    runtime: Handle,
    tls: MakeRustlsConnect,
}

impl deadpool_postgres::Connect for OnRuntime {
    fn connect(
        &self,
        pg: &tokio_postgres::Config,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        let (pg, tls) = (pg.clone(), self.tls.clone());
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let task = self.runtime.spawn(async move {
            match pg.connect(tls).await {
                Ok((client, connection)) => {
                    let _ = sender.send(Ok(client));
                    if let Err(error) = connection.await {
                        tracing::warn!(%error, "Postgres connection closed with an error");
                    }
                }
                Err(error) => {
                    let _ = sender.send(Err(error));
                }
            }
        });
        Box::pin(async move {
            match receiver.await {
                Ok(result) => result.map(|client| (client, task)),
                // The runtime is shutting down and dropped the task: let the
                // pool's create timeout answer (a driver error cannot be made here).
                Err(_) => std::future::pending().await,
            }
        })
    }
}
