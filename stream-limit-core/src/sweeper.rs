//! The background task that keeps the store from growing without bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::domain::outcome::LeaseCounts;
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
    /// The tick ran out of time or passes while passes still found work
    /// (perhaps the last of it: see [`TickOutcome::behind`]).
    pub cut_short: bool,
}

/// What [`spawn_observed_sweeper`] reports after each tick.
#[derive(Debug)]
pub struct TickOutcome {
    /// The passes.
    pub sweep: Result<TickReport, StoreError>,
    /// The store's leases once the passes were done
    /// ([`LeaseStore::lease_counts`]); `None` when the passes failed, or the
    /// count did (which is logged, and fails nothing: it is only monitoring).
    pub leases: Option<LeaseCounts>,
}

impl TickOutcome {
    /// The sweeper is falling behind: the tick was cut short and expired
    /// leases past the grace are still waiting (or could not be counted).
    pub fn behind(&self) -> bool {
        let cut_short = self.sweep.as_ref().is_ok_and(|tick| tick.cut_short);
        cut_short && self.leases.map_or(true, |leases| leases.unswept > 0)
    }
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
        if !found {
            break;
        }
        if started.elapsed() >= budget || tick.passes == MAX_PASSES_PER_TICK {
            tick.cut_short = true;
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
    spawn_loop(store, config, false, |_| {})
}

/// [`spawn_sweeper`], which after each tick also counts the store's leases
/// and calls `observe` with both (to export them as metrics, say). `observe`
/// runs on the sweeper's task, between ticks: keep it quick.
pub fn spawn_observed_sweeper(
    store: Arc<dyn LeaseStore>,
    config: SweeperConfig,
    observe: impl FnMut(&TickOutcome) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    spawn_loop(store, config, true, observe)
}

/// The sweeper's loop; `count`: count the leases after each tick (a read of
/// the whole store, so only when someone looks at the counts).
fn spawn_loop(
    store: Arc<dyn LeaseStore>,
    config: SweeperConfig,
    count: bool,
    mut observe: impl FnMut(&TickOutcome) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(config.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let outcome = observed_tick(&*store, &config, count).await;
            observe(&outcome);
            log(&outcome);
        }
    })
}

/// One tick, then (if it succeeded and `count` is set) the lease count.
async fn observed_tick(store: &dyn LeaseStore, config: &SweeperConfig, count: bool) -> TickOutcome {
    let sweep = sweep_tick(store, config).await;
    let leases = match sweep {
        Ok(_) if count => store
            .lease_counts(config.grace)
            .await
            .inspect_err(|error| tracing::warn!(%error, "lease count failed; sweeping goes on"))
            .ok(),
        _ => None,
    };
    TickOutcome { sweep, leases }
}

fn log(outcome: &TickOutcome) {
    match &outcome.sweep {
        Ok(tick) if outcome.behind() => tracing::warn!(
            passes = tick.passes,
            expired = tick.expired,
            unswept = outcome.leases.map(|leases| leases.unswept),
            "sweep tick cut short with work left: the sweeper is falling behind"
        ),
        Ok(tick) if tick.expired + tick.purged > 0 => tracing::debug!(
            passes = tick.passes,
            expired = tick.expired,
            purged = tick.purged,
            "swept"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "sweep failed; retrying next tick"),
    }
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

    /// A store with `backlog` expired leases, swept `batch` at a time, which
    /// counts what is left as unswept.
    fn store_with_backlog(backlog: u64) -> MockLeaseStore {
        let left = Arc::new(std::sync::Mutex::new(backlog));
        let mut store = MockLeaseStore::new();
        let swept = Arc::clone(&left);
        store.expect_sweep().returning(move |batch, _, _| {
            let mut left = swept.lock().expect("not poisoned");
            let expired = (*left).min(batch as u64);
            *left -= expired;
            Ok(SweepReport { expired, purged: 0 })
        });
        store.expect_lease_counts().returning(move |_| {
            Ok(LeaseCounts {
                active: 7,
                unswept: *left.lock().expect("not poisoned"),
                sweep_lag: Duration::from_secs(1),
            })
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
        assert!(!tick.cut_short);
    }

    #[tokio::test]
    async fn a_tick_with_nothing_to_clean_is_one_pass() {
        let tick = sweep_tick(&store_with_backlog(0), &config())
            .await
            .expect("sweeps");
        assert_eq!((tick.passes, tick.expired), (1, 0));
        assert!(!tick.cut_short);
    }

    #[tokio::test]
    async fn a_tick_is_bounded_in_passes() {
        let tick = sweep_tick(&store_with_backlog(u64::MAX), &config())
            .await
            .expect("sweeps");
        assert_eq!(tick.passes, MAX_PASSES_PER_TICK);
        assert!(tick.cut_short, "work was left");
    }

    #[tokio::test]
    async fn an_observed_tick_counts_the_leases_left_and_is_behind_only_with_work_left() {
        let outcome = observed_tick(&store_with_backlog(95), &config(), true).await;
        let leases = outcome.leases.expect("counted");
        assert_eq!((leases.active, leases.unswept), (7, 0));
        assert!(!outcome.behind());
        let outcome = observed_tick(&store_with_backlog(u64::MAX), &config(), true).await;
        assert!(outcome.leases.expect("counted").unswept > 0);
        assert!(outcome.behind());
        // Cut short on the very pass that emptied the backlog: not behind.
        let emptied = TickOutcome {
            sweep: Ok(TickReport {
                cut_short: true,
                ..TickReport::default()
            }),
            leases: Some(LeaseCounts::default()),
        };
        assert!(!emptied.behind());
    }

    #[tokio::test]
    async fn a_failed_count_fails_nothing_and_a_failed_pass_counts_nothing() {
        let mut store = MockLeaseStore::new();
        store
            .expect_sweep()
            .returning(|_, _, _| Ok(SweepReport::default()));
        store
            .expect_lease_counts()
            .returning(|_| Err(StoreError::Busy("statement timeout".into())));
        let outcome = observed_tick(&store, &config(), true).await;
        assert!(outcome.sweep.is_ok() && outcome.leases.is_none());

        let mut store = MockLeaseStore::new();
        store
            .expect_sweep()
            .returning(|_, _, _| Err(StoreError::Unavailable("connection refused".into())));
        store.expect_lease_counts().never();
        let outcome = observed_tick(&store, &config(), true).await;
        assert!(outcome.sweep.is_err() && outcome.leases.is_none());
    }

    #[tokio::test]
    async fn an_unobserved_sweeper_does_not_count() {
        let mut store = MockLeaseStore::new();
        store
            .expect_sweep()
            .returning(|_, _, _| Ok(SweepReport::default()));
        store.expect_lease_counts().never();
        let outcome = observed_tick(&store, &config(), false).await;
        assert!(outcome.sweep.is_ok() && outcome.leases.is_none());
    }
}
