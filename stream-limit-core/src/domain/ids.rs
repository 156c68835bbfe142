//! Identities, parsed once at the edge and trusted everywhere after.

use std::fmt;
use std::sync::Arc;

use thiserror::Error;
use uuid::Uuid;

use super::policy::MaxStreams;

/// Why a piece of client input could not become a domain value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The user id is not a non-negative decimal number that fits in 63 bits.
    #[error("user id must be a non-negative integer below 2^63")]
    UserId,
    /// The Session-Id is empty, too long, or holds characters outside visible ASCII.
    #[error(
        "session id must be 1 to {} visible ASCII characters",
        SessionId::MAX_LEN
    )]
    SessionId,
    /// The stream id is not a UUID.
    #[error("stream id must be a UUID")]
    StreamId,
    /// The limit is outside `1..=`[`MaxStreams::MAX`].
    #[error("max streams must be between 1 and {}", MaxStreams::MAX)]
    MaxStreams,
    /// A viewer key is neither `user:<id>` nor `session:<id>`.
    #[error("viewer must be `user:<number>` or `session:<id>`")]
    Viewer,
    /// An idempotency key is empty or longer than [`IdempotencyKey::MAX_LEN`].
    #[error("idempotency key must be 1 to {} characters", IdempotencyKey::MAX_LEN)]
    IdempotencyKey,
}

/// A numeric account id, as the backends of the seed routes know it.
///
/// Limited to `0..=i64::MAX` so it maps onto a Postgres `bigint` without
/// surprises; anything else (signs, spaces, overflow) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(i64);

impl UserId {
    /// Parses the decimal digits of a path segment.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        // `i64::from_str` accepts a leading `+`/`-`; the seed contract wants digits only.
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::UserId);
        }
        raw.parse::<i64>().map(Self).map_err(|_| ParseError::UserId)
    }

    /// The number itself.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The opaque viewer session an API gateway forwards in the `Session-Id` header.
///
/// Cheap to clone (`Arc<str>`), because the in-memory store keeps it as a map key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Arc<str>);

impl SessionId {
    /// Longest accepted Session-Id, in bytes. Long enough for a JWT id or a UUID
    /// with a prefix, short enough that a hostile header cannot bloat the store.
    pub const MAX_LEN: usize = 128;

    /// Accepts 1 to [`Self::MAX_LEN`] visible ASCII characters (no spaces, no controls).
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(Arc::from(raw)))
        } else {
            Err(ParseError::SessionId)
        }
    }

    /// The header value as received.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose streams are being counted.
///
/// A Session-Id and a numeric user id are different identities and never share
/// a count, even when their text happens to be equal; the store key keeps the kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViewerId {
    /// A numeric account from the seed and REST routes.
    User(UserId),
    /// A gateway session from `/watch`.
    Session(SessionId),
}

impl ViewerId {
    /// Parses the canonical text form produced by `Display`: `user:42` or `session:abc`.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if let Some(id) = raw.strip_prefix("user:") {
            UserId::parse(id).map(Self::User)
        } else if let Some(id) = raw.strip_prefix("session:") {
            SessionId::parse(id).map(Self::Session)
        } else {
            Err(ParseError::Viewer)
        }
    }
}

impl From<UserId> for ViewerId {
    fn from(id: UserId) -> Self {
        Self::User(id)
    }
}

impl From<SessionId> for ViewerId {
    fn from(id: SessionId) -> Self {
        Self::Session(id)
    }
}

impl fmt::Display for ViewerId {
    /// The canonical store key: `user:<id>` or `session:<id>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Session(id) => write!(f, "session:{id}"),
        }
    }
}

/// The identity of one admitted stream (one lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct StreamId(Uuid);

impl StreamId {
    /// A fresh random id, for starts whose client did not name the stream.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// Parses a client-supplied id (any UUID text form).
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Uuid::try_parse(raw)
            .map(Self)
            .map_err(|_| ParseError::StreamId)
    }

    /// The UUID itself.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl From<Uuid> for StreamId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A client's `Idempotency-Key`: retrying a start with the same key returns the
/// same lease instead of taking a second slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest accepted key, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Accepts 1 to [`Self::MAX_LEN`] bytes of any text.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(ParseError::IdempotencyKey);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The stream id this key stands for.
    ///
    /// A name-based UUID (v5) derives the id from the key alone, so no table of
    /// keys is needed: the store's ordinary "same stream id" replay does the work.
    /// Stream ids are scoped to one viewer, so two viewers' equal keys never collide.
    pub fn stream_id(&self) -> StreamId {
        const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_0b8e_5a0d_4f43_9d7e_2a8c_b1e4_7d90);
        StreamId(Uuid::new_v5(&NAMESPACE, self.0.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_accepts_digits_only() {
        assert_eq!(UserId::parse("42").map(UserId::get), Ok(42));
        assert_eq!(UserId::parse("0").map(UserId::get), Ok(0));
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1 ",
            "abc",
            "1.5",
            "9223372036854775808",
            "１２",
        ] {
            assert_eq!(UserId::parse(bad), Err(ParseError::UserId), "{bad:?}");
        }
        assert!(UserId::parse("9223372036854775807").is_ok());
    }

    #[test]
    fn session_id_rejects_blank_long_and_control_characters() {
        assert!(SessionId::parse("abc-123_XYZ.:~").is_ok());
        assert!(SessionId::parse(&"a".repeat(SessionId::MAX_LEN)).is_ok());
        for bad in ["", " ", "a b", "tab\there", "é", "new\nline"] {
            assert_eq!(SessionId::parse(bad), Err(ParseError::SessionId), "{bad:?}");
        }
        assert!(SessionId::parse(&"a".repeat(SessionId::MAX_LEN + 1)).is_err());
    }

    #[test]
    fn user_and_session_with_equal_text_are_different_viewers() {
        let user = ViewerId::from(UserId::parse("7").expect("valid"));
        let session = ViewerId::from(SessionId::parse("7").expect("valid"));
        assert_ne!(user, session);
        assert_ne!(user.to_string(), session.to_string());
    }

    #[test]
    fn viewer_text_form_round_trips() {
        for raw in ["user:7", "session:abc"] {
            assert_eq!(
                ViewerId::parse(raw).map(|v| v.to_string()),
                Ok(raw.to_owned())
            );
        }
        assert!(ViewerId::parse("user:x").is_err());
        assert!(ViewerId::parse("7").is_err());
    }

    #[test]
    fn same_idempotency_key_gives_same_stream_id() {
        let a = IdempotencyKey::parse("play-1").expect("valid");
        let b = IdempotencyKey::parse("play-1").expect("valid");
        let c = IdempotencyKey::parse("play-2").expect("valid");
        assert_eq!(a.stream_id(), b.stream_id());
        assert_ne!(a.stream_id(), c.stream_id());
    }
}
