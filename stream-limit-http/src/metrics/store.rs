//! [`InstrumentedStore`]: every store call counted and timed.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use stream_limit_core::{
    EndOldestOutcome, EndOutcome, EndReason, HeartbeatOutcome, Lease, LeaseCounts, LeaseStore,
    MaxStreams, StartOutcome, StartRequest, StoreError, StreamId, StreamRecord, SweepReport,
    ViewerId,
};

use super::{requests, Metrics, Operation};

/// A [`LeaseStore`] that records every call in [`Metrics`], then delegates.
pub struct InstrumentedStore {
    inner: Arc<dyn LeaseStore>,
    metrics: Arc<Metrics>,
}

impl InstrumentedStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn LeaseStore>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

/// Runs `call`, observing its latency, counting a failure, and whether the
/// store was reached.
async fn timed<T>(
    operation: &Operation,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = call.await;
    operation.seconds.observe(started.elapsed().as_secs_f64());
    if let Err(error) = &result {
        operation.errors.inc();
        if matches!(error, StoreError::Unavailable(_)) {
            operation.reachability.saw_unreachable();
        }
    }
    result
}

#[async_trait]
impl LeaseStore for InstrumentedStore {
    async fn start(&self, request: &StartRequest) -> Result<StartOutcome, StoreError> {
        let m = &self.metrics;
        let result = timed(&m.start, self.inner.start(request)).await;
        let route = requests::current().index();
        let index = match &result {
            Ok(StartOutcome::Admitted(a)) if a.replayed => 1,
            Ok(StartOutcome::Admitted(a)) => {
                m.evictions[route].inc_by(a.evicted.len() as u64);
                0
            }
            Ok(StartOutcome::Refused(_)) => 2,
            Ok(StartOutcome::Gone(_)) => 3,
            Err(_) => 4,
        };
        m.starts[route][index].inc();
        result
    }

    async fn heartbeat(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
    ) -> Result<HeartbeatOutcome, StoreError> {
        let m = &self.metrics;
        let result = timed(&m.heartbeat, self.inner.heartbeat(viewer, stream_id)).await;
        match &result {
            Ok(HeartbeatOutcome::Extended(_)) => m.heartbeats[0].inc(),
            Ok(HeartbeatOutcome::Gone(_)) => m.heartbeats[1].inc(),
            Ok(HeartbeatOutcome::NotFound) => m.heartbeats[2].inc(),
            Err(_) => {}
        }
        result
    }

    async fn end(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
        reason: EndReason,
    ) -> Result<EndOutcome, StoreError> {
        let m = &self.metrics;
        let result = timed(&m.end, self.inner.end(viewer, stream_id, reason)).await;
        match &result {
            Ok(EndOutcome::Ended { .. }) => m.ends[0].inc(),
            Ok(EndOutcome::AlreadyEnded(_)) => m.ends[1].inc(),
            Ok(EndOutcome::NotFound) => m.ends[2].inc(),
            Err(_) => {}
        }
        result
    }

    async fn end_oldest(&self, viewer: &ViewerId) -> Result<EndOldestOutcome, StoreError> {
        let m = &self.metrics;
        let result = timed(&m.end_oldest, self.inner.end_oldest(viewer)).await;
        if let Ok(EndOldestOutcome::Ended { .. }) = &result {
            m.ends[0].inc();
        }
        result
    }

    async fn active(&self, viewer: &ViewerId) -> Result<Vec<Lease>, StoreError> {
        timed(&self.metrics.read, self.inner.active(viewer)).await
    }

    async fn set_limit(
        &self,
        viewer: &ViewerId,
        limit: Option<MaxStreams>,
    ) -> Result<(), StoreError> {
        timed(
            &self.metrics.maintenance,
            self.inner.set_limit(viewer, limit),
        )
        .await
    }

    async fn history(
        &self,
        viewer: &ViewerId,
        max: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        timed(&self.metrics.read, self.inner.history(viewer, max)).await
    }

    async fn sweep(
        &self,
        batch: usize,
        grace: Duration,
        retention: Duration,
    ) -> Result<SweepReport, StoreError> {
        let m = &self.metrics;
        let result = timed(&m.maintenance, self.inner.sweep(batch, grace, retention)).await;
        if let Ok(report) = &result {
            m.swept[0].inc_by(report.expired);
            m.swept[1].inc_by(report.purged);
        }
        result
    }

    async fn lease_counts(&self, grace: Duration) -> Result<LeaseCounts, StoreError> {
        timed(&self.metrics.maintenance, self.inner.lease_counts(grace)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed(&self.metrics.maintenance, self.inner.ping()).await
    }
}
