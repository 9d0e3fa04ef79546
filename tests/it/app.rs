//! The run workflow called as a library (`app::run`), without the binary: the outcome, the
//! results folder and what is in it.

use drover::app::run::{self, RunRequest};
use drover::app::Outcome;
use drover::driver::StopSignal;

const SCENARIO: &str = r#"name = "app-run"
seed = 7

[[targets]]
name = "mock"
model = "m"
[targets.mock]
ttft = "5ms"
itl = "1ms"
output_tokens = 8

[[classes]]
name = "short"
input_tokens = 16
weight = 3

[[classes]]
name = "long"
input_tokens = 64
weight = 1

[load]
kind = "closed"
users = 4
requests = 40

[slo]
assert = ["ttft.p50 < 2s"]
"#;

#[tokio::test]
async fn app_run_writes_results_and_returns_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("app-run.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = dir.path().join("out");
    let outcome = run::run(RunRequest::new(&scenario, &out), StopSignal::default()).await;
    assert_eq!(outcome, Outcome::Ok);
    let folders: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    let text = std::fs::read_to_string(folders[0].join("results.json")).unwrap();
    let results = drover::report::parse_results(&text, "results.json").unwrap();
    let summary = &results.targets[0].summary;
    assert_eq!(
        (summary.requests.sent, summary.requests.succeeded),
        (40, 40)
    );
    let per_class: u64 = results.targets[0]
        .classes
        .iter()
        .map(|c| c.results.requests.sent)
        .sum();
    assert_eq!(per_class, 40);
    let slo = results.slo.expect("the SLO was evaluated");
    assert_eq!(slo.verdict, drover::slo::Verdict::Pass);
    assert!(folders[0].join("report.html").is_file());
}

#[tokio::test]
async fn app_run_refuses_a_bad_scenario_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("bad.toml");
    std::fs::write(&scenario, SCENARIO.replace("users = 4", "users = 0")).unwrap();
    let out = dir.path().join("out");
    let outcome = run::run(RunRequest::new(&scenario, &out), StopSignal::default()).await;
    assert_eq!(outcome, Outcome::BadInput);
    assert!(!out.exists(), "nothing is written for a refused scenario");
}
