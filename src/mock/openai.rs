//! The mock's completion endpoints: OpenAI-compatible chat completions, and the same answers in
//! the Responses API's format at `/v1/responses`, legacy completions at `/v1/completions`, the
//! Anthropic Messages API's at `/v1/messages`, and embeddings at `/v1/embeddings`. Azure
//! OpenAI's shape (`/openai/deployments/{name}/…?api-version=…`, the key in `api-key`) reaches
//! the same routes.
//!
//! Per-request overrides (for tests), as request headers:
//! - `x-mock-ttft-ms`, `x-mock-itl-ms`: fixed delays for this request;
//! - `x-mock-output-tokens`: tokens to generate (still capped by `max_tokens`);
//! - `x-mock-reasoning-tokens`: of those, how many come first as reasoning;
//! - `x-mock-prelude-ms`: send a role-only chunk this long after the request;
//! - `x-mock-status`: answer with this HTTP status and an OpenAI-style error body (429 carries
//!   `Retry-After: 1`);
//! - `x-mock-fault`: inject this fault (a name from [`Fault::name`]) whatever the fault plan says.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::stream;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use rand::SeedableRng;
use serde_json::{json, Value};

use super::faults::Fault;
use super::{server_metrics, LatencyModel, MockConfig, MockState};

mod embeddings;
mod responses;
mod tool_call;

type MockBody = BoxBody<Bytes, std::io::Error>;

/// Returned by the service to make hyper drop the connection without a response.
#[derive(Debug, thiserror::Error)]
#[error("mock fault: connection reset before headers")]
pub(crate) struct ResetConnection;

/// Largest request body the mock accepts.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

pub(crate) async fn handle(
    request: Request<Incoming>,
    state: Arc<MockState>,
    id: u64,
) -> Result<Response<MockBody>, ResetConnection> {
    let received = Instant::now();
    let path = match azure_path(request.uri()) {
        Ok(path) => path,
        Err(message) => {
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &message,
            ))
        }
    };
    let generating = match path.as_str() {
        "/v1/chat/completions" | "/chat/completions" => Some(Format::OpenAi),
        "/v1/messages" | "/messages" => Some(Format::Anthropic),
        "/v1/responses" | "/responses" => Some(Format::Responses),
        "/v1/completions" | "/completions" => Some(Format::Completions),
        _ => None,
    };
    if request.method() == Method::POST {
        if let Some(format) = generating {
            state.requests.fetch_add(1, Ordering::Relaxed);
            return chat_completions(request, state, id, received, format).await;
        }
        if matches!(path.as_str(), "/v1/embeddings" | "/embeddings") {
            state.requests.fetch_add(1, Ordering::Relaxed);
            return embeddings::handle(request, state, id, received).await;
        }
    }
    let response = match (request.method().clone(), path.as_str()) {
        (method, path) if path.starts_with("/v1/messages/batches") => {
            return Ok(message_batches_api(request, method, path.to_string(), state).await);
        }
        (method, path) if path.starts_with("/v1/files") || path.starts_with("/v1/batches") => {
            return Ok(batch_api(request, method, path.to_string(), state).await);
        }
        (Method::GET, "/mock/faults") => json_response(
            StatusCode::OK,
            json!({ "injected": state.faults_injected.snapshot() }),
        ),
        (Method::GET, "/metrics") => Response::builder()
            .status(StatusCode::OK)
            .header(
                header::CONTENT_TYPE,
                crate::protocol::prometheus::CONTENT_TYPE,
            )
            .body(
                Full::new(Bytes::from(state.gauges.page()))
                    .map_err(|never: Infallible| match never {})
                    .boxed(),
            )
            .expect("static response parts are valid"),
        (Method::GET, "/v1/models" | "/models") => json_response(
            StatusCode::OK,
            json!({
                "object": "list",
                "data": [{ "id": "mock-llm", "object": "model", "created": 0, "owned_by": "drover" }]
            }),
        ),
        (Method::POST, "/mock/pause") => {
            let ms = request
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
                .and_then(|v| v.parse::<u64>().ok());
            match ms {
                Some(ms) => {
                    state.pause.pause_for(Duration::from_millis(ms));
                    json_response(StatusCode::OK, json!({ "paused_ms": ms }))
                }
                None => error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "POST /mock/pause needs ?ms=<milliseconds>",
                ),
            }
        }
        _ => error_response(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("no route for {} {}", request.method(), request.uri().path()),
        ),
    };
    Ok(response)
}

/// The request's path, with Azure OpenAI's deployment prefix
/// (`/openai/deployments/{name}/chat/completions?api-version=…`) turned into the `/v1/` route;
/// an Azure-shaped request without `api-version` is refused as Azure refuses it.
fn azure_path(uri: &http::Uri) -> Result<String, String> {
    let path = uri.path().trim_end_matches('/');
    let Some(rest) = path.strip_prefix("/openai/deployments/") else {
        return Ok(path.to_string());
    };
    let Some((_deployment, route)) = rest.split_once('/') else {
        return Ok(path.to_string());
    };
    let has_version = uri.query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.starts_with("api-version=") && kv.len() > 12)
    });
    if !has_version {
        return Err("Missing required query parameter: api-version".into());
    }
    Ok(format!("/v1/{route}"))
}

/// The key a request presented: `Authorization: Bearer`, Azure's `api-key`, or Anthropic's
/// `x-api-key`.
fn presented_key(headers: &HeaderMap, format: Format) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match format {
        Format::Anthropic => header("x-api-key"),
        _ => header(header::AUTHORIZATION.as_str())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| header("api-key")),
    }
    .map(str::to_string)
}

/// The Batch API routes (see [`super::batch`]).
async fn batch_api(
    request: Request<Incoming>,
    method: Method,
    path: String,
    state: Arc<MockState>,
) -> Response<MockBody> {
    if let Some(required) = &state.required_key {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(required.as_str()) {
            return error_response(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "Incorrect API key provided.",
            );
        }
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = match http_body_util::Limited::new(request.into_body(), MAX_UPLOAD_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("could not read request body: {e}"),
            )
        }
    };
    let store = &state.batches;
    let config = &state.config;
    let finish = (&config.batch, config.seed, config.output_tokens);
    let segments: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
    let answer = match (method, segments.as_slice()) {
        (Method::POST, ["files"]) => store.upload(&content_type, &body),
        (Method::GET, ["files", id, "content"]) => {
            return match store.content(id) {
                Ok(bytes) => Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(
                        Full::new(bytes)
                            .map_err(|never: Infallible| match never {})
                            .boxed(),
                    )
                    .expect("static response parts are valid"),
                Err(answer) => json_response(
                    StatusCode::from_u16(answer.status).unwrap_or(StatusCode::NOT_FOUND),
                    answer.body,
                ),
            }
        }
        (Method::POST, ["batches"]) => store.create(&body, finish),
        (Method::GET, ["batches", id]) => store.retrieve(id, finish),
        (Method::POST, ["batches", id, "cancel"]) => store.cancel(id, finish),
        (method, _) => super::batch::Answer {
            status: 404,
            body: json!({ "error": { "message": format!("no route for {method} {path}"), "type": "invalid_request_error" } }),
        },
    };
    json_response(
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        answer.body,
    )
}

/// The Message Batches routes (see [`super::message_batches`]): Anthropic's headers
/// (`x-api-key` when a key is required, `anthropic-version`) and its error format.
async fn message_batches_api(
    request: Request<Incoming>,
    method: Method,
    path: String,
    state: Arc<MockState>,
) -> Response<MockBody> {
    let headers = request.headers();
    if !headers.contains_key("anthropic-version") {
        return anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    if let Some(required) = &state.required_key {
        if presented_key(headers, Format::Anthropic).as_deref() != Some(required.as_str()) {
            return anthropic_error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid x-api-key",
            );
        }
    }
    // `results_url` points back at the host the client named.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "127.0.0.1".into());
    let origin = format!("http://{host}");
    let body = match http_body_util::Limited::new(request.into_body(), MAX_UPLOAD_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return anthropic_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("could not read request body: {e}"),
            )
        }
    };
    let store = &state.message_batches;
    let config = &state.config;
    let settings = super::message_batches::Settings {
        batch: &config.batch,
        seed: config.seed,
        output_tokens: config.output_tokens,
        origin: &origin,
    };
    let segments: Vec<&str> = path
        .trim_start_matches("/v1/messages/batches")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let answer = match (method, segments.as_slice()) {
        (Method::POST, []) => store.create(&body, settings),
        (Method::GET, []) => store.list(settings),
        (Method::GET, [id]) => store.retrieve(id, settings),
        (Method::POST, [id, "cancel"]) => store.cancel(id, settings),
        (Method::GET, [id, "results"]) => {
            return match store.results(id) {
                Ok(bytes) => Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/binary")
                    .body(
                        Full::new(bytes)
                            .map_err(|never: Infallible| match never {})
                            .boxed(),
                    )
                    .expect("static response parts are valid"),
                Err(answer) => json_response(
                    StatusCode::from_u16(answer.status).unwrap_or(StatusCode::NOT_FOUND),
                    answer.body,
                ),
            }
        }
        (method, _) => {
            return anthropic_error(
                StatusCode::NOT_FOUND,
                "not_found_error",
                &format!("no route for {method} {path}"),
            )
        }
    };
    json_response(
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        answer.body,
    )
}

/// Largest file upload the mock's Batch API accepts (OpenAI's limit is 200 MB).
const MAX_UPLOAD_BYTES: usize = 200 * 1024 * 1024;

fn json_response(status: StatusCode, body: Value) -> Response<MockBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never: Infallible| match never {})
                .boxed(),
        )
        .expect("static response parts are valid")
}

fn error_response(status: StatusCode, kind: &str, message: &str) -> Response<MockBody> {
    json_response(
        status,
        json!({ "error": { "message": message, "type": kind, "param": null, "code": null } }),
    )
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Counts whitespace-separated words in every message's text as the prompt's token count.
pub(crate) fn count_prompt_tokens(messages: &[Value]) -> u64 {
    let words = |text: &str| text.split_whitespace().count() as u64;
    messages
        .iter()
        .map(|message| match message.get("content") {
            Some(Value::String(text)) => words(text),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .map(words)
                .sum(),
            _ => 0,
        })
        .sum()
}

/// The parts of a request the mock acts on.
/// The wire format an answer is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// OpenAI chat completions: `data:` chunks, `[DONE]`.
    OpenAi,
    /// The Anthropic Messages API: `event:`-typed SSE, usage in `message_start`/`message_delta`.
    Anthropic,
    /// The Responses API: typed events until `response.completed`.
    Responses,
    /// Legacy completions: `data:` chunks of `choices[].text`, `[DONE]`.
    Completions,
}

struct Job {
    format: Format,
    model: String,
    stream: bool,
    include_usage: bool,
    tokens: u32,
    /// Of `tokens`, how many come first as reasoning.
    reasoning_tokens: u32,
    finish_reason: &'static str,
    prompt_tokens: u64,
    /// Of `prompt_tokens`, those served from the simulated prompt cache (`None`: no cache).
    cached_tokens: Option<u64>,
    /// `delays[0]` is the time to first token; `delays[i]` the gap before token i. Each token is
    /// due a gap after the previous one actually went out, so a gap is never shorter than drawn.
    delays: Vec<Duration>,
    prelude: Option<Duration>,
    /// What its tokens are.
    vocabulary: super::MockVocabulary,
    /// A tool call instead of text (its argument pieces are its tokens).
    tool_call: Option<tool_call::MockToolCall>,
}

/// A request the mock will answer: its headers, the key it presented, its body.
struct Admitted {
    headers: HeaderMap,
    key: Option<String>,
    body: Bytes,
}

/// What every answering route checks before it plans an answer, in order: Anthropic's version
/// header, the key (when one is required), a status forced by `x-mock-status`; then it reads the
/// body, bounded. `Err` is the answer to send instead.
async fn admit(
    request: Request<Incoming>,
    state: &MockState,
    format: Format,
) -> Result<Admitted, Response<MockBody>> {
    let headers = request.headers().clone();
    let key = presented_key(&headers, format);
    if format == Format::Anthropic && !headers.contains_key("anthropic-version") {
        return Err(anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        ));
    }
    if let Some(required) = &state.required_key {
        if key.as_deref() != Some(required.as_str()) {
            return Err(error_response(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "Incorrect API key provided.",
            ));
        }
    }
    if let Some(status) = header_u64(&headers, "x-mock-status") {
        let status = u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Err(status_response(
            status,
            &format!("mock error with status {}", status.as_u16()),
        ));
    }
    match http_body_util::Limited::new(request.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(Admitted {
            headers,
            key,
            body: collected.to_bytes(),
        }),
        Err(e) => Err(error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("could not read request body: {e}"),
        )),
    }
}

async fn chat_completions(
    request: Request<Incoming>,
    state: Arc<MockState>,
    id: u64,
    received: Instant,
    format: Format,
) -> Result<Response<MockBody>, ResetConnection> {
    let Admitted {
        headers,
        key: presented_key,
        body,
    } = match admit(request, &state, format).await {
        Ok(admitted) => admitted,
        Err(response) => return Ok(response),
    };
    let job = match plan_job(&body, &headers, &state, id, format) {
        Ok(job) => job,
        Err(message) => {
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &message,
            ))
        }
    };
    let fault = match headers.get("x-mock-fault").and_then(|v| v.to_str().ok()) {
        Some(name) => match Fault::from_name(name.trim()) {
            Some(fault) => Some(fault),
            None => {
                return Ok(error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    &format!("x-mock-fault: unknown fault \"{name}\""),
                ))
            }
        },
        None => {
            let mut rng =
                rand::rngs::StdRng::seed_from_u64(state.config.seed ^ id.wrapping_mul(0xFA17));
            state.config.faults.draw(&mut rng, job.stream)
        }
    };
    if let Some(fault) = fault {
        state.faults_injected.add(fault);
        if let Some(response) = answer_with_fault(fault, presented_key.as_deref())? {
            return Ok(response);
        }
    }
    state.completions.fetch_add(1, Ordering::Relaxed);
    // The capacity model: wait for a decode slot, and time the answer from when one is free.
    let arrived = received;
    let (slot, received) = match &state.slots {
        Some(slots) => {
            let _waiting = state.gauges.waiting();
            match slots.clone().acquire_owned().await {
                Ok(permit) => (Some(permit), Instant::now()),
                Err(_) => (None, received),
            }
        }
        None => (None, received),
    };
    let mut busy =
        server_metrics::Busy::start(state.gauges.clone(), slot, arrived, job.prompt_tokens);
    Ok(if job.stream {
        stream_response(job, fault, state, id, received, busy)
    } else {
        let first_token_at = received + job.delays.first().copied().unwrap_or_default();
        let tokens = u64::from(job.tokens);
        let response = complete_response(job, state, id, received).await;
        busy.tokens(tokens, first_token_at);
        drop(busy);
        response
    })
}

/// The whole answer for faults that replace the response; `None` for faults inside a stream.
fn answer_with_fault(
    fault: Fault,
    presented_key: Option<&str>,
) -> Result<Option<Response<MockBody>>, ResetConnection> {
    let status = match fault {
        Fault::ResetBeforeHeaders => return Err(ResetConnection),
        Fault::Http408 => StatusCode::REQUEST_TIMEOUT,
        Fault::Http429 => StatusCode::TOO_MANY_REQUESTS,
        Fault::Http500 => StatusCode::INTERNAL_SERVER_ERROR,
        Fault::Http502 => StatusCode::BAD_GATEWAY,
        Fault::Http503 => StatusCode::SERVICE_UNAVAILABLE,
        Fault::EchoKey => {
            return Ok(Some(error_response(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                &format!(
                    "Incorrect API key provided: {}. You can find your API key in your account settings.",
                    presented_key.unwrap_or("(none)")
                ),
            )))
        }
        _ => return Ok(None),
    };
    Ok(Some(status_response(
        status,
        &format!("mock fault: {}", fault.name()),
    )))
}

/// An error response with `status`; a 429 carries `Retry-After: 1` and `x-ratelimit-*` headers
/// as OpenAI sends them.
fn status_response(status: StatusCode, message: &str) -> Response<MockBody> {
    let throttled = status == StatusCode::TOO_MANY_REQUESTS;
    let kind = if throttled {
        "rate_limit_exceeded"
    } else {
        "server_error"
    };
    let mut response = error_response(status, kind, message);
    if throttled {
        let headers = response.headers_mut();
        for (name, value) in [
            ("retry-after", "1"),
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "1s"),
        ] {
            headers.insert(name, http::HeaderValue::from_static(value));
        }
    }
    response
}

fn plan_job(
    body: &[u8],
    headers: &HeaderMap,
    state: &MockState,
    id: u64,
    format: Format,
) -> Result<Job, String> {
    let request: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .ok_or("you must provide a model parameter")?
        .to_string();
    let prompt = prompt_messages(&request, format)?;
    let messages = &prompt;
    let stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // A relay's batch mode on chat completions: one JSON answer, tokens produced faster.
    let batch_mode = request.get("mode").and_then(Value::as_str) == Some("batch");
    if batch_mode && stream {
        return Err("\"mode\": \"batch\" does not stream: send \"stream\": false".into());
    }
    let max_tokens = request
        .get("max_completion_tokens")
        .or_else(|| request.get("max_tokens"))
        .or_else(|| request.get("max_output_tokens"))
        .and_then(Value::as_u64);
    if format == Format::Responses && request.get("max_tokens").is_some() {
        return Err("Unsupported parameter: 'max_tokens'. Use 'max_output_tokens' instead.".into());
    }
    if format == Format::Anthropic && max_tokens.is_none() {
        return Err("max_tokens: Field required".into());
    }
    if max_tokens == Some(0) {
        return Err("max_tokens must be at least 1".into());
    }
    let config = &state.config;
    let wanted = header_u64(headers, "x-mock-output-tokens")
        .map_or(config.output_tokens, |n| n.clamp(1, u32::MAX as u64) as u32);
    let min_tokens = request
        .get("min_tokens")
        .and_then(Value::as_u64)
        .map_or(0, |n| n.min(u32::MAX as u64) as u32);
    let ignore_eos = request
        .get("ignore_eos")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let wanted = wanted.max(min_tokens);
    let (mut tokens, mut finish_reason) = match max_tokens {
        Some(cap) if cap < wanted as u64 => (cap as u32, "length"),
        _ => (wanted, "stop"),
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed ^ id.wrapping_mul(0x9E37_79B9));
    if config.early_stop > 0.0 && !ignore_eos {
        use rand::RngExt;
        let shortest = min_tokens.max(1);
        if rng.random::<f64>() < config.early_stop && tokens > shortest {
            tokens = rng.random_range(shortest..tokens);
            finish_reason = "stop";
        }
    }
    // Tool calls are answered on chat completions (the other formats answer in text).
    let tool_call = (format == Format::OpenAi)
        .then(|| {
            use rand::RngExt;
            tool_call::plan(&request, format, config, &mut || rng.random::<f64>())
        })
        .flatten();
    if let Some(call) = &tool_call {
        tokens = (call.pieces.len() as u32).max(1);
        finish_reason = "tool_calls";
    }
    let cached_tokens = config
        .cache_ttft
        .map(|_| cached_prefix_tokens(state, messages, tokens));
    let fixed = |name: &str| header_u64(headers, name).map(Duration::from_millis);
    let cache_hit = cached_tokens.is_some_and(|n| n > 0);
    let delays = token_delays(headers, config, cache_hit, batch_mode, tokens, &mut rng);
    let prompt_tokens = billed_prompt_tokens(&request, messages, format, state);
    let reasoning_tokens = match format {
        Format::Completions => 0,
        _ => header_u64(headers, "x-mock-reasoning-tokens")
            .map_or(config.reasoning_tokens, |n| n.min(u32::MAX as u64) as u32),
    }
    .min(tokens);
    Ok(Job {
        format,
        model,
        stream,
        // The Messages API always reports usage.
        include_usage: include_usage || format == Format::Anthropic,
        tokens,
        reasoning_tokens,
        finish_reason,
        prompt_tokens: scaled_input(prompt_tokens, config.input_usage_scale),
        cached_tokens,
        delays,
        prelude: fixed("x-mock-prelude-ms").or(config.prelude),
        vocabulary: config.vocabulary.clone(),
        tool_call,
    })
}

/// The prompt tokens the mock bills: the messages (the Messages API's top-level system prompt,
/// a string or text blocks, counting like a system message's content), and any images by the
/// provider's formula for the format, as a real server bills them. Counts the images received.
fn billed_prompt_tokens(
    request: &Value,
    messages: &[Value],
    format: Format,
    state: &MockState,
) -> u64 {
    let config = &state.config;
    let prompt_tokens = match request.get("system") {
        Some(system) if format == Format::Anthropic => {
            let mut with_system = vec![json!({ "role": "system", "content": system })];
            with_system.extend(messages.iter().cloned());
            config.vocabulary.prompt_tokens(&with_system)
        }
        _ => config.vocabulary.prompt_tokens(messages),
    };
    let image_api = match format {
        Format::OpenAi => Some(crate::protocol::Api::OpenAi),
        Format::Anthropic => Some(crate::protocol::Api::Anthropic),
        Format::Responses => Some(crate::protocol::Api::Responses),
        Format::Completions => None,
    };
    let (image_tokens, images) = image_api.map_or((0, 0), |api| {
        crate::protocol::images::in_messages(api, messages)
    });
    state.gauges.count_images(images);
    let tool_results = messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
        .count();
    state.gauges.count_tool_results(tool_results as u64);
    prompt_tokens + image_tokens
}

/// The prompt of a request as chat messages: `messages`; the Responses API's `input` (text or
/// items) after its `instructions`; a completion's `prompt`.
fn prompt_messages(request: &Value, format: Format) -> Result<Vec<Value>, String> {
    let messages = match format {
        Format::OpenAi | Format::Anthropic => request
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Format::Responses => {
            let mut messages: Vec<Value> = request
                .get("instructions")
                .map(|text| json!({ "role": "system", "content": text }))
                .into_iter()
                .collect();
            match request.get("input") {
                Some(Value::String(text)) => {
                    messages.push(json!({ "role": "user", "content": text }))
                }
                Some(Value::Array(items)) => messages.extend(items.iter().cloned()),
                _ => return Err("'input' must be a string or a list of input items".into()),
            }
            messages
        }
        Format::Completions => match request.get("prompt") {
            Some(Value::String(text)) => vec![json!({ "role": "user", "content": text })],
            _ => return Err("'prompt' must be a string".into()),
        },
    };
    if messages
        .iter()
        .all(|m| m.get("role").and_then(Value::as_str) == Some("system"))
    {
        return Err(match format {
            Format::Responses => "'input' must not be empty".into(),
            _ => "'messages' must be a non-empty array".into(),
        });
    }
    Ok(messages)
}

/// The prompt cache: the messages before the last are a prefix an earlier request may have
/// warmed (as its own prefix, or as its messages plus the answer it got). Returns the cached
/// prompt tokens (0 on a miss) and warms this request's own messages and answer.
fn cached_prefix_tokens(state: &MockState, messages: &[Value], tokens: u32) -> u64 {
    let prefix = &messages[..messages.len() - 1];
    let hit = !prefix.is_empty()
        && state
            .prompt_cache
            .check_and_insert(super::PromptCache::key(prefix));
    let mut answered = messages.to_vec();
    answered.push(json!({ "role": "assistant", "content": state.config.vocabulary.text(tokens) }));
    state
        .prompt_cache
        .insert(super::PromptCache::key(&answered));
    if hit {
        state.config.vocabulary.text_tokens(prefix)
    } else {
        0
    }
}

/// Each token's delay: the first from the TTFT model (the cached one on a cache hit, or a
/// fixed header), the rest from the inter-token model (faster in batch mode).
fn token_delays(
    headers: &HeaderMap,
    config: &MockConfig,
    cache_hit: bool,
    batch_mode: bool,
    tokens: u32,
    rng: &mut rand::rngs::StdRng,
) -> Vec<Duration> {
    let fixed = |name: &str| header_u64(headers, name).map(Duration::from_millis);
    let ttft_model = match (fixed("x-mock-ttft-ms"), config.cache_ttft) {
        (Some(ms), _) => LatencyModel::Fixed(ms),
        (None, Some(cached)) if cache_hit => cached,
        _ => config.ttft,
    };
    let itl_model = fixed("x-mock-itl-ms").map_or(config.itl, LatencyModel::Fixed);
    let speedup = if batch_mode {
        config.batch_mode_speedup
    } else {
        1.0
    };
    (0..tokens)
        .map(|i| {
            if i == 0 {
                ttft_model.sample(rng)
            } else {
                itl_model.sample(rng).div_f64(speedup)
            }
        })
        .collect()
}

/// The Messages API's name for a finish reason.
fn anthropic_stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        _ => "end_turn",
    }
}

/// Messages API usage: `input_tokens` excludes cache reads, which are counted apart.
fn anthropic_usage(job: &Job, output_tokens: Option<u32>) -> Value {
    let cached = job.cached_tokens.unwrap_or(0);
    let mut usage = json!({
        "input_tokens": job.prompt_tokens - cached.min(job.prompt_tokens),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    });
    if let Some(output) = output_tokens {
        usage["output_tokens"] = json!(output);
    }
    usage
}

/// An error in the Messages API's shape.
fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response<MockBody> {
    json_response(
        status,
        json!({ "type": "error", "error": { "type": kind, "message": message } }),
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The input tokens a mock reports: the prompt's count times `scale` (1 unless a test asks the
/// mock to over-count).
fn scaled_input(counted: u64, scale: f64) -> u64 {
    if scale == 1.0 {
        return counted;
    }
    (counted as f64 * scale).round() as u64
}

fn usage_json(job: &Job) -> Value {
    let mut usage = json!({
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": job.tokens,
        "total_tokens": job.prompt_tokens + job.tokens as u64,
    });
    if let Some(cached) = job.cached_tokens {
        usage["prompt_tokens_details"] = json!({ "cached_tokens": cached });
    }
    if job.reasoning_tokens > 0 {
        usage["completion_tokens_details"] = json!({ "reasoning_tokens": job.reasoning_tokens });
    }
    usage
}

/// The words of an answer: its reasoning (the first `reasoning_tokens`), then its answer.
fn answer_parts(job: &Job) -> (String, String) {
    let all: Vec<&str> = (0..job.tokens as usize)
        .map(|i| job.vocabulary.word(i))
        .collect();
    let (reasoning, answer) = all.split_at(job.reasoning_tokens as usize);
    (reasoning.concat(), answer.concat())
}

async fn complete_response(
    job: Job,
    state: Arc<MockState>,
    id: u64,
    received: Instant,
) -> Response<MockBody> {
    let total: Duration = job.delays.iter().sum();
    wait_out(&state, received + total).await;
    let (reasoning, content) = answer_parts(&job);
    match job.format {
        Format::Responses => {
            return json_response(StatusCode::OK, responses::whole_response(&job, id))
        }
        Format::Completions => {
            return json_response(
                StatusCode::OK,
                json!({
                    "id": format!("cmpl-mock-{id}"),
                    "object": "text_completion",
                    "created": unix_now(),
                    "model": job.model,
                    "choices": [{
                        "index": 0,
                        "text": content,
                        "logprobs": null,
                        "finish_reason": job.finish_reason,
                    }],
                    "usage": usage_json(&job),
                }),
            )
        }
        Format::OpenAi | Format::Anthropic => {}
    }
    if job.format == Format::Anthropic {
        let mut blocks = Vec::new();
        if !reasoning.is_empty() {
            blocks.push(json!({ "type": "thinking", "thinking": reasoning, "signature": "mock" }));
        }
        blocks.push(json!({ "type": "text", "text": content }));
        return json_response(
            StatusCode::OK,
            json!({
                "id": format!("msg_mock_{id}"),
                "type": "message",
                "role": "assistant",
                "model": job.model,
                "content": blocks,
                "stop_reason": anthropic_stop_reason(job.finish_reason),
                "stop_sequence": null,
                "usage": anthropic_usage(&job, Some(job.tokens)),
            }),
        );
    }
    json_response(
        StatusCode::OK,
        json!({
            "id": format!("chatcmpl-mock-{id}"),
            "object": "chat.completion",
            "created": unix_now(),
            "model": job.model,
            "system_fingerprint": null,
            "choices": [{
                "index": 0,
                "message": if let Some(call) = &job.tool_call {
                    json!({ "role": "assistant", "content": null, "refusal": null, "tool_calls": [{
                        "id": format!("call_mock_{id}"), "type": "function",
                        "function": { "name": call.name, "arguments": call.arguments() }
                    }] })
                } else if reasoning.is_empty() {
                    json!({ "role": "assistant", "content": content, "refusal": null })
                } else {
                    json!({ "role": "assistant", "content": content, "reasoning_content": reasoning, "refusal": null })
                },
                "logprobs": null,
                "finish_reason": job.finish_reason,
            }],
            "usage": usage_json(&job),
        }),
    )
}

/// Sleeps until `due`, then out any pause in force (pushing the deadline back by it). Returns the
/// time added by pauses.
async fn wait_out(state: &MockState, due: Instant) -> Duration {
    let mut added = Duration::ZERO;
    loop {
        state.timer.sleep_until(due + added).await;
        let waited = state.pause.wait().await;
        if waited.is_zero() {
            return added;
        }
        added += waited;
    }
}

/// What the stream sends next.
enum Step {
    Prelude,
    Token(usize),
    Finish,
    Usage,
    Done,
    End,
}

struct StreamState {
    /// `{"id":...,"choices":[{"index":0,"delta":` — the part of every chunk before the delta.
    chunk_prefix: String,
    /// What follows the delta when the chunk does not finish the response.
    chunk_suffix: String,
    last_emit: Option<Instant>,
    job: Job,
    state: Arc<MockState>,
    id: u64,
    created: u64,
    received: Instant,
    /// Time added by pauses before the first token, pushing its deadline back.
    shift: Duration,
    step: Step,
    /// A fault to apply inside the stream, at token `fault_at`.
    fault: Option<Fault>,
    fault_at: usize,
    /// Slow drip: bytes still to send, one at a time.
    dripping: Option<VecDeque<u8>>,
    /// Running until the stream is dropped, with the decode slot it holds (capacity model);
    /// counts the stream's tokens for `/metrics`.
    busy: server_metrics::Busy,
    /// The next event's `sequence_number` (Responses API streams).
    sequence: u64,
}

impl StreamState {
    /// One chunk's JSON, from the precomputed prefix and suffix.
    fn chunk(&self, delta: &str, finish_reason: Option<&str>) -> String {
        match finish_reason {
            None => format!("{}{delta}{}", self.chunk_prefix, self.chunk_suffix),
            Some(reason) => format!(
                "{}{delta},\"logprobs\":null,\"finish_reason\":\"{reason}\"}}]{}}}",
                self.chunk_prefix,
                if self.job.include_usage {
                    ",\"usage\":null"
                } else {
                    ""
                }
            ),
        }
    }

    /// Waits for the prelude's time and moves on to the first token.
    async fn pass_prelude(&mut self) {
        let at = self.job.prelude.unwrap_or_default();
        self.wait_for_offset(at).await;
        self.step = if self.job.tokens > 0 {
            Step::Token(0)
        } else {
            Step::Finish
        };
    }

    /// Waits until token `i` is due, records when it went out, and moves on to the next step
    /// (the same schedule whatever the wire format).
    async fn emit_token(&mut self, i: usize) {
        match self.last_emit {
            None => self.wait_for_offset(self.job.delays[0]).await,
            Some(previous) => {
                wait_out(&self.state, previous + self.job.delays[i]).await;
            }
        }
        self.step = if i + 1 < self.job.tokens as usize {
            Step::Token(i + 1)
        } else {
            Step::Finish
        };
        let now = Instant::now();
        match self.last_emit {
            None => self.state.record_first_token(now - self.received),
            Some(previous) => self.state.record_token_gap(now - previous),
        }
        self.busy.token(now);
        self.last_emit = Some(now);
    }

    /// Waits for an offset from the request's arrival, pushed back by earlier pauses.
    async fn wait_for_offset(&mut self, offset: Duration) {
        let due = self.received + offset + self.shift;
        self.shift += wait_out(&self.state, due).await;
    }

    /// The next piece of the body: whole frames normally, single bytes while dripping, an error
    /// to break the connection.
    async fn next_piece(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.dripping.is_none() {
            return self.next_frame().await;
        }
        if self.dripping.as_ref().is_some_and(VecDeque::is_empty) {
            let frame = match self.next_frame().await? {
                Ok(frame) => frame,
                Err(error) => return Some(Err(error)),
            };
            self.dripping.as_mut()?.extend(frame.iter().copied());
        }
        tokio::time::sleep(self.state.config.faults.drip_every).await;
        let byte = self.dripping.as_mut()?.pop_front()?;
        Some(Ok(Bytes::from(vec![byte])))
    }

    /// What a fault puts in place of the token at `fault_at`, if it replaces it.
    async fn apply_fault(&mut self, fault: Fault) -> Option<Result<Bytes, std::io::Error>> {
        let content_prefix = format!("{}{{\"content\":\"", self.chunk_prefix);
        let frame: Vec<u8> = match fault {
            Fault::DropMidStream => {
                return Some(Err(std::io::Error::other("mock fault: drop mid-stream")))
            }
            Fault::Stall => {
                let due = Instant::now() + self.state.config.faults.stall_for;
                wait_out(&self.state, due).await;
                return None;
            }
            Fault::SlowDrip => {
                self.dripping = Some(VecDeque::new());
                return None;
            }
            Fault::MalformedSse => {
                b"data: <html><body><h1>502 Bad Gateway</h1></body></html>\n\n".to_vec()
            }
            Fault::InvalidJson => format!("data: {content_prefix}x\"}}\n\n").into_bytes(),
            Fault::NonUtf8 => {
                let mut bytes = format!("data: {content_prefix}").into_bytes();
                bytes.extend_from_slice(b"\xff\xfe\xfd");
                bytes.extend_from_slice(format!("\"}}{}\n\n", self.chunk_suffix).as_bytes());
                bytes
            }
            Fault::OversizedEvent => {
                let filler = "a".repeat(self.state.config.faults.oversized_bytes);
                format!(
                    "data: {content_prefix}{filler}\"}}{}\n\n",
                    self.chunk_suffix
                )
                .into_bytes()
            }
            _ => return None,
        };
        Some(Ok(Bytes::from(frame)))
    }

    /// Produces the next SSE frame, or `None` at the end of the stream.
    async fn next_frame(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if let Step::Token(i) = self.step {
            let mid_stream = !matches!(
                self.fault,
                None | Some(Fault::NoDone) | Some(Fault::WrongContentType)
            );
            if i == self.fault_at && mid_stream {
                if let Some(fault) = self.fault.take() {
                    if let Some(piece) = self.apply_fault(fault).await {
                        return Some(piece);
                    }
                    if self.dripping.is_some() {
                        return Box::pin(self.next_piece()).await;
                    }
                }
            }
        }
        match self.job.format {
            Format::Anthropic => return self.next_anthropic_frame().await,
            Format::Responses => return self.next_responses_frame().await,
            Format::OpenAi | Format::Completions => {}
        }
        // A chat chunk's choice carries a delta object; a legacy completion's its text.
        let completions = self.job.format == Format::Completions;
        let role_delta = if completions {
            "\"\""
        } else {
            r#"{"role":"assistant","content":"","refusal":null}"#
        };
        let payload = match self.step {
            Step::Prelude => {
                self.pass_prelude().await;
                self.chunk(role_delta, None)
            }
            Step::Token(i) if self.job.tool_call.is_some() && !completions => {
                self.emit_token(i).await;
                let delta = self.tool_call_delta(i);
                let token = self.chunk(&delta, None);
                if i == 0 && self.job.prelude.is_none() {
                    let role = self.chunk(role_delta, None);
                    return Some(Ok(Bytes::from(format!(
                        "data: {role}\n\ndata: {token}\n\n"
                    ))));
                }
                token
            }
            Step::Token(i) => {
                self.emit_token(i).await;
                let word = self.job.vocabulary.word(i);
                let field = if i < self.job.reasoning_tokens as usize {
                    "reasoning_content"
                } else {
                    "content"
                };
                let token = if completions {
                    self.chunk(&format!("\"{word}\""), None)
                } else {
                    self.chunk(&format!(r#"{{"{field}":"{word}"}}"#), None)
                };
                if i == 0 && self.job.prelude.is_none() && !completions {
                    // No separate prelude: the role-only chunk goes out with the first token.
                    let role = self.chunk(role_delta, None);
                    return Some(Ok(Bytes::from(format!(
                        "data: {role}\n\ndata: {token}\n\n"
                    ))));
                }
                token
            }
            Step::Finish => {
                self.step = if self.job.include_usage {
                    Step::Usage
                } else {
                    Step::Done
                };
                let finish = self.job.finish_reason;
                self.chunk(if completions { "\"\"" } else { "{}" }, Some(finish))
            }
            Step::Usage => {
                self.step = Step::Done;
                json!({
                    "id": format!("{}-mock-{}", if completions { "cmpl" } else { "chatcmpl" }, self.id),
                    "object": if completions { "text_completion" } else { "chat.completion.chunk" },
                    "created": self.created,
                    "model": self.job.model,
                    "system_fingerprint": null,
                    "choices": [],
                    "usage": usage_json(&self.job),
                })
                .to_string()
            }
            Step::Done => {
                self.step = Step::End;
                if self.fault == Some(Fault::NoDone) {
                    return None;
                }
                "[DONE]".to_string()
            }
            Step::End => return None,
        };
        Some(Ok(Bytes::from(format!("data: {payload}\n\n"))))
    }
}

impl StreamState {
    /// A chat chunk's delta carrying piece `i` of the tool call (the first names the call).
    fn tool_call_delta(&self, i: usize) -> String {
        let Some(call) = &self.job.tool_call else {
            return "{}".into();
        };
        let piece = call.pieces.get(i).map_or("", String::as_str);
        let call = if i == 0 {
            json!({ "index": 0, "id": format!("call_mock_{}", self.id), "type": "function",
                    "function": { "name": call.name, "arguments": piece } })
        } else {
            json!({ "index": 0, "function": { "arguments": piece } })
        };
        json!({ "tool_calls": [call] }).to_string()
    }

    /// The opening of a Messages API stream: the message with its input usage, the text block,
    /// and a ping.
    fn anthropic_opening(&self) -> String {
        let start = json!({
            "type": "message_start",
            "message": {
                "id": format!("msg_mock_{}", self.id),
                "type": "message",
                "role": "assistant",
                "model": self.job.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": anthropic_usage(&self.job, Some(1)),
            }
        });
        let first_block = if self.job.reasoning_tokens > 0 {
            r#"{"type":"thinking","thinking":""}"#
        } else {
            r#"{"type":"text","text":""}"#
        };
        format!(
            "event: message_start\ndata: {start}\n\nevent: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{first_block}}}\n\nevent: ping\ndata: {{\"type\": \"ping\"}}\n\n"
        )
    }

    /// The index of the text block of a Messages API stream (1 after a thinking block).
    fn anthropic_text_index(&self) -> usize {
        usize::from(self.job.reasoning_tokens > 0)
    }

    /// The next frame of a Messages API stream (the same schedule as the OpenAI one).
    async fn next_anthropic_frame(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        let frame = match self.step {
            Step::Prelude => {
                self.pass_prelude().await;
                self.anthropic_opening()
            }
            Step::Token(i) => {
                self.emit_token(i).await;
                let word = self.job.vocabulary.word(i);
                let reasoning = self.job.reasoning_tokens as usize;
                let mut delta = String::new();
                if i == reasoning && i > 0 {
                    // The thinking block ends and the text block begins.
                    delta.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
                }
                let (index, kind, field) = if i < reasoning {
                    (0, "thinking_delta", "thinking")
                } else {
                    (self.anthropic_text_index(), "text_delta", "text")
                };
                delta.push_str(&format!(
                    "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"{kind}\",\"{field}\":\"{word}\"}}}}\n\n"
                ));
                if i == 0 && self.job.prelude.is_none() {
                    format!("{}{delta}", self.anthropic_opening())
                } else {
                    delta
                }
            }
            Step::Finish => {
                self.step = Step::Done;
                let delta = json!({
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": anthropic_stop_reason(self.job.finish_reason),
                        "stop_sequence": null,
                    },
                    "usage": { "output_tokens": self.job.tokens },
                });
                let index = if self.job.reasoning_tokens >= self.job.tokens {
                    0
                } else {
                    self.anthropic_text_index()
                };
                format!(
                    "event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":{index}}}\n\nevent: message_delta\ndata: {delta}\n\n"
                )
            }
            Step::Usage | Step::Done => {
                self.step = Step::End;
                if self.fault == Some(Fault::NoDone) {
                    return None;
                }
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_string()
            }
            Step::End => return None,
        };
        Some(Ok(Bytes::from(frame)))
    }
}

fn stream_response(
    job: Job,
    fault: Option<Fault>,
    state: Arc<MockState>,
    id: u64,
    received: Instant,
    busy: server_metrics::Busy,
) -> Response<MockBody> {
    let step = if job.prelude.is_some() {
        Step::Prelude
    } else if job.tokens > 0 {
        Step::Token(0)
    } else {
        Step::Finish
    };
    let created = unix_now();
    let model = serde_json::to_string(&job.model).unwrap_or_else(|_| "\"\"".into());
    let chunk_prefix = if job.format == Format::Completions {
        format!(
            r#"{{"id":"cmpl-mock-{id}","object":"text_completion","created":{created},"model":{model},"choices":[{{"index":0,"text":"#
        )
    } else {
        format!(
            r#"{{"id":"chatcmpl-mock-{id}","object":"chat.completion.chunk","created":{created},"model":{model},"system_fingerprint":null,"choices":[{{"index":0,"delta":"#
        )
    };
    let chunk_suffix = format!(
        r#","logprobs":null,"finish_reason":null}}]{}}}"#,
        if job.include_usage {
            r#","usage":null"#
        } else {
            ""
        }
    );
    let content_type = if fault == Some(Fault::WrongContentType) {
        "application/json"
    } else {
        "text/event-stream"
    };
    let stream_state = StreamState {
        chunk_prefix,
        chunk_suffix,
        last_emit: None,
        fault,
        fault_at: job.tokens as usize / 2,
        dripping: None,
        busy,
        sequence: 0,
        job,
        state,
        id,
        created,
        received,
        shift: Duration::ZERO,
        step,
    };
    let frames = stream::unfold(stream_state, |mut s| async move {
        let piece = s.next_piece().await?;
        Some((piece.map(Frame::data), s))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .expect("static response parts are valid")
}
