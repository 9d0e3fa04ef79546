//! End to end: drover's whole request path (schedule, draw, HTTP/1.1 over loopback, SSE parsing
//! and timing, recording) against the embedded mock with no configured delay, in requests/s and
//! streamed tokens/s. The mock shares the machine, so this is the pair's capacity, not the
//! client's alone. Run with `cargo bench --bench end_to_end`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use drover::driver::{self, RunOptions, StopSignal};

const REQUESTS: u64 = 2_000;
const TOKENS: u64 = 16;

fn end_to_end(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let text = format!(
        "[[targets]]\nname = \"mock\"\nmodel = \"m\"\nmode = \"stream\"\nhttp = \"http1\"\n\
         [targets.mock]\nttft = \"0ms\"\nitl = \"0ms\"\noutput_tokens = {TOKENS}\n\n\
         [[classes]]\nname = \"c\"\ninput_tokens = 64\nmax_tokens = {TOKENS}\n\n\
         [load]\nkind = \"closed\"\nusers = 32\nrequests = {REQUESTS}\n"
    );
    let plan = drover::scenario::parse(&text, std::path::Path::new("bench.toml")).unwrap();
    let mut group = c.benchmark_group("end to end");
    group.sample_size(10);
    group.throughput(Throughput::Elements(REQUESTS));
    group.bench_function(
        format!("{REQUESTS} streamed requests of {TOKENS} tokens, 32 users, embedded mock"),
        |b| {
            b.iter(|| {
                let results = runtime
                    .block_on(driver::run(
                        &plan,
                        RunOptions::default(),
                        StopSignal::default(),
                    ))
                    .unwrap();
                assert_eq!(results.targets[0].summary.requests.succeeded, REQUESTS);
            })
        },
    );
    group.finish();
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
