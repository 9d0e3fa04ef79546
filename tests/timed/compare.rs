//! `drover compare` end to end from the CLI: identical runs are unchanged (exit 0); a TTFT 30%
//! higher is a regression (exit 8) in the terminal table, the Markdown and the JUnit XML; two runs
//! of one mock configuration with different seeds are not flagged; unusable inputs exit 2. Runs
//! hold the timing lock: the verdicts rest on the mock's delays.

use crate::common;

use std::path::{Path, PathBuf};

use common::{drover, only_run_dir, text, TIMING_LOCK};

fn scenario(seed: u64, ttft_ms: u64) -> String {
    format!(
        r#"
name = "gate"
seed = {seed}

[[targets]]
name = "mock"
model = "m"
[targets.mock]
ttft = {{ dist = "normal", mean = "{ttft_ms}ms", spread = "2ms" }}
itl = "3ms"
output_tokens = 16

[[classes]]
name = "chat"
input_tokens = {{ dist = "uniform", min = 16, max = 64 }}
max_tokens = 16

[load]
kind = "closed"
users = 8
requests = 240
"#
    )
}

/// Runs the scenario in `dir/name` and returns its results.json.
fn run(dir: &Path, name: &str, text_: &str) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("s.toml"), text_).unwrap();
    let output = drover(
        &folder,
        &["run", "s.toml", "--out", "out", "--no-progress"],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    only_run_dir(&folder.join("out")).join("results.json")
}

fn compare(dir: &Path, baseline: &Path, current: &Path) -> (Option<i32>, String) {
    let output = drover(
        dir,
        &[
            "compare",
            baseline.to_str().unwrap(),
            current.to_str().unwrap(),
            "--markdown",
            "compare.md",
            "--junit",
            "compare.xml",
        ],
        &[],
    );
    (
        output.status.code(),
        text(&output.stdout) + &text(&output.stderr),
    )
}

/// Checks the JUnit shape (testsuites > testsuite > testcase, failures counted) and returns the
/// names of the failed test cases.
fn junit_failures(path: &Path) -> Vec<String> {
    let xml = std::fs::read_to_string(path).unwrap();
    let document = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let mut failed = Vec::new();
    let mut total = 0;
    for suite in root.children().filter(|n| n.is_element()) {
        assert_eq!(suite.tag_name().name(), "testsuite");
        let cases: Vec<_> = suite.children().filter(|n| n.is_element()).collect();
        assert_eq!(suite.attribute("tests").unwrap(), cases.len().to_string());
        let failures = cases
            .iter()
            .filter(|case| case.children().any(|c| c.has_tag_name("failure")))
            .count();
        assert_eq!(suite.attribute("failures").unwrap(), failures.to_string());
        for case in cases {
            assert_eq!(case.tag_name().name(), "testcase");
            assert!(case.attribute("name").is_some() && case.attribute("classname").is_some());
            total += 1;
            if let Some(failure) = case.children().find(|c| c.has_tag_name("failure")) {
                assert!(failure.attribute("message").is_some());
                failed.push(format!(
                    "{}:{}",
                    case.attribute("classname").unwrap(),
                    case.attribute("name").unwrap()
                ));
            }
        }
    }
    assert_eq!(root.attribute("tests").unwrap(), total.to_string());
    assert_eq!(
        root.attribute("failures").unwrap(),
        failed.len().to_string()
    );
    failed
}

#[tokio::test]
async fn identical_runs_are_unchanged_and_a_slower_ttft_regresses() {
    let _timing = TIMING_LOCK.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let baseline = run(dir.path(), "base", &scenario(1, 30));

    let (code, output) = compare(dir.path(), &baseline, &baseline);
    assert_eq!(code, Some(0), "{output}");
    assert!(
        output.contains("compare: 0 regressed, 0 improved, 0 inconclusive"),
        "{output}"
    );
    assert!(junit_failures(&dir.path().join("compare.xml")).is_empty());

    // TTFT 30% higher (39 ms instead of 30 ms).
    let slower = run(dir.path(), "slower", &scenario(1, 39));
    std::fs::remove_file(dir.path().join("compare.md")).unwrap();
    let (code, output) = compare(dir.path(), &baseline, &slower);
    assert_eq!(code, Some(8), "{output}");
    let ttft_line = output
        .lines()
        .find(|l| l.starts_with("mock") && l.contains("(all)") && l.contains("ttft.p50"))
        .unwrap_or_else(|| panic!("{output}"));
    assert!(ttft_line.ends_with("regressed"), "{ttft_line}");
    let failures = junit_failures(&dir.path().join("compare.xml"));
    assert!(
        failures.contains(&"mock.(all):ttft.p50".to_string()),
        "{failures:?}"
    );
    let markdown = std::fs::read_to_string(dir.path().join("compare.md")).unwrap();
    assert!(
        markdown.starts_with("## drover compare: ❌ regressed"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| mock | (all) | ttft.p50 |"),
        "{markdown}"
    );
}

#[tokio::test]
async fn two_seeds_of_one_mock_configuration_are_not_a_regression() {
    let _timing = TIMING_LOCK.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let first = run(dir.path(), "seed1", &scenario(1, 30));
    let second = run(dir.path(), "seed2", &scenario(2, 30));
    let (code, output) = compare(dir.path(), &first, &second);
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("compare: 0 regressed"), "{output}");
}

#[test]
fn unusable_inputs_exit_2_with_the_reason() {
    let _serial = common::TIMING_LOCK.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let (code, output) = compare(dir.path(), &missing, &missing);
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("missing.json"), "{output}");
    // Two different scenarios.
    let document = |name: &str| {
        serde_json::json!({
            "schema": "drover.results/v1", "drover_version": "0.1.0",
            "scenario": { "name": name, "source": "s.toml", "seed": 1, "as_run": {} },
            "status": "completed", "started_at": "2026-11-29T00:00:00Z",
            "ended_at": "2026-11-29T00:00:01Z", "duration_s": 1.0, "warnings": [], "targets": []
        })
        .to_string()
    };
    std::fs::write(dir.path().join("a.json"), document("a")).unwrap();
    std::fs::write(dir.path().join("b.json"), document("b")).unwrap();
    let (code, output) = compare(
        dir.path(),
        &dir.path().join("a.json"),
        &dir.path().join("b.json"),
    );
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("different scenarios"), "{output}");
    // A threshold for a metric that is not compared, or misspelt, is refused, not ignored.
    let a = dir.path().join("a.json");
    for (flag, expected) in [
        ("tft.p50=5ms", "(did you mean ttft.p50?)"),
        ("foo=5%", "\"foo\" is not a metric drover compare reports"),
    ] {
        let output = drover(
            dir.path(),
            &[
                "compare",
                a.to_str().unwrap(),
                a.to_str().unwrap(),
                "--threshold",
                flag,
            ],
            &[],
        );
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag}: {stderr}");
        assert!(stderr.contains(expected), "{flag}: {stderr}");
    }
}
