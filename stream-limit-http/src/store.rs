//! Choosing the lease store from [`Settings`]: in memory without a
//! `store.database_url`, Postgres with one.

use std::sync::Arc;

use std::time::Duration;

use secrecy::ExposeSecret;
use stream_limit_core::store::postgres::{BatchSizes, PostgresConfig, PostgresStore};
use stream_limit_core::{InMemoryStore, LeaseStore};

use crate::settings::{Settings, SynchronousCommit};

/// Why the configured store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreSetupError {
    /// `migrate` was asked for without a database.
    #[error("store.database_url / DATABASE_URL is not set: there is no database to migrate")]
    NoDatabase,
    /// The Postgres store could not be configured, connected or migrated.
    #[error("could not open the Postgres store")]
    Postgres(#[from] stream_limit_core::store::postgres::PostgresError),
}

/// An opened store, with what it reports beyond the [`LeaseStore`] calls.
pub struct OpenedStore {
    /// The store.
    pub store: Arc<dyn LeaseStore>,
    /// Postgres only: how many decisions its batches held.
    pub batch_sizes: Option<Arc<BatchSizes>>,
}

/// The store named by the settings. Without a database URL this is an
/// [`InMemoryStore`], and the log says loudly that only one instance may run.
pub async fn open(settings: &Settings) -> Result<OpenedStore, StoreSetupError> {
    match &settings.store.database_url {
        None => {
            tracing::warn!(
                "store.database_url / DATABASE_URL is not set: using the IN-MEMORY store. \
                 Leases live in this process only; run a SINGLE instance, or set DATABASE_URL \
                 so that every instance shares one limit."
            );
            Ok(OpenedStore {
                store: Arc::new(InMemoryStore::new()),
                batch_sizes: None,
            })
        }
        Some(_) => connect(settings).await,
    }
}

/// Connects to Postgres at `store.database_url` with `store.pool_size` and
/// the store timeouts, applies migrations, and returns the store.
pub async fn connect(settings: &Settings) -> Result<OpenedStore, StoreSetupError> {
    let store = postgres(settings)?;
    let applied = store.migrate().await?;
    store.check_layout().await?;
    tracing::info!(applied, "connected to Postgres; migrations up to date");
    Ok(OpenedStore {
        batch_sizes: Some(store.batch_sizes()),
        store: Arc::new(store),
    })
}

/// Applies the embedded migrations and returns how many were new: the
/// `migrate` command, for operators who migrate as a separate step.
pub async fn migrate(settings: &Settings) -> Result<usize, StoreSetupError> {
    Ok(postgres(settings)?.migrate().await?)
}

fn postgres(settings: &Settings) -> Result<PostgresStore, StoreSetupError> {
    let url = settings
        .store
        .database_url
        .as_ref()
        .ok_or(StoreSetupError::NoDatabase)?;
    Ok(PostgresStore::connect(&PostgresConfig {
        url: url.expose_secret().to_owned(),
        tls_ca_file: settings.store.tls_ca_file.clone(),
        pool_size: settings.store.pool_size,
        pool_timeout: Duration::from_millis(settings.store.pool_timeout_ms),
        query_timeout: Duration::from_millis(settings.store.query_timeout_ms),
        synchronous_commit: settings.store.synchronous_commit == SynchronousCommit::On,
        batch_workers: settings.store.batch_workers,
        max_batch: settings.store.max_batch,
        history_per_viewer: settings.store.history_per_viewer,
        batch_wait: Duration::from_micros(settings.store.batch_wait_us),
        citus: settings.store.citus,
    })?)
}
