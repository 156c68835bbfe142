//! Requests too malformed to route are counted, not logged one by one: a
//! flood of garbage once wrote one ERROR line per request and could page
//! whoever alerts on errors.

use std::time::{Duration, Instant};

use stream_limit_tests::service::Service;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GARBAGE: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_counted_and_summed_up_in_one_warning() {
    let service = Service::spawn(&[]).await;
    for n in 0..GARBAGE {
        let mut stream = TcpStream::connect(("127.0.0.1", service.port()))
            .await
            .expect("connect");
        let request = if n % 2 == 0 {
            "GET /a b HTTP/1.1\r\n\r\n"
        } else {
            "GET / HTTP/9.9\r\n\r\n"
        };
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut reply)).await;
        assert!(
            reply.starts_with(b"HTTP/1.1 400"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
    }
    let metrics = reqwest::get(service.url("/metrics"))
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(&format!(
            "stream_limit_http_dispatcher_errors_total {GARBAGE}"
        )),
        "{metrics}"
    );
    // One summary line within the report interval (10 s), and no line per request.
    let deadline = Instant::now() + Duration::from_secs(15);
    let summary = loop {
        let log = plain(&service.log_text());
        if let Some(line) = log.lines().find(|l| l.contains("HTTP dispatcher errors")) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no summary line in:\n{log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(summary.contains(&format!("count={GARBAGE}")), "{summary}");
    let log = service.log_text();
    assert!(
        !log.contains("ERROR"),
        "no ERROR line for malformed requests:\n{log}"
    );
    assert_eq!(log.matches("HTTP dispatcher errors").count(), 1, "{log}");
}

/// The log without its terminal colour codes (`ESC [ … m`).
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}
