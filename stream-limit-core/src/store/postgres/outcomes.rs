//! Turning the multi-kind results of the decide statements into outcomes.

use tokio_postgres::Row;

use super::error::PostgresError;
use super::rows::{count, kind, lease, reason};
use crate::domain::outcome::{
    Admission, EndOldestOutcome, EndOutcome, HeartbeatOutcome, Refusal, StartOutcome,
};
use crate::domain::policy::MaxStreams;

/// Decodes [`super::sql::START`].
pub(super) fn start(rows: &[Row]) -> Result<StartOutcome, PostgresError> {
    let mut verdict = None;
    let mut leases = Vec::new();
    let mut evicted = Vec::new();
    for row in rows {
        match kind(row)? {
            "verdict" => verdict = Some(row),
            "lease" => leases.push(lease(row, 1)?),
            "evicted" => evicted.push(lease(row, 1)?),
            _ => return Err(PostgresError::Shape("unknown row kind from start")),
        }
    }
    let verdict = verdict.ok_or(PostgresError::Shape("start returned no verdict"))?;
    let active_count = count(verdict, 9)?;
    match verdict.try_get::<_, &str>(7)? {
        "prior" => match verdict.try_get::<_, Option<&str>>(10)? {
            Some(_) => Ok(StartOutcome::Gone(reason(verdict, 10)?)),
            None => Ok(StartOutcome::Admitted(Admission {
                lease: leases
                    .pop()
                    .ok_or(PostgresError::Shape("replay without lease"))?,
                active_count,
                evicted: Vec::new(),
                replayed: true,
                degraded: false,
            })),
        },
        "admit" | "evict" => {
            evicted.sort_by_key(|l| (l.started_at, l.stream_id));
            Ok(StartOutcome::Admitted(Admission {
                lease: leases
                    .pop()
                    .ok_or(PostgresError::Shape("admission without lease"))?,
                active_count,
                evicted: evicted.into_iter().map(|l| l.stream_id).collect(),
                replayed: false,
                degraded: false,
            }))
        }
        "refuse" => {
            let limit = u32::try_from(verdict.try_get::<_, i64>(8)?)
                .ok()
                .and_then(|n| MaxStreams::new(n).ok())
                .ok_or(PostgresError::Shape("limit out of range"))?;
            // UNION ALL gives no order; the contract lists oldest first.
            leases.sort_by_key(|l| (l.started_at, l.stream_id));
            Ok(StartOutcome::Refused(Refusal {
                limit,
                active: leases,
            }))
        }
        _ => Err(PostgresError::Shape("unknown start verdict")),
    }
}

/// Decodes [`super::sql::HEARTBEAT`].
pub(super) fn heartbeat(rows: &[Row]) -> Result<HeartbeatOutcome, PostgresError> {
    let Some(row) = rows.first() else {
        return Ok(HeartbeatOutcome::NotFound);
    };
    match kind(row)? {
        "extended" => Ok(HeartbeatOutcome::Extended(lease(row, 1)?)),
        "gone" => Ok(HeartbeatOutcome::Gone(reason(row, 7)?)),
        _ => Err(PostgresError::Shape("unknown row kind from heartbeat")),
    }
}

/// Decodes [`super::sql::END`].
pub(super) fn end(rows: &[Row]) -> Result<EndOutcome, PostgresError> {
    let Some(row) = rows.first() else {
        return Ok(EndOutcome::NotFound);
    };
    match kind(row)? {
        "ended" => Ok(EndOutcome::Ended {
            lease: lease(row, 1)?,
            active_count: count(row, 8)?,
        }),
        "gone" => Ok(EndOutcome::AlreadyEnded(reason(row, 7)?)),
        _ => Err(PostgresError::Shape("unknown row kind from end")),
    }
}

/// Decodes [`super::sql::END_OLDEST`].
pub(super) fn end_oldest(rows: &[Row]) -> Result<EndOldestOutcome, PostgresError> {
    let Some(row) = rows.first() else {
        return Ok(EndOldestOutcome::UnknownViewer);
    };
    match kind(row)? {
        "ended" => Ok(EndOldestOutcome::Ended {
            lease: lease(row, 1)?,
            active_count: count(row, 7)?,
        }),
        "known" => Ok(EndOldestOutcome::NoActiveStreams),
        _ => Err(PostgresError::Shape("unknown row kind from end_oldest")),
    }
}
