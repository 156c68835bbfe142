//! nginx: the published config passes `nginx -t` with either upstreams file,
//! both upstreams files agree, nginx's own error pages are JSON, and nginx
//! replays exactly the requests that are safe to repeat (real nginx, fake
//! instances that hang up).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use stream_limit_tests::nginx::{self, Nginx, Ports, Prefix};
use stream_limit_tests::service;

use crate::files::read;

#[test]
fn nginx_accepts_the_published_config_with_either_upstreams_file() {
    let ports = Ports::in_front_of((0..3).map(|_| service::free_port()).collect());
    let local = nginx::render(&ports);
    Prefix::new(&local)
        .test()
        .unwrap_or_else(|e| panic!("nginx -t refuses {}:\n{e}", nginx::SITE));

    // The compose variant names Docker's DNS; point it at loopback, and drop
    // `resolve` on an nginx older than 1.27.3 (the compose file pins 1.28).
    let mut compose = read(nginx::UPSTREAMS_COMPOSE).replace("app:8080", "127.0.0.1:8080");
    if nginx::version() < (1, 27, 3) {
        compose = compose.replace(" resolve ", " ");
    }
    let config = nginx::Config {
        site: local.site.clone(),
        upstreams: compose,
    };
    Prefix::new(&config)
        .test()
        .unwrap_or_else(|e| panic!("nginx -t refuses {}:\n{e}", nginx::UPSTREAMS_COMPOSE));
}

#[test]
fn both_upstreams_files_define_the_same_groups_with_the_same_failure_checks() {
    let groups = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|line| line.trim().strip_prefix("upstream "))
            .map(|rest| rest.trim_end_matches('{').trim().to_owned())
            .collect()
    };
    let local = read(nginx::UPSTREAMS);
    let compose = read(nginx::UPSTREAMS_COMPOSE);
    assert_eq!(groups(&local), groups(&compose));
    assert_eq!(
        groups(&local),
        BTreeSet::from(["stream_limit".to_owned(), "stream_limit_once".to_owned()])
    );
    assert_eq!(nginx::fail_timeout(&local), nginx::fail_timeout(&compose));
    for text in [&local, &compose] {
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("server "))
        {
            assert!(
                line.contains("max_fails="),
                "passive checks on every server: {line}"
            );
        }
    }
}

#[test]
fn nginx_error_pages_are_json_with_a_msg() {
    let site = read(nginx::SITE);
    let mut pages = 0;
    for line in site.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("return ") else {
            continue;
        };
        let Some((code, body)) = rest.split_once(' ') else {
            continue;
        };
        let body = body.trim_end_matches(';').trim_matches('\'');
        let json: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("`return {code}` body is not JSON ({e}): {body}"));
        assert!(json["msg"].is_string(), "no msg in {body}");
        pages += 1;
    }
    assert!(
        pages >= 8,
        "expected nginx's own 4xx/5xx pages, found {pages}"
    );
}

/// Fake instances that record each request they receive, then hang up
/// without answering: what nginx sees when an instance dies mid-request.
struct HangUps {
    ports: Vec<u16>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl HangUps {
    fn start(count: usize) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut ports = Vec::new();
        for _ in 0..count {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake instance");
            ports.push(listener.local_addr().expect("local address").port());
            let seen = seen.clone();
            // Detached: blocked in accept() until the test process exits.
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    hang_up(stream, &seen);
                }
            });
        }
        Self { ports, seen }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().expect("not poisoned"))
    }
}

/// Records the request line and headers (lowercased), then drops the
/// connection: recorded first, so the test never looks before it is there.
fn hang_up(stream: TcpStream, seen: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => head.push_str(&line.to_ascii_lowercase()),
        }
    }
    // Consume a body, so that closing sends FIN rather than RST.
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let _ = std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink());
    seen.lock().expect("not poisoned").push(head);
}

/// One request to nginx: method, path, extra header.
async fn through(nginx: &Nginx, method: &str, path: &str, header: Option<(&str, &str)>) -> u16 {
    let client = reqwest::Client::new();
    let mut request = client.request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        nginx.url(path),
    );
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    if method == "POST" {
        request = request
            .header("Content-Type", "application/json")
            .body("{}");
    }
    let response = request.send().await.expect("nginx answers");
    let status = response.status().as_u16();
    if method != "HEAD" {
        let body: Value = response.json().await.expect("nginx answers JSON");
        assert!(body["msg"].is_string(), "{body}");
    }
    status
}

/// A request through nginx: method, path, one header, and how many fake
/// instances it must reach (3: replayed on each; 1: sent once).
type Case<'a> = (&'a str, String, Option<(&'a str, &'a str)>, usize);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_replays_only_requests_that_are_safe_to_repeat() {
    let fakes = HangUps::start(3);
    let id = "7a0c9a52-6b9e-4b4e-9d57-3a1f0f8c2b11";
    let key = ("Idempotency-Key", "k-1");
    let session = ("Session-Id", "gw-1");
    // (method, path, header, how many instances must receive it)
    let cases: &[Case<'_>] = &[
        ("GET", "/api/startstream/1".into(), None, 1),
        ("HEAD", "/api/startstream/1".into(), None, 1),
        ("GET", format!("/api/startstream/1?streamId={id}"), None, 3),
        ("GET", "/api/startstream/1".into(), Some(key), 3),
        ("GET", "/api/endstream/1".into(), None, 1),
        ("GET", "/api/endstream/1".into(), Some(key), 1),
        ("GET", format!("/api/endstream/1?streamId={id}"), None, 3),
        ("GET", "/watch".into(), Some(session), 1),
        ("GET", format!("/watch?streamId={id}"), Some(session), 3),
        ("GET", "/watch/streams".into(), Some(session), 3),
        (
            "POST",
            format!("/watch/streams/{id}/heartbeat"),
            Some(session),
            3,
        ),
        ("DELETE", format!("/watch/streams/{id}"), Some(session), 3),
        ("POST", "/api/users/1/streams".into(), None, 1),
        ("POST", "/api/users/1/streams".into(), Some(key), 3),
        ("GET", "/api/users/1/streams".into(), None, 3),
        (
            "POST",
            format!("/api/users/1/streams/{id}/heartbeat"),
            None,
            3,
        ),
        ("DELETE", format!("/api/users/1/streams/{id}"), None, 3),
        ("GET", "/health".into(), None, 3),
        ("POST", "/api/startstream/1".into(), None, 1),
    ];
    for (method, path, header, expected) in cases {
        // A fresh nginx per case: the failures of one case must not mark the
        // fake instances down for the next.
        let nginx = Nginx::start(&Ports::in_front_of(fakes.ports.clone())).await;
        let status = through(&nginx, method, path, *header).await;
        assert_eq!(status, 502, "{method} {path}");
        let seen = fakes.take();
        assert_eq!(
            seen.len(),
            *expected,
            "{method} {path} {header:?} reached {} instances:\n{seen:?}\n{}",
            seen.len(),
            nginx.logs()
        );
        for head in &seen {
            // The detour of unsafe GETs (sent on as POST) restores the method.
            let expected_line =
                format!("{} {path} ", if *method == "HEAD" { "get" } else { method })
                    .to_ascii_lowercase();
            assert!(
                head.starts_with(&expected_line),
                "{method} {path} arrived as {head}"
            );
            if let Some((name, value)) = header {
                let wanted = format!(
                    "{}: {}",
                    name.to_ascii_lowercase(),
                    value.to_ascii_lowercase()
                );
                assert!(
                    head.contains(&wanted),
                    "{name} did not pass through: {head}"
                );
            }
        }
    }
}
