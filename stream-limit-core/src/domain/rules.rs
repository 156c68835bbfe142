//! The rule itself, as plain functions over one viewer's leases.
//!
//! The in-memory store calls these under a per-viewer lock; the Postgres
//! store locks a viewer's row, rebuilds its book and calls the same
//! functions, so there is one home for the rule. The shared contract suite
//! and the model-based test check that both agree.

use thin_vec::ThinVec;

use super::ids::StreamId;
use super::lease::{EndReason, Lease, StreamRecord, Timestamp};
use super::outcome::{
    count, Admission, EndOldestOutcome, EndOutcome, HeartbeatOutcome, Refusal, StartOutcome,
};
use super::policy::{MaxStreams, OnLimit};
use super::request::StartRequest;

/// How many ended streams a store remembers per viewer, whatever the
/// retention: enough to answer `410 Gone` for recent streams without letting
/// one noisy viewer grow memory or a table without bound. Both stores keep
/// this many by default (see [`ViewerBook::keep_recent`]): the in-memory
/// store the most recently recorded, Postgres the latest by end time (an
/// expired lease is recorded late with its earlier expiry time).
pub const HISTORY_PER_VIEWER: usize = 32;

/// One viewer's leases, limit override and recent history.
#[derive(Debug, Default, Clone)]
pub struct ViewerBook {
    /// Per-viewer override of the default limit.
    pub limit: Option<MaxStreams>,
    /// Whether the viewer ever asked to start a stream: the seed `endstream`
    /// tells "no active stream" from "never seen".
    seen: bool,
    /// In start order (oldest first). May hold expired leases until the next
    /// operation or sweep moves them to history; they never count.
    ///
    /// `ThinVec` (one pointer, length on the heap) rather than `Vec` because a
    /// book is stored inline in a hash map whose slack multiplies its size:
    /// this halves the memory per active lease of the in-memory store.
    leases: ThinVec<Lease>,
    /// Oldest first. The rules only append; a store that keeps books trims
    /// them with [`ViewerBook::keep_recent`].
    history: ThinVec<StreamRecord>,
}

impl ViewerBook {
    /// A book rebuilt from stored state: the Postgres store loads a viewer's
    /// row into one, lets the rules decide, and writes back what changed.
    /// `history` holds the ended streams the decisions may ask about, oldest first.
    pub fn restore(
        limit: Option<MaxStreams>,
        seen: bool,
        leases: Vec<Lease>,
        history: Vec<StreamRecord>,
    ) -> Self {
        Self {
            limit,
            seen,
            leases: leases.into(),
            history: history.into(),
        }
    }

    /// Whether the viewer ever asked to start a stream.
    pub fn seen(&self) -> bool {
        self.seen
    }

    /// Every lease the book holds, expired ones included, oldest first.
    pub fn leases(&self) -> &[Lease] {
        &self.leases
    }

    /// Every ended stream the book holds, oldest first.
    pub fn records(&self) -> &[StreamRecord] {
        &self.history
    }

    /// Forgets all but the `max` most recent history entries.
    pub fn keep_recent(&mut self, max: usize) {
        if self.history.len() > max {
            let excess = self.history.len() - max;
            self.history.drain(..excess);
        }
    }

    /// Decides a start at `now`.
    pub fn start(&mut self, request: &StartRequest, now: Timestamp) -> StartOutcome {
        self.seen = true;
        self.expire(now);
        if let Some(lease) = self
            .leases
            .iter()
            .find(|l| l.stream_id == request.stream_id)
        {
            return StartOutcome::Admitted(Admission {
                lease: lease.clone(),
                active_count: count(&self.leases),
                evicted: Vec::new(),
                replaced: None,
                replayed: true,
                degraded: false,
            });
        }
        if let Some(reason) = self.past_reason(request.stream_id) {
            return StartOutcome::Gone(reason);
        }
        let limit = self.limit.unwrap_or(request.default_limit);
        // Take-over: the named stream's slot counts as free. It is ended only
        // once the start is sure to be admitted, so a refusal changes nothing.
        let replaced_at = request
            .replaces
            .filter(|id| *id != request.stream_id)
            .and_then(|id| self.leases.iter().position(|l| l.stream_id == id));
        let others = count(&self.leases) - u32::from(replaced_at.is_some());
        if others >= limit.get() && request.on_limit == OnLimit::Reject {
            return StartOutcome::Refused(Refusal {
                limit,
                active: self.leases.to_vec(),
            });
        }
        let replaced = replaced_at.map(|at| {
            let lease = self.leases.remove(at);
            let stream_id = lease.stream_id;
            self.remember(lease.into_record(now, EndReason::Replaced));
            stream_id
        });
        let mut evicted = Vec::new();
        // Only `evict_oldest` gets here at the limit (`reject` was refused).
        if count(&self.leases) >= limit.get() {
            // A lowered limit can leave more than `limit` leases: evict down to `limit - 1`.
            let excess = self.leases.len() + 1 - limit.get() as usize;
            for lease in self.leases.drain(..excess).collect::<Vec<_>>() {
                evicted.push(lease.stream_id);
                self.remember(lease.into_record(now, EndReason::Evicted));
            }
        }
        let lease = Lease {
            stream_id: request.stream_id,
            started_at: now,
            expires_at: now + request.ttl,
            ttl: request.ttl,
            device_id: request.device_id.clone(),
            content_id: request.content_id.clone(),
        };
        // Grow one slot at a time: most viewers hold one or two streams, and
        // `Vec`'s default growth would reserve four.
        self.leases.reserve_exact(1);
        self.leases.push(lease.clone());
        StartOutcome::Admitted(Admission {
            lease,
            active_count: count(&self.leases),
            evicted,
            replaced,
            replayed: false,
            degraded: false,
        })
    }

    /// Extends a live lease by its TTL from `now`.
    pub fn heartbeat(&mut self, stream_id: StreamId, now: Timestamp) -> HeartbeatOutcome {
        self.expire(now);
        if let Some(lease) = self.leases.iter_mut().find(|l| l.stream_id == stream_id) {
            lease.expires_at = now + lease.ttl;
            return HeartbeatOutcome::Extended(lease.clone());
        }
        match self.past_reason(stream_id) {
            Some(reason) => HeartbeatOutcome::Gone(reason),
            None => HeartbeatOutcome::NotFound,
        }
    }

    /// Ends (or, with [`EndReason::Revoked`], revokes) one stream. Idempotent.
    pub fn end(&mut self, stream_id: StreamId, reason: EndReason, now: Timestamp) -> EndOutcome {
        self.expire(now);
        if let Some(at) = self.leases.iter().position(|l| l.stream_id == stream_id) {
            let lease = self.leases.remove(at);
            self.remember(lease.clone().into_record(now, reason));
            return EndOutcome::Ended {
                lease,
                active_count: count(&self.leases),
            };
        }
        match self.past_reason(stream_id) {
            Some(reason) => EndOutcome::AlreadyEnded(reason),
            None => EndOutcome::NotFound,
        }
    }

    /// Removes a lease without recording it in history, as if this book had
    /// never held it (its stream now lives elsewhere).
    pub fn forget(&mut self, stream_id: StreamId) -> Option<Lease> {
        let at = self.leases.iter().position(|l| l.stream_id == stream_id)?;
        Some(self.leases.remove(at))
    }

    /// Ends the least recently started active stream.
    pub fn end_oldest(&mut self, now: Timestamp) -> EndOldestOutcome {
        self.expire(now);
        if self.leases.is_empty() {
            return if self.seen || !self.history.is_empty() {
                EndOldestOutcome::NoActiveStreams
            } else {
                EndOldestOutcome::UnknownViewer
            };
        }
        let lease = self.leases.remove(0);
        self.remember(lease.clone().into_record(now, EndReason::Ended));
        EndOldestOutcome::Ended {
            lease,
            active_count: count(&self.leases),
        }
    }

    /// The leases active at `now`, oldest first.
    pub fn active(&self, now: Timestamp) -> Vec<Lease> {
        self.leases
            .iter()
            .filter(|l| l.is_active_at(now))
            .cloned()
            .collect()
    }

    /// Recent history, newest first, at most `max` entries.
    pub fn history(&self, max: usize) -> Vec<StreamRecord> {
        self.history.iter().rev().take(max).cloned().collect()
    }

    /// Moves every lease that is no longer active at `now` into history.
    /// Returns how many moved.
    pub fn expire(&mut self, now: Timestamp) -> u64 {
        let mut moved = 0;
        let mut at = 0;
        // In place, oldest first: a book holds a handful of leases.
        while at < self.leases.len() {
            if self.leases[at].is_active_at(now) {
                at += 1;
            } else {
                let lease = self.leases.remove(at);
                let expired_at = lease.expires_at;
                self.remember(lease.into_record(expired_at, EndReason::Expired));
                moved += 1;
            }
        }
        moved
    }

    /// Forgets history that ended before `cutoff`. Returns how many entries went.
    pub fn purge_history(&mut self, cutoff: Timestamp) -> u64 {
        let before = self.history.len();
        self.history.retain(|r| r.ended_at >= cutoff);
        (before - self.history.len()) as u64
    }

    /// Nothing left worth remembering: no leases, no history, no override.
    pub fn is_idle(&self) -> bool {
        self.leases.is_empty() && self.history.is_empty() && self.limit.is_none()
    }

    fn past_reason(&self, stream_id: StreamId) -> Option<EndReason> {
        self.history
            .iter()
            .rev()
            .find(|r| r.stream_id == stream_id)
            .map(|r| r.reason)
    }

    fn remember(&mut self, record: StreamRecord) {
        self.history.push(record);
    }
}

#[cfg(test)]
mod tests;
