//! One load client: one viewer, its exact model of the viewer's leases, and
//! every call it made. The calls themselves are in [`calls`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, Method, RequestBuilder};

use super::{Call, Failure, Op, Report, Style};
use crate::fleet::LIMIT;

mod calls;

/// Most calls one load client makes, whatever the clock says.
const MAX_CALLS_PER_CLIENT: usize = 20_000;

/// One load client: one viewer, its exact model, everything it saw.
pub(super) struct LoadClient {
    http: Client,
    lb: String,
    style: Style,
    user: u64,
    session: String,
    /// The viewer's active streams, oldest first, as the client knows them.
    active: Vec<String>,
    calls: Vec<Call>,
    /// Leases the fleet holds that the client learned of only by listing
    /// (a start that failed in flight but was admitted).
    orphans: usize,
    /// Inconsistencies found when comparing the model with the fleet.
    lost: Vec<String>,
}

impl LoadClient {
    pub(super) fn new(http: Client, lb: String, style: Style, user: u64) -> Self {
        Self {
            http,
            lb,
            style,
            user,
            session: format!("fleet-session-{user}"),
            active: Vec::new(),
            calls: Vec::new(),
            orphans: 0,
            lost: Vec::new(),
        }
    }

    fn viewer(&self) -> String {
        match self.style {
            Style::Watch => format!("session:{}", self.session),
            _ => format!("user:{}", self.user),
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.lb));
        match self.style {
            Style::Watch => request.header("Session-Id", &self.session),
            _ => request,
        }
    }

    /// Starts, heartbeats and ends streams (never more than [`LIMIT`]) until
    /// `stop`, `deadline` or [`MAX_CALLS_PER_CLIENT`].
    pub(super) async fn run(mut self, stop: Arc<AtomicBool>, deadline: Instant) -> Report {
        while !stop.load(Ordering::Relaxed)
            && Instant::now() < deadline
            && self.calls.len() < MAX_CALLS_PER_CLIENT
        {
            if self.active.len() < LIMIT {
                if let Some(id) = self.timed(Op::Start, Self::start).await {
                    self.active.push(id);
                }
            } else {
                if self.style == Style::Watch {
                    self.timed(Op::Heartbeat, Self::heartbeat).await;
                }
                if self.timed(Op::End, Self::end).await.is_some() {
                    self.active.remove(0);
                }
            }
        }
        let viewer = self.viewer();
        Report {
            style: self.style,
            viewer,
            user: self.user,
            session: self.session,
            active: self.active,
            calls: self.calls,
            orphans: self.orphans,
            lost: self.lost,
        }
    }

    /// Runs one call, records it, and after a failure re-learns the fleet's
    /// view of the viewer (checking that nothing was lost).
    async fn timed<T, F>(&mut self, op: Op, call: F) -> Option<T>
    where
        F: for<'a> AsyncCall<'a, T>,
    {
        let sent = Instant::now();
        let result = call.call(self).await;
        let done = Instant::now();
        match result {
            Ok(value) => {
                self.calls.push(Call {
                    op,
                    sent,
                    done,
                    failure: None,
                });
                Some(value)
            }
            Err(failure) => {
                self.calls.push(Call {
                    op,
                    sent,
                    done,
                    failure: Some(failure),
                });
                self.resync(op).await;
                None
            }
        }
    }

    /// Lists the viewer's streams and adopts that list, after checking it
    /// against the model: every lease the client holds must still be there
    /// (except the one a failed end may have ended), and at most one unknown
    /// lease may appear, only after a failed start.
    async fn resync(&mut self, failed: Op) {
        let mut listed = None;
        for _ in 0..10 {
            let sent = Instant::now();
            let result = self.list().await;
            let failure = result
                .as_ref()
                .err()
                .map(|f| Failure::Retryable(format!("{f:?}")));
            self.calls.push(Call {
                op: Op::List,
                sent,
                done: Instant::now(),
                failure,
            });
            if let Ok(ids) = result {
                listed = Some(ids);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let Some(listed) = listed else {
            self.lost.push(format!(
                "{}: could not list after a failed {failed:?}",
                self.viewer()
            ));
            return;
        };
        let maybe_ended = (failed == Op::End).then(|| self.active[0].clone());
        for id in &self.active {
            if Some(id) != maybe_ended.as_ref() && !listed.contains(id) {
                self.lost
                    .push(format!("{}: lease {id} was lost", self.viewer()));
            }
        }
        let unknown = listed.iter().filter(|id| !self.active.contains(id)).count();
        if unknown > usize::from(failed == Op::Start) {
            self.lost.push(format!(
                "{}: {unknown} unknown leases after a failed {failed:?}: {listed:?} vs {:?}",
                self.viewer(),
                self.active
            ));
        }
        self.orphans += unknown;
        self.active = listed;
    }
}

/// An async method of [`LoadClient`] taking `&mut self` (a named trait, since
/// closures cannot yet return futures that borrow their argument).
trait AsyncCall<'a, T> {
    type Future: std::future::Future<Output = Result<T, Failure>> + 'a;
    fn call(self, client: &'a mut LoadClient) -> Self::Future;
}

impl<'a, T, F, Fut> AsyncCall<'a, T> for F
where
    F: FnOnce(&'a mut LoadClient) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>> + 'a,
{
    type Future = Fut;
    fn call(self, client: &'a mut LoadClient) -> Fut {
        self(client)
    }
}
