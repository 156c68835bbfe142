//! The batch workers: as many as the pool has connections, each taking what
//! is waiting whenever it is free.
//!
//! Natural batching, as databases group commits: nothing waits on a timer
//! unless `batch_wait` says so. Under light load a free worker takes each
//! decision the moment it arrives, alone, so the path is one decision per
//! transaction as before; under load the decisions that arrive while every
//! worker is in a round trip wait and then travel together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;

use super::citus::ShardMap;
use super::error::PostgresError;
use super::queue::{Pending, Queue};
use super::{batch, bounded, release};
use crate::store::StoreError;

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Batching {
    pub max: usize,
    pub wait: Duration,
    pub timeout: Duration,
    /// History entries kept per viewer.
    pub history: usize,
    /// The tables are distributed by Citus: batches use its statements.
    pub citus: bool,
}

/// How many decisions the batches held: counts per power-of-two bucket, for
/// the `stream_limit_store_batch_size` histogram.
#[derive(Debug, Default)]
pub struct BatchSizes {
    /// `buckets[i]`: batches of at most `2^i` decisions (and more than `2^(i-1)`).
    buckets: [AtomicU64; BatchSizes::BUCKETS],
    decisions: AtomicU64,
}

impl BatchSizes {
    /// Buckets up to 2^10 = 1024 decisions; larger batches count in the last.
    pub const BUCKETS: usize = 11;

    fn record(&self, size: usize) {
        let bucket =
            (size.max(1).next_power_of_two().trailing_zeros() as usize).min(Self::BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.decisions
            .fetch_add(u64::try_from(size).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Batches per bucket: `(upper bound, count)`, not cumulative.
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, n)| (1u64 << i, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Decisions in all batches so far.
    pub fn decisions(&self) -> u64 {
        self.decisions.load(Ordering::Relaxed)
    }
}

/// Runs batches until the queue closes. With `shards` (on Citus), keeps the
/// shard ranges the queue groups by up to date.
pub(super) async fn run(
    queue: Arc<Queue>,
    pool: Pool,
    batching: Batching,
    sizes: Arc<BatchSizes>,
    shards: Option<Arc<ShardMap>>,
) {
    loop {
        if let Some(shards) = &shards {
            refresh(&pool, shards, batching.timeout).await;
        }
        let Some(mut pending) = queue.take(batching.max).await else {
            break;
        };
        if !batching.wait.is_zero() && pending.len() < batching.max {
            tokio::time::sleep(batching.wait).await;
            queue.top_up(&mut pending, batching.max);
        }
        let viewers: Vec<String> = pending.iter().map(|p| p.viewer.clone()).collect();
        sizes.record(pending.len());
        decide(&pool, pending, batching).await;
        queue.release(viewers.iter().map(String::as_str));
    }
}

/// Re-reads the shard ranges once they are stale. If that fails, the old
/// ranges stay until the next refresh: batches may then span shards (slower,
/// not wrong).
async fn refresh(pool: &Pool, shards: &ShardMap, timeout: Duration) {
    if !shards.stale() {
        return;
    }
    let result = async {
        let client = pool.get().await?;
        let result = bounded(timeout, shards.load(&client)).await;
        release(client, &result);
        result
    }
    .await;
    match result {
        Ok(count) => tracing::debug!(shards = count, "read the Citus shard ranges"),
        Err(error) => {
            shards.postpone();
            tracing::warn!(%error, "could not read the Citus shard ranges; batching as before");
        }
    }
}

/// Decides and answers `pending`; if the batch fails for a reason other than
/// an unreachable database, each decision is retried in its own transaction.
async fn decide(pool: &Pool, pending: Vec<Pending>, batching: Batching) {
    match attempt(pool, &pending, batching).await {
        Ok(answers) => {
            for (pending, answer) in pending.into_iter().zip(answers) {
                pending.answer(Ok(answer));
            }
        }
        Err(error) if pending.len() > 1 && !is_unreachable(&error) => {
            tracing::debug!(%error, size = pending.len(), "batch failed; deciding its decisions one by one");
            for one in pending {
                // A caller that gave up is not decided for: its decision
                // would take effect after it was told the outcome is unknown.
                if one.reply.is_closed() {
                    continue;
                }
                let answer = attempt(pool, std::slice::from_ref(&one), batching).await;
                one.answer(answer.map(|mut a| a.remove(0)).map_err(StoreError::from));
            }
        }
        Err(error) => {
            let error = Arc::new(error);
            for pending in pending {
                pending.answer(Err(shared(&error)));
            }
        }
    }
}

/// One transaction for `pending`, within `batching.timeout` (a connection that
/// outlives it is discarded: it may be stuck mid-statement).
async fn attempt(
    pool: &Pool,
    pending: &[Pending],
    batching: Batching,
) -> Result<Vec<super::queue::Answer>, PostgresError> {
    let client = pool.get().await?;
    let result = bounded(
        batching.timeout,
        batch::decide(&client, pending, batching.history, batching.citus),
    )
    .await;
    release(client, &result);
    result
}

fn is_unreachable(error: &PostgresError) -> bool {
    super::error::kind(error) == super::error::Kind::Unavailable
}

/// One error for many callers: each gets a [`StoreError`] of the same kind
/// whose source is the shared cause.
fn shared(error: &Arc<PostgresError>) -> StoreError {
    let cause = Box::new(Shared(Arc::clone(error)));
    match super::error::kind(error) {
        super::error::Kind::Unavailable => StoreError::Unavailable(cause),
        super::error::Kind::Busy => StoreError::Busy(cause),
        super::error::Kind::Query => StoreError::Query(cause),
    }
}

#[derive(Debug)]
struct Shared(Arc<PostgresError>);

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
