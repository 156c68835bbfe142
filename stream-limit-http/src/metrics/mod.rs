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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::{web, HttpResponse};
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use stream_limit_core::store::postgres::BatchSizes;
use stream_limit_core::{StreamLimiter, TickOutcome};

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
    /// Shared by every operation.
    reachability: Arc<Reachability>,
}

/// When a store call last found the store unreachable, for `store_up`: 0
/// from then for `hold`. Held, not the last call's outcome: with calls
/// failing and succeeding at once a gauge of the last outcome would flip at
/// every scrape, and on an idle fleet the sweeper calls only once an interval.
struct Reachability {
    since: Instant,
    /// Milliseconds after `since`; `u64::MAX` for never.
    last_unreachable_ms: AtomicU64,
    hold: Duration,
}

impl Reachability {
    /// Called on failures only: nothing is recorded on the hot path.
    fn saw_unreachable(&self) {
        let now = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_unreachable_ms.store(now, Ordering::Relaxed);
    }

    fn up(&self) -> bool {
        let last = self.last_unreachable_ms.load(Ordering::Relaxed);
        last == u64::MAX || self.since.elapsed() >= Duration::from_millis(last) + self.hold
    }
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
    store_up: IntGauge,
    reachability: Arc<Reachability>,
    start: Operation,
    heartbeat: Operation,
    end: Operation,
    end_oldest: Operation,
    read: Operation,
    maintenance: Operation,
}

/// What the sweeper's ticks report.
struct Sweeper {
    /// `ok`, `behind`, `failed`.
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
    /// store's `batch_sizes`, the `store_batch_size` histogram. `store_up`
    /// stays 0 for `unreachable_hold` after a call found the store
    /// unreachable.
    pub fn new(
        batch_sizes: Option<Arc<BatchSizes>>,
        unreachable_hold: Duration,
    ) -> Result<Arc<Self>, prometheus::Error> {
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
            "Sweeper ticks: ok, behind (cut short with expired leases left: falling behind), failed.",
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
            "0 if a store call found the store unreachable in the last minute (or two sweeper \
             intervals, if longer), else 1; the sweeper calls the store every interval, even \
             without traffic.",
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
        let reachability = Arc::new(Reachability {
            since: Instant::now(),
            last_unreachable_ms: AtomicU64::new(u64::MAX),
            hold: unreachable_hold,
        });
        let op = |name: &str| Operation {
            seconds: seconds.with_label_values(&[name]),
            errors: errors.with_label_values(&[name]),
            reachability: Arc::clone(&reachability),
        };
        Ok(Arc::new(Self {
            requests: Route::ALL.map(|route| {
                CLASSES.map(|class| requests.with_label_values(&[route.label(), class]))
            }),
            starts: Route::ALL.map(|route| {
                ["admitted", "replayed", "refused", "gone", "error"]
                    .map(|n| starts.with_label_values(&[route.label(), n]))
            }),
            evictions: Route::ALL.map(|route| evictions.with_label_values(&[route.label()])),
            heartbeats: ["extended", "gone", "not_found"]
                .map(|n| heartbeats.with_label_values(&[n])),
            ends: ["ended", "already_ended", "not_found"].map(|n| ends.with_label_values(&[n])),
            swept: ["expired", "purged"].map(|n| swept.with_label_values(&[n])),
            sweeper: Sweeper {
                ticks: ["ok", "behind", "failed"].map(|n| ticks.with_label_values(&[n])),
                last_success,
                leases: ["active", "unswept"].map(|n| leases.with_label_values(&[n])),
                lag,
            },
            degraded,
            dispatcher_errors,
            catch_up: std::sync::Mutex::new(()),
            store_up: up,
            reachability: Arc::clone(&reachability),
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
    pub fn record_tick(&self, outcome: &TickOutcome) {
        let sweeper = &self.sweeper;
        let [ok, behind, failed] = &sweeper.ticks;
        if outcome.sweep.is_err() {
            failed.inc();
            return;
        }
        if outcome.behind() { behind } else { ok }.inc();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        sweeper.last_success.set(now.as_secs_f64());
        // A failed count leaves the gauges as the last count had them.
        if let Some(leases) = outcome.leases {
            let [active, unswept] = &sweeper.leases;
            active.set(i64::try_from(leases.active).unwrap_or(i64::MAX));
            unswept.set(i64::try_from(leases.unswept).unwrap_or(i64::MAX));
            sweeper.lag.set(leases.sweep_lag.as_secs_f64());
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
    metrics.store_up.set(i64::from(metrics.reachability.up()));
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        ))
        .body(metrics.render())
}
