//! The harness under every fault the mock can inject: each fault lands in exactly one documented
//! error class, the harness's counts equal the mock's injected counts, no request is lost or
//! counted twice, and stalls cannot make a run hang.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use drover::driver::{self, RunOptions, StopSignal};
use drover::mock::{self, Fault, FaultPlan, LatencyModel, MockConfig, MockOptions};
use drover::results::RunResults;

const KEY: &str = "sk-fault-test-0123456789abcdef";

/// The error class each fault must land in.
fn expected_class(fault: Fault) -> &'static str {
    match fault {
        Fault::ResetBeforeHeaders => "connect",
        Fault::DropMidStream | Fault::NoDone => "truncated_stream",
        Fault::Stall => "timeout_idle",
        Fault::SlowDrip => "timeout_total",
        Fault::MalformedSse
        | Fault::InvalidJson
        | Fault::WrongContentType
        | Fault::NonUtf8
        | Fault::OversizedEvent => "protocol",
        Fault::Http408 => "http_408",
        Fault::Http429 => "throttled",
        Fault::Http500 => "http_500",
        Fault::Http502 => "http_502",
        Fault::Http503 => "http_503",
        Fault::EchoKey => "http_401",
    }
}

fn start_mock(probabilities: Vec<(Fault, f64)>, seed: u64) -> mock::MockHandle {
    mock::start(
        MockConfig {
            ttft: LatencyModel::Fixed(Duration::from_millis(2)),
            itl: LatencyModel::Fixed(Duration::from_millis(1)),
            output_tokens: 6,
            seed,
            faults: FaultPlan {
                probabilities,
                // Limits far from what a CPU stall of a busy 2-core machine produces: a stall
                // outlasts the 1 s idle limit by a second, which in turn is 1,000 times the
                // mock's inter-token gap.
                stall_for: Duration::from_millis(2000),
                drip_every: Duration::from_millis(20),
                oversized_bytes: 1536 * 1024,
            },
            ..MockConfig::default()
        },
        MockOptions::default(),
    )
    .unwrap()
}

async fn run_against(server: &mock::MockHandle, requests: u32) -> (RunResults, Duration) {
    let text = format!(
        r#"
[[targets]]
name = "faulty"
model = "m"
base_url = "{}"
api_key_env = "FAULT_TEST_KEY"
idle_timeout = "1s"
timeout = "2500ms"

[[classes]]
name = "c"
input_tokens = 8

[load]
kind = "closed"
users = 6
requests = {requests}
"#,
        server.base_url()
    );
    let file = toml::from_str(&text).unwrap();
    let plan = drover::scenario::plan_from_file(file, &text, Path::new("faults.toml"), &|name| {
        (name == "FAULT_TEST_KEY").then(|| KEY.to_string())
    })
    .unwrap();
    let started = Instant::now();
    let results = driver::run(&plan, RunOptions::default(), StopSignal::default())
        .await
        .unwrap();
    (results, started.elapsed())
}

/// Checks the books balance and every injected fault is counted in its class: as the request's
/// outcome, or as a failed attempt before it (a reset on a reused connection is sent again on a
/// fresh one, and counted in `retries`).
fn check_counts(results: &RunResults, injected: &BTreeMap<String, u64>, requests: u64) {
    let summary = &results.targets[0].summary;
    assert_eq!(summary.requests.sent, requests);
    assert_eq!(
        summary.requests.succeeded + summary.requests.failed,
        requests,
        "lost or double-counted requests"
    );
    let books = results.targets[0]
        .accounting
        .expect("the run kept its books");
    assert!(books.balanced, "{books:?}");
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (name, count) in injected {
        let fault = Fault::from_name(name).unwrap();
        *expected
            .entry(expected_class(fault).to_string())
            .or_default() += count;
    }
    let mut seen = summary.errors.clone();
    for (class, count) in &summary.retries.attempts_failed {
        assert_eq!(class, "connect", "only a crossed close is retried here");
        *seen.entry(class.clone()).or_default() += count;
    }
    assert_eq!(seen, expected, "harness errors vs injected {injected:?}");
    assert_eq!(
        summary.requests.failed + summary.retries.attempts_failed.values().sum::<u64>(),
        injected.values().sum::<u64>(),
        "every failure is an injected fault"
    );
    let samples = serde_json::to_string(&summary.error_samples).unwrap();
    assert!(!samples.contains(KEY), "the echoed key leaked: {samples}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_lands_in_its_class() {
    let _serial = common::TIMING_LOCK.lock().await;
    for (index, fault) in Fault::ALL.into_iter().enumerate() {
        let server = start_mock(vec![(fault, 0.5)], index as u64 + 1);
        let (results, elapsed) = run_against(&server, 24).await;
        let injected = server.faults_injected();
        assert!(
            injected.get(fault.name()).copied().unwrap_or(0) > 0,
            "{}: nothing injected",
            fault.name()
        );
        check_counts(&results, &injected, 24);
        // 24 requests over 6 users: 4 rounds, each bounded by the 2.5 s whole-request timeout.
        assert!(
            elapsed < Duration::from_secs(12),
            "{}: took {elapsed:?}",
            fault.name()
        );
        if fault == Fault::Http429 {
            let retry_after = &results.targets[0].summary.retry_after_s;
            assert!(!retry_after.is_empty() && retry_after.iter().all(|s| *s == 1.0));
        }
        if fault == Fault::EchoKey {
            let samples = &results.targets[0].summary.error_samples["http_401"];
            assert!(samples[0].contains("<redacted>"), "{samples:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_at_once_balances_exactly() {
    let _serial = common::TIMING_LOCK.lock().await;
    let probabilities = Fault::ALL.into_iter().map(|f| (f, 0.04)).collect();
    let server = start_mock(probabilities, 99);
    let (results, elapsed) = run_against(&server, 150).await;
    let injected = server.faults_injected();
    assert!(injected.len() >= 12, "most faults were drawn: {injected:?}");
    check_counts(&results, &injected, 150);
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

/// Runs 4 non-streaming requests against a mock that answers after 400 ms, under the given
/// first-byte and whole-request timeouts; returns the error classes counted.
async fn slow_answer_errors(first_byte: &str, total: &str) -> BTreeMap<String, u64> {
    let server = mock::start(
        MockConfig {
            ttft: LatencyModel::Fixed(Duration::from_millis(400)),
            itl: LatencyModel::Fixed(Duration::from_millis(1)),
            output_tokens: 2,
            ..MockConfig::default()
        },
        MockOptions::default(),
    )
    .unwrap();
    let text = format!(
        r#"
[[targets]]
name = "slow"
model = "m"
mode = "complete"
base_url = "{}"
first_byte_timeout = "{first_byte}"
timeout = "{total}"

[[classes]]
name = "c"
input_tokens = 8

[load]
kind = "closed"
users = 2
requests = 4
"#,
        server.base_url()
    );
    let file = toml::from_str(&text).unwrap();
    let plan =
        drover::scenario::plan_from_file(file, &text, Path::new("slow.toml"), &|_| None).unwrap();
    let results = driver::run(&plan, RunOptions::default(), StopSignal::default())
        .await
        .unwrap();
    results.targets[0].summary.errors.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_time_out_by_whichever_limit_comes_first() {
    let _serial = common::TIMING_LOCK.lock().await;
    // The first-byte limit is the earlier one: every request is a first-byte timeout...
    let errors = slow_answer_errors("150ms", "5s").await;
    assert_eq!(
        errors,
        BTreeMap::from([("timeout_first_byte".to_string(), 4)])
    );
    // ... and with the whole-request limit first, a whole-request timeout.
    let errors = slow_answer_errors("5s", "150ms").await;
    assert_eq!(errors, BTreeMap::from([("timeout_total".to_string(), 4)]));
    // With both beyond the answer, nothing times out.
    let errors = slow_answer_errors("2s", "3s").await;
    assert!(errors.is_empty(), "{errors:?}");
}
