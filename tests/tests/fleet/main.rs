//! The fleet, end to end: Postgres, `stream-limit-http migrate`, three real
//! instances and a real nginx running `ecosystem/nginx` (ports rewritten), all
//! on loopback. Clients only ever talk to nginx.
//!
//! - the contract's seed routes answer exactly, through the balancer
//!   ([`seed_routes`]);
//! - clients racing starts for the same viewers are never admitted past the
//!   limit (the answers, and an audit of the database's records) ([`races`]);
//! - an instance SIGKILLed under load: the limit holds, and the only errors
//!   clients see are retryable ones, for requests in flight at the kill, on
//!   routes nginx must not replay ([`failures`]);
//! - a rolling restart (SIGTERM, start again, one instance at a time) under
//!   load: no admitted lease is lost and no request fails ([`failures`]).
//!
//! The fleet and the load clients are in the support crate
//! ([`stream_limit_tests::fleet`], [`stream_limit_tests::load`]): each load
//! client owns one viewer and keeps an exact model of its leases, so every
//! answer is checked (the count after each start and end), and a lease the
//! fleet loses or invents is caught when the model is compared with the
//! fleet's list. Every loop is bounded in count and time; every process is
//! stopped by a drop guard.

mod failures;
mod races;
mod seed_routes;
