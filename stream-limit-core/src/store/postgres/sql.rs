//! Every statement the Postgres store runs, and why they are correct together.
//!
//! # The locking design
//!
//! A viewer's leases live in its row of `viewers` (an array, oldest first).
//! Each mutating operation is one call of a PL/pgSQL function
//! (`migrations/V2__leases_in_viewer_row.sql`; `stream_limit_start` as
//! replaced by `V3__expired_leases_never_block_a_start.sql`): one statement,
//! one implicit transaction, one network round trip. Inside it:
//!
//! 1. **Per-viewer row lock.** The function first locks the viewer's row:
//!    `SELECT … FOR UPDATE` (`stream_limit_lock`), or, for a start, an
//!    `INSERT … ON CONFLICT DO UPDATE` of the row itself. Both wait for the
//!    current holder and then work on the version it committed (READ COMMITTED
//!    re-reads the latest version of a row it had to wait for). Every writer of
//!    a viewer's leases takes this lock, so decisions for one viewer run one at
//!    a time, across all instances. When the sweeper deletes an idle row, a
//!    waiting start re-creates it and still serialises.
//! 2. **A fresh snapshot after the lock.** What the function reads besides the
//!    locked row (history, for replays) it reads in later statements; a
//!    VOLATILE function takes a new snapshot for each statement under READ
//!    COMMITTED, so those reads see everything the previous holder committed.
//! 3. **The clock is read after the lock.** `stream_limit_now()` is
//!    `clock_timestamp()`, read once the row is locked. `now()` would be the
//!    transaction's start time: a call that began earlier but got the lock
//!    later would judge expiry in the past, and a heartbeat could revive a
//!    lease that the previous decision had already counted as expired. Reading
//!    the clock under the lock makes decision times increase in lock order, so
//!    "active at the last decision" only ever shrinks by expiry.
//!
//! The common start, a generated stream id for a viewer with fewer leases in
//! its row than its limit, is a single conditional upsert, like a counter's:
//! the `ON CONFLICT DO UPDATE` locks the row and evaluates its `WHERE` (fewer
//! leases than the limit, live or not, so admitting cannot exceed it) and its
//! `SET` (append a lease made with the clock read there, after the lock) on
//! the latest version. When the `WHERE` fails, the row stays locked and the
//! full decision runs, which also prunes expired leases.
//!
//! Invariant: at every decision time `t`, the leases of a viewer with
//! `expires_at > t` number at most its limit. A start admits only below it; a
//! heartbeat extends only a lease still active at its own (later) `t`; ends
//! and evictions only remove.
//!
//! **Options compared.** Version 1 kept one row per lease and locked the
//! viewer's row in a separate statement of a four-statement transaction: the
//! same argument, three to four times the upsert's Postgres CPU per decision.
//! A counter row cannot expire leases. Slot rows with a unique
//! `(viewer, slot)` key need one statement per slot tried. SERIALIZABLE with
//! retries is correct but turns contention on a hot viewer into retry storms.
//! Advisory locks are out: Citus, CockroachDB and YugabyteDB do not support
//! them reliably. The row lock is portable, holds one viewer at a time, and
//! never conflicts across viewers.
//!
//! Reads ([`ACTIVE`], [`HISTORY`]) need no lock: one statement, one snapshot.
//! The sweeper locks the rows it cleans with `FOR UPDATE SKIP LOCKED`, so it
//! never waits for a decision and several instances can sweep at once.
//!
//! Every statement filters on `viewer` except the sweeper's batch statements.

/// The columns of a lease, in the order [`super::rows`] reads them, from the
/// `stream_lease` column `$t` of a decision function's result.
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

/// Decides a start: `stream_limit_start`. `$1` viewer, `$2` stream id, `$3`
/// whether the id was generated for this request, `$4` ttl in ms, `$5` default
/// limit, `$6` evict oldest at the limit, `$7` device id, `$8` content id.
///
/// Returns one `verdict` row (`prior` | `admit` | `evict` | `refuse`, the limit,
/// the active count after the decision, the prior stream's end reason if any),
/// plus `lease` rows: the admitted or replayed lease, every active lease on a
/// refusal, and each evicted lease (kind `evicted`).
pub(super) const START: &str = concat!(
    "SELECT kind, ",
    lease_columns!("(lease)"),
    ", verdict, max_streams, active_count, reason
  FROM stream_limit_start($1, $2, $3, $4, $5, $6, $7, $8)"
);

/// Extends a live lease: `stream_limit_heartbeat`. `$1` viewer, `$2` stream id.
///
/// Returns at most one row: `extended` with the lease, or `gone` with a reason.
pub(super) const HEARTBEAT: &str = concat!(
    "SELECT kind, ",
    lease_columns!("(lease)"),
    ", reason FROM stream_limit_heartbeat($1, $2)"
);

/// Ends one live lease, recording `$3` (`ended` | `revoked`) in history:
/// `stream_limit_end`. `$1` viewer, `$2` stream id.
///
/// Returns at most one row: `ended` with the lease and the active count after,
/// or `gone` with the reason it had already stopped counting.
pub(super) const END: &str = concat!(
    "SELECT kind, ",
    lease_columns!("(lease)"),
    ", reason, active_count FROM stream_limit_end($1, $2, $3)"
);

/// Ends the least recently started live lease: `stream_limit_end_oldest`. `$1` viewer.
///
/// Returns an `ended` row (lease, active count after), else a `known` row when
/// the viewer ever started a stream (or still has any trace), else nothing.
pub(super) const END_OLDEST: &str = concat!(
    "SELECT kind, ",
    lease_columns!("(lease)"),
    ", active_count FROM stream_limit_end_oldest($1)"
);

/// The viewer's live leases, oldest first. `$1` viewer.
pub(super) const ACTIVE: &str = concat!(
    "SELECT ",
    lease_columns!("l"),
    " FROM viewers v CROSS JOIN LATERAL unnest(v.leases) l
 WHERE v.viewer = $1 AND l.expires_at > (SELECT stream_limit_now())
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

/// Moves the leases that expired more than `$2` ms ago, of up to `$1`
/// viewers, to history: `stream_limit_sweep_expired`. Returns how many moved.
pub(super) const SWEEP_EXPIRED: &str = "SELECT stream_limit_sweep_expired($1, $2)";

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
/// (a cleared override leaves such a row), the others once
/// `$3` ms old. A viewer being worked on right now holds its row lock and is
/// skipped; a start waiting for the lock re-creates the row (see the module
/// documentation).
pub(super) const SWEEP_VIEWERS: &str = "\
WITH clock AS (SELECT stream_limit_now() AS now),
doomed AS (
    SELECT v.viewer FROM viewers v, clock c
     WHERE v.max_streams IS NULL
       AND v.created_at < c.now - $2::bigint * interval '1 millisecond'
       AND (NOT v.started OR v.created_at < c.now - $3::bigint * interval '1 millisecond')
       AND cardinality(v.leases) = 0
       AND NOT EXISTS (SELECT 1 FROM stream_history h WHERE h.viewer = v.viewer)
     LIMIT $1
       FOR UPDATE OF v SKIP LOCKED
),
gone AS (DELETE FROM viewers v USING doomed d WHERE v.viewer = d.viewer RETURNING 1)
SELECT count(*) FROM gone";
