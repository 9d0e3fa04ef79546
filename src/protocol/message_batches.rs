//! Anthropic's Message Batches API, client side: the create body
//! (`POST /v1/messages/batches`, `{"requests": [{"custom_id", "params"}]}`), the batch object
//! that `GET /v1/messages/batches/{id}` and `POST …/{id}/cancel` answer with, and the lines of
//! its `results_url` JSONL, each `{"custom_id", "result": {"type": "succeeded" | "errored" |
//! "canceled" | "expired", …}}`.
//!
//! Shapes as the official `anthropic` SDK types them (`MessageBatch`,
//! `MessageBatchRequestCounts`, `MessageBatchIndividualResponse`, `MessageBatchResult`): a
//! batch's `processing_status` is `in_progress`, `canceling` or `ended`; its `request_counts`
//! stay in `processing` until the whole batch ends; `results_url` is set once it has ended.

use serde::Deserialize;
use serde_json::{json, Value};

use super::batch::LineOutcome;
use crate::record::BatchFailure;

/// Most requests in one Message Batch (Anthropic's limit).
pub const MAX_REQUESTS: u64 = 100_000;
/// Largest create body of one Message Batch in bytes (Anthropic's limit, 256 MB).
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// One entry of a create body's `requests`: `params` is a Messages API request body.
pub fn request_entry(custom_id: &str, params: &Value) -> String {
    json!({ "custom_id": custom_id, "params": params }).to_string()
}

/// The create body around entries written by [`request_entry`], one per line.
pub fn create_body(entries: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(entries.len() + 16);
    body.extend_from_slice(b"{\"requests\":[");
    let mut first = true;
    for entry in entries.split(|&b| b == b'\n').filter(|e| !e.is_empty()) {
        if !first {
            body.push(b',');
        }
        first = false;
        body.extend_from_slice(entry);
    }
    body.extend_from_slice(b"]}");
    body
}

/// A Message Batch as the API reports it (the fields drover reads).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct MessageBatch {
    pub id: String,
    pub processing_status: String,
    #[serde(default)]
    pub request_counts: MessageBatchCounts,
    #[serde(default)]
    pub results_url: Option<String>,
    #[serde(default)]
    pub cancel_initiated_at: Option<String>,
}

impl MessageBatch {
    /// Whether processing has ended (every request succeeded, errored, was canceled or expired).
    pub fn has_ended(&self) -> bool {
        self.processing_status == "ended"
    }
}

/// `request_counts`: the sum always equals the batch's requests.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct MessageBatchCounts {
    #[serde(default)]
    pub processing: u64,
    #[serde(default)]
    pub succeeded: u64,
    #[serde(default)]
    pub errored: u64,
    #[serde(default)]
    pub canceled: u64,
    #[serde(default)]
    pub expired: u64,
}

/// The HTTP status an Anthropic error type stands for, as its API documents them.
fn error_status(kind: &str) -> Option<u16> {
    Some(match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "api_error" => 500,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => return None,
    })
}

/// Reads one line of a results file: its `custom_id` and outcome. A succeeded line's `message`
/// is read as a Messages API answer; an errored one keeps its error type and message (and the
/// HTTP status that type stands for); canceled and expired lines were never processed.
pub fn parse_result_line(line: &str) -> Result<(String, LineOutcome), String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let custom_id = value
        .get("custom_id")
        .and_then(Value::as_str)
        .ok_or("no \"custom_id\"")?
        .to_string();
    let result = value
        .get("result")
        .filter(|r| r.is_object())
        .ok_or("no \"result\" object")?;
    let kind = result
        .get("type")
        .and_then(Value::as_str)
        .ok_or("the result has no \"type\"")?;
    let outcome = match kind {
        "succeeded" => {
            let message = result
                .get("message")
                .filter(|m| m.is_object())
                .ok_or("a succeeded result has no \"message\"")?;
            let bytes = serde_json::to_vec(message).unwrap_or_default();
            match super::Api::Anthropic.parse_completion(&bytes) {
                Ok(info) => LineOutcome::Success {
                    usage: info.usage,
                    text: info.text.into_owned(),
                },
                Err(error) => LineOutcome::Failure {
                    status: None,
                    message: error.to_string(),
                },
            }
        }
        "errored" => {
            // `error` is an ErrorResponse: `{"type": "error", "error": {"type", "message"}}`.
            let error = result.get("error").unwrap_or(&Value::Null);
            let inner = error.get("error").unwrap_or(error);
            let error_type = inner.get("type").and_then(Value::as_str);
            let message = inner
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| inner.to_string(), str::to_string);
            LineOutcome::Failure {
                status: error_type.and_then(error_status),
                message: match error_type {
                    Some(error_type) => format!("{error_type}: {message}"),
                    None => message,
                },
            }
        }
        "canceled" => LineOutcome::Unprocessed(BatchFailure::Cancelled),
        "expired" => LineOutcome::Unprocessed(BatchFailure::Expired),
        other => return Err(format!("unknown result type \"{other}\"")),
    };
    Ok((custom_id, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Usage;

    #[test]
    fn the_create_body_wraps_its_entries() {
        let params = json!({ "model": "claude", "max_tokens": 8, "messages": [] });
        let mut entries = request_entry("drover-1", &params).into_bytes();
        entries.push(b'\n');
        entries.extend_from_slice(request_entry("drover-2", &params).as_bytes());
        entries.push(b'\n');
        let body: Value = serde_json::from_slice(&create_body(&entries)).unwrap();
        let requests = body["requests"].as_array().unwrap();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[1]["custom_id"], "drover-2");
        assert_eq!(requests[1]["params"], params);
        let empty: Value = serde_json::from_slice(&create_body(b"")).unwrap();
        assert_eq!(empty, json!({ "requests": [] }));
    }

    #[test]
    fn a_batch_object_is_read() {
        // The shape of the API reference's example.
        let batch: MessageBatch = serde_json::from_str(
            r#"{"id":"msgbatch_013Zva2CMHLNnXjNJJKqJ2EF","type":"message_batch","processing_status":"ended",
                "request_counts":{"processing":0,"succeeded":98,"errored":1,"canceled":0,"expired":1},
                "ended_at":"2024-08-20T18:37:24.100435Z","created_at":"2024-08-20T18:37:24.100435Z",
                "expires_at":"2024-08-20T18:37:24.100435Z","archived_at":null,"cancel_initiated_at":null,
                "results_url":"https://api.anthropic.com/v1/messages/batches/msgbatch_013Zva2CMHLNnXjNJJKqJ2EF/results"}"#,
        )
        .unwrap();
        assert!(batch.has_ended());
        assert_eq!(batch.request_counts.succeeded, 98);
        assert_eq!(batch.request_counts.expired, 1);
        assert!(batch.results_url.unwrap().ends_with("/results"));
        let running: MessageBatch =
            serde_json::from_str(r#"{"id":"b","processing_status":"in_progress"}"#).unwrap();
        assert!(!running.has_ended());
        assert_eq!(running.results_url, None);
    }

    #[test]
    fn each_result_type_is_read() {
        let succeeded = r#"{"custom_id":"drover-0","result":{"type":"succeeded","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":3,"cache_creation_input_tokens":0,"cache_read_input_tokens":4}}}}"#;
        let (id, outcome) = parse_result_line(succeeded).unwrap();
        assert_eq!(id, "drover-0");
        let LineOutcome::Success { usage, text } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(text, "Hello");
        let usage: Usage = usage.unwrap();
        assert_eq!(usage.completion_tokens, 3);
        assert_eq!(usage.cached_tokens, 4);
        // Cache reads are input too: the Messages API counts them apart.
        assert_eq!(usage.prompt_tokens, 14);

        let errored = r#"{"custom_id":"drover-1","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}}}"#;
        assert_eq!(
            parse_result_line(errored).unwrap().1,
            LineOutcome::Failure {
                status: Some(400),
                message: "invalid_request_error: max_tokens: Field required".into()
            }
        );
        let overloaded = r#"{"custom_id":"drover-1","result":{"type":"errored","error":{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}}}"#;
        assert!(matches!(
            parse_result_line(overloaded).unwrap().1,
            LineOutcome::Failure {
                status: Some(529),
                ..
            }
        ));
        assert_eq!(
            parse_result_line(r#"{"custom_id":"drover-2","result":{"type":"canceled"}}"#)
                .unwrap()
                .1,
            LineOutcome::Unprocessed(BatchFailure::Cancelled)
        );
        assert_eq!(
            parse_result_line(r#"{"custom_id":"drover-3","result":{"type":"expired"}}"#)
                .unwrap()
                .1,
            LineOutcome::Unprocessed(BatchFailure::Expired)
        );
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        assert!(parse_result_line("{no")
            .unwrap_err()
            .starts_with("invalid JSON"));
        assert_eq!(
            parse_result_line(r#"{"result":{"type":"expired"}}"#).unwrap_err(),
            "no \"custom_id\""
        );
        assert_eq!(
            parse_result_line(r#"{"custom_id":"x","result":"ok"}"#).unwrap_err(),
            "no \"result\" object"
        );
        assert_eq!(
            parse_result_line(r#"{"custom_id":"x","result":{"type":"later"}}"#).unwrap_err(),
            "unknown result type \"later\""
        );
        assert!(parse_result_line(r#"{"custom_id":"x","result":{"type":"succeeded"}}"#).is_err());
    }
}
