//! Command-line interface: clap types and their help texts. Turns arguments into library calls;
//! measures nothing itself.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use drover::scenario::overrides::{Origin, Override};

/// drover — load testing and benchmarking for LLM inference endpoints.
#[derive(Debug, Parser)]
#[command(name = "drover", version = drover::results::BUILD, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario: send its traffic, print a summary, write results JSON.
    #[command(after_help = super::exit::run_help())]
    Run(RunArgs),
    /// Check a scenario file and print what it would do; sends nothing.
    #[command(after_help = "Examples:
  drover validate scenarios/my-provider.toml
  drover validate scenarios/quickstart.toml --set load.rate=40

A key variable that is not set is a warning here (exit 0); drover run refuses it.
Exit codes: 0 the scenario is valid; 2 it is not (each problem with file:line:column, or the
override it came from); 1 internal error.")]
    Validate(ValidateArgs),
    /// Render saved results (one run, or several side by side) as summary.md, report.html and charts.
    #[command(after_help = "Examples:
  drover report reports/quickstart-20261125T131503983Z/results.json
  drover report before/results.json after/results.json --label before --label after --out compare/

Reads only the results files: nothing is re-run. Exit codes: 0 ok; 2 a results file is missing,
unreadable or not a drover.results/v1 document, or the labels do not match the inputs; 3 the
report could not be written.")]
    Report(ReportArgs),
    /// Compare a run with a baseline run of the same scenario: a CI gate for regressions.
    #[command(after_help = "Examples:
  drover compare scenarios/baselines/ci-gate.json reports/ci-gate-*/results.json
  drover compare base.json now.json --threshold ttft.p99=20% --threshold error_rate=0.005 \\
    --markdown \"$GITHUB_STEP_SUMMARY\" --junit compare.xml

Per target, class and metric (ttft/itl/tpot/e2e p50, p90, p99; error and throttle rates;
requests/s and output tokens/s; cost per 1M output tokens): a metric regressed when it moved the
wrong way beyond its threshold (default: latency and throughput 10%, rates 1 percentage point,
cost 5%) AND a noise test says the move is real (latency: the two runs' distribution-free
quantile intervals do not overlap; rates: two-proportion z-test). Beyond the threshold but
within noise is inconclusive. Exit codes: 0 nothing regressed; 8 something regressed; 2 the
inputs are unusable (unreadable, different scenarios or schemas, no common target) or a flag
is wrong; 3 an output file could not be written.")]
    Compare(CompareArgs),
    /// Merge the results files of a sharded run (`run --shard K/N`) into one results file.
    #[command(after_help = "Example:
  drover merge results/*/results.json -o results/merged.json
  drover merge results/run-1/ -o results/run-1/merged.json
  drover report results/merged.json

Histograms merge exactly; counters and tokens add; time series line up by wall-clock second.
Missing shards are listed in the merged file and its summary, with how far apart the shards
began. The exit code is the merged run's verdict, as `drover run` gives it. Exit codes: 0 ok;
2 the inputs are unreadable or not shards of one run (different scenario, shard count or start
time, a shard given twice, loads begun further apart than --max-start-skew); 3 the merged file,
report or archive could not be written, shards are missing and --require-all was given, a
target never succeeded, or --wait found no results; 6 a shard stopped at its budget; 7 an [slo]
assertion failed on the merged results; 10 a shard is degraded.")]
    Merge(MergeArgs),
    /// Price a request log three ways (all streaming, all Batch API, routed by latency tolerance).
    #[command(after_help = "Example:
  drover audit requests.jsonl --batch-threshold 1h --log-days 7
  drover audit export.jsonl --map input_tokens=meta.tokens_in --map max_wait_time=sla_ms

Each line is a JSON object with model, input_tokens (or prompt_tokens, usage.prompt_tokens),
output_tokens (or completion_tokens, usage.completion_tokens), optionally cached_input_tokens,
max_wait_time (ms the caller can wait; without it a request is interactive) and timestamp
(RFC 3339 or Unix seconds). Bad lines are listed with their number and skipped. Exit codes:
0 ok; 2 the log cannot be read, or a flag or the pricing table is wrong.")]
    Audit(AuditArgs),
    /// Measure this machine's floor: the latency drover itself adds, and the mock's precision.
    #[command(after_help = "Examples:
  drover calibrate
  drover calibrate --rates 100,1000 --duration 10s --streams 1,100

Runs only against embedded mocks on 127.0.0.1. Exit codes: 0 ok; 2 bad flags; 3 a measurement
could not run (a mock could not start, or every request failed).")]
    Calibrate(CalibrateArgs),
    /// Serve the built-in OpenAI-compatible mock LLM server until interrupted.
    #[command(after_help = "Example:
  drover mock --addr 127.0.0.1:8089 --ttft 40ms --itl 8ms
  curl -N http://127.0.0.1:8089/v1/chat/completions -H 'content-type: application/json' \\
    -d '{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}'")]
    Mock(MockArgs),
    /// Keep runs' headline figures in a SQLite file and render their trends.
    #[command(subcommand)]
    History(HistoryCommand),
    /// Print the JSON Schema of the results document (drover.results/v1) on stdout.
    #[command(after_help = "Example:
  drover schema > results.schema.json
The same schema is published in the repository as docs/results.schema.json.")]
    Schema,
    /// Print a shell completion script for drover on stdout.
    #[command(after_help = "Examples:
  drover completions bash > /etc/bash_completion.d/drover
  drover completions zsh > \"${fpath[1]}/_drover\"")]
    Completions(CompletionsArgs),
    /// Print drover's manual page (roff) on stdout, or write a page per command into a folder.
    #[command(after_help = "Examples:
  drover man > drover.1 && man ./drover.1
  drover man --out /usr/local/share/man/man1   # drover.1, drover-run.1, drover-validate.1, ...")]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write drover.1 and a drover-COMMAND.1 page for each command into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (TOML). Without it, a quick run from --url or --mock and the flags
    /// below ("Quick run").
    #[arg(required_unless_present_any = ["url", "mock"])]
    pub scenario: Option<PathBuf>,
    #[command(flatten)]
    pub quick: QuickArgs,
    /// Print the scenario as it would run (overrides applied, a quick run written as a file) as
    /// TOML on stdout, and exit without sending anything.
    #[arg(long)]
    pub print_scenario: bool,
    /// Folder under which the run's report folder (results.json, summary.md, report.html,
    /// charts/) is created.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Do not print live progress on stderr.
    #[arg(long)]
    pub no_progress: bool,
    /// Colours in the live progress: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Skip the one-request-per-target check of key, model and mode before the load.
    #[arg(long)]
    pub no_preflight: bool,
    /// How often results so far are saved to results.json while the run goes on.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub checkpoint_every: std::time::Duration,
    /// Also write every finished request as a JSON line to requests.jsonl in the report folder,
    /// streamed as requests finish (off by default: results hold histograms, not samples).
    #[arg(long)]
    pub export_requests: bool,
    /// Also write CSV: every finished request to requests.csv (the fields of requests.jsonl,
    /// streamed as requests finish) and one row per target and class to groups.csv.
    #[arg(long)]
    pub csv: bool,
    /// Send only shard K of N of the load (0-based K; e.g. 0/4 … 3/4). Without it, the shard is
    /// taken from JOB_COMPLETION_INDEX and DROVER_SHARD_COUNT when JOB_COMPLETION_INDEX is set.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<drover::shard::Shard>,
    /// Spend cap for the whole run in the reporting currency (overrides `[cost] budget`).
    #[arg(long)]
    pub budget: Option<f64>,
    /// Start even though the projected cost exceeds a budget (the cap still stops the run).
    #[arg(long)]
    pub allow_over_budget: bool,
    /// Run with a budget although some target is unpriced (its spend is not counted).
    #[arg(long)]
    pub allow_unpriced: bool,
    /// Start the load at this time (RFC 3339 with a zone, e.g. 2026-11-25T16:00:00Z), so that
    /// shards on different machines begin together. Preflight runs before the wait.
    #[arg(long, value_parser = parse_start_at)]
    pub start_at: Option<std::time::SystemTime>,
    /// Override a value of the scenario: a dotted key (load.rate, targets.NAME.base_url,
    /// classes.NAME.max_tokens) and a value, read as TOML or else as a string (repeatable; after
    /// any DROVER_SET_* environment variable, each of which holds one KEY=VALUE). Results record
    /// every override.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
    pub sets: Vec<Override>,
    /// Exit 0 once the results are written, whatever their verdict: a stop at the budget (6), a
    /// failed SLO (7), a migration's rollback (9) or insufficient (11), a degraded run (10). The
    /// verdict stays in results.json and the summary. For shard workers (a Kubernetes Indexed
    /// Job) whose run's verdict `drover merge` decides on the merged results.
    #[arg(long)]
    pub exit_zero_on_verdict: bool,
    /// Serve drover's live figures (requests by outcome and class, in flight, TTFT/ITL/E2E and
    /// schedule-lag histograms, output tokens, spend) in Prometheus text at
    /// http://ADDR/metrics during the run (e.g. 127.0.0.1:9464; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Keep serving the final figures this long after the run, so that a last scrape sees them.
    #[arg(long, default_value = "0s", value_parser = parse_duration, requires = "metrics_addr")]
    pub metrics_linger: std::time::Duration,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl From<Color> for drover::app::progress::ColorChoice {
    fn from(color: Color) -> Self {
        match color {
            Color::Auto => Self::Auto,
            Color::Always => Self::Always,
            Color::Never => Self::Never,
        }
    }
}

/// A run without a scenario file: one target, one class of synthetic prompts, one load.
#[derive(Debug, Args)]
#[command(next_help_heading = "Quick run (no scenario file)")]
pub struct QuickArgs {
    /// The endpoint's base URL, up to the API version (http://127.0.0.1:8000/v1).
    #[arg(long, conflicts_with_all = ["scenario", "mock"])]
    pub url: Option<String>,
    /// Send to the embedded mock (its default latencies) instead of a URL.
    #[arg(long, conflicts_with = "scenario")]
    pub mock: bool,
    /// The model to ask for.
    #[arg(long, conflicts_with = "scenario", required_unless_present_any = ["scenario", "mock"])]
    pub model: Option<String>,
    /// The API the endpoint speaks (default openai: chat completions).
    #[arg(long, conflicts_with = "scenario", value_parser = drover::scenario::quick::APIS)]
    pub api: Option<String>,
    /// How answers are asked for (default stream).
    #[arg(long, conflicts_with = "scenario", value_parser = drover::scenario::quick::MODES)]
    pub mode: Option<String>,
    /// Open loop: requests per second, whatever the server does.
    #[arg(long, conflicts_with_all = ["scenario", "users"], value_parser = parse_requests_per_second)]
    pub rate: Option<f64>,
    /// Open loop's arrivals: poisson (exponential gaps) or constant.
    #[arg(long, requires = "rate", value_parser = drover::scenario::quick::ARRIVALS)]
    pub arrival: Option<String>,
    /// Closed loop: concurrent users, each sending its next request when the last one ends
    /// (default 1 when neither --rate nor --users is given).
    #[arg(long, conflicts_with = "scenario", value_parser = clap::value_parser!(u32).range(1..))]
    pub users: Option<u32>,
    /// How long the load runs (default 10s when neither --duration nor --requests is given).
    #[arg(long, conflicts_with_all = ["scenario", "requests"], value_parser = parse_duration_text)]
    pub duration: Option<String>,
    /// How many requests to send.
    #[arg(long, conflicts_with = "scenario", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Synthetic prompt length in tokens.
    #[arg(long, conflicts_with = "scenario", default_value_t = 128)]
    pub input_tokens: u64,
    /// Output cap per request.
    #[arg(long, conflicts_with = "scenario", default_value_t = 128)]
    pub max_tokens: u32,
    /// The environment variable holding the endpoint's key.
    #[arg(long, conflicts_with_all = ["scenario", "mock"])]
    pub key_env: Option<String>,
    /// Seed of prompts, arrivals and the class mix (written into --print-scenario's file).
    #[arg(long, conflicts_with = "scenario")]
    pub seed: Option<u64>,
}

/// A duration as written (kept as text for the scenario file), checked here.
fn parse_duration_text(text: &str) -> Result<String, String> {
    parse_duration(text).map(|_| text.trim().to_string())
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Open-loop rates (requests per second) at which to measure the floor, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![10.0, 100.0, 1000.0], value_parser = parse_requests_per_second)]
    pub rates: Vec<f64>,
    /// How long each rate runs (the first tenth is warm-up).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: std::time::Duration,
    /// Concurrent streams at which to measure the mock's precision, comma-separated (0 skips it).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1u32, 100, 1000])]
    pub streams: Vec<u32>,
}

fn parse_requests_per_second(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("\"{text}\" is not a number"))?;
    if value.is_finite() && value > 0.0 && value <= 100_000.0 {
        Ok(value)
    } else {
        Err(format!(
            "{value} is not a rate between 0 and 100,000 requests per second"
        ))
    }
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The request log (JSON lines).
    pub log: PathBuf,
    /// Requests that can wait at least this long are batch candidates. The Batch API promises
    /// results within 24 h (most batches finish far sooner).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub batch_threshold: std::time::Duration,
    /// Read a field from another path: FIELD=PATH, dotted for nested objects (repeatable). Fields:
    /// model, input_tokens, output_tokens, cached_input_tokens, max_wait_time, timestamp.
    #[arg(long = "map", value_parser = parse_mapping)]
    pub mappings: Vec<(drover::app::audit::Field, String)>,
    /// Days the log covers (default: from its timestamps, else 1).
    #[arg(long)]
    pub log_days: Option<f64>,
    /// A pricing table (TOML) instead of the built-in one.
    #[arg(long)]
    pub pricing: Option<PathBuf>,
    /// Report costs in this currency (default: the table's).
    #[arg(long)]
    pub currency: Option<String>,
    /// Units of a currency per 1 reporting-currency unit: CODE=RATE (repeatable).
    #[arg(long = "exchange-rate", value_parser = parse_rate)]
    pub exchange_rates: Vec<(String, f64)>,
}

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Add runs' results to the history (a SQLite file, created when missing).
    #[command(after_help = "Examples:
  drover history add reports/quickstart-*/results.json --db perf-history.sqlite
  drover history add results.json --db perf-history.sqlite --commit \"$(git rev-parse HEAD)\" --branch main

Each target's TTFT, ITL, TPOT and E2E percentiles, requests/s, output tokens/s, error and
throttle rates and cost per 1M output tokens are kept, with the commit, branch and label. The
commit and branch default to GITHUB_SHA / CI_COMMIT_SHA and GITHUB_HEAD_REF, GITHUB_REF_NAME /
CI_COMMIT_REF_NAME. Adding the same run twice (scenario, start, host) keeps one. Exit codes: 0
added; 2 a results file or the history is unreadable, or a results file is an unfinished
checkpoint.")]
    Add(HistoryAddArgs),
    /// Render the trends over the last runs of a scenario, flagging slow drifts.
    #[command(after_help = "Example:
  drover history report --db perf-history.sqlite --last 20 --out reports/history

A figure drifted when, over at least 5 completed runs, it moved one way more than chance
explains (Mann-Kendall, p < 0.05) and by at least --drift of its median the worse way
(Theil-Sen slope over the window). Writes history.md, history.html and charts/history.svg|png.
Exit codes: 0 rendered; 2 the history is missing, unreadable or has no run of the scenario;
3 the report could not be written; 8 a figure drifted and --fail-on-drift was given.")]
    Report(HistoryReportArgs),
}

#[derive(Debug, Args)]
pub struct HistoryAddArgs {
    /// Results files (results.json of a run, or a merged file).
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// The history file (SQLite).
    #[arg(long)]
    pub db: PathBuf,
    /// The commit the run measured (default: GITHUB_SHA or CI_COMMIT_SHA).
    #[arg(long)]
    pub commit: Option<String>,
    /// The branch (default: GITHUB_HEAD_REF, GITHUB_REF_NAME or CI_COMMIT_REF_NAME).
    #[arg(long)]
    pub branch: Option<String>,
    /// A free label shown with the run.
    #[arg(long)]
    pub label: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryReportArgs {
    /// The history file (SQLite).
    #[arg(long)]
    pub db: PathBuf,
    /// The scenario whose runs to show (default: the scenario of the run added last).
    #[arg(long)]
    pub scenario: Option<String>,
    /// How many of the latest completed runs to show.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..=10_000))]
    pub last: u64,
    /// The move the worse way a drift needs, relative to the figure's median (e.g. 10%).
    #[arg(long, default_value = "10%", value_parser = parse_share)]
    pub drift: f64,
    /// Folder to write the report into (default: reports/history-<UTC time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit with code 8 when a figure drifted.
    #[arg(long)]
    pub fail_on_drift: bool,
}

/// `10%` or `0.1` as a fraction between 0 and 10.
fn parse_share(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let value = match trimmed.strip_suffix('%') {
        Some(number) => number.trim().parse::<f64>().map(|v| v / 100.0),
        None => trimmed.parse::<f64>(),
    }
    .map_err(|_| format!("\"{text}\" is not a share (write 10% or 0.1)"))?;
    if value.is_finite() && value > 0.0 && value <= 10.0 {
        Ok(value)
    } else {
        Err(format!("{text} is not a share between 0% and 1000%"))
    }
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' results files (results.json of each worker), or folders: a folder stands for
    /// the results.json files in it and its immediate subfolders.
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// The merged results file to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Exit with code 3 when some of the run's shards are missing (the file is still written).
    #[arg(long)]
    pub require_all: bool,
    /// Refuse shards whose loads began further apart than this (their started_at times).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub max_start_skew: std::time::Duration,
    /// Merge shards that began further apart than --max-start-skew (the merged file says so).
    #[arg(long)]
    pub force: bool,
    /// First wait up to this long until every shard's results are final (not in_progress), so
    /// that merge can start together with the workers; then merge what is there. A checkpoint
    /// unchanged for 2 minutes past the agreed start counts as final (its worker died): keep
    /// the workers' --checkpoint-every below that.
    #[arg(long, value_parser = parse_duration)]
    pub wait: Option<std::time::Duration>,
    /// Also render the merged report (report.html, summary.md, charts/) into this folder.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Also write the merged results, the report (with --report) and every shard's results.json
    /// as one .tar.gz file, to take a run out of a cluster with one copy.
    #[arg(long, value_name = "FILE")]
    pub archive: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results files (results.json of a run), one or more.
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Folder to write the report into (default: reports/report-<UTC time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A label per input, in order (default: the input's folder name).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Also write groups.csv: one row per input, target and class.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline's results.json.
    pub baseline: PathBuf,
    /// The current run's results.json.
    pub current: PathBuf,
    /// A threshold for a metric (ttft.p99, error_rate, …) or a kind (latency, throughput, rate,
    /// cost): NAME=10% (relative), NAME=5ms or NAME=0.01 (absolute). Repeatable.
    #[arg(long = "threshold", value_name = "NAME=VALUE")]
    pub thresholds: Vec<String>,
    /// Confidence of the noise tests.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Also write the comparison as Markdown (e.g. to $GITHUB_STEP_SUMMARY; appended to).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Also write JUnit XML: one test case per checked metric.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// Override a value of the scenario: a dotted key (load.rate, targets.NAME.base_url,
    /// classes.NAME.max_tokens) and a value, read as TOML or else as a string (repeatable; after
    /// any DROVER_SET_* environment variable, each of which holds one KEY=VALUE).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
    pub sets: Vec<Override>,
}

fn parse_set(text: &str) -> Result<Override, String> {
    Override::parse(text, Origin::Flag)
}

#[derive(Debug, Args)]
pub struct MockArgs {
    /// Address to listen on (loopback by default; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub addr: SocketAddr,
    /// Time to first token, e.g. 40ms.
    #[arg(long, default_value = "40ms", value_parser = parse_duration)]
    pub ttft: std::time::Duration,
    /// Standard deviation of the time to first token (normal distribution); 0 = fixed.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub ttft_spread: std::time::Duration,
    /// Delay between tokens, e.g. 8ms.
    #[arg(long, default_value = "8ms", value_parser = parse_duration)]
    pub itl: std::time::Duration,
    /// Standard deviation of the inter-token delay (normal distribution); 0 = fixed.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub itl_spread: std::time::Duration,
    /// Tokens per response unless max_tokens is lower.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub output_tokens: u32,
    /// Of each answer's tokens, this many come first as reasoning (reasoning deltas, usage's
    /// reasoning tokens).
    #[arg(long, default_value_t = 0)]
    pub reasoning_tokens: u32,
    /// Send a role-only chunk this long after each request, before the first token.
    #[arg(long, value_parser = parse_duration)]
    pub prelude: Option<std::time::Duration>,
    /// Require `Authorization: Bearer <key>` with the key read from this environment variable.
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Seed for latency and fault draws.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// Inject a fault with a probability per request, e.g. `--fault http_500=0.05` (repeatable;
    /// names as in `[targets.mock.faults]`).
    #[arg(long = "fault", value_parser = parse_fault)]
    pub faults: Vec<(drover::mock::Fault, f64)>,
    /// How long a `stall` fault lasts.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub stall_for: std::time::Duration,
    /// Interval between bytes of a `slow_drip` fault.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub drip_every: std::time::Duration,
    /// Batch API: time from creating a batch to `completed`.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub batch_processing_time: std::time::Duration,
    /// Batch API: fraction of requests that fail (0–1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub batch_failure_rate: f64,
    /// `"mode": "batch"` chat completions: inter-token delay divided by this.
    #[arg(long, default_value_t = 2.0)]
    pub batch_mode_speedup: f64,
    /// Probability (0–1) that a response stops before its max_tokens (unless ignore_eos).
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub early_stop: f64,
    /// Simulate a prompt cache: a request whose earlier messages were seen before reports them
    /// as cached tokens and gets this time to first token.
    #[arg(long, value_parser = parse_duration)]
    pub cache_ttft: Option<std::time::Duration>,
    /// Capacity model: at most this many requests generate at once; the rest queue, and their
    /// time to first token includes the wait.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub decode_slots: Option<u32>,
    /// The HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS it announces (default 200).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_streams: Option<u32>,
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("\"{text}\" is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not between 0 and 1"))
    }
}

fn parse_fault(text: &str) -> Result<(drover::mock::Fault, f64), String> {
    let (name, probability) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PROBABILITY, got \"{text}\""))?;
    let fault = drover::mock::Fault::from_name(name.trim()).ok_or_else(|| {
        format!(
            "unknown fault \"{name}\"; known: {}",
            drover::mock::Fault::ALL.map(|f| f.name()).join(", ")
        )
    })?;
    let probability: f64 = probability
        .trim()
        .parse()
        .map_err(|_| format!("\"{probability}\" is not a number"))?;
    if !(0.0..=1.0).contains(&probability) {
        return Err(format!("probability {probability} is not between 0 and 1"));
    }
    Ok((fault, probability))
}

fn parse_mapping(text: &str) -> Result<(drover::app::audit::Field, String), String> {
    let (name, path) = text
        .split_once('=')
        .ok_or_else(|| format!("expected FIELD=PATH, got \"{text}\""))?;
    let field = drover::app::audit::Field::from_name(name.trim()).ok_or_else(|| {
        format!(
            "unknown field \"{name}\"; known: {}",
            drover::app::audit::Field::ALL.map(|f| f.name()).join(", ")
        )
    })?;
    let path = path.trim();
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!(
            "\"{path}\" is not a dotted path such as usage.prompt_tokens"
        ));
    }
    Ok((field, path.to_string()))
}

fn parse_rate(text: &str) -> Result<(String, f64), String> {
    let (code, rate) = text
        .split_once('=')
        .ok_or_else(|| format!("expected CODE=RATE, got \"{text}\""))?;
    let rate: f64 = rate
        .trim()
        .parse()
        .map_err(|_| format!("\"{rate}\" is not a number"))?;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!("rate {rate} must be > 0"));
    }
    Ok((code.trim().to_string(), rate))
}

fn parse_shard(text: &str) -> Result<drover::shard::Shard, String> {
    drover::shard::Shard::parse(text).map_err(|e| e.to_string())
}

fn parse_start_at(text: &str) -> Result<std::time::SystemTime, String> {
    drover::shard::parse_start_at(text).map_err(|e| e.to_string())
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    drover::scenario::schema::parse_duration(text)
}
