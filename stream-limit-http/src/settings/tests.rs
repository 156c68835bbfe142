//! Settings: defaults, precedence, conventions, validation, secrecy.

use std::io::Write;

use secrecy::ExposeSecret;
use stream_limit_core::{LimiterConfig, SweeperConfig};

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::from_sources(None, env(pairs))
}

fn toml_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp file");
    file.write_all(text.as_bytes()).expect("write temp file");
    file
}

fn error_of(result: Result<Settings, ConfigError>) -> String {
    match result {
        Ok(settings) => panic!("expected an error, got {settings:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn defaults_are_the_documented_ones_and_match_the_core_defaults() {
    let s = load(&[]).expect("defaults are valid");
    assert_eq!((s.server.host.as_str(), s.server.port), ("0.0.0.0", 8080));
    assert_eq!(s.server.workers, 0);
    assert_eq!(s.server.shutdown_timeout_secs, 30);
    assert_eq!(s.server.max_body_bytes, 16_384);
    assert_eq!(s.limiter_config(), LimiterConfig::default());
    assert_eq!(s.sweeper_config(), SweeperConfig::default());
    assert!(s.store.database_url.is_none());
    assert_eq!((s.store.pool_size, s.store.pool_timeout_ms), (16, 2000));
    assert!(s.admin.api_key.is_none());
    assert_eq!((s.admin.host.as_str(), s.admin.port), ("127.0.0.1", 9090));
    assert_eq!(
        (s.log.format, s.log.level.as_str()),
        (LogFormat::Text, "info")
    );
}

#[test]
fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
    let file = toml_file(
        "[server]\nport = 1234\n[limits]\ndefault_max_streams = 5\non_limit = \"evict_oldest\"\n",
    );
    let s = Settings::from_sources(
        Some(file.path()),
        env(&[("STREAM_LIMIT__LIMITS__DEFAULT_MAX_STREAMS", "7")]),
    )
    .expect("valid");
    assert_eq!(s.server.port, 1234);
    assert_eq!(s.limits.default_max_streams.get(), 7);
    assert_eq!(s.limits.on_limit, OnLimit::EvictOldest);
}

#[test]
fn stream_limit_config_names_the_file_when_no_flag_does() {
    let file = toml_file("[sweeper]\nbatch = 10\n");
    let path = file.path().to_string_lossy().into_owned();
    let s = load(&[("STREAM_LIMIT_CONFIG", &path)]).expect("valid");
    assert_eq!(s.sweeper.batch, 10);
}

#[test]
fn a_named_config_file_that_does_not_exist_stops_startup() {
    let missing = Path::new("/nonexistent/stream-limit.toml");
    assert!(Settings::from_sources(Some(missing), env(&[])).is_err());
}

#[test]
fn port_and_database_url_are_honoured_and_win() {
    let s = load(&[
        ("STREAM_LIMIT__SERVER__PORT", "1111"),
        ("PORT", "4321"),
        ("DATABASE_URL", "postgres://app:hunter2@db/leases"),
    ])
    .expect("valid");
    assert_eq!(s.server.port, 4321);
    let url = s
        .store
        .database_url
        .as_ref()
        .map(|u| u.expose_secret().to_owned());
    assert_eq!(url.as_deref(), Some("postgres://app:hunter2@db/leases"));
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let s = load(&[
        ("DATABASE_URL", "postgres://app:hunter2@db/leases"),
        (
            "STREAM_LIMIT__ADMIN__API_KEY",
            "correct-horse-battery-staple",
        ),
    ])
    .expect("valid");
    let printed = format!("{s:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(!printed.contains("correct-horse"), "{printed}");
}

#[test]
fn empty_environment_values_count_as_unset() {
    let s = load(&[
        ("STREAM_LIMIT__ADMIN__API_KEY", ""),
        ("DATABASE_URL", ""),
        ("PORT", ""),
    ])
    .expect("valid");
    assert!(s.admin.api_key.is_none());
    assert!(s.store.database_url.is_none());
    assert_eq!(s.server.port, 8080);
}

#[test]
fn an_unknown_policy_names_the_key_and_the_choices() {
    let message = error_of(load(&[("STREAM_LIMIT__LIMITS__ON_LIMIT", "foo")]));
    assert!(message.contains("limits.on_limit"), "{message}");
    assert!(
        message.contains("unknown variant \"foo\", expected reject or evict_oldest"),
        "{message}"
    );
    let message = error_of(load(&[("STREAM_LIMIT__LIMITS__ON_STORE_ERROR", "maybe")]));
    assert!(message.contains("limits.on_store_error"), "{message}");
    assert!(message.contains("allow or deny"), "{message}");
}

#[test]
fn out_of_range_numbers_name_their_key() {
    for (var, key) in [
        (
            "STREAM_LIMIT__LIMITS__DEFAULT_MAX_STREAMS",
            "limits.default_max_streams",
        ),
        (
            "STREAM_LIMIT__SWEEPER__INTERVAL_SECS",
            "sweeper.interval_secs",
        ),
        (
            "STREAM_LIMIT__LIMITS__HEARTBEAT_TTL_SECS",
            "limits.heartbeat_ttl_secs",
        ),
        (
            "STREAM_LIMIT__SERVER__MAX_BODY_BYTES",
            "server.max_body_bytes",
        ),
    ] {
        let message = error_of(load(&[(var, "0")]));
        assert!(message.contains(key), "{var}: {message}");
    }
    let message = error_of(load(&[("PORT", "99999")]));
    assert!(message.contains("server.port"), "{message}");
    for (var, key) in [
        (
            "STREAM_LIMIT__LIMITS__SESSION_TTL_SECS",
            "limits.session_ttl_secs",
        ),
        (
            "STREAM_LIMIT__SWEEPER__HISTORY_RETENTION_SECS",
            "sweeper.history_retention_secs",
        ),
    ] {
        let message = error_of(load(&[(var, "10000000000000")]));
        assert!(
            message.contains(key) && message.contains("at most"),
            "{var}: {message}"
        );
    }
    let message = error_of(load(&[(
        "STREAM_LIMIT__LIMITS__DEFAULT_MAX_STREAMS",
        "many",
    )]));
    assert!(message.contains("limits.default_max_streams"), "{message}");
}

#[test]
fn a_misspelt_key_is_refused_rather_than_ignored() {
    let message = error_of(load(&[("STREAM_LIMIT__LIMITS__DEFAULT_MAX_STREAM", "5")]));
    assert!(message.contains("default_max_stream"), "{message}");
}

#[test]
fn a_short_admin_key_or_a_bad_log_level_stops_startup() {
    let message = error_of(load(&[("STREAM_LIMIT__ADMIN__API_KEY", "short")]));
    assert!(message.contains("admin.api_key"), "{message}");
    for padded in [
        " 0123456789abcdef",
        "0123456789abcdef\t",
        "0123456789 abcdef",
    ] {
        let message = error_of(load(&[("STREAM_LIMIT__ADMIN__API_KEY", padded)]));
        assert!(message.contains("without spaces"), "{padded:?}: {message}");
    }
    let message = error_of(load(&[("STREAM_LIMIT__LOG__LEVEL", "info,[=bad")]));
    assert!(message.contains("log.level"), "{message}");
}
