//! Every `curl` example of the README, run against the real binary (in-memory
//! store, admin listener on), checked against the answer the README states
//! beside it. Docs and behaviour cannot drift apart unnoticed again.
//!
//! How the README is read:
//! - Each fenced `sh` block that holds a `curl` line is a scenario, run in
//!   order against a fresh instance. Lines like `K='…'` are shell variables
//!   for the block's commands.
//! - A command is a `curl` line (with its `\` continuation lines). Its answer
//!   is the `# <status> [<json>]` comment at the end of its last line, or on
//!   the line after it. Every command must state one.
//! - The JSON is a pattern: every key it names must be in the answer with
//!   that value; extra keys are allowed; `"…"` and `[…]` match any value.
//! - `<id>` stands for the `streamId` of the latest answer in the block that
//!   had one; `<id1>`, `<id2>`… for the first, second… `streamId` answered.
//! - `localhost:8080` is the instance's public port, `localhost:9090` its
//!   admin port.

use std::process::Command;

use serde_json::Value;
use stream_limit_tests::service::{free_port, workspace_root, Service};

/// The admin key the README's examples use.
const ADMIN_KEY: &str = "change-me-to-a-long-secret";

#[derive(Debug)]
struct Example {
    /// The README's line of the command, for messages.
    line: usize,
    command: String,
    status: u16,
    body: Option<Value>,
}

#[derive(Debug, Default)]
struct Scenario {
    line: usize,
    variables: Vec<String>,
    examples: Vec<Example>,
}

/// `# 200 {"a":1}` → (200, Some(pattern)).
fn expectation(comment: &str) -> Option<(u16, Option<Value>)> {
    let text = comment.trim().strip_prefix('#')?.trim();
    let (status, rest) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let status: u16 = status.parse().ok()?;
    if !(100..600).contains(&status) {
        return None;
    }
    let rest = rest.trim();
    // The first JSON value after the status, if the comment starts with one;
    // any text after it is for the reader.
    let body = rest.starts_with('{').then(|| {
        let json = rest.replace("[…]", "\"…\"");
        serde_json::Deserializer::from_str(&json)
            .into_iter::<Value>()
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("README: the answer `{rest}` does not start with JSON"))
    });
    Some((status, body))
}

/// Splits a line into the command and a trailing `# …` comment (outside quotes).
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let (mut single, mut double) = (false, false);
    let bytes = line.as_bytes();
    for (at, &byte) in bytes.iter().enumerate() {
        match byte {
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'#' if !single && !double && (at == 0 || bytes[at - 1] == b' ') => {
                return (line[..at].trim_end(), Some(&line[at..]));
            }
            _ => {}
        }
    }
    (line.trim_end(), None)
}

fn scenarios(readme: &str) -> Vec<Scenario> {
    let mut found = Vec::new();
    let mut lines = readme.lines().enumerate().peekable();
    while let Some((at, line)) = lines.next() {
        if line.trim() != "```sh" {
            continue;
        }
        let mut scenario = Scenario {
            line: at + 1,
            ..Scenario::default()
        };
        let mut pending: Option<(usize, String)> = None;
        for (at, line) in lines.by_ref() {
            if line.trim() == "```" {
                break;
            }
            let (code, comment) = split_comment(line);
            if let Some((start, mut command)) = pending.take() {
                // A continuation of the previous command, or the line after it.
                if let Some(rest) = command.strip_suffix('\\') {
                    command = format!("{rest} {}", code.trim());
                    if command.ends_with('\\') {
                        pending = Some((start, command));
                        continue;
                    }
                    match comment.and_then(expectation) {
                        Some((status, body)) => scenario.examples.push(Example {
                            line: start,
                            command,
                            status,
                            body,
                        }),
                        None => pending = Some((start, command)),
                    }
                    continue;
                }
                let (status, body) = (code.is_empty())
                    .then(|| comment.and_then(expectation))
                    .flatten()
                    .unwrap_or_else(|| {
                        panic!("README.md:{start}: `{command}` states no `# <status>` answer")
                    });
                scenario.examples.push(Example {
                    line: start,
                    command,
                    status,
                    body,
                });
                continue;
            }
            let code = code.trim();
            if code.starts_with("curl ") {
                let command = code.to_owned();
                if command.ends_with('\\') {
                    pending = Some((at + 1, command));
                    continue;
                }
                match comment.and_then(expectation) {
                    Some((status, body)) => scenario.examples.push(Example {
                        line: at + 1,
                        command,
                        status,
                        body,
                    }),
                    None => pending = Some((at + 1, command)),
                }
            } else if code.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
            }) {
                scenario.variables.push(code.to_owned());
            }
        }
        if let Some((start, command)) = pending {
            panic!("README.md:{start}: `{command}` states no `# <status>` answer");
        }
        if !scenario.examples.is_empty() {
            found.push(scenario);
        }
    }
    found
}

/// Whether `got` has everything `pattern` names.
fn matches(pattern: &Value, got: &Value) -> bool {
    match (pattern, got) {
        (Value::String(any), _) if any == "…" => true,
        (Value::Object(want), Value::Object(have)) => want
            .iter()
            .all(|(key, value)| have.get(key).is_some_and(|h| matches(value, h))),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| matches(w, h))
        }
        _ => pattern == got,
    }
}

fn stream_id(body: &Value) -> Option<String> {
    body.get("streamId")
        .or_else(|| body.get("streamStatus").and_then(|s| s.get("streamId")))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Runs `example` through `bash` (the README's own command, flags and
/// quoting), returning the status and the body.
fn run(example: &Example, scenario: &Scenario, ports: (u16, u16), ids: &[String]) -> (u16, String) {
    let mut command = example
        .command
        .replace("localhost:8080", &format!("127.0.0.1:{}", ports.0))
        .replace("localhost:9090", &format!("127.0.0.1:{}", ports.1))
        // Shown to the reader; the test reads the body, headers apart.
        .replace("curl -i ", "curl ");
    if let Some(last) = ids.last() {
        command = command.replace("<id>", last);
    }
    for (n, id) in ids.iter().enumerate() {
        command = command.replace(&format!("<id{}>", n + 1), id);
    }
    assert!(
        !command.contains('<'),
        "README.md:{}: `{}` has a placeholder no earlier answer filled",
        example.line,
        example.command
    );
    let body = tempfile::NamedTempFile::new().expect("temp file");
    let script = format!(
        "{}\n{command} --silent --show-error --max-time 10 --output '{}' --write-out '%{{http_code}}'",
        scenario.variables.join("\n"),
        body.path().display()
    );
    let output = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("run bash");
    assert!(
        output.status.success(),
        "README.md:{}: `{}` failed: {}",
        example.line,
        example.command,
        String::from_utf8_lossy(&output.stderr)
    );
    let status = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (
        status,
        std::fs::read_to_string(body.path()).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_curl_example_of_the_readme_answers_what_the_readme_says() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let scenarios = scenarios(&readme);
    let examples: usize = scenarios.iter().map(|s| s.examples.len()).sum();
    assert!(
        examples >= 25,
        "only {examples} curl examples found in the README"
    );
    for scenario in &scenarios {
        let admin_port = free_port();
        let admin_port_text = admin_port.to_string();
        let service = Service::spawn(&[
            ("STREAM_LIMIT__ADMIN__API_KEY", ADMIN_KEY),
            ("STREAM_LIMIT__ADMIN__PORT", &admin_port_text),
        ])
        .await;
        let ports = (service.port(), admin_port);
        let mut ids = Vec::new();
        for example in &scenario.examples {
            let (status, body) =
                tokio::task::block_in_place(|| run(example, scenario, ports, &ids));
            assert_eq!(
                status, example.status,
                "README.md:{} (block at line {}): `{}` answered {status} {body}",
                example.line, scenario.line, example.command
            );
            let parsed: Option<Value> = serde_json::from_str(&body).ok();
            if let Some(pattern) = &example.body {
                let got = parsed.clone().unwrap_or(Value::Null);
                assert!(
                    matches(pattern, &got),
                    "README.md:{}: `{}` answered {body}, the README says {pattern}",
                    example.line,
                    example.command
                );
            }
            if let Some(id) = parsed.as_ref().and_then(stream_id) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
    }
}

#[test]
fn the_readme_reader_finds_commands_answers_and_patterns() {
    let readme =
        "```sh\nK='X: y'\ncurl -H \"$K\" localhost:8080/a   # 200 {\"a\":\"…\",\"b\":[…]}\n\
                  curl -X POST localhost:8080/b \\\n     -d '{\"c\":1}'\n# 201\n```\n";
    let found = scenarios(readme);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].variables, vec!["K='X: y'"]);
    let examples = &found[0].examples;
    assert_eq!(examples.len(), 2);
    assert_eq!((examples[0].status, examples[1].status), (200, 201));
    assert_eq!(
        examples[1].command,
        "curl -X POST localhost:8080/b  -d '{\"c\":1}'"
    );
    let pattern = examples[0].body.clone().expect("a pattern");
    assert!(matches(
        &pattern,
        &serde_json::json!({"a": 1, "b": [], "c": 2})
    ));
    assert!(!matches(&pattern, &serde_json::json!({"b": []})));
}
