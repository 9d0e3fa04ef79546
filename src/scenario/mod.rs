//! Scenario files: the TOML schema, its validation (errors carry `file:line:column`), defaults, and
//! the [`RunPlan`] the driver runs. Secrets are resolved here from the environment variables the
//! scenario names, and nowhere else.

mod describe;
mod locate;
pub mod overrides;
pub mod quick;
pub mod schema;
mod transform;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue};

pub use describe::{describe, planned_measured_requests, undecidable_assertions};
pub use locate::{line_col, locate, KeyPath};
pub use schema::{Api, Arrival, HttpVersion, LoadKind, ScenarioFile, TargetMode};
pub use transform::apply_shard;
pub use validate::plan_from_file;

use crate::mock::MockConfig;
pub use crate::workload::{ClassLabels, ClassPlan};

/// An API key read from the environment. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    /// The key itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Everything the driver needs, validated, with defaults applied.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub name: String,
    pub source: PathBuf,
    pub seed: u64,
    pub targets: Vec<TargetPlan>,
    pub classes: Vec<ClassPlan>,
    pub load: LoadPlan,
    /// The scenario as written (sensitive header values redacted), for the results file.
    pub scenario_as_run: serde_json::Value,
    /// The overrides applied to the file (`--set load.rate=40`), as given.
    pub overrides: Vec<String>,
    /// Which part of the load this worker sends ([`apply_shard`]); the whole by default.
    pub shard: crate::shard::Shard,
    /// When the load starts (`--start-at`), so that shards begin together; `None` = at once.
    pub start_at: Option<std::time::SystemTime>,
    /// The reporting currency, the pricing table used and the projection.
    pub cost: CostPlan,
    /// SLO assertions to evaluate after the run (`[slo]`).
    pub slo: Option<crate::slo::SloPlan>,
    /// A sweep to find the highest load that meets the SLOs (`[sweep]`).
    pub sweep: Option<SweepPlan>,
    /// A shadow comparison and phased rollout (`[migration]`).
    pub migration: Option<MigrationPlan>,
    /// How this run splits and pairs traffic between a primary and a candidate (set for each
    /// phase of a migration); `None`: every target gets every request on its own schedule.
    pub shadow: Option<ShadowPlan>,
}

/// A validated `[migration]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationPlan {
    /// Target indices.
    pub primary: usize,
    pub candidate: usize,
    pub phases: Vec<PhasePlan>,
    /// How many times its length a phase may grow so that every gate gets its minimum sample
    /// (`[migration] extend_up_to`, default 4; 1 never extends).
    pub extend_up_to: f64,
}

/// One phase of a rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct PhasePlan {
    pub name: String,
    /// The candidate's share of served traffic.
    pub share: f64,
    /// Fraction of requests also sent to the side that does not serve them.
    pub mirror: f64,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub gates: GatePlan,
}

/// A phase's gates (see [`crate::scenario::schema::GatesSpec`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatePlan {
    pub max_error_rate: Option<f64>,
    pub max_throttle_rate: Option<f64>,
    pub max_regression: Vec<RegressionGate>,
    pub min_agreement: Option<f64>,
    pub max_cost_ratio: Option<f64>,
    pub max_cost: Option<f64>,
}

/// The confidence at which a gate's minimum sample is reckoned.
pub const GATE_CONFIDENCE: f64 = 0.95;

impl GatePlan {
    /// The fewest finished requests (primary, candidate) on which every gate can be decided: a
    /// latency regression needs each side to bound its quantile (6 requests for a p50, 368 for
    /// a p99), a rate gate needs the candidate to have enough requests that a clean sample would
    /// show the rate below its maximum (381 for 1%).
    pub fn minimum_samples(&self) -> (u64, u64) {
        use crate::stats::{quantile_minimum, rate_minimum};
        let latency = self
            .max_regression
            .iter()
            .map(|gate| quantile_minimum(gate.quantile, GATE_CONFIDENCE))
            .max()
            .unwrap_or(0);
        let rates = [self.max_error_rate, self.max_throttle_rate]
            .into_iter()
            .flatten()
            .filter_map(|max| rate_minimum(max, GATE_CONFIDENCE))
            .max()
            .unwrap_or(0);
        (latency, latency.max(rates))
    }
}

/// The candidate's latency quantile may exceed the primary's by at most `max` (relative).
#[derive(Debug, Clone, PartialEq)]
pub struct RegressionGate {
    /// As written: `ttft.p99`.
    pub key: String,
    /// The latency histogram (`ttft`, `e2e`, `itl`, …), as SLO assertions name them.
    pub histogram: String,
    /// As a fraction: 0.99.
    pub quantile: f64,
    pub max: f64,
}

/// What the driver needs to split and pair one phase's traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShadowPlan {
    pub primary: usize,
    pub candidate: usize,
    /// Request k is served by the candidate when its draw is below `share`.
    pub share: f64,
    /// ... and also sent to the other side when a second draw is below `mirror`.
    pub mirror: f64,
}

impl RunPlan {
    /// This plan set to run phase `index` of its migration: the phase's length replaces the
    /// load's, and traffic is split and paired as the phase says.
    pub fn at_phase(&self, index: usize) -> Option<RunPlan> {
        let migration = self.migration.as_ref()?;
        let phase = migration.phases.get(index)?;
        let mut plan = self.clone();
        if phase.duration.is_some() || phase.requests.is_some() {
            let growth = self.phase_growth(index);
            plan.load.duration = phase.duration.map(|d| d.mul_f64(growth));
            plan.load.requests = phase.requests.map(|n| (n as f64 * growth).ceil() as u64);
            // Validation allows a migration a single stage, which the phase's length bounds.
            if let LoadShape::Open { stages, .. } = &mut plan.load.shape {
                stages.truncate(1);
                if let Some(stage) = stages.first_mut() {
                    stage.duration = plan.load.duration;
                }
            }
        }
        plan.shadow = Some(ShadowPlan {
            primary: migration.primary,
            candidate: migration.candidate,
            share: phase.share,
            mirror: phase.mirror,
        });
        Some(plan)
    }
}

impl RunPlan {
    /// How many times its written length phase `index` runs: enough that each side is expected
    /// to finish the minimum sample of every gate ([`GatePlan::minimum_samples`]) with a margin
    /// (5%, and three standard deviations of the seeded split), given the share of requests each
    /// side gets (`share` and `mirror`); at least 1 and at most `extend_up_to`.
    pub fn phase_growth(&self, index: usize) -> f64 {
        let cap = self
            .migration
            .as_ref()
            .map_or(1.0, |m| m.extend_up_to.max(1.0));
        self.phase_growth_needed(index).clamp(1.0, cap)
    }

    /// How many times its written length phase `index` would have to run for every gate's
    /// minimum sample (with the margin), before the `[1, extend_up_to]` clamp: above
    /// `extend_up_to`, the phase is expected to end `insufficient`.
    pub fn phase_growth_needed(&self, index: usize) -> f64 {
        let Some(migration) = &self.migration else {
            return 1.0;
        };
        let Some(phase) = migration.phases.get(index) else {
            return 1.0;
        };
        let planned = match (phase.requests, phase.duration) {
            (Some(n), _) => Some(n as f64),
            (None, Some(duration)) => {
                let mut load = self.load.clone();
                load.duration = Some(duration);
                load.requests = None;
                if let LoadShape::Open { stages, .. } = &mut load.shape {
                    stages.truncate(1);
                    if let Some(stage) = stages.first_mut() {
                        stage.duration = Some(duration);
                    }
                }
                load.expected_requests(self.shard)
            }
            (None, None) => None,
        };
        let Some(planned) = planned.filter(|n| *n > 0.0 && n.is_finite()) else {
            return 1.0;
        };
        let (primary_min, candidate_min) = phase.gates.minimum_samples();
        let candidate_part = phase.share + (1.0 - phase.share) * phase.mirror;
        let primary_part = (1.0 - phase.share) + phase.share * phase.mirror;
        // Requests n such that a side with share p of them is expected to finish 5% more than
        // its minimum m with 3 standard deviations of the random split to spare:
        // n·p − 3·sqrt(n·p·(1 − p)) ≥ 1.05·m, solved for sqrt(n).
        let needs = |minimum: u64, part: f64| {
            if minimum == 0 || part <= 0.0 {
                return 0.0;
            }
            let m = minimum as f64 * 1.05;
            let spread = 3.0 * (part * (1.0 - part)).max(0.0).sqrt();
            let root = (spread + (spread * spread + 4.0 * part * m).sqrt()) / (2.0 * part);
            root * root
        };
        let needed = needs(primary_min, primary_part).max(needs(candidate_min, candidate_part));
        needed / planned
    }
}

/// What a sweep varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepOver {
    /// An open loop's arrival rate (requests per second).
    Rate,
    /// A closed loop's concurrent users.
    Users,
}

impl SweepOver {
    pub fn name(self) -> &'static str {
        match self {
            SweepOver::Rate => "rate",
            SweepOver::Users => "users",
        }
    }
}

/// A validated `[sweep]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPlan {
    pub over: SweepOver,
    pub values: Vec<f64>,
    pub step_duration: Duration,
    pub stop_at_first_failure: bool,
}

impl RunPlan {
    /// This plan with its load set to one step of its sweep: `value` requests per second (open
    /// loop) or users (closed loop) for `duration`.
    pub fn at_sweep_step(&self, over: SweepOver, value: f64, duration: Duration) -> RunPlan {
        let mut plan = self.clone();
        plan.sweep = None;
        plan.shadow = None;
        plan.load.duration = Some(duration);
        plan.load.requests = None;
        match (&mut plan.load.shape, over) {
            (LoadShape::Open { stages, .. }, SweepOver::Rate) => {
                *stages = vec![StagePlan {
                    rate: value,
                    end_rate: value,
                    duration: Some(duration),
                }];
            }
            (LoadShape::Closed { users }, SweepOver::Users) => {
                *users = value.round().max(1.0) as u32;
            }
            // Validation pairs rate with an open loop and users with a closed one.
            _ => {}
        }
        plan
    }
}

/// Run-wide cost settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CostPlan {
    /// The reporting currency.
    pub currency: String,
    /// The pricing table's file (or the built-in one), its date and note.
    pub table: String,
    pub as_of: Option<String>,
    pub note: Option<String>,
    pub projection: Option<crate::cost::Projection>,
    /// Spend cap of the whole run (`[cost] budget` or `--budget`).
    pub budget: Option<f64>,
    /// Fractions of the budget that warn when passed.
    pub alerts: Vec<f64>,
    pub allow_unpriced: bool,
}

impl RunPlan {
    /// Every secret value in the plan, so outputs can be scrubbed of them.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self
            .targets
            .iter()
            .filter_map(|t| t.api_key.as_ref().map(|k| k.expose().to_string()))
            .collect();
        for target in &self.targets {
            for (name, value) in &target.headers {
                if is_sensitive_header(name.as_str()) {
                    if let Ok(text) = value.to_str() {
                        secrets.push(text.to_string());
                    }
                }
            }
        }
        secrets.retain(|s| !s.is_empty());
        secrets
    }
}

/// Headers whose values are not secret: every other header value a target sends is treated as
/// one (scrubbed from every text drover writes, and shown as `<redacted>` in the scenario as
/// run), since a relay may take its key under any name (`x-custom-auth`, `x-session: Bearer …`).
pub const PUBLIC_HEADERS: [&str; 9] = [
    "content-type",
    "accept",
    "accept-encoding",
    "user-agent",
    "anthropic-version",
    "anthropic-beta",
    "openai-beta",
    "x-mock-fault",
    "x-request-id",
];

/// Whether a header's value is treated as a secret: every header not in [`PUBLIC_HEADERS`].
pub fn is_sensitive_header(name: &str) -> bool {
    !PUBLIC_HEADERS
        .iter()
        .any(|public| public.eq_ignore_ascii_case(name))
}

/// Where a target's requests go.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A real server; the base URL up to the API version, without a trailing slash.
    Url(String),
    /// The embedded mock, started on loopback for the run.
    Mock(Box<MockConfig>),
}

/// A validated target.
#[derive(Debug, Clone)]
pub struct TargetPlan {
    pub name: String,
    pub endpoint: Endpoint,
    pub api_key_env: Option<String>,
    pub api_key: Option<Secret>,
    pub model: String,
    pub api: Api,
    /// The field that carries a class's `max_tokens`.
    pub output_limit: crate::protocol::OutputLimit,
    /// How the key is sent.
    pub auth: crate::protocol::Auth,
    /// Query parameters on every request, as `name=value` pairs (percent-encoded on the wire).
    pub query: Vec<(String, String)>,
    /// The request URL in place of `base_url` + the API's path: a full URL, or a path from the
    /// endpoint's origin when it starts with `/`.
    pub url: Option<String>,
    pub mode: TargetMode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    pub model_map: std::collections::BTreeMap<String, String>,
    pub timeouts: Timeouts,
    pub http: HttpVersion,
    /// How its HTTP/2 requests spread over connections.
    pub http2: Http2Shape,
    pub tls: TlsOptions,
    pub retry: Option<RetryPolicy>,
    pub stream_usage: bool,
    /// How its tokens are priced; `None` = unpriced (model not in the pricing table).
    pub price: Option<crate::cost::Price>,
    /// Batch API settings (used by `mode = "batch-api"`).
    pub batch: BatchOptions,
    /// Counts tokens when the server sends no usage.
    pub tokenizer: crate::tokenizer::Tokenizer,
    /// Per class (by index): whether its requests go through the Batch API (all of them for
    /// `mode = "batch-api"`, those its routing rules pick otherwise).
    pub batch_classes: Vec<bool>,
    /// The price of requests sent through the Batch API by routing (the Batch API discount).
    pub batch_price: Option<crate::cost::Price>,
    /// This target's own spend cap.
    pub budget: Option<f64>,
    /// The server's metrics, scraped during the run.
    pub server_metrics: Option<ServerMetricsPlan>,
}

impl TargetPlan {
    /// A target's price for a request of a class (its Batch API price when routing sends the class
    /// there).
    pub fn price_for(&self, class: usize) -> Option<&crate::cost::Price> {
        if self.is_routed() && self.class_via_batch(class) {
            self.batch_price.as_ref().or(self.price.as_ref())
        } else {
            self.price.as_ref()
        }
    }

    /// Whether some but not all of the traffic goes through the Batch API.
    pub fn is_routed(&self) -> bool {
        self.mode != TargetMode::BatchApi && self.batch_classes.iter().any(|b| *b)
    }

    /// Whether requests of this class go through the Batch API.
    pub fn class_via_batch(&self, class: usize) -> bool {
        self.batch_classes.get(class).copied().unwrap_or(false)
    }
}

/// `http2 = { connections, max_streams_per_connection }`: the HTTP/2 connections a target's
/// requests spread over, and the streams each may carry beside the server's own limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Shape {
    /// Connections opened at most (default 1).
    pub connections: u32,
    /// Streams one connection carries at once (`None`: as many as the server allows).
    pub max_streams_per_connection: Option<u32>,
}

impl Default for Http2Shape {
    fn default() -> Self {
        Http2Shape {
            connections: 1,
            max_streams_per_connection: None,
        }
    }
}

/// How a `batch-api` target submits and polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOptions {
    pub poll: Duration,
    pub max_poll: Duration,
    pub max_requests: u64,
    pub max_bytes: u64,
    pub completion_window: String,
    pub timeout: Duration,
}

impl BatchOptions {
    /// The defaults for a batch API: its own request and size limits.
    pub fn for_api(batch_api: crate::protocol::batch::BatchApi) -> Self {
        BatchOptions {
            max_requests: batch_api.max_requests(),
            max_bytes: batch_api.max_bytes(),
            ..BatchOptions::default()
        }
    }
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            poll: Duration::from_secs(1),
            max_poll: Duration::from_secs(30),
            max_requests: 50_000,
            max_bytes: 200 * 1024 * 1024,
            completion_window: "24h".into(),
            timeout: Duration::from_secs(25 * 3600),
        }
    }
}

impl TargetPlan {
    /// The model name this target is sent for a class's logical model.
    pub fn model_for(&self, class_model: Option<&str>) -> String {
        match class_model {
            Some(name) => self
                .model_map
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_string()),
            None => self.model.clone(),
        }
    }
}

/// When and how failed requests are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub max_backoff: Duration,
    /// The longest `Retry-After` waited for; a longer one ends the request (see
    /// [`crate::retry_after`] for how the header is read).
    pub max_retry_after: Duration,
}

/// How a target's TLS certificates are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Certificates (DER) trusted in addition to the Mozilla roots.
    pub extra_roots: Vec<Vec<u8>>,
    /// Skip certificate verification entirely.
    pub insecure: bool,
}

/// What to scrape of a target's server, and the bounds of each scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMetricsPlan {
    /// `None`: the target's embedded mock's `/metrics`.
    pub url: Option<String>,
    pub every: Duration,
    pub timeout: Duration,
    pub max_bytes: usize,
    pub max_samples: usize,
    /// Names or `*` patterns of series kept as they are.
    pub keep: Vec<String>,
}

impl ServerMetricsPlan {
    pub const DEFAULT_EVERY: Duration = Duration::from_secs(1);
    pub const DEFAULT_MAX_BYTES: usize = 4 * 1024 * 1024;
    pub const DEFAULT_MAX_SAMPLES: usize = 20_000;
}

/// A target's timeouts (see [`TimeoutKind`](crate::record::TimeoutKind)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// One open-loop stage: constant `rate`, or a linear ramp to `end_rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StagePlan {
    pub rate: f64,
    pub end_rate: f64,
    /// `None` only for a single open-ended stage bounded by a request count.
    pub duration: Option<Duration>,
}

/// The shape of the load.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadShape {
    Open {
        arrival: Arrival,
        stages: Vec<StagePlan>,
        max_in_flight: Option<u32>,
    },
    Closed {
        users: u32,
    },
    /// Replay of a timestamped trace: request k at entry k's offset divided by `speed`.
    Trace {
        trace: std::sync::Arc<crate::workload::Trace>,
        speed: f64,
        max_in_flight: Option<u32>,
    },
}

impl LoadShape {
    /// The most requests in flight at once per target: the users of a closed loop, the
    /// `max_in_flight` of an open loop or trace (`None` without one).
    pub fn concurrency(&self) -> Option<u64> {
        match self {
            LoadShape::Closed { users } => Some(u64::from(*users)),
            LoadShape::Open { max_in_flight, .. } | LoadShape::Trace { max_in_flight, .. } => {
                max_in_flight.map(u64::from)
            }
        }
    }
}

impl LoadShape {
    /// The replayed trace, for a trace load.
    pub fn trace(&self) -> Option<&crate::workload::Trace> {
        match self {
            LoadShape::Trace { trace, .. } => Some(trace),
            _ => None,
        }
    }

    /// The cap on requests in flight of an open loop or trace.
    pub fn max_in_flight(&self) -> Option<u32> {
        match self {
            LoadShape::Open { max_in_flight, .. } | LoadShape::Trace { max_in_flight, .. } => {
                *max_in_flight
            }
            LoadShape::Closed { .. } => None,
        }
    }
}

/// A validated load profile with its stop conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    pub shape: LoadShape,
    /// Stop scheduling after this long (for staged profiles: the sum of the stages).
    pub duration: Option<Duration>,
    /// Stop after this many requests (warm-up included).
    pub requests: Option<u64>,
    pub warmup: Duration,
    pub warmup_requests: u64,
}

impl LoadPlan {
    /// How many requests a shard of this load is expected to send, without walking them: exact for
    /// a closed loop and a trace, the expected count (∫rate dt over the stages, within the load's
    /// duration and request limit) for an open loop. `None` for a closed loop bounded only by time.
    pub fn expected_requests(&self, shard: crate::shard::Shard) -> Option<f64> {
        let whole = match &self.shape {
            LoadShape::Closed { .. } => self.requests? as f64,
            LoadShape::Trace { trace, .. } => trace.entries.len() as f64,
            LoadShape::Open { stages, .. } => {
                let cap = self.duration.map_or(f64::INFINITY, |d| d.as_secs_f64());
                let mut elapsed = 0.0;
                let mut arrivals = 0.0;
                for stage in stages {
                    let length = stage.duration.map_or(f64::INFINITY, |d| d.as_secs_f64());
                    let run = length.min(cap - elapsed);
                    if run <= 0.0 {
                        break;
                    }
                    // A linear ramp from rate to end_rate over the stage's length, cut at `run`.
                    let slope = if length.is_finite() {
                        (stage.end_rate - stage.rate) / length
                    } else {
                        0.0
                    };
                    arrivals += stage.rate * run + slope * run * run / 2.0;
                    elapsed += run;
                }
                match self.requests {
                    Some(limit) => arrivals.min(limit as f64),
                    None => arrivals,
                }
            }
        };
        let whole = match (&self.shape, self.requests) {
            (LoadShape::Trace { .. }, Some(limit)) => whole.min(limit as f64),
            _ => whole,
        };
        Some(whole / f64::from(shard.count.max(1)))
    }
}

/// A scenario problem with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioIssue {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The key path (`load.rate`), empty for syntax errors.
    pub key: String,
    pub message: String,
    /// The override whose value is wrong (`--set load.rate`), named instead of the file's place.
    pub set_by: Option<String>,
}

impl fmt::Display for ScenarioIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.set_by {
            Some(label) => write!(f, "{label}: ")?,
            None => write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?,
        }
        if !self.key.is_empty() {
            write!(f, "{} ", self.key)?;
        }
        write!(f, "{}", self.message)
    }
}

/// Why a scenario cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: cannot read scenario: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", join_issues(.0))]
    Invalid(Vec<ScenarioIssue>),
}

fn join_issues(issues: &[ScenarioIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads, parses and validates a scenario file.
pub fn load(path: &Path) -> Result<RunPlan, ScenarioError> {
    parse(&read(path)?, path)
}

/// A scenario file's text.
pub fn read(path: &Path) -> Result<String, ScenarioError> {
    std::fs::read_to_string(path).map_err(|source| ScenarioError::Unreadable {
        path: path.display().to_string(),
        source,
    })
}

/// Parses and validates scenario text; `path` names the file in errors and anchors datasets.
pub fn parse(text: &str, path: &Path) -> Result<RunPlan, ScenarioError> {
    parse_with_env(text, path, &|name| std::env::var(name).ok())
}

/// [`parse`] with environment variables looked up through `env`.
pub fn parse_with_env(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RunPlan, ScenarioError> {
    let file: ScenarioFile =
        toml::from_str(text).map_err(|error| document_error(&error, text, path))?;
    plan_from_file(file, text, path, env)
}

/// A syntax or type error of a scenario document, at its place in `text`.
fn document_error(error: &toml::de::Error, text: &str, path: &Path) -> ScenarioError {
    let (line, column) = error
        .span()
        .map_or((1, 1), |span| line_col(text, span.start));
    ScenarioError::Invalid(vec![ScenarioIssue {
        file: path.to_path_buf(),
        line,
        column,
        key: String::new(),
        message: error.message().trim().to_string(),
        set_by: None,
    }])
}

/// [`parse_with_env`] with `overrides` applied to the text first. A problem in an override's
/// value names the override (`--set load.rate: must be …`); every other problem keeps its place
/// in the file. The plan records the overrides.
pub fn parse_overridden(
    text: &str,
    path: &Path,
    overrides: &[overrides::Override],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RunPlan, ScenarioError> {
    parse_overridden_text(text, path, overrides, env).map(|(plan, _)| plan)
}

/// [`parse_overridden`], also returning the text as run (the overrides applied).
pub fn parse_overridden_text(
    text: &str,
    path: &Path,
    overrides: &[overrides::Override],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(RunPlan, String), ScenarioError> {
    if overrides.is_empty() {
        return parse_with_env(text, path, env).map(|plan| (plan, text.to_string()));
    }
    // The file's own syntax errors are reported in the file, before any override.
    if let Err(error) = toml::from_str::<toml::Table>(text) {
        return Err(document_error(&error, text, path));
    }
    let (edited, applied) = overrides::apply(text, path, overrides).map_err(|refused| {
        ScenarioError::Invalid(vec![ScenarioIssue {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            key: String::new(),
            message: refused.message,
            set_by: Some(refused.label),
        }])
    })?;
    let file: ScenarioFile = match toml::from_str(&edited) {
        Ok(file) => file,
        Err(error) => {
            return Err(overridden_document_error(
                &error, text, &edited, path, &applied,
            ))
        }
    };
    // Validation locates problems by key path in the file as written.
    let mut plan = plan_from_file(file, text, path, env).map_err(|error| match error {
        ScenarioError::Invalid(issues) => ScenarioError::Invalid(
            issues
                .into_iter()
                .map(|issue| name_the_override(issue, &applied))
                .collect(),
        ),
        other => other,
    })?;
    plan.overrides = overrides.iter().map(ToString::to_string).collect();
    Ok((plan, edited))
}

/// A type error after overrides: the override's when it is on an overridden value's line, the
/// file's (at its place) when the file alone has it too.
fn overridden_document_error(
    error: &toml::de::Error,
    text: &str,
    edited: &str,
    path: &Path,
    applied: &[overrides::Applied],
) -> ScenarioError {
    let line = error.span().map(|span| line_col(edited, span.start).0);
    if let Some(culprit) = applied
        .iter()
        .rev()
        .find(|a| Some(locate(edited, &a.path).0) == line)
    {
        return ScenarioError::Invalid(vec![ScenarioIssue {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            key: String::new(),
            message: error.message().trim().to_string(),
            set_by: Some(culprit.with.label()),
        }]);
    }
    if let Err(own) = toml::from_str::<ScenarioFile>(text) {
        return document_error(&own, text, path);
    }
    let mut issue = match document_error(error, edited, path) {
        ScenarioError::Invalid(mut issues) => issues.remove(0),
        other => return other,
    };
    issue.message = format!("{} (with the overrides applied)", issue.message);
    ScenarioError::Invalid(vec![issue])
}

/// Names the override whose value a validation problem is about.
fn name_the_override(mut issue: ScenarioIssue, applied: &[overrides::Applied]) -> ScenarioIssue {
    if let Some(culprit) = applied.iter().rev().find(|a| a.covers(&issue.key)) {
        if issue.key == culprit.path.to_string() {
            issue.key.clear();
        }
        issue.set_by = Some(culprit.with.label());
    }
    issue
}
