//! Typed configuration: built-in defaults, then an optional TOML file, then
//! environment variables, into one [`Settings`].
//!
//! | source | example |
//! |---|---|
//! | defaults | `server.port = 8080` (see [`DEFAULTS`]) |
//! | file | `--config <file>`, else `STREAM_LIMIT_CONFIG`, else `./stream-limit.toml` if present |
//! | env | `STREAM_LIMIT__LIMITS__DEFAULT_MAX_STREAMS=5` (prefix `STREAM_LIMIT`, separator `__`) |
//! | conventional env | `PORT` (→ `server.port`), `DATABASE_URL` (→ `store.database_url`); these win over everything |
//!
//! Secrets (`store.database_url`, `admin.api_key`) are [`SecretString`]s, so
//! `{:?}` of a [`Settings`] never prints them. Invalid values stop startup
//! with a [`ConfigError`] that names the key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, ConfigError, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use stream_limit_core::{
    LeaseTerms, LimiterConfig, MaxStreams, OnLimit, OnStoreError, SweeperConfig,
};

/// Every key with its built-in default, in one table (also the documentation).
pub const DEFAULTS: &[(&str, DefaultValue)] = &[
    ("server.host", DefaultValue::Str("0.0.0.0")),
    ("server.port", DefaultValue::Int(8080)),
    ("server.workers", DefaultValue::Int(0)),
    ("server.shutdown_timeout_secs", DefaultValue::Int(30)),
    ("server.max_body_bytes", DefaultValue::Int(16_384)),
    ("limits.default_max_streams", DefaultValue::Int(3)),
    ("limits.on_limit", DefaultValue::Str("reject")),
    ("limits.heartbeat_ttl_secs", DefaultValue::Int(180)),
    ("limits.session_ttl_secs", DefaultValue::Int(14_400)),
    ("limits.on_store_error", DefaultValue::Str("allow")),
    ("store.pool_size", DefaultValue::Int(16)),
    ("store.pool_timeout_ms", DefaultValue::Int(2000)),
    ("store.query_timeout_ms", DefaultValue::Int(2000)),
    ("store.synchronous_commit", DefaultValue::Str("on")),
    ("store.batch_workers", DefaultValue::Int(2)),
    ("store.max_batch", DefaultValue::Int(64)),
    ("store.batch_wait_us", DefaultValue::Int(0)),
    ("store.history_per_viewer", DefaultValue::Int(32)),
    ("store.citus", DefaultValue::Bool(false)),
    ("sweeper.interval_secs", DefaultValue::Int(30)),
    ("sweeper.batch", DefaultValue::Int(1000)),
    ("sweeper.history_retention_secs", DefaultValue::Int(604_800)),
    ("admin.host", DefaultValue::Str("127.0.0.1")),
    ("admin.port", DefaultValue::Int(9090)),
    ("log.format", DefaultValue::Str("text")),
    ("log.level", DefaultValue::Str("info")),
];

/// A built-in default value (keys without one, such as `store.database_url`, are unset).
#[derive(Debug, Clone, Copy)]
pub enum DefaultValue {
    /// A text value.
    Str(&'static str),
    /// A number.
    Int(i64),
    /// A switch.
    Bool(bool),
}

/// The file read when neither `--config` nor `STREAM_LIMIT_CONFIG` names one.
pub const DEFAULT_FILE: &str = "stream-limit.toml";

/// The whole configuration of the service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The public listener.
    pub server: ServerSettings,
    /// The rule: limit, policies, lease lengths.
    pub limits: LimitSettings,
    /// Where leases live.
    pub store: StoreSettings,
    /// Background cleanup.
    pub sweeper: SweeperSettings,
    /// The admin listener.
    pub admin: AdminSettings,
    /// Logging.
    pub log: LogSettings,
}

/// `server.*`: the public HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind.
    pub host: String,
    /// Port to bind; `0` picks a free one (tests).
    pub port: u16,
    /// Worker threads; `0` means one per CPU core.
    pub workers: usize,
    /// How long in-flight requests may finish after SIGTERM/SIGINT.
    pub shutdown_timeout_secs: u64,
    /// Largest accepted request body; larger ones get `413`.
    pub max_body_bytes: usize,
}

/// `limits.*`: the rule's configuration (see [`LimiterConfig`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Concurrent streams of a viewer without an override (1 to 1000).
    pub default_max_streams: MaxStreams,
    /// `reject` or `evict_oldest`.
    #[serde(deserialize_with = "on_limit")]
    pub on_limit: OnLimit,
    /// Lease of a heartbeating client (`/watch`, REST).
    pub heartbeat_ttl_secs: u64,
    /// Lease of a seed-route client, which never heartbeats.
    pub session_ttl_secs: u64,
    /// `allow` (fail open, degraded) or `deny` (503) when the store fails.
    #[serde(deserialize_with = "on_store_error")]
    pub on_store_error: OnStoreError,
}

/// `store.*`: the lease store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Postgres URL; unset means the in-memory store (single instance only).
    /// `sslmode` and `sslrootcert` in it mean what they mean to libpq.
    pub database_url: Option<SecretString>,
    /// The CA (PEM) that signs the database's certificate, when the URL's
    /// `sslrootcert` names none: `sslmode=verify-ca` and `verify-full` need one.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long a request waits for a pooled connection (and for connecting).
    pub pool_timeout_ms: u64,
    /// How long one store operation may take once connected; with
    /// `pool_timeout_ms` it bounds every answer while the database is unwell.
    pub query_timeout_ms: u64,
    /// Whether lease writes wait for the WAL flush (see [`SynchronousCommit`]).
    pub synchronous_commit: SynchronousCommit,
    /// How many Postgres batches may be in flight at once (at most
    /// `pool_size`; reads and sweeps use the other connections).
    pub batch_workers: usize,
    /// The most decisions one Postgres transaction decides together.
    pub max_batch: usize,
    /// How long a batch with room waits for more decisions before it starts
    /// (0: never; batches form from what arrives while connections are busy).
    pub batch_wait_us: u64,
    /// Ended streams kept per viewer in Postgres (the in-memory store keeps 32).
    pub history_per_viewer: usize,
    /// The database is a Citus coordinator whose tables are distributed by
    /// viewer (`ecosystem/citus/distribute.sql`): batches stay on one shard.
    pub citus: bool,
}

/// `store.synchronous_commit`: Postgres's durability setting for this
/// service's own connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SynchronousCommit {
    /// Every decision is durable before it is answered (the default).
    On,
    /// Decisions are answered before their WAL reaches disk: faster, but a
    /// database crash can forget the last fraction of a second of starts and
    /// ends (at most about three `wal_writer_delay`s). A forgotten start frees
    /// a slot early; a forgotten end holds one until its lease expires. The
    /// limit among the leases that survive still holds.
    Off,
}

/// `sweeper.*`: see [`SweeperConfig`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweeperSettings {
    /// Pause between passes.
    pub interval_secs: u64,
    /// Most leases (or viewers) one pass touches.
    pub batch: usize,
    /// How long history is kept.
    pub history_retention_secs: u64,
}

/// `admin.*`: the operator listener, on its own port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// The `X-API-Key` operators must send; unset disables the admin listener.
    pub api_key: Option<SecretString>,
    /// Address to bind (loopback by default: keep it off the public network).
    pub host: String,
    /// Port to bind; `0` picks a free one (tests).
    pub port: u16,
}

/// `log.*`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` for people, `json` for log pipelines.
    #[serde(deserialize_with = "log_format")]
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `stream_limit_http=debug`;
    /// `RUST_LOG` overrides it.
    pub level: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Settings {
    /// Loads the configuration of this process: `config_file` (from `--config`)
    /// or the file named by `STREAM_LIMIT_CONFIG` or `./stream-limit.toml`,
    /// then the process environment.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        // `vars_os`: a non-UTF-8 variable elsewhere in the environment must not
        // panic startup; ours are UTF-8 or ignored.
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::from_sources(config_file, env)
    }

    /// [`Settings::load`] with the environment passed in, so tests never touch
    /// the process environment.
    pub fn from_sources(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = env.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let mut builder = Config::builder();
        for (key, value) in DEFAULTS {
            builder = match *value {
                DefaultValue::Str(s) => builder.set_default(*key, s)?,
                DefaultValue::Int(i) => builder.set_default(*key, i)?,
                DefaultValue::Bool(b) => builder.set_default(*key, b)?,
            };
        }
        let named = config_file
            .map(Path::to_path_buf)
            .or_else(|| env.get("STREAM_LIMIT_CONFIG").map(PathBuf::from));
        builder = match named {
            Some(path) => {
                builder.add_source(File::from(path).format(FileFormat::Toml).required(true))
            }
            None => builder.add_source(File::new(DEFAULT_FILE, FileFormat::Toml).required(false)),
        };
        builder = builder
            .add_source(
                Environment::with_prefix("STREAM_LIMIT")
                    .separator("__")
                    .source(Some(env.clone().into_iter().collect())),
            )
            .set_override_option("server.port", env.get("PORT").cloned())?
            .set_override_option("store.database_url", env.get("DATABASE_URL").cloned())?;
        let settings: Self = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what the types alone cannot; each message names its key.
    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("server.max_body_bytes", self.server.max_body_bytes as u64),
            ("limits.heartbeat_ttl_secs", self.limits.heartbeat_ttl_secs),
            ("limits.session_ttl_secs", self.limits.session_ttl_secs),
            ("store.pool_size", self.store.pool_size as u64),
            ("store.pool_timeout_ms", self.store.pool_timeout_ms),
            ("store.query_timeout_ms", self.store.query_timeout_ms),
            ("store.max_batch", self.store.max_batch as u64),
            ("store.batch_workers", self.store.batch_workers as u64),
            (
                "store.history_per_viewer",
                self.store.history_per_viewer as u64,
            ),
            ("sweeper.interval_secs", self.sweeper.interval_secs),
            ("sweeper.batch", self.sweeper.batch as u64),
            (
                "sweeper.history_retention_secs",
                self.sweeper.history_retention_secs,
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(key, "must be at least 1"));
        }
        if self.store.batch_workers > self.store.pool_size {
            return Err(invalid(
                "store.batch_workers",
                "must be at most store.pool_size (each batch in flight holds a connection)",
            ));
        }
        // Upper bounds keep time arithmetic far from overflow, and catch typos
        // (milliseconds where seconds were meant).
        const DAY: u64 = 24 * 3600;
        let bounded = [
            (
                "limits.heartbeat_ttl_secs",
                self.limits.heartbeat_ttl_secs,
                365 * DAY,
            ),
            (
                "limits.session_ttl_secs",
                self.limits.session_ttl_secs,
                365 * DAY,
            ),
            (
                "sweeper.history_retention_secs",
                self.sweeper.history_retention_secs,
                10 * 365 * DAY,
            ),
            ("sweeper.interval_secs", self.sweeper.interval_secs, DAY),
            ("store.pool_timeout_ms", self.store.pool_timeout_ms, 600_000),
            ("store.max_batch", self.store.max_batch as u64, 1024),
            ("store.batch_wait_us", self.store.batch_wait_us, 100_000),
            (
                "store.history_per_viewer",
                self.store.history_per_viewer as u64,
                1_000_000,
            ),
            (
                "store.query_timeout_ms",
                self.store.query_timeout_ms,
                600_000,
            ),
            (
                "server.shutdown_timeout_secs",
                self.server.shutdown_timeout_secs,
                3600,
            ),
        ];
        if let Some((key, _, max)) = bounded.iter().find(|(_, v, max)| v > max) {
            return Err(invalid(key, &format!("must be at most {max}")));
        }
        if self.limits.session_ttl_secs < self.limits.heartbeat_ttl_secs {
            return Err(invalid(
                "limits.session_ttl_secs",
                "must not be shorter than limits.heartbeat_ttl_secs",
            ));
        }
        if let Some(key) = self.admin.api_key.as_ref().map(ExposeSecret::expose_secret) {
            if key.len() < 16 {
                return Err(invalid(
                    "admin.api_key",
                    "must be at least 16 characters (unset it to disable the admin listener)",
                ));
            }
            // An HTTP client trims the header value it sends, so such a key
            // could never match: refuse it rather than lock operators out.
            if key.trim() != key || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(
                    "admin.api_key",
                    "must be visible ASCII characters, without spaces",
                ));
            }
        }
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(invalid("log.level", &error.to_string()));
        }
        Ok(())
    }

    /// The core limiter's configuration.
    pub fn limiter_config(&self) -> LimiterConfig {
        LimiterConfig {
            default_limit: self.limits.default_max_streams,
            on_limit: self.limits.on_limit,
            lease_terms: LeaseTerms {
                heartbeat_ttl: Duration::from_secs(self.limits.heartbeat_ttl_secs),
                session_ttl: Duration::from_secs(self.limits.session_ttl_secs),
            },
            on_store_error: self.limits.on_store_error,
        }
    }

    /// The core sweeper's configuration.
    pub fn sweeper_config(&self) -> SweeperConfig {
        SweeperConfig {
            interval: Duration::from_secs(self.sweeper.interval_secs),
            batch: self.sweeper.batch,
            retention: Duration::from_secs(self.sweeper.history_retention_secs),
            ..SweeperConfig::default()
        }
    }
}

/// Deserializes one of `variants` by name, with an error that lists them
/// (`config`'s own enum errors do not).
fn one_of<'de, D: Deserializer<'de>, T: Copy>(
    deserializer: D,
    variants: &[(&str, T)],
) -> Result<T, D::Error> {
    let name = String::deserialize(deserializer)?;
    variants
        .iter()
        .find(|(candidate, _)| *candidate == name)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let expected: Vec<&str> = variants.iter().map(|(n, _)| *n).collect();
            serde::de::Error::custom(format!(
                "unknown variant {name:?}, expected {}",
                expected.join(" or ")
            ))
        })
}

fn on_limit<'de, D: Deserializer<'de>>(d: D) -> Result<OnLimit, D::Error> {
    one_of(
        d,
        &[
            ("reject", OnLimit::Reject),
            ("evict_oldest", OnLimit::EvictOldest),
        ],
    )
}

fn on_store_error<'de, D: Deserializer<'de>>(d: D) -> Result<OnStoreError, D::Error> {
    one_of(
        d,
        &[("allow", OnStoreError::Allow), ("deny", OnStoreError::Deny)],
    )
}

fn log_format<'de, D: Deserializer<'de>>(d: D) -> Result<LogFormat, D::Error> {
    one_of(d, &[("text", LogFormat::Text), ("json", LogFormat::Json)])
}

fn invalid(key: &str, why: &str) -> ConfigError {
    ConfigError::Message(format!("{key} {why}"))
}

#[cfg(test)]
mod tests;
