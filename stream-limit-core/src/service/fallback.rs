//! Failing open to a local limit (`on_store_error = allow`).
//!
//! While the store is unreachable, each instance decides on its own
//! in-memory book with the same rule and the default limit (overrides live in
//! the store), so a viewer gets at most that many new streams per instance:
//! over-admission during an outage is bounded by `limit × instances`, however
//! long it lasts and however hard clients retry. Before, every start was
//! admitted with a lease recorded nowhere.
//!
//! When the store answers again, a degraded lease is **written back on its
//! next heartbeat to this instance**: the store is asked to start it under
//! its own stream id (never evicting anyone). It keeps playing if the viewer
//! has room, and its heartbeat answers `410 evicted` if not. The lease leaves
//! this book only once the store has answered, and without a history entry,
//! so a failed write-back loses nothing and a later outage never calls it
//! ended. A heartbeat that reaches another instance finds it nowhere (404):
//! balance on the viewer to avoid that. A degraded lease that is never
//! heartbeated (a seed client) is ended by `endstream` here, or forgotten when
//! it expires.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::ids::{StreamId, ViewerId};
use crate::domain::lease::EndReason;
use crate::domain::outcome::{EndOldestOutcome, EndOutcome, HeartbeatOutcome, StartOutcome};
use crate::domain::policy::{MaxStreams, OnLimit};
use crate::domain::request::StartRequest;
use crate::store::{InMemoryStore, LeaseStore, StoreError};

/// Viewers one instance's local book remembers during an outage.
const MAX_LOCAL_VIEWERS: usize = 100_000;
/// How often the local book forgets expired leases and idle viewers.
const CLEAN_EVERY: Duration = Duration::from_secs(10);

/// The local book and what it admitted.
pub(super) struct Fallback {
    book: InMemoryStore,
    admitted: AtomicU64,
    cleaned: Mutex<Instant>,
}

impl Fallback {
    pub(super) fn new() -> Self {
        Self {
            book: InMemoryStore::new().with_max_viewers(MAX_LOCAL_VIEWERS),
            admitted: AtomicU64::new(0),
            cleaned: Mutex::new(Instant::now()),
        }
    }

    /// Degraded admissions so far.
    pub(super) fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::Relaxed)
    }

    /// Decides a start locally; admissions are marked degraded. A full book
    /// is reported as the store being unavailable, which it is.
    pub(super) async fn start(
        &self,
        request: &StartRequest,
        cause: StoreError,
    ) -> Result<StartOutcome, StoreError> {
        self.clean().await;
        match self.book.start(request).await {
            Ok(StartOutcome::Admitted(mut admission)) => {
                if !admission.replayed {
                    self.admitted.fetch_add(1, Ordering::Relaxed);
                }
                admission.degraded = true;
                Ok(StartOutcome::Admitted(admission))
            }
            Ok(other) => Ok(other),
            Err(_) => Err(cause),
        }
    }

    /// A heartbeat of a degraded lease; `None` if this book never admitted it.
    pub(super) async fn heartbeat(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
    ) -> Option<HeartbeatOutcome> {
        match self.book.heartbeat(viewer, stream_id).await {
            Ok(HeartbeatOutcome::NotFound) | Err(_) => None,
            Ok(outcome) => Some(outcome),
        }
    }

    /// An end of a degraded lease; `None` if this book never admitted it.
    pub(super) async fn end(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
        reason: EndReason,
    ) -> Option<EndOutcome> {
        match self.book.end(viewer, stream_id, reason).await {
            Ok(EndOutcome::NotFound) | Err(_) => None,
            Ok(outcome) => Some(outcome),
        }
    }

    /// Ends the viewer's oldest live degraded lease, if it has one.
    pub(super) async fn end_oldest(&self, viewer: &ViewerId) -> Option<EndOldestOutcome> {
        match self.book.end_oldest(viewer).await {
            Ok(outcome @ EndOldestOutcome::Ended { .. }) => Some(outcome),
            _ => None,
        }
    }

    /// The start that writes a live degraded lease back into the store: its
    /// own id and length, and never an eviction of a lease the store already
    /// holds. `None` if this book holds no such live lease. The lease stays
    /// in the book until [`Fallback::forget`], so a write-back that fails
    /// loses nothing.
    pub(super) async fn write_back(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
        default_limit: MaxStreams,
    ) -> Option<StartRequest> {
        let active = self.book.active(viewer).await.ok()?;
        let lease = active.into_iter().find(|l| l.stream_id == stream_id)?;
        Some(StartRequest {
            replaces: None,
            viewer: viewer.clone(),
            stream_id: lease.stream_id,
            generated_id: false,
            ttl: lease.ttl,
            default_limit,
            on_limit: OnLimit::Reject,
            device_id: lease.device_id,
            content_id: lease.content_id,
        })
    }

    /// Drops a lease the store has taken over (or refused), recording no
    /// history: the store's answer is the one that counts from now on.
    pub(super) fn forget(&self, viewer: &ViewerId, stream_id: StreamId) {
        self.book.forget(viewer, stream_id);
    }

    /// Forgets expired leases and idle viewers, at most every [`CLEAN_EVERY`].
    async fn clean(&self) {
        {
            let mut cleaned = self.cleaned.lock().unwrap_or_else(|p| p.into_inner());
            if cleaned.elapsed() < CLEAN_EVERY {
                return;
            }
            *cleaned = Instant::now();
        }
        let _ = self
            .book
            .sweep(usize::MAX, Duration::ZERO, Duration::ZERO)
            .await;
    }
}
