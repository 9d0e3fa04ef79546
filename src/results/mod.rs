//! The results document (`drover.results/v1`): what a run measured, versioned, serializable, and
//! self-sufficient — every later report, comparison and merge reads only this.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod migration;
pub mod paired;
pub mod server;
pub mod slo;
pub mod sweep;

/// Schema identifier written into every results file.
pub const SCHEMA: &str = "drover.results/v1";

/// The committed results of the CI gate's scenario (scenarios/baselines/ci-gate.json): a real
/// results document for unit tests.
#[cfg(test)]
pub(crate) fn committed_baseline() -> RunResults {
    serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/baselines/ci-gate.json"
        ))
        .expect("the committed baseline is there"),
    )
    .expect("the committed baseline is a results document")
}

/// Where the published JSON Schema of [`SCHEMA`] lives in the repository (`drover schema`
/// prints the same document; a test keeps the two equal).
pub const SCHEMA_FILE: &str = "docs/results.schema.json";

/// The JSON Schema (draft 2020-12) of a results document, generated from these types, so it
/// cannot drift from what drover writes and reads.
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(RunResults))
        .expect("a generated schema is JSON");
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "$id".into(),
            format!(
                "https://drover.dev/schemas/{}.json",
                SCHEMA.replace('/', "-")
            )
            .into(),
        );
        object.insert(
            "title".into(),
            format!("drover results document ({SCHEMA})").into(),
        );
    }
    // The one value the `schema` field can have: a reader of another version is told at once.
    if let Some(field) = schema.pointer_mut("/properties/schema") {
        *field = serde_json::json!({
            "description": "The document's format and version.",
            "const": SCHEMA,
        });
    }
    schema
}

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunResults {
    pub schema: String,
    pub drover_version: String,
    pub scenario: ScenarioInfo,
    pub status: RunStatus,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub ended_at: String,
    pub duration_s: f64,
    pub targets: Vec<TargetResults>,
    /// Where the run happened.
    #[serde(default)]
    pub environment: Environment,
    /// Things the user should know about the run's validity (e.g. the client fell behind).
    pub warnings: Vec<String>,
    /// Which shard of a sharded run this is (absent for an unsharded run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// For a file made by `drover merge`: the shards it combines and those missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergeInfo>,
    /// The pricing table costs were computed with (absent when no target was priced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<PricingInfo>,
    /// What the whole run spent, over all priced targets (absent when none was priced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<RunSpend>,
    /// The scenario's SLO assertions, evaluated (absent without `[slo]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<slo::SloResults>,
    /// Shadow pairs compared, request by request (a `[migration]` run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<crate::results::paired::PairedComparison>,
    /// The migration phase this run was, and its gates evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<migration::PhaseOutcome>,
}

/// The run's spend in the reporting currency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunSpend {
    pub currency: String,
    pub total: f64,
    pub targets_priced: usize,
    pub targets_unpriced: usize,
    /// The run's spend cap, and targets' own caps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target_budgets: BTreeMap<String, f64>,
    /// Alert fractions of the budget that spend passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts_crossed: Vec<f64>,
    /// A cap stopped requests from starting.
    #[serde(default)]
    pub exhausted: bool,
}

impl RunSpend {
    /// The sum over targets' summaries; `None` when no target is priced.
    pub fn of(targets: &[TargetResults]) -> Option<RunSpend> {
        let priced: Vec<&CostResults> = targets
            .iter()
            .filter_map(|t| t.summary.cost.as_ref())
            .collect();
        let first = priced.first()?;
        Some(RunSpend {
            currency: first.currency.clone(),
            total: priced.iter().map(|c| c.total).sum(),
            targets_priced: priced.len(),
            targets_unpriced: targets.len() - priced.len(),
            ..RunSpend::default()
        })
    }
}

/// Where a run's prices came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PricingInfo {
    /// The table file, or the built-in one.
    pub table: String,
    pub as_of: Option<String>,
    pub note: Option<String>,
    /// The reporting currency.
    pub currency: String,
}

/// A shard's identity (see [`crate::shard`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShardInfo {
    /// 0-based.
    pub index: u32,
    pub count: u32,
    /// The seed of this shard's embedded mocks (its requests draw from the scenario seed).
    pub seed: u64,
    /// The agreed start time (`--start-at`, RFC 3339), when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
}

/// What a merged results file was made of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MergeInfo {
    /// Shards the run was split into.
    pub shard_count: u32,
    /// Indices merged, and indices of the planned shards that were not given.
    pub present: Vec<u32>,
    pub missing: Vec<u32>,
    /// Each merged shard, in index order.
    pub shards: Vec<MergedShard>,
    /// Seconds between the first and the last shard's load start (`started_at`): how far apart
    /// the shards' traffic began. Absent when a shard's start time could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_skew_s: Option<f64>,
}

/// One input of a merge, as it was.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MergedShard {
    pub index: u32,
    /// The file it was read from.
    pub source: String,
    pub host: String,
    pub status: RunStatus,
    pub started_at: String,
    /// Seconds from the agreed start (`--start-at`) to this shard's load start: how late it
    /// began (absent without `--start-at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_late_s: Option<f64>,
    pub duration_s: f64,
    /// Per target: requests sent and the rate at which this shard sent them.
    pub targets: Vec<MergedShardTarget>,
}

/// A shard's share of one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MergedShardTarget {
    pub name: String,
    pub sent: u64,
    pub succeeded: u64,
    /// Requests sent per second of the shard's run.
    pub sent_per_s: f64,
}

/// The scenario as run (secrets never included).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScenarioInfo {
    pub name: String,
    pub source: String,
    pub seed: u64,
    pub as_run: serde_json::Value,
    /// Overrides applied to the file before it ran (`--set load.rate=40`, `DROVER_SET_…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
}

/// The build: `0.1.0 (commit 1a2b3c4d5e6f, release)`, as `drover --version` prints it.
pub const BUILD: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("DROVER_GIT_COMMIT"),
    ", ",
    env!("DROVER_BUILD_PROFILE"),
    ")"
);

/// The machine that ran the load.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Environment {
    pub host: String,
    pub os: String,
    pub cores: usize,
    /// Peak resident memory of the drover process (Linux), for a merged file the largest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// The drover build that ran: version, git commit and build profile ([`BUILD`]); for a
    /// merged file, every build that ran a shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
}

impl Environment {
    /// This machine.
    pub fn current() -> Self {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown".into());
        Environment {
            host,
            os: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            peak_rss_bytes: peak_rss_bytes(),
            build: Some(BUILD.to_string()),
        }
    }
}

/// The process's peak resident set size so far (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// How the run ended.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every scheduled request was sent and finished.
    #[default]
    Completed,
    /// Stopped early by an interrupt; the results cover what finished before it.
    Interrupted,
    /// A checkpoint written while the run was still going (what is left if it was killed).
    InProgress,
    /// A spend cap was reached: no new request started, those in flight finished.
    BudgetExhausted,
    /// The run finished, but drover itself failed on some requests (`internal` or
    /// `client_resources` errors) or its books did not balance: its figures describe drover's
    /// trouble as much as the endpoint (see the warnings and each target's `accounting`).
    Degraded,
}

/// One target's results: all classes together, then each class.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TargetResults {
    pub name: String,
    pub model: String,
    pub mode: String,
    /// `"embedded-mock"` or the base URL.
    pub endpoint: String,
    pub summary: GroupResults,
    pub classes: Vec<ClassResults>,
    /// One point per `series_step_s` seconds, by wall-clock completion time.
    pub series: Vec<SeriesPoint>,
    /// The wall-clock second (Unix time) at which the series' second 0 starts.
    #[serde(default)]
    pub series_origin_unix: u64,
    /// Seconds each series point covers: 1, doubled as often as needed to keep a long run's
    /// series under a few thousand points.
    #[serde(default = "one")]
    pub series_step_s: u64,
    /// Per stage of a stepped or ramped open loop (empty for a single stage).
    #[serde(default)]
    pub stages: Vec<StageResults>,
    /// A `batch-api` target's batches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<BatchResults>,
    /// The run's books for this target, checked before it reported (absent in checkpoints and
    /// in files written before drover kept them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounting: Option<Accounting>,
    /// The server's own metrics, scraped during the run (`server_metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_metrics: Option<server::ServerMetricsResults>,
    /// The vocabulary the client counted tokens with where the server reported none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerUsed>,
    /// Its HTTP/2 pool as configured (`http2`), when it speaks HTTP/2 or may (`https://` with
    /// `http = "auto"`); what happened on it is in `summary.connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<Http2PoolShape>,
}

/// `http2 = { connections, max_streams_per_connection }` as the run used it.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
pub struct Http2PoolShape {
    /// Connections opened at most.
    pub connections: u32,
    /// Streams one connection carried at most besides the server's limit (absent: the server's
    /// limit alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_streams_per_connection: Option<u32>,
}

/// The tokenizer a target's client-side counts came from, and its chat template's tokens.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct TokenizerUsed {
    /// `o200k_base`, `cl100k_base`, or `tokenizer.json (path)`.
    pub name: String,
    /// Tokens the chat template adds per message and per request, and where those come from.
    pub template_per_message: u64,
    pub template_per_request: u64,
    pub template_source: String,
}

/// Every request a run started ends in exactly one record (ok, an error class, or `internal`)
/// or is aborted: `scheduled = recorded + aborted`, warm-up included.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
pub struct Accounting {
    /// Requests the driver started (each turn of a session, each side of a shadow pair).
    pub scheduled: u64,
    /// Records the recorder received.
    pub recorded: u64,
    /// Requests still in flight when an interrupt's grace ran out.
    pub aborted: u64,
    /// Records the senders handed to the recorder (equals `recorded` unless one was lost).
    pub handed_over: u64,
    /// Whether the sums agree.
    pub balanced: bool,
}

/// One batch submitted through the Batch API.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct BatchResults {
    /// The provider's batch id (absent when it could not be created).
    pub id: Option<String>,
    pub requests: u64,
    /// Last status seen: `completed`, `failed`, `expired`, `cancelled`, … or `not_created`.
    pub status: String,
    /// Upload plus create, seconds.
    pub submit_s: f64,
    /// When each status was first seen, seconds after the submission started.
    pub status_times_s: BTreeMap<String, f64>,
    /// Submission start to results downloaded, seconds (when the batch ended).
    pub turnaround_s: Option<f64>,
    /// The batch's `request_counts` as last reported.
    pub reported_completed: u64,
    pub reported_failed: u64,
    /// What drover matched from the output and error files.
    pub succeeded: u64,
    pub failed: u64,
    /// Requests with no (valid) line in either file.
    pub missing: u64,
    /// Output or error lines whose `custom_id` was not one of this batch's.
    pub unknown_custom_ids: u64,
    /// Output or error lines that could not be read.
    pub malformed_lines: u64,
    /// Up to five messages about the above, and the batch's own errors.
    pub problems: Vec<String>,
}

fn one() -> u64 {
    1
}

/// One stage of a stepped profile: requests whose intended send time fell in it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StageResults {
    pub index: usize,
    /// Offered rate at the start and end of the stage (equal for a step).
    pub rate: f64,
    pub end_rate: f64,
    pub start_s: f64,
    pub duration_s: f64,
    #[serde(flatten)]
    pub results: GroupResults,
}

/// One class's results within a target.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClassResults {
    pub name: String,
    /// For a routed target: where this class's requests went (`batch-api`, or the live mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(flatten)]
    pub results: GroupResults,
}

/// Counters, latency statistics and histograms of a group of requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GroupResults {
    pub requests: RequestCounts,
    /// Failed requests by error class (`http_500`, `throttled`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Failed requests by the HTTP status they received (`"429": 3`), where one was received.
    pub http_statuses: BTreeMap<String, u64>,
    /// Up to three sample messages per error class (secrets scrubbed).
    pub error_samples: BTreeMap<String, Vec<String>>,
    /// `Retry-After` values (seconds) received with throttled responses, up to 100.
    pub retry_after_s: Vec<f64>,
    /// Retries (with a retry policy): not errors, and not in the latencies of the final attempt.
    #[serde(default)]
    pub retries: RetryCounts,
    pub tokens: TokenTotals,
    /// Images and bytes the requests carried (absent in files written before drover kept them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<InputTotals>,
    /// Tool calls, for a group whose requests declared tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<ToolCallResults>,
    pub throughput: Throughput,
    /// Statistics in milliseconds, keyed by metric name (`ttft`, `itl`, `e2e`, ...).
    pub latency_ms: BTreeMap<String, LatencyStat>,
    /// Each metric's HDR histogram in microseconds, V2 + deflate, base64.
    pub histograms: BTreeMap<String, String>,
    /// What the successful requests cost (absent for an unpriced target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostResults>,
    /// Requested versus produced output length, for requests that sent `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_length: Option<OutputLength>,
    /// The server's token counts checked against drover's own (absent when nothing could be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_check: Option<TokenCheck>,
    /// Requests that started with a shared prefix, and how many the server served from cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_prefix: Option<SharedPrefixCounts>,
    /// Multi-turn sessions (latency per turn is in `latency_ms` as `ttft_turn_1`, `e2e_turn_1`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionCounts>,
    /// How requests got their connections (set-up times are in `latency_ms` as `dns`,
    /// `tcp_connect`, `tls_handshake` and `connection_setup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionCounts>,
    /// What streams sent that was not a token (time to the first answer token, after any
    /// reasoning, is in `latency_ms` as `time_to_first_answer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_preamble: Option<StreamPreamble>,
    /// Reasoning, refusals, unknown stream events and embedded inputs (absent when none of
    /// them occurred; the time to the first reasoning output is in `latency_ms` as
    /// `time_to_first_reasoning`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<AnswerDetail>,
    /// Requests that met every latency criterion of the scenario's SLOs (present when the
    /// scenario has latency assertions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<Goodput>,
}

/// What the successful requests' answers carried besides their text (README, "APIs").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct AnswerDetail {
    /// Requests that reasoned (reasoning tokens in usage, or reasoning output received).
    pub reasoned: u64,
    /// Their reasoning tokens (part of the output tokens, priced as output).
    pub reasoning_tokens: u64,
    /// Their output tokens, reasoning included.
    pub reasoned_output_tokens: u64,
    /// `reasoning_tokens / reasoned_output_tokens`.
    pub reasoning_share: f64,
    /// Of `reasoned`, those whose reasoning count is drover's estimate from the reasoning text
    /// (the server's usage had no reasoning count).
    pub reasoning_estimated: u64,
    /// Answers that were refusals.
    pub refusals: u64,
    /// Stream events of a type the API does not define, and their types (up to 8).
    pub unknown_events: u64,
    pub unknown_event_types: Vec<String>,
    /// Texts embedded (embeddings targets), and per second of the measured window.
    pub inputs: u64,
    pub inputs_per_s: f64,
}

/// The tool calls of a group's successful answers to requests that declared tools.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ToolCallResults {
    /// Successful answers to requests with tools, and those that called a tool.
    pub answers: u64,
    pub answers_with_calls: u64,
    /// `answers_with_calls / answers`, with its 95% Wilson interval.
    pub call_rate: f64,
    pub call_rate_low: f64,
    pub call_rate_high: f64,
    /// Calls made, those whose arguments parse as JSON, and those whose arguments satisfy the
    /// declared schema.
    pub calls: u64,
    pub valid_json: u64,
    pub matching_schema: u64,
    /// `1 − matching_schema / calls`: calls a client could not use as they came.
    pub broken_rate: f64,
    /// Tokens of the calls' arguments (by the target's tokenizer).
    pub argument_tokens: u64,
}

impl ToolCallResults {
    pub fn add(&mut self, other: &ToolCallResults) {
        self.answers += other.answers;
        self.answers_with_calls += other.answers_with_calls;
        self.calls += other.calls;
        self.valid_json += other.valid_json;
        self.matching_schema += other.matching_schema;
        self.argument_tokens += other.argument_tokens;
        self.finish();
    }

    /// Recomputes the rates from the counts.
    pub fn finish(&mut self) {
        let rate = if self.answers == 0 {
            0.0
        } else {
            self.answers_with_calls as f64 / self.answers as f64
        };
        let (low, high) =
            crate::stats::wilson_interval(self.answers_with_calls, self.answers, 0.95);
        self.call_rate = rate;
        self.call_rate_low = low;
        self.call_rate_high = high;
        self.broken_rate = if self.calls == 0 {
            0.0
        } else {
            1.0 - self.matching_schema as f64 / self.calls as f64
        };
    }
}

/// Unknown event types kept per group.
pub const UNKNOWN_EVENT_TYPES_KEPT: usize = 8;

impl AnswerDetail {
    pub fn add(&mut self, other: &AnswerDetail) {
        self.reasoned += other.reasoned;
        self.reasoning_tokens += other.reasoning_tokens;
        self.reasoned_output_tokens += other.reasoned_output_tokens;
        self.reasoning_estimated += other.reasoning_estimated;
        self.refusals += other.refusals;
        self.unknown_events += other.unknown_events;
        for kind in &other.unknown_event_types {
            self.note_unknown_type(kind);
        }
        self.inputs += other.inputs;
    }

    /// Keeps an unknown event type's name (sorted, at most [`UNKNOWN_EVENT_TYPES_KEPT`]).
    pub fn note_unknown_type(&mut self, kind: &str) {
        if self.unknown_event_types.len() < UNKNOWN_EVENT_TYPES_KEPT
            && !self.unknown_event_types.iter().any(|k| k == kind)
        {
            self.unknown_event_types.push(kind.to_string());
            self.unknown_event_types.sort();
        }
    }

    /// Recomputes the share and the rate (over `window_s` seconds).
    pub fn finish(&mut self, window_s: f64) {
        self.reasoning_share = if self.reasoned_output_tokens > 0 {
            self.reasoning_tokens as f64 / self.reasoned_output_tokens as f64
        } else {
            0.0
        };
        self.inputs_per_s = if window_s > 0.0 {
            self.inputs as f64 / window_s
        } else {
            0.0
        };
    }
}

/// Goodput: successful requests within every latency criterion; failures count against it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Goodput {
    pub good: u64,
    /// `good / (succeeded + failed)`.
    pub good_fraction: f64,
    /// `good` per second of the measured window.
    pub good_per_s: f64,
}

impl Goodput {
    /// Recomputes the fraction and rate from `good`, the group's requests and window.
    pub fn finish(&mut self, requests: &RequestCounts, window_s: f64) {
        let finished = requests.succeeded + requests.failed;
        self.good_fraction = if finished > 0 {
            self.good as f64 / finished as f64
        } else {
            0.0
        };
        self.good_per_s = if window_s > 0.0 {
            self.good as f64 / window_s
        } else {
            0.0
        };
    }
}

/// Requests that opened a connection versus reused one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ConnectionCounts {
    pub opened: u64,
    pub reused: u64,
    /// Of the opened ones, those that made a TLS handshake.
    pub tls_handshakes: u64,
    /// `reused / (opened + reused)`.
    pub reuse_rate: f64,
    /// Connections that carried at least one of these requests.
    #[serde(default)]
    pub connections_used: u64,
    /// Requests each of those connections carried, in the order the connections were opened
    /// (the first 1,024; in merged results, each shard's after the one before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests_per_connection: Vec<u64>,
    /// HTTP/2: the smallest stream limit (SETTINGS_MAX_CONCURRENT_STREAMS) a server announced on
    /// a connection these requests opened (absent: HTTP/1.1, or no limit announced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_max_streams: Option<u32>,
    /// HTTP/2: requests that waited for a stream slot with every connection of the pool open
    /// and full; how long is `latency_ms.stream_wait` (never part of TTFT).
    #[serde(default)]
    pub stream_waits: u64,
}

/// Most connections listed in [`ConnectionCounts::requests_per_connection`].
pub const MAX_CONNECTIONS_LISTED: usize = 1024;

impl ConnectionCounts {
    /// Adds counts of other requests on other connections (another shard's).
    pub fn add(&mut self, other: &ConnectionCounts) {
        self.opened += other.opened;
        self.reused += other.reused;
        self.tls_handshakes += other.tls_handshakes;
        self.connections_used += other.connections_used;
        let room = MAX_CONNECTIONS_LISTED.saturating_sub(self.requests_per_connection.len());
        self.requests_per_connection
            .extend(other.requests_per_connection.iter().take(room));
        self.server_max_streams = match (self.server_max_streams, other.server_max_streams) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.stream_waits += other.stream_waits;
        self.finish();
    }

    /// Recomputes the reuse rate from the counts.
    pub fn finish(&mut self) {
        let total = self.opened + self.reused;
        self.reuse_rate = if total > 0 {
            self.reused as f64 / total as f64
        } else {
            0.0
        };
    }
}

/// Over successful streamed requests: events and comments that were not tokens.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct StreamPreamble {
    pub requests: u64,
    /// Events before the first token that carried no output (role-only or empty deltas).
    pub empty_preludes: u64,
    /// Requests that had at least one such prelude event.
    pub requests_with_prelude: u64,
    /// `:` keep-alive comment lines.
    pub keepalive_comments: u64,
    /// Requests whose first token was reasoning, with the answer (`content`) coming later.
    pub reasoning_first: u64,
}

impl StreamPreamble {
    pub fn add(&mut self, other: &StreamPreamble) {
        self.requests += other.requests;
        self.empty_preludes += other.empty_preludes;
        self.requests_with_prelude += other.requests_with_prelude;
        self.keepalive_comments += other.keepalive_comments;
        self.reasoning_first += other.reasoning_first;
    }
}

/// Output length asked for (`max_tokens`) versus produced, over successful requests that sent a
/// cap. A request "stopped early" when it produced fewer tokens than its cap.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct OutputLength {
    pub requests: u64,
    /// Sums over those requests.
    pub requested_tokens: u64,
    pub produced_tokens: u64,
    pub stopped_early: u64,
    pub requested_mean: f64,
    pub produced_mean: f64,
    /// `stopped_early / requests`.
    pub stopped_early_share: f64,
}

impl OutputLength {
    /// Recomputes the means and the share from the sums.
    pub fn finish(&mut self) {
        let per = |n: u64| {
            if self.requests > 0 {
                n as f64 / self.requests as f64
            } else {
                0.0
            }
        };
        self.requested_mean = per(self.requested_tokens);
        self.produced_mean = per(self.produced_tokens);
        self.stopped_early_share = per(self.stopped_early);
    }

    pub fn add(&mut self, other: &OutputLength) {
        self.requests += other.requests;
        self.requested_tokens += other.requested_tokens;
        self.produced_tokens += other.produced_tokens;
        self.stopped_early += other.stopped_early;
        self.finish();
    }
}

/// How far a target's token counts can be trusted (README, "Token counts you can check"): the
/// server's usage against the client's own count of the streamed text and against the number
/// of content events, and answers longer than the `max_tokens` they asked for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct TokenCheck {
    /// Successful requests with usage whose text drover also counted (the first 200 of the
    /// scenario and 1 in 64 after them, by request index; not those that reasoned, whose usage
    /// counts reasoning a server may hide or summarize).
    pub checked: u64,
    /// The server's output tokens and drover's own count, over the checked requests.
    pub usage_tokens: u64,
    pub client_tokens: u64,
    /// `usage_tokens / client_tokens` (absent without a checked request with text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_to_client: Option<f64>,
    /// Checked streams whose usage claimed fewer tokens than the content events they sent
    /// (each content event carries at least one token).
    pub usage_below_events: u64,
    /// Successful requests that sent `max_tokens` and whose output count (usage, or drover's
    /// estimate without usage) exceeds it.
    pub over_max_tokens: u64,
    /// What does not add up, in words; empty when nothing is flagged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

impl TokenCheck {
    /// Usage within this factor of drover's own count (either way) is not flagged: tokenizers of
    /// different model families differ on one text by up to about a third.
    pub const TOLERANCE: f64 = 1.5;
    /// Fewer checked requests than this flag nothing about the usage ratio.
    pub const MIN_CHECKED: u64 = 5;

    /// Whether request `index` is one whose text drover counts beside the server's usage.
    pub fn samples(index: u64) -> bool {
        index < 200 || index.is_multiple_of(64)
    }

    /// Adds a successful request: `capped` is the `max_tokens` it sent.
    pub fn observe(
        &mut self,
        output_tokens: u64,
        client_tokens: Option<u64>,
        content_events: u64,
        capped: Option<u32>,
    ) {
        if let Some(counted) = client_tokens {
            self.checked += 1;
            self.usage_tokens = self.usage_tokens.saturating_add(output_tokens);
            self.client_tokens = self.client_tokens.saturating_add(counted);
            self.usage_below_events += u64::from(output_tokens < content_events);
        }
        if capped.is_some_and(|cap| output_tokens > u64::from(cap)) {
            self.over_max_tokens += 1;
        }
    }

    pub fn add(&mut self, other: &TokenCheck) {
        self.checked += other.checked;
        self.usage_tokens = self.usage_tokens.saturating_add(other.usage_tokens);
        self.client_tokens = self.client_tokens.saturating_add(other.client_tokens);
        self.usage_below_events += other.usage_below_events;
        self.over_max_tokens += other.over_max_tokens;
    }

    /// Computes the ratio and the flags from the counts; `capped_requests` is how many
    /// successful requests sent `max_tokens` (`OutputLength::requests`).
    pub fn finish(&mut self, capped_requests: u64) {
        self.usage_to_client =
            (self.client_tokens > 0).then(|| self.usage_tokens as f64 / self.client_tokens as f64);
        self.flags.clear();
        if let Some(ratio) = self.usage_to_client {
            let outside = !(1.0 / Self::TOLERANCE..=Self::TOLERANCE).contains(&ratio);
            if outside && self.checked >= Self::MIN_CHECKED {
                self.flags.push(format!(
                    "the server's usage claims {ratio:.2}x the output tokens drover counts in the text it streamed ({} against {} over {} requests; tolerance {:.2}x to {:.2}x): tokens/s and TPOT rest on the server's count",
                    self.usage_tokens,
                    self.client_tokens,
                    self.checked,
                    1.0 / Self::TOLERANCE,
                    Self::TOLERANCE
                ));
            }
        }
        if self.usage_below_events > 0 {
            self.flags.push(format!(
                "{} of {} checked streams claimed fewer usage tokens than the content events they sent",
                self.usage_below_events, self.checked
            ));
        }
        if self.over_max_tokens > 0 {
            self.flags.push(format!(
                "{} of {capped_requests} answers counted more output tokens than their max_tokens (a server that ignores the cap, or, without usage, a tokenizer that does not match the model)",
                self.over_max_tokens
            ));
        }
    }

    /// Whether anything is flagged.
    pub fn flagged(&self) -> bool {
        !self.flags.is_empty()
    }
}

/// Successful requests that started with a shared prefix; `cache_hits` of them reported cached
/// input tokens (their TTFT is `ttft_cache_hit` in `latency_ms`, the others' `ttft_cache_miss`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct SharedPrefixCounts {
    pub requests: u64,
    pub cache_hits: u64,
    /// Cached input tokens those requests reported.
    pub cached_input_tokens: u64,
}

impl SharedPrefixCounts {
    pub fn add(&mut self, other: &SharedPrefixCounts) {
        self.requests += other.requests;
        self.cache_hits += other.cache_hits;
        self.cached_input_tokens += other.cached_input_tokens;
    }
}

/// Multi-turn sessions: a session starts with its first turn's request and completes when its
/// last turn succeeds (a failed turn ends it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct SessionCounts {
    pub started: u64,
    pub completed: u64,
    /// Per turn (1-based): requests sent and succeeded.
    pub turns: Vec<TurnCounts>,
}

/// One turn index's requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct TurnCounts {
    pub turn: u32,
    pub sent: u64,
    pub succeeded: u64,
}

impl SessionCounts {
    /// Counts one request of turn `index` (0-based) of `of`.
    pub fn count(&mut self, index: u32, of: u32, succeeded: bool) {
        if index == 0 {
            self.started += 1;
        }
        if succeeded && index + 1 == of {
            self.completed += 1;
        }
        let turn = index + 1;
        let at = match self.turns.iter().position(|t| t.turn == turn) {
            Some(at) => at,
            None => {
                self.turns.push(TurnCounts {
                    turn,
                    ..TurnCounts::default()
                });
                self.turns.sort_by_key(|t| t.turn);
                self.turns
                    .iter()
                    .position(|t| t.turn == turn)
                    .expect("just added")
            }
        };
        self.turns[at].sent += 1;
        self.turns[at].succeeded += u64::from(succeeded);
    }

    pub fn add(&mut self, other: &SessionCounts) {
        self.started += other.started;
        self.completed += other.completed;
        for theirs in &other.turns {
            match self.turns.iter_mut().find(|t| t.turn == theirs.turn) {
                Some(mine) => {
                    mine.sent += theirs.sent;
                    mine.succeeded += theirs.succeeded;
                }
                None => self.turns.push(theirs.clone()),
            }
        }
        self.turns.sort_by_key(|t| t.turn);
    }
}

/// Cost of a group's successful requests, in the run's reporting currency.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct CostResults {
    pub currency: String,
    /// The pricing-table entry the target was priced as.
    pub model: String,
    /// Fraction off the list price that was applied: `1 − total / list` (for a routed target, a
    /// blend of its live and Batch API parts).
    pub discount: f64,
    pub total: f64,
    /// The same requests at list price (no discount).
    #[serde(default)]
    pub list: f64,
    /// The same requests at the official list price paid at the market rate (no discount, no
    /// relay's bill rate).
    #[serde(default)]
    pub official: f64,
    /// `1 − total / official`: what this target saves against the official price (a relay at
    /// ¥1 per list dollar, with ¥7.3 to the dollar, saves 86.3%); negative when it costs more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saving: Option<f64>,
    pub input: f64,
    pub output: f64,
    /// Requests priced, and how many of them had token counts estimated (no usage from the
    /// server), which makes their cost an estimate too.
    pub requests_priced: u64,
    pub requests_estimated: u64,
    /// `total / requests_priced`.
    pub per_request: f64,
    /// `total / output tokens × 1e6` (0 without output).
    pub per_million_output_tokens: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<CostProjection>,
}

/// A cost scaled to a daily volume.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct CostProjection {
    /// `requests_per_day`, `output_tokens_per_day` or `tokens_per_day`.
    pub basis: String,
    pub volume: f64,
    pub per_day: f64,
    /// 30 days.
    pub per_month: f64,
}

/// Request counts. `succeeded + failed` equals `sent` minus requests still in flight when an
/// interrupt ended the run (`aborted`). `failed` includes the `throttled` (429) ones, which are
/// also counted apart so that throttling and errors can be judged separately.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct RequestCounts {
    pub sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    #[serde(default)]
    pub throttled: u64,
    pub aborted: u64,
    /// Requests sent during warm-up, not counted anywhere else.
    pub warmup_excluded: u64,
}

/// How often requests were tried again.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct RetryCounts {
    /// Requests that needed more than one attempt.
    pub requests_retried: u64,
    /// Failed attempts that were retried, by error class.
    pub attempts_failed: BTreeMap<String, u64>,
}

/// What the requests of a group carried: images (by the provider's formula for the target's
/// API) and bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct InputTotals {
    /// Images attached to the requests sent.
    pub images: u64,
    /// Their tokens by the provider's documented formula (part of `tokens.input` when the
    /// server reports usage).
    pub image_tokens: u64,
    /// Bytes of the request bodies sent (a Batch API request: its input line).
    pub request_bytes: u64,
}

/// Token totals over successful requests and where the counts came from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct TokenTotals {
    pub output: u64,
    /// Input tokens as reported by the server's usage (0 when never reported).
    pub input: u64,
    /// Of `input`, tokens read from the provider's prompt cache.
    #[serde(default)]
    pub cached_input: u64,
    /// How many requests' counts came from `usage`, from counting chunks, or from an estimate.
    pub source_usage: u64,
    pub source_chunks: u64,
    pub source_estimated: u64,
    /// Requests whose counts came from the offline tokenizer (the server sent no usage).
    #[serde(default)]
    pub source_tokenizer: u64,
    /// Requests without usage counted as their `max_tokens`: they stopped at the cap, or the
    /// tokenizer counted more than the cap.
    #[serde(default)]
    pub source_max_tokens: u64,
}

impl TokenTotals {
    /// Successful requests whose output count is the client's estimate (no usage): every
    /// figure made from output tokens (tokens/s, TPOT, output length, cost) is an estimate for
    /// them.
    pub fn estimated(&self) -> u64 {
        self.source_chunks + self.source_estimated + self.source_tokenizer + self.source_max_tokens
    }
}

/// Throughput over the measured window (first send to last completion).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Throughput {
    pub window_s: f64,
    /// The window on the wall clock (Unix seconds), so that shards' windows can be joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_sent_unix_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_done_unix_s: Option<f64>,
    pub requests_per_s: f64,
    pub output_tokens_per_s: f64,
}

/// Summary statistics of one latency metric, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct LatencyStat {
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p99_9: f64,
    /// For a metric with many samples per request (`itl`, one per token gap): how many requests
    /// the samples came from. Gaps of one stream are correlated, so intervals and verdicts use
    /// this, not `count`, as the sample size (README, "Statistics").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
}

impl LatencyStat {
    /// The number of independent samples behind the statistic: the requests for a per-gap
    /// metric, `count` otherwise.
    pub fn sample_size(&self) -> u64 {
        self.requests.unwrap_or(self.count).min(self.count)
    }
}

/// One point of the time series: the requests that completed in `[second, second + step)`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SeriesPoint {
    /// Seconds since the series origin (the wall-clock second the run started in).
    pub second: u64,
    pub completed: u64,
    pub failed: u64,
    pub output_tokens: u64,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    /// The point's TTFT histogram (µs, 2 significant digits, encoded like the others), so that
    /// merged series have exact percentiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_histogram: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(usage: u64, client: u64, requests: u64) -> TokenCheck {
        let mut check = TokenCheck::default();
        for _ in 0..requests {
            check.observe(usage, Some(client), 1, Some(1_000));
        }
        check.finish(requests);
        check
    }

    #[test]
    fn usage_within_the_tolerance_of_drovers_count_is_not_flagged() {
        assert!(!checked(14, 10, 10).flagged(), "1.4x is within 1.5x");
        assert!(!checked(7, 10, 10).flagged(), "0.7x is within 1/1.5");
        assert!(checked(16, 10, 10).flagged(), "1.6x is beyond 1.5x");
        assert!(checked(6, 10, 10).flagged(), "0.6x is beyond 1/1.5");
        // Too few checked requests to say anything about the ratio.
        assert!(!checked(100, 10, TokenCheck::MIN_CHECKED - 1).flagged());
        // Merged parts give the ratio of the sums.
        let mut merged = checked(20, 10, 5);
        merged.add(&checked(10, 10, 5));
        merged.finish(10);
        assert_eq!(merged.usage_to_client, Some(1.5));
    }

    #[test]
    fn answers_over_their_cap_and_usage_below_the_events_are_flagged() {
        let mut check = TokenCheck::default();
        check.observe(40, None, 40, Some(32));
        check.observe(8, Some(8), 10, Some(32));
        check.observe(20, None, 20, None);
        check.finish(2);
        assert_eq!((check.over_max_tokens, check.usage_below_events), (1, 1));
        assert_eq!(check.flags.len(), 2, "{:?}", check.flags);
        assert!(check.flags[1].starts_with("1 of 2 answers counted more output tokens"));
    }
}
