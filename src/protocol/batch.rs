//! The OpenAI Batch API, client side: the JSONL input lines, uploading them (`POST /files`,
//! multipart, `purpose=batch`), creating a batch (`POST /batches`), reading and cancelling it
//! (`GET /batches/{id}`, `POST /batches/{id}/cancel`), downloading its output and error files
//! (`GET /files/{id}/content`), and reading their lines back by `custom_id`; and [`BatchApi`],
//! which of the two batch APIs (this one, or Anthropic's [`super::message_batches`]) a target
//! uses.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::record::Usage;

/// Statuses after which a batch changes no more.
pub const TERMINAL_STATUSES: [&str; 4] = ["completed", "failed", "expired", "cancelled"];

/// One line of a batch input file.
pub fn input_line(custom_id: &str, url: &str, body: &Value) -> String {
    json!({ "custom_id": custom_id, "method": "POST", "url": url, "body": body }).to_string()
}

/// A batch as the API reports it (the fields drover reads).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct BatchObject {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub output_file_id: Option<String>,
    #[serde(default)]
    pub error_file_id: Option<String>,
    #[serde(default)]
    pub request_counts: Option<RequestCounts>,
    /// `{ "data": [{ "code", "message", "line" }] }` when validation failed.
    #[serde(default)]
    pub errors: Option<Value>,
}

impl BatchObject {
    pub fn is_terminal(&self) -> bool {
        TERMINAL_STATUSES.contains(&self.status.as_str())
    }

    /// The batch's own error messages (validation failures), one per entry.
    pub fn error_messages(&self) -> Vec<String> {
        self.errors
            .as_ref()
            .and_then(|e| e.get("data"))
            .and_then(Value::as_array)
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        let message = e.get("message").and_then(Value::as_str).unwrap_or("error");
                        match e.get("line").and_then(Value::as_u64) {
                            Some(line) => format!("input line {line}: {message}"),
                            None => message.to_string(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct RequestCounts {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub completed: u64,
    #[serde(default)]
    pub failed: u64,
}

/// Why a Batch API call failed. Messages are scrubbed of secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchApiError {
    #[error("{what}: HTTP {status}: {message}")]
    Status {
        what: String,
        status: u16,
        message: String,
    },
    #[error("{what}: {message}")]
    Transport { what: String, message: String },
    #[error("{what}: unexpected response: {message}")]
    Protocol { what: String, message: String },
}

/// What one output or error line says about its request.
#[derive(Debug, Clone, PartialEq)]
pub enum LineOutcome {
    /// A 2xx response with a readable completion.
    Success { usage: Option<Usage>, text: String },
    /// A non-2xx response, an unreadable completion or an `error` object.
    Failure {
        status: Option<u16>,
        message: String,
    },
    /// Never processed: the batch was cancelled or expired first (Message Batches say so per
    /// line).
    Unprocessed(crate::record::BatchFailure),
}

/// The asynchronous batch API that carries a target's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchApi {
    /// OpenAI's Batch API: a JSONL file uploaded, a batch created from it, output and error
    /// files downloaded (also Azure OpenAI and OpenAI-compatible relays).
    OpenAi,
    /// Anthropic's Message Batches: the requests in the create body, results from `results_url`.
    MessageBatches,
}

impl BatchApi {
    /// Its name in messages and README.
    pub fn name(self) -> &'static str {
        match self {
            BatchApi::OpenAi => "the Batch API",
            BatchApi::MessageBatches => "Message Batches",
        }
    }

    /// Most requests in one batch (the provider's limit).
    pub fn max_requests(self) -> u64 {
        match self {
            BatchApi::OpenAi => 50_000,
            BatchApi::MessageBatches => super::message_batches::MAX_REQUESTS,
        }
    }

    /// Largest batch in bytes (OpenAI: the input file; Anthropic: the create body).
    pub fn max_bytes(self) -> u64 {
        match self {
            BatchApi::OpenAi => 200 * 1024 * 1024,
            BatchApi::MessageBatches => super::message_batches::MAX_BYTES,
        }
    }
}

/// Reads one line of an output or error file: its `custom_id` and outcome.
/// `api` reads a successful line's body (a chat completion, response, completion or embeddings).
pub fn parse_line(line: &str, api: super::Api) -> Result<(String, LineOutcome), String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let custom_id = value
        .get("custom_id")
        .and_then(Value::as_str)
        .ok_or("no \"custom_id\"")?
        .to_string();
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_string);
        let code = error.get("code").and_then(Value::as_str);
        let message = match code {
            Some(code) => format!("{code}: {message}"),
            None => message,
        };
        return Ok((
            custom_id,
            LineOutcome::Failure {
                status: None,
                message,
            },
        ));
    }
    let response = value
        .get("response")
        .filter(|r| !r.is_null())
        .ok_or("neither \"response\" nor \"error\"")?;
    let status = response
        .get("status_code")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .ok_or("response has no \"status_code\"")?;
    let body = response.get("body").cloned().unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map_or_else(
                || format!("HTTP {status}"),
                |m| format!("HTTP {status}: {m}"),
            );
        return Ok((
            custom_id,
            LineOutcome::Failure {
                status: Some(status),
                message,
            },
        ));
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Ok((
        custom_id,
        match api.parse_completion(&bytes) {
            Ok(info) => LineOutcome::Success {
                usage: info.usage,
                text: info.text.into_owned(),
            },
            Err(error) => LineOutcome::Failure {
                status: Some(status),
                message: error.to_string(),
            },
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_error_lines_are_read() {
        let ok = r#"{"id":"batch_req_1","custom_id":"drover-3","response":{"status_code":200,"request_id":"r","body":{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2}}},"error":null}"#;
        let (id, outcome) = parse_line(ok, crate::protocol::Api::OpenAi).unwrap();
        assert_eq!(id, "drover-3");
        assert_eq!(
            outcome,
            LineOutcome::Success {
                usage: Some(Usage {
                    prompt_tokens: 5,
                    completion_tokens: 2,
                    cached_tokens: 0,
                    ..Default::default()
                }),
                text: "hi".into()
            }
        );
        let failed = r#"{"custom_id":"drover-4","response":{"status_code":500,"body":{"error":{"message":"boom"}}},"error":null}"#;
        assert_eq!(
            parse_line(failed, crate::protocol::Api::OpenAi).unwrap().1,
            LineOutcome::Failure {
                status: Some(500),
                message: "HTTP 500: boom".into()
            }
        );
        let errored = r#"{"custom_id":"drover-5","response":null,"error":{"code":"batch_expired","message":"not done in time"}}"#;
        assert_eq!(
            parse_line(errored, crate::protocol::Api::OpenAi).unwrap().1,
            LineOutcome::Failure {
                status: None,
                message: "batch_expired: not done in time".into()
            }
        );
        assert!(parse_line("{not json", crate::protocol::Api::OpenAi)
            .unwrap_err()
            .starts_with("invalid JSON"));
        assert_eq!(
            parse_line(r#"{"response":{}}"#, crate::protocol::Api::OpenAi).unwrap_err(),
            "no \"custom_id\""
        );
        assert!(parse_line(r#"{"custom_id":"x"}"#, crate::protocol::Api::OpenAi).is_err());
    }

    #[test]
    fn validation_errors_name_their_input_line() {
        let batch: BatchObject = serde_json::from_str(
            r#"{"id":"b","status":"failed","errors":{"object":"list","data":[{"code":"invalid_request","message":"bad url","line":3}]}}"#,
        )
        .unwrap();
        assert!(batch.is_terminal());
        assert_eq!(batch.error_messages(), vec!["input line 3: bad url"]);
    }
}
