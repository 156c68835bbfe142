//! Prometheus metrics, served at `GET /metrics`.
//!
//! Recorded by [`InstrumentedStore`], a decorator around whichever
//! [`LeaseStore`] is configured, so handlers stay free of bookkeeping. Every
//! counter is resolved once at startup: recording is an atomic add, with no
//! label lookup per request.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::{web, HttpResponse};
use async_trait::async_trait;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};
use stream_limit_core::store::postgres::BatchSizes;
use stream_limit_core::{
    EndOldestOutcome, EndOutcome, EndReason, HeartbeatOutcome, Lease, LeaseStore, MaxStreams,
    StartOutcome, StartRequest, StoreError, StreamId, StreamLimiter, StreamRecord, SweepReport,
    ViewerId,
};

/// Store latency buckets, in seconds: from an in-memory hit to a pool timeout.
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// Latency and failures of one store operation.
struct Operation {
    seconds: Histogram,
    errors: IntCounter,
}

/// Every metric of the service, in its own registry.
pub struct Metrics {
    registry: Registry,
    starts: [IntCounter; 5],
    heartbeats: [IntCounter; 3],
    ends: [IntCounter; 3],
    evictions: IntCounter,
    /// Mirrors [`StreamLimiter::degraded_admissions`], brought up to date at
    /// each scrape (the limiter decides those starts, above the store).
    degraded: IntCounter,
    /// Mirrors [`crate::telemetry::dispatcher_errors`], likewise.
    dispatcher_errors: IntCounter,
    /// Serialises the catch-up of the mirrored counters: two scrapes at once
    /// would otherwise both add the same difference.
    catch_up: std::sync::Mutex<()>,
    swept: [IntCounter; 2],
    start: Operation,
    heartbeat: Operation,
    end: Operation,
    end_oldest: Operation,
    read: Operation,
    maintenance: Operation,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Creates and registers every metric (prefix `stream_limit_`), plus the
    /// process's CPU, memory and file descriptors, and, given a Postgres
    /// store's `batch_sizes`, the `store_batch_size` histogram.
    pub fn new(batch_sizes: Option<Arc<BatchSizes>>) -> Result<Arc<Self>, prometheus::Error> {
        let registry = Registry::new_custom(Some("stream_limit".into()), None)?;
        if let Some(sizes) = batch_sizes {
            registry.register(Box::new(BatchSizeCollector::new(sizes)?))?;
        }
        let outcome = |name: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
            let vec = IntCounterVec::new(Opts::new(name, help), &["outcome"])?;
            registry.register(Box::new(vec.clone()))?;
            Ok(vec)
        };
        let starts = outcome("starts_total", "Stream starts by outcome.")?;
        let heartbeats = outcome("heartbeats_total", "Heartbeats by outcome.")?;
        let ends = outcome("ends_total", "Ends and revocations by outcome.")?;
        let swept = outcome("swept_total", "Rows the sweeper cleaned, by kind.")?;
        let evictions = IntCounter::new("evictions_total", "Streams evicted by evict_oldest.")?;
        registry.register(Box::new(evictions.clone()))?;
        let degraded = IntCounter::new(
            "degraded_admissions_total",
            "Starts admitted on this instance's local book while the store was unreachable \
             (on_store_error = allow).",
        )?;
        registry.register(Box::new(degraded.clone()))?;
        let dispatcher_errors = IntCounter::new(
            "http_dispatcher_errors_total",
            "ERROR lines of the HTTP/1 dispatcher, summed up in the log instead: mostly \
             requests too malformed to route, also broken connections.",
        )?;
        registry.register(Box::new(dispatcher_errors.clone()))?;
        let seconds = HistogramVec::new(
            HistogramOpts::new("store_seconds", "Store operation latency.")
                .buckets(BUCKETS.to_vec()),
            &["operation"],
        )?;
        registry.register(Box::new(seconds.clone()))?;
        let errors = IntCounterVec::new(
            Opts::new(
                "store_errors_total",
                "Store operations that failed (unreachable, timed out, or errored).",
            ),
            &["operation"],
        )?;
        registry.register(Box::new(errors.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let op = |name: &str| Operation {
            seconds: seconds.with_label_values(&[name]),
            errors: errors.with_label_values(&[name]),
        };
        Ok(Arc::new(Self {
            starts: ["admitted", "replayed", "refused", "gone", "error"]
                .map(|n| starts.with_label_values(&[n])),
            heartbeats: ["extended", "gone", "not_found"]
                .map(|n| heartbeats.with_label_values(&[n])),
            ends: ["ended", "already_ended", "not_found"].map(|n| ends.with_label_values(&[n])),
            swept: ["expired", "purged"].map(|n| swept.with_label_values(&[n])),
            evictions,
            degraded,
            dispatcher_errors,
            catch_up: std::sync::Mutex::new(()),
            start: op("start"),
            heartbeat: op("heartbeat"),
            end: op("end"),
            end_oldest: op("end_oldest"),
            read: op("read"),
            maintenance: op("maintenance"),
            registry,
        }))
    }

    /// The text exposition of every metric.
    fn render(&self) -> Vec<u8> {
        let mut buffer = Vec::with_capacity(8 * 1024);
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "metrics failed to encode");
        }
        buffer
    }
}

/// `store_batch_size`: decisions per Postgres transaction, read from the
/// store's own counters at each scrape (the store counts batches; this
/// crate owns the exposition).
struct BatchSizeCollector {
    sizes: Arc<BatchSizes>,
    desc: prometheus::core::Desc,
}

impl BatchSizeCollector {
    const NAME: &'static str = "store_batch_size";
    const HELP: &'static str =
        "Decisions per store transaction (1 when nothing was waiting to travel together).";

    fn new(sizes: Arc<BatchSizes>) -> Result<Self, prometheus::Error> {
        let desc = prometheus::core::Desc::new(
            Self::NAME.into(),
            Self::HELP.into(),
            Vec::new(),
            std::collections::HashMap::new(),
        )?;
        Ok(Self { sizes, desc })
    }
}

impl prometheus::core::Collector for BatchSizeCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        use prometheus::proto;
        let mut cumulative = 0;
        let buckets = self
            .sizes
            .buckets()
            .into_iter()
            .map(|(upper, count)| {
                cumulative += count;
                let mut bucket = proto::Bucket::default();
                bucket.set_upper_bound(upper as f64);
                bucket.set_cumulative_count(cumulative);
                bucket
            })
            .collect();
        let mut histogram = proto::Histogram::default();
        histogram.set_bucket(buckets);
        histogram.set_sample_count(cumulative);
        histogram.set_sample_sum(self.sizes.decisions() as f64);
        let mut metric = proto::Metric::default();
        metric.set_histogram(histogram);
        let mut family = proto::MetricFamily::default();
        family.set_name(Self::NAME.into());
        family.set_help(Self::HELP.into());
        family.set_field_type(proto::MetricType::HISTOGRAM);
        family.set_metric(vec![metric]);
        vec![family]
    }
}

/// Prometheus metrics, in the text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4",
        content_type = "text/plain; version=0.0.4", body = String)))]
pub(crate) async fn serve(
    metrics: web::Data<Arc<Metrics>>,
    limiter: web::Data<StreamLimiter>,
) -> HttpResponse {
    // Both counters are kept elsewhere and only ever grow: catch up.
    {
        let _one_at_a_time = metrics.catch_up.lock().unwrap_or_else(|p| p.into_inner());
        for (counter, now) in [
            (&metrics.degraded, limiter.degraded_admissions()),
            (
                &metrics.dispatcher_errors,
                crate::telemetry::dispatcher_errors(),
            ),
        ] {
            counter.inc_by(now.saturating_sub(counter.get()));
        }
    }
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        ))
        .body(metrics.render())
}

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

/// Runs `call`, observing its latency and counting a failure.
async fn timed<T>(
    operation: &Operation,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = call.await;
    operation.seconds.observe(started.elapsed().as_secs_f64());
    if result.is_err() {
        operation.errors.inc();
    }
    result
}

#[async_trait]
impl LeaseStore for InstrumentedStore {
    async fn start(&self, request: &StartRequest) -> Result<StartOutcome, StoreError> {
        let m = &self.metrics;
        let result = timed(&m.start, self.inner.start(request)).await;
        let index = match &result {
            Ok(StartOutcome::Admitted(a)) if a.replayed => 1,
            Ok(StartOutcome::Admitted(a)) => {
                m.evictions.inc_by(a.evicted.len() as u64);
                0
            }
            Ok(StartOutcome::Refused(_)) => 2,
            Ok(StartOutcome::Gone(_)) => 3,
            Err(_) => 4,
        };
        m.starts[index].inc();
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

    async fn ping(&self) -> Result<(), StoreError> {
        timed(&self.metrics.maintenance, self.inner.ping()).await
    }
}
