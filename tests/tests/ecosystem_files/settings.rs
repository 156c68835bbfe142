//! Settings: the service's own loader judges every environment a file gives it.

use std::collections::BTreeMap;

use stream_limit_http::Settings;

/// Names a deployment may give the service besides `STREAM_LIMIT__<SECTION>__<KEY>`.
const CONVENTIONAL: &[&str] = &["PORT", "DATABASE_URL", "RUST_LOG", "STREAM_LIMIT_CONFIG"];

/// Loads `env` with the service's settings loader, which refuses unknown keys
/// and bad values; `what` names the file in failure messages.
pub(crate) fn settings(what: &str, env: &BTreeMap<String, String>) -> Settings {
    for name in env.keys() {
        assert!(
            CONVENTIONAL.contains(&name.as_str()) || name.starts_with("STREAM_LIMIT__"),
            "{what}: {name} is not a variable stream-limit-http reads"
        );
    }
    let pairs = env.iter().map(|(k, v)| (k.clone(), v.clone()));
    Settings::from_sources(None, pairs)
        .unwrap_or_else(|e| panic!("{what}: the service refuses this environment: {e}\n{env:?}"))
}

/// A fleet's environment: it must name the shared database.
pub(crate) fn fleet_settings(what: &str, env: &BTreeMap<String, String>) -> Settings {
    assert!(
        env.get("DATABASE_URL").is_some_and(|url| url.starts_with("postgres")),
        "{what}: every instance of a fleet needs DATABASE_URL (else each keeps its own in-memory limit)"
    );
    settings(what, env)
}

#[test]
fn the_settings_loader_refuses_a_misspelt_key_so_these_checks_mean_something() {
    let env = [("STREAM_LIMIT__SERVER__PROT".to_owned(), "1".to_owned())];
    assert!(Settings::from_sources(None, env).is_err());
    let env = [("STREAM_LIMIT__SERVER__PORT".to_owned(), "8123".to_owned())];
    let loaded = Settings::from_sources(None, env).expect("a real key loads");
    assert_eq!(loaded.server.port, 8123);
}
