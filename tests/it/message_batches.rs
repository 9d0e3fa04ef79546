//! Anthropic's Message Batches as `mode = "batch-api"` of an `api = "anthropic"` target, end to
//! end: against the mock (500 requests, 2% errored on purpose) and against wiremock servers that
//! answer every kind of result line (succeeded, errored, canceled, expired, unknown, malformed)
//! or that must see the batch cancelled. Every server is on 127.0.0.1 and started by the test.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover::driver::{self, RunOptions, StopSignal};
use drover::export::RequestLog;
use drover::mock::{self, BatchMockConfig, LatencyModel, MockConfig, MockOptions};
use drover::results::RunResults;
use serde_json::{json, Value};
use wiremock::matchers::{header, header_exists, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::common::SharedBuffer;

fn scenario(base_url: &str, requests: u64, extra_target: &str) -> String {
    format!(
        r#"
name = "message-batches"
[[targets]]
name = "claude"
api = "anthropic"
base_url = "{base_url}"
model = "claude-sonnet-4-5"
mode = "batch-api"
pricing = {{ model = "claude-sonnet-4-5" }}
batch = {{ poll = "50ms", max_poll = "200ms", max_requests = 200 }}
{extra_target}
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

/// Runs scenario text (interrupted after `stop_after`, if given); returns the results and the
/// per-request export lines.
async fn run(text: &str, stop_after: Option<Duration>) -> (RunResults, Vec<Value>) {
    let plan = drover::scenario::parse(text, Path::new("s.toml")).unwrap_or_else(|e| panic!("{e}"));
    let buffer = SharedBuffer::default();
    let log = RequestLog::new(
        Box::new(buffer.clone()),
        vec!["claude".into()],
        vec!["c".into()],
    );
    let options = RunOptions {
        request_log: Some(Arc::new(Mutex::new(log))),
        ..RunOptions::default()
    };
    let stop = StopSignal::default();
    if let Some(after) = stop_after {
        let handle = stop.handle();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            handle.stop();
        });
    }
    let results = tokio::time::timeout(Duration::from_secs(60), driver::run(&plan, options, stop))
        .await
        .expect("a batch run ends")
        .expect("run starts");
    let lines = buffer
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (results, lines)
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_requests_are_matched_and_exactly_the_errored_ones_fail() {
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
    let (results, lines) = run(&scenario(&server.base_url(), 500, ""), None).await;
    let target = &results.targets[0];
    let summary = &target.summary;

    // Three message batches (200 + 200 + 100), all ended, every custom_id matched.
    assert_eq!(target.batches.len(), 3, "{:?}", target.batches);
    assert!(target.batches.iter().all(|b| b.status == "ended"));
    assert!(target.batches.iter().all(|b| b
        .id
        .as_deref()
        .is_some_and(|id| id.starts_with("msgbatch_"))));
    assert_eq!(target.batches.iter().map(|b| b.requests).sum::<u64>(), 500);
    assert!(target
        .batches
        .iter()
        .all(|b| b.missing == 0 && b.unknown_custom_ids == 0 && b.malformed_lines == 0));
    assert_eq!(summary.requests.sent, 500);
    assert_eq!(summary.requests.succeeded + summary.requests.failed, 500);
    let mut requests: Vec<u64> = lines
        .iter()
        .map(|l| l["request"].as_u64().unwrap())
        .collect();
    requests.sort_unstable();
    assert_eq!(requests, (0..500).collect::<Vec<_>>());

    // Exactly the requests the mock errored are failed, as the HTTP status of an api_error.
    let mut errored_by_mock = server.batch_failed_ids();
    errored_by_mock.sort();
    let mut failed_by_drover: Vec<String> = lines
        .iter()
        .filter(|l| l["outcome"] != "ok")
        .map(|l| format!("drover-{}", l["request"]))
        .collect();
    failed_by_drover.sort();
    assert!(!errored_by_mock.is_empty(), "2% of 500 should error");
    assert_eq!(failed_by_drover, errored_by_mock);
    assert_eq!(summary.errors["http_500"], errored_by_mock.len() as u64);
    let reported_failed: u64 = target.batches.iter().map(|b| b.reported_failed).sum();
    assert_eq!(reported_failed, errored_by_mock.len() as u64);

    // Usage: each succeeded message reports 50 input tokens (50 words) and 20 output tokens;
    // the totals are their sum, and the cost is Claude Sonnet 4.5's list price ($3 in, $15 out
    // per 1M) halved (Message Batches).
    let ok = summary.requests.succeeded;
    assert_eq!(ok, 500 - errored_by_mock.len() as u64);
    assert_eq!(summary.tokens.input, ok * 50);
    assert_eq!(summary.tokens.output, ok * 20);
    assert_eq!(summary.tokens.source_usage, ok);
    let cost = summary.cost.as_ref().unwrap();
    let expected = (ok as f64 * 50.0 * 3.0 + ok as f64 * 20.0 * 15.0) / 1e6 * 0.5;
    assert!(
        (cost.total - expected).abs() < 1e-12,
        "{} vs {expected}",
        cost.total
    );
    assert_eq!(cost.discount, 0.5);
    assert!(summary.latency_ms["e2e"].min >= 400.0);
    assert!(results.warnings.is_empty(), "{:?}", results.warnings);
}

/// One `results_url` line.
fn result_line(custom_id: &str, result: Value) -> String {
    json!({ "custom_id": custom_id, "result": result }).to_string()
}

fn succeeded(text: &str) -> Value {
    json!({ "type": "succeeded", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{ "type": "text", "text": text }], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": { "input_tokens": 40, "output_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10 } } })
}

/// A wiremock server speaking Message Batches: the create answers `in_progress`, every read
/// `ended` with `results_url` (on `results_origin`, or this server when `None`).
async fn message_batch_server(results_origin: Option<&str>) -> MockServer {
    let server = MockServer::start().await;
    let origin = results_origin.map_or_else(|| server.uri(), str::to_string);
    let batch = |status: &str, url: Option<String>| {
        json!({ "id": "msgbatch_w", "type": "message_batch", "processing_status": status,
                "request_counts": { "processing": if url.is_some() { 0 } else { 6 }, "succeeded": 1, "errored": 1, "canceled": 1, "expired": 1 },
                "created_at": "2026-12-02T00:00:00Z", "expires_at": "2026-12-03T00:00:00Z",
                "ended_at": null, "archived_at": null, "cancel_initiated_at": null, "results_url": url })
    };
    Mock::given(method("POST"))
        .and(path("/v1/messages/batches"))
        .and(header_exists("anthropic-version"))
        .respond_with(ResponseTemplate::new(200).set_body_json(batch("in_progress", None)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/messages/batches/msgbatch_w"))
        .respond_with(ResponseTemplate::new(200).set_body_json(batch(
            "ended",
            Some(format!("{origin}/v1/messages/batches/msgbatch_w/results")),
        )))
        .mount(&server)
        .await;
    server
}

fn results_file() -> String {
    [
        result_line("drover-0", succeeded("fine")),
        result_line(
            "drover-1",
            json!({ "type": "errored", "error": { "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } } }),
        ),
        result_line("drover-2", json!({ "type": "canceled" })),
        result_line("drover-3", json!({ "type": "expired" })),
        result_line("drover-77", succeeded("not ours")),
        "{\"custom_id\": \"drover-4\", \"result\": ".to_string(),
    ]
    .join("\n")
}

#[tokio::test]
async fn every_kind_of_result_line_ends_its_request_in_the_right_class() {
    let server = message_batch_server(None).await;
    Mock::given(method("GET"))
        .and(path("/v1/messages/batches/msgbatch_w/results"))
        .respond_with(ResponseTemplate::new(200).set_body_string(results_file()))
        .mount(&server)
        .await;
    let (results, lines) = run(&scenario(&format!("{}/v1", server.uri()), 6, ""), None).await;
    let summary = &results.targets[0].summary;
    let batch = &results.targets[0].batches[0];
    assert_eq!(batch.status, "ended");
    assert_eq!((batch.reported_completed, batch.reported_failed), (1, 3));
    assert_eq!((batch.succeeded, batch.failed, batch.missing), (1, 3, 2));
    assert_eq!((batch.unknown_custom_ids, batch.malformed_lines), (1, 1));
    assert_eq!(summary.requests.succeeded, 1);
    assert_eq!(summary.errors["http_529"], 1);
    assert_eq!(summary.errors["batch_cancelled"], 1);
    assert_eq!(summary.errors["batch_expired"], 1);
    assert_eq!(summary.errors["batch_missing"], 2);
    assert!(summary.error_samples["http_529"][0].contains("overloaded_error: Overloaded"));
    let outcome = |k: u64| {
        lines
            .iter()
            .find(|l| l["request"] == k)
            .map(|l| l["outcome"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(outcome(0), "ok");
    assert_eq!(outcome(2), "batch_cancelled");
    assert_eq!(outcome(3), "batch_expired");
    assert_eq!(outcome(4), "batch_missing");
    // Usage of the succeeded line: cache reads are input too.
    assert_eq!(summary.tokens.input, 50);
    assert_eq!(summary.tokens.cached_input, 10);
    assert_eq!(summary.tokens.output, 3);

    // The create body: one entry per request, its custom_id and Messages API params that do
    // not stream.
    let received = server.received_requests().await.unwrap();
    let create: Value = received
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .map(|r: &Request| serde_json::from_slice(&r.body).unwrap())
        .unwrap();
    let entries = create["requests"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[5]["custom_id"], "drover-5");
    let params = &entries[0]["params"];
    assert_eq!(params["model"], "claude-sonnet-4-5");
    assert_eq!(params["max_tokens"], 20);
    assert!(params["messages"].is_array());
    assert!(params.get("stream").is_none(), "{params}");
}

#[tokio::test]
async fn the_key_goes_to_the_results_url_only_on_the_targets_own_origin() {
    std::env::set_var("DROVER_TEST_MSGBATCH_KEY", "sk-ant-msgbatch-test");
    let key_line = "api_key_env = \"DROVER_TEST_MSGBATCH_KEY\"";
    // Its own origin: the results are fetched with x-api-key.
    let server = message_batch_server(None).await;
    Mock::given(method("GET"))
        .and(path("/v1/messages/batches/msgbatch_w/results"))
        .and(header("x-api-key", "sk-ant-msgbatch-test"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(result_line("drover-0", succeeded("a"))),
        )
        .mount(&server)
        .await;
    let (results, _) = run(
        &scenario(&format!("{}/v1", server.uri()), 1, key_line),
        None,
    )
    .await;
    assert_eq!(results.targets[0].summary.requests.succeeded, 1);

    // Another origin (a storage host): fetched without the key.
    let storage = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/messages/batches/msgbatch_w/results"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(result_line("drover-0", succeeded("a"))),
        )
        .mount(&storage)
        .await;
    let server = message_batch_server(Some(&storage.uri())).await;
    let (results, _) = run(
        &scenario(&format!("{}/v1", server.uri()), 1, key_line),
        None,
    )
    .await;
    assert_eq!(results.targets[0].summary.requests.succeeded, 1);
    let fetched = storage.received_requests().await.unwrap();
    assert_eq!(fetched.len(), 1);
    assert!(!fetched[0].headers.contains_key("x-api-key"));
    // The target's own calls carried it.
    let own = server.received_requests().await.unwrap();
    assert!(own.iter().all(|r| r
        .headers
        .get("x-api-key")
        .is_some_and(|v| v == "sk-ant-msgbatch-test")));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupt_cancels_the_running_message_batch() {
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
    let (results, _) = run(
        &scenario(&server.base_url(), 10, ""),
        Some(Duration::from_millis(300)),
    )
    .await;
    assert_eq!(results.status, drover::results::RunStatus::Interrupted);
    let batch = &results.targets[0].batches[0];
    // The cancel answer: canceling, as Anthropic answers a batch still in progress.
    assert_eq!(batch.status, "canceling", "{batch:?}");
    assert!(batch.problems.iter().any(|p| p.contains("interrupted")));
    assert_eq!(results.targets[0].summary.requests.aborted, 10);
    assert_eq!(results.targets[0].summary.requests.succeeded, 0);
}
