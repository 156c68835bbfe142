//! Every statement the Postgres store runs, and why they are correct together.
//!
//! # What a batch is
//!
//! A viewer's leases live in its row of `viewers` (an array, oldest first).
//! Decisions (start, heartbeat, end, end-oldest, revoke) are not SQL
//! functions any more: an instance queues them, and a batch worker takes
//! what is waiting (`super::queue`, `super::worker`) and decides it in one
//! READ COMMITTED transaction (`super::batch`):
//!
//! 1. [`LOCK`] locks every viewer row of the batch, creating those a start
//!    needs, in one statement, in key order.
//! 2. [`READ`] reads those rows, and the store's clock after them.
//! 3. Rust rebuilds each row as a [`ViewerBook`](crate::domain::rules::ViewerBook)
//!    and applies the batch's decisions to it, in arrival order: the same
//!    rule, the same code, as the in-memory store.
//! 4. [`WRITE`] writes the changed rows and the new history in one
//!    statement ([`TRIM`] bounds history), and COMMIT returns before any
//!    answer leaves.
//!
//! # Why it is correct
//!
//! - **Per-viewer row lock.** Every writer of a viewer's leases holds the
//!   viewer's row lock from before it reads the row until it commits: the
//!   batches, the sweeper, and the decision functions of the previous release
//!   (which still exist, so instances of both releases can share a database
//!   during a rolling upgrade). So decisions for one viewer are serialised
//!   across all instances, and each reads what the previous one committed
//!   ([`READ`] is a later statement than [`LOCK`]: under READ COMMITTED it
//!   takes a new snapshot).
//! - **The clock is read after the lock.** [`READ`] reads
//!   `stream_limit_now()` (`clock_timestamp()`) after every lock of the batch
//!   is held. `now()` would be the transaction's start: a decision that began
//!   earlier but got the lock later would judge expiry in the past, and a
//!   heartbeat could revive a lease the previous decision had already counted
//!   expired. Decisions of one batch share one clock reading, so their times
//!   still never decrease in lock order.
//! - **Invariant.** At every decision time `t`, the leases of a viewer with
//!   `expires_at > t` number at most its limit: the book admits only below
//!   it, extends only leases still active at its `t`, and only removes
//!   otherwise ([`crate::domain::rules`]); the batch writes back exactly the
//!   book. `tests/tests/store_model.rs` checks the two stores agree step by
//!   step.
//! - **Nothing is reported that did not commit.** A batch that fails rolls
//!   back whole; its decisions are then retried one per transaction, so one
//!   bad decision (a lock timeout on a hot viewer, an input only the database
//!   refuses) fails alone.
//!
//! # Why it cannot deadlock
//!
//! A batch waits for locks only in [`LOCK`], which takes them all in one
//! statement in one global order (the keys sorted by the database's
//! collation, the same for every instance). [`READ`] uses `SKIP LOCKED` and
//! never waits; [`WRITE`] and [`TRIM`] touch only rows the batch holds (and
//! history rows keyed by those viewers). The sweeper uses `SKIP LOCKED`, and
//! a decision function of the previous release locks one viewer. A cycle
//! would need a transaction holding a larger key to wait for a smaller one:
//! none does. `tests/tests/postgres_batches.rs` hunts for deadlocks through
//! the database's own count.
//!
//! # Options compared (issue: one home for the rule)
//!
//! | | (a) one batched PL/pgSQL function over arrays | (b) lock, decide in Rust, write back (chosen) |
//! |---|---|---|
//! | the rule | twice: `ViewerBook` and PL/pgSQL | once: `ViewerBook` for both stores |
//! | round trips per batch | 1 | 2 (3 when a named stream must be looked up in history) |
//! | Postgres CPU | per-call PL/pgSQL set-up per decision; 3.0× the single-call rate in pgbench at 16 viewers per statement | set-based statements, 6.0× in the same pgbench (see the table) |
//! | lock hold time | one statement | two round trips plus the decision in Rust (microseconds) |
//! | distributed engines | Citus only by delegating each call (the V2 functions were not delegated); CockroachDB lacks the PL/pgSQL used | plain SQL, no PL/pgSQL: `INSERT … ON CONFLICT`, `FOR UPDATE SKIP LOCKED`, `unnest` (not yet run on another engine here) |
//!
//! Measured here (2 cores, the bench mix, 16 clients, 100k users): the
//! batched path reaches 4,400–5,300 start+end requests/s with 2 batch
//! workers, against 2,300–3,300 with one worker per pooled connection (16),
//! because smaller batches pay the per-statement cost of four statements
//! for fewer decisions. A batch of one decision costs more than the
//! previous release's single function call; see the bench notes.
//!
//! **On Citus**, distributed by `viewer`: a batch whose viewers live on
//! several shards is a multi-shard transaction with two-phase commit, which
//! measured 200× slower per statement than a single-shard one. A Citus
//! deployment must therefore form batches per shard (group the queue by
//! the shard of the viewer key) or use batches of one; the queue's
//! `take` is where that grouping belongs. Not built yet: this store has not
//! been run on Citus.
//!
//! # Plans
//!
//! Every statement is prepared once per connection with a generic plan.
//! Generic plans made while tables were small chose whole-table hashes and
//! scans that stayed cached as the tables grew, so the connections prefer
//! index lookups (see `super::PostgresStore::connect`) and each statement is
//! shaped so that its key lookups are index lookups.
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
/// never wait for each other in a cycle. `$1` the viewers with a start, whose
/// rows are created if missing; `$2` the others, locked only if they have a
/// row (their decisions need none, and leave none behind).
///
/// `DO UPDATE … WHERE false` locks an existing row without writing it (the
/// documented behaviour of the conflict clause: every conflicting row is
/// locked, only rows passing `WHERE` are updated). A row another transaction
/// is inserting makes this wait for it; one the sweeper deleted meanwhile is
/// inserted again. Either way the row is locked when the statement returns.
///
/// The shape is chosen for its plan: both halves look keys up in the primary
/// key whatever the table's size when the connection's generic plan was made
/// (`EXISTS` in an `OR` was planned as a hash of the whole table, rebuilt on
/// every call: 5 ms a batch at 100k viewers).
pub(super) const LOCK: &str = "\
INSERT INTO viewers AS cur (viewer)
SELECT x.viewer
  FROM (SELECT unnest($1::text[]) AS viewer
        UNION ALL
        SELECT e.viewer FROM viewers e WHERE e.viewer = ANY($2::text[])) x
 ORDER BY x.viewer
ON CONFLICT (viewer) DO UPDATE SET started = cur.started WHERE false";

/// The locked rows, read by the next statement of the transaction: under READ
/// COMMITTED it takes a new snapshot, which holds the latest committed version
/// of every row it locked. `$1` the batch's viewers.
///
/// `FOR NO KEY UPDATE` is the lock [`LOCK`] took (re-locking is free), and
/// `SKIP LOCKED` makes this statement never wait. A row that another
/// transaction created after [`LOCK`] looked (a viewer without a start in
/// this batch) is locked here if it is free, or skipped if not: a skipped
/// viewer is decided as having no row, as if this batch had come first (its
/// decisions, none of them a start, then change nothing).
///
/// The first column is the store's clock, read once every row is locked: the
/// aggregate in `c` consumes the whole locking scan before its row (and so
/// `stream_limit_now()`) is computed. Read any earlier, a row created after
/// [`LOCK`] could be decided on by another transaction, with a later clock,
/// between the clock and this lock. The clock comes with every row, and alone
/// (the other columns null) when no viewer has a row: a statement of its own
/// cost 7% of the mix's throughput (12 runs of 6 s each way).
pub(super) const READ: &str = "\
WITH v AS MATERIALIZED (
        SELECT v.viewer, v.max_streams, v.leases,
               v.started OR coalesce((SELECT true FROM stream_history h
                                     WHERE h.viewer = v.viewer AND h.viewer = ANY($1::text[]) LIMIT 1), false) AS seen
          FROM viewers v WHERE v.viewer = ANY($1::text[])
           FOR NO KEY UPDATE OF v SKIP LOCKED
), c AS MATERIALIZED (
        SELECT stream_limit_now() AS now, count(*) AS locked FROM v
)
SELECT c.now, v.viewer, v.max_streams, v.leases, v.seen
  FROM c LEFT JOIN v ON true";

/// The history of the streams a batch names that are not in their viewer's
/// row (a replayed start, a heartbeat or end of an ended stream): the rules
/// answer `410 Gone` with the reason. `$1` viewers, `$2` stream ids, pairwise.
pub(super) const PAST: &str = "\
SELECT h.viewer, h.stream_id, h.started_at, h.ended_at, h.reason, h.device_id, h.content_id
  FROM stream_history h
  JOIN unnest($1::text[], $2::uuid[]) AS u(viewer, stream_id)
    ON h.viewer = u.viewer AND h.stream_id = u.stream_id
 WHERE h.viewer = ANY($1::text[])";

/// The new rows of [`WRITE`] and [`CITUS_UPDATE`], from `$1`–`$5`: `w` one
/// per changed viewer, `l` its leases as one array (by `w.i`).
macro_rules! viewer_rows {
    () => {
        "w AS (
    SELECT w.viewer, w.started, w.sweep_after, w.i
      FROM unnest($1::text[], $2::boolean[], $3::timestamptz[]) WITH ORDINALITY AS w(viewer, started, sweep_after, i)
), l AS (
    SELECT x.owner, array_agg(x.lease ORDER BY x.n) AS leases
      FROM (SELECT unnest($4::bigint[]) AS owner, unnest($5::stream_lease[]) AS lease,
                   generate_subscripts($4::bigint[], 1) AS n) x
     GROUP BY x.owner
)"
    };
}

/// The update of [`WRITE`] and [`CITUS_UPDATE`], from [`viewer_rows`].
macro_rules! update_viewers {
    () => {
        "UPDATE viewers v
   SET leases = coalesce(l.leases, '{}'), started = w.started, sweep_after = w.sweep_after
  FROM w LEFT JOIN l ON l.owner = w.i
 WHERE v.viewer = w.viewer"
    };
}

/// Writes back what a batch decided, in one statement: each changed viewer's
/// row (`$1` viewer, `$2` started, `$3` sweep_after; `$4` the index of each
/// lease's viewer in `$1`, from 1, and `$5` the leases, oldest first per viewer)
/// and the streams it ended (`$6`–`$12`: the columns of `stream_history`).
///
/// A stream id is in a viewer's row or in its history, never both, so the
/// conflict clause only keeps a bug from turning into a failed batch.
pub(super) const WRITE: &str = concat!(
    "WITH ",
    viewer_rows!(),
    ", h AS (
    INSERT INTO stream_history (viewer, stream_id, started_at, ended_at, reason, device_id, content_id)
    SELECT * FROM unnest($6::text[], $7::uuid[], $8::timestamptz[], $9::timestamptz[],
                         $10::text[], $11::text[], $12::text[])
    ON CONFLICT (viewer, stream_id) DO NOTHING
)
",
    update_viewers!()
);

/// Keeps the `$2` most recent history entries of each viewer in `$1`, in
/// [`HISTORY`]'s order (newest first, then by stream id): by default the
/// bound the in-memory store keeps ([`crate::domain::rules::HISTORY_PER_VIEWER`]).
/// Runs after [`WRITE`], in the same transaction, for the viewers it gave new
/// history.
pub(super) const TRIM: &str = "\
DELETE FROM stream_history h
 USING (SELECT u.viewer, c.ended_at, c.stream_id
          FROM unnest($1::text[]) AS u(viewer)
          CROSS JOIN LATERAL (SELECT x.ended_at, x.stream_id FROM stream_history x
                               WHERE x.viewer = u.viewer AND x.viewer = ANY($1::text[])
                               ORDER BY x.ended_at DESC, x.stream_id
                              OFFSET $2::bigint - 1 LIMIT 1) c) cut
 WHERE h.viewer = cut.viewer AND h.viewer = ANY($1::text[])
   AND (h.ended_at < cut.ended_at OR (h.ended_at = cut.ended_at AND h.stream_id > cut.stream_id))";

/// On Citus, [`LOCK`]: `INSERT … SELECT` from anything but a colocated
/// table goes through the coordinator (intermediate results copied to the
/// worker), which commits with two-phase commit even on one shard. A
/// `VALUES` list is routed to the shard as it is, so the batch's `n` viewers
/// (`$1`, sorted) are listed, one row each. Every viewer gets a row, with a
/// start or not: locking the others in a second statement could lock in two
/// orders and deadlock. A row made this way holds nothing (not `started`, no
/// lease); the sweeper forgets it once `grace` old.
pub(super) fn citus_lock(n: usize) -> String {
    let rows: Vec<String> = (1..=n).map(|i| format!("(($1::text[])[{i}])")).collect();
    format!(
        "INSERT INTO viewers AS cur (viewer) VALUES {} \
         ON CONFLICT (viewer) DO UPDATE SET started = cur.started WHERE false",
        rows.join(", ")
    )
}

/// On Citus, the history half of [`WRITE`], as its own statement: `n` rows
/// of `$1`–`$7` (the columns of `stream_history`), as a `VALUES` list for
/// the reason given at [`citus_lock`].
pub(super) fn citus_history(n: usize) -> String {
    let rows: Vec<String> = (1..=n)
        .map(|i| {
            format!(
                "(($1::text[])[{i}], ($2::uuid[])[{i}], ($3::timestamptz[])[{i}], \
                 ($4::timestamptz[])[{i}], ($5::text[])[{i}], ($6::text[])[{i}], ($7::text[])[{i}])"
            )
        })
        .collect();
    format!(
        "INSERT INTO stream_history (viewer, stream_id, started_at, ended_at, reason, device_id, content_id) \
         VALUES {} ON CONFLICT (viewer, stream_id) DO NOTHING",
        rows.join(", ")
    )
}

/// On Citus, the viewers half of [`WRITE`] (`$1`–`$5` as there). It names
/// its viewers (`v.viewer = ANY($1)`), so Citus prunes it to their shard and
/// sends it whole to that shard's worker.
pub(super) const CITUS_UPDATE: &str = concat!(
    "WITH ",
    viewer_rows!(),
    "\n",
    update_viewers!(),
    " AND v.viewer = ANY($1::text[])"
);

/// Readiness: a transaction that commits as a decision does. A transactional
/// WAL message (about 60 bytes, no table) gives it a transaction id and a WAL
/// record, so its commit waits for what a decision's commit waits for: a
/// primary whose synchronous standby is gone (every commit hangs) is not
/// ready, nor is a standby (it cannot write WAL), where `SELECT 1` (or
/// `txid_current()` alone, whose commit writes nothing to wait for) would
/// answer on both. Logical decoders see the message under the prefix
/// `stream-limit`.
pub(super) const PING: &str =
    "SELECT pg_logical_emit_message(true, 'stream-limit', 'ready')::text AS lsn";

/// The viewer's live leases, oldest first: in the row's order, which is the
/// order they were admitted in (decisions of one batch share one start time).
/// `$1` viewer.
pub(super) const ACTIVE: &str = "\
SELECT l.stream_id, l.started_at, l.expires_at, l.ttl_ms, l.device_id, l.content_id
  FROM viewers v CROSS JOIN LATERAL unnest(v.leases) WITH ORDINALITY AS l
 WHERE v.viewer = $1 AND l.expires_at > (SELECT stream_limit_now())
 ORDER BY l.ordinality";

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

/// Every viewer's leases counted by the store's clock, read once:
/// `active`, the expired ones older than the grace `$1` ms (`unswept`: what
/// the sweeper has yet to move; the boundary of `stream_limit_sweep_expired`
/// and of the in-memory store's `lease_counts`) and `lag`, the seconds the
/// oldest of those has waited past its grace. One statement, so one
/// snapshot. Reads only viewers with leases (the partial index on
/// `sweep_after`, which is set exactly when a viewer has some): every
/// instance runs it once per sweeper tick. On Citus, a read of every shard.
pub(super) const LEASE_COUNTS: &str = "\
SELECT count(*) FILTER (WHERE l.expires_at > c.now) AS active,
       count(*) FILTER (WHERE l.expires_at <= c.cutoff) AS unswept,
       coalesce(extract(epoch FROM max(c.cutoff - l.expires_at) FILTER (WHERE l.expires_at <= c.cutoff)), 0)::float8 AS lag
  FROM (SELECT t AS now, t - $1::bigint * interval '1 millisecond' AS cutoff
          FROM stream_limit_now() AS t) c
 CROSS JOIN viewers v CROSS JOIN LATERAL unnest(v.leases) AS l
 WHERE v.sweep_after IS NOT NULL";

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

/// On Citus: up to `$1` viewers with leases that expired more than `$2` ms
/// ago, found by a read of every shard (Citus runs a multi-shard `SELECT …
/// LIMIT`, but no multi-shard `FOR UPDATE`); each is then swept by a batch
/// of its own shard, under its row lock (`Decision::Expire`).
pub(super) const EXPIRED_VIEWERS: &str = "\
SELECT viewer FROM viewers
 WHERE sweep_after <= stream_limit_now() - $2::bigint * interval '1 millisecond'
 LIMIT $1";

/// On Citus: up to `$1` viewers with history that ended more than `$2` ms
/// ago, each with the cutoff (read on its worker), for [`PURGE_VIEWER_HISTORY`].
pub(super) const OLD_HISTORY: &str = "\
SELECT viewer, min(stream_limit_now() - $2::bigint * interval '1 millisecond') AS cutoff
  FROM stream_history
 WHERE ended_at < stream_limit_now() - $2::bigint * interval '1 millisecond'
 GROUP BY viewer LIMIT $1";

/// On Citus: forgets the history of viewer `$1` that ended before `$2`. One
/// viewer per statement, so Citus routes it to one shard (no two-phase
/// commit); the cutoff is a parameter because Citus refuses volatile
/// functions in a distributed modification.
pub(super) const PURGE_VIEWER_HISTORY: &str = "\
DELETE FROM stream_history WHERE viewer = $1 AND ended_at < $2 RETURNING 1";

/// On Citus: up to `$1` viewers with nothing left to remember, as in
/// [`SWEEP_VIEWERS`], found by a read of every shard, with the clock read
/// there, for [`FORGET_VIEWER`].
pub(super) const IDLE_VIEWERS: &str = "\
SELECT v.viewer, min(stream_limit_now()) AS now FROM viewers v
 WHERE v.max_streams IS NULL
   AND v.created_at < stream_limit_now() - $2::bigint * interval '1 millisecond'
   AND (NOT v.started OR v.created_at < stream_limit_now() - $3::bigint * interval '1 millisecond')
   AND cardinality(v.leases) = 0
   AND NOT EXISTS (SELECT 1 FROM stream_history h WHERE h.viewer = v.viewer)
 GROUP BY v.viewer LIMIT $1";

/// On Citus: forgets viewer `$1` if it still has nothing to remember at
/// `$4` (the clock [`IDLE_VIEWERS`] read; `$2`, `$3` its ages). Skipped if a
/// decision holds the row: as in [`SWEEP_VIEWERS`], a start waiting for the
/// lock re-creates the row.
pub(super) const FORGET_VIEWER: &str = "\
DELETE FROM viewers v
 WHERE v.viewer = $1
   AND v.viewer IN (SELECT x.viewer FROM viewers x WHERE x.viewer = $1 FOR UPDATE SKIP LOCKED)
   AND v.max_streams IS NULL
   AND v.created_at < $4::timestamptz - $2::bigint * interval '1 millisecond'
   AND (NOT v.started OR v.created_at < $4::timestamptz - $3::bigint * interval '1 millisecond')
   AND cardinality(v.leases) = 0
   AND NOT EXISTS (SELECT 1 FROM stream_history h WHERE h.viewer = $1)";
