//! Test support for the stream-limit workspace.
//!
//! This crate is never published; integration tests (`tests/tests/*.rs`) and
//! benchmarks depend on it for shared fixtures.
//!
//! - [`postgres`]: a throwaway Postgres server per test process and a brand-new
//!   empty database per test ([`postgres::fresh_database`]), either on a
//!   cluster started from the local Postgres binaries or on the server named
//!   by `DATABASE_URL`.

pub mod postgres;
