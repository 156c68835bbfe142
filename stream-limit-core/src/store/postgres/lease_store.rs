//! `LeaseStore` for [`PostgresStore`]: each method binds its parameters, runs
//! its one statement (a decision function when it writes) and decodes the outcome.

use std::time::Duration;

use async_trait::async_trait;

use super::{outcomes, rows, sql, PostgresError, PostgresStore};
use crate::domain::ids::{StreamId, ViewerId};
use crate::domain::lease::{EndReason, Lease, StreamRecord};
use crate::domain::outcome::{
    EndOldestOutcome, EndOutcome, HeartbeatOutcome, StartOutcome, SweepReport,
};
use crate::domain::policy::{MaxStreams, OnLimit};
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

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn start(&self, request: &StartRequest) -> Result<StartOutcome, StoreError> {
        let viewer = request.viewer.to_string();
        let limit = limit_param(request.default_limit);
        let evict = request.on_limit == OnLimit::EvictOldest;
        let rows = self
            .query(
                sql::START,
                &[
                    &viewer,
                    request.stream_id.as_uuid(),
                    &request.generated_id,
                    &millis(request.ttl),
                    &limit,
                    &evict,
                    &request.device_id.as_deref(),
                    &request.content_id.as_deref(),
                ],
            )
            .await?;
        Ok(outcomes::start(&rows)?)
    }

    async fn heartbeat(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
    ) -> Result<HeartbeatOutcome, StoreError> {
        let viewer = viewer.to_string();
        let rows = self
            .query(sql::HEARTBEAT, &[&viewer, stream_id.as_uuid()])
            .await?;
        Ok(outcomes::heartbeat(&rows)?)
    }

    async fn end(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
        reason: EndReason,
    ) -> Result<EndOutcome, StoreError> {
        let viewer = viewer.to_string();
        let rows = self
            .query(sql::END, &[&viewer, stream_id.as_uuid(), &reason.as_str()])
            .await?;
        Ok(outcomes::end(&rows)?)
    }

    async fn end_oldest(&self, viewer: &ViewerId) -> Result<EndOldestOutcome, StoreError> {
        let viewer = viewer.to_string();
        let rows = self.query(sql::END_OLDEST, &[&viewer]).await?;
        Ok(outcomes::end_oldest(&rows)?)
    }

    async fn active(&self, viewer: &ViewerId) -> Result<Vec<Lease>, StoreError> {
        let viewer = viewer.to_string();
        let rows = self.query(sql::ACTIVE, &[&viewer]).await?;
        Ok(rows
            .iter()
            .map(|row| rows::lease(row, 0))
            .collect::<Result<_, _>>()?)
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
        let client = self.pool.get().await.map_err(PostgresError::from)?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(PostgresError::from)?;
        Ok(())
    }
}
