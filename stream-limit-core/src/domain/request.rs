//! The inputs a store needs to decide a start.

use std::time::Duration;

use super::ids::{StreamId, ViewerId};
use super::policy::{MaxStreams, OnLimit};

/// Everything a store needs to admit or refuse one stream, in one call, so the
/// decision can be made atomically (one lock, one round trip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRequest {
    /// Whose stream.
    pub viewer: ViewerId,
    /// The stream's id: client-supplied (idempotent retries) or random.
    pub stream_id: StreamId,
    /// Whether `stream_id` was generated for this request rather than named by
    /// the client. A generated id cannot name an earlier stream, so a store may
    /// skip looking for one (the Postgres store then decides in one statement).
    pub generated_id: bool,
    /// Lease length, already chosen by [`crate::LeaseTerms::ttl_for`].
    pub ttl: Duration,
    /// The limit unless the viewer has an override.
    pub default_limit: MaxStreams,
    /// What to do at the limit.
    pub on_limit: OnLimit,
    /// Optional device id, kept in history.
    pub device_id: Option<Box<str>>,
    /// Optional content id, kept in history.
    pub content_id: Option<Box<str>>,
    /// Take-over: an active stream of this viewer to end (reason
    /// [`EndReason::Replaced`](super::lease::EndReason::Replaced)) in the
    /// same decision that admits this one. Ignored when it is not active: the
    /// start is then decided as if it named nothing.
    pub replaces: Option<StreamId>,
}
