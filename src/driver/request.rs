//! The lifecycle of one request: send it, timestamp headers and every body frame as it arrives,
//! parse SSE events or the JSON body, and classify the outcome into exactly one class.

use std::borrow::Cow;
use std::pin::pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};

use super::answer_text::AnswerText;
use super::client::HttpClient;
use super::connection::{ConnectError, ConnectionPool, SendError};
use super::deadline::{self, Deadline, Expired};
use crate::protocol::openai::{self, ParseError};
use crate::protocol::sse::{SseItemRef, SseParser, DEFAULT_MAX_EVENT_BYTES};
use crate::protocol::StreamItem;
use crate::record::{
    Answer, ConnectionUse, ErrorClass, Failure, RequestRecord, RequestShape, TimeoutKind,
    TokenSource, Usage,
};
use crate::redact::Redactor;
use crate::scenario::{RetryPolicy, TargetMode, TargetPlan};

/// Most characters of an event's data put into a protocol error's message, before it is
/// scrubbed and cut to `redact::MESSAGE_CHARS`.
const EVENT_TEXT_CHARS: usize = 16 * 1024;

/// Most characters of an unknown stream event's type kept in results.
const UNKNOWN_TYPE_CHARS: usize = 64;

/// Largest error or non-streaming body read into memory.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Per-target state shared by every request to it.
pub struct TargetContext {
    pub index: usize,
    /// A generic pooled client, for the Batch API's calls.
    pub client: HttpClient,
    /// The connections that measured requests go over.
    pub connections: ConnectionPool,
    pub url: Uri,
    /// The URI a completion request carries: origin-form (`/v1/chat/completions`) for an
    /// HTTP/1.1 target, whose `Host` is then in [`TargetContext::headers`] already, so that
    /// neither is rewritten per request.
    request_uri: Uri,
    /// The base URL up to the API version, without a trailing slash.
    pub base_url: String,
    pub plan: TargetPlan,
    /// The headers of every request to it: built once, cloned per request.
    pub headers: HeaderMap,
    /// Its authentication, API version and scenario headers (for calls besides completions).
    api_headers: Vec<(http::HeaderName, HeaderValue)>,
    pub redactor: Redactor,
}

impl TargetContext {
    pub fn new(
        index: usize,
        plan: TargetPlan,
        base_url: &str,
        client: HttpClient,
        redactor: Redactor,
    ) -> Result<Self, String> {
        let url: Uri = request_url(&plan, base_url)
            .parse()
            .map_err(|e| format!("target \"{}\": bad URL: {e}", plan.name))?;
        // An embedded mock's end of each connection is a descriptor of this process too.
        let slots = match plan.endpoint {
            crate::scenario::Endpoint::Mock(_) => 2,
            crate::scenario::Endpoint::Url(_) => 1,
        };
        let connections = ConnectionPool::new(
            &url,
            plan.http,
            plan.timeouts.connect,
            &plan.tls,
            plan.http2,
            slots,
        )
        .map_err(|e| format!("target \"{}\": {e}", plan.name))?;
        let key_headers = match &plan.api_key {
            Some(key) => vec![plan.auth.header_for(key.expose()).map_err(|_| {
                format!(
                    "target \"{}\": the key in {} has characters not allowed in a header",
                    plan.name,
                    plan.api_key_env.as_deref().unwrap_or("its key variable")
                )
            })?],
            None => Vec::new(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(if plan.mode == TargetMode::Stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("drover/", env!("CARGO_PKG_VERSION"))),
        );
        let mut api_headers = key_headers;
        api_headers.extend(plan.api.fixed_headers());
        api_headers.extend(plan.headers.iter().cloned());
        for (name, value) in &api_headers {
            headers.append(name.clone(), value.clone());
        }
        let mut request_uri = url.clone();
        if plan.http == crate::scenario::HttpVersion::Http1 {
            if let Some(path) = url.path_and_query() {
                request_uri = Uri::from(path.clone());
            }
            if let Some(authority) = url.authority() {
                if !headers.contains_key(header::HOST) {
                    let host = HeaderValue::from_str(authority.as_str())
                        .map_err(|e| format!("target \"{}\": bad host: {e}", plan.name))?;
                    headers.insert(header::HOST, host);
                }
            }
        }
        Ok(TargetContext {
            index,
            client,
            connections,
            headers,
            api_headers,
            url,
            request_uri,
            base_url: base_url.to_string(),
            plan,
            redactor,
        })
    }
}

/// The URL a target's requests go to: its `url` (a full URL, or a path from the endpoint's
/// origin), or `base_url` and the API's path; then its query parameters, percent-encoded.
fn request_url(plan: &TargetPlan, base_url: &str) -> String {
    let mut url = match &plan.url {
        Some(path) if path.starts_with('/') => format!("{}{path}", origin_of(base_url)),
        Some(full) => full.clone(),
        None => format!("{base_url}/{}", plan.api.path()),
    };
    for (name, value) in &plan.query {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&percent_encode(name));
        url.push('=');
        url.push_str(&percent_encode(value));
    }
    url
}

/// `scheme://authority` of a URL (what precedes its path).
pub(super) fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => url,
    }
}

/// A query component with every byte but RFC 3986's unreserved ones percent-encoded.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl TargetContext {
    /// The authentication, API version and scenario headers every call to the target carries.
    pub fn api_headers(&self) -> impl Iterator<Item = (http::HeaderName, HeaderValue)> + '_ {
        self.api_headers.iter().cloned()
    }
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Job {
    /// The request's global index (see [`RequestRecord::index`]).
    pub index: u64,
    pub class: usize,
    pub stage: usize,
    pub intended: Instant,
    pub body: Bytes,
    pub warmup: bool,
    /// What it asks for, carried into its record.
    pub shape: RequestShape,
    /// Keep the answer in the record (a later turn of the session sends it back; a shadow pair
    /// compares it).
    pub keep_answer: bool,
    /// The tools its class declared (its tool calls' arguments are checked against them).
    pub tools: Option<std::sync::Arc<crate::protocol::tools::ToolSet>>,
}

/// What the body reading produced, before it becomes a record.
#[derive(Default)]
struct Measured {
    /// When the request's first byte was written (`None`: it never was).
    sent: Option<Instant>,
    connection: ConnectionUse,
    connection_id: Option<u32>,
    stream_wait: Option<Duration>,
    headers: Option<Instant>,
    first_event: Option<Instant>,
    first_token: Option<Instant>,
    first_answer: Option<Instant>,
    empty_preludes: u32,
    keepalive_comments: u32,
    reasoning_first: bool,
    /// Reasoning, refusals, tool calls and unknown events, when the answer has any.
    rare: Option<Box<Rare>>,
    token_gaps: Vec<Duration>,
    output_chunks: u64,
    usage: Option<Usage>,
    /// Output text (bounded), counted with the tokenizer when no usage arrives.
    output_text: AnswerText,
    finish_reason: Option<String>,
    /// The server said the answer stopped at its token cap.
    cut_at_cap: bool,
    model: Option<String>,
    /// It crossed a server's close on a reused connection and went out again on a fresh one.
    reconnected: bool,
}

/// What only some answers carry, on the heap once one does: inline it would be part of every
/// request's task for the whole answer (memory per open stream, benches/many-streams.sh).
#[derive(Default)]
struct Rare {
    detail: crate::record::OutputDetail,
    /// Reasoning text (bounded), counted with the tokenizer when usage has no reasoning count.
    reasoning_text: AnswerText,
    /// Its tool calls, as they streamed in.
    tool_calls: super::tool_calls::ToolCallsSeen,
    /// Its first tool call, kept with the answer.
    first_tool_call: Option<(String, String, String)>,
}

impl Measured {
    /// The answer's rare parts, made on first use.
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }
}

/// Sends one request and measures it. Never panics on what the server sends.
pub async fn execute(target: &TargetContext, job: &Job) -> RequestRecord {
    let mut measured = Measured::default();
    let started = Instant::now();
    let total_deadline = started + target.plan.timeouts.total;
    let mut sleep = pin!(deadline::sleep_until(total_deadline));
    let mut timer = Deadline::new(sleep.as_mut(), total_deadline);
    let outcome = exchange(target, job, &mut measured, &mut timer).await;
    let done = Instant::now();
    // Secrets go before the message is cut, so no piece of a key survives the cut.
    let outcome = outcome.map_err(|mut failure| {
        failure.message = target
            .redactor
            .scrub_and_cut(&failure.message, crate::redact::MESSAGE_CHARS);
        failure
    });
    // An unknown event's type is the server's text, shown in results: scrubbed, then cut.
    if let Some(kind) = measured
        .rare
        .as_mut()
        .and_then(|rare| rare.detail.unknown_event_type.as_mut())
    {
        *kind = target.redactor.scrub_and_cut(kind, UNKNOWN_TYPE_CHARS);
    }
    // Without usage, a successful request's counts come from the offline tokenizer (output
    // from the text received, input from the request's messages), counted on the blocking pool
    // so that no other request's timing waits for it; a failed one is not counted (its output
    // is the output-carrying events received).
    let tokenizer = &target.plan.tokenizer;
    // A sample of the successful requests with usage also gets the client's own count of its
    // text, on the blocking pool, so that a server's usage can be checked (TokenCheck). Not a
    // request that reasoned: its usage counts reasoning a server may hide or summarize.
    let mut client_tokens = None;
    let reasoned =
        measured.reasoning_first || measured.usage.is_some_and(|u| u.reasoning_tokens > 0);
    if measured.usage.is_some()
        && !reasoned
        && target.plan.api.generates()
        && outcome.is_ok()
        && crate::results::TokenCheck::samples(job.index)
    {
        client_tokens = count_answer_tokens(&mut measured.output_text, tokenizer).await;
    }
    reasoning_count(&mut measured, tokenizer, outcome.is_ok()).await;
    tool_call_detail(&mut measured, tokenizer, job).await;
    let (output_tokens, token_source, input_tokens) =
        token_counts(target, job, &mut measured, outcome.is_ok()).await;
    let Rare {
        detail,
        first_tool_call,
        ..
    } = measured.rare.take().map(|rare| *rare).unwrap_or_default();
    RequestRecord {
        index: job.index,
        target: target.index,
        class: job.class,
        stage: job.stage,
        intended: job.intended,
        started,
        sent: measured.sent.unwrap_or(started),
        connection: measured.connection,
        connection_id: measured.connection_id,
        stream_wait: measured.stream_wait,
        headers: measured.headers,
        first_event: measured.first_event,
        first_token: measured.first_token,
        first_answer: measured.first_answer,
        empty_preludes: measured.empty_preludes,
        keepalive_comments: measured.keepalive_comments,
        reasoning_first: measured.reasoning_first,
        detail,
        done,
        token_gaps: measured.token_gaps,
        output_tokens,
        input_tokens,
        cached_input_tokens: measured.usage.map_or(0, |u| u.cached_tokens),
        token_source,
        content_events: measured.output_chunks,
        client_tokens,
        warmup: job.warmup,
        outcome,
        // A close crossed on a reused connection is an attempt that failed.
        retried: if measured.reconnected {
            vec![ErrorClass::Connect]
        } else {
            Vec::new()
        },
        retry_wait: Duration::ZERO,
        via_batch_api: false,
        request_bytes: job.body.len() as u64,
        shape: job.shape,
        answer: job.keep_answer.then_some(Answer {
            text: measured.output_text.into_kept(),
            finish_reason: measured.finish_reason,
            model: measured.model,
            tool_call: first_tool_call,
        }),
    }
}

/// Answer text up to this size is counted on the worker that timed it, once the tokenizer is
/// built: the count takes a few microseconds, no more than handing it to the blocking pool and
/// waking a thread for it (which cost 10-15% of the client's CPU on short non-streamed answers,
/// `benches/peers.sh`). Longer text, and the first count of a process (which builds the
/// vocabulary: 100-200 ms), go to the blocking pool, so that no other request's timing waits.
const COUNT_INLINE_BYTES: usize = 256;

/// The tokenizer's count of an answer's text: in place when it is short and the tokenizer is
/// built, otherwise on the blocking pool (`None` if that task failed).
async fn count_answer_tokens(
    text: &mut super::answer_text::AnswerText,
    tokenizer: &crate::tokenizer::Tokenizer,
) -> Option<u64> {
    if text.kept_len() <= COUNT_INLINE_BYTES && tokenizer.is_ready() {
        return Some(text.count_tokens(tokenizer));
    }
    let taken = std::mem::take(text);
    let tokenizer = tokenizer.clone();
    let (count, taken) =
        tokio::task::spawn_blocking(move || (taken.count_tokens(&tokenizer), taken))
            .await
            .ok()?;
    *text = taken;
    Some(count)
}

/// Output tokens, where they came from, and input tokens: the server's usage; without it, for a
/// successful request, the tokenizer's counts (on the blocking pool) with the output count
/// checked against the events and the cap (`output_count`); for a failed one, its
/// output-carrying events.
async fn token_counts(
    target: &TargetContext,
    job: &Job,
    measured: &mut Measured,
    succeeded: bool,
) -> (u64, TokenSource, Option<u64>) {
    if let Some(usage) = &measured.usage {
        return (
            usage.completion_tokens,
            TokenSource::Usage,
            Some(usage.prompt_tokens),
        );
    }
    if !succeeded {
        return (measured.output_chunks, TokenSource::Chunks, None);
    }
    let text = std::mem::take(&mut measured.output_text);
    let body = job.body.clone();
    let tokenizer = target.plan.tokenizer.clone();
    let api = target.plan.api;
    let counted = tokio::task::spawn_blocking(move || {
        let output = text.count_tokens(&tokenizer);
        // The messages' text and template by the tokenizer, and any images by the provider's
        // formula.
        let input = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .map(|body| {
                let messages = api.prompt_messages(&body);
                let images = crate::protocol::images::in_messages(
                    api,
                    messages.as_array().map_or(&[][..], Vec::as_slice),
                );
                tokenizer.count_messages(&messages) + images.0
            });
        (output, input, text)
    })
    .await;
    match counted {
        Ok((counted, input, text)) => {
            measured.output_text = text;
            let (output, source) = super::output_count::choose(super::output_count::Observed {
                counted,
                content_events: measured.output_chunks,
                max_tokens: job.shape.max_tokens,
                cut_at_cap: measured.cut_at_cap,
            });
            (output, source, input)
        }
        Err(_) => (measured.output_chunks, TokenSource::Chunks, None),
    }
}

/// The answer's tool calls judged against the class's tools, their arguments counted on the
/// blocking pool.
async fn tool_call_detail(
    measured: &mut Measured,
    tokenizer: &crate::tokenizer::Tokenizer,
    job: &Job,
) {
    let Some(rare) = measured.rare.as_mut().filter(|r| !r.tool_calls.is_empty()) else {
        return;
    };
    let seen = std::mem::take(&mut rare.tool_calls);
    if job.keep_answer {
        rare.first_tool_call = seen.first_call();
    }
    let (mut detail, arguments) = seen.finish(job.tools.as_deref());
    let tokenizer = tokenizer.clone();
    if let Ok(count) = tokio::task::spawn_blocking(move || tokenizer.count(&arguments)).await {
        detail.argument_tokens = count;
    }
    measured.rare().detail.tool_calls = Some(detail);
}

/// A successful request's reasoning tokens: usage's count when it has one; otherwise the
/// reasoning text received, counted on the blocking pool (an estimate).
async fn reasoning_count(
    measured: &mut Measured,
    tokenizer: &crate::tokenizer::Tokenizer,
    succeeded: bool,
) {
    let from_usage = measured.usage.map_or(0, |u| u.reasoning_tokens);
    let no_text = measured
        .rare
        .as_ref()
        .is_none_or(|rare| rare.reasoning_text.is_empty());
    if from_usage > 0 || !succeeded || no_text {
        if from_usage > 0 {
            measured.rare().detail.reasoning_tokens = from_usage;
        }
        return;
    }
    let text = std::mem::take(&mut measured.rare().reasoning_text);
    let tokenizer = tokenizer.clone();
    if let Ok(count) = tokio::task::spawn_blocking(move || text.count_tokens(&tokenizer)).await {
        let detail = &mut measured.rare().detail;
        detail.reasoning_tokens = count;
        detail.reasoning_estimated = true;
    }
}

/// The record of a request that drover itself failed on (a caught panic): class `internal`,
/// timed from now, so that it is counted rather than lost.
pub(crate) fn internal_record(begun: &super::ledger::Begun, message: &str) -> RequestRecord {
    let now = Instant::now();
    RequestRecord {
        index: begun.index,
        target: begun.target,
        class: begun.class,
        stage: begun.stage,
        intended: begun.intended,
        started: now,
        sent: now,
        connection: ConnectionUse::Unknown,
        connection_id: None,
        stream_wait: None,
        headers: None,
        first_event: None,
        first_token: None,
        first_answer: None,
        empty_preludes: 0,
        keepalive_comments: 0,
        reasoning_first: false,
        detail: Default::default(),
        done: now,
        token_gaps: Vec::new(),
        output_tokens: 0,
        input_tokens: None,
        cached_input_tokens: 0,
        token_source: TokenSource::Usage,
        content_events: 0,
        client_tokens: None,
        warmup: begun.warmup,
        outcome: Err(failure(ErrorClass::Internal, None, message)),
        retried: Vec::new(),
        retry_wait: Duration::ZERO,
        via_batch_api: false,
        request_bytes: 0,
        shape: RequestShape::default(),
        answer: None,
    }
}

/// Whether a failure is worth another attempt: the server said "later" or never started.
fn retryable(failure: &Failure) -> bool {
    match failure.class {
        ErrorClass::Throttled | ErrorClass::Connect => true,
        ErrorClass::Timeout(kind) => matches!(kind, TimeoutKind::Connect | TimeoutKind::FirstByte),
        ErrorClass::HttpStatus(status) => matches!(status, 408 | 500 | 502 | 503 | 504),
        ErrorClass::Protocol
        | ErrorClass::TruncatedStream
        | ErrorClass::Batch(_)
        | ErrorClass::ClientResources
        | ErrorClass::Internal => false,
    }
}

/// Sends a request, retrying under the target's retry policy (if any).
///
/// The wait before a retry is never shorter than the server's `Retry-After`; a `Retry-After`
/// longer than the policy's `max_retry_after` is not waited for: the request ends with that
/// answer (a 429 counts as `throttled`). The time spent in waits and earlier attempts is kept in
/// the record's `retry_wait`, apart from the schedule lag.
pub async fn execute_with_retries(target: &TargetContext, job: &Job) -> RequestRecord {
    // One call site of `execute`, and nothing but small values alive across the backoff's
    // sleep: this future is part of every request's task, and its size is most of the client's
    // memory per open stream (benches/many-streams.sh).
    let policy = target.plan.retry;
    let mut retried = Vec::new();
    let mut first_started = None;
    loop {
        // The record's scope ends before the backoff's sleep, so no slot of the task holds one
        // across it.
        let (wait, class) = {
            let mut record = execute(target, job).await;
            let Some(policy) = policy else {
                return record;
            };
            let first = *first_started.get_or_insert(record.started);
            let wait = match &record.outcome {
                Err(failure)
                    if retryable(failure) && (retried.len() as u32) < policy.max_retries =>
                {
                    backoff(&policy, retried.len() as u32 + 1, failure.retry_after)
                        .map(|wait| (wait, failure.class))
                }
                _ => None,
            };
            // Attempts that failed inside this one (a crossed close) come first.
            retried.append(&mut record.retried);
            let Some(wait) = wait else {
                // The record's own intended time is the first attempt's already.
                record.retried = retried;
                record.retry_wait = record.started.saturating_duration_since(first);
                return record;
            };
            wait
        };
        retried.push(class);
        tokio::time::sleep(wait).await;
    }
}

/// Full-jitter exponential backoff up to `max_backoff`, and never shorter than the server's
/// `Retry-After`; `None` when the server asks for longer than `max_retry_after`.
fn backoff(policy: &RetryPolicy, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
    let server = retry_after.unwrap_or_default();
    if server > policy.max_retry_after {
        return None;
    }
    let exponential = policy
        .base
        .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
        .min(policy.max_backoff);
    let jittered = exponential.mul_f64(rand::random::<f64>());
    Some(jittered.max(server))
}

/// The failure of a request that ran into one of its timeouts: `phase`'s own, or the
/// whole-request timeout when that came first.
fn timeout_failure(target: &TargetContext, phase: TimeoutKind, expired: Expired) -> Failure {
    let timeouts = &target.plan.timeouts;
    let kind = match expired {
        Expired::Phase => phase,
        Expired::Total => TimeoutKind::Total,
    };
    let (status, message) = match kind {
        TimeoutKind::FirstByte => (
            None,
            format!(
                "no response headers within first_byte_timeout of {}",
                humantime::format_duration(timeouts.first_byte)
            ),
        ),
        TimeoutKind::Idle => (
            Some(200),
            format!(
                "no data for idle_timeout of {} in the middle of the response",
                humantime::format_duration(timeouts.idle)
            ),
        ),
        TimeoutKind::Total | TimeoutKind::Connect => (
            None,
            format!(
                "no complete response within the whole-request timeout of {}",
                humantime::format_duration(timeouts.total)
            ),
        ),
    };
    failure(ErrorClass::Timeout(kind), status, message)
}

fn failure(class: ErrorClass, status: Option<u16>, message: impl Into<String>) -> Failure {
    Failure {
        class,
        status,
        message: message.into(),
        retry_after: None,
    }
}

async fn exchange(
    target: &TargetContext,
    job: &Job,
    measured: &mut Measured,
    timer: &mut Deadline<'_>,
) -> Result<(), Failure> {
    let streaming = target.plan.mode == TargetMode::Stream;
    let build = || {
        let mut request = Request::new(Full::new(job.body.clone()));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = target.request_uri.clone();
        *request.headers_mut() = target.headers.clone();
        request
    };
    // The first-byte limit runs from the request's first byte (inside `send`): waiting for a
    // connection or an HTTP/2 stream slot is bounded by the whole-request timeout only.
    let sending = target
        .connections
        .send(build, target.plan.timeouts.first_byte);
    let whole_request = timer.total();
    let (response, lease, written) = match timer.run(whole_request, sending).await {
        Err(expired) => return Err(timeout_failure(target, TimeoutKind::FirstByte, expired)),
        Ok(Err((SendError::FirstByte(_), reconnected))) => {
            measured.reconnected = reconnected;
            return Err(timeout_failure(
                target,
                TimeoutKind::FirstByte,
                Expired::Phase,
            ));
        }
        Ok(Err((e, reconnected))) => {
            measured.reconnected = reconnected;
            let class = match &e {
                SendError::Connect(ConnectError::Timeout(_)) => {
                    ErrorClass::Timeout(TimeoutKind::Connect)
                }
                // Out of file descriptors: drover's own shortage, not the endpoint's.
                SendError::Connect(ConnectError::OutOfDescriptors(_)) => {
                    ErrorClass::ClientResources
                }
                SendError::Connect(ConnectError::Tcp { source, .. })
                    if crate::resources::out_of_descriptors(source) =>
                {
                    ErrorClass::ClientResources
                }
                _ => ErrorClass::Connect,
            };
            return Err(failure(
                class,
                None,
                format!("request to {} failed: {}", target.url, error_chain(&e)),
            ));
        }
        Ok(Ok(sent)) => sent,
    };
    let headers_arrived = Instant::now();
    measured.headers = Some(headers_arrived);
    measured.sent = Some(written);
    measured.reconnected = lease.reconnected;
    measured.connection_id = Some(lease.connection_id);
    measured.stream_wait = lease.stream_wait;
    measured.connection = match lease.opened {
        Some(setup) => ConnectionUse::Opened(setup),
        None => ConnectionUse::Reused,
    };
    let mut reader = BodyReader {
        target,
        timer,
        last_data: headers_arrived,
        keep_answer: job.keep_answer,
    };
    // The response is split in a plain function, never borrowed here: a borrowed local keeps
    // its slot in the task to the end of its scope, beside the body, for the whole answer.
    let body = match answer_body(response, streaming) {
        AnswerBody::Readable(body) => body,
        AnswerBody::Status(response) => {
            // On the heap, as the next: an error path's future would otherwise size every
            // request's task.
            let reading = Box::pin(status_failure(response));
            let whole_request = reader.timer.total();
            let (failure, read_whole) = match reader.timer.run(whole_request, reading).await {
                Ok(read) => read,
                Err(expired) => (timeout_failure(target, TimeoutKind::Total, expired), false),
            };
            if read_whole {
                // An error answer read to its end leaves the connection usable (a 429 storm
                // must not turn into a connection storm).
                target.connections.give_back(lease);
            }
            return Err(failure);
        }
        AnswerBody::NotEventStream(response) => {
            return Err(Box::pin(not_an_event_stream(response, &mut reader)).await);
        }
    };
    if streaming {
        read_stream(body, &mut reader, measured).await?;
    } else {
        read_completion(body, &mut reader, measured).await?;
    }
    // Read to the end: the connection can carry the next request.
    target.connections.give_back(lease);
    Ok(())
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The failure a non-2xx response stands for, and whether its body was read to the end.
async fn status_failure(response: http::Response<Incoming>) -> (Failure, bool) {
    let status = response.status();
    // An unreadable Retry-After (negative, not a number, not a date) counts as none.
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| crate::retry_after::parse(v.as_bytes(), std::time::SystemTime::now()).ok());
    let collected = http_body_util::Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await
        .map(|c| c.to_bytes());
    let read_whole = collected.is_ok();
    let body = collected.unwrap_or_default();
    let class = if status == StatusCode::TOO_MANY_REQUESTS {
        ErrorClass::Throttled
    } else {
        ErrorClass::HttpStatus(status.as_u16())
    };
    let failure = Failure {
        class,
        status: Some(status.as_u16()),
        message: format!("HTTP {}: {}", status, openai::describe_error_body(&body)),
        retry_after,
    };
    (failure, read_whole)
}

/// Reads a response body frame by frame under the request's timer: each frame within
/// `idle_timeout` of the data before it (the headers, for the first).
struct BodyReader<'t, 'd> {
    target: &'t TargetContext,
    timer: &'t mut Deadline<'d>,
    /// When the last data (or the headers) arrived.
    last_data: Instant,
    /// Keep the answer's model and finish reason (and its text even with usage).
    keep_answer: bool,
}

type FrameResult = Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>;

impl BodyReader<'_, '_> {
    /// The next body frame, or a timeout failure.
    async fn next_frame(&mut self, body: &mut Incoming) -> Result<FrameResult, Failure> {
        let limit = self.last_data + self.target.plan.timeouts.idle;
        self.timer
            .run(limit, body.frame())
            .await
            .map_err(|expired| timeout_failure(self.target, TimeoutKind::Idle, expired))
    }

    /// Reads what is left of a body (at most `limit` bytes), for an error message; bounded by
    /// the whole-request timeout.
    async fn rest(&mut self, body: Incoming, limit: usize) -> Bytes {
        let whole_request = self.timer.total();
        let collected = self
            .timer
            .run(
                whole_request,
                http_body_util::Limited::new(body, limit).collect(),
            )
            .await;
        match collected {
            Ok(Ok(collected)) => collected.to_bytes(),
            _ => Bytes::new(),
        }
    }
}

/// Whether a Content-Type names `text/event-stream` (media types are case-insensitive, and
/// parameters such as `; charset=utf-8` may follow).
fn is_event_stream(content_type: &[u8]) -> bool {
    let media_type = content_type
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    media_type.eq_ignore_ascii_case(b"text/event-stream")
}

/// Reads an event stream's body (its Content-Type was checked) to its end.
async fn read_stream(
    mut body: Incoming,
    reader: &mut BodyReader<'_, '_>,
    measured: &mut Measured,
) -> Result<(), Failure> {
    let api = reader.target.plan.api;
    let mut parser = SseParser::new();
    let mut progress = StreamProgress {
        last_token: None,
        saw_done: false,
        decoder: api.stream_decoder(),
    };
    let keep_answer = reader.keep_answer;
    while let Some(frame) = reader.next_frame(&mut body).await? {
        let frame = frame.map_err(|e| {
            failure(
                ErrorClass::TruncatedStream,
                Some(200),
                format!(
                    "stream broke after {} output chunks: {}",
                    measured.output_chunks,
                    error_chain(&e)
                ),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let arrived = Instant::now();
        reader.last_data = arrived;
        parser.feed_each(&data, |item| match item {
            SseItemRef::Event(event) => {
                observe_event(keep_answer, event, arrived, &mut progress, measured)
            }
            SseItemRef::Comment(_) => {
                measured.keepalive_comments += 1;
                Ok(())
            }
            SseItemRef::Oversized(what) => Err(failure(
                ErrorClass::Protocol,
                Some(200),
                format!(
                    "an SSE {} is longer than the {} MiB limit",
                    what.describe(),
                    DEFAULT_MAX_EVENT_BYTES / (1024 * 1024)
                ),
            )),
        })?;
    }
    if !progress.saw_done {
        return Err(failure(
            ErrorClass::TruncatedStream,
            Some(200),
            format!(
                "stream ended without {} after {} output chunks{}",
                api.end_of_stream(),
                measured.output_chunks,
                if parser.has_partial_event() {
                    " (mid-event)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(())
}

/// A stream's state across its events.
struct StreamProgress {
    /// When the last output token arrived.
    last_token: Option<Instant>,
    /// `[DONE]` or `message_stop` was seen: later events are ignored.
    saw_done: bool,
    /// The API's decoder of this stream's events.
    decoder: crate::protocol::StreamDecoder,
}

/// What a response's head says of its body.
enum AnswerBody {
    /// A success, in the form asked for: the body to read.
    Readable(Incoming),
    /// Not a 2xx: an error answer.
    Status(http::Response<Incoming>),
    /// A successful answer to a streamed request that is not an event stream.
    NotEventStream(http::Response<Incoming>),
}

fn answer_body(response: http::Response<Incoming>, streaming: bool) -> AnswerBody {
    if !response.status().is_success() {
        return AnswerBody::Status(response);
    }
    let event_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| is_event_stream(v.as_bytes()));
    if streaming && !event_stream {
        return AnswerBody::NotEventStream(response);
    }
    AnswerBody::Readable(response.into_body())
}

/// The protocol failure of a stream answered with something else, quoting its body.
async fn not_an_event_stream(
    response: http::Response<Incoming>,
    reader: &mut BodyReader<'_, '_>,
) -> Failure {
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = reader.rest(response.into_body(), 64 * 1024).await;
    failure(
        ErrorClass::Protocol,
        Some(200),
        format!(
            "expected a text/event-stream response, got \"{content_type}\": {}",
            openai::describe_error_body(&bytes)
        ),
    )
}

/// One SSE event of a stream: its times (first event, first token, gaps, first answer), its
/// usage, finish reason and model, and its text.
fn observe_event(
    keep_answer: bool,
    event: crate::protocol::sse::SseEventRef<'_>,
    arrived: Instant,
    progress: &mut StreamProgress,
    measured: &mut Measured,
) -> Result<(), Failure> {
    measured.first_event.get_or_insert(arrived);
    if progress.saw_done {
        return Ok(());
    }
    if event.invalid_utf8 {
        return Err(failure(
            ErrorClass::Protocol,
            Some(200),
            "an SSE event's data is not valid UTF-8",
        ));
    }
    let decoded = progress
        .decoder
        .decode(event.event, event.data)
        .map_err(|e| {
            let detail = match e {
                // Bounded far beyond the message's final cut, which follows scrubbing.
                ParseError::Json(_) => format!(
                    "{e} (event data: {})",
                    crate::redact::cut(event.data, EVENT_TEXT_CHARS)
                ),
                ParseError::ServerError(_) => e.to_string(),
            };
            failure(ErrorClass::Protocol, Some(200), detail)
        })?;
    // Borrowed from the decoded item, not moved out of it: a chunk is 128 bytes, and this runs
    // for every event.
    let chunk = match &decoded {
        StreamItem::Chunk(chunk) => chunk,
        StreamItem::Ping => {
            measured.keepalive_comments += 1;
            return Ok(());
        }
        StreamItem::Unknown(kind) => {
            let detail = &mut measured.rare().detail;
            detail.unknown_events = detail.unknown_events.saturating_add(1);
            if detail.unknown_event_type.is_none() {
                // Bounded far beyond its final cut, which follows scrubbing.
                detail.unknown_event_type = Some(crate::redact::cut(kind, EVENT_TEXT_CHARS));
            }
            return Ok(());
        }
        // `[DONE]` carries nothing; `message_stop` ends the stream as `[DONE]` does.
        StreamItem::End(last) => {
            progress.saw_done = true;
            match last {
                Some(chunk) => chunk,
                None => return Ok(()),
            }
        }
    };
    if chunk.has_answer && measured.first_answer.is_none() {
        measured.first_answer = Some(arrived);
    }
    if chunk.has_reasoning {
        let rare = measured.rare();
        rare.detail.first_reasoning.get_or_insert(arrived);
        if !chunk.has_answer {
            rare.reasoning_text.push(&chunk.text);
        }
    }
    if chunk.refusal {
        measured.rare().detail.refused = true;
    }
    if !chunk.has_output && progress.last_token.is_none() {
        measured.empty_preludes += 1;
    }
    if chunk.has_output {
        measured.output_chunks += 1;
        match progress.last_token {
            None => {
                measured.first_token = Some(arrived);
                // Reasoning before the answer (a tool call first is neither).
                measured.reasoning_first = chunk.has_reasoning && !chunk.has_answer;
            }
            Some(previous) => measured.token_gaps.push(arrived - previous),
        }
        progress.last_token = Some(arrived);
    }
    if chunk.usage.is_some() {
        measured.usage = chunk.usage;
    }
    if let Some(tool) = &chunk.tool {
        measured.rare().tool_calls.push(tool, arrived);
    }
    if let Some(reason) = &chunk.finish_reason {
        measured.cut_at_cap = super::output_count::is_cap_reason(reason);
    }
    if keep_answer {
        if let Some(reason) = &chunk.finish_reason {
            measured.finish_reason = Some(reason.to_string());
        }
        if measured.model.is_none() {
            measured.model = chunk.model.as_deref().map(str::to_owned);
        }
    }
    measured.output_text.push(&chunk.text);
    Ok(())
}

async fn read_completion(
    mut body: Incoming,
    reader: &mut BodyReader<'_, '_>,
    measured: &mut Measured,
) -> Result<(), Failure> {
    // A small answer comes in one frame: parsed where it lies, not copied.
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    while !body.is_end_stream() {
        let Some(frame) = reader.next_frame(&mut body).await? else {
            break;
        };
        let frame = frame.map_err(|e| {
            failure(
                ErrorClass::TruncatedStream,
                Some(200),
                format!("response body broke: {}", error_chain(&e)),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if !body.is_end_stream() {
            // More to come: the idle limit runs from now (not read when this was the last).
            reader.last_data = Instant::now();
        }
        let received = first.as_ref().map_or(0, Bytes::len) + joined.len() + data.len();
        if received > MAX_BODY_BYTES {
            return Err(failure(
                ErrorClass::Protocol,
                Some(200),
                format!(
                    "response body passed {} MiB",
                    MAX_BODY_BYTES / (1024 * 1024)
                ),
            ));
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            None => joined.extend_from_slice(&data),
            Some(earlier) => {
                joined.reserve(earlier.len() + data.len());
                joined.extend_from_slice(&earlier);
                joined.extend_from_slice(&data);
            }
        }
    }
    let body: &[u8] = match &first {
        Some(only) => only,
        None => &joined,
    };
    let info = reader
        .target
        .plan
        .api
        .parse_completion(body)
        .map_err(|e| failure(ErrorClass::Protocol, Some(200), e.to_string()))?;
    measured.usage = info.usage;
    if info.refusal {
        measured.rare().detail.refused = true;
    }
    measured.cut_at_cap = info
        .finish_reason
        .as_deref()
        .is_some_and(super::output_count::is_cap_reason);
    if reader.keep_answer {
        measured.finish_reason = info.finish_reason.map(Cow::into_owned);
        measured.model = info.model.map(Cow::into_owned);
    }
    // Counted when no usage came, and sent back by the next turn of a session.
    if reader.keep_answer || info.usage.is_none() {
        measured.output_text.set(&info.text);
    }
    Ok(())
}
