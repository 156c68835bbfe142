//! `stream-limit-core`: at most N active video streams per viewer.
//!
//! A viewer (a numeric [`UserId`] or a gateway [`SessionId`]) may hold at most
//! `max_streams` active streams at once (default 3). Streams are **leases**
//! that expire without heartbeats, so a crashed player never locks its viewer
//! out. The limit holds across every process that shares a store.
//!
//! # Map
//! - [`domain`]: identities, policies, leases, outcomes and the rule itself
//!   ([`domain::rules::ViewerBook`]). No I/O.
//! - [`store`]: the repository port [`LeaseStore`] and its adapters,
//!   [`InMemoryStore`] and (feature `postgres`) `store::postgres::PostgresStore`.
//! - [`service`]: [`StreamLimiter`], the configured rule on top of a store.
//! - [`sweeper`]: the background cleanup task.
//! - [`clock`]: injectable time for stores that judge expiry in process.
//!
//! # Embed it in your own service
//! ```
//! use std::sync::Arc;
//! use stream_limit_core::{
//!     Client, InMemoryStore, LimiterConfig, StartOptions, StartOutcome, StreamLimiter, UserId,
//!     ViewerId,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = StreamLimiter::new(Arc::new(InMemoryStore::new()), LimiterConfig::default());
//! let viewer = ViewerId::from(UserId::parse("42")?);
//!
//! for _ in 0..3 {
//!     let outcome = limiter.start(viewer.clone(), Client::Heartbeating, StartOptions::default()).await?;
//!     assert!(matches!(outcome, StartOutcome::Admitted(_)));
//! }
//! // The fourth concurrent stream is refused, and the refusal lists the three active ones.
//! match limiter.start(viewer.clone(), Client::Heartbeating, StartOptions::default()).await? {
//!     StartOutcome::Refused(refusal) => assert_eq!(refusal.active.len(), 3),
//!     other => panic!("expected a refusal, got {other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

pub mod clock;
pub mod domain;
pub mod service;
pub mod store;
pub mod sweeper;

pub use clock::{Clock, ManualClock, SystemClock};
pub use domain::ids::{IdempotencyKey, ParseError, SessionId, StreamId, UserId, ViewerId};
pub use domain::lease::{EndReason, Lease, StreamRecord, Timestamp};
pub use domain::outcome::{
    Admission, EndOldestOutcome, EndOutcome, HeartbeatOutcome, LeaseCounts, Refusal, StartOutcome,
    SweepReport,
};
pub use domain::policy::{Client, LeaseTerms, MaxStreams, OnLimit, OnStoreError};
pub use domain::request::StartRequest;
pub use service::{LimiterConfig, StartOptions, StreamLimiter};
pub use store::{InMemoryStore, LeaseStore, StoreError};
pub use sweeper::{
    spawn_observed_sweeper, spawn_sweeper, sweep_tick, SweeperConfig, TickOutcome, TickReport,
};
