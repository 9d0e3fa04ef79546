//! Quick runs from flags, with no scenario file: `drover run --url … --model … --rate …` against
//! a `drover mock` process, and `--print-scenario`, whose file validates and sends the same
//! traffic (the same requests at the same intended times) with the same seed.

use crate::common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{drover, drover_bin, only_run_dir, text};

/// A `drover mock` process on a free loopback port, killed when dropped.
struct MockProcess {
    child: Child,
    base_url: String,
}

impl MockProcess {
    fn start() -> MockProcess {
        let mut child = Command::new(drover_bin())
            .args([
                "mock",
                "--addr",
                "127.0.0.1:0",
                "--ttft",
                "5ms",
                "--itl",
                "1ms",
            ])
            .args(["--output-tokens", "8"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base_url = line
            .trim()
            .strip_prefix("drover mock listening on ")
            .unwrap_or_else(|| panic!("{line}"))
            .to_string();
        MockProcess { child, base_url }
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (request, class, input tokens, intended send time) of every exported request, by request
/// (the export is in the order requests finished).
fn traffic(run: &Path) -> Vec<(u64, String, u64, String)> {
    let mut requests: Vec<_> = std::fs::read_to_string(run.join("requests.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                v["request"].as_u64().unwrap(),
                v["class"].as_str().unwrap().to_string(),
                v["input_tokens"].as_u64().unwrap(),
                v["intended_ms"].to_string(),
            )
        })
        .collect();
    requests.sort();
    requests
}

#[test]
fn a_run_from_flags_becomes_a_file_that_sends_the_same_traffic() {
    let mock = MockProcess::start();
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--url",
        mock.base_url.as_str(),
        "--model",
        "m",
        "--rate",
        "20",
        "--duration",
        "2s",
        "--seed",
        "9",
    ];
    let quick = |extra: &[&str]| {
        let mut args = vec!["run"];
        args.extend_from_slice(&flags);
        args.extend_from_slice(extra);
        drover(dir.path(), &args, &[])
    };
    let output = quick(&["--no-progress", "--out", "flags", "--export-requests"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let from_flags = only_run_dir(&dir.path().join("flags"));

    let printed = quick(&["--print-scenario"]);
    assert_eq!(printed.status.code(), Some(0), "{}", text(&printed.stderr));
    let scenario = text(&printed.stdout);
    assert!(scenario.contains("seed = 9"), "{scenario}");
    assert!(scenario.contains("rate = 20.0"), "{scenario}");
    std::fs::write(dir.path().join("quick-run.toml"), &scenario).unwrap();
    let validated = drover(dir.path(), &["validate", "quick-run.toml"], &[]);
    assert_eq!(
        validated.status.code(),
        Some(0),
        "{}",
        text(&validated.stderr)
    );

    let output = drover(
        dir.path(),
        &[
            "run",
            "quick-run.toml",
            "--no-progress",
            "--out",
            "file",
            "--export-requests",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let from_file = only_run_dir(&dir.path().join("file"));
    let (sent_by_flags, sent_by_file) = (traffic(&from_flags), traffic(&from_file));
    assert!(sent_by_flags.len() >= 30, "{}", sent_by_flags.len());
    assert_eq!(sent_by_flags, sent_by_file);
    let as_run = |run: &Path| {
        let results: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap())
                .unwrap();
        results["scenario"]["as_run"].clone()
    };
    assert_eq!(as_run(&from_flags), as_run(&from_file));
}

#[test]
fn quick_run_flags_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (
            vec!["run", "--url", "http://127.0.0.1:9/v1"],
            "--model <MODEL>",
        ),
        (
            vec!["run", "s.toml", "--url", "http://127.0.0.1:9/v1"],
            "cannot be used with",
        ),
        (
            vec!["run", "--mock", "--rate", "5", "--users", "2"],
            "cannot be used with",
        ),
        (vec!["run", "--mock", "--duration", "soon"], "soon"),
        (vec!["run", "--mock", "--api", "grpc"], "grpc"),
        (vec!["run"], "SCENARIO"),
    ] {
        let output = drover(dir.path(), &args, &[]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // The embedded mock, its whole scenario printed: one target answering as much as asked.
    let output = drover(
        dir.path(),
        &[
            "run",
            "--mock",
            "--requests",
            "6",
            "--users",
            "2",
            "--max-tokens",
            "12",
            "--print-scenario",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let file: toml::Table = toml::from_str(&text(&output.stdout)).unwrap();
    assert_eq!(
        file["targets"][0]["mock"]["output_tokens"].as_integer(),
        Some(12)
    );
    assert_eq!(file["load"]["users"].as_integer(), Some(2));
    assert!(
        !dir.path().join("reports").exists(),
        "--print-scenario sends nothing"
    );
}
