//! The background task that keeps the store from growing without bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::{LeaseStore, StoreError};

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

/// Most passes one tick runs, whatever the time budget.
const MAX_PASSES_PER_TICK: usize = 1000;

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Passes run (each at most `batch` viewers).
    pub passes: usize,
    /// Expired leases moved to history.
    pub expired: u64,
    /// History entries dropped past the retention.
    pub purged: u64,
}

/// One tick: sweeps pass after pass while passes still find something to
/// clean (a backlog, e.g. crashed players by the thousand), for at most half
/// the interval, so a tick never runs into the next and each pass still holds
/// its locks only for one batch. One pass per tick would cap cleaning at
/// `batch / interval` (1000 per 30 s: 33 viewers/s), which crashed players
/// can out-run.
///
/// "Found something" rather than "came back full": a pass reports leases
/// moved, while its batch bounds viewers, and on Postgres a batch may hold
/// viewers with nothing to move yet (their `sweep_after` is a lower bound,
/// which heartbeats leave behind). A pass made only of such viewers still
/// ends the tick early; the next tick carries on.
pub async fn sweep_tick(
    store: &dyn LeaseStore,
    config: &SweeperConfig,
) -> Result<TickReport, StoreError> {
    let budget = config.interval / 2;
    let started = Instant::now();
    let mut tick = TickReport::default();
    while tick.passes < MAX_PASSES_PER_TICK {
        let report = store
            .sweep(config.batch, config.grace, config.retention)
            .await?;
        tick.passes += 1;
        tick.expired += report.expired;
        tick.purged += report.purged;
        let found = report.expired + report.purged > 0;
        if !found || started.elapsed() >= budget {
            break;
        }
    }
    Ok(tick)
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
            match sweep_tick(&*store, &config).await {
                Ok(tick) if tick.expired + tick.purged > 0 => {
                    tracing::debug!(
                        passes = tick.passes,
                        expired = tick.expired,
                        purged = tick.purged,
                        "swept"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "sweep failed; retrying next tick"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outcome::SweepReport;
    use crate::store::MockLeaseStore;

    fn config() -> SweeperConfig {
        SweeperConfig {
            interval: Duration::from_secs(30),
            batch: 10,
            ..SweeperConfig::default()
        }
    }

    /// A store with `backlog` expired leases, swept `batch` at a time.
    fn store_with_backlog(backlog: u64) -> MockLeaseStore {
        let left = std::sync::Mutex::new(backlog);
        let mut store = MockLeaseStore::new();
        store.expect_sweep().returning(move |batch, _, _| {
            let mut left = left.lock().expect("not poisoned");
            let expired = (*left).min(batch as u64);
            *left -= expired;
            Ok(SweepReport { expired, purged: 0 })
        });
        store
    }

    #[tokio::test]
    async fn a_tick_keeps_sweeping_while_passes_find_something() {
        let tick = sweep_tick(&store_with_backlog(95), &config())
            .await
            .expect("sweeps");
        assert_eq!(tick.expired, 95);
        // Nine full passes, one that found five, one that found nothing.
        assert_eq!(tick.passes, 11);
    }

    #[tokio::test]
    async fn a_tick_with_nothing_to_clean_is_one_pass() {
        let tick = sweep_tick(&store_with_backlog(0), &config())
            .await
            .expect("sweeps");
        assert_eq!((tick.passes, tick.expired), (1, 0));
    }

    #[tokio::test]
    async fn a_tick_is_bounded_in_passes() {
        let tick = sweep_tick(&store_with_backlog(u64::MAX), &config())
            .await
            .expect("sweeps");
        assert_eq!(tick.passes, MAX_PASSES_PER_TICK);
    }
}
