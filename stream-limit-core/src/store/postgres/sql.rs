//! Every statement the Postgres store runs, and why they are correct together.
//!
//! # The locking design
//!
//! Each mutating operation on a viewer runs as one transaction, sent as one
//! pipelined batch (one network round trip):
//!
//! ```text
//! BEGIN; <lock the viewer's row>; <decide and write>; COMMIT
//! ```
//!
//! 1. **Per-viewer row lock.** [`LOCK_VIEWER`] upserts the viewer's row in
//!    `viewers`; `ON CONFLICT DO UPDATE` locks the existing row (its `WHERE`
//!    skips the write, except the first start's, but not the lock), and a fresh
//!    insert is locked as ours. Every writer of a viewer's leases takes this
//!    lock first, so decisions for one viewer run one at a time, across all
//!    instances. It is an upsert rather than `SELECT … FOR UPDATE` on purpose:
//!    when the sweeper deletes an idle viewer's row, a waiting upsert re-inserts
//!    it and still serialises, where a waiting `SELECT` would go on unlocked.
//! 2. **A fresh snapshot after the lock.** Under READ COMMITTED each statement
//!    takes a new snapshot, so the decide statement, which runs after the lock
//!    is granted, sees every lease committed by the previous holder. That is
//!    why the lock and the decision are two statements: in a single statement
//!    the snapshot predates the lock, and a start committed in between would be
//!    invisible (the classic check-then-insert race, in disguise).
//! 3. **The clock is read after the lock.** `stream_limit_now()` is
//!    `clock_timestamp()`, evaluated once per decide statement. `now()` would be
//!    the transaction's start time: a transaction that began earlier but got the
//!    lock later would judge expiry in the past, and a heartbeat could revive a
//!    lease that the previous decision had already counted as expired. Reading
//!    the clock under the lock makes decision times increase in lock order, so
//!    "active at the last decision" only ever shrinks by expiry.
//!
//! Invariant: at every decision time `t`, the leases of a viewer with
//! `expires_at > t` number at most its limit. A start admits only below it; a
//! heartbeat extends only a lease still active at its own (later) `t`; ends
//! and evictions only remove.
//!
//! **Options compared.** A single-statement conditional upsert on a counter
//! row is one statement, but a counter cannot expire leases. Slot rows with a
//! unique `(viewer, slot)` key need one statement per slot tried. SERIALIZABLE
//! with retries is correct but turns contention on a hot viewer into retry
//! storms (and extra round trips). Advisory locks are out: Citus, CockroachDB
//! and YugabyteDB do not support them reliably. The row lock is portable, holds
//! one viewer at a time, and never conflicts across viewers.
//!
//! Reads ([`ACTIVE`], [`HISTORY`]) need no lock: one statement, one snapshot.
//! The sweeper takes no viewer lock either: removing a lease that no longer
//! counts cannot raise any count, and `FOR UPDATE SKIP LOCKED` lets several
//! instances sweep at once; a row a heartbeat just extended is re-checked by
//! the row lock and skipped.
//!
//! Every statement filters on `viewer` except the sweeper's batch statements.

/// Opens the transaction of a mutating operation.
pub(super) const BEGIN: &str = "BEGIN";
/// Closes it (or rolls back, if a statement failed).
pub(super) const COMMIT: &str = "COMMIT";

/// Locks the viewer's row, creating it on first sight. `$1` viewer, `$2`
/// whether this is a start (marks the viewer as seen; written once).
pub(super) const LOCK_VIEWER: &str = "\
INSERT INTO viewers (viewer, started) VALUES ($1, $2)
ON CONFLICT (viewer) DO UPDATE SET started = true WHERE EXCLUDED.started AND NOT viewers.started";

/// The columns of a lease, in the order [`super::rows`] reads them.
macro_rules! lease_columns {
    ($t:literal) => {
        concat!(
            $t,
            ".stream_id, ",
            $t,
            ".started_at, ",
            $t,
            ".expires_at, ",
            $t,
            ".ttl_ms, ",
            $t,
            ".device_id, ",
            $t,
            ".content_id"
        )
    };
}

/// A CTE body that records the leases returned by CTE `$from` in history,
/// ended now (`c.now` of the `clock` CTE) for `$reason` (an SQL expression).
/// A stream id is in `leases` or in `stream_history`, never both, so the
/// conflict clause only guards against a bug turning into a failed request.
macro_rules! record_in_history {
    ($from:literal, $reason:literal) => {
        concat!(
            "INSERT INTO stream_history (viewer, stream_id, started_at, ended_at, reason, device_id, content_id)
    SELECT e.viewer, e.stream_id, e.started_at, c.now, ", $reason, ", e.device_id, e.content_id
      FROM ", $from, " e, clock c
    ON CONFLICT (viewer, stream_id) DO NOTHING"
        )
    };
}

/// Decides a start (run after [`LOCK_VIEWER`]).
///
/// `$1` viewer, `$2` stream id, `$3` ttl in ms, `$4` default limit,
/// `$5` evict oldest at the limit, `$6` device id, `$7` content id.
///
/// Returns one `verdict` row (`prior` | `admit` | `evict` | `refuse`, the limit,
/// the active count after the decision, the prior stream's end reason if any),
/// plus `lease` rows: the admitted or replayed lease, every active lease on a
/// refusal, and each evicted lease (kind `evicted`).
pub(super) const START: &str = concat!(
    "WITH clock AS (SELECT stream_limit_now() AS now),
limit_of AS (
    SELECT coalesce((SELECT max_streams FROM viewers WHERE viewer = $1), $4::int) AS n
),
prior AS (
    SELECT l.expires_at > c.now AS live, CASE WHEN l.expires_at > c.now THEN NULL ELSE 'expired' END AS reason
      FROM leases l, clock c WHERE l.viewer = $1 AND l.stream_id = $2
    UNION ALL
    SELECT false, h.reason FROM stream_history h WHERE h.viewer = $1 AND h.stream_id = $2
),
active AS (
    SELECT l.*, row_number() OVER (ORDER BY l.started_at, l.stream_id) AS age
      FROM leases l, clock c WHERE l.viewer = $1 AND l.expires_at > c.now
),
decision AS (
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM prior) THEN 'prior'
        WHEN (SELECT count(*) FROM active) < n THEN 'admit'
        WHEN $5::bool THEN 'evict'
        ELSE 'refuse' END AS verdict,
        n, (SELECT count(*) FROM active) AS before
    FROM limit_of
),
evicted AS (
    DELETE FROM leases l USING active a, decision d
     WHERE d.verdict = 'evict' AND l.viewer = $1 AND l.stream_id = a.stream_id
       AND a.age <= d.before - d.n + 1
    RETURNING l.*
),
evicted_history AS (", record_in_history!("evicted", "'evicted'"), "),
admitted AS (
    INSERT INTO leases (viewer, stream_id, started_at, expires_at, ttl_ms, device_id, content_id)
    SELECT $1, $2, c.now, c.now + $3::bigint * interval '1 millisecond', $3::bigint, $6, $7
      FROM clock c, decision d WHERE d.verdict IN ('admit', 'evict')
    RETURNING *
)
SELECT 'verdict' AS kind, NULL::uuid, NULL::timestamptz, NULL::timestamptz, NULL::bigint, NULL::text, NULL::text,
       d.verdict, d.n::bigint,
       CASE d.verdict WHEN 'admit' THEN d.before + 1
                      WHEN 'evict' THEN d.before + 1 - (SELECT count(*) FROM evicted)
                      ELSE d.before END,
       (SELECT p.reason FROM prior p LIMIT 1)
  FROM decision d
UNION ALL
SELECT 'lease', ", lease_columns!("a"), ", NULL, NULL, NULL, NULL FROM admitted a
UNION ALL
SELECT 'lease', ", lease_columns!("a"), ", NULL, NULL, NULL, NULL
  FROM active a, decision d WHERE d.verdict = 'refuse' OR (d.verdict = 'prior' AND a.stream_id = $2)
UNION ALL
SELECT 'evicted', ", lease_columns!("e"), ", NULL, NULL, NULL, NULL FROM evicted e"
);

/// Extends a live lease (run after [`LOCK_VIEWER`]). `$1` viewer, `$2` stream id.
///
/// Returns at most one row: `extended` with the lease, or `gone` with a reason.
pub(super) const HEARTBEAT: &str = concat!(
    "WITH clock AS (SELECT stream_limit_now() AS now),
extended AS (
    UPDATE leases l SET expires_at = c.now + l.ttl_ms * interval '1 millisecond'
      FROM clock c WHERE l.viewer = $1 AND l.stream_id = $2 AND l.expires_at > c.now
    RETURNING l.*
)
SELECT 'extended' AS kind, ",
    lease_columns!("e"),
    ", NULL::text FROM extended e
UNION ALL
SELECT 'gone', ",
    lease_columns!("l"),
    ", 'expired'
  FROM leases l, clock c WHERE l.viewer = $1 AND l.stream_id = $2 AND l.expires_at <= c.now
UNION ALL
SELECT 'gone', NULL, NULL, NULL, NULL, NULL, NULL, h.reason
  FROM stream_history h WHERE h.viewer = $1 AND h.stream_id = $2"
);

/// Ends one live lease, recording `$3` (`ended` | `revoked`) in history (run
/// after [`LOCK_VIEWER`]). `$1` viewer, `$2` stream id.
///
/// Returns at most one row: `ended` with the lease and the active count after,
/// or `gone` with the reason it had already stopped counting.
pub(super) const END: &str = concat!(
    "WITH clock AS (SELECT stream_limit_now() AS now),
ended AS (
    DELETE FROM leases l USING clock c
     WHERE l.viewer = $1 AND l.stream_id = $2 AND l.expires_at > c.now
    RETURNING l.*
),
recorded AS (",
    record_in_history!("ended", "$3::text"),
    ")
SELECT 'ended' AS kind, ",
    lease_columns!("e"),
    ", NULL::text,
       -- The scan below sees the snapshot before the DELETE, so it still counts the ended lease.
       (SELECT count(*) - 1 FROM leases l, clock c WHERE l.viewer = $1 AND l.expires_at > c.now)
  FROM ended e
UNION ALL
SELECT 'gone', ",
    lease_columns!("l"),
    ", 'expired', NULL
  FROM leases l, clock c WHERE l.viewer = $1 AND l.stream_id = $2 AND l.expires_at <= c.now
UNION ALL
SELECT 'gone', NULL, NULL, NULL, NULL, NULL, NULL, h.reason, NULL
  FROM stream_history h WHERE h.viewer = $1 AND h.stream_id = $2"
);

/// Ends the least recently started live lease (run after [`LOCK_VIEWER`]). `$1` viewer.
///
/// Returns an `ended` row (lease, active count after), else a `known` row when
/// the viewer ever started a stream (or still has any trace), else nothing.
pub(super) const END_OLDEST: &str = concat!(
    "WITH clock AS (SELECT stream_limit_now() AS now),
oldest AS (
    SELECT l.stream_id FROM leases l, clock c
     WHERE l.viewer = $1 AND l.expires_at > c.now
     ORDER BY l.started_at, l.stream_id LIMIT 1
),
ended AS (
    DELETE FROM leases l USING oldest o WHERE l.viewer = $1 AND l.stream_id = o.stream_id
    RETURNING l.*
),
recorded AS (",
    record_in_history!("ended", "'ended'"),
    ")
SELECT 'ended' AS kind, ",
    lease_columns!("e"),
    ",
       (SELECT count(*) - 1 FROM leases l, clock c WHERE l.viewer = $1 AND l.expires_at > c.now)
  FROM ended e
UNION ALL
SELECT 'known', NULL, NULL, NULL, NULL, NULL, NULL, NULL
 WHERE NOT EXISTS (SELECT 1 FROM ended)
   AND (EXISTS (SELECT 1 FROM viewers v WHERE v.viewer = $1 AND v.started)
        OR EXISTS (SELECT 1 FROM leases l WHERE l.viewer = $1)
        OR EXISTS (SELECT 1 FROM stream_history h WHERE h.viewer = $1))"
);

/// The viewer's live leases, oldest first. `$1` viewer.
pub(super) const ACTIVE: &str = concat!(
    "SELECT ",
    lease_columns!("l"),
    " FROM leases l
 WHERE l.viewer = $1 AND l.expires_at > (SELECT stream_limit_now())
 ORDER BY l.started_at, l.stream_id"
);

/// Sets or clears the viewer's limit; the upsert takes the viewer's row lock
/// itself. `$1` viewer, `$2` limit or NULL.
pub(super) const SET_LIMIT: &str = "\
INSERT INTO viewers (viewer, max_streams) VALUES ($1, $2)
ON CONFLICT (viewer) DO UPDATE SET max_streams = EXCLUDED.max_streams";

/// The viewer's history, newest first. `$1` viewer, `$2` how many.
pub(super) const HISTORY: &str = "\
SELECT stream_id, started_at, ended_at, reason, device_id, content_id
  FROM stream_history WHERE viewer = $1
 ORDER BY ended_at DESC, stream_id LIMIT $2";

/// Moves up to `$1` leases that expired more than `$2` ms ago to history.
/// Returns how many moved.
pub(super) const SWEEP_EXPIRED: &str = "\
WITH doomed AS (
    SELECT viewer, stream_id FROM leases
     WHERE expires_at <= (SELECT stream_limit_now()) - $2::bigint * interval '1 millisecond'
     ORDER BY expires_at LIMIT $1
       FOR UPDATE SKIP LOCKED
),
moved AS (
    DELETE FROM leases l USING doomed d
     WHERE l.viewer = d.viewer AND l.stream_id = d.stream_id
    RETURNING l.*
),
recorded AS (
    INSERT INTO stream_history (viewer, stream_id, started_at, ended_at, reason, device_id, content_id)
    SELECT viewer, stream_id, started_at, expires_at, 'expired', device_id, content_id FROM moved
    ON CONFLICT (viewer, stream_id) DO NOTHING
)
SELECT count(*) FROM moved";

/// Forgets up to `$1` history rows that ended more than `$2` ms ago. Returns how many.
pub(super) const SWEEP_HISTORY: &str = "\
WITH doomed AS (
    SELECT viewer, stream_id FROM stream_history
     WHERE ended_at < (SELECT stream_limit_now()) - $2::bigint * interval '1 millisecond'
     ORDER BY ended_at LIMIT $1
       FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM stream_history h USING doomed d
     WHERE h.viewer = d.viewer AND h.stream_id = d.stream_id
    RETURNING 1
)
SELECT count(*) FROM gone";

/// Forgets up to `$1` viewers with nothing left to remember (no lease, no
/// history, no override): those that never started a stream once `$2` ms old
/// (heartbeats or ends for unknown viewers create such rows), the others once
/// `$3` ms old. A viewer being worked on right now holds its row lock and is
/// skipped; an operation waiting for the lock re-creates the row (see
/// [`LOCK_VIEWER`]).
pub(super) const SWEEP_VIEWERS: &str = "\
WITH clock AS (SELECT stream_limit_now() AS now),
doomed AS (
    SELECT v.viewer FROM viewers v, clock c
     WHERE v.max_streams IS NULL
       AND v.created_at < c.now - $2::bigint * interval '1 millisecond'
       AND (NOT v.started OR v.created_at < c.now - $3::bigint * interval '1 millisecond')
       AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.viewer = v.viewer)
       AND NOT EXISTS (SELECT 1 FROM stream_history h WHERE h.viewer = v.viewer)
     LIMIT $1
       FOR UPDATE OF v SKIP LOCKED
),
gone AS (DELETE FROM viewers v USING doomed d WHERE v.viewer = d.viewer RETURNING 1)
SELECT count(*) FROM gone";
