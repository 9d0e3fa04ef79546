//! The SLO section of `drover.results/v1`: each assertion's measured value, interval, sample
//! size and verdict (data only; [`crate::slo`] evaluates them).

use serde::{Deserialize, Serialize};

/// `pass`, `fail` or `inconclusive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One assertion, evaluated on one target (and class).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct AssertionResult {
    pub assertion: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The point value (`None`: nothing to measure, e.g. no successful request).
    pub measured: Option<f64>,
    /// `ms`, `fraction`, `tokens/s`, `requests/s` or the currency per 1M output tokens.
    pub unit: String,
    pub threshold: f64,
    /// Samples behind the value (latency samples, or finished requests for a rate).
    pub samples: u64,
    /// The two-sided interval at the run's confidence; a side is `None` when the sample is too
    /// small to bound it. Absent for point values (throughput, cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<(Option<f64>, Option<f64>)>,
    pub verdict: Verdict,
    /// For `inconclusive`: how many samples would decide, if the distribution stays as measured
    /// (`None`: no sample size would, at the measured value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_needed: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Every assertion of a run, evaluated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct SloResults {
    pub confidence: f64,
    pub fail_on_inconclusive: bool,
    /// `fail` if any assertion failed, else `inconclusive` if any was, else `pass`.
    pub verdict: Verdict,
    pub assertions: Vec<AssertionResult>,
}

impl SloResults {
    /// Whether the run should exit non-zero for its SLOs.
    pub fn failed(&self) -> bool {
        self.verdict == Verdict::Fail
            || (self.fail_on_inconclusive && self.verdict == Verdict::Inconclusive)
    }
}
