use std::sync::Arc;

use mockall::predicate::always;

use super::*;
use crate::domain::ids::UserId;
use crate::store::MockLeaseStore;

fn viewer() -> ViewerId {
    ViewerId::User(UserId::parse("9").expect("valid"))
}

fn failing_store() -> MockLeaseStore {
    let mut store = MockLeaseStore::new();
    store
        .expect_start()
        .with(always())
        .returning(|_| Err(StoreError::Unavailable("pool timed out".into())));
    store
}

#[tokio::test]
async fn seed_clients_get_the_session_lease_and_others_the_heartbeat_lease() {
    let config = LimiterConfig::default();
    for (client, ttl) in [
        (Client::SeedRoute, config.lease_terms.session_ttl),
        (Client::Heartbeating, config.lease_terms.heartbeat_ttl),
    ] {
        let mut store = MockLeaseStore::new();
        store
            .expect_start()
            .withf(move |r| r.ttl == ttl && r.default_limit == MaxStreams::DEFAULT)
            .times(1)
            .returning(|_| Ok(StartOutcome::Gone(EndReason::Ended)));
        let limiter = StreamLimiter::new(Arc::new(store), config);
        limiter
            .start(viewer(), client, StartOptions::default())
            .await
            .expect("mock answers");
    }
}

#[tokio::test]
async fn a_client_named_stream_id_reaches_the_store_unchanged() {
    let wanted = StreamId::random();
    let mut store = MockLeaseStore::new();
    store
        .expect_start()
        .withf(move |r| r.stream_id == wanted)
        .times(1)
        .returning(|_| Ok(StartOutcome::Gone(EndReason::Ended)));
    let limiter = StreamLimiter::new(Arc::new(store), LimiterConfig::default());
    let options = StartOptions {
        stream_id: Some(wanted),
        ..StartOptions::default()
    };
    limiter
        .start(viewer(), Client::Heartbeating, options)
        .await
        .expect("mock answers");
}

#[tokio::test]
async fn store_failure_admits_degraded_when_failing_open() {
    let limiter = StreamLimiter::new(Arc::new(failing_store()), LimiterConfig::default());
    match limiter
        .start(viewer(), Client::Heartbeating, StartOptions::default())
        .await
    {
        Ok(StartOutcome::Admitted(a)) => {
            assert!(a.degraded);
            assert!(a.lease.expires_at > a.lease.started_at);
        }
        other => panic!("expected a degraded admission, got {other:?}"),
    }
}

#[tokio::test]
async fn store_failure_is_an_error_when_failing_closed() {
    let config = LimiterConfig {
        on_store_error: OnStoreError::Deny,
        ..LimiterConfig::default()
    };
    let limiter = StreamLimiter::new(Arc::new(failing_store()), config);
    let result = limiter
        .start(viewer(), Client::Heartbeating, StartOptions::default())
        .await;
    assert!(matches!(result, Err(StoreError::Unavailable(_))));
}

#[tokio::test]
async fn a_busy_or_failing_store_is_never_failed_open() {
    for error in [StoreError::Busy, StoreError::Query] {
        let mut store = MockLeaseStore::new();
        store
            .expect_start()
            .returning(move |_| Err(error("lock timeout".into())));
        let limiter = StreamLimiter::new(Arc::new(store), LimiterConfig::default());
        let result = limiter
            .start(viewer(), Client::Heartbeating, StartOptions::default())
            .await;
        assert!(result.is_err(), "expected an error, got {result:?}");
    }
}

#[tokio::test]
async fn revoke_records_the_revoked_reason() {
    let mut store = MockLeaseStore::new();
    store
        .expect_end()
        .withf(|_, _, reason| *reason == EndReason::Revoked)
        .times(1)
        .returning(|_, _, _| Ok(EndOutcome::NotFound));
    let limiter = StreamLimiter::new(Arc::new(store), LimiterConfig::default());
    let outcome = limiter.revoke(&viewer(), StreamId::random()).await;
    assert!(matches!(outcome, Ok(EndOutcome::NotFound)));
}
