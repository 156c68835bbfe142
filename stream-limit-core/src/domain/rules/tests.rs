use std::time::Duration;

use chrono::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::domain::ids::{UserId, ViewerId};

const TTL: Duration = Duration::from_secs(60);

fn t(seconds: i64) -> Timestamp {
    chrono::Utc
        .timestamp_opt(1_700_000_000 + seconds, 0)
        .single()
        .expect("valid timestamp")
}

fn request(stream: u128, on_limit: OnLimit) -> StartRequest {
    StartRequest {
        replaces: None,
        viewer: ViewerId::User(UserId::parse("1").expect("valid")),
        stream_id: StreamId::from(uuid::Uuid::from_u128(stream)),
        generated_id: false,
        ttl: TTL,
        default_limit: MaxStreams::DEFAULT,
        on_limit,
        device_id: None,
        content_id: None,
    }
}

fn id(stream: u128) -> StreamId {
    StreamId::from(uuid::Uuid::from_u128(stream))
}

fn admitted(outcome: StartOutcome) -> Admission {
    match outcome {
        StartOutcome::Admitted(a) => a,
        other => panic!("expected admission, got {other:?}"),
    }
}

#[test]
fn admits_up_to_the_limit_then_refuses_with_the_active_list() {
    let mut book = ViewerBook::default();
    for n in 1..=3 {
        let a = admitted(book.start(&request(n, OnLimit::Reject), t(n as i64)));
        assert_eq!(a.active_count, n as u32);
        assert_eq!(a.lease.expires_at, t(n as i64) + TTL);
    }
    match book.start(&request(4, OnLimit::Reject), t(4)) {
        StartOutcome::Refused(r) => {
            assert_eq!(r.limit, MaxStreams::DEFAULT);
            let ids: Vec<_> = r.active.iter().map(|l| l.stream_id).collect();
            assert_eq!(ids, vec![id(1), id(2), id(3)]);
        }
        other => panic!("expected refusal, got {other:?}"),
    }
}

#[test]
fn expired_leases_never_count_even_before_cleanup() {
    let mut book = ViewerBook::default();
    for n in 1..=3 {
        admitted(book.start(&request(n, OnLimit::Reject), t(0)));
    }
    // Exactly at expiry the lease no longer counts.
    assert!(book.active(t(60)).is_empty());
    let a = admitted(book.start(&request(4, OnLimit::Reject), t(60)));
    assert_eq!(a.active_count, 1);
}

#[test]
fn heartbeat_extends_a_live_lease_from_now() {
    let mut book = ViewerBook::default();
    admitted(book.start(&request(1, OnLimit::Reject), t(0)));
    match book.heartbeat(id(1), t(59)) {
        HeartbeatOutcome::Extended(l) => assert_eq!(l.expires_at, t(59) + TTL),
        other => panic!("expected extension, got {other:?}"),
    }
    assert_eq!(book.active(t(100)).len(), 1);
}

#[test]
fn heartbeat_names_why_a_lease_is_gone() {
    let mut book = ViewerBook::default();
    admitted(book.start(&request(1, OnLimit::Reject), t(0)));
    admitted(book.start(&request(2, OnLimit::Reject), t(30)));
    assert_eq!(
        book.heartbeat(id(1), t(60)),
        HeartbeatOutcome::Gone(EndReason::Expired)
    );
    book.end(id(2), EndReason::Ended, t(61));
    assert_eq!(
        book.heartbeat(id(2), t(62)),
        HeartbeatOutcome::Gone(EndReason::Ended)
    );
    assert_eq!(book.heartbeat(id(9), t(62)), HeartbeatOutcome::NotFound);
}

#[test]
fn evict_oldest_admits_and_evicts_the_least_recently_started() {
    let mut book = ViewerBook::default();
    for n in 1..=3 {
        admitted(book.start(&request(n, OnLimit::EvictOldest), t(n as i64)));
    }
    let a = admitted(book.start(&request(4, OnLimit::EvictOldest), t(4)));
    assert_eq!(a.evicted, vec![id(1)]);
    assert_eq!(a.active_count, 3);
    assert_eq!(
        book.heartbeat(id(1), t(5)),
        HeartbeatOutcome::Gone(EndReason::Evicted)
    );
}

#[test]
fn a_lowered_limit_evicts_down_to_it() {
    let mut book = ViewerBook::default();
    for n in 1..=3 {
        admitted(book.start(&request(n, OnLimit::EvictOldest), t(n as i64)));
    }
    book.limit = Some(MaxStreams::new(1).expect("valid"));
    let a = admitted(book.start(&request(4, OnLimit::EvictOldest), t(4)));
    assert_eq!(a.evicted, vec![id(1), id(2), id(3)]);
    assert_eq!(a.active_count, 1);
}

#[test]
fn an_override_raises_the_limit() {
    let mut book = ViewerBook {
        limit: Some(MaxStreams::new(5).expect("valid")),
        ..ViewerBook::default()
    };
    for n in 1..=5 {
        admitted(book.start(&request(n, OnLimit::Reject), t(0)));
    }
    assert!(matches!(
        book.start(&request(6, OnLimit::Reject), t(0)),
        StartOutcome::Refused(_)
    ));
}

#[test]
fn repeating_a_start_with_the_same_stream_id_takes_no_second_slot() {
    let mut book = ViewerBook::default();
    let first = admitted(book.start(&request(1, OnLimit::Reject), t(0)));
    let again = admitted(book.start(&request(1, OnLimit::Reject), t(5)));
    assert!(again.replayed);
    assert_eq!(again.lease, first.lease);
    assert_eq!(again.active_count, 1);
}

#[test]
fn restarting_an_ended_stream_id_is_gone() {
    let mut book = ViewerBook::default();
    admitted(book.start(&request(1, OnLimit::Reject), t(0)));
    book.end(id(1), EndReason::Ended, t(1));
    assert_eq!(
        book.start(&request(1, OnLimit::Reject), t(2)),
        StartOutcome::Gone(EndReason::Ended)
    );
}

#[test]
fn ending_is_idempotent() {
    let mut book = ViewerBook::default();
    admitted(book.start(&request(1, OnLimit::Reject), t(0)));
    assert!(matches!(
        book.end(id(1), EndReason::Ended, t(1)),
        EndOutcome::Ended {
            active_count: 0,
            ..
        }
    ));
    assert_eq!(
        book.end(id(1), EndReason::Ended, t(2)),
        EndOutcome::AlreadyEnded(EndReason::Ended)
    );
    assert_eq!(
        book.end(id(2), EndReason::Ended, t(2)),
        EndOutcome::NotFound
    );
}

#[test]
fn end_oldest_ends_the_first_started_active_stream() {
    let mut book = ViewerBook {
        limit: Some(MaxStreams::DEFAULT),
        ..ViewerBook::default()
    };
    // A limit override alone does not make a viewer "seen".
    assert_eq!(book.end_oldest(t(0)), EndOldestOutcome::UnknownViewer);
    admitted(book.start(&request(1, OnLimit::Reject), t(0)));
    admitted(book.start(&request(2, OnLimit::Reject), t(1)));
    match book.end_oldest(t(2)) {
        EndOldestOutcome::Ended {
            lease,
            active_count,
        } => {
            assert_eq!(lease.stream_id, id(1));
            assert_eq!(active_count, 1);
        }
        other => panic!("expected an ended stream, got {other:?}"),
    }
    book.end_oldest(t(3));
    assert_eq!(book.end_oldest(t(4)), EndOldestOutcome::NoActiveStreams);
}

#[test]
fn history_records_reason_and_duration_and_is_bounded() {
    let mut book = ViewerBook::default();
    admitted(book.start(&request(1, OnLimit::Reject), t(0)));
    book.end(id(1), EndReason::Revoked, t(30));
    let history = book.history(10);
    assert_eq!(history[0].reason, EndReason::Revoked);
    assert_eq!(history[0].duration(), Duration::from_secs(30));
    for n in 2..(HISTORY_PER_VIEWER as u128 + 10) {
        admitted(book.start(&request(n, OnLimit::Reject), t(100)));
        book.end(id(n), EndReason::Ended, t(101));
    }
    // The rules only append; the store trims.
    assert_eq!(book.history(usize::MAX).len(), HISTORY_PER_VIEWER + 9);
    book.keep_recent(HISTORY_PER_VIEWER);
    assert_eq!(book.history(usize::MAX).len(), HISTORY_PER_VIEWER);
    assert_eq!(
        book.history(1)[0].stream_id,
        id(HISTORY_PER_VIEWER as u128 + 9)
    );
    assert_eq!(book.purge_history(t(102)), HISTORY_PER_VIEWER as u64);
    assert!(book.is_idle());
}

#[derive(Debug, Clone)]
enum Op {
    Start(u8, bool),
    Heartbeat(u8),
    End(u8),
    EndOldest,
    Tick(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..8, any::<bool>()).prop_map(|(s, evict)| Op::Start(s, evict)),
        (0u8..8).prop_map(Op::Heartbeat),
        (0u8..8).prop_map(Op::End),
        Just(Op::EndOldest),
        (0u8..90).prop_map(Op::Tick),
    ]
}

proptest! {
    /// Whatever the sequence of operations, the active count never passes the limit.
    #[test]
    fn no_sequence_of_operations_exceeds_the_limit(ops in proptest::collection::vec(op(), 1..200)) {
        let mut book = ViewerBook::default();
        let mut now = 0i64;
        for op in ops {
            match op {
                Op::Start(s, evict) => {
                    let policy = if evict { OnLimit::EvictOldest } else { OnLimit::Reject };
                    book.start(&request(u128::from(s), policy), t(now));
                }
                Op::Heartbeat(s) => { book.heartbeat(id(u128::from(s)), t(now)); }
                Op::End(s) => { book.end(id(u128::from(s)), EndReason::Ended, t(now)); }
                Op::EndOldest => { book.end_oldest(t(now)); }
                Op::Tick(secs) => now += i64::from(secs),
            }
            prop_assert!(book.active(t(now)).len() <= 3);
        }
    }
}

fn take_over(stream: u128, replaces: u128, on_limit: OnLimit) -> StartRequest {
    StartRequest {
        replaces: Some(id(replaces)),
        ..request(stream, on_limit)
    }
}

#[test]
fn a_take_over_at_the_limit_ends_the_named_stream_and_admits_in_one_decision() {
    let mut book = ViewerBook::default();
    for n in 1..=3 {
        admitted(book.start(&request(n, OnLimit::Reject), t(n as i64)));
    }
    let a = admitted(book.start(&take_over(4, 2, OnLimit::Reject), t(10)));
    assert_eq!(a.replaced, Some(id(2)));
    assert!(a.evicted.is_empty());
    assert_eq!(a.active_count, 3);
    let ids: Vec<_> = book.active(t(10)).iter().map(|l| l.stream_id).collect();
    assert_eq!(ids, vec![id(1), id(3), id(4)]);
    assert!(matches!(
        book.heartbeat(id(2), t(11)),
        HeartbeatOutcome::Gone(EndReason::Replaced)
    ));
    assert_eq!(book.history(1)[0].reason, EndReason::Replaced);
    assert_eq!(book.history(1)[0].ended_at, t(10));
}

#[test]
fn a_take_over_of_a_stream_that_is_not_active_is_a_plain_start() {
    let mut book = ViewerBook::default();
    for n in 1..=3 {
        admitted(book.start(&request(n, OnLimit::Reject), t(0)));
    }
    // Unknown, and already ended: neither frees a slot.
    assert!(matches!(
        book.start(&take_over(4, 99, OnLimit::Reject), t(1)),
        StartOutcome::Refused(_)
    ));
    assert!(matches!(
        book.end(id(1), EndReason::Ended, t(2)),
        EndOutcome::Ended { .. }
    ));
    let a = admitted(book.start(&take_over(5, 1, OnLimit::Reject), t(3)));
    assert_eq!((a.replaced, a.active_count), (None, 3));
    // A stream cannot replace itself: naming its own id is a replay.
    let again = admitted(book.start(&take_over(5, 5, OnLimit::Reject), t(4)));
    assert!(again.replayed && again.replaced.is_none());
}

#[test]
fn a_refused_take_over_leaves_the_named_stream_playing() {
    let mut book = ViewerBook::default();
    for n in 1..=3 {
        admitted(book.start(&request(n, OnLimit::Reject), t(0)));
    }
    // The limit was lowered below what the viewer holds: freeing one slot is not enough.
    book.limit = Some(MaxStreams::new(2).expect("valid"));
    match book.start(&take_over(4, 1, OnLimit::Reject), t(1)) {
        StartOutcome::Refused(r) => assert_eq!(r.active.len(), 3),
        other => panic!("expected refusal, got {other:?}"),
    }
    assert_eq!(book.active(t(1)).len(), 3);
    // Under evict_oldest the take-over still happens, and evicts the excess.
    let a = admitted(book.start(&take_over(4, 3, OnLimit::EvictOldest), t(2)));
    assert_eq!(a.replaced, Some(id(3)));
    assert_eq!(a.evicted, vec![id(1)]);
    let ids: Vec<_> = book.active(t(2)).iter().map(|l| l.stream_id).collect();
    assert_eq!(ids, vec![id(2), id(4)]);
}

#[test]
fn a_heartbeat_interval_is_a_third_of_the_lease() {
    let a = admitted(ViewerBook::default().start(&request(1, OnLimit::Reject), t(0)));
    assert_eq!(a.lease.heartbeat_interval(), Duration::from_secs(20));
}
