//! `drover history` end to end from the CLI: six runs whose TTFT creeps up 2 ms a run (each
//! step under 10%, a third in all) are a slow drift that no comparison of two consecutive runs
//! flags; five runs of one configuration are steady; four are insufficient (bad input: tests/it).
//! Holds the timing lock: the figures rest on the mock's delays.

use crate::common;

use std::path::Path;

use common::{drover, text, TIMING_LOCK};

/// Runs the one-target scenario `name` with the mock's TTFT at `ttft_ms`, into `dir/out`.
fn run(dir: &Path, name: &str, ttft_ms: u64) {
    std::fs::write(
        dir.join("s.toml"),
        format!(
            "name = \"{name}\"\n[[targets]]\nname = \"mock\"\nmodel = \"m\"\npricing = {{ model = \"gpt-4.1\" }}\n\
             [targets.mock]\nttft = \"{ttft_ms}ms\"\nitl = \"1ms\"\noutput_tokens = 8\n\n\
             [[classes]]\nname = \"c\"\ninput_tokens = 16\n\n[load]\nkind = \"closed\"\nusers = 2\nrequests = 40\n"
        ),
    )
    .unwrap();
    let output = common::run_s_toml(dir, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

/// Every results.json under `dir/out` of scenario `name`, oldest first.
fn results_of(dir: &Path, name: &str) -> Vec<String> {
    let mut paths: Vec<String> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{name}-"))
        })
        .map(|p| p.join("results.json").display().to_string())
        .collect();
    paths.sort();
    paths
}

fn history(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["history"];
    all.extend_from_slice(args);
    drover(dir, &all, &[])
}

#[tokio::test]
async fn six_creeping_runs_are_a_slow_drift_and_five_alike_are_steady() {
    let _timing = TIMING_LOCK.lock().await;
    let dir = tempfile::tempdir().unwrap();
    for ttft in [30, 32, 34, 36, 38, 40] {
        run(dir.path(), "creep", ttft);
    }
    for _ in 0..5 {
        run(dir.path(), "flat", 30);
    }
    let creep = results_of(dir.path(), "creep");
    let flat = results_of(dir.path(), "flat");
    let mut add = vec![
        "add",
        "--db",
        "h.sqlite",
        "--commit",
        "0123456789abcdef",
        "--branch",
        "main",
    ];
    add.extend(creep.iter().map(String::as_str));
    let output = history(dir.path(), &add);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout).matches("history: added").count(), 6);
    // Adding the same results again keeps one of each.
    let output = history(dir.path(), &add);
    assert_eq!(text(&output.stdout).matches("is already run").count(), 6);

    let output = history(dir.path(), &["report", "--db", "h.sqlite", "--out", "rep"]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(
        stdout.starts_with("history of creep: 6 completed run(s)"),
        "{stdout}"
    );
    let drift = stdout
        .lines()
        .find(|l| l.starts_with("drift: ttft.p50 of \"mock\": drift +"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        drift.contains("no comparison with the run before would flag it"),
        "{drift}"
    );
    // The report: the runs table (6 rows), the trend table, the chart in both formats.
    let markdown = std::fs::read_to_string(dir.path().join("rep/history.md")).unwrap();
    let runs: Vec<&str> = markdown
        .lines()
        .skip_while(|l| !l.starts_with("## Runs"))
        .take_while(|l| !l.starts_with("## Trends"))
        .filter(|l| l.starts_with("| ") && !l.starts_with("| run |"))
        .collect();
    assert_eq!(runs.len(), 6, "{markdown}");
    assert!(
        runs.iter()
            .all(|r| r.contains("| 0123456789ab | main | mock |")),
        "{runs:?}"
    );
    assert!(
        markdown.contains("| mock | ttft.p50 | drift |"),
        "{markdown}"
    );
    let html = std::fs::read_to_string(dir.path().join("rep/history.html")).unwrap();
    roxmltree::Document::parse(html.trim_start_matches("<!DOCTYPE html>")).unwrap();
    assert!(html.contains("id=\"chart-history\""));
    assert!(dir.path().join("rep/charts/history.png").exists());
    // --fail-on-drift makes it a gate.
    let output = history(
        dir.path(),
        &[
            "report",
            "--db",
            "h.sqlite",
            "--out",
            "rep2",
            "--fail-on-drift",
        ],
    );
    assert_eq!(output.status.code(), Some(8));

    // Five runs of one configuration: steady; four: insufficient.
    let mut add = vec!["add", "--db", "h.sqlite"];
    add.extend(flat.iter().map(String::as_str));
    assert_eq!(history(dir.path(), &add).status.code(), Some(0));
    let output = history(
        dir.path(),
        &[
            "report",
            "--db",
            "h.sqlite",
            "--scenario",
            "flat",
            "--out",
            "flat",
            "--fail-on-drift",
        ],
    );
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("5 completed run(s)") && stdout.contains("; no drift"),
        "{stdout}"
    );
    let output = history(
        dir.path(),
        &[
            "report",
            "--db",
            "h.sqlite",
            "--scenario",
            "flat",
            "--last",
            "4",
            "--out",
            "few",
        ],
    );
    assert!(
        text(&output.stdout)
            .contains("insufficient: a trend needs at least 5 completed runs, there are 4"),
        "{}",
        text(&output.stdout)
    );
}
