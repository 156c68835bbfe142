//! The in-memory store: one process, no database.
//!
//! Viewers are spread over shards, each a `std::sync::Mutex<HashMap>`. A lock is
//! held only for the synchronous bookkeeping of one viewer and never across an
//! `.await`, so a blocking mutex is both correct and cheaper than an async one;
//! sharding keeps actix workers on different viewers from contending.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::{LeaseStore, StoreError};
use crate::clock::{Clock, SystemClock};
use crate::domain::ids::{StreamId, ViewerId};
use crate::domain::lease::{EndReason, Lease, StreamRecord, Timestamp};
use crate::domain::outcome::{
    EndOldestOutcome, EndOutcome, HeartbeatOutcome, LeaseCounts, StartOutcome, SweepReport,
};
use crate::domain::policy::MaxStreams;
use crate::domain::request::StartRequest;
use crate::domain::rules::{ViewerBook, HISTORY_PER_VIEWER};

type Shard = HashMap<ViewerId, ViewerBook>;

/// Leases kept in this process. Correct for any number of concurrent callers
/// within one process; it is not shared between instances.
///
/// It remembers at most [`InMemoryStore::max_viewers`] viewers at once
/// (default [`InMemoryStore::DEFAULT_MAX_VIEWERS`]): a start or limit for one
/// more answers [`StoreError::Busy`] until the sweeper forgets idle viewers,
/// so a flood of new Session-Ids fails clearly instead of growing memory until
/// the OOM killer steps in.
pub struct InMemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
    viewers: AtomicUsize,
    max_viewers: usize,
}

impl InMemoryStore {
    /// A store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// How many viewers a store remembers unless told otherwise. 566k viewers
    /// with one stream each took 139 MB; history (up to 32 ended streams per
    /// viewer) can make a viewer several times larger.
    pub const DEFAULT_MAX_VIEWERS: usize = 1_000_000;

    /// A store on the given clock (a [`crate::ManualClock`] in tests).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let shards = (cores * 16).next_power_of_two();
        Self {
            shards: (0..shards).map(|_| Mutex::new(Shard::new())).collect(),
            hasher: RandomState::new(),
            clock,
            viewers: AtomicUsize::new(0),
            max_viewers: Self::DEFAULT_MAX_VIEWERS,
        }
    }

    /// The same store, remembering at most `max` viewers at once.
    pub fn with_max_viewers(mut self, max: usize) -> Self {
        self.max_viewers = max;
        self
    }

    /// The most viewers this store remembers at once.
    pub fn max_viewers(&self) -> usize {
        self.max_viewers
    }

    /// Runs `f` on the viewer's book, creating the book if absent and there is
    /// room for one more viewer.
    fn with_book<T>(
        &self,
        viewer: &ViewerId,
        f: impl FnOnce(&mut ViewerBook) -> T,
    ) -> Result<T, StoreError> {
        let mut shard = self.shard(viewer);
        // Look up before `entry` so the common case does not clone the key.
        if let Some(book) = shard.get_mut(viewer) {
            return Ok(trimmed(book, f));
        }
        // One atomic counter for all shards: `fetch_update` never lets it pass
        // the bound, whatever the race. `sweep` subtracts the viewers it forgot
        // only after its pass, so the count may briefly be high (a spurious
        // `Busy`), never low.
        let reserved = self
            .viewers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_viewers).then_some(n + 1)
            });
        if reserved.is_err() {
            return Err(StoreError::Busy(
                format!(
                    "the in-memory store is full: it remembers at most {} viewers",
                    self.max_viewers
                )
                .into(),
            ));
        }
        Ok(trimmed(shard.entry(viewer.clone()).or_default(), f))
    }

    /// Removes one lease without recording it in history (see
    /// [`ViewerBook::forget`]); `None` if the store does not hold it.
    pub fn forget(&self, viewer: &ViewerId, stream_id: StreamId) -> Option<Lease> {
        self.with_known_book(viewer, |book| book.forget(stream_id))
            .flatten()
    }

    /// Runs `f` on the viewer's book if the store knows the viewer.
    fn with_known_book<T>(
        &self,
        viewer: &ViewerId,
        f: impl FnOnce(&mut ViewerBook) -> T,
    ) -> Option<T> {
        self.shard(viewer)
            .get_mut(viewer)
            .map(|book| trimmed(book, f))
    }

    fn shard(&self, viewer: &ViewerId) -> MutexGuard<'_, Shard> {
        let index = self.hasher.hash_one(viewer) as usize & (self.shards.len() - 1);
        // A panic while holding the lock cannot leave a book half-written in a
        // way that breaks the limit (each rule finishes its bookkeeping before
        // returning), so a poisoned shard is still safe to use.
        self.shards[index].lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs `f` on `book`, then trims its history to [`HISTORY_PER_VIEWER`].
fn trimmed<T>(book: &mut ViewerBook, f: impl FnOnce(&mut ViewerBook) -> T) -> T {
    let result = f(book);
    book.keep_recent(HISTORY_PER_VIEWER);
    result
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("shards", &self.shards.len())
            .finish()
    }
}

#[async_trait]
impl LeaseStore for InMemoryStore {
    async fn start(&self, request: &StartRequest) -> Result<StartOutcome, StoreError> {
        let now = self.clock.now();
        self.with_book(&request.viewer, |book| book.start(request, now))
    }

    async fn heartbeat(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
    ) -> Result<HeartbeatOutcome, StoreError> {
        let now = self.clock.now();
        Ok(self
            .with_known_book(viewer, |book| book.heartbeat(stream_id, now))
            .unwrap_or(HeartbeatOutcome::NotFound))
    }

    async fn end(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
        reason: EndReason,
    ) -> Result<EndOutcome, StoreError> {
        let now = self.clock.now();
        Ok(self
            .with_known_book(viewer, |book| book.end(stream_id, reason, now))
            .unwrap_or(EndOutcome::NotFound))
    }

    async fn end_oldest(&self, viewer: &ViewerId) -> Result<EndOldestOutcome, StoreError> {
        let now = self.clock.now();
        Ok(self
            .with_known_book(viewer, |book| book.end_oldest(now))
            .unwrap_or(EndOldestOutcome::UnknownViewer))
    }

    async fn active(&self, viewer: &ViewerId) -> Result<Vec<Lease>, StoreError> {
        let now = self.clock.now();
        Ok(self
            .with_known_book(viewer, |book| book.active(now))
            .unwrap_or_default())
    }

    async fn set_limit(
        &self,
        viewer: &ViewerId,
        limit: Option<MaxStreams>,
    ) -> Result<(), StoreError> {
        self.with_book(viewer, |book| book.limit = limit)
    }

    async fn history(
        &self,
        viewer: &ViewerId,
        max: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        Ok(self
            .with_known_book(viewer, |book| book.history(max))
            .unwrap_or_default())
    }

    async fn sweep(
        &self,
        batch: usize,
        grace: Duration,
        retention: Duration,
    ) -> Result<SweepReport, StoreError> {
        let now = self.clock.now();
        let (expired_before, cutoff) = (ago(now, grace), ago(now, retention));
        let mut report = SweepReport::default();
        // One shard at a time, so no lock is held for long; stop once `batch`
        // books were touched so one pass stays bounded.
        let mut budget = batch;
        let mut forgotten = 0;
        for shard in self.shards.iter() {
            if budget == 0 {
                break;
            }
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.retain(|_, book| {
                if budget == 0 {
                    return true;
                }
                let expired = book.expire(expired_before);
                let purged = book.purge_history(cutoff);
                book.keep_recent(HISTORY_PER_VIEWER);
                if expired + purged > 0 {
                    budget -= 1;
                }
                report.expired += expired;
                report.purged += purged;
                let idle = book.is_idle();
                forgotten += usize::from(idle);
                !idle
            });
        }
        self.viewers.fetch_sub(forgotten, Ordering::Relaxed);
        Ok(report)
    }

    async fn lease_counts(&self, grace: Duration) -> Result<LeaseCounts, StoreError> {
        let now = self.clock.now();
        let swept_before = ago(now, grace);
        let mut counts = LeaseCounts::default();
        let mut oldest_unswept: Option<Timestamp> = None;
        // One shard at a time, as the sweep does.
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            for lease in shard.values().flat_map(ViewerBook::leases) {
                if lease.is_active_at(now) {
                    counts.active += 1;
                } else if lease.expires_at <= swept_before {
                    counts.unswept += 1;
                    let at = lease.expires_at;
                    oldest_unswept = Some(oldest_unswept.map_or(at, |oldest| oldest.min(at)));
                }
            }
        }
        counts.sweep_lag = oldest_unswept
            .and_then(|oldest| (swept_before - oldest).to_std().ok())
            .unwrap_or_default();
        Ok(counts)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// `age` before `now`, or the earliest time there is.
fn ago(now: Timestamp, age: Duration) -> Timestamp {
    chrono::TimeDelta::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::SessionId;
    use crate::domain::policy::OnLimit;

    fn start(viewer: &str) -> StartRequest {
        StartRequest {
            replaces: None,
            viewer: ViewerId::Session(SessionId::parse(viewer).expect("valid")),
            stream_id: StreamId::random(),
            generated_id: true,
            ttl: Duration::from_secs(60),
            default_limit: MaxStreams::DEFAULT,
            on_limit: OnLimit::Reject,
            device_id: None,
            content_id: None,
        }
    }

    #[tokio::test]
    async fn a_full_store_refuses_new_viewers_as_busy_and_takes_them_after_a_sweep() {
        let clock = Arc::new(crate::ManualClock::default());
        let store = InMemoryStore::with_clock(clock.clone()).with_max_viewers(2);
        store.start(&start("a")).await.expect("room");
        store.start(&start("b")).await.expect("room");
        assert!(matches!(
            store.start(&start("c")).await,
            Err(StoreError::Busy(_))
        ));
        // Known viewers still decide.
        store.start(&start("a")).await.expect("a is known");
        // Once their leases expired and history passed retention, the sweeper
        // forgets them and makes room.
        clock.advance(Duration::from_secs(120));
        store
            .sweep(100, Duration::ZERO, Duration::ZERO)
            .await
            .expect("sweeps");
        store.start(&start("c")).await.expect("room again");
    }
}
