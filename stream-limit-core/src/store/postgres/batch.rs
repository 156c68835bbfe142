//! One batch: the decisions that were waiting when a worker became free,
//! decided together in one transaction and answered after its commit.
//!
//! ```text
//! round trip 1: BEGIN; LOCK (sorted upsert); READ (rows and the clock)
//!               [PAST: history of named streams not in their row; rare]
//! in Rust:      each viewer's row becomes a ViewerBook; the decisions apply
//!               to it in arrival order at the clock READ returned
//! round trip 2: WRITE (changed rows + new history); [TRIM]; COMMIT
//! ```
//!
//! Why it is correct, and why it cannot deadlock, is written at the
//! statements in `super::sql`. What it adds to one decision's transaction:
//! - Decisions of one viewer apply one after another to its book, in arrival
//!   order: the same rule, the same code, as the in-memory store.
//! - No answer leaves before COMMIT returns: a decision whose transaction
//!   rolled back is never reported, and with `synchronous_commit = on` every
//!   answered decision is durable.
//! - A failed batch fails as a whole and admits nothing. Its decisions are
//!   then retried one per transaction (see `super::worker`), so one bad
//!   decision (a hot viewer's lock timeout, an input only the database
//!   refuses) gets its own error and the others their own answers.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Client;
use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

use super::error::PostgresError;
use super::queue::{Answer, Decision, Pending};
use super::rows::{self, LeaseRow};
use super::sql;
use crate::domain::ids::StreamId;
use crate::domain::lease::{Lease, StreamRecord, Timestamp};
use crate::domain::rules::ViewerBook;

/// One viewer of a batch: its book and what is needed to write it back.
struct Viewer {
    book: ViewerBook,
    /// As read, to tell whether the batch changed anything.
    leases: Vec<Lease>,
    seen: bool,
    /// History entries loaded for the rules to consult (not new).
    loaded: usize,
}

impl Viewer {
    fn absent() -> Self {
        Viewer {
            book: ViewerBook::default(),
            leases: Vec::new(),
            seen: false,
            loaded: 0,
        }
    }
}

/// Decides `batch` in one transaction on `client`. The answers are in the
/// batch's order. On error nothing was committed (or the commit's fate is
/// unknown: the connection broke), and no answer may be given.
pub(super) async fn decide(
    client: &Client,
    batch: &[Pending],
    history: usize,
    citus: bool,
) -> Result<Vec<Answer>, PostgresError> {
    let result = run(client, batch, history, citus).await;
    if result.is_err() && !client.is_closed() {
        // Leave the connection ready for its next batch. If this fails too,
        // the connection is broken and the pool discards it on next use.
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

async fn run(
    client: &Client,
    batch: &[Pending],
    history: usize,
    citus: bool,
) -> Result<Vec<Answer>, PostgresError> {
    let mut keys: Vec<&str> = batch.iter().map(|p| p.viewer.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    // Viewers with a start: their rows are created if missing.
    let starts: HashSet<&str> = batch
        .iter()
        .filter(|p| matches!(p.decision, Decision::Start(_)))
        .map(|p| p.viewer.as_str())
        .collect();

    let begin = client.prepare_cached(sql::BEGIN).await?;
    let read = client.prepare_cached(sql::READ).await?;
    // One round trip: the three are pipelined and run in order.
    let (starting, others): (Vec<&str>, Vec<&str>) =
        keys.iter().partition(|key| starts.contains(*key));
    // Parameters on the stack: this runs for every batch.
    let split: [&(dyn ToSql + Sync); 2] = [&starting, &others];
    let read_params: [&(dyn ToSql + Sync); 1] = [&keys];
    let (lock, lock_params): (_, &[&(dyn ToSql + Sync)]) = if citus {
        let text = sql::citus_lock(keys.len());
        (client.prepare_cached(&text).await?, &read_params)
    } else {
        (client.prepare_cached(sql::LOCK).await?, &split)
    };
    let (began, locked, rows) = tokio::join!(
        client.execute(&begin, &[]),
        client.execute(&lock, lock_params),
        client.query(&read, &read_params),
    );
    began?;
    locked?;
    let rows = rows?;
    let now: Timestamp = rows
        .first()
        .ok_or(PostgresError::Shape("no clock in the rows read"))?
        .try_get("now")?;

    let mut viewers: HashMap<&str, Viewer> = HashMap::with_capacity(keys.len());
    for row in &rows {
        // The clock's row when no viewer has one.
        let Some(key) = row.try_get::<_, Option<&str>>("viewer")? else {
            continue;
        };
        let key = keys
            .iter()
            .copied()
            .find(|k| *k == key)
            .ok_or(PostgresError::Shape("a row for a viewer not in the batch"))?;
        let leases = rows::leases(row, "leases")?;
        let seen: bool = row.try_get("seen")?;
        let book = ViewerBook::restore(
            rows::limit(row, "max_streams")?,
            seen,
            leases.clone(),
            Vec::new(),
        );
        viewers.insert(
            key,
            Viewer {
                book,
                leases,
                seen,
                loaded: 0,
            },
        );
    }
    for key in &keys {
        if !viewers.contains_key(key) {
            if starts.contains(key) {
                return Err(PostgresError::Shape("a starting viewer has no row"));
            }
            // Without a row a viewer's decisions change nothing (none of them
            // starts), so `write` finds nothing to write for it.
            viewers.insert(key, Viewer::absent());
        }
    }

    load_past(client, batch, &mut viewers).await?;

    let answers = batch
        .iter()
        .map(|pending| {
            let book = &mut viewers
                .get_mut(pending.viewer.as_str())
                .expect("every viewer of the batch has a book")
                .book;
            apply(book, &pending.decision, now)
        })
        .collect();

    write(client, &keys, &mut viewers, history, citus).await?;
    Ok(answers)
}

/// Loads the history of the streams the batch names that are not in their
/// viewer's row, so the rules can tell "ended (why)" from "never existed".
async fn load_past(
    client: &Client,
    batch: &[Pending],
    viewers: &mut HashMap<&str, Viewer>,
) -> Result<(), PostgresError> {
    let mut wanted_viewers = Vec::new();
    let mut wanted_streams = Vec::new();
    for pending in batch {
        let stream = match &pending.decision {
            Decision::Start(request) if !request.generated_id => request.stream_id,
            Decision::Heartbeat(stream) | Decision::End(stream, _) => *stream,
            Decision::Start(_) | Decision::EndOldest | Decision::Expire(_) => continue,
        };
        let in_row = viewers[pending.viewer.as_str()]
            .leases
            .iter()
            .any(|l| l.stream_id == stream);
        if !in_row && !started_in(batch, pending, stream) {
            wanted_viewers.push(pending.viewer.as_str());
            wanted_streams.push(*stream.as_uuid());
        }
    }
    if wanted_streams.is_empty() {
        return Ok(());
    }
    let past = client.prepare_cached(sql::PAST).await?;
    let rows = client
        .query(&past, &[&wanted_viewers, &wanted_streams])
        .await?;
    let mut found: HashMap<String, Vec<StreamRecord>> = HashMap::new();
    for row in &rows {
        found
            .entry(row.try_get::<_, String>("viewer")?)
            .or_default()
            .push(rows::record(row)?);
    }
    for (key, mut records) in found {
        let viewer = viewers.get_mut(key.as_str()).ok_or(PostgresError::Shape(
            "history for a viewer not in the batch",
        ))?;
        records.sort_by_key(|r| (r.ended_at, r.stream_id));
        viewer.loaded = records.len();
        viewer.book = ViewerBook::restore(
            viewer.book.limit,
            viewer.seen,
            viewer.leases.clone(),
            records,
        );
    }
    Ok(())
}

/// Whether an earlier decision of the batch starts `stream` for the same
/// viewer (then the rules find it in the book, not in history).
fn started_in(batch: &[Pending], pending: &Pending, stream: StreamId) -> bool {
    batch
        .iter()
        .take_while(|p| !std::ptr::eq(*p, pending))
        .any(|p| {
            p.viewer == pending.viewer
                && matches!(&p.decision, Decision::Start(r) if r.stream_id == stream)
        })
}

fn apply(book: &mut ViewerBook, decision: &Decision, now: Timestamp) -> Answer {
    match decision {
        Decision::Start(request) => Answer::Start(book.start(request, now)),
        Decision::Heartbeat(stream) => Answer::Heartbeat(book.heartbeat(*stream, now)),
        Decision::End(stream, reason) => Answer::End(book.end(*stream, *reason, now)),
        Decision::EndOldest => Answer::EndOldest(book.end_oldest(now)),
        Decision::Expire(grace) => {
            let cutoff = chrono::TimeDelta::from_std(*grace)
                .ok()
                .and_then(|grace| now.checked_sub_signed(grace))
                .unwrap_or(Timestamp::MIN_UTC);
            Answer::Expired(book.expire(cutoff))
        }
    }
}

/// The columns [`sql::WRITE`] takes, one entry per changed viewer, lease or record.
#[derive(Default)]
struct Writes<'a> {
    viewers: Vec<&'a str>,
    started: Vec<bool>,
    sweep_after: Vec<Option<Timestamp>>,
    owners: Vec<i64>,
    leases: Vec<LeaseRow>,
    ended_viewer: Vec<&'a str>,
    ended_stream: Vec<uuid::Uuid>,
    ended_started: Vec<Timestamp>,
    ended_at: Vec<Timestamp>,
    ended_reason: Vec<&'static str>,
    ended_device: Vec<Option<&'a str>>,
    ended_content: Vec<Option<&'a str>>,
}

/// [`sql::TRIM`], prepared, when `viewers` got new history (`None`: no
/// statement). Prepared before the pipeline starts: a statement still being
/// prepared would be sent after the COMMIT.
async fn prepare_trim(
    client: &Client,
    viewers: &[&str],
) -> Result<Option<Statement>, PostgresError> {
    if viewers.is_empty() {
        return Ok(None);
    }
    Ok(Some(client.prepare_cached(sql::TRIM).await?))
}

/// Runs a prepared statement, if any.
async fn execute_some(
    client: &Client,
    statement: Option<&Statement>,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(), PostgresError> {
    if let Some(statement) = statement {
        client.execute(statement, params).await?;
    }
    Ok(())
}

/// [`write`] on Citus: the history rows and the viewers' rows in statements
/// of their own, each routed to the batch's one shard ([`sql::citus_history`],
/// [`sql::CITUS_UPDATE`]), then the trim and the commit, in one round trip.
async fn write_on_citus(
    client: &Client,
    writes: &Writes<'_>,
    trimmed: &[&str],
    history: usize,
) -> Result<(), PostgresError> {
    let update_params = writes.viewer_params();
    let history_params = writes.history_params();
    let insert = if writes.ended_viewer.is_empty() {
        None
    } else {
        let text = sql::citus_history(writes.ended_viewer.len());
        Some(client.prepare_cached(&text).await?)
    };
    let update = client.prepare_cached(sql::CITUS_UPDATE).await?;
    let keep = i64::try_from(history).unwrap_or(i64::MAX);
    let trim = prepare_trim(client, trimmed).await?;
    let commit = client.prepare_cached(sql::COMMIT).await?;
    let trim_params: [&(dyn ToSql + Sync); 2] = [&trimmed, &keep];
    let (inserted, updated, trimmed, committed) = tokio::join!(
        execute_some(client, insert.as_ref(), &history_params),
        client.execute(&update, &update_params),
        execute_some(client, trim.as_ref(), &trim_params),
        client.execute(&commit, &[])
    );
    inserted?;
    updated?;
    trimmed?;
    committed?;
    Ok(())
}

impl Writes<'_> {
    /// The viewers' columns: `$1`–`$5` of [`sql::WRITE`] and [`sql::CITUS_UPDATE`].
    fn viewer_params(&self) -> [&(dyn ToSql + Sync); 5] {
        [
            &self.viewers,
            &self.started,
            &self.sweep_after,
            &self.owners,
            &self.leases,
        ]
    }

    /// The history's columns: `$6`–`$12` of [`sql::WRITE`], `$1`–`$7` of
    /// [`sql::citus_history`].
    fn history_params(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.ended_viewer,
            &self.ended_stream,
            &self.ended_started,
            &self.ended_at,
            &self.ended_reason,
            &self.ended_device,
            &self.ended_content,
        ]
    }
}

/// Writes back the changed viewers and their new history, then commits, in
/// one round trip.
async fn write(
    client: &Client,
    keys: &[&str],
    viewers: &mut HashMap<&str, Viewer>,
    history: usize,
    citus: bool,
) -> Result<(), PostgresError> {
    let mut writes = Writes::default();
    let mut trimmed: Vec<&str> = Vec::new();
    for key in keys {
        let viewer = &viewers[key];
        let book = &viewer.book;
        let new_records = &book.records()[viewer.loaded..];
        if book.leases() == viewer.leases.as_slice()
            && book.seen() == viewer.seen
            && new_records.is_empty()
        {
            continue;
        }
        writes.viewers.push(key);
        writes.started.push(book.seen());
        // The earliest expiry, which the sweeper looks rows up by.
        writes
            .sweep_after
            .push(book.leases().iter().map(|l| l.expires_at).min());
        let owner = i64::try_from(writes.viewers.len()).unwrap_or(i64::MAX);
        for lease in book.leases() {
            writes.owners.push(owner);
            writes.leases.push(LeaseRow::from(lease));
        }
        if !new_records.is_empty() {
            trimmed.push(key);
        }
        for record in new_records {
            writes.ended_viewer.push(key);
            writes.ended_stream.push(*record.stream_id.as_uuid());
            writes.ended_started.push(record.started_at);
            writes.ended_at.push(record.ended_at);
            writes.ended_reason.push(record.reason.as_str());
            writes.ended_device.push(record.device_id.as_deref());
            writes.ended_content.push(record.content_id.as_deref());
        }
    }
    let commit = client.prepare_cached(sql::COMMIT).await?;
    if writes.viewers.is_empty() {
        client.execute(&commit, &[]).await?;
        return Ok(());
    }
    if citus {
        return write_on_citus(client, &writes, &trimmed, history).await;
    }
    let write = client.prepare_cached(sql::WRITE).await?;
    let [v1, v2, v3, v4, v5] = writes.viewer_params();
    let [h1, h2, h3, h4, h5, h6, h7] = writes.history_params();
    let params = [v1, v2, v3, v4, v5, h1, h2, h3, h4, h5, h6, h7];
    let keep = i64::try_from(history).unwrap_or(i64::MAX);
    let trim = prepare_trim(client, &trimmed).await?;
    let trim_params: [&(dyn ToSql + Sync); 2] = [&trimmed, &keep];
    let (wrote, trimmed, committed) = tokio::join!(
        client.execute(&write, &params),
        execute_some(client, trim.as_ref(), &trim_params),
        client.execute(&commit, &[])
    );
    wrote?;
    trimmed?;
    committed?;
    Ok(())
}
