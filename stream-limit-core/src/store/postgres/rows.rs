//! Decoding result rows into domain values, by column name.

use std::time::Duration;

use postgres_types::{FromSql, ToSql};
use tokio_postgres::Row;

use super::error::PostgresError;
use crate::domain::lease::{EndReason, Lease, StreamRecord, Timestamp};
use crate::domain::policy::MaxStreams;

/// The `stream_lease` composite type (`migrations/V2__leases_in_viewer_row.sql`),
/// as it travels to and from the viewer's `leases` column.
#[derive(Debug, Clone, FromSql, ToSql)]
#[postgres(name = "stream_lease")]
pub(super) struct LeaseRow {
    pub stream_id: uuid::Uuid,
    pub started_at: Timestamp,
    pub expires_at: Timestamp,
    pub ttl_ms: i64,
    pub device_id: Option<String>,
    pub content_id: Option<String>,
}

impl TryFrom<LeaseRow> for Lease {
    type Error = PostgresError;

    fn try_from(row: LeaseRow) -> Result<Self, PostgresError> {
        Ok(Lease {
            stream_id: row.stream_id.into(),
            started_at: row.started_at,
            expires_at: row.expires_at,
            ttl: Duration::from_millis(
                u64::try_from(row.ttl_ms).map_err(|_| PostgresError::Shape("negative ttl"))?,
            ),
            device_id: row.device_id.map(Box::from),
            content_id: row.content_id.map(Box::from),
        })
    }
}

impl From<&Lease> for LeaseRow {
    fn from(lease: &Lease) -> Self {
        LeaseRow {
            stream_id: *lease.stream_id.as_uuid(),
            started_at: lease.started_at,
            expires_at: lease.expires_at,
            ttl_ms: i64::try_from(lease.ttl.as_millis()).unwrap_or(i64::MAX),
            device_id: lease.device_id.as_deref().map(str::to_owned),
            content_id: lease.content_id.as_deref().map(str::to_owned),
        }
    }
}

/// Reads a `stream_lease[]` column.
pub(super) fn leases(row: &Row, column: &str) -> Result<Vec<Lease>, PostgresError> {
    row.try_get::<_, Vec<LeaseRow>>(column)?
        .into_iter()
        .map(Lease::try_from)
        .collect()
}

/// Reads a lease spread over the columns `stream_id`, `started_at`,
/// `expires_at`, `ttl_ms`, `device_id` and `content_id`.
pub(super) fn lease(row: &Row) -> Result<Lease, PostgresError> {
    Lease::try_from(LeaseRow {
        stream_id: row.try_get("stream_id")?,
        started_at: row.try_get("started_at")?,
        expires_at: row.try_get("expires_at")?,
        ttl_ms: row.try_get("ttl_ms")?,
        device_id: row.try_get("device_id")?,
        content_id: row.try_get("content_id")?,
    })
}

/// Reads a viewer's limit override from column `column`.
pub(super) fn limit(row: &Row, column: &str) -> Result<Option<MaxStreams>, PostgresError> {
    match row.try_get::<_, Option<i32>>(column)? {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .ok()
            .and_then(|n| MaxStreams::new(n).ok())
            .map(Some)
            .ok_or(PostgresError::Shape("limit out of range")),
    }
}

/// Reads a non-negative count from column `column`.
pub(super) fn count(row: &Row, column: &str) -> Result<u64, PostgresError> {
    let n: i64 = row.try_get(column)?;
    u64::try_from(n).map_err(|_| PostgresError::Shape("count out of range"))
}

/// Reads one `stream_history` row.
pub(super) fn record(row: &Row) -> Result<StreamRecord, PostgresError> {
    let reason: &str = row.try_get("reason")?;
    Ok(StreamRecord {
        stream_id: row.try_get::<_, uuid::Uuid>("stream_id")?.into(),
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        reason: EndReason::from_name(reason).ok_or(PostgresError::Shape("unknown end reason"))?,
        device_id: row.try_get::<_, Option<&str>>("device_id")?.map(Box::from),
        content_id: row.try_get::<_, Option<&str>>("content_id")?.map(Box::from),
    })
}
