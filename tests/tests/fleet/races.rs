//! Clients racing starts for the same viewers, on every start route, are
//! never admitted past the limit: by the answers, and by an audit of the
//! database's records.

use std::sync::Arc;

use reqwest::{Client, RequestBuilder, StatusCode};
use stream_limit_tests::audit::peak_concurrency;
use stream_limit_tests::fleet::{answer, Answer, Fleet, LIMIT};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use uuid::Uuid;

/// One racer's way of starting a stream for a numeric user.
#[derive(Clone, Copy, Debug)]
enum StartRoute {
    SeedPlain,
    SeedNamed,
    RestPlain,
    RestKeyed,
}

impl StartRoute {
    const ALL: [Self; 4] = [
        Self::SeedPlain,
        Self::SeedNamed,
        Self::RestPlain,
        Self::RestKeyed,
    ];

    /// The request; for named starts, with a fresh id.
    fn request(self, http: &Client, fleet: &Fleet, user: u64) -> RequestBuilder {
        let fresh = Uuid::new_v4();
        match self {
            Self::SeedPlain => http.get(fleet.lb(&format!("/api/startstream/{user}"))),
            Self::SeedNamed => {
                http.get(fleet.lb(&format!("/api/startstream/{user}?streamId={fresh}")))
            }
            Self::RestPlain => http.post(fleet.lb(&format!("/api/users/{user}/streams"))),
            Self::RestKeyed => http
                .post(fleet.lb(&format!("/api/users/{user}/streams")))
                .header("Idempotency-Key", fresh.to_string()),
        }
    }

    /// `Some(count)` when admitted, `None` when refused at the limit.
    fn verdict(self, answer: &Answer) -> Option<u64> {
        let body = answer.json();
        match self {
            Self::SeedPlain | Self::SeedNamed => {
                assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
                let status = &body["streamStatus"];
                let count = status["streamCount"].as_u64().expect("streamCount");
                match status["isNewStreamAllowed"].as_bool() {
                    Some(true) => Some(count),
                    Some(false) => {
                        assert_eq!(count, LIMIT as u64, "a refusal reports the limit");
                        None
                    }
                    None => panic!("no isNewStreamAllowed: {}", answer.body),
                }
            }
            Self::RestPlain | Self::RestKeyed => {
                let count = body["streamCount"].as_u64().expect("streamCount");
                match answer.status {
                    StatusCode::CREATED => Some(count),
                    StatusCode::CONFLICT => {
                        assert_eq!(count, LIMIT as u64, "a refusal reports the limit");
                        None
                    }
                    other => panic!("unexpected {other}: {}", answer.body),
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_clients_are_never_admitted_past_the_limit_through_the_load_balancer() {
    const USERS: u64 = 6;
    const RACERS: usize = 32;
    const ROUNDS: usize = 2;
    let fleet = Arc::new(Fleet::start().await);

    for round in 0..ROUNDS {
        // Every racer of every user fires at once, on every start route.
        let barrier = Arc::new(Barrier::new(USERS as usize * RACERS));
        let mut racers = JoinSet::new();
        for user in 0..USERS {
            for racer in 0..RACERS {
                let (fleet, barrier) = (fleet.clone(), barrier.clone());
                let route = StartRoute::ALL[racer % StartRoute::ALL.len()];
                racers.spawn(async move {
                    let request = route.request(&fleet.http, &fleet, user);
                    barrier.wait().await;
                    (user, route.verdict(&answer(request).await))
                });
            }
        }
        let mut admitted: Vec<Vec<u64>> = vec![Vec::new(); USERS as usize];
        while let Some(joined) = racers.join_next().await {
            let (user, verdict) = joined.expect("racer ran");
            admitted[user as usize].extend(verdict);
        }
        for (user, counts) in admitted.iter_mut().enumerate() {
            counts.sort_unstable();
            // Decisions for one viewer are serialised: counts 1, 2, 3, once each.
            assert_eq!(
                counts,
                &[1, 2, 3],
                "round {round}, user {user}: admitted with counts {counts:?}"
            );
        }
        // End everything (through the balancer) for the next round.
        for user in 0..USERS {
            for _ in 0..LIMIT {
                let ended =
                    answer(fleet.http.get(fleet.lb(&format!("/api/endstream/{user}")))).await;
                assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
            }
        }
    }

    // The gateway's route races the same way, keyed by Session-Id.
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut racers = JoinSet::new();
    for _ in 0..RACERS {
        let (fleet, barrier) = (fleet.clone(), barrier.clone());
        racers.spawn(async move {
            let request = fleet
                .http
                .get(fleet.lb("/watch"))
                .header("Session-Id", "raced-session");
            barrier.wait().await;
            let answer = answer(request).await;
            assert_eq!(
                answer.headers.get("session-id").map(|v| v.as_bytes()),
                Some(&b"raced-session"[..])
            );
            answer.status
        });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(status) = racers.join_next().await {
        match status.expect("racer ran") {
            StatusCode::OK => ok += 1,
            StatusCode::UNAUTHORIZED => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, refused), (LIMIT, RACERS - LIMIT));

    let viewers = (0..USERS)
        .map(|user| format!("user:{user}"))
        .chain(["session:raced-session".to_owned()]);
    fleet.assert_limit_held(viewers.clone()).await;
    for viewer in viewers {
        assert_eq!(
            peak_concurrency(&fleet.audit, &viewer).await,
            LIMIT,
            "{viewer} reached the limit"
        );
    }
}
