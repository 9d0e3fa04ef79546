//! The sweep finds the knee: the mock's capacity model (4 decode slots, 40 ms per answer) keeps
//! TTFT flat up to 4 closed-loop users and queues beyond, so `ttft.p90 < 35ms` holds up to 4
//! users and fails from 6. (A p90, not a p99: a 2 s step at 2 users has about 100 samples, enough
//! to bound a p90 from above, not a p99, which needs 368.) Holds the timing lock: the verdicts rest on the mock's delays.

use crate::common;

use common::{drover, only_run_dir, text, TIMING_LOCK};

const SCENARIO: &str = r#"
name = "knee"

[[targets]]
name = "mock"
model = "m"
[targets.mock]
ttft = "20ms"
itl = "2ms"
output_tokens = 10
decode_slots = 4

[[classes]]
name = "c"
input_tokens = 8

[load]
kind = "closed"
users = 1
duration = "1s"

[slo]
assert = ["ttft.p90 < 35ms"]

[sweep]
over = "users"
values = [2, 4, 6, 8]
step_duration = "2s"
"#;

#[tokio::test]
async fn the_sweep_finds_the_knee_of_a_mock_with_four_decode_slots() {
    let _timing = TIMING_LOCK.lock().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), SCENARIO).unwrap();
    let output = drover(
        dir.path(),
        &["run", "s.toml", "--out", "out", "--no-progress"],
        &[],
    );
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    let run_dir = only_run_dir(&dir.path().join("out"));
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("sweep.json")).unwrap())
            .unwrap();
    assert_eq!(sweep["over"], "users");
    assert_eq!(sweep["knee"], 4.0, "{sweep:#}");
    assert_eq!(sweep["first_miss"], 6.0);
    let steps = sweep["steps"].as_array().unwrap();
    // It stops at the first miss; every step ran and kept its own results file.
    assert_eq!(steps.len(), 3);
    let verdicts: Vec<&str> = steps
        .iter()
        .map(|s| s["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["pass", "pass", "fail"]);
    for step in steps {
        let results = run_dir.join(step["results"].as_str().unwrap());
        let results: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(results).unwrap()).unwrap();
        assert_eq!(results["slo"]["verdict"], step["verdict"]);
        assert!(step["sent"].as_u64().unwrap() > 0);
    }
    // Below capacity TTFT stays at the mock's 20 ms; past it requests queue for a slot.
    let p99 = |i: usize| steps[i]["ttft_p99_ms"].as_f64().unwrap();
    assert!(p99(1) < 35.0 && p99(2) > 35.0, "{steps:#?}");
    assert!(
        stdout.contains("knee: 4 users is the highest load that met every SLO"),
        "{stdout}"
    );
}

/// A priced rate sweep: 40 then 80 requests (20 and 40 req/s for 2 s each), each projected at
/// $0.000614 (107 input tokens at $2/1M, 50 output at $8/1M): $0.0737 for the whole sweep.
const PRICED_SWEEP: &str = r#"
name = "priced-sweep"

[[targets]]
name = "mock"
model = "m"
pricing = { model = "gpt-4.1" }
[targets.mock]
ttft = "5ms"
itl = "1ms"
output_tokens = 50

[[classes]]
name = "c"
input_tokens = 100
max_tokens = 50

[load]
kind = "open"
arrival = "constant"
rate = 10
duration = "1s"

[slo]
assert = ["ttft.p90 < 1s"]

[sweep]
over = "rate"
values = [20, 40]
step_duration = "2s"
"#;

#[tokio::test]
async fn one_budget_covers_the_whole_sweep() {
    let _timing = TIMING_LOCK.lock().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), PRICED_SWEEP).unwrap();
    // The projection counts every step, so a budget below it refuses to start.
    let output = common::run_s_toml(dir.path(), &["--budget", "0.06"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("projection \"mock\": 120 requests"),
        "{stderr}"
    );
    // Started anyway, the sweep stops at the budget, across its steps.
    let output = common::run_s_toml(dir.path(), &["--budget", "0.06", "--allow-over-budget"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("the budget, which covers the whole sweep, was reached"),
        "{stderr}"
    );
    // The steps' spend alerts are announced as they are crossed, as a run's are.
    assert!(
        stderr.contains("warning: spend passed 50% of the budget"),
        "{stderr}"
    );
    let run_dir = only_run_dir(&dir.path().join("out"));
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("sweep.json")).unwrap())
            .unwrap();
    assert_eq!(sweep["budget_exhausted"], true, "{sweep:#}");
    let spent: f64 = sweep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            let results: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(run_dir.join(step["results"].as_str().unwrap())).unwrap(),
            )
            .unwrap();
            results["spend"]["total"].as_f64().unwrap()
        })
        .sum();
    // Each request costs $0.0006 at the mock; a few may be in flight when the cap is reached.
    assert!(spent <= 0.06 + 10.0 * 0.0006, "spent {spent}");
    assert!(spent >= 0.05, "spent {spent}");
}

/// The legend texts of a chart's SVG.
fn svg_texts(path: &std::path::Path) -> Vec<String> {
    let svg = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let document = roxmltree::Document::parse(&svg).unwrap();
    document
        .descendants()
        .filter(|n| n.tag_name().name() == "text")
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect()
}

#[tokio::test]
async fn find_the_knee_writes_a_report_with_the_load_charts_and_the_knee_marked() {
    let _timing = TIMING_LOCK.lock().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let output = drover(
        root,
        &[
            "run",
            "scenarios/find-the-knee.toml",
            "--out",
            out.path().to_str().unwrap(),
            "--no-progress",
        ],
        &[],
    );
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    let run_dir = only_run_dir(out.path());
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("sweep.json")).unwrap())
            .unwrap();
    let knee = sweep["knee"].as_f64().expect("a knee was found");
    let knee_label = format!("knee: {knee} req/s");

    // The latency-against-load chart: both panels, the SLO's own statistic and threshold, and
    // the knee as a line of its own.
    let latency = svg_texts(&run_dir.join("charts/sweep-latency.svg"));
    for text in [
        "Latency against offered load (rate)",
        "Latency against achieved throughput",
        "TTFT p50",
        "E2E p99",
        "ttft.p90",
        "SLO ttft.p90 < 200ms",
        knee_label.as_str(),
    ] {
        assert!(
            latency.iter().any(|t| t == text),
            "{text} not in {latency:?}"
        );
    }
    // The Pareto chart: a point per step and the knee.
    let pareto = svg_texts(&run_dir.join("charts/sweep-pareto.svg"));
    assert!(pareto.iter().any(|t| t == &knee_label), "{pareto:?}");
    assert!(
        pareto.iter().any(|t| t.starts_with("steps (rate 20 to")),
        "{pareto:?}"
    );
    assert!(run_dir.join("charts/sweep-pareto.png").exists());

    // summary.md and report.html: the knee line and a row per step, the knee's row marked.
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    let knee_line = stdout
        .lines()
        .find(|l| l.starts_with("knee: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(summary.contains(knee_line), "{summary}");
    assert!(
        summary.starts_with("# drover sweep: find-the-knee"),
        "{summary}"
    );
    let steps = sweep["steps"].as_array().unwrap();
    let rows: Vec<&str> = summary
        .lines()
        .skip_while(|l| !l.starts_with("## Sweep"))
        .take_while(|l| !l.starts_with("## Summary"))
        .filter(|l| l.starts_with("| ") && !l.starts_with("| rate |"))
        .collect();
    assert_eq!(rows.len(), steps.len(), "{summary}");
    assert!(
        rows.iter()
            .any(|r| r.starts_with(&format!("| {knee} | pass (knee) |"))),
        "{rows:?}"
    );
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    roxmltree::Document::parse(html.trim_start_matches("<!DOCTYPE html>")).unwrap();
    assert!(html.contains("id=\"sweep\"") && html.contains("id=\"chart-sweep-latency\""));
    assert!(html.contains("id=\"chart-sweep-pareto\""));
}
