//! The background task that keeps the store from growing without bound.

use std::sync::Arc;
use std::time::Duration;

use crate::store::LeaseStore;

/// How often and how much the sweeper cleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweeperConfig {
    /// Pause between passes.
    pub interval: Duration,
    /// Upper bound on rows (or viewers) one pass touches, so a pass never holds
    /// locks or a transaction for long.
    pub batch: usize,
    /// How long an expired lease is left in place before it is moved to
    /// history (see [`LeaseStore::sweep`]); it does not count meanwhile.
    pub grace: Duration,
    /// How long history is kept.
    pub retention: Duration,
}

impl Default for SweeperConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            batch: 1000,
            grace: Duration::from_secs(60),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Spawns the sweeper on the current tokio runtime. Abort the handle to stop it.
///
/// Expired leases already never count; sweeping only moves them to history and
/// reclaims space, so a failed pass is logged and retried on the next tick.
/// Several instances may sweep the same store at once.
pub fn spawn_sweeper(
    store: Arc<dyn LeaseStore>,
    config: SweeperConfig,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(config.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match store
                .sweep(config.batch, config.grace, config.retention)
                .await
            {
                Ok(report) if report.expired + report.purged > 0 => {
                    tracing::debug!(expired = report.expired, purged = report.purged, "swept");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "sweep failed; retrying next tick"),
            }
        }
    })
}
