//! SLO assertions end to end from the CLI: `scenarios/ttft-claim.toml` (the mock at TTFT
//! 45 ms ± 5 ms) passes `ttft.p50 < 50ms` with its interval and fails `ttft.p99 < 50ms`; 20
//! requests leave `ttft.p99 < 60ms` inconclusive; a run with no successful request never passes.
//! Runs hold the timing lock: the verdicts rest on the mock's delays.

use crate::common;

use std::path::Path;

use common::{drover, only_results, text, TIMING_LOCK};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The test cases of a run's junit.xml, parsed strictly: (name, what the case holds: `failure`,
/// `skipped` or `system-out`).
fn junit_cases(run_dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(run_dir.join("junit.xml")).expect("the run wrote junit.xml");
    let document = roxmltree::Document::parse(&text).expect("junit.xml is well-formed XML");
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let cases: Vec<(String, String)> = document
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|case| {
            let inner = case
                .children()
                .find(|c| c.is_element())
                .map_or("", |c| c.tag_name().name());
            (
                case.attribute("name").unwrap().to_string(),
                inner.to_string(),
            )
        })
        .collect();
    assert_eq!(
        root.attribute("tests").unwrap().parse::<usize>().unwrap(),
        cases.len()
    );
    cases
}

fn assertions(results: &serde_json::Value) -> Vec<(String, String)> {
    results["slo"]["assertions"]
        .as_array()
        .expect("slo assertions in results")
        .iter()
        .map(|a| {
            (
                a["assertion"].as_str().unwrap().to_string(),
                a["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_ttft_claim_passes_at_the_median_and_fails_at_the_tail() {
    let _timing = TIMING_LOCK.lock().await;
    let out = tempfile::tempdir().unwrap();
    let output = drover(
        repo(),
        &[
            "run",
            "scenarios/ttft-claim.toml",
            "--out",
            out.path().to_str().unwrap(),
            "--no-progress",
        ],
        &[],
    );
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(7),
        "{stdout}{}",
        text(&output.stderr)
    );
    let results = only_results(out.path());
    assert_eq!(
        assertions(&results),
        [
            ("ttft.p50 < 50ms".to_string(), "pass".to_string()),
            ("ttft.p99 < 50ms".into(), "fail".into()),
            ("error_rate < 1%".into(), "pass".into()),
            ("good_fraction > 50%".into(), "pass".into()),
        ]
    );
    assert_eq!(results["slo"]["verdict"], "fail");
    // junit.xml: one test case per assertion, the failed one a failure.
    assert_eq!(
        junit_cases(&common::only_run_dir(out.path())),
        [
            ("ttft.p50 < 50ms".to_string(), "system-out".to_string()),
            ("ttft.p99 < 50ms".into(), "failure".into()),
            ("error_rate < 1%".into(), "system-out".into()),
            ("good_fraction > 50%".into(), "system-out".into()),
        ]
    );
    let median = &results["slo"]["assertions"][0];
    assert_eq!(median["samples"], 400);
    let (lower, upper) = (
        median["interval"][0].as_f64().unwrap(),
        median["interval"][1].as_f64().unwrap(),
    );
    let measured = median["measured"].as_f64().unwrap();
    assert!(
        lower <= measured && measured <= upper && upper < 50.0,
        "{median}"
    );
    // The interval is printed with the verdict.
    let line = stdout
        .lines()
        .find(|l| l.contains("ttft.p50 < 50ms: measured"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.starts_with("pass") && line.contains("95% CI") && line.contains("n=400"),
        "{line}"
    );
    assert!(stdout.contains("SLO verdict: FAIL"), "{stdout}");
    // Goodput: the requests within ttft < 50 ms, failures counted against them.
    let goodput = &results["targets"][0]["summary"]["goodput"];
    let good = goodput["good"].as_u64().unwrap();
    assert!((200..400).contains(&good), "{goodput}");
}

fn small_claim(fail_on_inconclusive: bool) -> String {
    format!(
        r#"
[[targets]]
name = "endpoint"
model = "m"
[targets.mock]
ttft = {{ dist = "normal", mean = "45ms", spread = "5ms" }}
itl = "5ms"
output_tokens = 8

[[classes]]
name = "chat"
input_tokens = 16

[load]
kind = "closed"
users = 4
requests = 20

[slo]
fail_on_inconclusive = {fail_on_inconclusive}
assert = ["ttft.p99 < 60ms"]
"#
    )
}

#[tokio::test]
async fn twenty_requests_leave_a_p99_inconclusive_with_the_samples_it_needs() {
    let _timing = TIMING_LOCK.lock().await;
    for (fail_on_inconclusive, code) in [(false, 0), (true, 7)] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.toml"), small_claim(fail_on_inconclusive)).unwrap();
        let output = drover(
            dir.path(),
            &["run", "s.toml", "--out", "out", "--no-progress"],
            &[],
        );
        let stdout = text(&output.stdout);
        assert_eq!(output.status.code(), Some(code), "{stdout}");
        let results = only_results(&dir.path().join("out"));
        let p99 = &results["slo"]["assertions"][0];
        assert_eq!(p99["verdict"], "inconclusive", "{p99}");
        assert_eq!(p99["samples"], 20);
        assert!(
            p99["interval"][1].is_null(),
            "20 samples cannot bound a p99 from above"
        );
        // 0.99^n ≤ 2.5% from n = 368: the top sample then bounds the p99.
        assert_eq!(p99["samples_needed"], 368);
        // Inconclusive is skipped in JUnit, or a failure when it fails the run.
        let expected = if fail_on_inconclusive {
            "failure"
        } else {
            "skipped"
        };
        assert_eq!(
            junit_cases(&common::only_run_dir(&dir.path().join("out"))),
            [("ttft.p99 < 60ms".to_string(), expected.to_string())]
        );
        assert!(
            stdout.contains("about 368 samples would decide"),
            "{stdout}"
        );
    }
}

#[test]
fn a_run_with_no_successful_request_never_passes() {
    let _serial = common::TIMING_LOCK.blocking_lock();
    // A port nothing listens on: every request fails to connect.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        "[[targets]]\nname = \"down\"\nmodel = \"m\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n\n[[classes]]\nname = \"c\"\ninput_tokens = 4\n\n[load]\nkind = \"closed\"\nusers = 1\nrequests = 3\n\n[slo]\nassert = [\"error_rate < 100%\", \"ttft.p50 < 1s\"]\n"
    );
    std::fs::write(dir.path().join("s.toml"), scenario).unwrap();
    let output = drover(
        dir.path(),
        &[
            "run",
            "s.toml",
            "--out",
            "out",
            "--no-progress",
            "--no-preflight",
        ],
        &[],
    );
    assert_ne!(output.status.code(), Some(0));
    let results = only_results(&dir.path().join("out"));
    assert_eq!(results["slo"]["verdict"], "fail");
    for assertion in results["slo"]["assertions"].as_array().unwrap() {
        assert_eq!(assertion["verdict"], "fail", "{assertion}");
        assert!(assertion["note"]
            .as_str()
            .unwrap()
            .contains("no successful request"));
    }
}
