//! Test support for the stream-limit workspace.
//!
//! This crate is never published; integration tests (`tests/tests/`) and
//! benchmarks depend on it for shared fixtures.
//!
//! - [`postgres`]: a throwaway Postgres server per test process and a brand-new
//!   empty database per test ([`postgres::fresh_database`]), either on a
//!   cluster started from the local Postgres binaries or on the server named
//!   by `DATABASE_URL`.
//! - [`world`]: a store under test (in-memory or Postgres) with a clock the
//!   test moves, so one behavioural suite runs against every store.
//! - [`service`]: real `stream-limit-http` processes on loopback.
//! - [`browser`]: headless Chromium driven by Playwright scripts, for the
//!   pages the service serves.
//! - [`previous_release`]: the binary of the previous release, built from
//!   its commit, for rolling-upgrade tests.
//! - [`nginx`]: a real nginx on loopback running the `ecosystem/nginx` files,
//!   with their published ports rewritten to the test's.
//! - [`audit`]: checks, from the database's own records, that no viewer ever
//!   held more than its limit at any instant.
//! - [`fleet`]: Postgres, three instances and nginx in front of them, all
//!   started (and migrated) together and stopped when dropped.
//! - [`prometheus`]: a real Prometheus running `ecosystem/prometheus` against
//!   the test's instances, and `promtool`.
//! - [`replay`]: seeded proptest runs that can be replayed from their seed.
//! - [`load`]: load clients through a fleet that each keep an exact model of
//!   their viewer's leases, and check every answer and the fleet's lists.

pub mod audit;
pub mod browser;
pub mod fleet;
pub mod load;
pub mod nginx;
pub mod postgres;
pub mod previous_release;
pub mod prometheus;
pub mod replay;
pub mod service;
pub mod world;
