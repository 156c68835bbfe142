//! nginx: the published config passes `nginx -t` with either upstreams file,
//! both upstreams files agree, nginx's own error pages are JSON, nginx
//! replays exactly the requests that are safe to repeat (real nginx, fake
//! instances that hang up), and it answers malformed requests, sent as raw
//! bytes, with JSON before any instance sees them (fake instances that
//! answer): what actix-http would answer with an empty body.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Fake instances: every connection goes to `serve`, which records what it
/// received in `seen`.
struct Fakes {
    ports: Vec<u16>,
    seen: Arc<Mutex<Vec<String>>>,
}

/// How a fake instance handles one connection.
type Serve = fn(TcpStream, &Mutex<Vec<String>>);

impl Fakes {
    fn start(count: usize, serve: Serve) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut ports = Vec::new();
        for _ in 0..count {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake instance");
            ports.push(listener.local_addr().expect("local address").port());
            let seen = seen.clone();
            // Detached: blocked in accept() until the test process exits.
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    serve(stream, &seen);
                }
            });
        }
        Self { ports, seen }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().expect("not poisoned"))
    }
}

/// Reads one request: its head (request line and headers, lowercased, each
/// line ending in CRLF) and its `Content-Length` body. `None` when the
/// connection ends before the head does.
fn read_request(stream: &TcpStream) -> Option<(String, Vec<u8>)> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => head.push_str(&line.to_ascii_lowercase()),
        }
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let mut body = Vec::new();
    let _ = reader.take(length).read_to_end(&mut body);
    Some((head, body))
}

/// Records the request head, then drops the connection (what nginx sees
/// when an instance dies mid-request). The body is consumed first, so that
/// closing sends FIN rather than RST, and the head recorded before the
/// close, so the test never looks before it is there.
fn hang_up(stream: TcpStream, seen: &Mutex<Vec<String>>) {
    if let Some((head, _)) = read_request(&stream) {
        seen.lock().expect("not poisoned").push(head);
    }
}

/// The answer of [`answer`]: JSON, told apart from nginx's own pages.
const INSTANCE_ANSWER: &str = r#"{"msg":"answered by a fake instance"}"#;

fn instance_answer() -> Value {
    serde_json::from_str(INSTANCE_ANSWER).expect("JSON")
}

/// Records the request as it came (head, blank line, body), then answers
/// 200 [`INSTANCE_ANSWER`].
fn answer(mut stream: TcpStream, seen: &Mutex<Vec<String>>) {
    let Some((head, body)) = read_request(&stream) else {
        return;
    };
    let request = format!("{head}\r\n{}", String::from_utf8_lossy(&body));
    seen.lock().expect("not poisoned").push(request);
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{INSTANCE_ANSWER}",
        INSTANCE_ANSWER.len()
    );
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
    let fakes = Fakes::start(3, hang_up);
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

#[test]
fn every_error_page_of_nginx_is_a_json_page_with_its_own_status() {
    let site = read(nginx::SITE);
    let lines: Vec<&str> = site
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .collect();
    let mut mapped = Vec::new();
    for line in &lines {
        let Some(rest) = line.strip_prefix("error_page ") else {
            continue;
        };
        let words: Vec<&str> = rest.trim_end_matches(';').split_whitespace().collect();
        let (target, codes) = words.split_last().expect("error_page has a target");
        if target.starts_with('@') {
            continue; // not an error: the detour of unkeyed REST starts
        }
        let answered = codes.iter().find_map(|w| w.strip_prefix('='));
        // The `return` of the page's location, in the lines after its `location =`.
        let opening = format!("location = {target} {{");
        let at = lines
            .iter()
            .position(|l| *l == opening)
            .unwrap_or_else(|| panic!("`error_page {rest}`: no `{opening}`"));
        let ret = lines[at..]
            .iter()
            .find_map(|l| l.strip_prefix("return "))
            .unwrap_or_else(|| panic!("{target} returns nothing"));
        let (status, body) = ret.split_once(' ').expect("return <status> <body>");
        for code in codes.iter().filter(|w| !w.starts_with('=')) {
            let wanted = answered.unwrap_or(code);
            assert_eq!(status, wanted, "`error_page {rest}` answers {status}");
            mapped.push(code.parse::<u16>().expect("a status"));
        }
        let body = body.trim_end_matches(';').trim_matches('\'');
        let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert!(json["msg"].is_string(), "no msg in {body}");
    }
    // What nginx answers malformed requests with, before any instance sees them.
    for code in [400, 405, 413, 414, 494, 501, 505] {
        assert!(mapped.contains(&code), "no JSON page for nginx's {code}");
    }
}

/// An answer read off the wire: status, headers (names lowercased), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw);
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete head in {text:?}"));
        let head = String::from_utf8_lossy(&raw[..split]);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Self {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Panics unless this is `status` with a complete JSON body carrying a
    /// `msg` string, declared as JSON; returns the body.
    fn assert_json(&self, status: u16, what: &str) -> Value {
        let body = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status, status, "{what}: {body}");
        let content_type = self.header("content-type").unwrap_or("");
        assert!(
            content_type.starts_with("application/json"),
            "{what}: Content-Type {content_type:?}, body {body}"
        );
        assert_eq!(
            self.header("content-length"),
            Some(self.body.len().to_string().as_str()),
            "{what}: the whole body arrived"
        );
        let json: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
        assert!(json["msg"].is_string(), "{what}: no msg in {body}");
        json
    }
}

/// Sends `request` as raw bytes on a fresh connection to `port`, then reads
/// until nginx closes it or `limit` passes: (bytes, how the read ended, time
/// from the last byte sent).
fn exchange(
    port: u16,
    request: &[u8],
    limit: Duration,
) -> (Vec<u8>, std::io::Result<()>, Duration) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    // nginx may answer and stop reading before all of a refused request is in.
    let _ = stream.write_all(request);
    let sent = Instant::now();
    let mut answer = Vec::new();
    let ended = stream.read_to_end(&mut answer).map(drop);
    (answer, ended, sent.elapsed())
}

/// The published `client_header_timeout`, in whole seconds.
fn client_header_timeout(site: &str) -> Duration {
    let values: Vec<u64> = site
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter_map(|code| code.strip_prefix("client_header_timeout "))
        .map(|v| {
            v.trim_end_matches(';')
                .strip_suffix('s')
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("client_header_timeout {v} is not in whole seconds"))
        })
        .collect();
    assert_eq!(
        values.len(),
        1,
        "one client_header_timeout in {}",
        nginx::SITE
    );
    Duration::from_secs(values[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_answers_malformed_requests_with_json_before_any_instance_sees_them() {
    let fakes = Fakes::start(3, answer);
    let nginx = Nginx::start(&Ports::in_front_of(fakes.ports.clone())).await;
    let port = nginx.port();

    // A slow head: half a request line, then nothing. nginx never sends a
    // 408 for it: it closes the connection, without a byte, once
    // client_header_timeout has passed. Waited for alongside the other cases.
    let timeout = client_header_timeout(&read(nginx::SITE));
    assert!(
        timeout <= Duration::from_secs(10),
        "this test waits for client_header_timeout ({timeout:?}); keep it short"
    );
    let slow = tokio::task::spawn_blocking(move || {
        exchange(port, b"GET /api/startst", timeout + Duration::from_secs(3))
    });

    let huge_header = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9 * 1024));
    // (what, raw request, nginx's status). nginx answers each itself. An
    // instance alone answers the 400s and 505s here with actix-http's empty
    // 400; the others reach its app (JSON), and only a head of 128 KiB gets
    // its empty 431.
    let refused: &[(&str, &[u8], u16)] = &[
        (
            "a raw space in the path",
            b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        (
            "a control byte in the path",
            b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        (
            "HTTP/1.1 without Host",
            b"GET /health HTTP/1.1\r\n\r\n",
            400,
        ),
        (
            "HTTP/1.0 with Transfer-Encoding",
            b"POST /api/users/1/streams HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        ("a bad version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505),
        (
            "HTTP/2.0 in a request line",
            b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
            505,
        ),
        ("a 40 KB header", huge_header.as_bytes(), 431),
        ("a 9 KB request line", long_line.as_bytes(), 414),
        ("TRACE", b"TRACE /health HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (
            "an unknown Transfer-Encoding",
            b"POST /api/users/1/streams HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
        ),
    ];
    for (what, request, status) in refused {
        let (raw, _, _) = exchange(port, request, Duration::from_secs(5));
        let json = Answer::parse(&raw).assert_json(*status, what);
        assert_ne!(json, instance_answer(), "{what}: answered by an instance");
        let seen = fakes.take();
        assert!(seen.is_empty(), "{what} reached an instance: {seen:?}");
    }

    // HTTP/1.0 POST without Content-Length, with a body. actix-http refuses it
    // (400, empty body); nginx reads it as having no body (RFC 9112 6.3: no
    // length, no body), forwards it as HTTP/1.1, and drops the unframed bytes
    // when it closes the HTTP/1.0 connection. The answer is the instance's.
    let (raw, _, _) = exchange(
        port,
        b"POST /api/users/1/streams HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n\r\n{\"deviceId\":\"tv-1\"}",
        Duration::from_secs(5),
    );
    let json = Answer::parse(&raw).assert_json(200, "HTTP/1.0 POST without Content-Length");
    assert_eq!(
        json,
        instance_answer(),
        "the instance's answer passes through"
    );
    let seen = fakes.take();
    assert_eq!(seen.len(), 1, "sent once: {seen:?}");
    let (head, body) = seen[0].split_once("\r\n\r\n").expect("head, then body");
    assert!(
        head.starts_with("post /api/users/1/streams http/1.1\r\n"),
        "{head}"
    );
    assert!(
        !head.contains("transfer-encoding:")
            && head
                .lines()
                .filter_map(|l| l.strip_prefix("content-length:"))
                .all(|n| n.trim() == "0"),
        "forwarded with a body: {head}"
    );
    assert_eq!(body, "", "the unframed bytes never reach the instance");

    let (raw, ended, waited) = slow.await.expect("the slow client");
    assert!(
        raw.is_empty(),
        "a slow head got bytes: {:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(
        ended.is_ok(),
        "nginx kept a slow head open past {timeout:?} + 3 s: {ended:?}"
    );
    assert!(
        waited + Duration::from_millis(500) >= timeout,
        "closed after {waited:?}, before client_header_timeout ({timeout:?})"
    );
    let seen = fakes.take();
    assert!(seen.is_empty(), "a slow head reached an instance: {seen:?}");
}
