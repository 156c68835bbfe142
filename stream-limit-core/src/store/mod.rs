//! The repository port ([`LeaseStore`]) and its adapters.
//!
//! | adapter | module | use |
//! |---|---|---|
//! | [`InMemoryStore`] | `memory` | one process; tests; embedding without a database |
//! | `PostgresStore` | `postgres` (feature `postgres`) | many instances sharing one database |

mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;

use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

use crate::domain::ids::{StreamId, ViewerId};
use crate::domain::lease::{EndReason, Lease, StreamRecord};
use crate::domain::outcome::{
    EndOldestOutcome, EndOutcome, HeartbeatOutcome, LeaseCounts, StartOutcome, SweepReport,
};
use crate::domain::policy::MaxStreams;
use crate::domain::request::StartRequest;

pub use memory::InMemoryStore;

/// A boxed error from a store's driver, kept for the log, never shown to clients.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The store could not answer. Expected outcomes ("limit reached", "already
/// ended") are never errors; see [`crate::domain::outcome`].
#[derive(Debug, Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer at all (connection
    /// refused or lost, no connection within the pool timeout, no reply within
    /// the query timeout). The only failure a caller may fail open on.
    #[error("store unavailable")]
    Unavailable(#[source] Cause),
    /// The store is reachable but gave up on the decision (a lock or statement
    /// timeout, e.g. a queue of requests for one hot viewer). Retryable; never
    /// a reason to admit, since the store is up and other decisions proceed.
    #[error("store busy")]
    Busy(#[source] Cause),
    /// The store answered with an error (a failed query, a broken invariant):
    /// a bug or a schema mismatch.
    #[error("store query failed")]
    Query(#[source] Cause),
}

/// Where leases live: the port every store implements.
///
/// Every method is scoped to one viewer (except [`LeaseStore::sweep`],
/// [`LeaseStore::lease_counts`] and [`LeaseStore::ping`]), so an implementation may partition by viewer key.
///
/// Concurrency guarantee required of every implementation: operations on the
/// same viewer are linearizable. In particular, whatever the interleaving of
/// concurrent calls, from any number of processes sharing the store, the number
/// of leases of one viewer that are active (`expires_at > now` by the store's
/// clock) never exceeds that viewer's limit after any [`LeaseStore::start`].
///
/// Dispatch: the HTTP layer picks a store at run time from configuration, so it
/// holds an `Arc<dyn LeaseStore>`; `async_trait` boxes one future per call,
/// which is noise next to a network round trip and keeps handlers non-generic.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Admits, replays or refuses one stream, atomically.
    ///
    /// - A lease with `request.stream_id` that is active is returned with
    ///   `replayed = true` and takes no second slot; one that has ended (and is
    ///   still in history) yields [`StartOutcome::Gone`].
    /// - Otherwise, below the limit (the viewer's override, else
    ///   `request.default_limit`) the lease is admitted with
    ///   `expires_at = now + ttl`. At the limit, `Reject` returns
    ///   [`StartOutcome::Refused`] with the active leases oldest first, and
    ///   `EvictOldest` ends the least recently started leases (reason
    ///   `evicted`) until the new one fits.
    /// - Take-over: an active lease named by `request.replaces` (not the
    ///   request's own stream) counts as a free slot. If the start is
    ///   admitted, it ends with reason `replaced` in the same atomic step and
    ///   is reported in [`Admission::replaced`](crate::Admission::replaced);
    ///   if refused, it stays. A `replaces` naming no active lease is
    ///   ignored. A replay reports no `replaced` (the first attempt did).
    ///
    /// Errors: [`StoreError`] only when the store itself fails. The outcome is
    /// then unknown (a timeout may race the commit): retry with the same
    /// `stream_id` to learn it without taking a second slot.
    async fn start(&self, request: &StartRequest) -> Result<StartOutcome, StoreError>;

    /// Extends an active lease to `now + ttl` (its own ttl).
    ///
    /// A lease that is no longer active is never revived: it yields
    /// [`HeartbeatOutcome::Gone`] with the reason, even if no cleanup ran yet.
    async fn heartbeat(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
    ) -> Result<HeartbeatOutcome, StoreError>;

    /// Ends one stream, recording `reason` (`ended` or `revoked`) in history.
    /// Idempotent: a stream that already stopped counting yields
    /// [`EndOutcome::AlreadyEnded`] and nothing changes.
    async fn end(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
        reason: EndReason,
    ) -> Result<EndOutcome, StoreError>;

    /// Ends the viewer's least recently started active stream. Tells a viewer
    /// without active streams ([`EndOldestOutcome::NoActiveStreams`]) from one
    /// the store has never seen ([`EndOldestOutcome::UnknownViewer`]).
    async fn end_oldest(&self, viewer: &ViewerId) -> Result<EndOldestOutcome, StoreError>;

    /// The viewer's active leases, oldest first.
    async fn active(&self, viewer: &ViewerId) -> Result<Vec<Lease>, StoreError>;

    /// Sets (`Some`) or clears (`None`) the viewer's own limit. Applies to the
    /// next start; active leases above a lowered limit are kept until they end.
    async fn set_limit(
        &self,
        viewer: &ViewerId,
        limit: Option<MaxStreams>,
    ) -> Result<(), StoreError>;

    /// Up to `max` history entries of the viewer, newest first.
    async fn history(&self, viewer: &ViewerId, max: usize)
        -> Result<Vec<StreamRecord>, StoreError>;

    /// One bounded cleanup pass: moves up to `batch` leases that expired more
    /// than `grace` ago to history, and forgets up to `batch` history entries
    /// (and idle viewers) older than `retention`. Safe to run from several
    /// instances at once.
    ///
    /// Expired leases never count whether swept or not; the `grace` keeps the
    /// sweeper from removing a lease that a concurrent decision, reading a
    /// clock a moment earlier, still judged live (its answer would otherwise
    /// miss the lease).
    async fn sweep(
        &self,
        batch: usize,
        grace: Duration,
        retention: Duration,
    ) -> Result<SweepReport, StoreError>;

    /// Counts the leases of every viewer, for monitoring (see
    /// [`LeaseCounts`]); `grace` as in [`LeaseStore::sweep`], with the same
    /// boundary (a lease expired at or before `now - grace` is unswept).
    /// Reads the whole store, so the observed sweeper calls it once per
    /// tick, not per request. Not required to be a snapshot: Postgres reads
    /// one (one statement), the in-memory store counts shard by shard while
    /// decisions go on. Errors: [`StoreError`] when the store fails.
    async fn lease_counts(&self, grace: Duration) -> Result<LeaseCounts, StoreError>;

    /// Cheap liveness probe of the store, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;
}
