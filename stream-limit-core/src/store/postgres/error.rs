//! The Postgres adapter's own errors, and how they become the domain's [`StoreError`].

use thiserror::Error;

use crate::store::StoreError;

/// What can go wrong in the Postgres adapter.
#[derive(Debug, Error)]
pub enum PostgresError {
    /// The database URL could not be parsed.
    #[error("invalid database url")]
    Url(#[source] tokio_postgres::Error),
    /// [`super::PostgresStore::connect`] was called outside a tokio runtime.
    #[error("the Postgres store must be created inside a tokio runtime")]
    NoRuntime,
    /// The pool could not be built from the configuration.
    #[error("could not build the connection pool")]
    Build(#[source] deadpool_postgres::BuildError),
    /// No connection within the pool's wait timeout, or connecting failed.
    #[error("no database connection available")]
    Pool(#[source] deadpool_postgres::PoolError),
    /// An operation outlived [`super::PostgresConfig::query_timeout`].
    #[error("database operation timed out")]
    Timeout,
    /// A statement failed.
    #[error("database statement failed")]
    Query(#[source] tokio_postgres::Error),
    /// TLS to the database is misconfigured: an unknown `sslmode`, a
    /// verifying mode without a CA, an unreadable or empty CA file.
    #[error("TLS to Postgres: {0}")]
    Tls(String),
    /// Applying migrations failed.
    #[error("database migration failed")]
    Migration(#[source] refinery::Error),
    /// The tables are distributed by Citus but the store was not configured
    /// for it ([`super::PostgresConfig::citus`]).
    #[error("{0}")]
    Layout(&'static str),
    /// A statement returned rows of an unexpected shape (a bug, or a schema
    /// that does not match this version).
    #[error("unexpected result from the database: {0}")]
    Shape(&'static str),
}

impl From<tokio_postgres::Error> for PostgresError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Query(error)
    }
}

impl From<deadpool_postgres::PoolError> for PostgresError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::Pool(error)
    }
}

/// Which [`StoreError`] a [`PostgresError`] becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Unavailable,
    Busy,
    Query,
}

pub(super) fn kind(error: &PostgresError) -> Kind {
    use tokio_postgres::error::SqlState;
    match error {
        PostgresError::Pool(_) | PostgresError::Timeout => Kind::Unavailable,
        // A closed connection or a network failure: the store is unreachable, not wrong.
        PostgresError::Query(e) if e.is_closed() || e.code().is_none() => Kind::Unavailable,
        // The server's own lock_timeout / statement_timeout: reachable, but busy.
        PostgresError::Query(e) if matches!(e.code(), Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE || *c == SqlState::QUERY_CANCELED) => {
            Kind::Busy
        }
        // The server is shutting down, or terminated this connection: the
        // same as unreachable. (It says so in an error message just before
        // the socket closes, so a request can read it before the pool
        // notices the closed connection.)
        PostgresError::Query(e) if e.code().is_some_and(is_going_away) => Kind::Unavailable,
        _ => Kind::Query,
    }
}

impl From<PostgresError> for StoreError {
    fn from(error: PostgresError) -> Self {
        match kind(&error) {
            Kind::Unavailable => StoreError::Unavailable(Box::new(error)),
            Kind::Busy => StoreError::Busy(Box::new(error)),
            Kind::Query => StoreError::Query(Box::new(error)),
        }
    }
}

/// Connection exceptions (class 08) and the server going down (57P01-57P03).
fn is_going_away(code: &tokio_postgres::error::SqlState) -> bool {
    use tokio_postgres::error::SqlState;
    code.code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(code)
}
