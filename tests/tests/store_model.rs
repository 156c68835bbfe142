//! Model-based differential test: the in-memory store (a `ViewerBook` per
//! viewer) is the reference, and the Postgres store must give the same answer
//! at every step of random operation sequences, clock jumps included.
//!
//! A failure is shrunk to a minimal sequence, which proptest prints with the
//! step that disagreed. The seed is printed too; replay one with
//! `STREAM_LIMIT_MODEL_SEED=<seed> cargo test -p stream-limit-tests --test store_model`.
//! `STREAM_LIMIT_MODEL_CASES` sets how many sequences run (default below).
//!
//! Time: the reference runs on a manual clock, Postgres on its own clock plus
//! a shift the test moves. Every lease length and jump is a multiple of
//! [`QUANTUM`], so a lease is either expired at a decision by the manual clock
//! or still has a whole quantum left; the real time that passes during a
//! sequence (milliseconds) never tips a decision one way on one store and the
//! other way on the other.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use stream_limit_core::{
    EndOldestOutcome, EndOutcome, EndReason, HeartbeatOutcome, LeaseStore, MaxStreams, OnLimit,
    SessionId, StartOutcome, StartRequest, StreamId, UserId, ViewerId,
};
use stream_limit_tests::replay::Replay;
use stream_limit_tests::world::World;

/// The unit of every lease length and clock jump.
const QUANTUM: Duration = Duration::from_secs(60);
/// Lease lengths a start may ask for, in quanta.
const TTL_QUANTA: [u32; 2] = [2, 3];
/// Viewers per sequence: two users and a session, so both identities are hit.
const VIEWERS: usize = 3;
/// Client-named stream ids per sequence (shared by its viewers, so the same id
/// is also tried on a viewer that never had it).
const NAMED_IDS: u128 = 4;
/// At most this many operations per sequence: below the in-memory store's
/// per-viewer history window, so both stores remember every ended stream.
const MAX_STEPS: usize = 30;
/// Sequences per run unless `STREAM_LIMIT_MODEL_CASES` says otherwise.
const DEFAULT_CASES: u32 = 300;

/// Which stream an operation names.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// One of the sequence's client-named ids.
    Named(u8),
    /// The n-th stream id used so far in the sequence (modulo their number),
    /// generated ones included; a named id when none was used yet.
    Used(u8),
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// A start with an id the service generated (`generated_id = true`).
    StartGenerated {
        viewer: u8,
        evict: bool,
        ttl: u8,
    },
    /// A start naming its stream id, as an idempotent retry does.
    StartNamed {
        viewer: u8,
        stream: Target,
        evict: bool,
        ttl: u8,
    },
    /// A take-over: a start with a generated id that replaces a named stream.
    TakeOver {
        viewer: u8,
        replaces: Target,
        evict: bool,
        ttl: u8,
    },
    Heartbeat {
        viewer: u8,
        stream: Target,
    },
    End {
        viewer: u8,
        stream: Target,
    },
    Revoke {
        viewer: u8,
        stream: Target,
    },
    EndOldest {
        viewer: u8,
    },
    SetLimit {
        viewer: u8,
        limit: Option<u8>,
    },
    /// Moves both clocks forward by this many quanta.
    Advance(u8),
    /// A sweep with no grace: moves every expired lease to history.
    Sweep,
    /// Counts the store's leases (`LeaseStore::lease_counts`).
    Count,
}

fn viewer() -> impl Strategy<Value = u8> {
    0..VIEWERS as u8
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        (0..NAMED_IDS as u8).prop_map(Target::Named),
        any::<u8>().prop_map(Target::Used),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let ttl = 0..TTL_QUANTA.len() as u8;
    prop_oneof![
        6 => (viewer(), any::<bool>(), ttl.clone())
            .prop_map(|(viewer, evict, ttl)| Op::StartGenerated { viewer, evict, ttl }),
        3 => (viewer(), target(), any::<bool>(), ttl)
            .prop_map(|(viewer, stream, evict, ttl)| Op::StartNamed { viewer, stream, evict, ttl }),
        2 => (viewer(), target(), any::<bool>(), 0..TTL_QUANTA.len() as u8)
            .prop_map(|(viewer, replaces, evict, ttl)| Op::TakeOver { viewer, replaces, evict, ttl }),
        3 => (viewer(), target()).prop_map(|(viewer, stream)| Op::Heartbeat { viewer, stream }),
        2 => (viewer(), target()).prop_map(|(viewer, stream)| Op::End { viewer, stream }),
        1 => (viewer(), target()).prop_map(|(viewer, stream)| Op::Revoke { viewer, stream }),
        2 => viewer().prop_map(|viewer| Op::EndOldest { viewer }),
        1 => (viewer(), proptest::option::of(1..=3u8))
            .prop_map(|(viewer, limit)| Op::SetLimit { viewer, limit }),
        4 => (1..=4u8).prop_map(Op::Advance),
        1 => Just(Op::Sweep),
        1 => Just(Op::Count),
    ]
}

/// A whole sequence: the default limit (1 to 3) and the operations.
fn sequence() -> impl Strategy<Value = (u8, Vec<Op>)> {
    (1..=3u8, proptest::collection::vec(op(), 1..=MAX_STEPS))
}

/// An answer with what differs legitimately between the stores blanked out:
/// timestamps (the stores have different clocks).
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Admitted {
        stream: StreamId,
        active_count: u32,
        evicted: Vec<StreamId>,
        replaced: Option<StreamId>,
        replayed: bool,
        device: Option<Box<str>>,
        ttl: Duration,
    },
    Refused {
        limit: MaxStreams,
        active: Vec<StreamId>,
    },
    Gone(EndReason),
    Extended(StreamId),
    Ended {
        stream: StreamId,
        active_count: u32,
    },
    AlreadyEnded(EndReason),
    NotFound,
    NoActiveStreams,
    UnknownViewer,
    /// Active leases, of every viewer.
    Leases(u64),
    Done,
}

impl From<StartOutcome> for Answer {
    fn from(outcome: StartOutcome) -> Self {
        match outcome {
            StartOutcome::Admitted(a) => Answer::Admitted {
                stream: a.lease.stream_id,
                active_count: a.active_count,
                evicted: a.evicted,
                replaced: a.replaced,
                replayed: a.replayed,
                device: a.lease.device_id,
                ttl: a.lease.ttl,
            },
            StartOutcome::Refused(r) => Answer::Refused {
                limit: r.limit,
                active: r.active.iter().map(|l| l.stream_id).collect(),
            },
            StartOutcome::Gone(reason) => Answer::Gone(reason),
        }
    }
}

impl From<HeartbeatOutcome> for Answer {
    fn from(outcome: HeartbeatOutcome) -> Self {
        match outcome {
            HeartbeatOutcome::Extended(lease) => Answer::Extended(lease.stream_id),
            HeartbeatOutcome::Gone(reason) => Answer::Gone(reason),
            HeartbeatOutcome::NotFound => Answer::NotFound,
        }
    }
}

impl From<EndOutcome> for Answer {
    fn from(outcome: EndOutcome) -> Self {
        match outcome {
            EndOutcome::Ended {
                lease,
                active_count,
            } => Answer::Ended {
                stream: lease.stream_id,
                active_count,
            },
            EndOutcome::AlreadyEnded(reason) => Answer::AlreadyEnded(reason),
            EndOutcome::NotFound => Answer::NotFound,
        }
    }
}

impl From<EndOldestOutcome> for Answer {
    fn from(outcome: EndOldestOutcome) -> Self {
        match outcome {
            EndOldestOutcome::Ended {
                lease,
                active_count,
            } => Answer::Ended {
                stream: lease.stream_id,
                active_count,
            },
            EndOldestOutcome::NoActiveStreams => Answer::NoActiveStreams,
            EndOldestOutcome::UnknownViewer => Answer::UnknownViewer,
        }
    }
}

/// One sequence's names: fresh viewers (so sequences sharing the database
/// never see each other) and the stream ids used so far.
struct Sequence {
    viewers: Vec<ViewerId>,
    used: Vec<StreamId>,
    default_limit: MaxStreams,
}

impl Sequence {
    fn new(default_limit: u8) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let user = |k: u64| ViewerId::User(UserId::parse(&(n * 10 + k).to_string()).expect("id"));
        let session = ViewerId::Session(SessionId::parse(&format!("model-{n}")).expect("id"));
        Self {
            viewers: vec![user(1), user(2), session],
            used: Vec::new(),
            default_limit: MaxStreams::new(u32::from(default_limit)).expect("1 to 3"),
        }
    }

    fn viewer(&self, index: u8) -> &ViewerId {
        &self.viewers[usize::from(index) % self.viewers.len()]
    }

    fn stream(&self, target: Target) -> StreamId {
        let named = |k: u8| StreamId::from(uuid::Uuid::from_u128(u128::from(k) % NAMED_IDS + 1));
        match target {
            Target::Named(k) => named(k),
            Target::Used(_) if self.used.is_empty() => named(0),
            Target::Used(k) => self.used[usize::from(k) % self.used.len()],
        }
    }

    fn start_request(
        &mut self,
        viewer: u8,
        stream: Option<Target>,
        evict: bool,
        ttl: u8,
    ) -> StartRequest {
        let stream_id = stream.map_or_else(StreamId::random, |t| self.stream(t));
        if !self.used.contains(&stream_id) {
            self.used.push(stream_id);
        }
        StartRequest {
            replaces: None,
            viewer: self.viewer(viewer).clone(),
            stream_id,
            generated_id: stream.is_none(),
            ttl: QUANTUM * TTL_QUANTA[usize::from(ttl) % TTL_QUANTA.len()],
            default_limit: self.default_limit,
            on_limit: if evict {
                OnLimit::EvictOldest
            } else {
                OnLimit::Reject
            },
            // Alternate, so both stores are seen keeping and omitting it.
            device_id: evict.then(|| "tv".into()),
            content_id: None,
        }
    }
}

/// Runs `op` on one store; `Err` carries the store's error for the report.
async fn apply(
    store: &dyn LeaseStore,
    op: Op,
    names: &Sequence,
    request: Option<&StartRequest>,
) -> Result<Answer, String> {
    let err = |e: stream_limit_core::StoreError| format!("{e:?}");
    Ok(match op {
        Op::StartGenerated { .. } | Op::StartNamed { .. } | Op::TakeOver { .. } => {
            let request = request.expect("a start carries its request");
            store.start(request).await.map_err(err)?.into()
        }
        Op::Heartbeat { viewer, stream } => store
            .heartbeat(names.viewer(viewer), names.stream(stream))
            .await
            .map_err(err)?
            .into(),
        Op::End { viewer, stream } => store
            .end(names.viewer(viewer), names.stream(stream), EndReason::Ended)
            .await
            .map_err(err)?
            .into(),
        Op::Revoke { viewer, stream } => store
            .end(
                names.viewer(viewer),
                names.stream(stream),
                EndReason::Revoked,
            )
            .await
            .map_err(err)?
            .into(),
        Op::EndOldest { viewer } => store
            .end_oldest(names.viewer(viewer))
            .await
            .map_err(err)?
            .into(),
        Op::SetLimit { viewer, limit } => {
            let limit = limit.map(|n| MaxStreams::new(u32::from(n)).expect("1 to 3"));
            store
                .set_limit(names.viewer(viewer), limit)
                .await
                .map_err(err)?;
            Answer::Done
        }
        Op::Advance(_) => Answer::Done,
        Op::Sweep => {
            // Counts differ legitimately (the reference moves expired leases on
            // every call, Postgres on starts and sweeps); what follows must not.
            sweep_all(store).await?;
            let counts = store.lease_counts(Duration::ZERO).await.map_err(err)?;
            if counts.unswept > 0 || counts.sweep_lag > Duration::ZERO {
                return Err(format!("left unswept after a full sweep: {counts:?}"));
            }
            Answer::Leases(counts.active)
        }
        // Active leases only: what waits for the sweeper differs legitimately
        // (see `Op::Sweep`).
        Op::Count => Answer::Leases(
            store
                .lease_counts(Duration::ZERO)
                .await
                .map_err(err)?
                .active,
        ),
    })
}

/// Sweeps with no grace and no purge until nothing is left to move.
async fn sweep_all(store: &dyn LeaseStore) -> Result<(), String> {
    const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    for _ in 0..100 {
        let report = store
            .sweep(100_000, Duration::ZERO, FOREVER)
            .await
            .map_err(|e| format!("{e:?}"))?;
        if report.expired == 0 {
            return Ok(());
        }
    }
    Err("sweeping never finished".into())
}

async fn active_ids(store: &dyn LeaseStore, viewer: &ViewerId) -> Result<Vec<StreamId>, String> {
    Ok(store
        .active(viewer)
        .await
        .map_err(|e| format!("{e:?}"))?
        .iter()
        .map(|l| l.stream_id)
        .collect())
}

/// What each stream of the viewer ended as, in a fixed order (the stores'
/// timestamps differ, so "newest first" can tie differently).
async fn history(
    store: &dyn LeaseStore,
    viewer: &ViewerId,
) -> Result<Vec<(StreamId, EndReason)>, String> {
    let mut entries: Vec<_> = store
        .history(viewer, 1000)
        .await
        .map_err(|e| format!("{e:?}"))?
        .iter()
        .map(|r| (r.stream_id, r.reason))
        .collect();
    entries.sort_by_key(|(id, reason)| (*id, reason.as_str()));
    Ok(entries)
}

/// Runs one sequence on a fresh reference and on the shared Postgres world,
/// comparing every answer and the touched viewer's active streams after each
/// step, then (after a full sweep on both) every viewer's history.
async fn check(
    postgres: &World,
    default_limit: u8,
    ops: &[Op],
    steps: &AtomicUsize,
) -> Result<(), TestCaseError> {
    let reference = World::memory();
    // `lease_counts` covers the whole store: each sequence starts on an
    // empty one, as the reference does.
    postgres
        .sql()
        .batch_execute("TRUNCATE viewers, stream_history")
        .await
        .map_err(|e| TestCaseError::fail(format!("TRUNCATE failed: {e}")))?;
    let mut names = Sequence::new(default_limit);
    for (step, &op) in ops.iter().enumerate() {
        steps.fetch_add(1, Ordering::Relaxed);
        if let Op::Advance(quanta) = op {
            let by = QUANTUM * u32::from(quanta);
            reference.advance(by).await;
            postgres.advance(by).await;
        }
        let request = match op {
            Op::StartGenerated { viewer, evict, ttl } => {
                Some(names.start_request(viewer, None, evict, ttl))
            }
            Op::StartNamed {
                viewer,
                stream,
                evict,
                ttl,
            } => Some(names.start_request(viewer, Some(stream), evict, ttl)),
            Op::TakeOver {
                viewer,
                replaces,
                evict,
                ttl,
            } => Some(StartRequest {
                replaces: Some(names.stream(replaces)),
                ..names.start_request(viewer, None, evict, ttl)
            }),
            _ => None,
        };
        let expected = apply(&*reference.store, op, &names, request.as_ref()).await;
        let got = apply(&*postgres.store, op, &names, request.as_ref()).await;
        prop_assert_eq!(
            &got,
            &expected,
            "step {} ({:?}): Postgres answered differently",
            step,
            op
        );
        for viewer in &names.viewers {
            let (expected, got) = (
                active_ids(&*reference.store, viewer).await,
                active_ids(&*postgres.store, viewer).await,
            );
            prop_assert_eq!(
                got,
                expected,
                "after step {} ({:?}): active streams of {} differ",
                step,
                op,
                viewer
            );
        }
    }
    let (a, b) = (
        sweep_all(&*reference.store).await,
        sweep_all(&*postgres.store).await,
    );
    prop_assert_eq!(&b, &a, "final sweep");
    for viewer in &names.viewers {
        let (expected, got) = (
            history(&*reference.store, viewer).await,
            history(&*postgres.store, viewer).await,
        );
        prop_assert_eq!(got, expected, "history of {} differs at the end", viewer);
    }
    Ok(())
}

#[test]
fn postgres_answers_every_operation_sequence_as_the_reference_model_does() {
    let Replay { cases, seed } = Replay::from_env("STREAM_LIMIT_MODEL", DEFAULT_CASES);
    println!("model differential: seed {seed}, {cases} sequences of up to {MAX_STEPS} steps");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let postgres = runtime.block_on(World::postgres());
    // Shrinking replays sequences against the database: bound it in time.
    let mut runner = Replay { cases, seed }.runner(120_000);
    let steps = AtomicUsize::new(0);
    let started = Instant::now();
    let result = runner.run(&sequence(), |(default_limit, ops)| {
        runtime.block_on(check(&postgres, default_limit, &ops, &steps))
    });
    println!(
        "model differential: {} steps in {:.1} s",
        steps.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    if let Err(failure) = result {
        panic!("seed {seed}: {failure}");
    }
}
