//! What a target's server said about itself during a run: its Prometheus `/metrics` scraped
//! (`server_metrics`), on the same time base as drover's own per-second series, summarised, and
//! judged for saturation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A target's scraped server metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerMetricsResults {
    /// The page scraped (the embedded mock's, or the scenario's `url`).
    pub url: String,
    /// Seconds between scrapes asked for.
    pub every_s: f64,
    /// Whose metric names the page used: `vllm`, `sglang`, `tgi`, `llama.cpp` or `other`.
    pub server: String,
    /// Scrapes read as Prometheus text.
    pub scrapes: u64,
    /// Scrapes that failed, by why: `timeout`, `too_large`, `not_prometheus`, `http_NNN`,
    /// `connection`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed: BTreeMap<String, u64>,
    /// The last failure's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Why scraping stopped before the run ended (the page is not Prometheus text, or is not
    /// there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The wall-clock second the points' `t_s` count from: the target's `series_origin_unix`.
    pub origin_unix: u64,
    /// One point per scrape (thinned to every other one, and again, past 7,200 points).
    pub points: Vec<ServerPoint>,
    pub summary: ServerSummary,
    /// Signs that the server was saturated; empty when none was seen (README, "Server
    /// metrics", for the rule).
    #[serde(default)]
    pub saturation: Vec<String>,
    /// Series kept by `keep`, by metric name: `[t_s, value]` per scrape (summed over label sets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kept: BTreeMap<String, Vec<[f64; 2]>>,
    /// Metric names matching `keep` that were not kept (past 100 names).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kept_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One scrape's figures; `None` where the server does not export one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerPoint {
    /// Seconds since the origin.
    pub t_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<f64>,
    /// KV-cache usage, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_usage: Option<f64>,
    /// Since the previous scrape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_tokens_per_s: Option<f64>,
}

/// The run's server figures in one place.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_running: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_waiting: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_waiting: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_kv_usage: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_kv_usage: Option<f64>,
    /// Over the run: hits / queries counted by the server, or its own rate's mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_hit_rate: Option<f64>,
    /// Over the run, from the first to the last scrape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_tokens_per_s: Option<f64>,
    /// The server's own latency histograms over the run (the first scrape's counts taken away).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<ServerLatency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<ServerLatency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_ms: Option<ServerLatency>,
}

/// A server-side latency histogram, summarised (milliseconds; percentiles interpolated within
/// the server's buckets, as Prometheus' `histogram_quantile` does, so as coarse as they are).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerLatency {
    pub count: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}
