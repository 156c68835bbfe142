//! Decisions waiting for a batch, and which viewers a batch in flight holds.
//!
//! Requests put their decision here and wait for its answer; the batch
//! workers (`super::batch`) take whatever is waiting when they are free. A
//! viewer is in at most one batch in flight: its later decisions wait here,
//! in the instance, for the next batch, instead of queueing on its row lock
//! in the database with a pooled connection each. So a hot viewer costs one
//! connection at most, and the other viewers keep the rest.
//!
//! On Citus a batch also holds the decisions of one shard only
//! (`super::citus`): a transaction over two shards would commit with
//! two-phase commit.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, Notify};

use super::citus::ShardMap;

use crate::domain::ids::StreamId;
use crate::domain::lease::EndReason;
use crate::domain::outcome::{EndOldestOutcome, EndOutcome, HeartbeatOutcome, StartOutcome};
use crate::domain::request::StartRequest;
use crate::store::StoreError;

/// One decision about one viewer, as the store's methods receive it.
#[derive(Debug, Clone)]
pub(super) enum Decision {
    Start(StartRequest),
    Heartbeat(StreamId),
    End(StreamId, EndReason),
    EndOldest,
    /// The sweeper's, on Citus: moves the leases that expired more than this
    /// long ago to history (see `super::lease_store`).
    Expire(std::time::Duration),
}

/// A decision's outcome, of the kind that matches its [`Decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    Start(StartOutcome),
    Heartbeat(HeartbeatOutcome),
    End(EndOutcome),
    EndOldest(EndOldestOutcome),
    /// How many leases moved to history.
    Expired(u64),
}

/// A decision and where its answer goes.
#[derive(Debug)]
pub(super) struct Pending {
    /// The viewer's key in the database (`user:42`, `session:…`).
    pub viewer: String,
    pub decision: Decision,
    pub reply: oneshot::Sender<Result<Answer, StoreError>>,
}

impl Pending {
    pub fn answer(self, answer: Result<Answer, StoreError>) {
        // The caller may have timed out and gone: nobody is left to tell.
        let _ = self.reply.send(answer);
    }
}

#[derive(Debug, Default)]
struct State {
    waiting: VecDeque<Pending>,
    /// Viewers of the batches in flight.
    in_flight: HashSet<String>,
    closed: bool,
}

/// The decisions waiting for a batch.
#[derive(Debug, Default)]
pub(super) struct Queue {
    state: Mutex<State>,
    ready: Notify,
    /// On Citus: the shards, by which batches are grouped.
    shards: Option<Arc<ShardMap>>,
}

impl Queue {
    /// A queue whose batches each hold the decisions of one shard of `shards`.
    pub fn by_shard(shards: Arc<ShardMap>) -> Self {
        Self {
            shards: Some(shards),
            ..Self::default()
        }
    }

    /// Adds a decision; a free worker takes it at once.
    pub fn push(&self, pending: Pending) {
        {
            let mut state = self.lock();
            if state.closed {
                drop(state);
                pending.answer(Err(StoreError::Unavailable(
                    "the store is shut down".into(),
                )));
                return;
            }
            state.waiting.push_back(pending);
        }
        self.ready.notify_one();
    }

    /// Waits for, then takes, up to `max` decisions whose viewers no batch in
    /// flight holds, in arrival order, and marks those viewers in flight.
    /// Decisions whose caller has gone are dropped unanswered. `None` once
    /// the queue is closed.
    pub async fn take(&self, max: usize) -> Option<Vec<Pending>> {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.lock();
                if state.closed {
                    return None;
                }
                let batch = state.take(max, self.shards.as_deref());
                if !batch.is_empty() {
                    let more = state
                        .waiting
                        .iter()
                        .any(|p| !state.in_flight.contains(&p.viewer));
                    drop(state);
                    if more {
                        // Another free worker can start on the rest now.
                        self.ready.notify_one();
                    }
                    return Some(batch);
                }
            }
            notified.await;
        }
    }

    /// Adds to `batch` (taken by [`Queue::take`]) the decisions that arrived
    /// since, up to `max` in all, as `take` would have had they been there.
    pub fn top_up(&self, batch: &mut Vec<Pending>, max: usize) {
        let mut state = self.lock();
        let mine: HashSet<String> = batch.iter().map(|p| p.viewer.clone()).collect();
        state.take_into(batch, mine, max, self.shards.as_deref());
    }

    /// The batch holding `viewers` is done: their waiting decisions may go.
    pub fn release<'a>(&self, viewers: impl IntoIterator<Item = &'a str>) {
        let waiting = {
            let mut state = self.lock();
            for viewer in viewers {
                state.in_flight.remove(viewer);
            }
            !state.waiting.is_empty()
        };
        if waiting {
            self.ready.notify_one();
        }
    }

    /// Refuses new decisions, answers the waiting ones as unavailable, and
    /// stops the workers once their batch in flight is done.
    pub fn close(&self) {
        let waiting = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.waiting)
        };
        self.ready.notify_waiters();
        for pending in waiting {
            pending.answer(Err(StoreError::Unavailable(
                "the store is shut down".into(),
            )));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before it can
        // panic (it only moves entries between collections).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn take(&mut self, max: usize, shards: Option<&ShardMap>) -> Vec<Pending> {
        let mut batch = Vec::new();
        self.take_into(&mut batch, HashSet::new(), max, shards);
        batch
    }

    /// Moves eligible waiting decisions into `batch`, whose viewers `mine`
    /// are (or are about to be) in flight for it. With `shards`, only
    /// decisions of the shard of the batch's first viewer are eligible.
    fn take_into(
        &mut self,
        batch: &mut Vec<Pending>,
        mut mine: HashSet<String>,
        max: usize,
        shards: Option<&ShardMap>,
    ) {
        let mut group = shards.zip(batch.first()).map(|(s, p)| s.group(&p.viewer));
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        while let Some(pending) = self.waiting.pop_front() {
            if pending.reply.is_closed() {
                continue;
            }
            let held_elsewhere =
                self.in_flight.contains(&pending.viewer) && !mine.contains(&pending.viewer);
            // One viewer's decisions share its shard, so skipping them all
            // keeps their order.
            let other_shard = match shards {
                Some(shards) if batch.len() < max && !held_elsewhere => {
                    let mine = shards.group(&pending.viewer);
                    *group.get_or_insert(mine) != mine
                }
                _ => false,
            };
            // A viewer's decisions stay in arrival order: once one of them
            // waits (held elsewhere, or the batch is full), so do the later ones.
            if !held_elsewhere && !other_shard && batch.len() < max {
                mine.insert(pending.viewer.clone());
                batch.push(pending);
            } else {
                kept.push_back(pending);
            }
        }
        self.waiting = kept;
        self.in_flight.extend(mine);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(viewer: &str) -> (Pending, oneshot::Receiver<Result<Answer, StoreError>>) {
        let (reply, receiver) = oneshot::channel();
        let pending = Pending {
            viewer: viewer.to_owned(),
            decision: Decision::EndOldest,
            reply,
        };
        (pending, receiver)
    }

    /// Queues one decision per viewer, keeping the receivers alive.
    fn push_all(
        queue: &Queue,
        viewers: &[&str],
        receivers: &mut Vec<oneshot::Receiver<Result<Answer, StoreError>>>,
    ) {
        for viewer in viewers {
            let (p, r) = pending(viewer);
            receivers.push(r);
            queue.push(p);
        }
    }

    fn viewers(batch: &[Pending]) -> Vec<&str> {
        batch.iter().map(|p| p.viewer.as_str()).collect()
    }

    #[tokio::test]
    async fn a_batch_takes_waiting_decisions_in_arrival_order_up_to_its_size() {
        let queue = Queue::default();
        let mut receivers = Vec::new();
        push_all(&queue, &["a", "b", "a", "c"], &mut receivers);
        let first = queue.take(3).await.expect("open queue");
        assert_eq!(viewers(&first), ["a", "b", "a"]);
        // "c" is not held by the batch in flight, so it may go at once.
        let second = queue.take(3).await.expect("open queue");
        assert_eq!(viewers(&second), ["c"]);
    }

    #[tokio::test]
    async fn a_viewer_in_flight_waits_for_its_batch_and_keeps_its_order() {
        let queue = Queue::default();
        let mut receivers = Vec::new();
        push_all(&queue, &["a", "b"], &mut receivers);
        let first = queue.take(1).await.expect("open queue");
        assert_eq!(viewers(&first), ["a"]);
        push_all(&queue, &["a", "c"], &mut receivers);
        // The second "a" must wait for the first batch: only "b" and "c" go.
        let second = queue.take(8).await.expect("open queue");
        assert_eq!(viewers(&second), ["b", "c"]);
        queue.release(viewers(&first));
        let third = queue.take(8).await.expect("open queue");
        assert_eq!(viewers(&third), ["a"]);
    }

    #[tokio::test]
    async fn a_full_batch_leaves_the_rest_of_its_viewers_decisions_for_the_next() {
        let queue = Queue::default();
        let mut receivers = Vec::new();
        push_all(&queue, &["a", "b", "a"], &mut receivers);
        let first = queue.take(2).await.expect("open queue");
        assert_eq!(viewers(&first), ["a", "b"]);
        // The second "a" may not overtake the first in another batch.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), queue.take(8))
                .await
                .is_err()
        );
        queue.release(viewers(&first));
        assert_eq!(viewers(&queue.take(8).await.expect("open queue")), ["a"]);
    }

    #[tokio::test]
    async fn a_top_up_adds_later_decisions_of_the_batch_s_own_viewers_but_not_others_in_flight() {
        let queue = Queue::default();
        let mut receivers = Vec::new();
        push_all(&queue, &["a", "b"], &mut receivers);
        let mut first = queue.take(1).await.expect("open queue");
        let mut second = queue.take(1).await.expect("open queue");
        push_all(&queue, &["b", "a", "c"], &mut receivers);
        queue.top_up(&mut first, 8);
        assert_eq!(viewers(&first), ["a", "a", "c"]);
        queue.top_up(&mut second, 8);
        assert_eq!(viewers(&second), ["b", "b"]);
    }

    #[tokio::test]
    async fn by_shard_a_batch_holds_one_shard_and_the_others_wait_in_order() {
        // hashtext: user:1 829193487, user:9 1763903600 (shard 1);
        // user:42 -1579110294 (shard 0).
        let queue = Queue::by_shard(Arc::new(ShardMap::fixed(vec![i32::MIN, 0])));
        let mut receivers = Vec::new();
        push_all(
            &queue,
            &["user:1", "user:42", "user:9", "user:42"],
            &mut receivers,
        );
        let first = queue.take(8).await.expect("open queue");
        assert_eq!(viewers(&first), ["user:1", "user:9"]);
        let second = queue.take(8).await.expect("open queue");
        assert_eq!(viewers(&second), ["user:42", "user:42"]);
        queue.release(viewers(&first));
        push_all(&queue, &["user:42", "user:1"], &mut receivers);
        let mut third = Vec::new();
        // A top-up stays on the batch's shard.
        third.push(second.into_iter().next().expect("a decision"));
        queue.top_up(&mut third, 8);
        assert_eq!(viewers(&third), ["user:42", "user:42"]);
    }

    #[tokio::test]
    async fn decisions_whose_caller_left_are_dropped_and_close_answers_the_rest() {
        let queue = Queue::default();
        let (gone, receiver) = pending("a");
        drop(receiver);
        queue.push(gone);
        let (waiting, receiver) = pending("b");
        queue.push(waiting);
        let batch = queue.take(8).await.expect("open queue");
        assert_eq!(viewers(&batch), ["b"]);
        let (late, late_receiver) = pending("c");
        queue.push(late);
        queue.close();
        assert!(matches!(
            late_receiver.await,
            Ok(Err(StoreError::Unavailable(_)))
        ));
        assert!(queue.take(8).await.is_none());
        drop((batch, receiver));
    }
}
