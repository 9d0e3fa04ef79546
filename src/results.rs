//! The results document (`drover.results/v1`): what a run measured, versioned, serializable, and
//! self-sufficient — every later report, comparison and merge reads only this.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Schema identifier written into every results file.
pub const SCHEMA: &str = "drover.results/v1";

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

/// The scenario as run (secrets never included).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub source: String,
    pub seed: u64,
    pub as_run: serde_json::Value,
}

/// The machine that ran the load.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Environment {
    pub host: String,
    pub os: String,
    pub cores: usize,
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
        }
    }
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every scheduled request was sent and finished.
    Completed,
    /// Stopped early by an interrupt; the results cover what finished before it.
    Interrupted,
    /// A checkpoint written while the run was still going (what is left if it was killed).
    InProgress,
}

/// One target's results: all classes together, then each class.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetResults {
    pub name: String,
    pub model: String,
    pub mode: String,
    /// `"embedded-mock"` or the base URL.
    pub endpoint: String,
    pub summary: GroupResults,
    pub classes: Vec<ClassResults>,
    /// One point per second of the run, by completion time.
    pub series: Vec<SeriesPoint>,
    /// Per stage of a stepped or ramped open loop (empty for a single stage).
    #[serde(default)]
    pub stages: Vec<StageResults>,
}

/// One stage of a stepped profile: requests whose intended send time fell in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassResults {
    pub name: String,
    #[serde(flatten)]
    pub results: GroupResults,
}

/// Counters, latency statistics and histograms of a group of requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    pub throughput: Throughput,
    /// Statistics in milliseconds, keyed by metric name (`ttft`, `itl`, `e2e`, ...).
    pub latency_ms: BTreeMap<String, LatencyStat>,
    /// Each metric's HDR histogram in microseconds, V2 + deflate, base64.
    pub histograms: BTreeMap<String, String>,
}

/// Request counts. `succeeded + failed` equals `sent` minus requests still in flight when an
/// interrupt ended the run (`aborted`). `failed` includes the `throttled` (429) ones, which are
/// also counted apart so that throttling and errors can be judged separately.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RetryCounts {
    /// Requests that needed more than one attempt.
    pub requests_retried: u64,
    /// Failed attempts that were retried, by error class.
    pub attempts_failed: BTreeMap<String, u64>,
}

/// Token totals over successful requests and where the counts came from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenTotals {
    pub output: u64,
    /// Input tokens as reported by the server's usage (0 when never reported).
    pub input: u64,
    /// How many requests' counts came from `usage`, from counting chunks, or from an estimate.
    pub source_usage: u64,
    pub source_chunks: u64,
    pub source_estimated: u64,
}

/// Throughput over the measured window (first send to last completion).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Throughput {
    pub window_s: f64,
    pub requests_per_s: f64,
    pub output_tokens_per_s: f64,
}

/// Summary statistics of one latency metric, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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
}

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SeriesPoint {
    /// Seconds since the run started.
    pub second: u64,
    pub completed: u64,
    pub failed: u64,
    pub output_tokens: u64,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
}
