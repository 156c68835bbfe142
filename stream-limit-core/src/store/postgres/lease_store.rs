//! `LeaseStore` for [`PostgresStore`]: decisions go to the batch queue; reads,
//! limits and sweeps bind their parameters, run one statement and decode it.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use super::citus::ShardMap;
use super::queue::{Answer, Decision, Pending};
use super::{rows, sql, PostgresError, PostgresStore};
use crate::domain::ids::{StreamId, ViewerId};
use crate::domain::lease::{EndReason, Lease, StreamRecord, Timestamp};
use crate::domain::outcome::{
    EndOldestOutcome, EndOutcome, HeartbeatOutcome, LeaseCounts, StartOutcome, SweepReport,
};
use crate::domain::policy::MaxStreams;
use crate::domain::request::StartRequest;
use crate::store::{LeaseStore, StoreError};

/// A limit as the `integer` the statements take (at most 1000, so it fits).
fn limit_param(limit: MaxStreams) -> i32 {
    i32::try_from(limit.get()).unwrap_or(i32::MAX)
}

/// Milliseconds as the `bigint` the statements take.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The answer of a decision of another kind: a bug in the batch code.
fn mismatch() -> StoreError {
    PostgresError::Shape("an answer of the wrong kind").into()
}

impl PostgresStore {
    /// The sweep on Citus, which runs no multi-shard `FOR UPDATE` and no
    /// volatile function in a distributed modification: candidates come
    /// from a read of every shard, then each viewer is cleaned by statements
    /// scoped to it, so every write stays on one shard. Expired leases move
    /// in batches of one shard (`Decision::Expire`: locked, judged by the
    /// worker's clock after the lock, written back as a decision is), in
    /// transactions of the sweeper's own, which race the decisions at the
    /// row lock as the single-server sweep does.
    async fn sweep_by_viewer(
        &self,
        shards: &ShardMap,
        batch: i64,
        grace: Duration,
        retention: Duration,
    ) -> Result<SweepReport, StoreError> {
        let (grace_ms, retention_ms) = (millis(grace), millis(retention));
        // The three reads each visit every shard: at once, on three
        // connections. A viewer emptied by this pass is forgotten by the next.
        let expiring: [&(dyn ToSql + Sync); 2] = [&batch, &grace_ms];
        let aged: [&(dyn ToSql + Sync); 2] = [&batch, &retention_ms];
        let idle: [&(dyn ToSql + Sync); 3] = [&batch, &grace_ms, &retention_ms];
        let (candidates, old, idle) = tokio::join!(
            self.query(sql::EXPIRED_VIEWERS, &expiring),
            self.query(sql::OLD_HISTORY, &aged),
            self.query(sql::IDLE_VIEWERS, &idle),
        );
        let (candidates, old, idle) = (candidates?, old?, idle?);
        let mut by_shard: HashMap<i64, Vec<Pending>> = HashMap::new();
        for row in &candidates {
            let viewer: String = row.try_get("viewer").map_err(PostgresError::from)?;
            // Answered here, from the batch's result: nobody waits on `reply`.
            let (reply, _) = tokio::sync::oneshot::channel();
            by_shard
                .entry(shards.group(&viewer))
                .or_default()
                .push(Pending {
                    viewer,
                    decision: Decision::Expire(grace),
                    reply,
                });
        }
        let mut expired = 0;
        for pending in by_shard.values() {
            for batch in pending.chunks(self.batching.max) {
                for answer in self.decide_now(batch).await? {
                    match answer {
                        Answer::Expired(moved) => expired += moved,
                        _ => return Err(mismatch()),
                    }
                }
            }
        }

        let mut purged = 0;
        for row in &old {
            let viewer: String = row.try_get("viewer").map_err(PostgresError::from)?;
            let cutoff: Timestamp = row.try_get("cutoff").map_err(PostgresError::from)?;
            let gone = self
                .query(sql::PURGE_VIEWER_HISTORY, &[&viewer, &cutoff])
                .await?;
            purged += gone.len() as u64;
        }

        for row in &idle {
            let viewer: String = row.try_get("viewer").map_err(PostgresError::from)?;
            let now: Timestamp = row.try_get("now").map_err(PostgresError::from)?;
            self.query(
                sql::FORGET_VIEWER,
                &[&viewer, &grace_ms, &retention_ms, &now],
            )
            .await?;
        }
        Ok(SweepReport { expired, purged })
    }
}

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn start(&self, request: &StartRequest) -> Result<StartOutcome, StoreError> {
        match self
            .decide(request.viewer.to_string(), Decision::Start(request.clone()))
            .await?
        {
            Answer::Start(outcome) => Ok(outcome),
            _ => Err(mismatch()),
        }
    }

    async fn heartbeat(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
    ) -> Result<HeartbeatOutcome, StoreError> {
        match self
            .decide(viewer.to_string(), Decision::Heartbeat(stream_id))
            .await?
        {
            Answer::Heartbeat(outcome) => Ok(outcome),
            _ => Err(mismatch()),
        }
    }

    async fn end(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
        reason: EndReason,
    ) -> Result<EndOutcome, StoreError> {
        match self
            .decide(viewer.to_string(), Decision::End(stream_id, reason))
            .await?
        {
            Answer::End(outcome) => Ok(outcome),
            _ => Err(mismatch()),
        }
    }

    async fn end_oldest(&self, viewer: &ViewerId) -> Result<EndOldestOutcome, StoreError> {
        match self.decide(viewer.to_string(), Decision::EndOldest).await? {
            Answer::EndOldest(outcome) => Ok(outcome),
            _ => Err(mismatch()),
        }
    }

    async fn active(&self, viewer: &ViewerId) -> Result<Vec<Lease>, StoreError> {
        let viewer = viewer.to_string();
        let rows = self.query(sql::ACTIVE, &[&viewer]).await?;
        Ok(rows.iter().map(rows::lease).collect::<Result<_, _>>()?)
    }

    async fn set_limit(
        &self,
        viewer: &ViewerId,
        limit: Option<MaxStreams>,
    ) -> Result<(), StoreError> {
        let viewer = viewer.to_string();
        let limit = limit.map(limit_param);
        self.query(sql::SET_LIMIT, &[&viewer, &limit]).await?;
        Ok(())
    }

    async fn history(
        &self,
        viewer: &ViewerId,
        max: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        let viewer = viewer.to_string();
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = self.query(sql::HISTORY, &[&viewer, &max]).await?;
        Ok(rows.iter().map(rows::record).collect::<Result<_, _>>()?)
    }

    async fn sweep(
        &self,
        batch: usize,
        grace: Duration,
        retention: Duration,
    ) -> Result<SweepReport, StoreError> {
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        if let Some(shards) = &self.shards {
            return self.sweep_by_viewer(shards, batch, grace, retention).await;
        }
        let (grace, retention) = (millis(grace), millis(retention));
        let expired = self
            .sweep_count(sql::SWEEP_EXPIRED, &[&batch, &grace])
            .await?;
        let purged = self
            .sweep_count(sql::SWEEP_HISTORY, &[&batch, &retention])
            .await?;
        self.sweep_count(sql::SWEEP_VIEWERS, &[&batch, &grace, &retention])
            .await?;
        Ok(SweepReport { expired, purged })
    }

    async fn lease_counts(&self, grace: Duration) -> Result<LeaseCounts, StoreError> {
        let rows = self.query(sql::LEASE_COUNTS, &[&millis(grace)]).await?;
        let row = rows
            .first()
            .ok_or(PostgresError::Shape("no row of lease counts"))?;
        let count = |name: &str| -> Result<u64, PostgresError> {
            let n: i64 = row.try_get(name)?;
            Ok(u64::try_from(n).unwrap_or_default())
        };
        let lag: f64 = row.try_get("lag").map_err(PostgresError::from)?;
        Ok(LeaseCounts {
            active: count("active")?,
            unswept: count("unswept")?,
            sweep_lag: Duration::try_from_secs_f64(lag).unwrap_or_default(),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.query(sql::PING, &[]).await?;
        Ok(())
    }
}
