//! The migration sections of `drover.results/v1`: each phase's outcome and gates (kept in the
//! phase's results and in `migration.json`) and the rollout's verdict (data and the words that
//! name them; the rollout itself runs in [`crate::app::migration`]).

use serde::{Deserialize, Serialize};

/// One gate checked after a phase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct GateResult {
    /// `max_error_rate`, `max_regression.ttft.p99`, `min_agreement`, …
    pub gate: String,
    /// What the phase measured (`None`: nothing to measure, which fails the gate).
    pub measured: Option<f64>,
    pub threshold: f64,
    pub passed: bool,
    /// Too few requests to decide (never a pass): the phase holds the rollout.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insufficient: bool,
    /// For an insufficient gate: the requests each side it measures needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_needed: Option<u64>,
    /// How the value was measured, or why it could not be.
    pub detail: String,
}

impl GateResult {
    /// `pass`, `FAIL` or `INSUFFICIENT`, as the terminal and the reports show it.
    pub fn word(&self) -> &'static str {
        if self.passed {
            "pass"
        } else if self.insufficient {
            "INSUFFICIENT"
        } else {
            "FAIL"
        }
    }

    /// `max_error_rate: measured 3.1% > 1.0%`.
    pub fn describe(&self) -> String {
        let show = |v: f64| format_gate_value(&self.gate, v);
        if self.insufficient {
            return format!(
                "{}: insufficient sample, {}{}",
                self.gate,
                self.detail,
                self.samples_needed
                    .map_or(String::new(), |n| format!("; {n} needed to decide"))
            );
        }
        let relation = if self.passed {
            if self.gate.starts_with("min_") {
                "≥"
            } else {
                "≤"
            }
        } else if self.gate.starts_with("min_") {
            "<"
        } else {
            ">"
        };
        match self.measured {
            Some(value) => format!(
                "{}: measured {} {relation} {} ({})",
                self.gate,
                show(value),
                show(self.threshold),
                self.detail
            ),
            None => format!(
                "{}: not measured, threshold {} ({})",
                self.gate,
                show(self.threshold),
                self.detail
            ),
        }
    }
}

/// A gate's value as people read it: rates and regressions in percent, costs in currency
/// units, ratios and similarities as plain numbers.
fn format_gate_value(gate: &str, value: f64) -> String {
    if gate.ends_with("_rate") || gate.starts_with("max_regression") {
        format!("{:.2}%", value * 100.0)
    } else if gate == "max_cost" {
        crate::units::money(value)
    } else {
        format!("{value:.3}")
    }
}

/// What one phase was and how its gates came out (kept in the phase's results and in
/// `migration.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PhaseOutcome {
    /// 1-based.
    pub index: usize,
    pub name: String,
    pub share: f64,
    pub mirror: f64,
    pub primary: String,
    pub candidate: String,
    /// Requests each side finished (warm-up excluded).
    pub primary_requests: u64,
    pub candidate_requests: u64,
    pub pairs: u64,
    /// Median candidate − primary TTFT and E2E over the pairs, in ms.
    pub ttft_difference_ms: Option<f64>,
    pub e2e_difference_ms: Option<f64>,
    pub gates: Vec<GateResult>,
    pub passed: bool,
    /// How many times its written length the phase ran, so that its gates would get their
    /// minimum samples (1: as written; at most `extend_up_to`).
    #[serde(default = "as_written")]
    pub extended_by: f64,
    /// The phase's results file, relative to the migration's folder (set once written, so
    /// absent from the phase's own results file).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub results: String,
}

impl PhaseOutcome {
    /// `pass`, `FAIL` (a gate failed) or `INSUFFICIENT` (no gate failed, one had too few
    /// requests).
    pub fn word(&self) -> &'static str {
        if self.passed {
            "pass"
        } else if self.gates.iter().any(|g| !g.passed && !g.insufficient) {
            "FAIL"
        } else {
            "INSUFFICIENT"
        }
    }
}

fn as_written() -> f64 {
    1.0
}

/// The end of a rollout.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutVerdict {
    /// Every phase passed its gates.
    Promote,
    /// A gate failed: go back to the primary.
    Rollback,
    /// Interrupted before every phase ran: no verdict.
    Interrupted,
    /// A budget was reached before every phase ran: no verdict.
    BudgetExhausted,
    /// A phase ended with a gate on too few requests (even extended up to `extend_up_to`): the
    /// rollout stops without promoting.
    Insufficient,
}

impl RolloutVerdict {
    pub fn name(self) -> &'static str {
        match self {
            RolloutVerdict::Promote => "promote",
            RolloutVerdict::Rollback => "rollback",
            RolloutVerdict::Interrupted => "interrupted",
            RolloutVerdict::BudgetExhausted => "budget_exhausted",
            RolloutVerdict::Insufficient => "insufficient",
        }
    }
}

/// A whole migration, as `migration.json` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct RolloutResults {
    pub scenario: String,
    pub primary: String,
    pub candidate: String,
    pub verdict: RolloutVerdict,
    /// One line on why.
    pub reason: String,
    /// The phase that failed, and its first failed gate (for `rollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_gate: Option<GateResult>,
    /// Phases planned; `phases` holds those that ran.
    pub phases_planned: usize,
    /// Phases that were `degraded` (drover itself failed on some requests): their gates rest on
    /// figures that are not the endpoints' alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degraded_phases: Vec<String>,
    pub phases: Vec<PhaseOutcome>,
}
