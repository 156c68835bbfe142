//! [`StreamLimiter`]: the rule's configuration applied on top of a [`LeaseStore`].

mod fallback;

use std::sync::Arc;

use crate::domain::ids::{StreamId, ViewerId};
use crate::domain::lease::{EndReason, Lease, StreamRecord};
use crate::domain::outcome::{EndOldestOutcome, EndOutcome, HeartbeatOutcome, StartOutcome};
use crate::domain::policy::{Client, LeaseTerms, MaxStreams, OnLimit, OnStoreError};
use crate::domain::request::StartRequest;
use crate::store::{LeaseStore, StoreError};

/// How the limiter behaves; every field has the contract's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimiterConfig {
    /// The limit of a viewer without an override.
    pub default_limit: MaxStreams,
    /// What a start does at the limit.
    pub on_limit: OnLimit,
    /// The two lease lengths.
    pub lease_terms: LeaseTerms,
    /// What a start does when the store fails.
    pub on_store_error: OnStoreError,
}

/// Optional details of a start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// A client-chosen stream id (or one derived from an `Idempotency-Key`):
    /// repeating the start returns the same lease.
    pub stream_id: Option<StreamId>,
    /// The player's device, kept in history.
    pub device_id: Option<Box<str>>,
    /// What is watched, kept in history.
    pub content_id: Option<Box<str>>,
    /// Take-over: an active stream of the same viewer that this one replaces,
    /// ended (reason [`EndReason::Replaced`]) in the same decision that admits
    /// the new one, so no other device can take the freed slot in between.
    pub replaces: Option<StreamId>,
}

/// The entry point for embedders and for the HTTP layer: enforces "at most N
/// active streams per viewer" with the configured policies. Cheap to clone.
#[derive(Clone)]
pub struct StreamLimiter {
    store: Arc<dyn LeaseStore>,
    config: LimiterConfig,
    /// This instance's own book, for failing open (see the `fallback` module).
    fallback: Arc<fallback::Fallback>,
}

impl std::fmt::Debug for StreamLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamLimiter")
            .field("config", &self.config)
            .finish()
    }
}

impl StreamLimiter {
    /// A limiter over `store`.
    pub fn new(store: Arc<dyn LeaseStore>, config: LimiterConfig) -> Self {
        Self {
            store,
            config,
            fallback: Arc::new(fallback::Fallback::new()),
        }
    }

    /// How many starts this instance admitted degraded, on its local book,
    /// while the store was unreachable.
    pub fn degraded_admissions(&self) -> u64 {
        self.fallback.admitted()
    }

    /// Whether `error` is one this limiter fails open on.
    fn fails_open(&self, error: &StoreError) -> bool {
        matches!(error, StoreError::Unavailable(_))
            && self.config.on_store_error == OnStoreError::Allow
    }

    /// The configuration in force.
    pub fn config(&self) -> &LimiterConfig {
        &self.config
    }

    /// Starts a stream for `viewer`. The lease length follows from `client`
    /// ([`LeaseTerms::ttl_for`]).
    ///
    /// When the store is unreachable ([`StoreError::Unavailable`]) and
    /// `on_store_error = allow`, the start is decided on this instance's own
    /// book with the same rule, and an admission is marked
    /// [`Admission::degraded`](crate::Admission::degraded): playback is not
    /// blocked by our outage, and a viewer gets at most its limit per
    /// instance. [`StreamLimiter::heartbeat`] says what becomes of those leases. A store
    /// that is up but busy, or that answers with an error, is never failed
    /// open: admitting then would let a viewer past the limit while the store
    /// is deciding for everyone else.
    pub async fn start(
        &self,
        viewer: ViewerId,
        client: Client,
        options: StartOptions,
    ) -> Result<StartOutcome, StoreError> {
        let request = StartRequest {
            viewer,
            generated_id: options.stream_id.is_none(),
            stream_id: options.stream_id.unwrap_or_else(StreamId::random),
            ttl: self.config.lease_terms.ttl_for(client),
            default_limit: self.config.default_limit,
            on_limit: self.config.on_limit,
            device_id: options.device_id,
            content_id: options.content_id,
            replaces: options.replaces,
        };
        match self.store.start(&request).await {
            Err(error) if self.fails_open(&error) => {
                tracing::warn!(error = %error, cause = ?std::error::Error::source(&error),
                    viewer = %request.viewer, "store unreachable; deciding on the local book (on_store_error = allow)");
                self.fallback.start(&request, error).await
            }
            result => result,
        }
    }

    /// Extends a live lease. Players should stop only on
    /// [`HeartbeatOutcome::Gone`]; an `Err` is transient.
    ///
    /// A lease admitted degraded is extended on the local book while the
    /// store is unreachable, and written back into the store on the first
    /// heartbeat after it returns (`Gone(Evicted)` if the viewer has no room).
    pub async fn heartbeat(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
    ) -> Result<HeartbeatOutcome, StoreError> {
        match self.store.heartbeat(viewer, stream_id).await {
            Ok(HeartbeatOutcome::NotFound) => {
                let default_limit = self.config.default_limit;
                let Some(request) = self
                    .fallback
                    .write_back(viewer, stream_id, default_limit)
                    .await
                else {
                    return Ok(HeartbeatOutcome::NotFound);
                };
                match self.store.start(&request).await {
                    Ok(outcome) => {
                        self.fallback.forget(viewer, stream_id);
                        Ok(match outcome {
                            StartOutcome::Admitted(admission) => {
                                HeartbeatOutcome::Extended(admission.lease)
                            }
                            StartOutcome::Refused(_) => HeartbeatOutcome::Gone(EndReason::Evicted),
                            StartOutcome::Gone(reason) => HeartbeatOutcome::Gone(reason),
                        })
                    }
                    // Gone again: keep it local, and try the write-back next time.
                    Err(error) if self.fails_open(&error) => self
                        .fallback
                        .heartbeat(viewer, stream_id)
                        .await
                        .ok_or(error),
                    Err(error) => Err(error),
                }
            }
            Err(error) if self.fails_open(&error) => {
                match self.fallback.heartbeat(viewer, stream_id).await {
                    Some(outcome) => Ok(outcome),
                    None => Err(error),
                }
            }
            result => result,
        }
    }

    /// Ends one stream at the client's request. Idempotent.
    pub async fn end(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
    ) -> Result<EndOutcome, StoreError> {
        self.end_for(viewer, stream_id, EndReason::Ended).await
    }

    /// Ends one stream at an operator's request (history says `revoked`).
    pub async fn revoke(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
    ) -> Result<EndOutcome, StoreError> {
        self.end_for(viewer, stream_id, EndReason::Revoked).await
    }

    /// Ends a stream in the store, or on the local book if it was admitted
    /// degraded and not written back.
    async fn end_for(
        &self,
        viewer: &ViewerId,
        stream_id: StreamId,
        reason: EndReason,
    ) -> Result<EndOutcome, StoreError> {
        match self.store.end(viewer, stream_id, reason).await {
            Ok(EndOutcome::NotFound) => Ok(self
                .fallback
                .end(viewer, stream_id, reason)
                .await
                .unwrap_or(EndOutcome::NotFound)),
            Err(error) if self.fails_open(&error) => {
                match self.fallback.end(viewer, stream_id, reason).await {
                    Some(outcome) => Ok(outcome),
                    None => Err(error),
                }
            }
            result => result,
        }
    }

    /// Ends the viewer's oldest active stream (the seed `endstream`); while
    /// the store is unreachable, its oldest degraded one.
    pub async fn end_oldest(&self, viewer: &ViewerId) -> Result<EndOldestOutcome, StoreError> {
        match self.store.end_oldest(viewer).await {
            // A seed client admitted during an outage never heartbeats, so its
            // lease was never written back: end it here.
            Ok(outcome @ (EndOldestOutcome::NoActiveStreams | EndOldestOutcome::UnknownViewer)) => {
                Ok(self.fallback.end_oldest(viewer).await.unwrap_or(outcome))
            }
            Err(error) if self.fails_open(&error) => match self.fallback.end_oldest(viewer).await {
                Some(outcome) => Ok(outcome),
                None => Err(error),
            },
            result => result,
        }
    }

    /// The viewer's active streams, oldest first.
    pub async fn active(&self, viewer: &ViewerId) -> Result<Vec<Lease>, StoreError> {
        self.store.active(viewer).await
    }

    /// Sets or clears the viewer's own limit.
    pub async fn set_limit(
        &self,
        viewer: &ViewerId,
        limit: Option<MaxStreams>,
    ) -> Result<(), StoreError> {
        self.store.set_limit(viewer, limit).await
    }

    /// The viewer's recent history, newest first.
    pub async fn history(
        &self,
        viewer: &ViewerId,
        max: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        self.store.history(viewer, max).await
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}

#[cfg(test)]
mod tests;
