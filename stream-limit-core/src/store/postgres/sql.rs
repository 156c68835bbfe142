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

/// Opens a batch's transaction (READ COMMITTED, the server's default).
pub(super) const BEGIN: &str = "BEGIN";

/// Ends a batch's transaction. In a transaction that failed, Postgres answers
/// COMMIT by rolling back, so the caller checks every earlier statement first.
pub(super) const COMMIT: &str = "COMMIT";

/// Locks the batch's viewers' rows in one statement and in one order (the
/// database's sort order of the keys), so that batches of different instances
/// never wait for each other in a cycle. `$1` the batch's viewers, each once;
/// `$2` whether to create the viewer's row if missing (it has a start: other
/// decisions need no row, and leave none behind).
///
/// `DO UPDATE … WHERE false` locks an existing row without writing it (the
/// documented behaviour of the conflict clause: every conflicting row is
/// locked, only rows passing `WHERE` are updated). A row another transaction
/// is inserting makes this wait for it; one the sweeper deleted meanwhile is
/// inserted again. Either way the row is locked when the statement returns.
pub(super) const LOCK: &str = "\
INSERT INTO viewers AS cur (viewer)
SELECT u.viewer FROM unnest($1::text[], $2::boolean[]) AS u(viewer, creates)
 WHERE u.creates OR EXISTS (SELECT 1 FROM viewers e WHERE e.viewer = u.viewer)
 ORDER BY u.viewer
ON CONFLICT (viewer) DO UPDATE SET started = cur.started WHERE false";

/// The locked rows, read by the next statement of the transaction: under READ
/// COMMITTED it takes a new snapshot, which holds the latest committed version
/// of every row it locked. `now` is the store's clock, read once, after the
/// locks. `$1` the batch's viewers.
///
/// `FOR UPDATE SKIP LOCKED` returns exactly the rows this transaction holds
/// (re-locking them is free), and skips, never waits for, a row that another
/// transaction created after [`LOCK`] looked: such a viewer is decided as
/// having no row, as if this batch had come first (its decisions, none of
/// them a start, then change nothing).
pub(super) const READ: &str = "\
SELECT v.viewer, v.max_streams, v.leases, v.sweep_after,
       v.started OR EXISTS (SELECT 1 FROM stream_history h WHERE h.viewer = v.viewer) AS seen,
       (SELECT stream_limit_now()) AS now
  FROM viewers v WHERE v.viewer = ANY($1::text[])
   FOR UPDATE OF v SKIP LOCKED";

/// The store's clock, for a batch none of whose viewers has a row.
pub(super) const NOW: &str = "SELECT stream_limit_now() AS now";

/// The history of the streams a batch names that are not in their viewer's
/// row (a replayed start, a heartbeat or end of an ended stream): the rules
/// answer `410 Gone` with the reason. `$1` viewers, `$2` stream ids, pairwise.
pub(super) const PAST: &str = "\
SELECT h.viewer, h.stream_id, h.started_at, h.ended_at, h.reason, h.device_id, h.content_id
  FROM stream_history h
  JOIN unnest($1::text[], $2::uuid[]) AS u(viewer, stream_id)
    ON h.viewer = u.viewer AND h.stream_id = u.stream_id";

/// Writes back what a batch decided, in one statement: each changed viewer's
/// row (`$1` viewer, `$2` started, `$3` sweep_after; `$4` the index of each
/// lease's viewer in `$1`, from 1, and `$5` the leases, oldest first per viewer)
/// and the streams it ended (`$6`–`$12`: the columns of `stream_history`).
///
/// A stream id is in a viewer's row or in its history, never both, so the
/// conflict clause only keeps a bug from turning into a failed batch.
pub(super) const WRITE: &str = "\
WITH w AS (
    SELECT w.viewer, w.started, w.sweep_after, w.i
      FROM unnest($1::text[], $2::boolean[], $3::timestamptz[]) WITH ORDINALITY AS w(viewer, started, sweep_after, i)
), l AS (
    SELECT x.owner, array_agg(x.lease ORDER BY x.n) AS leases
      FROM (SELECT unnest($4::bigint[]) AS owner, unnest($5::stream_lease[]) AS lease,
                   generate_subscripts($4::bigint[], 1) AS n) x
     GROUP BY x.owner
), h AS (
    INSERT INTO stream_history (viewer, stream_id, started_at, ended_at, reason, device_id, content_id)
    SELECT * FROM unnest($6::text[], $7::uuid[], $8::timestamptz[], $9::timestamptz[],
                         $10::text[], $11::text[], $12::text[])
    ON CONFLICT (viewer, stream_id) DO NOTHING
)
UPDATE viewers v
   SET leases = coalesce(l.leases, '{}'), started = w.started, sweep_after = w.sweep_after
  FROM w LEFT JOIN l ON l.owner = w.i
 WHERE v.viewer = w.viewer";

/// Keeps the `$2` most recent history entries of each viewer in `$1` (ties at
/// the cut survive): the bound the in-memory store keeps too
/// ([`crate::domain::rules::HISTORY_PER_VIEWER`]). Runs after [`WRITE`], in
/// the same transaction, for the viewers it gave new history.
pub(super) const TRIM: &str = "\
DELETE FROM stream_history h USING unnest($1::text[]) AS u(viewer)
 WHERE h.viewer = u.viewer
   AND h.ended_at < (SELECT x.ended_at FROM stream_history x WHERE x.viewer = u.viewer
                      ORDER BY x.ended_at DESC OFFSET $2::bigint - 1 LIMIT 1)";

/// The viewer's live leases, oldest first. `$1` viewer.
pub(super) const ACTIVE: &str = "\
SELECT l.stream_id, l.started_at, l.expires_at, l.ttl_ms, l.device_id, l.content_id
  FROM viewers v CROSS JOIN LATERAL unnest(v.leases) l
 WHERE v.viewer = $1 AND l.expires_at > (SELECT stream_limit_now())
 ORDER BY l.started_at, l.stream_id";

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
pub(super) const SWEEP_EXPIRED: &str = "SELECT stream_limit_sweep_expired($1, $2) AS n";

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
SELECT count(*) AS n FROM gone";

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
SELECT count(*) AS n FROM gone";
