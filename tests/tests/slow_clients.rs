//! Clients that announce a body and never send it (a body slowloris) against
//! the real binary, with its descriptors capped so that exhaustion would show.
//!
//! Each slow client sends a REST start's head with `Content-Length: 100` and
//! one byte of body, then nothing. Before the body deadline existed, each such
//! connection stayed open for ever: a few thousand of them used up the
//! process's descriptors, and `/health` stopped answering for everyone.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::Value;
use stream_limit_tests::service::Service;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The process's descriptor limit during the test.
const FD_LIMIT: u32 = 256;
/// Slow clients per wave: one wave fits under the limit, two do not, so the
/// second wave exhausts the descriptors unless the first one was closed.
const WAVE: usize = 150;
/// The service's body deadline (`extract::BODY_TIMEOUT`) plus slack.
const ANSWER_WITHIN: Duration = Duration::from_secs(9);

/// Opens a connection and sends a head that promises 100 bytes of body, and 1.
async fn slow_client(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream
        .write_all(
            b"POST /api/users/1/streams HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .expect("send the head");
    stream
}

/// Everything the server sends until it closes, within `ANSWER_WITHIN`.
async fn answer(mut stream: TcpStream) -> Option<String> {
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(ANSWER_WITHIN, stream.read_to_end(&mut bytes)).await;
    match read {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        _ => None,
    }
}

async fn health_within(service: &Service, limit: Duration) -> bool {
    let started = Instant::now();
    let ok = Client::new()
        .get(service.url("/health"))
        .timeout(limit)
        .send()
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK);
    ok && started.elapsed() <= limit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_gets_408_and_its_connection_back() {
    let mut service = Service::spawn(&[]).await;
    let pid = service.pid().expect("running");
    let capped = std::process::Command::new("prlimit")
        .arg(format!("--nofile={FD_LIMIT}:{FD_LIMIT}"))
        .arg(format!("--pid={pid}"))
        .status()
        .expect("run prlimit (util-linux)");
    assert!(capped.success(), "prlimit caps the service's descriptors");

    // Wave 1: every slow client gets a JSON 408 and a closed connection.
    let mut wave = Vec::new();
    for _ in 0..WAVE {
        wave.push(slow_client(service.port()).await);
    }
    assert!(
        health_within(&service, Duration::from_secs(1)).await,
        "/health answers within a second beside {WAVE} slow clients"
    );
    let answers = futures_join(wave.into_iter().map(answer).collect()).await;
    for reply in &answers {
        let reply = reply.as_deref().expect("answered and closed in time");
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
        let body: Value = serde_json::from_str(reply.split("\r\n\r\n").nth(1).unwrap_or(""))
            .unwrap_or_else(|e| panic!("JSON body ({e}): {reply}"));
        assert_eq!(body["code"], "body_timeout", "{reply}");
    }

    // Wave 2 would not fit beside wave 1: it does only because wave 1 was
    // closed. With it pending, /health still answers, and SIGTERM does not
    // wait for the bodies longer than their deadline.
    let mut wave = Vec::new();
    for _ in 0..WAVE {
        wave.push(slow_client(service.port()).await);
    }
    assert!(
        health_within(&service, Duration::from_secs(1)).await,
        "/health answers within a second after {} slow clients in all",
        2 * WAVE
    );
    let started = Instant::now();
    let clean = tokio::task::spawn_blocking(move || service.terminate(ANSWER_WITHIN))
        .await
        .expect("task");
    assert!(clean, "SIGTERM exits cleanly with slow clients connected");
    assert!(started.elapsed() < ANSWER_WITHIN, "{:?}", started.elapsed());
    drop(wave);
}

/// Awaits every future, concurrently, in order.
async fn futures_join<T: Send + 'static>(
    futures: Vec<impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}
