//! The Batch API mode end to end: against the mock (500 requests, 2% failing on purpose) and
//! against wiremock servers that end a batch `failed` or `expired`, or answer with an unknown
//! `custom_id` or a malformed line. Every server is on 127.0.0.1 and started by the test.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover::driver::{self, RunOptions, StopSignal};
use drover::export::RequestLog;
use drover::mock::{self, BatchMockConfig, LatencyModel, MockConfig, MockOptions};
use drover::results::RunResults;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn scenario(base_url: &str, requests: u64, extra: &str) -> String {
    format!(
        r#"
name = "batch"
[[targets]]
name = "batch"
base_url = "{base_url}"
model = "m"
mode = "batch-api"
pricing = {{ model = "gpt-4.1" }}
batch = {{ poll = "50ms", max_poll = "200ms", max_requests = 200 {extra} }}
[[classes]]
name = "c"
input_tokens = 50
max_tokens = 20
[load]
kind = "closed"
users = 1
requests = {requests}
"#
    )
}

/// Runs scenario text; returns the results and the per-request export lines.
async fn run(text: &str) -> (RunResults, Vec<Value>) {
    let plan = drover::scenario::parse(text, Path::new("s.toml")).unwrap_or_else(|e| panic!("{e}"));
    let buffer = crate::common::SharedBuffer::default();
    let log = RequestLog::new(
        Box::new(buffer.clone()),
        vec!["batch".into()],
        vec!["c".into()],
    );
    let options = RunOptions {
        request_log: Some(Arc::new(Mutex::new(log))),
        ..RunOptions::default()
    };
    let results = tokio::time::timeout(
        Duration::from_secs(60),
        driver::run(&plan, options, StopSignal::default()),
    )
    .await
    .expect("a batch run ends")
    .expect("run starts");
    let text = buffer.text();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (results, lines)
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_requests_are_matched_and_exactly_the_failed_ones_fail() {
    let server = mock::start(
        MockConfig {
            ttft: LatencyModel::Fixed(Duration::ZERO),
            itl: LatencyModel::Fixed(Duration::ZERO),
            output_tokens: 20,
            batch: BatchMockConfig {
                processing_time: Duration::from_millis(400),
                failure_rate: 0.02,
            },
            ..MockConfig::default()
        },
        MockOptions::default(),
    )
    .unwrap();
    let (results, lines) = run(&scenario(&server.base_url(), 500, "")).await;
    let target = &results.targets[0];
    let summary = &target.summary;

    // Three batches (200 + 200 + 100), all completed, every custom_id matched.
    assert_eq!(target.batches.len(), 3);
    assert!(target.batches.iter().all(|b| b.status == "completed"));
    assert_eq!(target.batches.iter().map(|b| b.requests).sum::<u64>(), 500);
    assert!(target
        .batches
        .iter()
        .all(|b| b.missing == 0 && b.unknown_custom_ids == 0 && b.malformed_lines == 0));
    assert_eq!(summary.requests.sent, 500);
    assert_eq!(summary.requests.succeeded + summary.requests.failed, 500);

    // Exactly the requests the mock failed are failed.
    let mut failed_by_mock: Vec<String> = server.batch_failed_ids();
    failed_by_mock.sort();
    let mut failed_by_drover: Vec<String> = lines
        .iter()
        .filter(|l| l["outcome"] != "ok")
        .map(|l| format!("drover-{}", l["request"]))
        .collect();
    failed_by_drover.sort();
    assert!(!failed_by_mock.is_empty(), "2% of 500 should fail");
    assert_eq!(failed_by_drover, failed_by_mock);
    assert_eq!(summary.errors["http_500"], failed_by_mock.len() as u64);
    assert_eq!(lines.len(), 500);

    // Usage: each successful line reports 50 prompt tokens (50 words) and 20 completion tokens;
    // the totals are their sum, and the cost is GPT-4.1's list price halved (Batch API).
    let ok = summary.requests.succeeded;
    assert_eq!(summary.tokens.input, ok * 50);
    assert_eq!(summary.tokens.output, ok * 20);
    assert_eq!(summary.tokens.source_usage, ok);
    let cost = summary.cost.as_ref().unwrap();
    let expected = (ok as f64 * 50.0 * 2.0 + ok as f64 * 20.0 * 8.0) / 1e6 * 0.5;
    assert!(
        (cost.total - expected).abs() < 1e-12,
        "{} vs {expected}",
        cost.total
    );
    assert_eq!(cost.discount, 0.5);
    // E2E is the batch turnaround: at least the mock's processing time.
    assert!(
        summary.latency_ms["e2e"].min >= 400.0,
        "{:?}",
        summary.latency_ms["e2e"]
    );
    assert!(!summary.latency_ms.contains_key("ttft"));
}

/// A wiremock server speaking the Batch API: the upload and create always work; `batch` is what
/// every read of the batch returns; `files` maps file ids to their content.
async fn batch_server(batch: Value, files: &[(&str, String)]) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/files"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "file-in", "object": "file"})),
        )
        .mount(&server)
        .await;
    let mut created = batch.clone();
    created["status"] = json!("validating");
    created["output_file_id"] = Value::Null;
    Mock::given(method("POST"))
        .and(path("/v1/batches"))
        .respond_with(ResponseTemplate::new(200).set_body_json(created))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/batches/batch_w"))
        .respond_with(ResponseTemplate::new(200).set_body_json(batch))
        .mount(&server)
        .await;
    for (id, content) in files {
        Mock::given(method("GET"))
            .and(path(format!("/v1/files/{id}/content")))
            .respond_with(ResponseTemplate::new(200).set_body_string(content.clone()))
            .mount(&server)
            .await;
    }
    server
}

fn ok_line(custom_id: &str) -> String {
    json!({"id": "r", "custom_id": custom_id, "response": {"status_code": 200, "body": {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 3}}}, "error": null})
    .to_string()
}

#[tokio::test]
async fn a_batch_that_fails_validation_fails_every_request_with_its_reason() {
    let server = batch_server(
        json!({"id": "batch_w", "status": "failed", "output_file_id": null, "error_file_id": null,
               "errors": {"object": "list", "data": [{"code": "invalid_request", "message": "model not allowed", "line": 1}]},
               "request_counts": {"total": 4, "completed": 0, "failed": 0}}),
        &[],
    )
    .await;
    let (results, _) = run(&scenario(&format!("{}/v1", server.uri()), 4, "")).await;
    let summary = &results.targets[0].summary;
    assert_eq!(summary.requests.failed, 4);
    assert_eq!(summary.errors["batch_failed"], 4);
    let batch = &results.targets[0].batches[0];
    assert_eq!(batch.status, "failed");
    assert_eq!(batch.missing, 4);
    assert!(
        batch
            .problems
            .iter()
            .any(|p| p == "input line 1: model not allowed"),
        "{:?}",
        batch.problems
    );
    assert!(
        results
            .warnings
            .iter()
            .any(|w| w.contains("batch batch_w ended failed: input line 1: model not allowed")),
        "{:?}",
        results.warnings
    );
}

#[tokio::test]
async fn an_expired_batch_keeps_what_finished_and_fails_the_rest() {
    let server = batch_server(
        json!({"id": "batch_w", "status": "expired", "output_file_id": "file-out", "error_file_id": null,
               "request_counts": {"total": 4, "completed": 2, "failed": 0}}),
        &[("file-out", format!("{}\n{}\n", ok_line("drover-0"), ok_line("drover-2")))],
    )
    .await;
    let (results, lines) = run(&scenario(&format!("{}/v1", server.uri()), 4, "")).await;
    let summary = &results.targets[0].summary;
    assert_eq!(summary.requests.succeeded, 2);
    assert_eq!(summary.errors["batch_expired"], 2);
    let failed: Vec<u64> = lines
        .iter()
        .filter(|l| l["outcome"] == "batch_expired")
        .map(|l| l["request"].as_u64().unwrap())
        .collect();
    assert_eq!(failed, vec![1, 3]);
    assert_eq!(results.targets[0].batches[0].reported_completed, 2);
}

#[tokio::test]
async fn unknown_custom_ids_and_malformed_lines_are_counted_and_the_run_completes() {
    let output = format!(
        "{}\n{}\n{{\"custom_id\": \"drover-2\", \"response\": \n{}\n",
        ok_line("drover-0"),
        ok_line("drover-99"),
        ok_line("drover-3"),
    );
    let errors = json!({"id": "e", "custom_id": "drover-1", "response": null,
                        "error": {"code": "server_error", "message": "try later"}})
    .to_string();
    let server = batch_server(
        json!({"id": "batch_w", "status": "completed", "output_file_id": "file-out", "error_file_id": "file-err",
               "request_counts": {"total": 4, "completed": 3, "failed": 1}}),
        &[("file-out", output), ("file-err", errors)],
    )
    .await;
    let (results, _) = run(&scenario(&format!("{}/v1", server.uri()), 4, "")).await;
    assert_eq!(results.status, drover::results::RunStatus::Completed);
    let summary = &results.targets[0].summary;
    let batch = &results.targets[0].batches[0];
    assert_eq!((batch.succeeded, batch.failed, batch.missing), (2, 1, 1));
    assert_eq!((batch.unknown_custom_ids, batch.malformed_lines), (1, 1));
    assert!(batch
        .problems
        .iter()
        .any(|p| p.contains("unknown custom_id \"drover-99\"")));
    assert!(batch
        .problems
        .iter()
        .any(|p| p.contains("line 3: invalid JSON")));
    assert_eq!(summary.requests.succeeded, 2);
    assert_eq!(summary.errors["batch_line_error"], 1);
    assert_eq!(summary.errors["batch_missing"], 1);
    assert!(summary.error_samples["batch_line_error"][0].contains("server_error: try later"));
    assert!(results.warnings.iter().any(|w| w.contains(
        "1 output line(s) with an unknown custom_id and 1 malformed line(s) were skipped"
    )));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupt_cancels_the_running_batch() {
    let server = mock::start(
        MockConfig {
            batch: BatchMockConfig {
                processing_time: Duration::from_secs(30),
                failure_rate: 0.0,
            },
            ..MockConfig::default()
        },
        MockOptions::default(),
    )
    .unwrap();
    let plan = drover::scenario::parse(&scenario(&server.base_url(), 10, ""), Path::new("s.toml"))
        .unwrap();
    let stop = StopSignal::default();
    let handle = stop.handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        handle.stop();
    });
    let results = tokio::time::timeout(
        Duration::from_secs(20),
        driver::run(&plan, RunOptions::default(), stop),
    )
    .await
    .expect("the interrupt ends the run")
    .unwrap();
    assert_eq!(results.status, drover::results::RunStatus::Interrupted);
    let batch = &results.targets[0].batches[0];
    assert_eq!(batch.status, "cancelled", "{batch:?}");
    assert_eq!(results.targets[0].summary.requests.aborted, 10);
    assert_eq!(results.targets[0].summary.requests.succeeded, 0);
}
