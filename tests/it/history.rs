//! `drover history` refuses bad input with exit 2 and names the file: text that is not a
//! database, a missing history, a checkpoint of an unfinished run, an empty history. (The trend
//! verdicts on real runs are in tests/timed/history.rs.)

use crate::common;

use std::path::Path;

use common::{drover, text};

fn history(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["history"];
    all.extend_from_slice(args);
    drover(dir, &all, &[])
}

#[test]
fn bad_histories_and_results_exit_2_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("notes.txt"),
        "not a database at all, just text\n".repeat(100),
    )
    .unwrap();
    let output = history(dir.path(), &["report", "--db", "notes.txt"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("notes.txt: not a drover history"),
        "{}",
        text(&output.stderr)
    );
    let output = history(dir.path(), &["report", "--db", "missing.sqlite"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("missing.sqlite: no such history"));
    // A checkpoint of an unfinished run is refused.
    let checkpoint = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/baselines/ci-gate.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(checkpoint).unwrap()).unwrap();
    value["status"] = "in_progress".into();
    std::fs::write(dir.path().join("partial.json"), value.to_string()).unwrap();
    let output = history(dir.path(), &["add", "partial.json", "--db", "h.sqlite"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("partial.json: a checkpoint of a run that never finished"),
        "{}",
        text(&output.stderr)
    );
    // An empty history has nothing to report.
    let output = history(dir.path(), &["report", "--db", "h.sqlite"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("the history is empty"),
        "{}",
        text(&output.stderr)
    );
}
