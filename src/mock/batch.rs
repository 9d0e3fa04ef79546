//! The mock's OpenAI Batch API: `POST /v1/files` (multipart, `purpose=batch`),
//! `GET /v1/files/{id}/content`, `POST /v1/batches`, `GET /v1/batches/{id}` and
//! `POST /v1/batches/{id}/cancel`, in OpenAI's formats.
//!
//! A batch moves `validating → in_progress → finalizing → completed` over a configurable
//! processing time (10% validating, 80% in progress, 10% finalizing), judged whenever it is read.
//! A configurable fraction of its requests fail (chosen by a hash of the seed and `custom_id`, so
//! the same input fails the same way); they go to the error file with a 500 response, the rest to
//! the output file as answers of the batch's endpoint (chat completions, responses, completions
//! or embeddings) with usage. An input line that is not a valid request fails the whole batch at
//! validation, as OpenAI does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::openai::count_prompt_tokens;
use super::MockVocabulary;
use crate::protocol::Api;

/// The API of a Batch API endpoint the mock batches (the inverse of
/// [`Api::openai_batch_url`]).
fn endpoint_api(endpoint: &str) -> Option<Api> {
    Api::ALL
        .into_iter()
        .find(|api| api.openai_batch_url() == Some(endpoint))
}

/// The body field that carries an API's prompt.
fn prompt_field(api: Api) -> &'static str {
    match api {
        Api::OpenAi | Api::Anthropic => "messages",
        Api::Completions => "prompt",
        Api::Responses | Api::Embeddings => "input",
    }
}

/// One successful batched answer, written in its endpoint's format.
struct Answered<'a> {
    id: String,
    model: &'a Value,
    content: &'a str,
    finish_reason: &'a str,
    prompt_tokens: u64,
    tokens: u64,
}

impl Answered<'_> {
    fn body(&self, api: Api, request: &Value) -> Value {
        let Answered {
            id,
            model,
            content,
            finish_reason,
            prompt_tokens,
            tokens,
        } = self;
        let created = unix_now();
        match api {
            Api::Embeddings => {
                let inputs = match request.get("input") {
                    Some(Value::Array(items)) if !items.iter().all(Value::is_number) => items.len(),
                    _ => 1,
                };
                let data: Vec<Value> = (0..inputs)
                    .map(|index| json!({ "object": "embedding", "index": index, "embedding": [0.6, 0.8] }))
                    .collect();
                json!({ "object": "list", "data": data, "model": model,
                        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens } })
            }
            Api::Completions => json!({
                "id": format!("cmpl-{id}"), "object": "text_completion", "created": created, "model": model,
                "choices": [{ "index": 0, "text": content, "logprobs": null, "finish_reason": finish_reason }],
                "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": tokens, "total_tokens": prompt_tokens + tokens },
            }),
            Api::Responses => json!({
                "id": format!("resp_{id}"), "object": "response", "created_at": created, "model": model,
                "status": if *finish_reason == "length" { "incomplete" } else { "completed" },
                "incomplete_details": if *finish_reason == "length" { json!({ "reason": "max_output_tokens" }) } else { Value::Null },
                "error": null,
                "output": [{ "id": format!("msg_{id}"), "type": "message", "role": "assistant", "status": "completed",
                             "content": [{ "type": "output_text", "text": content, "annotations": [] }] }],
                "usage": { "input_tokens": prompt_tokens, "input_tokens_details": { "cached_tokens": 0 },
                           "output_tokens": tokens, "output_tokens_details": { "reasoning_tokens": 0 },
                           "total_tokens": prompt_tokens + tokens },
            }),
            Api::Anthropic => json!({
                "id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": model,
                "content": [{ "type": "text", "text": content }],
                "stop_reason": if *finish_reason == "length" { "max_tokens" } else { "end_turn" },
                "stop_sequence": null,
                "usage": { "input_tokens": prompt_tokens, "output_tokens": tokens,
                           "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 },
            }),
            Api::OpenAi => json!({
                "id": format!("chatcmpl-{id}"), "object": "chat.completion", "created": created, "model": model,
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": content, "refusal": null },
                              "logprobs": null, "finish_reason": finish_reason }],
                "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": tokens, "total_tokens": prompt_tokens + tokens },
            }),
        }
    }
}

/// The mock's answer to one batched request `body` of `api`, in that API's format, with usage:
/// the prompt counted in words, `output_tokens` words generated unless the request's cap is
/// lower.
pub(super) fn answer(api: Api, body: &Value, id: &str, output_tokens: u32) -> Value {
    let prompt = api.prompt_messages(body);
    let prompt_tokens = count_prompt_tokens(prompt.as_array().map_or(&[][..], Vec::as_slice))
        + crate::protocol::images::in_body(api, body).0;
    let cap = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .or_else(|| body.get("max_output_tokens"))
        .and_then(Value::as_u64);
    let (tokens, finish_reason) = match cap {
        Some(cap) if cap < u64::from(output_tokens) => (cap, "length"),
        _ => (u64::from(output_tokens), "stop"),
    };
    // Batch answers are in the mock's own words (`tokenizer` applies to live answers).
    let content = MockVocabulary::default().text(tokens as u32);
    Answered {
        id: id.to_string(),
        model: &body["model"],
        content: &content,
        finish_reason,
        prompt_tokens,
        tokens,
    }
    .body(api, body)
}

/// Batch API behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchMockConfig {
    /// From creation to `completed`.
    pub processing_time: Duration,
    /// Fraction of requests that fail (0–1).
    pub failure_rate: f64,
}

impl Default for BatchMockConfig {
    fn default() -> Self {
        BatchMockConfig {
            processing_time: Duration::from_secs(2),
            failure_rate: 0.0,
        }
    }
}

#[derive(Debug)]
struct Batch {
    id: String,
    input_file_id: String,
    endpoint: String,
    completion_window: String,
    created: Instant,
    created_unix: u64,
    cancelled: bool,
    /// Set when validation failed: `(line, message)`.
    invalid: Option<(usize, String)>,
    total: u64,
    /// Output and error file ids, once finished.
    output_file_id: Option<String>,
    error_file_id: Option<String>,
    completed: u64,
    failed: u64,
    metadata: Value,
}

/// Files and batches of one mock.
#[derive(Debug, Default)]
pub(crate) struct BatchStore {
    files: Mutex<HashMap<String, (String, bytes::Bytes)>>,
    batches: Mutex<HashMap<String, Batch>>,
    counter: std::sync::atomic::AtomicU64,
    /// Every `custom_id` the mock failed on purpose.
    failed_ids: Mutex<Vec<String>>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether the mock fails this request (deterministic in seed and id).
pub fn fails(seed: u64, custom_id: &str, rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    // FNV-1a over the id, mixed with the seed, mapped to [0, 1).
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for byte in custom_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    ((hash >> 11) as f64 / (1u64 << 53) as f64) < rate
}

/// What the HTTP layer should answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Value,
}

fn error(status: u16, message: impl Into<String>) -> Answer {
    Answer {
        status,
        body: json!({ "error": { "message": message.into(), "type": "invalid_request_error", "param": null, "code": null } }),
    }
}

/// The `file` and `purpose` parts of a multipart/form-data body.
fn multipart(content_type: &str, body: &[u8]) -> Result<(String, Option<String>, Vec<u8>), String> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .ok_or("expected multipart/form-data with a boundary")?;
    let delimiter = format!("--{boundary}");
    let mut purpose = None;
    let mut file = None;
    let mut filename = None;
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let starts: Vec<usize> = finder.find_iter(body).collect();
    for pair in starts.windows(2) {
        let part = &body[pair[0] + delimiter.len()..pair[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let split = memchr::memmem::find(part, b"\r\n\r\n").ok_or("a part has no headers")?;
        let headers = String::from_utf8_lossy(&part[..split]).to_string();
        let content = &part[split + 4..];
        let disposition = headers
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .unwrap_or_default();
        let field = |name: &str| {
            disposition.split(';').map(str::trim).find_map(|p| {
                p.strip_prefix(&format!("{name}="))
                    .map(|v| v.trim_matches('"').to_string())
            })
        };
        match field("name").as_deref() {
            Some("purpose") => purpose = Some(String::from_utf8_lossy(content).trim().to_string()),
            Some("file") => {
                filename = field("filename");
                file = Some(content.to_vec());
            }
            _ => {}
        }
    }
    let purpose = purpose.ok_or("missing the \"purpose\" field")?;
    let file = file.ok_or("missing the \"file\" field")?;
    Ok((purpose, filename, file))
}

impl BatchStore {
    fn next_id(&self, prefix: &str) -> String {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{prefix}mock{n:06}")
    }

    fn store_file(&self, filename: &str, bytes: Vec<u8>) -> String {
        let id = self.next_id("file-");
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files.insert(
            id.clone(),
            (filename.to_string(), bytes::Bytes::from(bytes)),
        );
        id
    }

    fn file_object(id: &str, filename: &str, bytes: usize, purpose: &str) -> Value {
        json!({
            "id": id, "object": "file", "bytes": bytes, "created_at": unix_now(),
            "filename": filename, "purpose": purpose,
        })
    }

    /// `POST /v1/files`.
    pub(crate) fn upload(&self, content_type: &str, body: &[u8]) -> Answer {
        let (purpose, filename, bytes) = match multipart(content_type, body) {
            Ok(parts) => parts,
            Err(message) => return error(400, message),
        };
        if purpose != "batch" {
            return error(
                400,
                format!("this mock takes purpose \"batch\" only, not \"{purpose}\""),
            );
        }
        let filename = filename.unwrap_or_else(|| "input.jsonl".into());
        let size = bytes.len();
        let id = self.store_file(&filename, bytes);
        Answer {
            status: 200,
            body: Self::file_object(&id, &filename, size, "batch"),
        }
    }

    /// `GET /v1/files/{id}/content`.
    pub(crate) fn content(&self, id: &str) -> Result<bytes::Bytes, Answer> {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files
            .get(id)
            .map(|(_, bytes)| bytes.clone())
            .ok_or_else(|| error(404, format!("No such File object: {id}")))
    }

    /// `POST /v1/batches`.
    pub(crate) fn create(&self, body: &[u8], config: (&BatchMockConfig, u64, u32)) -> Answer {
        let request: Value = match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(e) => return error(400, format!("request body is not valid JSON: {e}")),
        };
        let text = |key: &str| request.get(key).and_then(Value::as_str).map(str::to_string);
        let (Some(input_file_id), Some(endpoint), Some(completion_window)) = (
            text("input_file_id"),
            text("endpoint"),
            text("completion_window"),
        ) else {
            return error(
                400,
                "input_file_id, endpoint and completion_window are required",
            );
        };
        let Some(prompt_field) = endpoint_api(&endpoint).map(prompt_field) else {
            return error(
                400,
                format!("endpoint \"{endpoint}\" is not one of /v1/chat/completions, /v1/responses, /v1/completions, /v1/embeddings"),
            );
        };
        let input = {
            let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
            match files.get(&input_file_id) {
                Some((_, bytes)) => bytes.clone(),
                None => return error(404, format!("No such File object: {input_file_id}")),
            }
        };
        let mut total = 0;
        let mut invalid = None;
        for (index, line) in String::from_utf8_lossy(&input).lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            total += 1;
            let parsed: Result<Value, _> = serde_json::from_str(line);
            let problem = match &parsed {
                Err(e) => Some(format!("invalid JSON: {e}")),
                Ok(v) if v.get("custom_id").and_then(Value::as_str).is_none() => {
                    Some("missing custom_id".into())
                }
                Ok(v) if v.get("url").and_then(Value::as_str) != Some(endpoint.as_str()) => {
                    Some(format!("url must be the batch's endpoint {endpoint}"))
                }
                Ok(v) if v.pointer(&format!("/body/{prompt_field}")).is_none() => {
                    Some(format!("body.{prompt_field} is required"))
                }
                Ok(_) => None,
            };
            if let Some(message) = problem {
                invalid.get_or_insert((index + 1, message));
            }
        }
        let id = self.next_id("batch_");
        let batch = Batch {
            id: id.clone(),
            input_file_id,
            endpoint,
            completion_window,
            created: Instant::now(),
            created_unix: unix_now(),
            cancelled: false,
            invalid,
            total,
            output_file_id: None,
            error_file_id: None,
            completed: 0,
            failed: 0,
            metadata: request.get("metadata").cloned().unwrap_or(Value::Null),
        };
        let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        batches.insert(id.clone(), batch);
        drop(batches);
        Answer {
            status: 200,
            body: self.batch_object(&id, config).expect("just created"),
        }
    }

    /// `POST /v1/batches/{id}/cancel`.
    pub(crate) fn cancel(&self, id: &str, config: (&BatchMockConfig, u64, u32)) -> Answer {
        {
            let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
            match batches.get_mut(id) {
                Some(batch) => batch.cancelled = true,
                None => return error(404, format!("No such Batch object: {id}")),
            }
        }
        self.retrieve(id, config)
    }

    /// `GET /v1/batches/{id}`; `config` finishes it when its time has come.
    pub(crate) fn retrieve(&self, id: &str, config: (&BatchMockConfig, u64, u32)) -> Answer {
        match self.batch_object(id, config) {
            Some(body) => Answer { status: 200, body },
            None => error(404, format!("No such Batch object: {id}")),
        }
    }

    /// Produces the output and error files of a batch whose processing time has passed.
    fn finish(&self, batch: &mut Batch, config: &BatchMockConfig, seed: u64, output_tokens: u32) {
        let input = {
            let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
            files
                .get(&batch.input_file_id)
                .map(|(_, b)| b.clone())
                .unwrap_or_default()
        };
        let (mut output, mut errors) = (String::new(), String::new());
        let mut failed_ids = Vec::new();
        for (n, line) in String::from_utf8_lossy(&input).lines().enumerate() {
            let Ok(request) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let custom_id = request["custom_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let request_id = format!("req_mock_{}_{n}", batch.id);
            let line_id = format!("batch_req_mock_{}_{n}", batch.id);
            if fails(seed, &custom_id, config.failure_rate) {
                failed_ids.push(custom_id.clone());
                let line = json!({
                    "id": line_id, "custom_id": custom_id,
                    "response": { "status_code": 500, "request_id": request_id, "body": {
                        "error": { "message": "The mock failed this request on purpose.", "type": "server_error", "param": null, "code": null }
                    }},
                    "error": null,
                });
                errors.push_str(&line.to_string());
                errors.push('\n');
                batch.failed += 1;
                continue;
            }
            let api = endpoint_api(&batch.endpoint).unwrap_or_default();
            let answer = answer(
                api,
                &request["body"],
                &format!("mock-{}-{n}", batch.id),
                output_tokens,
            );
            let line = json!({
                "id": line_id, "custom_id": custom_id,
                "response": { "status_code": 200, "request_id": request_id, "body": answer },
                "error": null,
            });
            output.push_str(&line.to_string());
            output.push('\n');
            batch.completed += 1;
        }
        batch.output_file_id =
            Some(self.store_file(&format!("{}_output.jsonl", batch.id), output.into_bytes()));
        if !errors.is_empty() {
            batch.error_file_id =
                Some(self.store_file(&format!("{}_error.jsonl", batch.id), errors.into_bytes()));
        }
        self.failed_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(failed_ids);
    }

    fn batch_object(&self, id: &str, config: (&BatchMockConfig, u64, u32)) -> Option<Value> {
        let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let batch = batches.get_mut(id)?;
        let processing = config.0.processing_time;
        let elapsed = batch.created.elapsed();
        let created_unix = batch.created_unix;
        let at = |fraction: f64| created_unix + processing.mul_f64(fraction).as_secs();
        let status = if batch.invalid.is_some() {
            "failed"
        } else if batch.cancelled {
            "cancelled"
        } else if elapsed < processing.mul_f64(0.1) {
            "validating"
        } else if elapsed < processing.mul_f64(0.9) {
            "in_progress"
        } else if elapsed < processing {
            "finalizing"
        } else {
            if batch.output_file_id.is_none() {
                let (config, seed, output_tokens) = config;
                self.finish(batch, config, seed, output_tokens);
            }
            "completed"
        };
        let done = status == "completed";
        let errors = batch.invalid.as_ref().map(|(line, message)| {
            json!({ "object": "list", "data": [{ "code": "invalid_request", "message": message, "param": null, "line": line }] })
        });
        Some(json!({
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "errors": errors,
            "input_file_id": batch.input_file_id,
            "completion_window": batch.completion_window,
            "status": status,
            "output_file_id": if done { json!(batch.output_file_id) } else { Value::Null },
            "error_file_id": if done { json!(batch.error_file_id) } else { Value::Null },
            "created_at": batch.created_unix,
            "in_progress_at": (elapsed >= processing.mul_f64(0.1) && batch.invalid.is_none()).then(|| at(0.1)),
            "expires_at": batch.created_unix + 86_400,
            "finalizing_at": (elapsed >= processing.mul_f64(0.9) && batch.invalid.is_none()).then(|| at(0.9)),
            "completed_at": done.then(|| at(1.0)),
            "failed_at": batch.invalid.as_ref().map(|_| batch.created_unix),
            "expired_at": null,
            "cancelling_at": batch.cancelled.then_some(batch.created_unix),
            "cancelled_at": batch.cancelled.then_some(batch.created_unix),
            "request_counts": { "total": batch.total, "completed": batch.completed, "failed": batch.failed },
            "metadata": batch.metadata,
        }))
    }

    /// Every `custom_id` failed on purpose so far.
    pub(crate) fn failed_ids(&self) -> Vec<String> {
        self.failed_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_draw_is_deterministic_and_close_to_its_rate() {
        let failed = (0..10_000)
            .filter(|i| fails(7, &format!("req-{i}"), 0.02))
            .count();
        assert!((150..=250).contains(&failed), "{failed}");
        assert_eq!(fails(7, "req-1", 0.02), fails(7, "req-1", 0.02));
        assert!(!(0..1000).any(|i| fails(7, &format!("req-{i}"), 0.0)));
    }

    #[test]
    fn multipart_parts_are_found() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n{\"a\":1}\n{\"b\":2}\n\r\n--XyZ--\r\n";
        let (purpose, filename, file) =
            multipart("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(purpose, "batch");
        assert_eq!(filename.as_deref(), Some("in.jsonl"));
        assert_eq!(file, b"{\"a\":1}\n{\"b\":2}\n");
        assert!(multipart("application/json", body).is_err());
    }
}
