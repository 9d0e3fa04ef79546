//! Request/response flows against wiremock servers: non-streaming parsing with usage, HTTP error
//! classes with their statuses, protocol errors and truncated streams.

use crate::common;

use common::{run_scenario, summary};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn scenario(base_url: &str, mode: &str, requests: u32) -> String {
    format!(
        r#"
[[targets]]
name = "wm"
model = "gpt-test"
base_url = "{base_url}/v1"
mode = "{mode}"

[[classes]]
name = "c"
input_tokens = 8
max_tokens = 16

[load]
kind = "closed"
users = 1
requests = {requests}
"#
    )
}

async fn server_answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn non_streaming_completion_is_parsed_with_usage() {
    let server = server_answering(ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello there"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    })))
    .await;
    let results = run_scenario(&scenario(&server.uri(), "complete", 3)).await;
    let all = summary(&results);
    assert_eq!(all.requests.succeeded, 3, "{:?}", all.error_samples);
    assert_eq!(all.tokens.output, 21);
    assert_eq!(all.tokens.input, 33);
    assert_eq!(all.tokens.source_usage, 3);
    assert_eq!(all.latency_ms["e2e"].count, 3);
    // A non-streaming response has no first token to time.
    assert!(!all.latency_ms.contains_key("ttft"));

    let received = server.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["stream"], false);
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["max_tokens"], 16);
}

#[tokio::test]
async fn error_statuses_land_in_their_classes_with_the_status_kept() {
    let cases = [(401, "http_401"), (429, "throttled"), (500, "http_500")];
    for (status, class) in cases {
        let mut template = ResponseTemplate::new(status).set_body_json(serde_json::json!({
            "error": {"message": format!("failure {status}"), "type": "test_error"}
        }));
        if status == 429 {
            template = template.insert_header("retry-after", "3");
        }
        let server = server_answering(template).await;
        let results = run_scenario(&scenario(&server.uri(), "stream", 2)).await;
        let all = summary(&results);
        assert_eq!(all.requests.sent, 2);
        assert_eq!(all.requests.failed, 2);
        assert_eq!(
            all.errors.get(class),
            Some(&2),
            "{status}: {:?}",
            all.errors
        );
        let sample = &all.error_samples[class][0];
        assert!(
            sample.contains(&status.to_string()) && sample.contains(&format!("failure {status}")),
            "{sample}"
        );
        if status == 429 {
            assert_eq!(all.retry_after_s, vec![3.0, 3.0]);
        }
        assert!(
            results.warnings.iter().any(|w| w.contains("every one")),
            "{:?}",
            results.warnings
        );
    }
}

#[tokio::test]
async fn malformed_json_in_a_stream_is_a_protocol_error() {
    let body = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\": [\n\ndata: [DONE]\n\n";
    let server = server_answering(
        ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), "text/event-stream"),
    )
    .await;
    let results = run_scenario(&scenario(&server.uri(), "stream", 2)).await;
    let all = summary(&results);
    assert_eq!(all.errors.get("protocol"), Some(&2), "{:?}", all.errors);
    assert!(all.error_samples["protocol"][0].contains("invalid JSON"));
}

#[tokio::test]
async fn a_stream_without_done_is_truncated() {
    let body = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n";
    let server = server_answering(
        ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), "text/event-stream"),
    )
    .await;
    let results = run_scenario(&scenario(&server.uri(), "stream", 1)).await;
    let all = summary(&results);
    assert_eq!(
        all.errors.get("truncated_stream"),
        Some(&1),
        "{:?}",
        all.errors
    );
    assert!(all.error_samples["truncated_stream"][0].contains("after 2 output chunks"));
}

#[tokio::test]
async fn a_streamed_response_without_usage_is_counted_with_the_tokenizer_and_says_so() {
    // "The quick brown fox" in two chunks: four o200k_base tokens, though only two chunks.
    let body = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n: keep-alive\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"The quick\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\" brown fox\"}}]}\n\ndata: [DONE]\n\n";
    let server = server_answering(
        ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), "text/event-stream"),
    )
    .await;
    let results = run_scenario(&scenario(&server.uri(), "stream", 2)).await;
    let all = summary(&results);
    assert_eq!(all.requests.succeeded, 2, "{:?}", all.error_samples);
    // The role-only, empty and keep-alive parts are not tokens; the text is counted offline.
    assert_eq!(all.tokens.output, 8);
    assert_eq!(all.tokens.source_tokenizer, 2);
    assert_eq!(
        all.latency_ms["itl"].count, 2,
        "one gap per request between its two chunks"
    );
    // The input is counted from the request's messages too: the chat format's 3 + 3 tokens,
    // "user", and the prompt's 8 words (one token each).
    let per_request = 3 + 3 + 1 + 8;
    assert_eq!(all.tokens.input, 2 * per_request);
    assert!(results
        .warnings
        .iter()
        .any(|w| w.contains("no usage") && w.contains("o200k_base")));
}

#[tokio::test]
async fn retries_recover_from_transient_failures_and_are_counted_apart() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1}
        })))
        .with_priority(3)
        .mount(&server)
        .await;
    let text = scenario(&server.uri(), "complete", 1).replace(
        "mode = \"complete\"",
        "mode = \"complete\"\nretry = { max = 3, base = \"10ms\", max_backoff = \"2s\" }",
    );
    let results = run_scenario(&text).await;
    let all = summary(&results);
    assert_eq!(all.requests.succeeded, 1, "{:?}", all.error_samples);
    assert!(all.errors.is_empty());
    assert_eq!(all.retries.requests_retried, 1);
    assert_eq!(all.retries.attempts_failed["http_503"], 2);
    assert_eq!(all.retries.attempts_failed["throttled"], 1);
    // The successful attempt's latency is its own; from the intended time it includes the
    // failed attempts and the 1 s Retry-After.
    assert!(
        all.latency_ms["e2e"].max < 500.0,
        "{:?}",
        all.latency_ms["e2e"]
    );
    assert!(
        all.latency_ms["e2e_corrected"].min >= 1000.0,
        "{:?}",
        all.latency_ms["e2e_corrected"]
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}

#[tokio::test]
async fn retries_stop_at_their_bound_and_the_last_failure_counts() {
    let server = server_answering(ResponseTemplate::new(502)).await;
    let text = scenario(&server.uri(), "stream", 1).replace(
        "mode = \"stream\"",
        "mode = \"stream\"\nretry = { max = 2, base = \"5ms\" }",
    );
    let results = run_scenario(&text).await;
    let all = summary(&results);
    assert_eq!(all.errors.get("http_502"), Some(&1));
    assert_eq!(all.retries.attempts_failed["http_502"], 2);
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn preludes_and_keepalives_are_flagged_and_the_first_answer_follows_reasoning() {
    // A role-only prelude and a keep-alive before anything; reasoning first, then the answer.
    let body = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n: keep-alive\n\ndata: {\"choices\":[{\"delta\":{\"reasoning_content\":\"Let me think\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Yes.\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n";
    let server = server_answering(
        ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), "text/event-stream"),
    )
    .await;
    let results = run_scenario(&scenario(&server.uri(), "stream", 3)).await;
    let all = summary(&results);
    assert_eq!(all.requests.succeeded, 3, "{:?}", all.error_samples);
    let preamble = all
        .stream_preamble
        .as_ref()
        .expect("stream preamble counts");
    assert_eq!(preamble.requests, 3);
    assert_eq!(
        preamble.empty_preludes, 3,
        "the role-only event, once per stream"
    );
    assert_eq!(preamble.requests_with_prelude, 3);
    assert_eq!(preamble.keepalive_comments, 3);
    assert_eq!(preamble.reasoning_first, 3);
    assert_eq!(all.latency_ms["time_to_first_answer"].count, 3);
    // The reasoning chunk is the first token; the answer is one more output event.
    assert_eq!(all.latency_ms["itl"].count, 3);
    let connections = all.connections.as_ref().expect("connection counts");
    assert_eq!((connections.opened, connections.reused), (1, 2));
}

#[tokio::test]
async fn error_answers_read_to_the_end_leave_the_connection_reusable() {
    let server = server_answering(
        ResponseTemplate::new(429)
            .set_body_string(r#"{"error":{"message":"slow down","type":"rate_limit"}}"#),
    )
    .await;
    let results = run_scenario(&scenario(&server.uri(), "stream", 5)).await;
    let all = summary(&results);
    assert_eq!(all.requests.throttled, 5);
    // One user: the first request opens the connection, the next four reuse it.
    let connections = all.connections.as_ref().expect("connection counts");
    assert_eq!((connections.opened, connections.reused), (1, 4));
}
