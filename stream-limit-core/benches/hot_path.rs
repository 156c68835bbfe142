//! Micro-benchmarks of the core's hot path: one start+end decision on the
//! in-memory store, and the pure rule on one viewer's book.
//!
//! `cargo bench -p stream-limit-core --bench hot_path`

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use stream_limit_core::domain::rules::ViewerBook;
use stream_limit_core::{
    EndReason, InMemoryStore, LeaseStore, MaxStreams, OnLimit, StartRequest, StreamId, SystemClock,
    UserId, ViewerId,
};

fn request(viewer: u64) -> StartRequest {
    StartRequest {
        replaces: None,
        viewer: ViewerId::User(UserId::parse(&viewer.to_string()).expect("digits")),
        stream_id: StreamId::random(),
        generated_id: true,
        ttl: Duration::from_secs(180),
        default_limit: MaxStreams::DEFAULT,
        on_limit: OnLimit::Reject,
        device_id: None,
        content_id: None,
    }
}

fn in_memory_start_end(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = InMemoryStore::with_clock(Arc::new(SystemClock));
    // 100k viewers, as in the HTTP benchmark's mix.
    let requests: Vec<StartRequest> = (0..100_000).map(request).collect();
    let mut next = 0usize;
    c.bench_function("in_memory_store start+end", |b| {
        b.iter(|| {
            let request = &requests[next % requests.len()];
            next = next.wrapping_add(7919);
            runtime.block_on(async {
                store.start(request).await.expect("in memory");
                store
                    .end(&request.viewer, request.stream_id, EndReason::Ended)
                    .await
                    .expect("in memory")
            })
        })
    });
}

fn rule_start_end(c: &mut Criterion) {
    let mut book = ViewerBook::default();
    let mut request = request(1);
    let now = chrono::Utc::now();
    // A new stream id each time, as real starts have: the history fills up to
    // its cap and every start checks it for a replayed id.
    let ids: Vec<StreamId> = (0..4096).map(|_| StreamId::random()).collect();
    let mut next = 0usize;
    c.bench_function("ViewerBook start+end", |b| {
        b.iter(|| {
            request.stream_id = ids[next % ids.len()];
            next += 1;
            book.start(&request, now);
            book.end(request.stream_id, EndReason::Ended, now)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = in_memory_start_end, rule_start_end
}
criterion_main!(benches);
