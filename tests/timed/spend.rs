//! The spend guard from the command line: a projection over the budget refuses to start, a cap of
//! about half the projection stops the run at the cap, a projection with fixed lengths equals the
//! hand-computed cost, and an unpriced target needs an explicit choice. Embedded mocks only.

use crate::common;

use std::path::Path;

use common::{drover, text};
use drover::results::{RunResults, RunStatus};

/// 400 requests of 100 synthetic words and at most 50 output tokens (the mock always produces
/// 50), priced as GPT-4.1: $2 per 1M input, $8 per 1M output.
fn scenario(extra_cost: &str, extra_target: &str) -> String {
    format!(
        r#"
name = "spend"
[[targets]]
name = "paid"
model = "mock-llm"
mode = "stream"
pricing = {{ model = "gpt-4.1" }}
[targets.mock]
ttft = "2ms"
itl = "1ms"
output_tokens = 50
{extra_target}
[[classes]]
name = "c"
input_tokens = 100
max_tokens = 50

[load]
kind = "closed"
users = 4
requests = 400

[cost]
{extra_cost}
"#
    )
}

/// Projected per request: input 100 words + 7 chat-format tokens = 107 at $2/1M, output 50 at
/// $8/1M: 0.000214 + 0.0004 = $0.000614. Actual per request at the mock (it counts words only):
/// 100 × 2 + 50 × 8 = $0.0006.
const PROJECTED_PER_REQUEST: f64 = (107.0 * 2.0 + 50.0 * 8.0) / 1e6;
const ACTUAL_PER_REQUEST: f64 = (100.0 * 2.0 + 50.0 * 8.0) / 1e6;

fn write(dir: &Path, text: &str) {
    std::fs::write(dir.join("s.toml"), text).unwrap();
}

fn results(dir: &Path) -> RunResults {
    let folder = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .next()
        .expect("a report folder")
        .unwrap()
        .path();
    serde_json::from_str(&std::fs::read_to_string(folder.join("results.json")).unwrap()).unwrap()
}

#[test]
fn a_projection_with_fixed_lengths_equals_the_hand_computed_cost() {
    let _serial = common::TIMING_LOCK.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let plan = drover::scenario::parse(&scenario("", ""), &dir.path().join("s.toml")).unwrap();
    let projection = drover::spend::project(&plan).unwrap();
    let target = &projection.targets[0];
    assert_eq!(target.requests, 400);
    assert_eq!(target.input_tokens, 400 * 107);
    assert_eq!(target.output_tokens, 400 * 50);
    let expected = 400.0 * PROJECTED_PER_REQUEST; // $0.2456
    assert!(
        (projection.total() - expected).abs() < 1e-12,
        "{}",
        projection.total()
    );
    // Every request costs the same; the range is read from a 2-digit histogram (within 1%).
    let (p5, p95) = target.request_cost_p5_p95.unwrap();
    for value in [p5, p95] {
        assert!(
            (value / PROJECTED_PER_REQUEST - 1.0).abs() < 0.01,
            "{value}"
        );
    }
    // `validate` prints it.
    write(dir.path(), &scenario("", ""));
    let output = drover(dir.path(), &["validate", "s.toml"], &[]);
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("projection \"paid\": 400 requests, 42,800 input + 20,000 output tokens")
            && stdout.contains("0.246 USD"),
        "{stdout}"
    );
}

#[test]
fn a_projection_over_the_budget_does_not_start() {
    let _serial = common::TIMING_LOCK.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &scenario("budget = 0.1", ""));
    let output = drover(dir.path(), &["run", "s.toml", "--out", "out"], &[]);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("the run is projected at 0.246 USD, over its budget of 0.100 USD"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was sent") && stderr.contains("--allow-over-budget"));
    assert!(
        !dir.path().join("out").exists(),
        "no run folder: the run never started"
    );
    // --budget on the command line overrides the scenario's.
    let output = drover(
        dir.path(),
        &["run", "s.toml", "--out", "out", "--budget", "0.05"],
        &[],
    );
    assert_eq!(output.status.code(), Some(5));
    assert!(text(&output.stderr).contains("over its budget of 0.0500 USD"));
}

#[test]
fn a_cap_of_half_the_projection_stops_sending_at_the_cap() {
    let _lock = common::TIMING_LOCK.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let cap = 0.1228; // half the projected $0.2456
    write(dir.path(), &scenario(&format!("budget = {cap}"), ""));
    let output = drover(
        dir.path(),
        &[
            "run",
            "s.toml",
            "--out",
            "out",
            "--no-progress",
            "--allow-over-budget",
        ],
        &[],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("starting anyway (--allow-over-budget)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: spend passed 50% of the budget"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: spend passed 80% of the budget"),
        "{stderr}"
    );
    let stdout = text(&output.stdout);
    assert!(stdout.contains("STOPPED AT THE BUDGET"), "{stdout}");
    let results = results(dir.path());
    assert_eq!(results.status, RunStatus::BudgetExhausted);
    let spend = results.spend.as_ref().unwrap();
    assert!(spend.exhausted);
    assert_eq!(spend.budget, Some(cap));
    assert_eq!(spend.alerts_crossed, vec![0.5, 0.8]);
    // Under the cap, and within one request's projected cost of it.
    let left = cap - spend.total;
    assert!(
        (0.0..=PROJECTED_PER_REQUEST).contains(&left),
        "spent {} of {cap}",
        spend.total
    );
    // Every request that started finished: none aborted, all succeeded, each cost $0.0006.
    let summary = &results.targets[0].summary;
    assert_eq!(summary.requests.aborted, 0);
    assert_eq!(summary.requests.succeeded, summary.requests.sent);
    assert!(summary.requests.sent < 400);
    assert!((spend.total - summary.requests.sent as f64 * ACTUAL_PER_REQUEST).abs() < 1e-12);
}

#[test]
fn an_unpriced_target_under_a_budget_needs_an_explicit_choice() {
    let _serial = common::TIMING_LOCK.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let unpriced = "\n[[targets]]\nname = \"free\"\nmodel = \"mock-llm\"\n[targets.mock]\nttft = \"1ms\"\nitl = \"1ms\"\noutput_tokens = 5\n";
    write(dir.path(), &scenario("budget = 10", unpriced));
    let output = drover(dir.path(), &["run", "s.toml", "--out", "out"], &[]);
    assert_eq!(output.status.code(), Some(5));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("target(s) free are unpriced"), "{stderr}");
    assert!(
        stderr.contains("projection \"free\": 400 requests"),
        "{stderr}"
    );
    assert!(stderr.contains("unpriced (its model is not in the pricing table)"));
    let output = drover(
        dir.path(),
        &[
            "run",
            "s.toml",
            "--out",
            "out",
            "--no-progress",
            "--allow-unpriced",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let spend = results(dir.path()).spend.unwrap();
    assert_eq!((spend.targets_priced, spend.targets_unpriced), (1, 1));
    assert!(!spend.exhausted);
}

#[test]
fn a_server_counting_more_than_projected_stays_within_the_cap_and_the_requests_in_flight() {
    let _lock = common::TIMING_LOCK.blocking_lock();
    // The mock reports 1.5 and 20 times the input tokens of each prompt (150 or 2,000 for the
    // 100 the projection counts): each request then costs 1.14 or 7.17 times its projection.
    for (scale, shown) in [(1.5, "1.14x"), (20.0, "7.17x")] {
        let actual = (100.0 * scale * 2.0 + 50.0 * 8.0) / 1e6;
        let dir = tempfile::tempdir().unwrap();
        let cap = 0.05;
        write(
            dir.path(),
            &scenario(
                &format!("budget = {cap}"),
                &format!("input_usage_scale = {scale}"),
            ),
        );
        let output = common::run_s_toml(dir.path(), &["--allow-over-budget"]);
        let stdout = text(&output.stdout);
        assert_eq!(output.status.code(), Some(6), "{}", text(&output.stderr));
        let results = results(dir.path());
        let spend = results.spend.as_ref().unwrap();
        let sent = results.targets[0].summary.requests.sent;
        assert!((spend.total - sent as f64 * actual).abs() < 1e-9, "{scale}");
        // At most the cap plus what the requests in flight (4 users) can cost; and the guard
        // learned the real cost, so it did not stop far below the cap either.
        assert!(
            spend.total <= cap + 4.0 * actual + 1e-9,
            "{scale}: spent {}",
            spend.total
        );
        assert!(
            spend.total >= cap - 5.0 * actual,
            "{scale}: spent {}",
            spend.total
        );
        assert!(
            stdout.contains(&format!(
                "target \"paid\": requests cost up to {shown} their projected cost"
            )),
            "{stdout}"
        );
    }
}
