//! The JSON wire format: every body the API writes, as structs that borrow
//! the domain's values (no copies, no `serde_json::Value`), each deriving its
//! OpenAPI schema so that the description and the bytes cannot disagree.
//!
//! The domain crate knows nothing of JSON: names (`camelCase`), which fields
//! are omitted when empty, and the envelopes of the seed routes live here.

use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;
use stream_limit_core::{Admission, EndReason, Lease, Refusal, StreamId, StreamRecord, Timestamp};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

/// Why a stream stopped counting, by its stable name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reason(pub(crate) EndReason);

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl utoipa::PartialSchema for Reason {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(EndReason::ALL.map(EndReason::as_str)))
            .description(Some(
                "Why a stream stopped counting: `ended` by the client, `expired` without a \
                 heartbeat, `evicted` by a newer start (`on_limit = evict_oldest`), `revoked` \
                 by an operator, `replaced` by a take-over.",
            ))
            .into()
    }
}

impl ToSchema for Reason {}

/// One active stream.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Lease)]
pub(crate) struct LeaseView<'a> {
    /// The stream's id.
    #[schema(value_type = uuid::Uuid)]
    stream_id: StreamId,
    /// When it was admitted (the store's clock).
    #[schema(value_type = String, format = DateTime)]
    started_at: &'a Timestamp,
    /// When it stops counting unless heartbeated.
    #[schema(value_type = String, format = DateTime)]
    expires_at: &'a Timestamp,
    /// The player's device, when the start said.
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<&'a str>,
    /// What is watched, when the start said.
    #[serde(skip_serializing_if = "Option::is_none")]
    content_id: Option<&'a str>,
}

impl<'a> From<&'a Lease> for LeaseView<'a> {
    fn from(lease: &'a Lease) -> Self {
        Self {
            stream_id: lease.stream_id,
            started_at: &lease.started_at,
            expires_at: &lease.expires_at,
            device_id: lease.device_id.as_deref(),
            content_id: lease.content_id.as_deref(),
        }
    }
}

/// Leases as a JSON array, serialized one by one without collecting.
pub(crate) struct Leases<'a>(pub(crate) &'a [Lease]);

impl Serialize for Leases<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for lease in self.0 {
            seq.serialize_element(&LeaseView::from(lease))?;
        }
        seq.end()
    }
}

/// Seconds, as the integer the API reports intervals in.
fn seconds(duration: std::time::Duration) -> u64 {
    duration.as_secs()
}

/// An admitted (or replayed) lease.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Admitted<'a> {
    /// The viewer's active streams after this admission. (First, as the
    /// seed routes always wrote it.)
    stream_count: u32,
    /// The stream's id: heartbeat and end it by this.
    #[schema(value_type = uuid::Uuid)]
    stream_id: StreamId,
    /// When the lease stops counting unless heartbeated.
    #[schema(value_type = String, format = DateTime)]
    expires_at: &'a Timestamp,
    /// How often to heartbeat: a third of the lease, so two lost heartbeats
    /// in a row still leave it alive.
    heartbeat_interval_seconds: u64,
    /// The same stream id was already active: nothing new was taken (and
    /// nothing replaced: a retried take-over reports no `replaced`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
    /// The store was unreachable and this instance admitted on its own book
    /// (`limits.on_store_error = allow`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    degraded: bool,
    /// Streams ended to make room (`limits.on_limit = evict_oldest`).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Vec<uuid::Uuid>)]
    evicted: &'a [StreamId],
    /// The stream this start took over (`replaces`), ended by the same decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>)]
    replaced: Option<StreamId>,
}

impl<'a> From<&'a Admission> for Admitted<'a> {
    fn from(admission: &'a Admission) -> Self {
        Self {
            stream_id: admission.lease.stream_id,
            stream_count: admission.active_count,
            expires_at: &admission.lease.expires_at,
            heartbeat_interval_seconds: seconds(admission.lease.heartbeat_interval()),
            replayed: admission.replayed,
            degraded: admission.degraded,
            evicted: &admission.evicted,
            replaced: admission.replaced,
        }
    }
}

/// A start refused at the limit, with what the viewer could stop instead
/// (or name in `replaces`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Refused<'a> {
    /// How many streams the viewer holds.
    stream_count: u32,
    /// The limit that applied.
    max_streams: u32,
    /// The active streams, oldest first.
    #[schema(value_type = Vec<LeaseView<'static>>)]
    active_streams: Leases<'a>,
}

impl<'a> From<&'a Refusal> for Refused<'a> {
    fn from(refusal: &'a Refusal) -> Self {
        Self {
            stream_count: refusal.active_count(),
            max_streams: refusal.limit.get(),
            active_streams: Leases(&refusal.active),
        }
    }
}

/// The refusal of `/watch` (401) and REST (409): an error body with the refusal.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LimitReached<'a> {
    /// `stream limit reached`.
    msg: &'static str,
    /// `stream_limit_reached`.
    code: &'static str,
    #[serde(flatten)]
    refused: Refused<'a>,
}

impl<'a> From<&'a Refusal> for LimitReached<'a> {
    fn from(refusal: &'a Refusal) -> Self {
        Self {
            msg: "stream limit reached",
            code: "stream_limit_reached",
            refused: Refused::from(refusal),
        }
    }
}

/// The seed routes' envelope: `{"streamStatus": …}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Envelope<T: ToSchema> {
    /// The answer.
    pub(crate) stream_status: T,
}

/// A seed start's answer: `isNewStreamAllowed` beside the admission or the
/// refusal (old clients read the flag, not the status).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SeedStart<T: ToSchema> {
    /// Whether the stream was admitted.
    pub(crate) is_new_stream_allowed: bool,
    #[serde(flatten)]
    pub(crate) decision: T,
}

/// A seed end's answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SeedClosed {
    /// `stream closed`, or `stream already closed` when the named stream had
    /// already stopped (then `reason` says why, and nothing changed).
    pub(crate) msg: &'static str,
    /// The user's active streams afterwards.
    pub(crate) stream_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Reason>)]
    pub(crate) reason: Option<Reason>,
}

/// A viewer's active streams.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StreamList<'a> {
    /// How many.
    stream_count: usize,
    /// Oldest first.
    #[schema(value_type = Vec<LeaseView<'static>>)]
    active_streams: Leases<'a>,
}

impl<'a> From<&'a [Lease]> for StreamList<'a> {
    fn from(active: &'a [Lease]) -> Self {
        Self {
            stream_count: active.len(),
            active_streams: Leases(active),
        }
    }
}

/// A heartbeat's answer: the lease now lasts until `expiresAt`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Extended<'a> {
    /// The stream.
    #[schema(value_type = uuid::Uuid)]
    stream_id: StreamId,
    /// The new expiry.
    #[schema(value_type = String, format = DateTime)]
    expires_at: &'a Timestamp,
    /// When to send the next heartbeat, at the latest.
    heartbeat_interval_seconds: u64,
}

impl<'a> From<&'a Lease> for Extended<'a> {
    fn from(lease: &'a Lease) -> Self {
        Self {
            stream_id: lease.stream_id,
            expires_at: &lease.expires_at,
            heartbeat_interval_seconds: seconds(lease.heartbeat_interval()),
        }
    }
}

/// The answer to ending (or revoking) one stream; `ended` says whether this
/// call changed anything.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Ended {
    /// The stream.
    #[schema(value_type = uuid::Uuid)]
    pub(crate) stream_id: StreamId,
    /// `true`: this call ended it; `false`: it had already stopped (`reason`).
    pub(crate) ended: bool,
    /// The viewer's active streams afterwards, when this call ended it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stream_count: Option<u32>,
    /// Why it had already stopped, when it had.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Reason>)]
    pub(crate) reason: Option<Reason>,
}

/// One ended stream, as the admin history shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HistoryEntry<'a> {
    #[schema(value_type = uuid::Uuid)]
    stream_id: StreamId,
    #[schema(value_type = String, format = DateTime)]
    started_at: &'a Timestamp,
    /// When it stopped counting (for `expired`, its expiry).
    #[schema(value_type = String, format = DateTime)]
    ended_at: &'a Timestamp,
    #[schema(value_type = Reason)]
    reason: Reason,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_id: Option<&'a str>,
    /// How long it counted.
    duration_seconds: u64,
}

impl<'a> From<&'a StreamRecord> for HistoryEntry<'a> {
    fn from(record: &'a StreamRecord) -> Self {
        Self {
            stream_id: record.stream_id,
            started_at: &record.started_at,
            ended_at: &record.ended_at,
            reason: Reason(record.reason),
            device_id: record.device_id.as_deref(),
            content_id: record.content_id.as_deref(),
            duration_seconds: seconds(record.duration()),
        }
    }
}

/// Every error: `msg` for people and old clients, `code` for machines.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody<'a> {
    /// What went wrong.
    pub(crate) msg: &'a str,
    /// Stable and machine-readable; absent on the seed contract's historical
    /// errors (bad user id, nothing to close, unknown user, 404, 405).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<&'static str>,
    /// On `410 stream_gone`: why the stream stopped counting.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Reason>)]
    pub(crate) reason: Option<Reason>,
}

/// `/health` and `/health/ready`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// `UP` or `DOWN`.
    pub(crate) status: &'static str,
    /// Why not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) msg: Option<&'static str>,
}
