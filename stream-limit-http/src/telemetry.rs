//! Logging setup: `tracing` with text or JSON lines, filtered by `RUST_LOG`
//! when set, else by `log.level`.

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// Why logging could not start.
pub type TelemetryError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Installs the global subscriber (also capturing `log` records of actix).
/// Call once, at startup; a second call fails instead of panicking.
pub fn init(log: &LogSettings) -> Result<(), TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(directives)
            .map_err(|e| format!("RUST_LOG is not a valid filter: {e}"))?,
        _ => EnvFilter::try_new(&log.level)?,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    }
}
