//! `stream-limit-http`: the HTTP service in front of [`stream_limit_core`].
//!
//! Thin by design: handlers parse input into core types, call one
//! [`stream_limit_core::StreamLimiter`] method and map its outcome to a
//! response. No rule lives here.
//!
//! # Map
//! - [`settings`]: typed configuration (defaults → file → env, `PORT`, `DATABASE_URL`).
//! - [`startup`]: [`Application`]: binds the listeners, runs until a signal.
//! - [`store`]: picks the store (in memory, or Postgres when configured).
//! - [`telemetry`]: `tracing` setup (text or JSON).
//! - [`metrics`]: Prometheus metrics (`GET /metrics`), recorded by a store decorator.
//! - `routes`: every route, registered by [`routes::configure`]; one module per area
//!   (`health`, `seed`, `watch`, `users`, shared `streams`, `admin`).
//! - `extract`: HTTP input → domain types, once, at the edge.
//! - `error`: [`ApiError`], the one table from errors to status, code and message.
//! - `wire`: the JSON bodies, borrowing domain values, each with its OpenAPI schema.
//! - `respond`, `middleware`: JSON bodies without intermediate values; access
//!   log and the "every error is JSON" safety net.

mod error;
mod extract;
pub mod metrics;
mod middleware;
mod respond;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod store;
pub mod telemetry;
mod wire;

pub use error::{cause_chain, ApiError};
pub use settings::Settings;
pub use startup::{Application, StartupError, StopHandle};
