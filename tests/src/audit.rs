//! After a race, prove the rule from the store's own records.
//!
//! A lease is active from `started_at` until it stopped counting: its current
//! `expires_at` while still in the viewer's `leases`, else its `ended_at` in history
//! (`expired` rows record the expiry time). Heartbeats only extend live leases,
//! so each lease was active over one interval `[start, end)`. The rule holds
//! if no instant is covered by more intervals than the limit.

use chrono::{DateTime, Utc};

/// The most leases of `viewer` that were active at the same instant, over the
/// whole recorded life of the database.
pub async fn peak_concurrency(client: &tokio_postgres::Client, viewer: &str) -> usize {
    let rows = client
        .query(
            "SELECT l.started_at, l.expires_at
               FROM viewers v CROSS JOIN LATERAL unnest(v.leases) l WHERE v.viewer = $1
             UNION ALL
             SELECT started_at, ended_at FROM stream_history WHERE viewer = $1",
            &[&viewer],
        )
        .await
        .expect("read leases and history");
    let intervals = rows
        .iter()
        .map(|r| (r.get::<_, DateTime<Utc>>(0), r.get::<_, DateTime<Utc>>(1)));
    peak_overlap(intervals)
}

/// The largest number of half-open intervals `[start, end)` covering one instant.
pub fn peak_overlap(intervals: impl IntoIterator<Item = (DateTime<Utc>, DateTime<Utc>)>) -> usize {
    // At equal times, ends (-1) sort before starts (+1): `[a, t)` and `[t, b)` do not overlap.
    let mut events: Vec<(DateTime<Utc>, i32)> = intervals
        .into_iter()
        .filter(|(start, end)| start < end)
        .flat_map(|(start, end)| [(start, 1), (end, -1)])
        .collect();
    events.sort();
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, delta) in events {
        now += delta;
        peak = peak.max(now);
    }
    usize::try_from(peak).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).single().expect("valid")
    }

    #[test]
    fn touching_intervals_do_not_overlap_but_nested_ones_do() {
        assert_eq!(peak_overlap([(t(0), t(5)), (t(5), t(9))]), 1);
        assert_eq!(peak_overlap([(t(0), t(9)), (t(2), t(3)), (t(2), t(4))]), 3);
        assert_eq!(peak_overlap([]), 0);
    }
}
