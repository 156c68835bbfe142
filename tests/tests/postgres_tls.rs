//! TLS to Postgres against a real server that takes TLS connections only
//! (`hostssl` lines, `ssl = on`), with a CA and server certificate made by the
//! test: each `sslmode` does what libpq's does, and every certificate problem
//! is refused with an error that names it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use stream_limit_core::store::postgres::{PostgresConfig, PostgresStore};
use stream_limit_core::{LeaseStore, StartOutcome, UserId, ViewerId};
use stream_limit_http::cause_chain;
use stream_limit_tests::postgres::fresh_database;
use stream_limit_tests::postgres::{start_custom_cluster, ClusterSetup, CustomCluster};
use stream_limit_tests::service;
use stream_limit_tests::world::{connect, new_stream};

/// A CA, and a server certificate it signed for `localhost` only.
struct Pki {
    ca_pem: String,
    server_pem: String,
    server_key_pem: String,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().expect("a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("a self-signed CA");
    (params, key, cert.pem())
}

fn pki() -> Pki {
    let (ca_params, ca_key, ca_pem) = ca("stream-limit test CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("a server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server = params
        .signed_by(&server_key, &issuer)
        .expect("a server certificate");
    Pki {
        ca_pem,
        server_pem: server.pem(),
        server_key_pem: server_key.serialize_pem(),
    }
}

/// The TLS-only server of this test process, and the directory holding the
/// right CA (`ca.pem`) and a CA that signed nothing of it (`other-ca.pem`).
fn server() -> &'static (CustomCluster, PathBuf) {
    static SERVER: OnceLock<(CustomCluster, PathBuf)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let pki = pki();
        let hba = "local all all trust\n\
                   hostssl all all 127.0.0.1/32 trust\n\
                   hostssl all all ::1/128 trust\n";
        let cluster = start_custom_cluster(&ClusterSetup {
            files: &[
                ("server.crt", pki.server_pem.as_bytes()),
                ("server.key", pki.server_key_pem.as_bytes()),
                ("pg_hba.conf", hba.as_bytes()),
            ],
            settings: &["ssl=on"],
            ..ClusterSetup::default()
        })
        .unwrap_or_else(|e| panic!("a TLS-only Postgres: {e}"));
        let dir = tempfile::Builder::new()
            .prefix("sl-tls-")
            .tempdir()
            .expect("a directory for the CA files")
            .keep();
        std::fs::write(dir.join("ca.pem"), &pki.ca_pem).expect("write the CA");
        std::fs::write(dir.join("other-ca.pem"), ca("some other CA").2)
            .expect("write the other CA");
        (cluster, dir)
    })
}

fn url(host: &str, params: &str) -> String {
    format!(
        "postgres://postgres@{host}:{}/postgres?{params}",
        server().0.port
    )
}

fn ca_file(name: &str) -> String {
    server().1.join(name).display().to_string()
}

/// A store on `url`, used once: `Ok` (the store, its connections still open)
/// when it reached the server and decided.
async fn decide_through(url: &str, ca_file: Option<&Path>) -> Result<PostgresStore, String> {
    let store = PostgresStore::connect(&PostgresConfig {
        tls_ca_file: ca_file.map(Path::to_path_buf),
        pool_timeout: Duration::from_secs(5),
        query_timeout: Duration::from_secs(5),
        ..PostgresConfig::new(url)
    })
    .map_err(|e| cause_chain(&e))?;
    store.migrate().await.map_err(|e| cause_chain(&e))?;
    // A viewer of its own: the tests share the server's database, and
    // their stores migrate it at once, as a fleet's instances do.
    let viewer = UserId::parse(&(uuid::Uuid::new_v4().as_u128() % 1_000_000_000).to_string())
        .expect("valid");
    let start = new_stream(ViewerId::User(viewer));
    match store.start(&start).await {
        Ok(StartOutcome::Admitted(_)) => Ok(store),
        other => Err(format!("{other:?}")),
    }
}

/// How many of the server's client connections named `application` are
/// encrypted, and how many are not, seen over the Unix socket.
async fn encrypted_connections(application: &str) -> (i64, i64) {
    let admin = connect(&server().0.socket_settings()).await;
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
               FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
              WHERE a.application_name = $1",
            &[&application],
        )
        .await
        .expect("pg_stat_ssl");
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn verify_full_with_the_right_ca_connects_encrypted() {
    let ca = ca_file("ca.pem");
    let params = format!("sslmode=verify-full&application_name=sl-verify-full&sslrootcert={ca}");
    let _in_url = decide_through(&url("localhost", &params), None)
        .await
        .expect("verify-full with the CA that signed the server");
    // The CA may come from the configuration instead of the URL.
    let params = "application_name=sl-verify-full&sslmode=verify-full";
    let _in_config = decide_through(&url("localhost", params), Some(Path::new(&ca)))
        .await
        .expect("verify-full with store.tls_ca_file");
    let (encrypted, plain) = encrypted_connections("sl-verify-full").await;
    assert!(encrypted > 0, "no encrypted connection from the store");
    assert_eq!(plain, 0, "a plaintext connection from the store");
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_from_another_ca() {
    let other = ca_file("other-ca.pem");
    let error = decide_through(
        &url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={other}"),
        ),
        None,
    )
    .await
    .expect_err("a certificate the CA did not sign");
    assert!(error.contains("UnknownIssuer"), "{error}");
    // verify-ca checks the chain too.
    let error = decide_through(
        &url(
            "localhost",
            &format!("sslmode=verify-ca&sslrootcert={other}"),
        ),
        None,
    )
    .await
    .expect_err("verify-ca checks the signer");
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_host_and_verify_ca_accepts_it() {
    let ca = ca_file("ca.pem");
    // The certificate names `localhost`, not `127.0.0.1`.
    let error = decide_through(
        &url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        None,
    )
    .await
    .expect_err("a certificate for another host");
    assert!(error.contains("not valid for name"), "{error}");
    decide_through(
        &url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")),
        None,
    )
    .await
    .expect("verify-ca does not check the host name");
}

#[tokio::test]
async fn require_encrypts_without_a_ca_and_disable_is_refused_by_a_tls_only_server() {
    decide_through(&url("127.0.0.1", "sslmode=require"), None)
        .await
        .expect("require: encrypted, certificate not checked (as libpq)");
    let error = decide_through(&url("127.0.0.1", "sslmode=disable"), None)
        .await
        .expect_err("plaintext to a hostssl-only server");
    assert!(error.contains("no encryption"), "{error}");
}

#[tokio::test]
async fn a_ca_problem_fails_at_connect_naming_it() {
    let error = decide_through(&url("localhost", "sslmode=verify-full"), None)
        .await
        .expect_err("no CA");
    assert!(error.contains("needs a CA"), "{error}");
    let missing = server().1.join("missing.pem");
    let error = decide_through(&url("localhost", "sslmode=verify-full"), Some(&missing))
        .await
        .expect_err("no such file");
    assert!(error.contains("missing.pem"), "{error}");
    let not_a_cert = server().1.join("not-a-cert.pem");
    std::fs::write(&not_a_cert, "hello\n").expect("write");
    let error = decide_through(&url("localhost", "sslmode=verify-full"), Some(&not_a_cert))
        .await
        .expect_err("no certificate in the file");
    assert!(error.contains("no CA certificate found"), "{error}");
}

#[tokio::test]
async fn the_binary_refuses_to_start_on_a_certificate_problem_and_says_why() {
    let database_url = url("localhost", "sslmode=verify-full");
    let run = |ca_file: &str| {
        std::process::Command::new(service::binary())
            .arg("migrate")
            .env_clear()
            .env("DATABASE_URL", &database_url)
            .env("STREAM_LIMIT__STORE__TLS_CA_FILE", ca_file)
            .env("STREAM_LIMIT__STORE__POOL_TIMEOUT_MS", "1000")
            .output()
            .expect("run stream-limit-http migrate")
    };
    let missing = server().1.join("absent.pem").display().to_string();
    let output = run(&missing);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("absent.pem"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let output = run(&ca_file("other-ca.pem"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    let output = run(&ca_file("ca.pem"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Against a server without TLS (the shared test cluster): a mode that
/// requires TLS is refused rather than falling back, and `prefer` connects
/// in plain text.
#[tokio::test]
async fn modes_that_require_tls_never_fall_back_to_plain_text() {
    let db = fresh_database().await;
    let ca = ca_file("ca.pem");
    for mode in ["require", "verify-full"] {
        let url = format!("{}?sslmode={mode}&sslrootcert={ca}", db.url());
        let error = decide_through(&url, None)
            .await
            .expect_err("a server without TLS");
        assert!(error.contains("TLS"), "{mode}: {error}");
    }
    decide_through(&format!("{}?sslmode=prefer", db.url()), None)
        .await
        .expect("prefer connects without TLS");
}
