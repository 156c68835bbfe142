//! Leases (active streams) and the history of ended ones. Their JSON shape
//! belongs to the HTTP layer (`stream-limit-http`'s `wire` module), not here.

use std::fmt;
use std::time::Duration;

use super::ids::StreamId;
use chrono::{DateTime, Utc};

/// A point in time, always UTC.
pub type Timestamp = DateTime<Utc>;

/// One admitted stream. It counts against the limit while `expires_at` is in the future.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The stream's identity, scoped to its viewer.
    pub stream_id: StreamId,
    /// When it was admitted; "oldest" means smallest `started_at`.
    pub started_at: Timestamp,
    /// When it stops counting unless a heartbeat extends it.
    pub expires_at: Timestamp,
    /// How far each heartbeat pushes `expires_at` past "now".
    pub ttl: Duration,
    /// The player's device, when the client said.
    pub device_id: Option<Box<str>>,
    /// What is being watched, when the client said.
    pub content_id: Option<Box<str>>,
}

impl Lease {
    /// Whether the lease still counts at `now`. Expired leases never count,
    /// even before any cleanup has removed them.
    pub fn is_active_at(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }

    /// How often a client should heartbeat this lease: a third of its TTL
    /// (at least a second), so that two lost heartbeats in a row still leave
    /// the lease alive when the third arrives.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_secs(1))
    }

    /// The history entry for this lease ending at `at` for `reason`.
    pub fn into_record(self, at: Timestamp, reason: EndReason) -> StreamRecord {
        StreamRecord {
            stream_id: self.stream_id,
            started_at: self.started_at,
            ended_at: at,
            reason,
            device_id: self.device_id,
            content_id: self.content_id,
        }
    }
}

/// Why a stream stopped counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The client ended it.
    Ended,
    /// No heartbeat arrived within its lease.
    Expired,
    /// A newer stream took its slot under `on_limit = evict_oldest`.
    Evicted,
    /// An operator revoked it.
    Revoked,
    /// A start of the same viewer took it over (it named this stream in
    /// [`StartRequest::replaces`](crate::StartRequest::replaces)).
    Replaced,
}

impl EndReason {
    /// The stable lower-case name used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ended => "ended",
            Self::Expired => "expired",
            Self::Evicted => "evicted",
            Self::Revoked => "revoked",
            Self::Replaced => "replaced",
        }
    }

    /// Every reason, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::Ended,
        Self::Expired,
        Self::Evicted,
        Self::Revoked,
        Self::Replaced,
    ];

    /// The inverse of [`Self::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to one stream, kept for the configured retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// The stream.
    pub stream_id: StreamId,
    /// When it was admitted.
    pub started_at: Timestamp,
    /// When it stopped counting (for `expired`, its expiry time).
    pub ended_at: Timestamp,
    /// Why it stopped.
    pub reason: EndReason,
    /// The player's device, when known.
    pub device_id: Option<Box<str>>,
    /// What was watched, when known.
    pub content_id: Option<Box<str>>,
}

impl StreamRecord {
    /// How long the stream counted.
    pub fn duration(&self) -> Duration {
        (self.ended_at - self.started_at)
            .to_std()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_round_trip() {
        for r in EndReason::ALL {
            assert_eq!(EndReason::from_name(r.as_str()), Some(r));
        }
        assert_eq!(EndReason::from_name("nope"), None);
    }
}
