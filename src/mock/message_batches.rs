//! The mock's Anthropic Message Batches API: `POST /v1/messages/batches`,
//! `GET /v1/messages/batches`, `GET /v1/messages/batches/{id}`,
//! `POST /v1/messages/batches/{id}/cancel` and `GET /v1/messages/batches/{id}/results`, in
//! Anthropic's formats.
//!
//! A batch is `in_progress` for the configured processing time, then `ended` with its
//! `results_url` (absolute, on the host the request named) and its `request_counts`. The same
//! fraction of requests fails as in the mock's OpenAI Batch API, drawn by the same hash of the
//! seed and `custom_id`; they end `errored` with an `api_error`, the rest `succeeded` with a
//! message and its usage. A cancelled batch answers `canceling` once, then `ended` with every
//! request `canceled`. A create body that Anthropic would refuse (no requests, a `custom_id`
//! not matching `^[a-zA-Z0-9_-]{1,64}$` or used twice, `params` without `model`, `max_tokens` or
//! `messages`) is refused with a 400 naming the request.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::batch::{answer, fails, Answer, BatchMockConfig};
use crate::protocol::message_batches::MAX_REQUESTS;
use crate::protocol::Api;

struct MessageBatch {
    id: String,
    created: Instant,
    created_at: SystemTime,
    /// `(custom_id, params)` per request, in order.
    requests: Vec<(String, Value)>,
    cancel_initiated: Option<SystemTime>,
    /// Whether the cancel answer (`canceling`) was given, after which the batch has ended.
    cancel_seen: bool,
    /// The results file and when processing ended, once it has.
    results: Option<(bytes::Bytes, SystemTime)>,
    succeeded: u64,
    errored: u64,
    canceled: u64,
}

/// The message batches of one mock.
#[derive(Default)]
pub(crate) struct MessageBatchStore {
    batches: Mutex<HashMap<String, MessageBatch>>,
    counter: std::sync::atomic::AtomicU64,
    /// Every `custom_id` the mock failed on purpose.
    failed_ids: Mutex<Vec<String>>,
}

impl std::fmt::Debug for MessageBatchStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageBatchStore").finish_non_exhaustive()
    }
}

/// What the batch calls need of the mock's configuration.
#[derive(Clone, Copy)]
pub(crate) struct Settings<'a> {
    pub batch: &'a BatchMockConfig,
    pub seed: u64,
    pub output_tokens: u32,
    /// `http://{host}` the request was sent to, for `results_url`.
    pub origin: &'a str,
}

fn error(status: u16, kind: &str, message: impl Into<String>) -> Answer {
    Answer {
        status,
        body: json!({ "type": "error", "error": { "type": kind, "message": message.into() } }),
    }
}

fn not_found(id: &str) -> Answer {
    error(
        404,
        "not_found_error",
        format!("No message batch with id {id}"),
    )
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

/// Whether a `custom_id` is one Anthropic accepts.
fn valid_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The requests of a create body, or why Anthropic would refuse it.
fn read_requests(body: &[u8]) -> Result<Vec<(String, Value)>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let requests = value
        .get("requests")
        .and_then(Value::as_array)
        .ok_or("requests: Field required")?;
    if requests.is_empty() {
        return Err("requests: List should have at least 1 item".into());
    }
    if requests.len() as u64 > MAX_REQUESTS {
        return Err(format!(
            "requests: a batch holds at most {MAX_REQUESTS} requests, got {}",
            requests.len()
        ));
    }
    let mut seen = HashSet::new();
    let mut read = Vec::with_capacity(requests.len());
    for (index, request) in requests.iter().enumerate() {
        let custom_id = request
            .get("custom_id")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("requests.{index}.custom_id: Field required"))?;
        if !valid_custom_id(custom_id) {
            return Err(format!(
                "requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            ));
        }
        if !seen.insert(custom_id) {
            return Err(format!(
                "requests.{index}.custom_id: \"{custom_id}\" is used by another request; custom_id must be unique"
            ));
        }
        let params = request
            .get("params")
            .filter(|p| p.is_object())
            .ok_or_else(|| format!("requests.{index}.params: Field required"))?;
        for (field, fits) in [
            ("model", params.get("model").is_some_and(Value::is_string)),
            (
                "max_tokens",
                params.get("max_tokens").is_some_and(Value::is_u64),
            ),
            (
                "messages",
                params.get("messages").is_some_and(Value::is_array),
            ),
        ] {
            if !fits {
                return Err(format!("requests.{index}.params.{field}: Field required"));
            }
        }
        if params.get("stream").and_then(Value::as_bool) == Some(true) {
            return Err(format!(
                "requests.{index}.params.stream: a batched request cannot stream"
            ));
        }
        read.push((custom_id.to_string(), params.clone()));
    }
    Ok(read)
}

impl MessageBatchStore {
    /// `POST /v1/messages/batches`.
    pub(crate) fn create(&self, body: &[u8], settings: Settings<'_>) -> Answer {
        let requests = match read_requests(body) {
            Ok(requests) => requests,
            Err(message) => return error(400, "invalid_request_error", message),
        };
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("msgbatch_mock{n:06}");
        let batch = MessageBatch {
            id: id.clone(),
            created: Instant::now(),
            created_at: SystemTime::now(),
            requests,
            cancel_initiated: None,
            cancel_seen: false,
            results: None,
            succeeded: 0,
            errored: 0,
            canceled: 0,
        };
        let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        batches.insert(id.clone(), batch);
        drop(batches);
        self.retrieve(&id, settings)
    }

    /// `GET /v1/messages/batches/{id}`; a batch whose time has come ends when it is read.
    pub(crate) fn retrieve(&self, id: &str, settings: Settings<'_>) -> Answer {
        let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        match batches.get_mut(id) {
            Some(batch) => Answer {
                status: 200,
                body: self.batch_object(batch, settings),
            },
            None => not_found(id),
        }
    }

    /// `GET /v1/messages/batches`: every batch, newest first.
    pub(crate) fn list(&self, settings: Settings<'_>) -> Answer {
        let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<&mut MessageBatch> = batches.values_mut().collect();
        all.sort_by(|a, b| b.id.cmp(&a.id));
        let data: Vec<Value> = all
            .into_iter()
            .map(|batch| self.batch_object(batch, settings))
            .collect();
        let first = data.first().map(|b| b["id"].clone());
        let last = data.last().map(|b| b["id"].clone());
        Answer {
            status: 200,
            body: json!({ "data": data, "has_more": false, "first_id": first, "last_id": last }),
        }
    }

    /// `POST /v1/messages/batches/{id}/cancel`: a batch still in progress answers `canceling`.
    pub(crate) fn cancel(&self, id: &str, settings: Settings<'_>) -> Answer {
        let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let Some(batch) = batches.get_mut(id) else {
            return not_found(id);
        };
        let ended =
            batch.results.is_some() || batch.created.elapsed() >= settings.batch.processing_time;
        if !ended && batch.cancel_initiated.is_none() {
            batch.cancel_initiated = Some(SystemTime::now());
        }
        Answer {
            status: 200,
            body: self.batch_object(batch, settings),
        }
    }

    /// `GET /v1/messages/batches/{id}/results`: the results JSONL of an ended batch.
    pub(crate) fn results(&self, id: &str) -> Result<bytes::Bytes, Answer> {
        let batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let batch = batches.get(id).ok_or_else(|| not_found(id))?;
        match &batch.results {
            Some((results, _)) => Ok(results.clone()),
            None => Err(error(
                400,
                "invalid_request_error",
                format!("Message batch {id} is still in progress; its results are ready once processing_status is ended"),
            )),
        }
    }

    /// Writes the results of a batch whose processing ended: every request answered (or
    /// failed on purpose), or, after a cancel, none.
    fn end(&self, batch: &mut MessageBatch, settings: Settings<'_>) {
        let mut results = String::new();
        let mut failed_ids = Vec::new();
        for (n, (custom_id, params)) in batch.requests.iter().enumerate() {
            let result = if batch.cancel_initiated.is_some() {
                batch.canceled += 1;
                json!({ "type": "canceled" })
            } else if fails(settings.seed, custom_id, settings.batch.failure_rate) {
                failed_ids.push(custom_id.clone());
                batch.errored += 1;
                json!({ "type": "errored", "error": { "type": "error", "error": {
                    "type": "api_error", "message": "The mock failed this request on purpose." } } })
            } else {
                batch.succeeded += 1;
                let message = answer(
                    Api::Anthropic,
                    params,
                    &format!("mock_{}_{n}", batch.id),
                    settings.output_tokens,
                );
                json!({ "type": "succeeded", "message": message })
            };
            results.push_str(&json!({ "custom_id": custom_id, "result": result }).to_string());
            results.push('\n');
        }
        let ended_at = match batch.cancel_initiated {
            Some(at) => at,
            None => batch.created_at + settings.batch.processing_time,
        };
        batch.results = Some((bytes::Bytes::from(results), ended_at));
        self.failed_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(failed_ids);
    }

    fn batch_object(&self, batch: &mut MessageBatch, settings: Settings<'_>) -> Value {
        let due = batch.created.elapsed() >= settings.batch.processing_time;
        let status = if batch.results.is_some() {
            "ended"
        } else if batch.cancel_initiated.is_some() && !batch.cancel_seen {
            batch.cancel_seen = true;
            "canceling"
        } else if due || batch.cancel_initiated.is_some() {
            self.end(batch, settings);
            "ended"
        } else {
            "in_progress"
        };
        let ended_at = batch.results.as_ref().map(|(_, at)| rfc3339(*at));
        let processing = if status == "ended" {
            0
        } else {
            batch.requests.len()
        };
        json!({
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": {
                "processing": processing,
                "succeeded": batch.succeeded,
                "errored": batch.errored,
                "canceled": batch.canceled,
                "expired": 0,
            },
            "created_at": rfc3339(batch.created_at),
            "expires_at": rfc3339(batch.created_at + Duration::from_secs(24 * 3600)),
            "ended_at": ended_at,
            "archived_at": null,
            "cancel_initiated_at": batch.cancel_initiated.map(rfc3339),
            "results_url": (status == "ended").then(|| format!(
                "{}/v1/messages/batches/{}/results", settings.origin, batch.id
            )),
        })
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

    fn settings(config: &BatchMockConfig) -> Settings<'_> {
        Settings {
            batch: config,
            seed: 7,
            output_tokens: 4,
            origin: "http://127.0.0.1:1",
        }
    }

    fn body(n: usize) -> Vec<u8> {
        let requests: Vec<Value> = (0..n)
            .map(|i| {
                json!({ "custom_id": format!("r-{i}"), "params": {
                "model": "claude", "max_tokens": 8,
                "messages": [{ "role": "user", "content": "one two three" }] } })
            })
            .collect();
        json!({ "requests": requests }).to_string().into_bytes()
    }

    #[test]
    fn a_batch_ends_after_its_processing_time_with_every_result() {
        let config = BatchMockConfig {
            processing_time: Duration::ZERO,
            failure_rate: 0.0,
        };
        let store = MessageBatchStore::default();
        let created = store.create(&body(3), settings(&config));
        assert_eq!(created.status, 200);
        let id = created.body["id"].as_str().unwrap().to_string();
        let read = store.retrieve(&id, settings(&config)).body;
        assert_eq!(read["processing_status"], "ended");
        assert_eq!(read["request_counts"]["succeeded"], 3);
        assert_eq!(
            read["results_url"],
            format!("http://127.0.0.1:1/v1/messages/batches/{id}/results")
        );
        let results = store.results(&id).unwrap();
        let lines: Vec<Value> = std::str::from_utf8(&results)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["custom_id"], "r-2");
        let message = &lines[0]["result"]["message"];
        assert_eq!(message["usage"]["input_tokens"], 3);
        assert_eq!(message["usage"]["output_tokens"], 4);
    }

    #[test]
    fn a_cancelled_batch_answers_canceling_then_ends_with_every_request_canceled() {
        let config = BatchMockConfig {
            processing_time: Duration::from_secs(3600),
            failure_rate: 0.0,
        };
        let store = MessageBatchStore::default();
        let id = store.create(&body(2), settings(&config)).body["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            store.retrieve(&id, settings(&config)).body["processing_status"],
            "in_progress"
        );
        assert!(store.results(&id).is_err());
        let cancelled = store.cancel(&id, settings(&config)).body;
        assert_eq!(cancelled["processing_status"], "canceling");
        assert!(cancelled["cancel_initiated_at"].is_string());
        let ended = store.retrieve(&id, settings(&config)).body;
        assert_eq!(ended["processing_status"], "ended");
        assert_eq!(ended["request_counts"]["canceled"], 2);
        assert!(std::str::from_utf8(&store.results(&id).unwrap())
            .unwrap()
            .lines()
            .all(|l| l.contains(r#""result":{"type":"canceled"}"#)));
    }

    #[test]
    fn a_create_body_anthropic_would_refuse_is_refused_naming_the_request() {
        let config = BatchMockConfig::default();
        let store = MessageBatchStore::default();
        let refused = |body: Value| {
            let answer = store.create(body.to_string().as_bytes(), settings(&config));
            assert_eq!(answer.status, 400, "{}", answer.body);
            answer.body["error"]["message"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            refused(json!({ "requests": [] })),
            "requests: List should have at least 1 item"
        );
        let params = json!({ "model": "m", "max_tokens": 1, "messages": [] });
        assert!(
            refused(json!({ "requests": [{ "custom_id": "a b", "params": params }] }))
                .starts_with("requests.0.custom_id: String should match")
        );
        assert!(refused(json!({ "requests": [
            { "custom_id": "a", "params": params }, { "custom_id": "a", "params": params }] }))
        .contains("must be unique"));
        assert_eq!(
            refused(
                json!({ "requests": [{ "custom_id": "a", "params": { "model": "m", "messages": [] } }] })
            ),
            "requests.0.params.max_tokens: Field required"
        );
        assert_eq!(store.retrieve("nope", settings(&config)).status, 404);
    }
}
