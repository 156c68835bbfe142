//! The running binary against its own OpenAPI 3.1 documents, on both stores:
//! `tests/schemathesis/run.sh` validates each document
//! (openapi-spec-validator), then runs schemathesis with every check
//! (no server error; status, content type, headers and body as documented;
//! valid input accepted and invalid input refused; 405 with `Allow` for
//! undocumented methods; the admin key enforced), including stateful
//! sequences along the documents' links (start → heartbeat → end).
//!
//! Bounded: `ST_MAX_EXAMPLES` cases per operation and phase (default 30, about
//! 30 s per document here). The seed is printed first; replay a failure with
//! `ST_SEED=<seed> cargo test -p stream-limit-tests --test api_schema`.
//! The Python tools are installed once into `target/schemathesis-venv`
//! (exact pins in `tests/schemathesis/requirements.txt`).

use std::process::Command;

use stream_limit_tests::postgres::fresh_database;
use stream_limit_tests::service::{free_port, target_dir, workspace_root, Service};

const ADMIN_KEY: &str = "schemathesis-admin-key-0123456789";

/// Runs `run.sh` against one document; panics with its whole output unless it passes.
fn schemathesis(what: &str, spec_url: &str, base_url: &str, extra: &[&str]) {
    let script = workspace_root().join("tests/schemathesis/run.sh");
    let venv = target_dir().join("schemathesis-venv");
    let output = Command::new("bash")
        .arg(&script)
        .arg(&venv)
        .args([spec_url, base_url])
        .args(extra)
        .output()
        .expect("run tests/schemathesis/run.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The seed line and the summary, so a passing run still says what it did.
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("schemathesis seed") || l.contains(" generated, "))
        .collect();
    println!("{what}: {}", summary.join(" | "));
    assert!(
        output.status.success(),
        "schemathesis on {what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

async fn check(env: &[(&str, &str)], store: &str) {
    let admin_port = free_port().to_string();
    let mut env = env.to_vec();
    env.extend([
        ("STREAM_LIMIT__ADMIN__API_KEY", ADMIN_KEY),
        ("STREAM_LIMIT__ADMIN__PORT", admin_port.as_str()),
    ]);
    let service = Service::spawn(&env).await;
    let public = service.url("");
    let admin = format!("http://127.0.0.1:{admin_port}");
    let key = format!("X-API-Key: {ADMIN_KEY}");
    tokio::task::block_in_place(|| {
        schemathesis(
            &format!("the public API on {store}"),
            &format!("{public}/api/openapi.json"),
            &public,
            &[],
        );
        schemathesis(
            &format!("the admin API on {store}"),
            &format!("{admin}/admin/openapi.json"),
            &admin,
            &["-H", &key],
        );
    });
    assert!(
        !service.log_text().contains("panicked"),
        "the service panicked:\n{}",
        service.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_apis_conform_to_their_openapi_documents_on_the_in_memory_store() {
    check(&[], "the in-memory store").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_apis_conform_to_their_openapi_documents_on_postgres() {
    let db = fresh_database().await;
    check(&[("DATABASE_URL", db.url())], "Postgres").await;
}
