//! One behavioural suite, every store: each scenario below runs against the
//! in-memory store and against Postgres, with the clock moved by the test.

use std::time::Duration;

use stream_limit_core::domain::rules::HISTORY_PER_VIEWER;
use stream_limit_core::{
    EndOldestOutcome, EndOutcome, EndReason, HeartbeatOutcome, MaxStreams, OnLimit, SessionId,
    StartOutcome, StartRequest, StreamId, UserId, ViewerId,
};
use stream_limit_tests::world::World;

const TTL: Duration = Duration::from_secs(60);
const TICK: Duration = Duration::from_millis(10);
/// Sweep expired leases at once (production waits a grace period; see
/// `a_sweep_leaves_just_expired_leases_alone_for_the_grace_period`).
const NO_GRACE: Duration = Duration::ZERO;

fn user(n: &str) -> ViewerId {
    ViewerId::User(UserId::parse(n).expect("valid user id"))
}

/// A start naming `stream_id`, as a client retrying idempotently does.
fn request(viewer: &ViewerId, stream_id: StreamId, on_limit: OnLimit) -> StartRequest {
    StartRequest {
        replaces: None,
        viewer: viewer.clone(),
        stream_id,
        generated_id: false,
        ttl: TTL,
        default_limit: MaxStreams::DEFAULT,
        on_limit,
        device_id: Some("tv".into()),
        content_id: None,
    }
}

/// A start whose stream id the service generated (Postgres decides it on its
/// one-statement path).
fn fresh_request(viewer: &ViewerId, on_limit: OnLimit) -> StartRequest {
    StartRequest {
        generated_id: true,
        ..request(viewer, StreamId::random(), on_limit)
    }
}

/// Starts a stream that must be admitted; returns its id.
async fn admit(world: &World, viewer: &ViewerId, on_limit: OnLimit) -> StreamId {
    let request = fresh_request(viewer, on_limit);
    let id = request.stream_id;
    match world.store.start(&request).await.expect("store answers") {
        StartOutcome::Admitted(a) => {
            assert_eq!(a.lease.stream_id, id);
            assert!(!a.replayed);
            assert_eq!(a.lease.device_id.as_deref(), Some("tv"));
        }
        other => panic!("expected admission, got {other:?}"),
    }
    // Distinct start times make "oldest" unambiguous in every store.
    world.advance(TICK).await;
    id
}

async fn start(world: &World, viewer: &ViewerId, id: StreamId, on_limit: OnLimit) -> StartOutcome {
    world
        .store
        .start(&request(viewer, id, on_limit))
        .await
        .expect("store answers")
}

async fn fourth_concurrent_start_is_refused_with_the_active_streams_oldest_first(world: World) {
    let viewer = user("1");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(admit(&world, &viewer, OnLimit::Reject).await);
    }
    match start(&world, &viewer, StreamId::random(), OnLimit::Reject).await {
        StartOutcome::Refused(r) => {
            assert_eq!(r.limit, MaxStreams::DEFAULT);
            assert_eq!(
                r.active.iter().map(|l| l.stream_id).collect::<Vec<_>>(),
                ids
            );
        }
        other => panic!("expected refusal, got {other:?}"),
    }
    let active = world.store.active(&viewer).await.expect("store answers");
    assert_eq!(active.iter().map(|l| l.stream_id).collect::<Vec<_>>(), ids);
}

async fn admission_reports_the_count_and_the_lease_expiry(world: World) {
    let viewer = user("2");
    admit(&world, &viewer, OnLimit::Reject).await;
    match start(&world, &viewer, StreamId::random(), OnLimit::Reject).await {
        StartOutcome::Admitted(a) => {
            assert_eq!(a.active_count, 2);
            let ttl = (a.lease.expires_at - a.lease.started_at)
                .to_std()
                .expect("positive");
            assert_eq!(ttl, TTL);
        }
        other => panic!("expected admission, got {other:?}"),
    }
}

async fn expired_leases_stop_counting_before_any_cleanup(world: World) {
    let viewer = user("3");
    for _ in 0..3 {
        admit(&world, &viewer, OnLimit::Reject).await;
    }
    world.advance(TTL).await;
    assert!(world
        .store
        .active(&viewer)
        .await
        .expect("store answers")
        .is_empty());
    match start(&world, &viewer, StreamId::random(), OnLimit::Reject).await {
        StartOutcome::Admitted(a) => assert_eq!(a.active_count, 1),
        other => panic!("expected admission, got {other:?}"),
    }
}

async fn heartbeat_extends_a_live_lease_and_names_why_a_dead_one_is_gone(world: World) {
    let viewer = user("4");
    let kept = admit(&world, &viewer, OnLimit::Reject).await;
    let lapsed = admit(&world, &viewer, OnLimit::Reject).await;
    let ended = admit(&world, &viewer, OnLimit::Reject).await;
    world.advance(TTL / 2).await;
    let before = world.store.active(&viewer).await.expect("store answers")[0].expires_at;
    match world
        .store
        .heartbeat(&viewer, kept)
        .await
        .expect("store answers")
    {
        HeartbeatOutcome::Extended(l) => assert!(l.expires_at > before),
        other => panic!("expected extension, got {other:?}"),
    }
    world
        .store
        .end(&viewer, ended, EndReason::Ended)
        .await
        .expect("store answers");
    world.advance(TTL / 2 + TICK).await;
    let gone = |r| HeartbeatOutcome::Gone(r);
    assert_eq!(
        world
            .store
            .heartbeat(&viewer, lapsed)
            .await
            .expect("answers"),
        gone(EndReason::Expired)
    );
    assert_eq!(
        world
            .store
            .heartbeat(&viewer, ended)
            .await
            .expect("answers"),
        gone(EndReason::Ended)
    );
    assert!(matches!(
        world.store.heartbeat(&viewer, kept).await.expect("answers"),
        HeartbeatOutcome::Extended(_)
    ));
    assert_eq!(
        world
            .store
            .heartbeat(&viewer, StreamId::random())
            .await
            .expect("answers"),
        HeartbeatOutcome::NotFound
    );
}

async fn evict_oldest_admits_and_evicts_the_least_recently_started(world: World) {
    let viewer = user("5");
    let first = admit(&world, &viewer, OnLimit::EvictOldest).await;
    let second = admit(&world, &viewer, OnLimit::EvictOldest).await;
    admit(&world, &viewer, OnLimit::EvictOldest).await;
    match start(&world, &viewer, StreamId::random(), OnLimit::EvictOldest).await {
        StartOutcome::Admitted(a) => {
            assert_eq!(a.evicted, vec![first]);
            assert_eq!(a.active_count, 3);
        }
        other => panic!("expected admission, got {other:?}"),
    }
    assert_eq!(
        world
            .store
            .heartbeat(&viewer, first)
            .await
            .expect("answers"),
        HeartbeatOutcome::Gone(EndReason::Evicted)
    );
    let active = world.store.active(&viewer).await.expect("answers");
    assert_eq!(active.len(), 3);
    assert_eq!(active[0].stream_id, second);
}

async fn a_lowered_limit_evicts_down_to_it_and_a_raised_one_admits_more(world: World) {
    let viewer = user("6");
    for _ in 0..3 {
        admit(&world, &viewer, OnLimit::EvictOldest).await;
    }
    let one = MaxStreams::new(1).expect("valid");
    world
        .store
        .set_limit(&viewer, Some(one))
        .await
        .expect("answers");
    match start(&world, &viewer, StreamId::random(), OnLimit::EvictOldest).await {
        StartOutcome::Admitted(a) => {
            assert_eq!(a.evicted.len(), 3);
            assert_eq!(a.active_count, 1);
        }
        other => panic!("expected admission, got {other:?}"),
    }
    match start(&world, &viewer, StreamId::random(), OnLimit::Reject).await {
        StartOutcome::Refused(r) => assert_eq!(r.limit, one),
        other => panic!("expected refusal, got {other:?}"),
    }
    world
        .store
        .set_limit(&viewer, Some(MaxStreams::new(5).expect("valid")))
        .await
        .expect("answers");
    for _ in 0..4 {
        admit(&world, &viewer, OnLimit::Reject).await;
    }
    world.store.set_limit(&viewer, None).await.expect("answers");
    assert!(matches!(
        start(&world, &viewer, StreamId::random(), OnLimit::Reject).await,
        StartOutcome::Refused(r) if r.limit == MaxStreams::DEFAULT
    ));
}

async fn repeating_a_start_with_the_same_stream_id_takes_no_second_slot(world: World) {
    let viewer = user("7");
    let id = admit(&world, &viewer, OnLimit::Reject).await;
    for _ in 0..3 {
        match start(&world, &viewer, id, OnLimit::Reject).await {
            StartOutcome::Admitted(a) => {
                assert!(a.replayed);
                assert_eq!(a.lease.stream_id, id);
                assert_eq!(a.active_count, 1);
            }
            other => panic!("expected replay, got {other:?}"),
        }
    }
    assert_eq!(world.store.active(&viewer).await.expect("answers").len(), 1);
}

async fn restarting_an_ended_stream_id_is_gone(world: World) {
    let viewer = user("8");
    let id = admit(&world, &viewer, OnLimit::Reject).await;
    world
        .store
        .end(&viewer, id, EndReason::Ended)
        .await
        .expect("answers");
    assert_eq!(
        start(&world, &viewer, id, OnLimit::Reject).await,
        StartOutcome::Gone(EndReason::Ended)
    );
}

async fn ending_is_idempotent(world: World) {
    let viewer = user("9");
    let id = admit(&world, &viewer, OnLimit::Reject).await;
    admit(&world, &viewer, OnLimit::Reject).await;
    assert!(matches!(
        world.store.end(&viewer, id, EndReason::Ended).await.expect("answers"),
        EndOutcome::Ended { active_count: 1, lease } if lease.stream_id == id
    ));
    assert_eq!(
        world
            .store
            .end(&viewer, id, EndReason::Ended)
            .await
            .expect("answers"),
        EndOutcome::AlreadyEnded(EndReason::Ended)
    );
    assert_eq!(
        world
            .store
            .end(&viewer, StreamId::random(), EndReason::Ended)
            .await
            .expect("answers"),
        EndOutcome::NotFound
    );
}

async fn end_oldest_tells_no_active_stream_from_a_viewer_never_seen(world: World) {
    let viewer = user("10");
    assert_eq!(
        world.store.end_oldest(&viewer).await.expect("answers"),
        EndOldestOutcome::UnknownViewer
    );
    let first = admit(&world, &viewer, OnLimit::Reject).await;
    admit(&world, &viewer, OnLimit::Reject).await;
    match world.store.end_oldest(&viewer).await.expect("answers") {
        EndOldestOutcome::Ended {
            lease,
            active_count,
        } => {
            assert_eq!(lease.stream_id, first);
            assert_eq!(active_count, 1);
        }
        other => panic!("expected an ended stream, got {other:?}"),
    }
    world.store.end_oldest(&viewer).await.expect("answers");
    assert_eq!(
        world.store.end_oldest(&viewer).await.expect("answers"),
        EndOldestOutcome::NoActiveStreams
    );
}

async fn a_session_and_a_user_with_the_same_text_never_share_a_count(world: World) {
    let numeric = user("77");
    let session = ViewerId::Session(SessionId::parse("77").expect("valid"));
    for _ in 0..3 {
        admit(&world, &numeric, OnLimit::Reject).await;
        admit(&world, &session, OnLimit::Reject).await;
    }
    assert_eq!(
        world.store.active(&numeric).await.expect("answers").len(),
        3
    );
    assert_eq!(
        world.store.active(&session).await.expect("answers").len(),
        3
    );
}

async fn history_keeps_every_reason_newest_first_and_is_purged_after_retention(world: World) {
    let viewer = user("11");
    let ended = admit(&world, &viewer, OnLimit::EvictOldest).await;
    let revoked = admit(&world, &viewer, OnLimit::EvictOldest).await;
    let expired = admit(&world, &viewer, OnLimit::EvictOldest).await;
    world
        .store
        .end(&viewer, ended, EndReason::Ended)
        .await
        .expect("answers");
    world.advance(TICK).await;
    world
        .store
        .end(&viewer, revoked, EndReason::Revoked)
        .await
        .expect("answers");
    world.advance(TTL).await;
    let report = world
        .store
        .sweep(100, NO_GRACE, Duration::from_secs(3600))
        .await
        .expect("answers");
    assert_eq!(report.expired, 1);
    let history = world.store.history(&viewer, 10).await.expect("answers");
    let reasons: Vec<_> = history.iter().map(|r| (r.stream_id, r.reason)).collect();
    assert_eq!(
        reasons,
        vec![
            (expired, EndReason::Expired),
            (revoked, EndReason::Revoked),
            (ended, EndReason::Ended)
        ]
    );
    // Three admissions passed before the end; Postgres adds real elapsed time on top.
    assert!(
        history[2].duration() >= 3 * TICK,
        "{:?}",
        history[2].duration()
    );
    assert_eq!(
        world
            .store
            .history(&viewer, 1)
            .await
            .expect("answers")
            .len(),
        1
    );
    // The sweep moved the expired lease; its reason survives for heartbeats.
    assert_eq!(
        world
            .store
            .heartbeat(&viewer, expired)
            .await
            .expect("answers"),
        HeartbeatOutcome::Gone(EndReason::Expired)
    );
    world.advance(Duration::from_secs(3600)).await;
    let report = world
        .store
        .sweep(100, NO_GRACE, Duration::from_secs(3600))
        .await
        .expect("answers");
    assert_eq!(report.purged, 3);
    assert!(world
        .store
        .history(&viewer, 10)
        .await
        .expect("answers")
        .is_empty());
}

async fn a_sweep_touches_at_most_its_batch(world: World) {
    for n in 0..5 {
        admit(&world, &user(&format!("20{n}")), OnLimit::Reject).await;
    }
    world.advance(TTL).await;
    let first = world
        .store
        .sweep(2, NO_GRACE, Duration::from_secs(3600))
        .await
        .expect("answers");
    assert_eq!(first.expired, 2);
    let rest = world
        .store
        .sweep(100, NO_GRACE, Duration::from_secs(3600))
        .await
        .expect("answers");
    assert_eq!(rest.expired, 3);
}

async fn sixty_simultaneous_starts_admit_exactly_the_limit(world: World) {
    let viewer = user("30");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(60));
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let (store, barrier) = (world.store.clone(), barrier.clone());
            let request = fresh_request(&viewer, OnLimit::Reject);
            tokio::spawn(async move {
                barrier.wait().await;
                store.start(&request).await.expect("store answers")
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        if let StartOutcome::Admitted(a) = task.await.expect("task ran") {
            assert!(a.active_count <= 3);
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3);
    assert_eq!(world.store.active(&viewer).await.expect("answers").len(), 3);
}

async fn a_sweep_leaves_just_expired_leases_alone_for_the_grace_period(world: World) {
    let viewer = user("40");
    let id = admit(&world, &viewer, OnLimit::Reject).await;
    world.advance(TTL).await;
    let grace = Duration::from_secs(60);
    let report = world
        .store
        .sweep(100, grace, Duration::from_secs(3600))
        .await
        .expect("answers");
    assert_eq!(report.expired, 0);
    // Not swept yet, but already not counting, and already reported as expired.
    assert!(world
        .store
        .active(&viewer)
        .await
        .expect("answers")
        .is_empty());
    assert_eq!(
        start(&world, &viewer, id, OnLimit::Reject).await,
        StartOutcome::Gone(EndReason::Expired)
    );
    assert_eq!(
        world
            .store
            .end(&viewer, id, EndReason::Ended)
            .await
            .expect("answers"),
        EndOutcome::AlreadyEnded(EndReason::Expired)
    );
    world.advance(grace).await;
    world
        .store
        .sweep(100, grace, Duration::from_secs(3600))
        .await
        .expect("answers");
    // Swept by now (the in-memory store already moved it during the calls above).
    let history = world.store.history(&viewer, 10).await.expect("answers");
    assert_eq!(
        history
            .iter()
            .map(|r| (r.stream_id, r.reason))
            .collect::<Vec<_>>(),
        [(id, EndReason::Expired)]
    );
}

async fn lease_counts_see_active_leases_and_what_the_sweeper_has_yet_to_move(world: World) {
    let grace = Duration::from_secs(60);
    let counts = || async { world.store.lease_counts(grace).await.expect("answers") };
    assert_eq!(counts().await, stream_limit_core::LeaseCounts::default());
    for viewer in ["50", "50", "51"] {
        admit(&world, &user(viewer), OnLimit::Reject).await;
    }
    let now = counts().await;
    assert_eq!((now.active, now.unswept), (3, 0));
    assert_eq!(now.sweep_lag, Duration::ZERO);
    // Expired, but within the grace: neither counts nor waits for the sweeper.
    world.advance(TTL).await;
    let now = counts().await;
    assert_eq!((now.active, now.unswept), (0, 0));
    // Past the grace by 30 s: the oldest has waited that long.
    world.advance(grace + Duration::from_secs(30)).await;
    let now = counts().await;
    assert_eq!((now.active, now.unswept), (0, 3));
    assert!(
        (Duration::from_secs(30)..Duration::from_secs(35)).contains(&now.sweep_lag),
        "lag {:?}",
        now.sweep_lag
    );
    // A new stream counts; the sweep leaves nothing behind.
    admit(&world, &user("52"), OnLimit::Reject).await;
    world
        .store
        .sweep(100, grace, Duration::from_secs(3600))
        .await
        .expect("answers");
    let now = counts().await;
    assert_eq!((now.active, now.unswept), (1, 0));
    assert_eq!(now.sweep_lag, Duration::ZERO);
}

/// A crashed player never locks its viewer out: once every slot is held by an
/// expired lease, and before any sweep, each kind of start is admitted and the
/// expired leases are in history as expired.
async fn a_viewer_whose_slots_all_expired_is_admitted_by_every_kind_of_start(world: World) {
    type MakeStart = fn(&ViewerId) -> StartRequest;
    let starts: [(&str, MakeStart); 3] = [
        ("generated id, reject", |v| {
            fresh_request(v, OnLimit::Reject)
        }),
        ("generated id, evict oldest", |v| {
            fresh_request(v, OnLimit::EvictOldest)
        }),
        ("named id", |v| {
            request(v, StreamId::random(), OnLimit::Reject)
        }),
    ];
    let mut filled = Vec::new();
    for (n, _) in starts.iter().enumerate() {
        let viewer = user(&format!("5{n}"));
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(admit(&world, &viewer, OnLimit::Reject).await);
        }
        filled.push((viewer, ids));
    }
    world.advance(TTL).await;
    for ((kind, make), (viewer, expired)) in starts.iter().zip(&filled) {
        let request = make(viewer);
        match world.store.start(&request).await {
            Ok(StartOutcome::Admitted(a)) => {
                assert_eq!(a.lease.stream_id, request.stream_id, "{kind}");
                assert_eq!(a.active_count, 1, "{kind}");
                assert!(a.evicted.is_empty(), "{kind}: nothing live to evict");
            }
            other => panic!("{kind}: expected admission, got {other:?}"),
        }
        let mut history: Vec<_> = world
            .store
            .history(viewer, 10)
            .await
            .expect("answers")
            .iter()
            .map(|r| (r.stream_id, r.reason))
            .collect();
        history.sort_by_key(|(id, _)| *id);
        let mut want: Vec<_> = expired.iter().map(|id| (*id, EndReason::Expired)).collect();
        want.sort_by_key(|(id, _)| *id);
        assert_eq!(history, want, "{kind}");
    }
}

/// Runs each scenario once per store, on a multi-threaded runtime so that
/// concurrent scenarios really interleave.
/// A viewer that ends stream after stream keeps only its most recent history
/// (issue: 8.3k evicting starts left 8,348 history rows for one viewer), and
/// the streams it forgot are unknown again rather than "gone".
async fn history_per_viewer_is_bounded_to_the_most_recent_streams(world: World) {
    let viewer = user("12");
    world
        .store
        .set_limit(&viewer, Some(MaxStreams::new(1).expect("valid")))
        .await
        .expect("answers");
    let extra = 8;
    let mut started = Vec::new();
    for _ in 0..HISTORY_PER_VIEWER + extra + 1 {
        started.push(admit(&world, &viewer, OnLimit::EvictOldest).await);
    }
    let history = world
        .store
        .history(&viewer, usize::MAX)
        .await
        .expect("answers");
    let expected: Vec<StreamId> = started[extra..started.len() - 1]
        .iter()
        .rev()
        .copied()
        .collect();
    let kept: Vec<StreamId> = history.iter().map(|r| r.stream_id).collect();
    assert_eq!(
        kept, expected,
        "the {HISTORY_PER_VIEWER} most recent, newest first"
    );
    assert!(history.iter().all(|r| r.reason == EndReason::Evicted));
    // A stream still in history is gone; one beyond the bound is forgotten.
    assert_eq!(
        world
            .store
            .heartbeat(&viewer, started[extra])
            .await
            .expect("answers"),
        HeartbeatOutcome::Gone(EndReason::Evicted)
    );
    assert_eq!(
        world
            .store
            .heartbeat(&viewer, started[0])
            .await
            .expect("answers"),
        HeartbeatOutcome::NotFound
    );
}

/// Streams that end at one instant (one start evicting many) still leave at
/// most the bound in history: ties at the cut do not survive it. Which of
/// the tied ones remain is up to the store.
async fn history_stays_bounded_when_many_streams_end_at_once(world: World) {
    let viewer = user("13");
    let many = HISTORY_PER_VIEWER + 8;
    world
        .store
        .set_limit(&viewer, Some(MaxStreams::new(many as u32).expect("valid")))
        .await
        .expect("answers");
    for _ in 0..many {
        admit(&world, &viewer, OnLimit::EvictOldest).await;
    }
    world
        .store
        .set_limit(&viewer, Some(MaxStreams::new(1).expect("valid")))
        .await
        .expect("answers");
    admit(&world, &viewer, OnLimit::EvictOldest).await;
    let history = world
        .store
        .history(&viewer, usize::MAX)
        .await
        .expect("answers");
    assert_eq!(history.len(), HISTORY_PER_VIEWER);
    assert!(history.iter().all(|r| r.reason == EndReason::Evicted));
}

async fn a_take_over_ends_the_named_stream_and_admits_in_one_decision(world: World) {
    let viewer = user("70");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(admit(&world, &viewer, OnLimit::Reject).await);
    }
    let take_over = StartRequest {
        replaces: Some(ids[1]),
        ..fresh_request(&viewer, OnLimit::Reject)
    };
    match world.store.start(&take_over).await.expect("store answers") {
        StartOutcome::Admitted(a) => {
            assert_eq!(a.replaced, Some(ids[1]));
            assert_eq!(a.active_count, 3);
            assert!(a.evicted.is_empty());
        }
        other => panic!("expected admission, got {other:?}"),
    }
    let active: Vec<_> = world.store.active(&viewer).await.expect("answers");
    let active: Vec<_> = active.iter().map(|l| l.stream_id).collect();
    assert_eq!(active, vec![ids[0], ids[2], take_over.stream_id]);
    assert_eq!(
        world
            .store
            .heartbeat(&viewer, ids[1])
            .await
            .expect("answers"),
        HeartbeatOutcome::Gone(EndReason::Replaced)
    );
    let history = world.store.history(&viewer, 10).await.expect("answers");
    assert_eq!(
        (history[0].stream_id, history[0].reason),
        (ids[1], EndReason::Replaced)
    );
    // Naming it again replaces nothing: it is no longer active, so the
    // viewer is at the limit again.
    let again = StartRequest {
        replaces: Some(ids[1]),
        ..fresh_request(&viewer, OnLimit::Reject)
    };
    assert!(matches!(
        world.store.start(&again).await.expect("store answers"),
        StartOutcome::Refused(_)
    ));
}

/// Twenty devices try to take over the same stream at once: exactly one does,
/// and the others are refused, so the freed slot never goes to two of them.
async fn simultaneous_take_overs_of_one_stream_admit_exactly_one(world: World) {
    let viewer = user("71");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(admit(&world, &viewer, OnLimit::Reject).await);
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, barrier) = (world.store.clone(), barrier.clone());
            let request = StartRequest {
                replaces: Some(ids[0]),
                ..fresh_request(&viewer, OnLimit::Reject)
            };
            tokio::spawn(async move {
                barrier.wait().await;
                store.start(&request).await.expect("store answers")
            })
        })
        .collect();
    let (mut replaced, mut refused) = (0, 0);
    for task in tasks {
        match task.await.expect("task ran") {
            StartOutcome::Admitted(a) => {
                assert_eq!(a.replaced, Some(ids[0]));
                replaced += 1;
            }
            StartOutcome::Refused(_) => refused += 1,
            StartOutcome::Gone(reason) => panic!("a fresh stream is never gone ({reason})"),
        }
    }
    assert_eq!((replaced, refused), (1, 19));
    assert_eq!(world.store.active(&viewer).await.expect("answers").len(), 3);
}

macro_rules! contract_suite {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
              async fn $scenario() { super::$scenario(super::World::memory()).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
              async fn $scenario() { super::$scenario(super::World::postgres().await).await })*
        }
    };
}

contract_suite!(
    fourth_concurrent_start_is_refused_with_the_active_streams_oldest_first,
    lease_counts_see_active_leases_and_what_the_sweeper_has_yet_to_move,
    admission_reports_the_count_and_the_lease_expiry,
    expired_leases_stop_counting_before_any_cleanup,
    heartbeat_extends_a_live_lease_and_names_why_a_dead_one_is_gone,
    evict_oldest_admits_and_evicts_the_least_recently_started,
    a_lowered_limit_evicts_down_to_it_and_a_raised_one_admits_more,
    repeating_a_start_with_the_same_stream_id_takes_no_second_slot,
    restarting_an_ended_stream_id_is_gone,
    ending_is_idempotent,
    end_oldest_tells_no_active_stream_from_a_viewer_never_seen,
    a_session_and_a_user_with_the_same_text_never_share_a_count,
    history_keeps_every_reason_newest_first_and_is_purged_after_retention,
    a_sweep_touches_at_most_its_batch,
    sixty_simultaneous_starts_admit_exactly_the_limit,
    a_sweep_leaves_just_expired_leases_alone_for_the_grace_period,
    a_viewer_whose_slots_all_expired_is_admitted_by_every_kind_of_start,
    history_per_viewer_is_bounded_to_the_most_recent_streams,
    history_stays_bounded_when_many_streams_end_at_once,
    a_take_over_ends_the_named_stream_and_admits_in_one_decision,
    simultaneous_take_overs_of_one_stream_admit_exactly_one,
);
