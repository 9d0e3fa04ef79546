//! The OpenAI Batch API, client side: the JSONL input lines, uploading them (`POST /files`,
//! multipart, `purpose=batch`), creating a batch (`POST /batches`), reading and cancelling it
//! (`GET /batches/{id}`, `POST /batches/{id}/cancel`), downloading its output and error files
//! (`GET /files/{id}/content`), and reading their lines back by `custom_id`.

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::driver::HttpClient;
use crate::protocol::openai;
use crate::record::Usage;
use crate::redact::Redactor;

/// Statuses after which a batch changes no more.
pub const TERMINAL_STATUSES: [&str; 4] = ["completed", "failed", "expired", "cancelled"];

/// Largest response body read (an output file of a full batch can be large).
const MAX_DOWNLOAD_BYTES: usize = 1024 * 1024 * 1024;

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
}

/// Reads one line of an output or error file: its `custom_id` and outcome.
pub fn parse_line(line: &str) -> Result<(String, LineOutcome), String> {
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
        match openai::parse_completion(&bytes) {
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

/// Calls the Batch API of one provider.
pub struct BatchClient<'a> {
    pub client: &'a HttpClient,
    /// Base URL up to the version, without a trailing slash.
    pub base_url: &'a str,
    pub authorization: Option<&'a HeaderValue>,
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub redactor: &'a Redactor,
    /// Longest wait for one call.
    pub timeout: std::time::Duration,
}

impl BatchClient<'_> {
    async fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        content_type: Option<String>,
        body: Bytes,
    ) -> Result<Bytes, BatchApiError> {
        let transport = |message: String| BatchApiError::Transport {
            what: what.to_string(),
            message: self
                .redactor
                .scrub_and_cut(&message, crate::redact::MESSAGE_CHARS),
        };
        let uri: Uri = format!("{}{path}", self.base_url)
            .parse()
            .map_err(|e| transport(format!("bad URL: {e}")))?;
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        if let Some(auth) = self.authorization {
            builder = builder.header(header::AUTHORIZATION, auth);
        }
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| transport(format!("cannot build request: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| transport(format!("request failed: {e}")))?;
            let status = response.status();
            let bytes = http_body_util::Limited::new(response.into_body(), MAX_DOWNLOAD_BYTES)
                .collect()
                .await
                .map_err(|e| transport(format!("reading the response failed: {e}")))?
                .to_bytes();
            Ok::<_, BatchApiError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| transport(format!("no answer within {:?}", self.timeout)))??;
        if status != StatusCode::OK && !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| {
                    v.pointer("/error/message")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_else(|| text.into_owned());
            return Err(BatchApiError::Status {
                what: what.to_string(),
                status: status.as_u16(),
                message: self
                    .redactor
                    .scrub_and_cut(&message, crate::redact::MESSAGE_CHARS),
            });
        }
        Ok(bytes)
    }

    fn parse<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        bytes: &[u8],
    ) -> Result<T, BatchApiError> {
        serde_json::from_slice(bytes).map_err(|e| BatchApiError::Protocol {
            what: what.to_string(),
            message: e.to_string(),
        })
    }

    /// Uploads a JSONL input file; returns its file id.
    pub async fn upload(&self, filename: &str, jsonl: Bytes) -> Result<String, BatchApiError> {
        let boundary = format!("drover-{:016x}", rand::random::<u64>());
        let mut body = Vec::with_capacity(jsonl.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
                 Content-Type: application/jsonl\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&jsonl);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let what = "uploading the batch input (POST /files)";
        let bytes = self
            .call(
                what,
                Method::POST,
                "/files",
                Some(format!("multipart/form-data; boundary={boundary}")),
                Bytes::from(body),
            )
            .await?;
        #[derive(Deserialize)]
        struct FileObject {
            id: String,
        }
        Ok(self.parse::<FileObject>(what, &bytes)?.id)
    }

    /// Creates a batch of chat completions from an uploaded file.
    pub async fn create(
        &self,
        input_file_id: &str,
        completion_window: &str,
    ) -> Result<BatchObject, BatchApiError> {
        let what = "creating the batch (POST /batches)";
        let body = json!({
            "input_file_id": input_file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": completion_window,
            "metadata": { "created_by": "drover" },
        });
        let bytes = self
            .call(
                what,
                Method::POST,
                "/batches",
                Some("application/json".into()),
                Bytes::from(body.to_string()),
            )
            .await?;
        self.parse(what, &bytes)
    }

    pub async fn retrieve(&self, id: &str) -> Result<BatchObject, BatchApiError> {
        let what = format!("reading batch {id} (GET /batches/{id})");
        let bytes = self
            .call(
                &what,
                Method::GET,
                &format!("/batches/{id}"),
                None,
                Bytes::new(),
            )
            .await?;
        self.parse(&what, &bytes)
    }

    pub async fn cancel(&self, id: &str) -> Result<BatchObject, BatchApiError> {
        let what = format!("cancelling batch {id} (POST /batches/{id}/cancel)");
        let bytes = self
            .call(
                &what,
                Method::POST,
                &format!("/batches/{id}/cancel"),
                None,
                Bytes::new(),
            )
            .await?;
        self.parse(&what, &bytes)
    }

    /// Downloads a file's content.
    pub async fn content(&self, file_id: &str) -> Result<Bytes, BatchApiError> {
        let what = format!("downloading file {file_id} (GET /files/{file_id}/content)");
        self.call(
            &what,
            Method::GET,
            &format!("/files/{file_id}/content"),
            None,
            Bytes::new(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_error_lines_are_read() {
        let ok = r#"{"id":"batch_req_1","custom_id":"drover-3","response":{"status_code":200,"request_id":"r","body":{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2}}},"error":null}"#;
        let (id, outcome) = parse_line(ok).unwrap();
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
            parse_line(failed).unwrap().1,
            LineOutcome::Failure {
                status: Some(500),
                message: "HTTP 500: boom".into()
            }
        );
        let errored = r#"{"custom_id":"drover-5","response":null,"error":{"code":"batch_expired","message":"not done in time"}}"#;
        assert_eq!(
            parse_line(errored).unwrap().1,
            LineOutcome::Failure {
                status: None,
                message: "batch_expired: not done in time".into()
            }
        );
        assert!(parse_line("{not json")
            .unwrap_err()
            .starts_with("invalid JSON"));
        assert_eq!(
            parse_line(r#"{"response":{}}"#).unwrap_err(),
            "no \"custom_id\""
        );
        assert!(parse_line(r#"{"custom_id":"x"}"#).is_err());
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
