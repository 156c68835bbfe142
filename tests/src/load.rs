//! Load through a [`Fleet`]: clients that know exactly what each answer must be.
//!
//! Load clients each own one viewer and keep an exact model of its leases, so
//! every answer is checked (the count after each start and end), and a lease
//! the fleet loses or invents is caught when the model is compared with the
//! fleet's list ([`check_reports`]). Every loop is bounded in count and time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::fleet::{answer, Fleet};

mod client;

use client::LoadClient;

/// How a load client starts, heartbeats and ends its streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `/api/startstream/{id}` without a stream id: nginx must not replay it.
    SeedPlain,
    /// `/api/startstream/{id}?streamId=`: replayed freely.
    SeedNamed,
    /// `POST /api/users/{id}/streams` without Idempotency-Key: not replayed.
    RestPlain,
    /// `POST /api/users/{id}/streams` with Idempotency-Key: replayed freely.
    RestKeyed,
    /// `/watch` with Session-Id (not replayed), heartbeats, `DELETE`.
    Watch,
}

impl Style {
    /// Every style, in the order [`Load::start`] numbers their users.
    pub const ALL: [Self; 5] = [
        Self::SeedPlain,
        Self::SeedNamed,
        Self::RestPlain,
        Self::RestKeyed,
        Self::Watch,
    ];

    /// Whether its start is one nginx must not send twice.
    pub fn start_is_unsafe(self) -> bool {
        matches!(self, Self::SeedPlain | Self::RestPlain | Self::Watch)
    }
}

/// What a call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Started a stream.
    Start,
    /// Heartbeated the oldest stream (the [`Style::Watch`] clients).
    Heartbeat,
    /// Ended the oldest stream.
    End,
    /// Listed the viewer's streams (after a failed call).
    List,
}

/// Why a call did not get the answer it had to get.
#[derive(Debug)]
pub enum Failure {
    /// A transport error or 502/503/504: the client may retry.
    Retryable(String),
    /// Anything else: a bug.
    Wrong(String),
}

/// One call a load client made.
#[derive(Debug)]
pub struct Call {
    /// What it did.
    pub op: Op,
    /// When it was sent.
    pub sent: Instant,
    /// When its answer (or failure) came back.
    pub done: Instant,
    /// Why it failed, if it did.
    pub failure: Option<Failure>,
}

/// What a load client leaves behind.
pub struct Report {
    /// How it called the fleet.
    pub style: Style,
    /// The viewer it played (`user:N` or `session:S`).
    pub viewer: String,
    /// Its user id (the viewer of every style but [`Style::Watch`]).
    pub user: u64,
    /// Its Session-Id (the viewer of [`Style::Watch`]).
    pub session: String,
    /// The stream ids it believes active at the end, oldest first.
    pub active: Vec<String>,
    /// Every call it made, in order.
    pub calls: Vec<Call>,
    /// Leases the fleet holds that the client learned of only by listing
    /// (a start that failed in flight but was admitted).
    pub orphans: usize,
    /// Inconsistencies found when comparing the model with the fleet.
    pub lost: Vec<String>,
}

/// Load clients of every style, each with its own viewer.
pub struct Load {
    stop: Arc<AtomicBool>,
    clients: JoinSet<Report>,
    /// When the clients stop by themselves.
    pub deadline: Instant,
}

impl Load {
    /// Starts `per_style` clients of each [`Style`], users numbered from `first_user`.
    pub fn start(fleet: &Fleet, per_style: usize, first_user: u64, longest: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + longest;
        let mut clients = JoinSet::new();
        let mut user = first_user;
        for style in Style::ALL {
            for _ in 0..per_style {
                let client = LoadClient::new(fleet.http.clone(), fleet.lb(""), style, user);
                clients.spawn(client.run(stop.clone(), deadline));
                user += 1;
            }
        }
        Self {
            stop,
            clients,
            deadline,
        }
    }

    /// Stops the clients and collects what they saw.
    pub async fn finish(mut self) -> Vec<Report> {
        self.stop.store(true, Ordering::Relaxed);
        let mut reports = Vec::new();
        while let Some(report) = self.clients.join_next().await {
            reports.push(report.expect("load client ran"));
        }
        reports
    }
}

/// Checks what every load client saw, with `allowed` deciding which failed
/// calls are acceptable; then compares each model with the fleet's list and
/// audits the limit. Returns `(calls, failed)`: how many calls the clients
/// made, and how many of them failed retryably.
pub async fn check_reports(
    fleet: &Fleet,
    reports: &[Report],
    allowed: impl Fn(&Report, &Call) -> Result<(), String>,
) -> (usize, usize) {
    let mut problems = Vec::new();
    let (mut calls, mut failed) = (0, 0);
    for report in reports {
        problems.extend(report.lost.iter().cloned());
        for call in &report.calls {
            calls += 1;
            match &call.failure {
                None => {}
                Some(Failure::Wrong(why)) => {
                    problems.push(format!("{} {:?}: {why}", report.viewer, call.op));
                }
                Some(Failure::Retryable(why)) => {
                    failed += 1;
                    if let Err(rule) = allowed(report, call) {
                        problems.push(format!(
                            "{} {:?} ({:?}): {why}: {rule}",
                            report.viewer, report.style, call.op
                        ));
                    }
                }
            }
        }
        assert!(
            report.calls.len() >= 10,
            "{} made only {} calls",
            report.viewer,
            report.calls.len()
        );
        // Nothing admitted is lost, nothing unknown appears: the fleet lists
        // exactly the leases the client believes it holds.
        let path = match report.style {
            Style::Watch => "/watch/streams".to_owned(),
            _ => format!("/api/users/{}/streams", report.user),
        };
        let listed = answer(
            fleet
                .http
                .get(fleet.lb(&path))
                .header("Session-Id", &report.session),
        )
        .await;
        let body = listed.json();
        let ids: Vec<&str> = body["activeStreams"]
            .as_array()
            .map(|a| a.iter().filter_map(|l| l["streamId"].as_str()).collect())
            .unwrap_or_default();
        if ids != report.active {
            problems.push(format!(
                "{}: the fleet lists {ids:?}, the client holds {:?}",
                report.viewer, report.active
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems in {calls} calls:\n{}\n{}",
        problems.len(),
        problems.join("\n"),
        fleet.nginx.logs()
    );
    fleet
        .assert_limit_held(reports.iter().map(|r| r.viewer.clone()))
        .await;
    (calls, failed)
}
