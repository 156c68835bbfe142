//! `LeaseStore` for [`PostgresStore`]: decisions go to the batch queue; reads,
//! limits and sweeps bind their parameters, run one statement and decode it.

use std::time::Duration;

use async_trait::async_trait;

use super::queue::{Answer, Decision};
use super::{rows, sql, PostgresError, PostgresStore};
use crate::domain::ids::{StreamId, ViewerId};
use crate::domain::lease::{EndReason, Lease, StreamRecord};
use crate::domain::outcome::{
    EndOldestOutcome, EndOutcome, HeartbeatOutcome, StartOutcome, SweepReport,
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

    async fn ping(&self) -> Result<(), StoreError> {
        self.query(sql::PING, &[]).await?;
        Ok(())
    }
}
