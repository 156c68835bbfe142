//! The Postgres store: many stateless instances, one database, one limit.
//!
//! - `sql`: every statement, and the locking design that makes them correct.
//! - `lease_store`: the [`LeaseStore`](crate::store::LeaseStore) methods.
//! - `outcomes` / `rows`: decoding results into domain values.
//! - `error`: [`PostgresError`] and its mapping into [`StoreError`](crate::store::StoreError).
//!
//! Every operation is one statement, so one network round trip; a mutating
//! one calls a PL/pgSQL decision function that locks the viewer's row.

mod error;
mod lease_store;
mod outcomes;
mod rows;
mod sql;

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::runtime::Handle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

pub use error::PostgresError;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// A libpq-style URL, e.g. `postgres://user:pass@host:5432/db`. TLS is not
    /// supported yet: use a trusted network or a local proxy.
    pub url: String,
    /// Connections per instance.
    pub pool_size: usize,
    /// Longest wait for a connection (and for connecting), so an unreachable
    /// database yields an answer in bounded time.
    pub pool_timeout: Duration,
    /// Longest time one operation may take once it has a connection (a hung
    /// network, a long lock queue). On expiry the connection is discarded and
    /// the caller gets [`StoreError::Unavailable`](crate::store::StoreError::Unavailable).
    pub query_timeout: Duration,
    /// `false` sets `synchronous_commit = off` on this store's connections:
    /// decisions are answered before their WAL is flushed. Faster; a database
    /// crash may forget the last fraction of a second of decisions.
    pub synchronous_commit: bool,
}

/// Leases in Postgres, shared by every instance that points at the database.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    query_timeout: Duration,
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
        let mut pg = tokio_postgres::Config::from_str(&config.url).map_err(PostgresError::Url)?;
        pg.connect_timeout(config.pool_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("stream-limit");
        }
        // Server-side timeouts fire before the client-side `query_timeout`, so
        // a slow decision on a reachable database surfaces as `Busy` (never
        // failed open) rather than as an ambiguous client timeout.
        let query_ms = config.query_timeout.as_millis().max(4);
        // Every statement looks rows up by the viewer key, so one generic plan
        // per connection serves all parameters; the default (re-planning with
        // custom plans) spent more time planning the decide statement than
        // running it.
        let mut options = format!(
            "-c lock_timeout={} -c statement_timeout={} -c plan_cache_mode=force_generic_plan",
            query_ms / 2,
            query_ms * 3 / 4
        );
        if !config.synchronous_commit {
            options.push_str(" -c synchronous_commit=off");
        }
        pg.options(&options);
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| PostgresError::NoRuntime)?;
        let manager = Manager::from_connect(
            pg,
            OnRuntime(runtime),
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
        Ok(Self {
            pool,
            query_timeout: config.query_timeout,
        })
    }

    /// Applies the embedded migrations (the top-level `migrations/` folder).
    ///
    /// Safe to run from several instances starting at once: each migration is
    /// one transaction, so a loser of the race rolls back and, on retry, finds
    /// the migration applied.
    pub async fn migrate(&self) -> Result<usize, PostgresError> {
        let mut attempt = 0;
        loop {
            let mut client = self.pool.get().await?;
            // Migrations may legitimately take longer than a request's timeouts.
            client
                .batch_execute("SET statement_timeout = 0; SET lock_timeout = 0")
                .await?;
            let result = embedded::migrations::runner()
                .run_async(&mut **client)
                .await;
            // This connection no longer has the request timeouts: retire it.
            drop(Object::take(client));
            match result {
                Ok(report) => return Ok(report.applied_migrations().len()),
                Err(error) if attempt < 4 => {
                    attempt += 1;
                    tracing::warn!(%error, attempt, "migration failed; retrying (another instance may be migrating)");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(error) => return Err(PostgresError::Migration(error)),
            }
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
        let result = tokio::time::timeout(self.query_timeout, run)
            .await
            .unwrap_or(Err(PostgresError::Timeout));
        if matches!(result, Err(PostgresError::Timeout)) {
            // The connection may be stuck mid-query; never hand it out again.
            drop(Object::take(client));
        }
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
        Ok(u64::from(rows::count(row, 0)?))
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
struct OnRuntime(Handle);

impl deadpool_postgres::Connect for OnRuntime {
    fn connect(
        &self,
        pg: &tokio_postgres::Config,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        let pg = pg.clone();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let task = self.0.spawn(async move {
            match pg.connect(NoTls).await {
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
