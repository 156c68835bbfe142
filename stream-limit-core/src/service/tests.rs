use std::sync::Arc;

use mockall::predicate::always;

use super::*;
use crate::domain::ids::UserId;
use crate::store::MockLeaseStore;
use chrono::Utc;

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

/// A store that is unreachable while `down` is set; otherwise it admits every
/// start and knows no stream (as Postgres would for a degraded lease).
fn flaky_store(down: Arc<std::sync::atomic::AtomicBool>, room: bool) -> MockLeaseStore {
    use std::sync::atomic::Ordering;
    let unavailable = || StoreError::Unavailable("connection refused".into());
    let mut store = MockLeaseStore::new();
    let is_down = down.clone();
    store.expect_start().returning(move |request| {
        if is_down.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        let lease = Lease {
            stream_id: request.stream_id,
            started_at: Utc::now(),
            expires_at: Utc::now() + request.ttl,
            ttl: request.ttl,
            device_id: request.device_id.clone(),
            content_id: request.content_id.clone(),
        };
        Ok(if room {
            StartOutcome::Admitted(crate::Admission {
                replaced: None,
                lease,
                active_count: 1,
                evicted: Vec::new(),
                replayed: false,
                degraded: false,
            })
        } else {
            StartOutcome::Refused(crate::Refusal {
                limit: MaxStreams::DEFAULT,
                active: Vec::new(),
            })
        })
    });
    let is_down = down.clone();
    store.expect_heartbeat().returning(move |_, _| {
        if is_down.load(Ordering::SeqCst) {
            Err(unavailable())
        } else {
            Ok(HeartbeatOutcome::NotFound)
        }
    });
    store.expect_end().returning(move |_, _, _| {
        if down.load(Ordering::SeqCst) {
            Err(unavailable())
        } else {
            Ok(EndOutcome::NotFound)
        }
    });
    store
}

#[tokio::test]
async fn while_the_store_is_unreachable_each_viewer_gets_at_most_its_limit_locally() {
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let limiter = StreamLimiter::new(Arc::new(flaky_store(down, true)), LimiterConfig::default());
    let mut admitted = Vec::new();
    for _ in 0..20 {
        match limiter
            .start(viewer(), Client::Heartbeating, StartOptions::default())
            .await
        {
            Ok(StartOutcome::Admitted(a)) => {
                assert!(a.degraded);
                admitted.push(a.lease.stream_id);
            }
            Ok(StartOutcome::Refused(r)) => assert_eq!(r.active.len(), 3),
            other => panic!("expected a local decision, got {other:?}"),
        }
    }
    assert_eq!(admitted.len(), 3, "the local book enforces the limit");
    assert_eq!(limiter.degraded_admissions(), 3);
    // A degraded lease heartbeats and ends on the local book meanwhile.
    assert!(matches!(
        limiter.heartbeat(&viewer(), admitted[0]).await,
        Ok(HeartbeatOutcome::Extended(_))
    ));
    assert!(matches!(
        limiter.end(&viewer(), admitted[1]).await,
        Ok(EndOutcome::Ended {
            active_count: 2,
            ..
        })
    ));
    // A stream the local book never saw still gets the store's error.
    assert!(matches!(
        limiter.heartbeat(&viewer(), StreamId::random()).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_degraded_lease_is_written_back_on_its_first_heartbeat_after_the_outage() {
    for (room, expected) in [(true, "extended"), (false, "evicted")] {
        let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let store = flaky_store(down.clone(), room);
        let limiter = StreamLimiter::new(Arc::new(store), LimiterConfig::default());
        let Ok(StartOutcome::Admitted(degraded)) = limiter
            .start(viewer(), Client::Heartbeating, StartOptions::default())
            .await
        else {
            panic!("admitted locally");
        };
        down.store(false, std::sync::atomic::Ordering::SeqCst);
        let id = degraded.lease.stream_id;
        match (limiter.heartbeat(&viewer(), id).await, expected) {
            (Ok(HeartbeatOutcome::Extended(lease)), "extended") => assert_eq!(lease.stream_id, id),
            (Ok(HeartbeatOutcome::Gone(EndReason::Evicted)), "evicted") => {}
            (other, _) => panic!("room = {room}: expected {expected}, got {other:?}"),
        }
        // Written back (or refused) once: the local book let go of it.
        assert_eq!(
            limiter
                .heartbeat(&viewer(), id)
                .await
                .expect("store answers"),
            HeartbeatOutcome::NotFound
        );
        // And kept no trace of it: in a second outage its heartbeat is the
        // store's transient error, never a local "410 ended".
        down.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(matches!(
            limiter.heartbeat(&viewer(), id).await,
            Err(StoreError::Unavailable(_))
        ));
    }
}
