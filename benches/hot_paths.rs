//! Benchmarks of the per-event and per-request hot paths: SSE parsing, chunk JSON parsing,
//! non-streaming answer parsing, histogram recording and encoding, and building a request (its
//! draw, prompt and JSON body).
//! Run with `cargo bench --bench hot_paths`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use drover::metrics::{encode_histogram, new_histogram};
use drover::protocol::openai::{parse_chunk, parse_chunk_in_full, parse_completion, ChunkReader};
use drover::protocol::sse::{SseItemRef, SseParser};

/// A 1,000-token stream in the shape an OpenAI-compatible server sends.
fn recorded_stream() -> Vec<u8> {
    let mut stream = String::new();
    stream.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
    for i in 0..1000 {
        stream.push_str(&format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" tok{i}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    stream.push_str("data: [DONE]\n\n");
    stream.into_bytes()
}

fn sse(c: &mut Criterion) {
    let stream = recorded_stream();
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    for chunk_size in [64usize, 1500, 16 * 1024] {
        group.bench_function(
            format!("parse 1000 events in {chunk_size}-byte reads"),
            |b| {
                b.iter(|| {
                    let mut parser = SseParser::new();
                    let mut out = Vec::new();
                    for piece in stream.chunks(chunk_size) {
                        parser.feed(black_box(piece), &mut out);
                    }
                    assert_eq!(out.len(), 1002);
                })
            },
        );
    }
    // As the driver reads a stream: each event handed over in place, nothing collected.
    group.bench_function("parse 1000 events in 16384-byte reads, in place", |b| {
        b.iter(|| {
            let mut parser = SseParser::new();
            let mut events = 0usize;
            for piece in stream.chunks(16 * 1024) {
                let visited: Result<(), ()> = parser.feed_each(black_box(piece), |item| {
                    events += usize::from(matches!(item, SseItemRef::Event(_)));
                    Ok(())
                });
                visited.unwrap();
            }
            assert_eq!(events, 1002);
        })
    });
    group.finish();
}

fn chunk_json(c: &mut Criterion) {
    let data = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":" hello"},"logprobs":null,"finish_reason":null}]}"#;
    c.bench_function("parse one content chunk", |b| {
        b.iter(|| parse_chunk(black_box(data)).unwrap())
    });
    // The next chunk of the same stream, read through the template of the one before it.
    let before = data.replace(" hello", " hi");
    let mut reader = ChunkReader::default();
    reader.read(&before).unwrap();
    c.bench_function(
        "parse one content chunk through its stream's template",
        |b| b.iter(|| reader.read(black_box(data)).unwrap()),
    );
    // The same chunk through serde, the reader of every other shape (the comparison for the
    // readers above).
    c.bench_function("parse one content chunk with serde", |b| {
        b.iter(|| parse_chunk_in_full(black_box(data)).unwrap())
    });
}

fn completion_json(c: &mut Criterion) {
    // The answer benches/peers.sh has nginx send.
    let body = br#"{"id":"chatcmpl-peer","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from nginx."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}"#;
    c.bench_function("parse one non-streaming answer", |b| {
        b.iter(|| parse_completion(black_box(body)).unwrap().usage)
    });
}

fn histograms(c: &mut Criterion) {
    c.bench_function("record 1000 latencies", |b| {
        let mut histogram = new_histogram();
        b.iter(|| {
            for value in 0..1000u64 {
                histogram.saturating_record(black_box(40_000 + value * 37));
            }
        })
    });
    let mut histogram = new_histogram();
    for value in 0..100_000u64 {
        histogram.saturating_record(1_000 + value * 13);
    }
    c.bench_function("encode a histogram (V2 + deflate + base64)", |b| {
        b.iter(|| encode_histogram(black_box(&histogram)))
    });
}

fn request_building(c: &mut Criterion) {
    let mut group = c.benchmark_group("request body");
    for tokens in [16u32, 2048] {
        let text = format!(
            "[[targets]]\nname = \"t\"\nmodel = \"m\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\n\
             [[classes]]\nname = \"c\"\ninput_tokens = {tokens}\nmax_tokens = 64\n\n\
             [load]\nkind = \"closed\"\nusers = 1\nrequests = 1\n"
        );
        let plan = drover::scenario::parse(&text, std::path::Path::new("bench.toml")).unwrap();
        let mut k = 0u64;
        group.bench_function(format!("draw and build a {tokens}-token request"), |b| {
            b.iter(|| {
                k += 1;
                drover::driver::request_bytes(black_box(&plan), 0, k)
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    sse,
    chunk_json,
    completion_json,
    histograms,
    request_building
);
criterion_main!(benches);
