//! Memory per active lease in the in-memory store.
//!
//! `cargo run --release -p stream-limit-core --example lease_memory -- [leases] [per_viewer]`
//!
//! Fills an [`InMemoryStore`] with `leases` active leases (default 1,000,000),
//! `per_viewer` per viewer (default 1, the worst case: one map entry per
//! lease), and prints the growth of the process's resident memory per lease.
//! Resident memory includes allocator overhead and hash-map slack, which a
//! `size_of` count would hide.

use std::sync::Arc;
use std::time::Duration;

use stream_limit_core::{
    InMemoryStore, LeaseStore, MaxStreams, OnLimit, StartRequest, StreamId, SystemClock, UserId,
    ViewerId,
};

fn resident_bytes() -> u64 {
    // /proc/self/statm: size resident shared ... (in pages)
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let leases: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let per_viewer: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let store = InMemoryStore::with_clock(Arc::new(SystemClock));
    let before = resident_bytes();
    for n in 0..leases {
        let viewer = ViewerId::User(UserId::parse(&(n / per_viewer).to_string()).expect("digits"));
        let request = StartRequest {
            replaces: None,
            viewer,
            stream_id: StreamId::random(),
            generated_id: true,
            ttl: Duration::from_secs(3600),
            default_limit: MaxStreams::new(1000).expect("in range"),
            on_limit: OnLimit::Reject,
            device_id: None,
            content_id: None,
        };
        store
            .start(&request)
            .await
            .expect("in-memory store never fails");
    }
    let after = resident_bytes();
    let per_lease = (after - before) as f64 / leases as f64;
    println!("leases={leases} per_viewer={per_viewer} resident_growth_bytes={} bytes_per_lease={per_lease:.1}", after - before);
}
