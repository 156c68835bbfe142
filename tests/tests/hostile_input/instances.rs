//! The instances under test: spawning the real binary, one per policy.

use std::sync::atomic::AtomicUsize;

use stream_limit_tests::service::Service;
use tokio::runtime::Runtime;

use super::MAX_BODY_BYTES;

/// `limits.on_limit` of an instance. Each store runs one instance of each, so
/// that refusals (which list the active streams, hostile labels included) and
/// evictions (after which heartbeats of named streams succeed or answer 410)
/// both happen within a few thousand cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Policy {
    Reject,
    EvictOldest,
}

impl Policy {
    fn setting(self) -> &'static str {
        match self {
            Self::Reject => "reject",
            Self::EvictOldest => "evict_oldest",
        }
    }
}

/// The real binary with the body limit the generator aims at and `policy`,
/// on the in-memory store or on the Postgres database `database_url`.
pub(super) fn spawn(
    runtime: &Runtime,
    policy: Policy,
    database_url: Option<&str>,
) -> (Policy, Service) {
    let limit = MAX_BODY_BYTES.to_string();
    let mut env = vec![
        ("STREAM_LIMIT__SERVER__MAX_BODY_BYTES", limit.as_str()),
        ("STREAM_LIMIT__LIMITS__ON_LIMIT", policy.setting()),
    ];
    if let Some(url) = database_url {
        env.push(("DATABASE_URL", url));
    }
    (policy, runtime.block_on(Service::spawn(&env)))
}
/// One running instance and how much of its log was already searched.
pub(super) struct Instance<'a> {
    pub(super) policy: Policy,
    pub(super) service: &'a Service,
    /// Bytes of the log (whole lines) already searched for panics.
    pub(super) log_seen: AtomicUsize,
}
