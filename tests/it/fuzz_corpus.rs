//! Replays the fuzz corpora (`fuzz/corpus/<target>/`) and any saved crash inputs
//! (`fuzz/regressions/<target>/`) through the fuzz targets' entry points, on stable Rust, so
//! every input the fuzzers found interesting stays a regression test.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for folder in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{} panics", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn sse_stream_corpus() {
    assert!(replay("sse_stream", drover::fuzzing::sse_stream) >= 2);
}

#[test]
fn results_file_corpus() {
    assert!(replay("results_file", drover::fuzzing::results_file) >= 1);
}

#[test]
fn scenario_file_corpus() {
    assert!(replay("scenario_file", drover::fuzzing::scenario_file) >= 2);
}

#[test]
fn retry_after_corpus() {
    assert!(replay("retry_after", drover::fuzzing::retry_after) >= 10);
}
