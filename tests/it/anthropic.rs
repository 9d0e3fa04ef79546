//! The Anthropic Messages API end to end: against the embedded mock (which serves
//! `/v1/messages` in both modes) streamed and non-streamed requests are measured like chat
//! completions, with token counts from `message_start`/`message_delta`; against wiremock, the
//! request carries `x-api-key`, `anthropic-version`, `max_tokens` and a top-level `system`.

use crate::common;

use common::{run_scenario, run_scenario_in, stat, summary};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn mock_scenario(mode: &str) -> String {
    format!(
        r#"
[[targets]]
name = "claude"
model = "claude-mock"
api = "anthropic"
mode = "{mode}"
[targets.mock]
ttft = "30ms"
itl = "2ms"
output_tokens = 40

[[classes]]
name = "c"
input_tokens = 32
max_tokens = 12

[load]
kind = "closed"
users = 2
requests = 10
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_messages_are_measured_with_usage_from_message_delta() {
    let results = run_scenario(&mock_scenario("stream")).await;
    let all = summary(&results);
    assert_eq!(all.requests.succeeded, 10, "{:?}", all.error_samples);
    // Usage from the stream: 12 output tokens each (max_tokens), input from message_start.
    assert_eq!(all.tokens.source_usage, 10);
    assert_eq!(all.tokens.output, 120);
    assert!(all.tokens.input >= 10 * 32, "{:?}", all.tokens);
    let ttft = stat(all, "ttft");
    assert!(ttft.p50 >= 30.0 && ttft.p50 < 60.0, "{ttft:?}");
    assert_eq!(stat(all, "itl").count, 10 * 11);
    // message_start, content_block_start: events before the first token; the ping is a
    // keep-alive. None of them is a token.
    let preamble = all.stream_preamble.as_ref().unwrap();
    assert_eq!(preamble.requests_with_prelude, 10);
    assert_eq!(preamble.keepalive_comments, 10);
    assert_eq!(preamble.reasoning_first, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streamed_messages_are_measured_too() {
    let results = run_scenario(&mock_scenario("complete")).await;
    let all = summary(&results);
    assert_eq!(all.requests.succeeded, 10, "{:?}", all.error_samples);
    assert_eq!(all.tokens.source_usage, 10);
    assert_eq!(all.tokens.output, 120);
    assert!(stat(all, "e2e").p50 >= 30.0 + 11.0 * 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_prompt_reaches_the_mock_as_the_system_field_and_is_counted() {
    // The mock counts input words: "Be brief." (2, in `system`) + "Say hi" (2).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prompts.jsonl"),
        "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Say hi\"}]}\n",
    )
    .unwrap();
    for mode in ["stream", "complete"] {
        let scenario =
            mock_scenario(mode).replace("input_tokens = 32", "dataset = \"prompts.jsonl\"");
        let results = run_scenario_in(dir.path(), &scenario).await;
        let all = summary(&results);
        assert_eq!(
            all.requests.succeeded, 10,
            "{mode}: {:?}",
            all.error_samples
        );
        assert_eq!(all.tokens.input, 10 * 4, "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_has_the_messages_api_headers_body_and_no_bearer_token() {
    let server = MockServer::start().await;
    let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"OK\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":1}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", "sk-ant-test-key"))
        .and(header("anthropic-version", "2023-06-01"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(stream.as_bytes().to_vec(), "text/event-stream"),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prompts.jsonl"),
        "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"}]}\n",
    )
    .unwrap();
    std::env::set_var("DROVER_TEST_ANTHROPIC_KEY", "sk-ant-test-key");
    let scenario = format!(
        r#"
[[targets]]
name = "claude"
model = "claude-x"
api = "anthropic"
base_url = "{}/v1"
api_key_env = "DROVER_TEST_ANTHROPIC_KEY"

[[classes]]
name = "c"
dataset = "prompts.jsonl"

[load]
kind = "closed"
users = 1
requests = 2
"#,
        server.uri()
    );
    let results = run_scenario_in(dir.path(), &scenario).await;
    let all = summary(&results);
    assert_eq!(all.requests.succeeded, 2, "{:?}", all.error_samples);
    assert_eq!(all.tokens.output, 2);
    let received: Vec<Request> = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert!(request.headers.get("authorization").is_none());
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(
            body["messages"],
            serde_json::json!([{"role": "user", "content": "Hi"}])
        );
        assert_eq!(
            body["max_tokens"], 1024,
            "the API requires it: the default is sent"
        );
        assert_eq!(body["stream"], true);
    }
    let text = serde_json::to_string(&results).unwrap();
    assert!(!text.contains("sk-ant-test-key"));
}
