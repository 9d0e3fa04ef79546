//! What one request produced: the timestamps, token counts and outcome that the driver hands to
//! the metrics recorder. Every request ends in exactly one [`Outcome`].

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Why a request failed. Counted by variant; the message kept alongside is only a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "class", content = "status")]
pub enum ErrorClass {
    /// A non-2xx response other than 429; the status is kept.
    HttpStatus(u16),
    /// HTTP 429 Too Many Requests.
    Throttled,
    /// A timeout fired: connecting, waiting for headers, between body chunks, or overall.
    Timeout(TimeoutKind),
    /// No connection could be made (refused, DNS, TLS), or it closed before response headers.
    Connect,
    /// The response broke the protocol: malformed SSE or JSON, an error event, wrong shape.
    Protocol,
    /// The stream ended (or the connection dropped) before the final event.
    TruncatedStream,
    /// A Batch API request that got no successful answer, and why.
    Batch(BatchFailure),
    /// The client ran out of a resource of its own (file descriptors: EMFILE/ENFILE) and could
    /// not send the request: drover's side, never the endpoint's.
    ClientResources,
    /// drover itself failed on this request (a caught panic); the message says where. A run
    /// with any is `degraded`.
    Internal,
}

/// Why a request submitted through the Batch API has no answer.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum BatchFailure {
    /// Its line in the error file carried an `error` object and no response.
    LineError,
    /// The batch failed (e.g. validation), so none of its requests ran.
    Failed,
    /// The batch expired before this request was done.
    Expired,
    /// The batch was cancelled before this request was done.
    Cancelled,
    /// Neither the output nor the error file had a (valid) line for it.
    #[default]
    Missing,
    /// The Batch API calls themselves failed (upload, create, poll or download).
    Api,
}

impl BatchFailure {
    pub fn name(self) -> &'static str {
        match self {
            BatchFailure::LineError => "line_error",
            BatchFailure::Failed => "failed",
            BatchFailure::Expired => "expired",
            BatchFailure::Cancelled => "cancelled",
            BatchFailure::Missing => "missing",
            BatchFailure::Api => "api",
        }
    }
}

impl ErrorClass {
    /// Stable name used in results and summaries (`http_500`, `throttled`, ...).
    pub fn key(&self) -> String {
        match self {
            ErrorClass::HttpStatus(status) => format!("http_{status}"),
            ErrorClass::Throttled => "throttled".into(),
            ErrorClass::Timeout(kind) => format!("timeout_{}", kind.name()),
            ErrorClass::Connect => "connect".into(),
            ErrorClass::Protocol => "protocol".into(),
            ErrorClass::TruncatedStream => "truncated_stream".into(),
            ErrorClass::Batch(kind) => format!("batch_{}", kind.name()),
            ErrorClass::ClientResources => "client_resources".into(),
            ErrorClass::Internal => "internal".into(),
        }
    }

    /// Whether the failure is drover's own (not the endpoint's): it makes a run `degraded`.
    pub fn is_client_side(&self) -> bool {
        matches!(self, ErrorClass::ClientResources | ErrorClass::Internal)
    }
}

/// Which timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutKind {
    /// TCP (and TLS) connection set-up took longer than `connect_timeout`.
    Connect,
    /// No response headers within `first_byte_timeout` of sending.
    FirstByte,
    /// No body bytes for `idle_timeout` once the response started.
    Idle,
    /// The whole request took longer than `timeout`.
    Total,
}

impl TimeoutKind {
    pub fn name(self) -> &'static str {
        match self {
            TimeoutKind::Connect => "connect",
            TimeoutKind::FirstByte => "first_byte",
            TimeoutKind::Idle => "idle",
            TimeoutKind::Total => "total",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// A failed request: its class, the HTTP status if one was received, and a short message.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub class: ErrorClass,
    pub status: Option<u16>,
    pub message: String,
    /// `Retry-After` of the response, when the server sent a readable one (see
    /// [`crate::retry_after`]): a wait, never negative or non-finite.
    pub retry_after: Option<Duration>,
}

/// Where the output token count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The server's `usage` object.
    Usage,
    /// Counted content-bearing chunks (no usage was returned).
    Chunks,
    /// Non-streaming response without usage: characters of output / 4.
    Estimated,
    /// No usage: counted with the offline tokenizer (an estimate for other vocabularies).
    Tokenizer,
    /// No usage, and the answer stopped at its `max_tokens` (or the tokenizer counted more than
    /// the cap): the cap.
    MaxTokens,
}

impl TokenSource {
    /// Whether the count is the server's own (`usage`) rather than the client's estimate.
    pub fn is_reported(self) -> bool {
        self == TokenSource::Usage
    }
}

/// Token usage as the server reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// `prompt_tokens_details.cached_tokens`: input tokens served from the provider's cache.
    pub cached_tokens: u64,
    /// `completion_tokens_details.reasoning_tokens`: output tokens of reasoning, part of
    /// `completion_tokens`, which a server may never stream (so drover cannot count them).
    #[serde(default)]
    pub reasoning_tokens: u64,
}

/// Everything measured about one request.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// The request's global index k in the scenario (the same request on every target and
    /// shard; a Batch API request's `custom_id` is `drover-k`).
    pub index: u64,
    pub target: usize,
    pub class: usize,
    /// Index of the load stage the request was scheduled in (0 without stages).
    pub stage: usize,
    /// When the schedule meant it to leave (equals `sent` in closed loop).
    pub intended: Instant,
    /// When the driver began it: before a connection was taken or opened. Schedule lag is
    /// measured to here, so the time spent opening a connection is not the client's lateness.
    pub started: Instant,
    /// When its first byte was written: on a connection ready for it. TTFT, TTFB and E2E start
    /// here, so DNS, TCP and TLS set-up (in `connection`) are never part of them.
    pub sent: Instant,
    /// Whether it reused a connection or opened one, and what opening it took.
    pub connection: ConnectionUse,
    /// The number of the connection it went out on, within its target (`None`: none).
    pub connection_id: Option<u32>,
    /// How long it waited for an HTTP/2 stream slot, every connection of its target's pool
    /// open and full (`None`: it did not wait). Before `sent`: never part of TTFT.
    pub stream_wait: Option<Duration>,
    pub headers: Option<Instant>,
    pub first_event: Option<Instant>,
    pub first_token: Option<Instant>,
    /// The first event with non-empty `content`: later than `first_token` when a model streams
    /// reasoning first.
    pub first_answer: Option<Instant>,
    /// Events before the first token that carried no output (a role-only or empty prelude).
    pub empty_preludes: u32,
    /// `:` comment lines (keep-alives) in the stream; never tokens.
    pub keepalive_comments: u32,
    /// Its first token was not answer text (reasoning, or a tool call).
    pub reasoning_first: bool,
    /// Reasoning, refusals and unknown stream events.
    pub detail: OutputDetail,
    pub done: Instant,
    /// Gaps between successive output-carrying events.
    pub token_gaps: Vec<Duration>,
    pub output_tokens: u64,
    pub input_tokens: Option<u64>,
    /// Input tokens the server reported as read from its prompt cache (part of `input_tokens`).
    pub cached_input_tokens: u64,
    pub token_source: TokenSource,
    /// Output-carrying events the stream sent (0 for a response read whole).
    pub content_events: u64,
    /// The client's own count of the output text, for a sampled successful request that also
    /// had the server's usage ([`crate::results::TokenCheck`]): `None` otherwise.
    pub client_tokens: Option<u64>,
    /// Whether this request falls in the warm-up and is excluded from results.
    pub warmup: bool,
    pub outcome: Result<(), Failure>,
    /// Failed attempts before the last one, by class (empty without retries). Timestamps and
    /// latencies are those of the last attempt; `intended` is the first attempt's, so the
    /// corrected latencies include every attempt and backoff.
    pub retried: Vec<ErrorClass>,
    /// From the first attempt's start to the last attempt's: earlier attempts and the waits
    /// between them (zero without retries). Not part of the schedule lag.
    pub retry_wait: Duration,
    /// Sent through the Batch API (priced at its discount).
    pub via_batch_api: bool,
    /// Bytes of the request body sent (its line in a Batch API input file).
    pub request_bytes: u64,
    /// What the request asked for, beyond its prompt.
    pub shape: RequestShape,
    /// The answer, kept only when something needs it: a later turn of its session, or the
    /// comparison of a shadow pair.
    pub answer: Option<Answer>,
}

/// What an answer carried besides its text and timing: reasoning, a refusal, and stream events
/// of types the API does not define.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputDetail {
    /// The first event carrying reasoning (`reasoning_content`, thinking, a reasoning summary).
    pub first_reasoning: Option<Instant>,
    /// Reasoning tokens: from usage details, or counted from the reasoning text received when
    /// the server sent none (then `reasoning_estimated`).
    pub reasoning_tokens: u64,
    pub reasoning_estimated: bool,
    /// The answer was a refusal.
    pub refused: bool,
    /// Stream events of a type the API does not define, and the first such type.
    pub unknown_events: u32,
    pub unknown_event_type: Option<String>,
    /// The answer's tool calls (`None`: it made none).
    pub tool_calls: Option<ToolCallDetail>,
}

/// The tool calls of one answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCallDetail {
    /// When the first piece of a tool call (its name or arguments) arrived.
    pub first: Option<Instant>,
    pub calls: u32,
    /// Calls whose arguments parse as JSON.
    pub valid_json: u32,
    /// Calls of a declared tool whose arguments satisfy its schema.
    pub matching_schema: u32,
    /// Tokens of the arguments (by the target's tokenizer).
    pub argument_tokens: u64,
}

impl OutputDetail {
    /// Whether the request reasoned (reasoning tokens counted, or reasoning output received).
    pub fn reasoned(&self) -> bool {
        self.reasoning_tokens > 0 || self.first_reasoning.is_some()
    }
}

/// What a response said, beyond its timing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// The output text (answer, then reasoning or tool input).
    pub text: String,
    /// The finish (stop) reason, as the API named it.
    pub finish_reason: Option<String>,
    /// The `model` the response named.
    pub model: Option<String>,
    /// Its first tool call: id, name and arguments (a session answers it with a tool result).
    pub tool_call: Option<(String, String, String)>,
}

/// How a request got its connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConnectionUse {
    /// Not known (e.g. a Batch API request, whose HTTP calls are not per request).
    #[default]
    Unknown,
    /// An open connection was reused: no DNS, TCP or TLS set-up.
    Reused,
    /// The request opened a new connection, taking this long to set it up.
    Opened(ConnectionSetup),
}

/// What opening one connection took, phase by phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSetup {
    pub dns: Duration,
    pub tcp: Duration,
    /// The TLS handshake (`None` for cleartext).
    pub tls: Option<Duration>,
    /// The SETTINGS_MAX_CONCURRENT_STREAMS an HTTP/2 server announced on it (`None`: HTTP/1.1,
    /// or no limit announced).
    pub server_max_streams: Option<u32>,
}

impl ConnectionSetup {
    pub fn total(&self) -> Duration {
        self.dns + self.tcp + self.tls.unwrap_or_default()
    }
}

/// What a request asked for that the results compare with what it got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestShape {
    /// The `max_tokens` sent, if any.
    pub max_tokens: Option<u32>,
    /// Its place in a multi-turn session.
    pub turn: Option<Turn>,
    /// Whether it started with one of its class's shared prefixes.
    pub shared_prefix: bool,
    /// The texts it asked to embed (0: not an embeddings request).
    pub inputs: u32,
    /// It declared tools (its class has `tools`).
    pub tools: bool,
}

/// Turn `index` (0-based) of a session of `of` turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    pub index: u32,
    pub of: u32,
}

impl RequestRecord {
    /// Whether a successful request produced fewer tokens than the `max_tokens` it asked for.
    pub fn stopped_early(&self) -> bool {
        self.outcome.is_ok()
            && self
                .shape
                .max_tokens
                .is_some_and(|cap| self.output_tokens < u64::from(cap))
    }
}

impl RequestRecord {
    /// E2E from the actual send.
    pub fn e2e(&self) -> Duration {
        self.done - self.sent
    }
    /// E2E from the intended send time (coordinated-omission corrected).
    pub fn e2e_corrected(&self) -> Duration {
        self.done - self.intended
    }
    /// How late the request's first attempt left compared with its schedule (retry waits are
    /// the server's doing, not the client's lateness: see [`RequestRecord::retry_wait`]).
    pub fn schedule_lag(&self) -> Duration {
        self.started
            .checked_sub(self.retry_wait)
            .unwrap_or(self.started)
            .saturating_duration_since(self.intended)
    }
    /// From the send to the first reasoning output.
    pub fn time_to_first_reasoning(&self) -> Option<Duration> {
        self.detail.first_reasoning.map(|t| t - self.sent)
    }
    /// From the first token to the first answer token (0 when the answer came first).
    pub fn time_to_first_answer(&self) -> Option<Duration> {
        self.first_answer.map(|t| t - self.sent)
    }
    pub fn ttft(&self) -> Option<Duration> {
        self.first_token.map(|t| t - self.sent)
    }
    pub fn ttft_corrected(&self) -> Option<Duration> {
        self.first_token.map(|t| t - self.intended)
    }
    pub fn ttfb(&self) -> Option<Duration> {
        self.headers.map(|t| t - self.sent)
    }
    pub fn time_to_first_event(&self) -> Option<Duration> {
        self.first_event.map(|t| t - self.sent)
    }
    /// (E2E − TTFT) / (output tokens − 1); defined only with at least two output tokens.
    pub fn tpot(&self) -> Option<Duration> {
        let first = self.first_token?;
        if self.output_tokens < 2 {
            return None;
        }
        let tokens = u32::try_from(self.output_tokens - 1).ok()?;
        Some((self.done - first) / tokens)
    }
}
