//! Generators of raw bytes, written as they are to a fresh connection.

use std::fmt::Write as _;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::probes::RawProbe;
use super::requests::{fixed, one_of, query, route, start_json, text};

pub(super) fn raw_probe() -> BoxedStrategy<RawProbe> {
    let request = raw_request();
    one_of(vec![
        (5, request.clone()),
        (
            2,
            (request.clone(), any::<Index>())
                .prop_map(|(mut bytes, at)| {
                    let keep = at.index(bytes.len());
                    bytes.truncate(keep);
                    bytes
                })
                .boxed(),
        ),
        (
            1,
            (request.clone(), request)
                .prop_map(|(a, b)| [a, b].concat())
                .boxed(),
        ),
        (1, vec(any::<u8>(), 1..600).boxed()),
        (1, raw_chunked()),
        (1, raw_oversize()),
    ])
    .prop_map(RawProbe)
    .boxed()
}

/// A request head (and maybe body) with hostile parts.
fn raw_request() -> BoxedStrategy<Vec<u8>> {
    let method = one_of(vec![
        (
            5,
            fixed(&["GET", "POST", "DELETE", "HEAD", "PUT", "OPTIONS"]),
        ),
        (
            1,
            fixed(&[
                "get", "G\u{0}T", "", "GET GET", "\u{1}", "TRACE", "CONNECT", "PRI", "GÉT",
            ]),
        ),
    ]);
    let version = one_of(vec![
        (5, fixed(&["HTTP/1.1"])),
        (1, fixed(&["HTTP/1.0"])),
        (
            2,
            fixed(&[
                "HTTP/2.0",
                "HTTP/0.9",
                "HTTP/1.2",
                "HTTP/9.9",
                "http/1.1",
                "HTTP/1.1 x",
                "HTTP/1",
                "HTTP/",
                "HTTX/1.1",
                "",
                "HTTP/1.1\u{0}",
                "HTTP/1.01",
                "HTTP/11",
            ]),
        ),
    ]);
    let eol = one_of(vec![
        (6, fixed(&["\r\n"])),
        (1, fixed(&["\n", "\r", "\n\r"])),
    ]);
    let body = one_of(vec![
        (3, Just(Vec::new()).boxed()),
        (1, chunked_body()),
        (1, vec(any::<u8>(), 0..200).boxed()),
        (
            1,
            start_json()
                .prop_map(|v| v.to_string().into_bytes())
                .boxed(),
        ),
    ]);
    (
        method,
        raw_target(),
        version,
        eol,
        vec(raw_header_line(), 0..6),
        body,
    )
        .prop_map(|(method, target, version, eol, headers, body)| {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(method.as_bytes());
            bytes.push(b' ');
            bytes.extend_from_slice(&target);
            bytes.push(b' ');
            bytes.extend_from_slice(version.as_bytes());
            bytes.extend_from_slice(eol.as_bytes());
            bytes.extend_from_slice(b"Host: 127.0.0.1");
            bytes.extend_from_slice(eol.as_bytes());
            for header in headers {
                bytes.extend_from_slice(&header);
                bytes.extend_from_slice(eol.as_bytes());
            }
            bytes.extend_from_slice(eol.as_bytes());
            bytes.extend_from_slice(&body);
            bytes
        })
        .boxed()
}

/// A request target: a real route, or one with bytes no URL may hold.
fn raw_target() -> BoxedStrategy<Vec<u8>> {
    one_of(vec![
        (
            4,
            (route(), query())
                .prop_map(|((path, _), query)| format!("{path}{query}").into_bytes())
                .boxed(),
        ),
        (
            2,
            (
                fixed(&[
                    "/api/startstream/",
                    "/watch/streams/",
                    "/api/users/1/streams/",
                    "/",
                ]),
                vec(any::<u8>(), 1..40),
            )
                .prop_map(|(prefix, tail)| [prefix.as_bytes(), &tail].concat())
                .boxed(),
        ),
        (
            2,
            fixed(&[
                "/../../etc/passwd",
                "/watch/../health",
                "/api/startstream/../endstream/1",
                "/api/startstream/1 2",
                "/api/startstream/\u{0}",
                "/watch\t",
                "//",
                "*",
                "http://127.0.0.1/health",
                "http://[::1/health",
                "",
                "/%",
                "/%00",
                "/api/startstream/%FF",
                "/api/startstream/é",
                "/health?%",
                "/health#frag",
                "\\health",
                "/health\r\nX-Injected: 1",
            ])
            .prop_map(String::into_bytes)
            .boxed(),
        ),
        (
            1,
            text(1..30)
                .prop_map(|t| format!("/api/startstream/{t}").into_bytes())
                .boxed(),
        ),
        (
            1,
            (1usize..20_000)
                .prop_map(|n| format!("/{}", "a".repeat(n)).into_bytes())
                .boxed(),
        ),
    ])
}

fn raw_header_line() -> BoxedStrategy<Vec<u8>> {
    one_of(vec![
        (
            3,
            fixed(&[
                "Content-Length: -1",
                "Content-Length: 18446744073709551616",
                "Content-Length: abc",
                "Content-Length: 5",
                "Content-Length: 0",
                "Content-Length: 1, 2",
                "Content-Length: 3\r\nContent-Length: 4",
                "Content-Length: +3",
                "Transfer-Encoding: chunked",
                "Transfer-Encoding: gzip",
                "Transfer-Encoding: chunked, identity",
                "Transfer-Encoding: chunked\r\nContent-Length: 3",
                "Transfer-Encoding: xchunked",
                "Connection: upgrade\r\nUpgrade: websocket",
                "Connection: close",
                "Expect: 100-continue",
                "Expect: nonsense",
                " Leading: space",
                "NoColon",
                ": no-name",
                "Bad Name: x",
                "X-Fold: a\r\n folded",
                "Session-Id: a\u{0}b",
                "Session-Id:",
                "Session-Id: s-1\r\nSession-Id: s-2",
                "Idempotency-Key: \u{1}",
                "Content-Type: application/json",
                "Host: ",
                "Host: a\r\nHost: b",
            ])
            .prop_map(String::into_bytes)
            .boxed(),
        ),
        (
            2,
            (
                fixed(&["Session-Id", "Idempotency-Key", "Content-Type", "X-Any"]),
                vec(any::<u8>(), 0..150),
            )
                .prop_map(|(name, value)| [name.as_bytes(), b": ", &value].concat())
                .boxed(),
        ),
        (1, vec(any::<u8>(), 0..60).boxed()),
    ])
}

fn chunked_body() -> BoxedStrategy<Vec<u8>> {
    fixed(&[
        "zz\r\nhello\r\n0\r\n\r\n",
        "-1\r\nx\r\n0\r\n\r\n",
        "ffffffffffffffffffff\r\nabc\r\n",
        "7fffffffffffffff\r\nabc\r\n0\r\n\r\n",
        "5\r\nhello\r\n",
        "5\r\nhel",
        "3\r\nhello\r\n0\r\n\r\n",
        "5;x=\"\r\nhello\r\n0\r\n\r\n",
        "0\r\nTrailer: \u{0}\r\n\r\n",
        "5\nhello\n0\n\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        " 5\r\nhello\r\n0\r\n\r\n",
        "5 \r\nhello\r\n0\r\n\r\n",
        "2\r\n{}\r\n0\r\n\r\n",
        "\r\n\r\n",
        "0\r\n",
    ])
    .prop_map(String::into_bytes)
    .boxed()
}

/// A chunked POST to a start route, its chunks broken or its sizes absurd.
fn raw_chunked() -> BoxedStrategy<Vec<u8>> {
    (
        fixed(&[
            "/api/users/3/streams",
            "/api/users/x/streams",
            "/watch",
            "/health",
        ]),
        chunked_body(),
        proptest::option::of(fixed(&["Content-Length: 5", "Content-Length: 100000"])),
    )
        .prop_map(|(path, body, length)| {
            let mut head = format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nSession-Id: s-chunked\r\n\
                 Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            );
            if let Some(length) = length {
                head.push_str(&length);
                head.push_str("\r\n");
            }
            head.push_str("\r\n");
            [head.into_bytes(), body].concat()
        })
        .boxed()
}

/// Heads past actix's limits: too many headers, a huge header, a huge line.
fn raw_oversize() -> BoxedStrategy<Vec<u8>> {
    one_of(vec![
        (
            1,
            (90usize..200)
                .prop_map(|n| {
                    let mut head = String::from("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
                    for i in 0..n {
                        let _ = write!(head, "X-H{i}: v\r\n");
                    }
                    head.push_str("\r\n");
                    head.into_bytes()
                })
                .boxed(),
        ),
        (
            1,
            (30_000usize..140_000)
                .prop_map(|n| {
                    format!(
                        "GET /watch HTTP/1.1\r\nHost: 127.0.0.1\r\nSession-Id: {}\r\n\r\n",
                        "s".repeat(n)
                    )
                    .into_bytes()
                })
                .boxed(),
        ),
        (
            1,
            (30_000usize..140_000)
                .prop_map(|n| {
                    format!(
                        "GET /api/startstream/1?deviceId={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                        "d".repeat(n)
                    )
                    .into_bytes()
                })
                .boxed(),
        ),
    ])
}
