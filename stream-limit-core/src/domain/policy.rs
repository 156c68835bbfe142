//! The knobs of the rule: how many streams, what happens at the limit, how long a lease lives.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ids::ParseError;

/// How many streams a viewer may hold at once (`1..=`[`MaxStreams::MAX`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct MaxStreams(u16);

impl MaxStreams {
    /// The contract's default: three concurrent streams.
    pub const DEFAULT: Self = Self(3);
    /// Upper bound of a limit; more than this is a misconfiguration, not a plan.
    pub const MAX: u16 = 1000;

    /// Checks the bounds.
    pub fn new(value: u32) -> Result<Self, ParseError> {
        match u16::try_from(value) {
            Ok(v) if (1..=Self::MAX).contains(&v) => Ok(Self(v)),
            _ => Err(ParseError::MaxStreams),
        }
    }

    /// The limit as a count.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

impl Default for MaxStreams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl<'de> Deserialize<'de> for MaxStreams {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = u32::deserialize(deserializer)?;
        Self::new(raw).map_err(serde::de::Error::custom)
    }
}

/// What a start does when the viewer already holds `max_streams` leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnLimit {
    /// Refuse the new stream (the contract's default).
    #[default]
    Reject,
    /// Admit the new stream and evict the least recently started one.
    EvictOldest,
}

/// Who is starting a stream; decides which lease length it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// A player or gateway that sends heartbeats (`/watch`, the REST routes).
    Heartbeating,
    /// A client of the seed routes (`/api/startstream`), which never heartbeats
    /// and may end a two-hour film with a single `endstream`.
    SeedRoute,
}

/// The two lease lengths of the contract, and the one place that picks between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTerms {
    /// Lease of a heartbeating client: short, so a crashed player frees its slot quickly.
    pub heartbeat_ttl: Duration,
    /// Lease of a seed-route client: a whole viewing session, since it never heartbeats.
    pub session_ttl: Duration,
}

impl LeaseTerms {
    /// The longest lease granted, whatever the configuration: a year keeps
    /// every timestamp computation far from overflow.
    pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

    /// The lease length a start by `client` gets (at most [`Self::MAX_TTL`]).
    /// This is the only place that decides it.
    pub fn ttl_for(&self, client: Client) -> Duration {
        let ttl = match client {
            Client::Heartbeating => self.heartbeat_ttl,
            Client::SeedRoute => self.session_ttl,
        };
        ttl.min(Self::MAX_TTL)
    }
}

impl Default for LeaseTerms {
    fn default() -> Self {
        Self {
            heartbeat_ttl: Duration::from_secs(180),
            session_ttl: Duration::from_secs(4 * 3600),
        }
    }
}

/// What the service does when the store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreError {
    /// Fail open: admit starts, marking the answer degraded. Heartbeats and
    /// ends still report the failure (503): players keep playing through it.
    #[default]
    Allow,
    /// Fail closed: report the store as unavailable (HTTP 503).
    Deny,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_streams_bounds() {
        assert!(MaxStreams::new(0).is_err());
        assert_eq!(MaxStreams::new(1).map(MaxStreams::get), Ok(1));
        assert_eq!(MaxStreams::new(1000).map(MaxStreams::get), Ok(1000));
        assert!(MaxStreams::new(1001).is_err());
        assert!(MaxStreams::new(70_000).is_err());
    }

    #[test]
    fn seed_clients_get_the_long_lease_and_heartbeating_clients_the_short_one() {
        let terms = LeaseTerms::default();
        assert_eq!(terms.ttl_for(Client::Heartbeating), terms.heartbeat_ttl);
        assert_eq!(terms.ttl_for(Client::SeedRoute), terms.session_ttl);
        assert!(terms.session_ttl > terms.heartbeat_ttl);
    }

    #[test]
    fn an_absurd_lease_length_is_capped() {
        let terms = LeaseTerms {
            heartbeat_ttl: Duration::MAX,
            session_ttl: Duration::MAX,
        };
        assert_eq!(terms.ttl_for(Client::SeedRoute), LeaseTerms::MAX_TTL);
    }
}
