//! Logging setup: `tracing` with text or JSON lines, filtered by `RUST_LOG`
//! when set, else by `log.level`.
//!
//! actix-http's HTTP/1 dispatcher logs every request it cannot parse at
//! ERROR, before the app runs: 34,917 garbage requests in 5 s once wrote
//! 34,917 ERROR lines (5.4 MB) and would page whoever alerts on errors. The
//! same log target also reports connection-level I/O errors (a client that
//! resets mid-request), which clients cause just as freely. All of that
//! target's ERROR lines are counted instead ([`dispatcher_errors`], exported
//! as `stream_limit_http_dispatcher_errors_total`) and summed up in at most
//! one WARN line per [`REPORT_EVERY`] ([`report_dispatcher_errors`]). Naming
//! `actix_http` in `RUST_LOG` shows each line again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::level_filters::LevelFilter;
use tracing::{Level, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::{LogFormat, LogSettings};

/// Why logging could not start.
pub type TelemetryError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where actix-http logs the requests it refuses to parse.
const DISPATCHER: &str = "actix_http::h1::dispatcher";
/// How often, at most, the dispatcher-error summary is logged.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// ERROR lines of actix-http's dispatcher since the process started.
static DISPATCHER_ERRORS: AtomicU64 = AtomicU64::new(0);

/// How many ERROR lines actix-http's dispatcher logged so far (all apps of
/// this process): mostly unparsable requests, also broken connections.
pub fn dispatcher_errors() -> u64 {
    DISPATCHER_ERRORS.load(Ordering::Relaxed)
}

/// Counts the ERROR events of actix-http's dispatcher.
struct CountDispatcherErrors;

impl<S: Subscriber> Layer<S> for CountDispatcherErrors {
    fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
        DISPATCHER_ERRORS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Installs the global subscriber (also capturing `log` records of actix).
/// Call once, at startup; a second call fails instead of panicking.
pub fn init(log: &LogSettings) -> Result<(), TelemetryError> {
    let directives = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => directives,
        _ => log.level.clone(),
    };
    let mut filter = EnvFilter::try_new(&directives)
        .map_err(|e| format!("RUST_LOG / log.level is not a valid filter: {e}"))?;
    if !directives.contains("actix_http") {
        filter = filter.add_directive(format!("{DISPATCHER}=off").parse()?);
    }
    // Its own filter with a level hint, so that counting never makes the
    // subscriber build events (or `log` records) nobody else wants.
    let count = CountDispatcherErrors.with_filter(
        filter_fn(|meta| meta.target() == DISPATCHER && *meta.level() == Level::ERROR)
            .with_max_level_hint(LevelFilter::ERROR),
    );
    let registry = tracing_subscriber::registry().with(count);
    let result = match log.format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_filter(filter))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_filter(filter),
            )
            .try_init(),
    };
    Ok(result?)
}

/// Logs one WARN line per [`REPORT_EVERY`] in which actix-http's dispatcher
/// logged errors, with their number. Runs until aborted.
pub async fn report_dispatcher_errors() {
    let mut reported = dispatcher_errors();
    let mut tick = tokio::time::interval(REPORT_EVERY);
    loop {
        tick.tick().await;
        let now = dispatcher_errors();
        if now > reported {
            tracing::warn!(
                count = now - reported,
                seconds = REPORT_EVERY.as_secs(),
                "HTTP dispatcher errors: unparsable requests (answered 400/431 with an \
                 empty body) or broken connections; see stream_limit_http_dispatcher_errors_total"
            );
            reported = now;
        }
    }
}
