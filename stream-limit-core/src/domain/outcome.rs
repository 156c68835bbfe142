//! Expected results of each operation. They are values, not errors: "limit
//! reached" or "already ended" are answers; `Err` is reserved for a failing store.

use super::ids::StreamId;
use super::lease::{EndReason, Lease};
use super::policy::MaxStreams;

/// The answer to a start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// The stream holds a slot.
    Admitted(Admission),
    /// The viewer is at the limit and `on_limit = reject`.
    Refused(Refusal),
    /// The client named a stream that has already ended; it must start a new one.
    Gone(EndReason),
}

/// A granted (or replayed) lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The lease.
    pub lease: Lease,
    /// Active streams of the viewer after this admission.
    pub active_count: u32,
    /// Streams evicted to make room (`on_limit = evict_oldest`).
    pub evicted: Vec<StreamId>,
    /// The stream this start took over ([`StartRequest::replaces`](crate::StartRequest::replaces)),
    /// when it was active and so was ended by this decision.
    pub replaced: Option<StreamId>,
    /// `true` when the same stream id was already active: nothing new was taken.
    pub replayed: bool,
    /// `true` when the store failed and the service admitted anyway
    /// (`on_store_error = allow`); the lease is not recorded anywhere.
    pub degraded: bool,
}

/// A start refused at the limit, with what the viewer could stop instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The limit that applied.
    pub limit: MaxStreams,
    /// The viewer's active streams, oldest first.
    pub active: Vec<Lease>,
}

impl Refusal {
    /// How many streams are active.
    pub fn active_count(&self) -> u32 {
        count(&self.active)
    }
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// The lease was live and now expires later.
    Extended(Lease),
    /// The lease is no longer active; the player should stop.
    Gone(EndReason),
    /// No such stream for this viewer (or it left the history window).
    NotFound,
}

/// The answer to ending (or revoking) one named stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOutcome {
    /// The stream was active and is now ended.
    Ended {
        /// The lease as it was.
        lease: Lease,
        /// Active streams of the viewer afterwards.
        active_count: u32,
    },
    /// It had already stopped counting; nothing changed.
    AlreadyEnded(EndReason),
    /// No such stream for this viewer.
    NotFound,
}

/// The answer to "end this viewer's oldest stream" (the seed `endstream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOldestOutcome {
    /// The oldest active stream ended.
    Ended {
        /// The lease as it was.
        lease: Lease,
        /// Active streams of the viewer afterwards.
        active_count: u32,
    },
    /// The viewer is known but holds no active stream.
    NoActiveStreams,
    /// The store has never seen this viewer (or forgot it after the retention).
    UnknownViewer,
}

/// What one cleanup pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired leases moved to history.
    pub expired: u64,
    /// History entries dropped past the retention.
    pub purged: u64,
}

/// The leases in a store at one moment, for monitoring: how many count, and
/// how far the sweeper is behind. Counted by [`LeaseStore::lease_counts`](crate::LeaseStore::lease_counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseCounts {
    /// Leases that count against their viewer's limit (`expires_at > now`).
    pub active: u64,
    /// Expired leases older than the sweeper's grace that are still in
    /// place: what the next sweep has to move to history.
    pub unswept: u64,
    /// How long the oldest of the `unswept` leases has waited past its
    /// grace: zero when the sweeper keeps up.
    pub sweep_lag: std::time::Duration,
}

/// Counts leases as the `u32` the outcomes use; a viewer never holds more than
/// [`MaxStreams::MAX`], so this cannot truncate.
pub(crate) fn count(leases: &[Lease]) -> u32 {
    u32::try_from(leases.len()).unwrap_or(u32::MAX)
}
