//! Entry points for the fuzz targets under `fuzz/` (and for `tests/fuzz_corpus.rs`, which replays
//! their corpora on stable Rust). Each must never panic, whatever bytes it gets.

use std::path::Path;

use crate::protocol::openai;
use crate::protocol::sse::{SseItem, SseParser, DEFAULT_MAX_EVENT_BYTES};

/// SSE parsing of arbitrary bytes: the first byte picks a split point and a short size limit.
/// Parsing in two pieces must give the same items as in one, with the default limit and with the
/// short one. Every event is then read as an OpenAI chunk, and the direct reader of the common
/// chunk shape and a stream's reader (with its template of the last chunk) must agree with
/// serde's full reader.
pub fn sse_stream(data: &[u8]) {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let split = first as usize % (stream.len() + 1);
    let (head, tail) = stream.split_at(split);
    let whole = sse_items(DEFAULT_MAX_EVENT_BYTES, &[stream]);
    assert_eq!(
        whole,
        sse_items(DEFAULT_MAX_EVENT_BYTES, &[head, tail]),
        "chunking changed the events"
    );
    // A limit as short as the lines themselves: where the stream stops must not move either.
    let limit = 4 + usize::from(first % 64);
    assert_eq!(
        sse_items(limit, &[stream]),
        sse_items(limit, &[head, tail]),
        "chunking moved the size limit"
    );
    let mut reader = openai::ChunkReader::default();
    for item in whole {
        if let SseItem::Event(event) = item {
            let full = openai::parse_chunk_in_full(&event.data);
            assert_eq!(
                openai::parse_chunk(&event.data),
                full,
                "the chunk readers disagree"
            );
            assert_eq!(
                reader.read(&event.data),
                full,
                "the stream's reader disagrees"
            );
        }
    }
    let _ = openai::parse_completion(stream);
    let _ = openai::describe_error_body(stream);
}

/// The items of `pieces` fed in turn to one parser with the size limit `limit`.
fn sse_items(limit: usize, pieces: &[&[u8]]) -> Vec<SseItem> {
    let mut parser = SseParser::with_limit(limit);
    let mut items = Vec::new();
    for piece in pieces {
        parser.feed(piece, &mut items);
    }
    items
}

/// Reading a results file (as `drover report` does) and rendering it: the terminal summary,
/// the charts (as SVG), `summary.md` and `report.html`, alone and compared with itself.
pub fn results_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(results) = crate::report::parse_results(text, "fuzz.json") else {
        return;
    };
    let _ = crate::report::terminal::summary(&results);
    let input = |label: &str| crate::report::ReportInput::new(label, results.clone());
    for inputs in [vec![input("a")], vec![input("a"), input("b")]] {
        let report = crate::report::Report {
            inputs,
            rollout: None,
            sweep: None,
        };
        if let Ok(charts) = crate::report::charts::build(&report) {
            let _ = crate::report::markdown::render(&report, &charts);
            let _ = crate::report::html::render(&report, &charts);
        }
    }
}

/// Loading a scenario file, with no environment variables set.
pub fn scenario_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) =
        crate::scenario::parse_with_env(text, Path::new("fuzz/scenario.toml"), &|_| None)
    {
        let _ = error.to_string();
    }
}

/// A `Retry-After` header value of arbitrary bytes, read at a time the first 8 bytes pick: never a
/// panic, and a wait it reads is never past the ceiling.
pub fn retry_after(data: &[u8]) {
    let (clock, value) = data.split_at(data.len().min(8));
    let mut seconds = [0u8; 8];
    seconds[..clock.len()].copy_from_slice(clock);
    // Any moment from 1970 to about 2106.
    let now = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(u64::from(u32::from_le_bytes([
            seconds[0], seconds[1], seconds[2], seconds[3],
        ])));
    if let Ok(wait) = crate::retry_after::parse(value, now) {
        assert!(wait <= crate::retry_after::CEILING, "{wait:?}");
    }
}
