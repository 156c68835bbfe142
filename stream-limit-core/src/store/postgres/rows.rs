//! Decoding result rows into domain values.

use std::time::Duration;

use tokio_postgres::Row;

use super::error::PostgresError;
use crate::domain::lease::{EndReason, Lease, StreamRecord};

/// The first column of every multi-kind result: what the row describes.
pub(super) fn kind(row: &Row) -> Result<&str, PostgresError> {
    Ok(row.try_get(0)?)
}

/// Reads the six lease columns starting at `at` (see `lease_columns!` in `sql.rs`).
pub(super) fn lease(row: &Row, at: usize) -> Result<Lease, PostgresError> {
    let ttl_ms: i64 = row.try_get(at + 3)?;
    Ok(Lease {
        stream_id: row.try_get::<_, uuid::Uuid>(at)?.into(),
        started_at: row.try_get(at + 1)?,
        expires_at: row.try_get(at + 2)?,
        ttl: Duration::from_millis(
            u64::try_from(ttl_ms).map_err(|_| PostgresError::Shape("negative ttl"))?,
        ),
        device_id: row.try_get::<_, Option<&str>>(at + 4)?.map(Box::from),
        content_id: row.try_get::<_, Option<&str>>(at + 5)?.map(Box::from),
    })
}

/// Reads an end reason from column `at`.
pub(super) fn reason(row: &Row, at: usize) -> Result<EndReason, PostgresError> {
    let name: &str = row.try_get(at)?;
    EndReason::from_name(name).ok_or(PostgresError::Shape("unknown end reason"))
}

/// Reads a non-negative count from column `at`.
pub(super) fn count(row: &Row, at: usize) -> Result<u32, PostgresError> {
    let n: i64 = row.try_get(at)?;
    u32::try_from(n).map_err(|_| PostgresError::Shape("count out of range"))
}

/// Reads one row of [`super::sql::HISTORY`].
pub(super) fn record(row: &Row) -> Result<StreamRecord, PostgresError> {
    Ok(StreamRecord {
        stream_id: row.try_get::<_, uuid::Uuid>(0)?.into(),
        started_at: row.try_get(1)?,
        ended_at: row.try_get(2)?,
        reason: reason(row, 3)?,
        device_id: row.try_get::<_, Option<&str>>(4)?.map(Box::from),
        content_id: row.try_get::<_, Option<&str>>(5)?.map(Box::from),
    })
}
