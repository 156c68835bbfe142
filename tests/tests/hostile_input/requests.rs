//! Generators of well-formed requests (sent with reqwest), and the helpers
//! the raw generators share.

use std::fmt::{self, Write as _};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::Union;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::probes::{Body, HttpProbe};
use super::MAX_BODY_BYTES;

/// Stream ids shared by all cases, so starts, heartbeats and ends meet.
const STREAM_POOL: u128 = 0x5eed_0000_0000_4000_8000_0000_0000_0000;
/// Session ids shared by all cases, so some sessions reach their limit.
const SESSION_POOL: &[&str] = &["s-1", "s-2", "s-3", "gateway:viewer/42"];
/// A weighted choice between boxed strategies of one type.
pub(super) fn one_of<T: fmt::Debug + 'static>(
    arms: Vec<(u32, BoxedStrategy<T>)>,
) -> BoxedStrategy<T> {
    Union::new_weighted(arms).boxed()
}

pub(super) fn fixed(texts: &'static [&'static str]) -> BoxedStrategy<String> {
    select(texts).prop_map(str::to_owned).boxed()
}

/// Every byte but the unreserved ones as `%XX`.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `%XX` decoded (lossy), for the internal-word filter.
pub(super) fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn http_probe() -> BoxedStrategy<HttpProbe> {
    let method = one_of(vec![
        (6, Just(None).boxed()),
        (
            4,
            select(
                &[
                    "GET", "POST", "DELETE", "PUT", "HEAD", "PATCH", "OPTIONS", "PROPFIND",
                    "X-CUSTOM",
                ][..],
            )
            .prop_map(|m| Some(Method::from_bytes(m.as_bytes()).expect("a valid method token")))
            .boxed(),
        ),
    ]);
    (route(), path_suffix(), query(), method, headers(), body())
        .prop_map(
            |((path, natural), suffix, query, method, headers, body)| HttpProbe {
                method: method.unwrap_or(natural),
                target: format!("{path}{suffix}{query}"),
                headers,
                body,
            },
        )
        .boxed()
}

/// A path in URL form and the method its route answers.
pub(super) fn route() -> BoxedStrategy<(String, Method)> {
    let at = |method: Method, path: &'static str| Just((path.to_owned(), method)).boxed();
    one_of(vec![
        (1, at(Method::GET, "/health")),
        (1, at(Method::GET, "/health/ready")),
        (1, at(Method::GET, "/metrics")),
        (1, at(Method::GET, "/api")),
        (1, at(Method::GET, "/")),
        (
            6,
            user_segment()
                .prop_map(|u| (format!("/api/startstream/{u}"), Method::GET))
                .boxed(),
        ),
        (
            4,
            user_segment()
                .prop_map(|u| (format!("/api/endstream/{u}"), Method::GET))
                .boxed(),
        ),
        (5, at(Method::GET, "/watch")),
        (2, at(Method::GET, "/watch/streams")),
        (
            3,
            stream_segment()
                .prop_map(|s| (format!("/watch/streams/{s}/heartbeat"), Method::POST))
                .boxed(),
        ),
        (
            2,
            stream_segment()
                .prop_map(|s| (format!("/watch/streams/{s}"), Method::DELETE))
                .boxed(),
        ),
        (
            6,
            user_segment()
                .prop_map(|u| (format!("/api/users/{u}/streams"), Method::POST))
                .boxed(),
        ),
        (
            2,
            user_segment()
                .prop_map(|u| (format!("/api/users/{u}/streams"), Method::GET))
                .boxed(),
        ),
        (
            3,
            (user_segment(), stream_segment())
                .prop_map(|(u, s)| {
                    (
                        format!("/api/users/{u}/streams/{s}/heartbeat"),
                        Method::POST,
                    )
                })
                .boxed(),
        ),
        (
            2,
            (user_segment(), stream_segment())
                .prop_map(|(u, s)| (format!("/api/users/{u}/streams/{s}"), Method::DELETE))
                .boxed(),
        ),
        (
            3,
            vec(segment(), 1..5)
                .prop_map(|segments| (format!("/{}", segments.join("/")), Method::GET))
                .boxed(),
        ),
        (
            1,
            (
                fixed(&["/api", "/watch", "/health", "/api/users"]),
                vec(segment(), 1..3),
            )
                .prop_map(|(root, s)| (format!("{root}/{}", s.join("/")), Method::GET))
                .boxed(),
        ),
    ])
}

fn path_suffix() -> BoxedStrategy<String> {
    one_of(vec![
        (12, Just(String::new()).boxed()),
        (
            1,
            fixed(&[
                "/", "//", "/x", "/..", "/.", "/%2e%2e", "/%00", ";x", "%20", "%FF",
            ]),
        ),
    ])
}

/// A `{user_id}`: mostly a small real one, so leases pile up.
fn user_segment() -> BoxedStrategy<String> {
    one_of(vec![
        (6, (0u64..3).prop_map(|n| n.to_string()).boxed()),
        (5, segment()),
    ])
}

/// A `{stream_id}`: often one of the shared pool, so ends and heartbeats hit.
fn stream_segment() -> BoxedStrategy<String> {
    one_of(vec![
        (5, pool_uuid()),
        (2, uuid_text()),
        (2, invalid_uuid()),
        (3, segment()),
    ])
}

fn pool_uuid() -> BoxedStrategy<String> {
    (0u128..3)
        .prop_map(|i| Uuid::from_u128(STREAM_POOL + i).to_string())
        .boxed()
}

/// A UUID in one of the text forms `Uuid::parse` knows.
fn uuid_text() -> BoxedStrategy<String> {
    (any::<u128>(), 0u8..5)
        .prop_map(|(n, form)| {
            let id = Uuid::from_u128(n);
            match form {
                0 => id.hyphenated().to_string(),
                1 => id.simple().to_string(),
                2 => id.braced().to_string(),
                3 => id.urn().to_string(),
                _ => id.hyphenated().to_string().to_uppercase(),
            }
        })
        .boxed()
}

fn invalid_uuid() -> BoxedStrategy<String> {
    one_of(vec![
        (
            2,
            fixed(&[
                "not-a-uuid",
                "00000000-0000-0000-0000-00000000000",
                "00000000-0000-0000-0000-0000000000000",
                "g0000000-0000-0000-0000-000000000000",
                "{00000000-0000-0000-0000-000000000000",
                "00000000-0000-0000-0000-000000000000}",
                "urn:uuid:",
                "00000000_0000_0000_0000_000000000000",
                "0",
                "-",
                "%00",
                "%FF%FE",
            ]),
        ),
        (
            1,
            (uuid_text(), any::<Index>(), hostile_char())
                .prop_map(|(id, at, c)| {
                    let mut chars: Vec<char> = id.chars().collect();
                    let at = at.index(chars.len());
                    chars[at] = c;
                    encode(&chars.into_iter().collect::<String>())
                })
                .boxed(),
        ),
    ])
}

/// A path segment in URL form.
fn segment() -> BoxedStrategy<String> {
    one_of(vec![
        (2, (0u64..100).prop_map(|n| n.to_string()).boxed()),
        (1, any::<u64>().prop_map(|n| n.to_string()).boxed()),
        (1, any::<i64>().prop_map(|n| n.to_string()).boxed()),
        (1, any::<u128>().prop_map(|n| n.to_string()).boxed()),
        (
            2,
            fixed(&[
                "9223372036854775807",
                "9223372036854775808",
                "18446744073709551615",
                "18446744073709551616",
                "-9223372036854775809",
                "340282366920938463463374607431768211456",
                "-0",
                "+1",
                "0x1f",
                "1e3",
                "1.5",
                "00000000000000000000042",
                "%31%32",
                "1%2F2",
                "%2e%2e",
                "..",
                ".",
                "%00",
                "%FF",
                "%FE%FF",
                "%C0%AF",
                "%",
                "%zz",
                "%%",
                "%2F",
                "%5C",
                "'%20OR%201=1--",
                "'%20OR%20'1'='1",
                "1;DROP%20TABLE%20leases;--",
                "1'%20UNION%20SELECT%20NULL--",
                "$(id)",
                "%7B%7B7*7%7D%7D",
                "%3Cscript%3E",
                "null",
                "undefined",
                "NaN",
                "Infinity",
                "true",
                "%EF%BC%91%EF%BC%92",
                "%D9%A1%D9%A2",
            ]),
        ),
        (2, uuid_text()),
        (1, invalid_uuid()),
        (3, text(0..30).prop_map(|t| encode(&t)).boxed()),
        (
            1,
            (
                1usize..4_000,
                fixed(&["a", "9", "%00", "%FF", "%C3%A9", "..%2F"]),
            )
                .prop_map(|(n, unit)| unit.repeat(n))
                .boxed(),
        ),
    ])
}

/// A query string, `?` included, or nothing.
pub(super) fn query() -> BoxedStrategy<String> {
    let other_key = one_of(vec![
        (
            3,
            fixed(&[
                "streamid",
                "STREAMID",
                "stream_id",
                "streamId[]",
                "deviceId[0]",
                "sessionId",
                "",
            ]),
        ),
        (1, text(0..12)),
    ]);
    let pair = one_of(vec![
        (3, (fixed(&["streamId"]), stream_value()).boxed()),
        (5, (fixed(&["deviceId", "contentId"]), label()).boxed()),
        (1, (other_key, label()).boxed()),
    ])
    .prop_map(|(k, v)| format!("{}={}", encode(&k), encode(&v)));
    one_of(vec![
        (4, Just(String::new()).boxed()),
        (
            8,
            vec(pair, 1..5)
                .prop_map(|pairs| format!("?{}", pairs.join("&")))
                .boxed(),
        ),
        (
            1,
            fixed(&[
                "?",
                "?&&",
                "?=",
                "?==",
                "?streamId",
                "?streamId=",
                "?%",
                "?%zz=1",
                "?deviceId=%",
                "?deviceId=%FF%FE",
                "?contentId=%00",
                "?deviceId=a+b+%2B",
                "?;",
                "?streamId=1&streamId=2",
                "?deviceId=a&deviceId=b&deviceId=c",
            ]),
        ),
    ])
}

/// A `streamId` value (decoded text): mostly one of the pool, so that
/// replays, heartbeats and ends of named streams happen.
fn stream_value() -> BoxedStrategy<String> {
    one_of(vec![
        (5, pool_uuid()),
        (1, uuid_text()),
        (1, invalid_uuid().prop_map(|t| percent_decoded(&t)).boxed()),
        (1, label()),
    ])
}

/// A `deviceId` or `contentId` value (decoded text): half of them text a
/// client might send, the rest hostile.
fn label() -> BoxedStrategy<String> {
    one_of(vec![
        (
            6,
            proptest::string::string_regex("[a-zA-Z0-9 ._:/é😀-]{1,40}")
                .expect("a valid regex")
                .boxed(),
        ),
        (4, text(0..40)),
        (1, Just(String::new()).boxed()),
        (
            2,
            fixed(&[
                "\u{0}",
                "tv\u{0}1",
                "\u{0}\u{0}\u{0}",
                "\u{1}\u{2}\u{1b}[31m",
                "\r\n",
                "\t",
                "\u{7f}",
                "\u{feff}",
                "\u{202e}evil",
                "\u{fffd}",
                "\u{10ffff}",
                "😀🎬",
                "' OR 1=1--",
                "'; DROP TABLE leases; --",
                "\\",
                "\"",
                "{}",
            ]),
        ),
        (
            2,
            (120usize..300, hostile_char())
                .prop_map(|(n, c)| std::iter::repeat(c).take(n).collect::<String>())
                .boxed(),
        ),
        (2, pool_uuid()),
        (1, uuid_text()),
        (1, invalid_uuid()),
    ])
}

fn hostile_char() -> BoxedStrategy<char> {
    one_of(vec![
        (4, any::<char>().boxed()),
        (3, (0x20u8..0x7f).prop_map(char::from).boxed()),
        (2, (0u8..0x20).prop_map(char::from).boxed()),
        (
            2,
            select(
                &[
                    '\u{0}',
                    '\u{7f}',
                    '\u{85}',
                    '\u{a0}',
                    '\u{2028}',
                    '\u{feff}',
                    '\u{fffd}',
                    '\u{202e}',
                    '\u{10ffff}',
                    'é',
                    '𝕏',
                ][..],
            )
            .boxed(),
        ),
    ])
}

pub(super) fn text(length: std::ops::Range<usize>) -> BoxedStrategy<String> {
    vec(hostile_char(), length)
        .prop_map(|chars| chars.into_iter().collect())
        .boxed()
}

/// Bytes a header value may hold: visible ASCII, space, tab and obs-text.
fn header_bytes(length: std::ops::Range<usize>) -> BoxedStrategy<Vec<u8>> {
    let byte = one_of(vec![
        (6, (0x21u8..0x7f).boxed()),
        (1, Just(b' ').boxed()),
        (1, Just(b'\t').boxed()),
        (2, (0x80u8..=0xff).boxed()),
    ]);
    vec(byte, length).boxed()
}

fn graphic(length: std::ops::RangeInclusive<usize>) -> BoxedStrategy<Vec<u8>> {
    vec(0x21u8..0x7f, length).boxed()
}

fn headers() -> BoxedStrategy<Vec<(String, Vec<u8>)>> {
    let session = one_of(vec![
        (
            6,
            select(SESSION_POOL)
                .prop_map(|s| s.as_bytes().to_vec())
                .boxed(),
        ),
        (4, graphic(1..=128)),
        (1, Just(Vec::new()).boxed()),
        (3, graphic(129..=300)),
        (2, header_bytes(1..60)),
    ]);
    let idempotency = one_of(vec![
        (3, header_bytes(1..40)),
        (1, Just(Vec::new()).boxed()),
        (1, header_bytes(250..300)),
    ]);
    let content_type = fixed(&[
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=----x",
        "application/xml",
        "*/*",
        "application/json, text/html",
        "",
    ])
    .prop_map(String::into_bytes);
    let extra_name = one_of(vec![
        (
            2,
            fixed(&[
                "accept",
                "accept-language",
                "x-api-key",
                "x-forwarded-for",
                "x-request-id",
                "cookie",
                "authorization",
                "origin",
                "range",
                "if-none-match",
                "user-agent",
                "session_id",
                "sessionid",
            ]),
        ),
        (
            1,
            proptest::string::string_regex("x-[a-z0-9-]{1,20}")
                .expect("a valid regex")
                .boxed(),
        ),
    ]);
    (
        proptest::option::weighted(0.75, session),
        proptest::option::weighted(0.25, idempotency),
        proptest::option::weighted(0.3, content_type),
        vec((extra_name, header_bytes(0..80)), 0..4),
    )
        .prop_map(|(session, key, content_type, extra)| {
            let mut headers = Vec::new();
            if let Some(v) = session {
                headers.push(("session-id".to_owned(), v));
            }
            if let Some(v) = key {
                headers.push(("idempotency-key".to_owned(), v));
            }
            if let Some(v) = content_type {
                headers.push(("content-type".to_owned(), v));
            }
            headers.extend(extra);
            headers
        })
        .boxed()
}

/// A JSON value of the wrong type for any field.
fn wrong_json() -> BoxedStrategy<Value> {
    one_of(vec![
        (1, Just(Value::Null).boxed()),
        (1, any::<bool>().prop_map(Value::from).boxed()),
        (1, any::<i64>().prop_map(Value::from).boxed()),
        (1, any::<f64>().prop_map(Value::from).boxed()),
        (1, Just(json!([])).boxed()),
        (1, Just(json!({"deviceId": "x"})).boxed()),
        (1, Just(json!([1, "2", null])).boxed()),
    ])
}

/// A start body: each field absent, a string, or of a wrong type.
pub(super) fn start_json() -> BoxedStrategy<Value> {
    let field = |text: BoxedStrategy<String>| {
        one_of(vec![
            (2, Just(None).boxed()),
            (5, text.prop_map(|t| Some(Value::String(t))).boxed()),
            (1, wrong_json().prop_map(Some).boxed()),
        ])
    };
    (
        field(stream_value()),
        field(label()),
        field(label()),
        proptest::option::weighted(0.2, text(0..8)),
    )
        .prop_map(|(stream, device, content, extra)| {
            let mut body = serde_json::Map::new();
            for (key, value) in [
                ("streamId", stream),
                ("deviceId", device),
                ("contentId", content),
            ] {
                if let Some(value) = value {
                    body.insert(key.to_owned(), value);
                }
            }
            if let Some(extra) = extra {
                body.insert(extra, Value::Bool(true));
            }
            Value::Object(body)
        })
        .boxed()
}

fn body() -> BoxedStrategy<Option<Body>> {
    let json_text = start_json().prop_map(|v| v.to_string().into_bytes());
    let some = one_of(vec![
        (6, json_text.clone().boxed()),
        (1, Just(Vec::new()).boxed()),
        (
            1,
            wrong_json()
                .prop_map(|v| v.to_string().into_bytes())
                .boxed(),
        ),
        (
            2,
            (json_text.clone(), any::<Index>())
                .prop_map(|(mut bytes, at)| {
                    let keep = at.index(bytes.len());
                    bytes.truncate(keep);
                    bytes
                })
                .boxed(),
        ),
        (
            1,
            (
                1usize..3_000,
                fixed(&["[", "{\"a\":", "[{\"deviceId\":"]),
                any::<bool>(),
            )
                .prop_map(|(depth, open, closed)| {
                    let mut text = open.repeat(depth);
                    if closed {
                        text.push_str("null");
                        for _ in 0..depth {
                            text.push_str(if open == "[" { "]" } else { "}" });
                        }
                    }
                    text.into_bytes()
                })
                .boxed(),
        ),
        (1, vec(any::<u8>(), 1..300).boxed()),
        (
            1,
            fixed(&[
                "{\"deviceId\":\"a\",\"deviceId\":\"b\"}",
                "\u{feff}{}",
                "{\"deviceId\":\"\\u0000\"}",
                "{\"contentId\":\"\\ud800\"}",
                "{\"deviceId\":\"\\x00\"}",
                "{\"streamId\":1e999}",
                "deviceId=tv&contentId=film",
                "{} {}",
                "{},",
                "null",
                " ",
                "\u{0}",
            ])
            .prop_map(String::into_bytes)
            .boxed(),
        ),
        (
            2,
            (MAX_BODY_BYTES - 300..MAX_BODY_BYTES + 1_200, any::<bool>())
                .prop_map(|(size, as_string)| {
                    if as_string {
                        let pad = size.saturating_sub(16);
                        format!("{{\"deviceId\":\"{}\"}}", "a".repeat(pad)).into_bytes()
                    } else {
                        let mut bytes = vec![b' '; size.saturating_sub(2)];
                        bytes.extend_from_slice(b"{}");
                        bytes
                    }
                })
                .boxed(),
        ),
    ]);
    proptest::option::weighted(0.5, some.prop_map(Body)).boxed()
}
