//! `sweep.json`: a sweep's steps (each step's load, SLO verdict and headline figures, and its
//! results file) and the knee it found. The sweep itself runs in [`crate::app::sweep`].

use serde::{Deserialize, Serialize};

use super::slo::Verdict;

/// One step of a sweep, as `sweep.json` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SweepStep {
    /// The offered load: requests per second or users.
    pub value: f64,
    /// The step's SLO verdict.
    pub verdict: Verdict,
    /// The step's results file, relative to the sweep's folder.
    pub results: String,
    pub sent: u64,
    pub requests_per_s: f64,
    pub output_tokens_per_s: f64,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
    /// Failed requests over finished ones (429s included).
    pub failed_fraction: f64,
    /// The schedule's lateness at p99: large values mean the client, not the server, limited
    /// the step.
    pub schedule_lag_p99_ms: Option<f64>,
    /// The assertions that failed or were inconclusive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missed: Vec<String>,
    /// For an inconclusive step: the most samples any undecided assertion needs to decide (if
    /// the distribution stays as measured), so that the advice can say how long a step must be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_needed: Option<u64>,
    /// Whether the first target's server showed saturation in its scraped metrics (its queue
    /// grew, or its KV cache stayed full); absent without `server_metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_saturated: Option<bool>,
}

/// A whole sweep.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SweepResults {
    pub scenario: String,
    /// `rate` or `users`.
    pub over: String,
    pub step_duration_s: f64,
    pub steps: Vec<SweepStep>,
    /// The highest load whose step passed with every step before it passing too; `None` when
    /// the first step already missed.
    pub knee: Option<f64>,
    /// The first load that missed (the knee lies between `knee` and this).
    pub first_miss: Option<f64>,
    /// Stopped by an interrupt: later steps were not run.
    pub interrupted: bool,
    /// Stopped at a budget, which covers the whole sweep: later steps were not run.
    #[serde(default)]
    pub budget_exhausted: bool,
    /// The loads of the steps that were `degraded` (drover itself failed on some requests):
    /// their figures are not the endpoint's alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degraded_steps: Vec<f64>,
}
