//! The paired section of `drover.results/v1`: a shadow run's primary and candidate compared
//! request by request, per class and overall (data only; [`crate::metrics::paired`] computes it).

use serde::{Deserialize, Serialize};

/// The paired comparison of a run, as results keep it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PairedComparison {
    pub primary: String,
    pub candidate: String,
    /// `(all)` first, then each class with pairs.
    pub groups: Vec<PairedGroup>,
}

impl PairedComparison {
    /// The `(all)` group.
    pub fn overall(&self) -> Option<&PairedGroup> {
        self.groups.first()
    }
}

/// The pairs of one class (or all of them).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PairedGroup {
    pub class: String,
    pub pairs: u64,
    /// Pairs where both sides succeeded: the ones latency and agreement compare.
    pub both_succeeded: u64,
    /// Candidate − primary time to first token (pairs where both produced a token).
    pub ttft_difference_ms: Option<PairedDifference>,
    /// Candidate − primary end-to-end latency.
    pub e2e_difference_ms: Option<PairedDifference>,
    pub primary: SideStats,
    pub candidate: SideStats,
    /// Two-proportion test of the error rates (candidate against primary): two-sided p.
    pub error_rate_p_value: Option<f64>,
    pub throttle_rate_p_value: Option<f64>,
    pub agreement: Option<AgreementStats>,
    /// Candidate cost − primary cost over these pairs, when both sides are priced.
    pub cost_difference: Option<f64>,
}

/// One side's outcomes over a group's pairs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
pub struct SideStats {
    pub requests: u64,
    pub succeeded: u64,
    /// Failures other than 429.
    pub errors: u64,
    /// 429s.
    pub throttled: u64,
    /// Failures other than 429, over requests.
    pub error_rate: f64,
    /// 429s over requests.
    pub throttle_rate: f64,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p90_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub e2e_p50_ms: Option<f64>,
    pub e2e_p90_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
    /// Total cost of the side's requests, when priced.
    pub cost: Option<f64>,
    /// Share of responses naming the model asked for (of those naming one).
    pub model_match_rate: Option<f64>,
}

/// The distribution of per-pair differences.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PairedDifference {
    pub pairs: u64,
    pub median: f64,
    /// The distribution-free 95% interval of the median (order statistics: the sign test's
    /// interval); `None` on a side with too few pairs.
    pub median_ci_low: Option<f64>,
    pub median_ci_high: Option<f64>,
    pub mean: f64,
    pub p10: f64,
    pub p90: f64,
    /// Share of pairs where the candidate was faster (a negative difference).
    pub candidate_faster: f64,
    /// Wilcoxon signed-rank test, two-sided p (`None` under 10 non-zero differences).
    pub wilcoxon_p: Option<f64>,
    /// A histogram of the differences between their 1st and 99th percentiles, for charts.
    pub histogram: DifferenceHistogram,
}

/// Equal-width bins of differences; values outside go to `below` and `above`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct DifferenceHistogram {
    pub start: f64,
    pub width: f64,
    pub counts: Vec<u64>,
    pub below: u64,
    pub above: u64,
}

/// Output agreement over the pairs where both sides answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct AgreementStats {
    pub compared: u64,
    pub exact_match_rate: f64,
    /// Mean token F1.
    pub similarity_mean: f64,
    /// The 10th percentile of token F1: how bad the worst answers are.
    pub similarity_p10: f64,
    /// Median of candidate / primary output tokens (pairs where the primary produced some).
    pub length_ratio_median: Option<f64>,
    /// Share of pairs (both with a finish reason) that finished for the same reason.
    pub finish_reason_agreement: Option<f64>,
}
