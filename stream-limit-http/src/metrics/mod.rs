//! Prometheus metrics, served at `GET /metrics`.
//!
//! - `store`: [`InstrumentedStore`], a decorator around whichever
//!   [`stream_limit_core::LeaseStore`] is configured, records every store
//!   call (outcome, latency, reachability), so handlers stay free of
//!   bookkeeping;
//! - `requests`: requests by route family and status class, and the route
//!   a store call serves;
//! - `batch_size`: the Postgres store's batch sizes;
//! - [`Metrics::record_tick`]: the sweeper's view of the whole store.
//!
//! Every series is resolved once at startup: recording is an atomic add,
//! with no label lookup per request. `ecosystem/prometheus` alerts on them
//! and `ecosystem/grafana` draws them; a test evaluates every expression of
//! both against a real Prometheus scraping a fleet.

mod batch_size;
pub(crate) mod requests;
mod store;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::{web, HttpResponse};
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use stream_limit_core::store::postgres::BatchSizes;
use stream_limit_core::{StoreError, StreamLimiter, TickReport};

use batch_size::BatchSizeCollector;
use requests::{Route, CLASSES};
pub use store::InstrumentedStore;

/// Store latency buckets, in seconds: from an in-memory hit to a pool timeout.
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// Route families, as [`Route::ALL`] lists them.
const ROUTES: usize = Route::ALL.len();

/// Latency and failures of one store operation.
struct Operation {
    seconds: Histogram,
    errors: IntCounter,
    /// `store_up`, shared by every operation.
    up: IntGauge,
}

/// Every metric of the service, in its own registry.
pub struct Metrics {
    registry: Registry,
    /// By route, then status class.
    requests: [[IntCounter; 5]; ROUTES],
    /// By route, then outcome.
    starts: [[IntCounter; 5]; ROUTES],
    evictions: [IntCounter; ROUTES],
    heartbeats: [IntCounter; 3],
    ends: [IntCounter; 3],
    /// Mirrors [`StreamLimiter::degraded_admissions`], brought up to date at
    /// each scrape (the limiter decides those starts, above the store).
    degraded: IntCounter,
    /// Mirrors [`crate::telemetry::dispatcher_errors`], likewise.
    dispatcher_errors: IntCounter,
    /// Serialises the catch-up of the mirrored counters: two scrapes at once
    /// would otherwise both add the same difference.
    catch_up: std::sync::Mutex<()>,
    swept: [IntCounter; 2],
    sweeper: Sweeper,
    start: Operation,
    heartbeat: Operation,
    end: Operation,
    end_oldest: Operation,
    read: Operation,
    maintenance: Operation,
}

/// What the sweeper's ticks report.
struct Sweeper {
    /// `ok`, `cut_short`, `failed`.
    ticks: [IntCounter; 3],
    last_success: Gauge,
    /// `active`, `unswept`.
    leases: [IntGauge; 2],
    lag: Gauge,
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
        let counters = |name: &str, help: &str, labels: &[&str]| {
            let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(vec.clone()))?;
            Ok::<_, prometheus::Error>(vec)
        };
        let counter = |name: &str, help: &str| {
            let counter = IntCounter::new(name, help)?;
            registry.register(Box::new(counter.clone()))?;
            Ok::<_, prometheus::Error>(counter)
        };
        let gauge = |name: &str, help: &str| {
            let gauge = Gauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok::<_, prometheus::Error>(gauge)
        };
        let requests = counters(
            "http_requests_total",
            "Requests of the public listener by route family and status class.",
            &["route", "code"],
        )?;
        let starts = counters(
            "starts_total",
            "Stream starts by route family and outcome (admitted, replayed, refused, gone, error).",
            &["route", "outcome"],
        )?;
        let evictions = counters(
            "evictions_total",
            "Streams evicted by evict_oldest, by the route family of the start that evicted them.",
            &["route"],
        )?;
        let heartbeats = counters("heartbeats_total", "Heartbeats by outcome.", &["outcome"])?;
        let ends = counters(
            "ends_total",
            "Ends and revocations by outcome.",
            &["outcome"],
        )?;
        let swept = counters(
            "swept_total",
            "Rows the sweeper cleaned, by kind.",
            &["outcome"],
        )?;
        let degraded = counter(
            "degraded_admissions_total",
            "Starts admitted on this instance's local book while the store was unreachable \
             (on_store_error = allow).",
        )?;
        let dispatcher_errors = counter(
            "http_dispatcher_errors_total",
            "ERROR lines of the HTTP/1 dispatcher, summed up in the log instead: mostly \
             requests too malformed to route, also broken connections.",
        )?;
        let ticks = counters(
            "sweeper_ticks_total",
            "Sweeper ticks: ok, cut_short (out of time with work left: falling behind), failed.",
            &["result"],
        )?;
        let leases = IntGaugeVec::new(
            Opts::new(
                "leases",
                "Leases in the whole store at the sweeper's last tick: active (counting against \
                 a limit) and unswept (expired past the grace, not yet moved to history). Every \
                 instance reports the same store: aggregate with max, not sum.",
            ),
            &["state"],
        )?;
        registry.register(Box::new(leases.clone()))?;
        let lag = gauge(
            "sweeper_lag_seconds",
            "How long the oldest unswept lease has waited past its grace, at the last tick.",
        )?;
        let last_success = gauge(
            "sweeper_last_success_timestamp_seconds",
            "Unix time of the sweeper's last tick that succeeded.",
        )?;
        let up = IntGauge::new(
            "store_up",
            "1 if the last store call reached the store, 0 if it was unreachable \
             (the sweeper calls it every sweeper.interval_secs, even without traffic).",
        )?;
        registry.register(Box::new(up.clone()))?;
        let seconds = HistogramVec::new(
            HistogramOpts::new("store_seconds", "Store operation latency.")
                .buckets(BUCKETS.to_vec()),
            &["operation"],
        )?;
        registry.register(Box::new(seconds.clone()))?;
        let errors = counters(
            "store_errors_total",
            "Store operations that failed (unreachable, timed out, or errored).",
            &["operation"],
        )?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let op = |name: &str| Operation {
            seconds: seconds.with_label_values(&[name]),
            errors: errors.with_label_values(&[name]),
            up: up.clone(),
        };
        let by_route = |route: Route| route.label();
        Ok(Arc::new(Self {
            requests: Route::ALL.map(|route| {
                CLASSES.map(|class| requests.with_label_values(&[by_route(route), class]))
            }),
            starts: Route::ALL.map(|route| {
                ["admitted", "replayed", "refused", "gone", "error"]
                    .map(|n| starts.with_label_values(&[by_route(route), n]))
            }),
            evictions: Route::ALL.map(|route| evictions.with_label_values(&[by_route(route)])),
            heartbeats: ["extended", "gone", "not_found"]
                .map(|n| heartbeats.with_label_values(&[n])),
            ends: ["ended", "already_ended", "not_found"].map(|n| ends.with_label_values(&[n])),
            swept: ["expired", "purged"].map(|n| swept.with_label_values(&[n])),
            sweeper: Sweeper {
                ticks: ["ok", "cut_short", "failed"].map(|n| ticks.with_label_values(&[n])),
                last_success,
                leases: ["active", "unswept"].map(|n| leases.with_label_values(&[n])),
                lag,
            },
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

    /// Records one sweeper tick (`stream_limit_core::spawn_observed_sweeper`).
    pub fn record_tick(&self, outcome: &Result<TickReport, StoreError>) {
        let sweeper = &self.sweeper;
        match outcome {
            Ok(tick) => {
                sweeper.ticks[usize::from(tick.cut_short)].inc();
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                sweeper.last_success.set(now.as_secs_f64());
                let [active, unswept] = &sweeper.leases;
                active.set(i64::try_from(tick.leases.active).unwrap_or(i64::MAX));
                unswept.set(i64::try_from(tick.leases.unswept).unwrap_or(i64::MAX));
                sweeper.lag.set(tick.leases.sweep_lag.as_secs_f64());
            }
            Err(_) => sweeper.ticks[2].inc(),
        }
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
