//! Running on Citus: which shard holds a viewer, so that a batch never spans
//! two shards.
//!
//! Distributed by `viewer` (`ecosystem/citus/distribute.sql`), a transaction
//! that writes rows of two shards commits with two-phase commit through the
//! coordinator: measured 200× slower per statement than one on a single
//! shard. So on Citus the queue forms each batch from the decisions of one
//! shard ([`ShardMap::group`]), and every statement of the batch names its
//! viewers (`viewer = ANY(…)`), which Citus prunes to that one shard and
//! routes, whole, to the worker holding it.
//!
//! The shard of a key is computed here, without a round trip: Citus hashes a
//! `text` distribution column with Postgres's `hashtext` ([`hash_text`]) and
//! gives each shard a range of the 32-bit hashes, read from `pg_dist_shard`
//! ([`ShardMap::load`]). Grouping is an optimisation only: a stale or missing
//! map makes batches slower (two shards in one), never wrong.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use deadpool_postgres::Client;

use super::error::PostgresError;

/// How often the batch workers re-read the shard ranges (a shard split
/// changes them; moving a shard to another worker does not).
pub(super) const REFRESH: Duration = Duration::from_secs(60);

/// Postgres's `hashtext` for a deterministic collation: `hash_bytes` (Bob
/// Jenkins' lookup3 with Postgres's initial value) of the UTF-8 bytes, as
/// the `int4` SQL sees. Checked against the server's own `hashtext` by
/// `tests/tests/citus_shards.rs`.
pub(super) fn hash_text(key: &str) -> i32 {
    let mut k = key.as_bytes();
    // Postgres uses `int` lengths; keys here are at most a few hundred bytes.
    let mut a = 0x9e37_79b9_u32
        .wrapping_add(k.len() as u32)
        .wrapping_add(3_923_095);
    let (mut b, mut c) = (a, a);
    let word = |bytes: &[u8]| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    while k.len() >= 12 {
        a = a.wrapping_add(word(&k[0..4]));
        b = b.wrapping_add(word(&k[4..8]));
        c = c.wrapping_add(word(&k[8..12]));
        mix(&mut a, &mut b, &mut c);
        k = &k[12..];
    }
    // The last 11 bytes or fewer; the lowest byte of `c` is left for the
    // length (already added), as in lookup3.
    let byte = |i: usize, shift: u32| u32::from(k[i]) << shift;
    let n = k.len();
    if n >= 9 {
        c = c.wrapping_add((9..=n.min(11)).fold(0, |acc, i| acc | byte(i - 1, 8 * (i - 8) as u32)));
    }
    if n >= 5 {
        b = b.wrapping_add((5..=n.min(8)).fold(0, |acc, i| acc | byte(i - 1, 8 * (i - 5) as u32)));
    }
    if n >= 1 {
        a = a.wrapping_add((1..=n.min(4)).fold(0, |acc, i| acc | byte(i - 1, 8 * (i - 1) as u32)));
    }
    finish(&mut a, &mut b, &mut c);
    c as i32
}

fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c) ^ c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a) ^ a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b) ^ b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c) ^ c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a) ^ a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b) ^ b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

fn finish(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// Which shard of `viewers` holds each key: the shards' lowest hashes, in
/// order. Shared by the queue (which groups by it) and the batch workers
/// (which refresh it).
#[derive(Debug, Default)]
pub(super) struct ShardMap {
    ranges: RwLock<Ranges>,
}

#[derive(Debug, Default)]
struct Ranges {
    /// `starts[i]` is the lowest hash of shard `i`; empty until loaded.
    starts: Vec<i32>,
    loaded: Option<Instant>,
}

impl ShardMap {
    /// The group of `viewer`: its shard's index, or (before the ranges are
    /// known) its hash, so that a batch then holds one viewer's hash only,
    /// which lives on one shard whatever the ranges.
    pub fn group(&self, viewer: &str) -> i64 {
        let hash = hash_text(viewer);
        // Read under the guard: a binary search, no clone.
        let ranges = self.read();
        let starts = &ranges.starts;
        if starts.is_empty() {
            return i64::from(hash) - (1 << 32);
        }
        // Index of the last shard starting at or below `hash`.
        starts
            .partition_point(|start| *start <= hash)
            .saturating_sub(1) as i64
    }

    /// Whether the ranges are missing or older than [`REFRESH`].
    pub fn stale(&self) -> bool {
        self.read()
            .loaded
            .map_or(true, |at| at.elapsed() >= REFRESH)
    }

    /// Reads the shard ranges of `viewers` from the Citus metadata. Leaves
    /// the map as it was if they cannot be read.
    pub async fn load(&self, client: &Client) -> Result<usize, PostgresError> {
        let rows = client
            .query(
                "SELECT shardminvalue::integer AS start FROM pg_dist_shard \
                  WHERE logicalrelid = 'viewers'::regclass ORDER BY 1",
                &[],
            )
            .await?;
        let starts = rows
            .iter()
            .map(|row| row.try_get::<_, i32>("start"))
            .collect::<Result<Vec<_>, _>>()?;
        let shards = starts.len();
        let mut ranges = self.ranges.write().unwrap_or_else(|p| p.into_inner());
        *ranges = Ranges {
            starts,
            loaded: Some(Instant::now()),
        };
        Ok(shards)
    }

    /// Counts a failed [`ShardMap::load`] as a refresh, so the next try
    /// waits for [`REFRESH`] instead of coming with every batch.
    pub fn postpone(&self) {
        self.ranges
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .loaded = Some(Instant::now());
    }

    /// A map with the given shard starts, as if loaded.
    #[cfg(test)]
    pub fn fixed(starts: Vec<i32>) -> Self {
        Self {
            ranges: RwLock::new(Ranges {
                starts,
                loaded: Some(Instant::now()),
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ranges> {
        self.ranges.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SELECT k, hashtext(k)` on PostgreSQL 15 (keys of every length class:
    /// empty, under 4, 4–8, 9–11 bytes tails, and more than 12 bytes).
    #[test]
    fn hash_text_is_postgres_hashtext() {
        for (key, expected) in KNOWN {
            assert_eq!(hash_text(key), *expected, "hashtext({key:?})");
        }
    }

    const KNOWN: &[(&str, i32)] = &[
        ("", -1477818771),
        ("a", 1075015857),
        ("ab", 1718550461),
        ("abc", -785388649),
        ("abcd", -393934804),
        ("user:1", 829193487),
        ("user:42", -1579110294),
        ("user:9", 1763903600),
        ("abcdefghi", -92131489),
        ("user:12345", 13107892),
        ("user:123456", -1762042866),
        ("session:0f8fad5b-d9cb-469f-a165-70867728950e", 2024676271),
        ("abcdefghijkl", -1586087212),
        ("é☃", 1968207869),
    ];

    #[test]
    fn a_key_belongs_to_the_last_shard_starting_at_or_below_its_hash() {
        let map = ShardMap::fixed(vec![i32::MIN, -1000, 0, 1000]);
        for key in ["user:1", "user:2", "session:x", ""] {
            let hash = hash_text(key);
            let expected = match hash {
                h if h < -1000 => 0,
                h if h < 0 => 1,
                h if h < 1000 => 2,
                _ => 3,
            };
            assert_eq!(map.group(key), expected, "{key}: hash {hash}");
        }
        assert!(!map.stale());
    }

    #[test]
    fn before_the_ranges_are_read_each_hash_is_its_own_group() {
        let map = ShardMap::default();
        assert!(map.stale());
        assert_eq!(map.group("user:1"), map.group("user:1"));
        assert_ne!(map.group("user:1"), map.group("user:2"));
        assert!(map.group("user:1") < 0, "never a shard index");
    }
}
