//! The scenario file as written: serde types that mirror the TOML one to one.
//!
//! Every struct denies unknown keys so a typo is an error, never a silent default. Nothing here is
//! validated beyond types; `validate` turns a [`ScenarioFile`] into a checked
//! [`RunPlan`](super::RunPlan).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Name used in reports and result file names; defaults to the file stem.
    pub name: Option<String>,
    /// Free text shown in reports.
    pub description: Option<String>,
    /// Seed for every random choice (class mix, prompts, Poisson arrivals, mock latency).
    pub seed: Option<u64>,
    #[serde(default)]
    pub targets: Vec<TargetSpec>,
    #[serde(default)]
    pub classes: Vec<ClassSpec>,
    pub load: Option<LoadSpec>,
    /// Pricing, currencies and cost projection.
    pub cost: Option<CostSpec>,
    /// SLO assertions checked after the run.
    pub slo: Option<SloSpec>,
    /// Find the limit: run the load at rising rates or user counts.
    pub sweep: Option<SweepSpec>,
    /// Shadow traffic and a phased migration from a primary target to a candidate.
    pub migration: Option<MigrationSpec>,
}

/// `[migration]`: which target serves now (`primary`), which one may replace it
/// (`candidate`), how much traffic is paired, the phases of the rollout and their gates.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationSpec {
    pub primary: String,
    pub candidate: String,
    /// Fraction of requests also sent to the side that does not serve them, so that they can
    /// be paired (default 1: every request goes to both).
    pub mirror: Option<f64>,
    /// Gates every phase checks unless it sets its own value for the same gate.
    pub gates: Option<GatesSpec>,
    /// The rollout, in order. Without phases the run is one shadow phase over `[load]`.
    #[serde(default)]
    pub phases: Vec<PhaseSpec>,
    /// How many times its length a phase may grow so that every gate gets its minimum sample
    /// (default 4; 1: never).
    pub extend_up_to: Option<f64>,
}

/// One phase of a rollout.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    /// Shown in reports; default `phase N`.
    pub name: Option<String>,
    /// The candidate's share of the served traffic: 0 (shadow only) to 1.
    pub share: f64,
    /// How long the phase runs (or `requests`).
    pub duration: Option<HumanDuration>,
    /// How many requests the phase sends (or `duration`).
    pub requests: Option<u64>,
    /// This phase's mirror fraction (default: the migration's).
    pub mirror: Option<f64>,
    pub gates: Option<GatesSpec>,
}

/// The gates that decide whether a rollout goes on. Every one is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatesSpec {
    /// The candidate's failures other than 429, over its finished requests (0.01 = 1%).
    pub max_error_rate: Option<f64>,
    /// The candidate's 429s over its finished requests.
    pub max_throttle_rate: Option<f64>,
    /// Latency percentiles (`"ttft.p99"`, `"e2e.p50"`, …) the candidate may exceed the primary's
    /// by, relatively: `{ "ttft.p99" = 0.25 }` allows 25% slower.
    #[serde(default)]
    pub max_regression: BTreeMap<String, f64>,
    /// The lowest mean output similarity (token F1, 0 to 1) of paired answers.
    pub min_agreement: Option<f64>,
    /// The candidate's cost per request over the primary's (1.2 = at most 20% dearer).
    pub max_cost_ratio: Option<f64>,
    /// The most the candidate may cost over the phase, in the reporting currency.
    pub max_cost: Option<f64>,
}

/// `[sweep]`: the load values to step through and how long each step runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// `"rate"` (an open loop's requests per second) or `"users"` (a closed loop's).
    pub over: String,
    /// The values, rising.
    pub values: Vec<f64>,
    /// How long each step runs.
    pub step_duration: HumanDuration,
    /// Stop after the first step that fails its SLOs (default true).
    pub stop_at_first_failure: Option<bool>,
}

/// `[slo]`: assertions such as `"ttft.p99 < 200ms"`, the confidence of their intervals, and
/// whether an inconclusive one fails the run.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    #[serde(default)]
    pub assert: Vec<String>,
    /// Two-sided confidence, between 0.5 and 0.9999 (default 0.95).
    pub confidence: Option<f64>,
    /// Exit non-zero on `inconclusive` as well as `fail` (default false).
    pub fail_on_inconclusive: Option<bool>,
}

/// `[cost]`: which pricing table, the reporting currency, exchange rates, overrides, projection.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CostSpec {
    /// A pricing table file (TOML), relative to the scenario; default: the built-in table.
    pub pricing: Option<PathBuf>,
    /// The currency costs are reported in; default: the table's.
    pub currency: Option<String>,
    /// Units of each currency per one unit of the reporting currency, e.g. `{ CNY = 7.3 }`.
    #[serde(default)]
    pub exchange_rates: BTreeMap<String, f64>,
    /// Models added to the table or replacing its entries.
    #[serde(default)]
    pub models: BTreeMap<String, crate::cost::ModelPrice>,
    /// Project each target's cost to a daily volume (one of the three).
    pub projection: Option<ProjectionSpec>,
    /// Spend cap for the whole run, in the reporting currency.
    pub budget: Option<f64>,
    /// Fractions of the budget that print a warning when passed (default 0.5 and 0.8).
    pub alerts: Option<Vec<f64>>,
    /// Run with a budget even though some target is unpriced (its spend is not counted).
    pub allow_unpriced: Option<bool>,
}

/// `projection = { output_tokens_per_day = 10_000_000 }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionSpec {
    pub requests_per_day: Option<f64>,
    pub output_tokens_per_day: Option<f64>,
    /// Input plus output tokens per day.
    pub tokens_per_day: Option<f64>,
}

/// A target's `pricing = { model = "gpt-4.1", bill_currency = "CNY", bill_rate = 1.0 }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetPricingSpec {
    /// The pricing-table entry (default: the target's model).
    pub model: Option<String>,
    /// The currency the provider bills in (default: the table's).
    pub bill_currency: Option<String>,
    /// Units of the bill currency charged per unit of list price (a relay billing ¥1 per $1 of
    /// list price: `bill_currency = "CNY", bill_rate = 1.0`); default: the market rate.
    pub bill_rate: Option<f64>,
    /// Fraction off the list price for this target (default: the table's discount for its mode).
    pub discount: Option<f64>,
    /// Spend cap for this target, in the reporting currency.
    pub budget: Option<f64>,
}

/// One endpoint under test.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub name: String,
    /// Base URL up to and including the API version, e.g. `https://api.openai.com/v1`.
    pub base_url: Option<String>,
    /// Settings of the embedded mock server; used instead of `base_url`.
    pub mock: Option<MockSpec>,
    /// Name of the environment variable that holds the API key (never the key itself).
    pub api_key_env: Option<String>,
    pub model: String,
    /// The API the endpoint speaks: OpenAI chat completions (default), the Responses API,
    /// legacy completions, embeddings, or Anthropic Messages.
    #[serde(default)]
    pub api: Api,
    /// The request field that carries a class's `max_tokens` (default per API; `"none"` sends
    /// no cap).
    pub max_tokens_field: Option<crate::protocol::OutputLimit>,
    /// How the key is sent: `{ header = "api-key", scheme = "" }` (default per API:
    /// `Authorization: Bearer` or Anthropic's `x-api-key`).
    pub auth: Option<AuthSpec>,
    /// Query parameters on every request (e.g. Azure's `api-version`).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// The request URL in place of `base_url` + the API's path: a full URL, or a path from the
    /// endpoint's host when it starts with `/` (deployment-style paths).
    pub url: Option<String>,
    /// How answers are asked for; default `stream` (`complete` for embeddings, which do not
    /// stream). Read it with [`TargetSpec::mode`].
    #[serde(rename = "mode")]
    pub mode_set: Option<TargetMode>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON fields merged verbatim into every request body (e.g. `mode = "batch"`).
    #[serde(default)]
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// Maps a class's logical model name to this target's model name.
    #[serde(default)]
    pub model_map: BTreeMap<String, String>,
    /// Whole-request timeout; default 600 s.
    pub timeout: Option<HumanDuration>,
    /// TCP/TLS connection set-up timeout; default 10 s.
    pub connect_timeout: Option<HumanDuration>,
    /// Time allowed from sending to response headers; default 120 s.
    pub first_byte_timeout: Option<HumanDuration>,
    /// Longest silence between body chunks once the response started; default 60 s.
    pub idle_timeout: Option<HumanDuration>,
    #[serde(default)]
    pub http: HttpVersion,
    /// How HTTP/2 requests spread over connections: `{ connections = 4,
    /// max_streams_per_connection = 100 }` (default one connection, the server's stream limit).
    pub http2: Option<Http2Spec>,
    /// PEM file of extra CA certificates to trust (besides the Mozilla roots), relative to the
    /// scenario file.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. Insecure: for test endpoints only; warned about.
    pub insecure_skip_verify: Option<bool>,
    /// Retry failed requests (429, 408, 5xx, connection failures and connect/first-byte
    /// timeouts) with exponential backoff and jitter.
    pub retry: Option<RetrySpec>,
    /// Ask for `stream_options.include_usage` when streaming (default true).
    pub stream_usage: Option<bool>,
    /// How this target's tokens are priced (see `[cost]`).
    pub pricing: Option<TargetPricingSpec>,
    /// Batch API settings for `mode = "batch-api"`.
    pub batch: Option<BatchSpec>,
    /// Vocabulary for counting tokens when the server sends no usage (default `o200k_base`;
    /// or the model's own `{ file = "tokenizer.json" }`).
    pub tokenizer: Option<TokenizerSpec>,
    /// Rules that send some classes through the Batch API instead (a hybrid router).
    pub routing: Option<Vec<RouteSpec>>,
    /// Scrape the server's Prometheus `/metrics` during the run (an embedded mock's own without
    /// `url`).
    pub server_metrics: Option<ServerMetricsSpec>,
}

/// `server_metrics = { url = "http://host:port/metrics", every = "1s" }`: what to scrape, how
/// often, and the bounds that keep a slow, huge or wrong endpoint from costing the run anything.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerMetricsSpec {
    /// The page's URL; required unless the target is an embedded mock.
    pub url: Option<String>,
    /// How often it is scraped (default 1s, at least 100ms).
    pub every: Option<HumanDuration>,
    /// How long one scrape may take (default and at most `every`).
    pub timeout: Option<HumanDuration>,
    /// The largest page read, in bytes (default 4 MiB, at most 64 MiB); a larger one is
    /// abandoned and reported.
    pub max_bytes: Option<u64>,
    /// Samples read from one page (default 20,000); later ones are dropped and counted.
    pub max_samples: Option<u32>,
    /// Series kept as they are besides the known figures: metric names, `*` matching any run
    /// of characters (`"vllm:num_preemptions_total"`, `"vllm:spec_decode_*"`).
    #[serde(default)]
    pub keep: Vec<String>,
}

/// `http2 = { connections = 4, max_streams_per_connection = 100 }`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Http2Spec {
    /// Connections opened at most (default 1, at most 10,000).
    pub connections: Option<u32>,
    /// Streams one connection carries at once, never more than the server's
    /// SETTINGS_MAX_CONCURRENT_STREAMS (default: the server's limit).
    pub max_streams_per_connection: Option<u32>,
}

impl TargetSpec {
    /// The target's mode, its API's default filled in.
    pub fn mode(&self) -> TargetMode {
        self.mode_set.unwrap_or(if self.api.streams() {
            TargetMode::Stream
        } else {
            TargetMode::Complete
        })
    }
}

/// `auth = { header = "api-key", scheme = "" }`: the header that carries the key, and the
/// word before the key in it (none when empty).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    pub header: String,
    #[serde(default)]
    pub scheme: Option<String>,
}

/// `{ when = { user_facing = false }, to = "batch-api" }`: the first rule whose `when` matches a
/// class's labels decides; a rule without `when` matches every class; no match means live.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub when: Option<RouteWhen>,
    pub to: RouteTo,
}

/// Conditions on a class's labels; all given ones must hold.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteWhen {
    pub priority: Option<String>,
    pub user_facing: Option<bool>,
    /// The class's `max_latency` label is at least this long.
    pub max_latency_at_least: Option<HumanDuration>,
    /// Each of these tags has this value.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Where a routing rule sends a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteTo {
    /// The target's own mode (stream or complete).
    Live,
    /// The asynchronous Batch API.
    BatchApi,
}

impl RouteWhen {
    /// Whether a class with these labels matches.
    pub fn matches(&self, labels: &crate::workload::ClassLabels) -> bool {
        self.priority
            .as_ref()
            .is_none_or(|p| labels.priority.as_ref() == Some(p))
            && self
                .user_facing
                .is_none_or(|u| labels.user_facing == Some(u))
            && self
                .max_latency_at_least
                .is_none_or(|min| labels.max_latency.is_some_and(|l| l >= min.0))
            && self.tags.iter().all(|(k, v)| labels.tags.get(k) == Some(v))
    }
}

/// `batch = { poll = "1s", max_poll = "30s", max_requests = 50000, ... }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// First wait between status reads; doubled after each read up to `max_poll` (default 1 s).
    pub poll: Option<HumanDuration>,
    /// Longest wait between status reads (default 30 s).
    pub max_poll: Option<HumanDuration>,
    /// Most requests per batch (default 50,000, OpenAI's limit).
    pub max_requests: Option<u64>,
    /// Largest input file per batch in bytes (default 200 MB, OpenAI's limit).
    pub max_bytes: Option<u64>,
    /// `completion_window` sent (default "24h").
    pub completion_window: Option<String>,
    /// Give up (and cancel) a batch not finished after this long (default 25 h).
    pub timeout: Option<HumanDuration>,
}

/// `retry = { max = 2, base = "250ms", max_backoff = "8s", max_retry_after = "60s" }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Retries after the first attempt.
    pub max: u32,
    /// Backoff before the first retry; doubled for each next one (default 250 ms).
    pub base: Option<HumanDuration>,
    /// Longest backoff drover chooses itself (default 8 s); a server's `Retry-After` may ask
    /// for longer, up to `max_retry_after`.
    pub max_backoff: Option<HumanDuration>,
    /// Longest `Retry-After` waited for (default 60 s); a longer one ends the request with
    /// that answer instead of a retry.
    pub max_retry_after: Option<HumanDuration>,
}

pub use crate::protocol::Api;

/// How a target is asked for completions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetMode {
    /// `stream: true`, Server-Sent Events.
    #[default]
    Stream,
    /// `stream: false`, one JSON response.
    Complete,
    /// The provider's asynchronous batch API (OpenAI's Batch API, or Anthropic's Message Batches
    /// for `api = "anthropic"`): every request in batches, polled until done.
    BatchApi,
}

impl TargetMode {
    /// Its name in scenario files and results.
    pub fn name(self) -> &'static str {
        match self {
            TargetMode::Stream => "stream",
            TargetMode::Complete => "complete",
            TargetMode::BatchApi => "batch-api",
        }
    }
}

/// HTTP protocol version the client speaks to a target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpVersion {
    /// HTTP/1.1 for `http://`, ALPN (HTTP/2 preferred) for `https://`.
    #[default]
    Auto,
    Http1,
    /// HTTP/2 only (prior knowledge for `http://`).
    Http2,
}

/// Latency and output settings of the embedded mock server.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MockSpec {
    pub ttft: Option<LatencySpec>,
    pub itl: Option<LatencySpec>,
    pub output_tokens: Option<u32>,
    /// Of each answer's tokens, this many come first as reasoning (default 0).
    pub reasoning_tokens: Option<u32>,
    /// Send a role-only chunk this long after the request, before the first token.
    pub prelude: Option<HumanDuration>,
    /// Faults to inject, each with a probability per request.
    pub faults: Option<FaultsSpec>,
    /// Batch API: time from creating a batch to `completed` (default 2 s).
    pub batch_processing_time: Option<HumanDuration>,
    /// Batch API: fraction of requests that fail (default 0).
    pub batch_failure_rate: Option<f64>,
    /// `"mode": "batch"` requests: inter-token delay divided by this (default 2).
    pub batch_mode_speedup: Option<f64>,
    /// Probability (0–1) that a response stops before its max_tokens (default 0).
    pub early_stop: Option<f64>,
    /// Turns on the simulated prompt cache: the TTFT of a request whose prefix is cached.
    pub cache_ttft: Option<LatencySpec>,
    /// Capacity model: requests generating at once; the rest queue.
    pub decode_slots: Option<u32>,
    /// The HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS it announces (default 200, hyper's).
    pub max_concurrent_streams: Option<u32>,
    /// Report input usage as this multiple of the prompt's tokens (default 1), to try the spend
    /// guard against a server that counts more than drover projects.
    pub input_usage_scale: Option<f64>,
    /// Play a server of this model: answer in its tokenizer's one-token words and count prompts
    /// (chat template included) with it. Default: the mock's own words, prompts by their words.
    pub tokenizer: Option<TokenizerSpec>,
    /// Of requests that declare tools (`tool_choice` "auto"), the share answered with a tool
    /// call (default 0; always under "required" or a named tool).
    pub tool_call_rate: Option<f64>,
    /// Of tool calls, the share whose arguments are deliberately broken (not JSON; default 0).
    pub broken_arguments_rate: Option<f64>,
}

/// `[targets.mock.faults]`: a probability (0–1) per fault, and the faults' parameters.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsSpec {
    pub reset_before_headers: Option<f64>,
    pub drop_mid_stream: Option<f64>,
    pub stall: Option<f64>,
    pub slow_drip: Option<f64>,
    pub malformed_sse: Option<f64>,
    pub invalid_json: Option<f64>,
    pub no_done: Option<f64>,
    pub http_408: Option<f64>,
    pub http_429: Option<f64>,
    pub http_500: Option<f64>,
    pub http_502: Option<f64>,
    pub http_503: Option<f64>,
    pub wrong_content_type: Option<f64>,
    pub non_utf8: Option<f64>,
    pub oversized_event: Option<f64>,
    pub echo_key: Option<f64>,
    /// How long a `stall` lasts (default 5 s).
    pub stall_for: Option<HumanDuration>,
    /// Interval between bytes of a `slow_drip` (default 100 ms).
    pub drip_every: Option<HumanDuration>,
    /// Size of an `oversized_event` in bytes (default 2 MiB).
    pub oversized_bytes: Option<usize>,
}

impl FaultsSpec {
    /// Each configured fault's name and probability.
    pub fn probabilities(&self) -> Vec<(&'static str, f64)> {
        [
            ("reset_before_headers", self.reset_before_headers),
            ("drop_mid_stream", self.drop_mid_stream),
            ("stall", self.stall),
            ("slow_drip", self.slow_drip),
            ("malformed_sse", self.malformed_sse),
            ("invalid_json", self.invalid_json),
            ("no_done", self.no_done),
            ("http_408", self.http_408),
            ("http_429", self.http_429),
            ("http_500", self.http_500),
            ("http_502", self.http_502),
            ("http_503", self.http_503),
            ("wrong_content_type", self.wrong_content_type),
            ("non_utf8", self.non_utf8),
            ("oversized_event", self.oversized_event),
            ("echo_key", self.echo_key),
        ]
        .into_iter()
        .filter_map(|(name, p)| p.map(|p| (name, p)))
        .collect()
    }
}

/// A traffic class: what is sent, and how often relative to the others.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    pub name: String,
    pub weight: Option<f64>,
    /// Synthetic prompt of this many input tokens (fixed or a distribution).
    pub input_tokens: Option<LengthSpec>,
    /// `false`: every request of the same length sends the same synthetic text (on purpose
    /// repeated, e.g. to measure a prompt cache). Default `true`.
    pub unique_prompts: Option<bool>,
    /// Dataset of prompts, relative to the scenario file.
    pub dataset: Option<PathBuf>,
    /// `chat`, `sharegpt`, `batch` or `text`; default: told from the file.
    pub dataset_format: Option<String>,
    /// How the dataset is walked: `random` (default), `sequential` or `shuffle`.
    pub sampling: Option<SamplingSpec>,
    /// Keep only dataset records with at least / at most this many input tokens.
    pub min_input_tokens: Option<u64>,
    pub max_input_tokens: Option<u64>,
    /// Tokenizer for synthetic prompts, dataset filters and empirical lengths (default: the
    /// targets' when they all name the same file, else `o200k_base`).
    pub tokenizer: Option<TokenizerSpec>,
    /// Output cap sent as `max_tokens`: fixed or a distribution.
    pub max_tokens: Option<LengthSpec>,
    /// Passed through for servers that honour them (vLLM, SGLang, TGI).
    pub min_tokens: Option<u32>,
    pub ignore_eos: Option<bool>,
    /// Texts per request for an embeddings target (bulk embedding; default 1).
    pub inputs_per_request: Option<u32>,
    /// Synthetic images attached to every user message.
    pub images: Option<ImagesSpec>,
    /// Tools every request declares: a list of `{ name, description, parameters }` tables, or
    /// a JSON file of them (relative to the scenario file).
    pub tools: Option<ToolsSpec>,
    /// `"auto"` (default), `"required"`, `"none"` or `{ name = "tool" }`.
    pub tool_choice: Option<ToolChoiceSpec>,
    /// In a multi-turn session, the canned result sent back (a `tool` message) for a tool call
    /// before the next turn.
    pub tool_result: Option<String>,
    /// Start a fraction of requests with one of K shared system prompts.
    pub shared_prefix: Option<SharedPrefixSpec>,
    /// Multi-turn sessions: requests per conversation (default 1).
    pub turns: Option<u32>,
    /// Pause between a turn's answer and the next turn (default 0).
    pub think_time: Option<HumanDuration>,
    /// Logical model name; targets map it through `model_map`, default is the target's model.
    pub model: Option<String>,
    #[serde(default)]
    pub labels: Labels,
}

/// How a class walks its dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplingSpec {
    Random,
    Sequential,
    Shuffle,
}

/// `shared_prefix = { prompts = 4, tokens = 1024, fraction = 0.8 }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SharedPrefixSpec {
    /// How many different prefixes (K).
    pub prompts: u32,
    /// Tokens in each (N).
    pub tokens: u32,
    /// Share of the class's requests that start with one (default 1).
    pub fraction: Option<f64>,
}

/// Routing labels carried by a class (used by later routing and SLO features).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    pub priority: Option<String>,
    pub user_facing: Option<bool>,
    pub max_latency: Option<HumanDuration>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl Labels {
    /// The labels as the validated class keeps them.
    pub fn to_class_labels(&self) -> crate::workload::ClassLabels {
        crate::workload::ClassLabels {
            priority: self.priority.clone(),
            user_facing: self.user_facing,
            max_latency: self.max_latency.map(|d| d.0),
            tags: self.tags.clone(),
        }
    }
}

/// The load profile.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    pub kind: LoadKind,
    /// Open loop: how arrivals are spaced.
    pub arrival: Option<Arrival>,
    /// Open loop: requests per second, for the whole duration.
    pub rate: Option<f64>,
    /// Open loop: successive rate steps or ramps (instead of `rate`).
    pub stages: Option<Vec<StageSpec>>,
    /// Open loop: cap on requests in flight; arrivals wait (and are counted late) beyond it.
    pub max_in_flight: Option<u32>,
    /// Closed loop: concurrent users, each sending its next request when the last one ends.
    pub users: Option<u32>,
    pub duration: Option<HumanDuration>,
    pub requests: Option<u64>,
    /// Requests scheduled during this first part of the run are sent but not measured.
    pub warmup: Option<HumanDuration>,
    /// The first N requests are sent but not measured.
    pub warmup_requests: Option<u64>,
    /// Trace replay: the JSONL trace, relative to the scenario file.
    pub trace: Option<PathBuf>,
    /// Trace replay: 2 sends the trace twice as fast, 0.5 at half speed (default 1).
    pub speed: Option<f64>,
}

/// Open or closed loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadKind {
    Open,
    Closed,
    /// Replay a timestamped trace.
    Trace,
}

/// Arrival process of an open loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arrival {
    /// Evenly spaced: request k at k / rate.
    #[default]
    Constant,
    /// Exponential gaps with the given mean rate.
    Poisson,
}

/// One step of a stepped or ramped open-loop profile.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub rate: f64,
    pub duration: HumanDuration,
    /// Ramp linearly from `rate` to `end_rate` over the stage.
    pub end_rate: Option<f64>,
}

/// A duration written as a human string: `"40ms"`, `"2s"`, `"1m 30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(HumanDuration)
            .map_err(de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// The longest duration a scenario may give anything (a run, a timeout, a wait): 30 days.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Parses `"40ms"`, `"1.5s"`, `"2m"` and the forms `humantime` accepts, up to [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_any_duration(text)?;
    if duration > MAX_DURATION {
        return Err(format!(
            "\"{}\" is longer than 30 days, the longest duration drover takes",
            text.trim()
        ));
    }
    Ok(duration)
}

fn parse_any_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    // humantime has no fractions ("1.5s"); accept a decimal number with a single unit too.
    if let Some(duration) = parse_decimal_duration(trimmed) {
        return Ok(duration);
    }
    humantime::parse_duration(trimmed).map_err(|e| {
        format!("invalid duration \"{text}\" ({e}); write e.g. \"50ms\", \"2s\", \"1m 30s\"")
    })
}

fn parse_decimal_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    if !number.contains('.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// A latency: a fixed `"40ms"` or a distribution table.
#[derive(Debug, Clone, PartialEq)]
pub enum LatencySpec {
    Fixed(HumanDuration),
    Distribution(LatencyDistribution),
}

/// A latency distribution: `{ dist = "normal", mean = "40ms", spread = "5ms" }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyDistribution {
    pub dist: SpreadKind,
    pub mean: HumanDuration,
    /// Standard deviation (normal) or half-width (uniform).
    pub spread: HumanDuration,
}

/// Shape of a latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpreadKind {
    Normal,
    Uniform,
}

impl<'de> Deserialize<'de> for LatencySpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LatencyVisitor;
        impl<'de> Visitor<'de> for LatencyVisitor {
            type Value = LatencySpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"40ms\" or a table { dist, mean, spread }")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                parse_duration(text)
                    .map(|d| LatencySpec::Fixed(HumanDuration(d)))
                    .map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                LatencyDistribution::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(LatencySpec::Distribution)
            }
        }
        deserializer.deserialize_any(LatencyVisitor)
    }
}

impl Serialize for LatencySpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            LatencySpec::Fixed(d) => d.serialize(serializer),
            LatencySpec::Distribution(dist) => dist.serialize(serializer),
        }
    }
}

/// A token length: a fixed `256` or a distribution table.
#[derive(Debug, Clone, PartialEq)]
pub enum LengthSpec {
    Fixed(u32),
    Distribution(LengthDistribution),
}

/// `{ dist = "uniform", min = 100, max = 500 }`, `{ dist = "normal", mean = 256, stddev = 32 }`,
/// `{ dist = "lognormal", mean = 256, stddev = 128 }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LengthDistribution {
    pub dist: LengthKind,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub mean: Option<f64>,
    pub stddev: Option<f64>,
    /// `empirical`: the dataset whose prompt lengths are drawn from.
    pub dataset: Option<PathBuf>,
    /// `empirical`: the dataset's format (default: told from the file).
    pub format: Option<String>,
}

/// Shape of a token-length distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LengthKind {
    Uniform,
    Normal,
    Lognormal,
    /// The lengths of a dataset's prompts.
    Empirical,
}

/// `tools = [{ name = "get_weather", description = "…", parameters = { type = "object", … } }]`
/// or `tools = "tools.json"`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ToolsSpec {
    File(PathBuf),
    Inline(Vec<ToolSpec>),
}

/// One declared tool.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of its arguments (default: an object without properties).
    pub parameters: Option<serde_json::Value>,
}

/// `tool_choice`: a mode, or the one tool to call.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ToolChoiceSpec {
    Mode(String),
    Named { name: String },
}

/// `images = { count = 1, width = 512, height = 512, format = "png", detail = "auto" }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesSpec {
    /// Images per request (default 1).
    pub count: Option<u32>,
    pub width: u32,
    pub height: u32,
    /// `png` (the only one drawn; default).
    pub format: Option<String>,
    /// OpenAI's `detail`: `low`, `high` or `auto` (sent only when set).
    pub detail: Option<String>,
}

/// `tokenizer = "cl100k_base"` (a built-in vocabulary) or
/// `tokenizer = { file = "models/llama/tokenizer.json", template_tokens = { per_message = 5, per_request = 4 } }`.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenizerSpec {
    Builtin(crate::tokenizer::Encoding),
    File(TokenizerFileSpec),
}

/// A model's own Hugging Face `tokenizer.json`, relative to the scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerFileSpec {
    pub file: PathBuf,
    /// What the chat template adds; default: measured from the `tokenizer_config.json` beside
    /// the file.
    pub template_tokens: Option<TemplateTokensSpec>,
}

/// `template_tokens = { per_message = 5, per_request = 4 }`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateTokensSpec {
    pub per_message: u32,
    pub per_request: u32,
}

impl<'de> Deserialize<'de> for TokenizerSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TokenizerVisitor;
        impl<'de> Visitor<'de> for TokenizerVisitor {
            type Value = TokenizerSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "\"o200k_base\", \"cl100k_base\" or a table { file = \"path/to/tokenizer.json\" }",
                )
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                crate::tokenizer::Encoding::deserialize(de::value::StrDeserializer::<E>::new(value))
                    .map(TokenizerSpec::Builtin)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                TokenizerFileSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(TokenizerSpec::File)
            }
        }
        deserializer.deserialize_any(TokenizerVisitor)
    }
}

impl Serialize for TokenizerSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            TokenizerSpec::Builtin(encoding) => encoding.serialize(serializer),
            TokenizerSpec::File(file) => file.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for LengthSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LengthVisitor;
        impl<'de> Visitor<'de> for LengthVisitor {
            type Value = LengthSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a token count such as 256 or a table { dist, ... }")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
                u32::try_from(value)
                    .map(LengthSpec::Fixed)
                    .map_err(|_| E::custom(format!("token count {value} is out of range")))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
                u32::try_from(value)
                    .map(LengthSpec::Fixed)
                    .map_err(|_| E::custom(format!("token count {value} is out of range")))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                LengthDistribution::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(LengthSpec::Distribution)
            }
        }
        deserializer.deserialize_any(LengthVisitor)
    }
}

impl Serialize for LengthSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            LengthSpec::Fixed(n) => serializer.serialize_u32(*n),
            LengthSpec::Distribution(dist) => dist.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_common_forms() {
        assert_eq!(parse_duration("40ms").unwrap(), Duration::from_millis(40));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("fast")
            .unwrap_err()
            .contains("invalid duration"));
    }
}
