//! What a report says first: verdicts about each run, and for several inputs the differences
//! between them (each input against the first, target by target).

use super::format;
use super::Report;
use crate::results::{GroupResults, RunStatus};

/// How serious a verdict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Fail,
}

/// One headline statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub level: Level,
    pub text: String,
}

/// A compared metric: how to read it from a group and which direction is better.
struct MetricSpec {
    name: &'static str,
    unit: &'static str,
    lower_is_better: bool,
    read: fn(&GroupResults) -> Option<f64>,
}

const COMPARED: [MetricSpec; 8] = [
    MetricSpec {
        name: "TTFT p50",
        unit: "ms",
        lower_is_better: true,
        read: |g| g.latency_ms.get("ttft").map(|s| s.p50),
    },
    MetricSpec {
        name: "TTFT p99",
        unit: "ms",
        lower_is_better: true,
        read: |g| g.latency_ms.get("ttft").map(|s| s.p99),
    },
    MetricSpec {
        name: "E2E p50",
        unit: "ms",
        lower_is_better: true,
        read: |g| g.latency_ms.get("e2e").map(|s| s.p50),
    },
    MetricSpec {
        name: "E2E p99",
        unit: "ms",
        lower_is_better: true,
        read: |g| g.latency_ms.get("e2e").map(|s| s.p99),
    },
    MetricSpec {
        name: "output tokens/s",
        unit: "tok/s",
        lower_is_better: false,
        read: |g| Some(g.throughput.output_tokens_per_s),
    },
    MetricSpec {
        name: "error rate",
        unit: "%",
        lower_is_better: true,
        read: |g| Some(format::error_rate(g) * 100.0),
    },
    MetricSpec {
        name: "throttle rate",
        unit: "%",
        lower_is_better: true,
        read: |g| Some(format::throttle_rate(g) * 100.0),
    },
    MetricSpec {
        name: "cost per 1M output tokens",
        unit: "money",
        lower_is_better: true,
        // Unpriced targets, and groups without output (embeddings), have none: "n/a".
        read: |g| {
            g.cost
                .as_ref()
                .filter(|_| g.tokens.output > 0)
                .map(|c| c.per_million_output_tokens)
        },
    },
];

/// One row of a comparison table: a metric's value in each input.
#[derive(Debug, Clone)]
pub struct DeltaRow {
    pub metric: &'static str,
    pub unit: &'static str,
    pub lower_is_better: bool,
    pub values: Vec<Option<f64>>,
}

impl DeltaRow {
    /// Relative change of input `i` against the first input.
    pub fn change(&self, i: usize) -> Option<f64> {
        let base = self.values.first().copied().flatten()?;
        let value = self.values.get(i).copied().flatten()?;
        if base.abs() < f64::EPSILON {
            return None;
        }
        Some((value - base) / base)
    }

    /// A value formatted for tables.
    pub fn shown(&self, i: usize) -> String {
        match self.values.get(i).copied().flatten() {
            None => "n/a".into(),
            Some(v) if self.unit == "ms" => format::ms(v),
            Some(v) if self.unit == "%" => format!("{v:.2}%"),
            Some(v) if self.unit == "money" => format::money(v),
            Some(v) => format::rate(v),
        }
    }

    /// `+12.3%` / `−4.0%` against the first input.
    pub fn shown_change(&self, i: usize) -> String {
        match self.change(i) {
            None => "n/a".into(),
            Some(c) => format!(
                "{}{:.1}%",
                if c >= 0.0 { "+" } else { "−" },
                c.abs() * 100.0
            ),
        }
    }
}

/// A target present in several inputs, with its metrics side by side.
#[derive(Debug, Clone)]
pub struct TargetComparison {
    pub target: String,
    /// Index of this target in each input.
    pub indices: Vec<usize>,
    pub rows: Vec<DeltaRow>,
}

/// Matches targets across inputs (by name; by position when every input has exactly one) and
/// builds their comparison rows. Empty with fewer than two inputs.
pub fn comparisons(report: &Report) -> Vec<TargetComparison> {
    if report.inputs.len() < 2 {
        return Vec::new();
    }
    let first = &report.inputs[0].results;
    let single = report.inputs.iter().all(|i| i.results.targets.len() == 1);
    let mut out = Vec::new();
    for (first_index, target) in first.targets.iter().enumerate() {
        let indices: Option<Vec<usize>> = report
            .inputs
            .iter()
            .map(|input| {
                if single {
                    Some(0)
                } else {
                    input
                        .results
                        .targets
                        .iter()
                        .position(|t| t.name == target.name)
                }
            })
            .collect();
        let Some(indices) = indices else { continue };
        debug_assert_eq!(indices[0], if single { 0 } else { first_index });
        let rows = COMPARED
            .iter()
            .map(|spec| DeltaRow {
                metric: spec.name,
                unit: spec.unit,
                lower_is_better: spec.lower_is_better,
                values: report
                    .inputs
                    .iter()
                    .zip(&indices)
                    .map(|(input, &t)| (spec.read)(&input.results.targets[t].summary))
                    .collect(),
            })
            .collect();
        out.push(TargetComparison {
            target: target.name.clone(),
            indices,
            rows,
        });
    }
    out
}

/// Differences smaller than this are not called out as headlines.
const NOTABLE_CHANGE: f64 = 0.05;

/// Headline verdicts, most serious first.
pub fn verdicts(report: &Report) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    let many = report.inputs.len() > 1;
    for input in &report.inputs {
        let run = if many {
            format!("{}: ", input.label)
        } else {
            String::new()
        };
        for target in &input.results.targets {
            let summary = &target.summary;
            if summary.requests.succeeded == 0 {
                let top = summary
                    .errors
                    .iter()
                    .max_by_key(|(_, count)| **count)
                    .map_or(String::new(), |(class, count)| {
                        format!(
                            "; most common error: {class} ×{}",
                            format::thousands(*count)
                        )
                    });
                verdicts.push(Verdict {
                    level: Level::Fail,
                    text: format!(
                        "{run}target \"{}\" completed no request successfully ({} sent){top}. No latency figures or charts exist for it.",
                        target.name,
                        format::thousands(summary.requests.sent)
                    ),
                });
            }
        }
        match input.results.status {
            RunStatus::Completed => {}
            RunStatus::Interrupted => verdicts.push(Verdict {
                level: Level::Warn,
                text: format!("{run}the run was interrupted; these are partial results."),
            }),
            RunStatus::InProgress => verdicts.push(Verdict {
                level: Level::Warn,
                text: format!(
                    "{run}this is a checkpoint of a run that never finished; it covers what completed before the checkpoint."
                ),
            }),
            RunStatus::BudgetExhausted => verdicts.push(Verdict {
                level: Level::Warn,
                text: format!(
                    "{run}the run stopped at its spend cap; it covers the requests sent before the cap."
                ),
            }),
            RunStatus::Degraded => verdicts.push(Verdict {
                level: Level::Warn,
                text: format!(
                    "{run}the run is degraded: drover itself failed on some requests (internal or client_resources errors, or unbalanced books); see its warnings."
                ),
            }),
        }
        for warning in &input.results.warnings {
            verdicts.push(Verdict {
                level: Level::Warn,
                text: format!("{run}{warning}"),
            });
        }
    }
    let mut changes = Vec::new();
    for comparison in comparisons(report) {
        for row in &comparison.rows {
            for i in 1..report.inputs.len() {
                if let Some(change) = row.change(i) {
                    if change.abs() >= NOTABLE_CHANGE {
                        changes.push((change, i, comparison.target.clone(), row.clone()));
                    }
                }
            }
        }
    }
    changes.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
    for (change, i, target, row) in changes.into_iter().take(3) {
        let worse = (change > 0.0) == row.lower_is_better;
        verdicts.push(Verdict {
            level: if worse { Level::Warn } else { Level::Info },
            text: format!(
                "{} of \"{target}\": {} is {} {} than {} ({} → {}{})",
                row.metric,
                report.inputs[i].label,
                row.shown_change(i),
                if worse { "worse" } else { "better" },
                report.inputs[0].label,
                row.shown(0),
                row.shown(i),
                if matches!(row.unit, "" | "%" | "money") {
                    String::new()
                } else {
                    format!(" {}", row.unit)
                },
            ),
        });
    }
    // Each run's SLO verdict (the same headline the terminal prints); the absence of SLOs is
    // said only when no run has any.
    let mut any_slo = false;
    for input in &report.inputs {
        let Some(slo) = &input.results.slo else {
            continue;
        };
        any_slo = true;
        let run = if many {
            format!("{}: ", input.label)
        } else {
            String::new()
        };
        let headline = format::slo_lines(&input.results)
            .into_iter()
            .next()
            .unwrap_or_default();
        verdicts.push(Verdict {
            level: match slo.verdict {
                crate::results::slo::Verdict::Fail => Level::Fail,
                crate::results::slo::Verdict::Inconclusive if slo.fail_on_inconclusive => {
                    Level::Fail
                }
                crate::results::slo::Verdict::Inconclusive => Level::Warn,
                crate::results::slo::Verdict::Pass => Level::Info,
            },
            text: format!("{run}{headline}"),
        });
    }
    if let Some(sweep) = &report.sweep {
        let text = super::sweep::knee_line(sweep);
        verdicts.push(Verdict {
            level: if super::sweep::knee_found(sweep) {
                Level::Info
            } else {
                Level::Warn
            },
            text,
        });
    }
    if let Some(rollout) = &report.rollout {
        verdicts.push(Verdict {
            level: match rollout.verdict {
                crate::results::migration::RolloutVerdict::Promote => Level::Info,
                crate::results::migration::RolloutVerdict::Rollback => Level::Fail,
                _ => Level::Warn,
            },
            text: super::format::verdict_line(rollout),
        });
    }
    if !any_slo && report.rollout.is_none() && report.sweep.is_none() {
        verdicts.push(Verdict {
            level: Level::Info,
            text:
                "No SLOs are defined for these runs, so there is no pass/fail verdict on latency."
                    .into(),
        });
    }
    verdicts.sort_by_key(|v| match v.level {
        Level::Fail => 0,
        Level::Warn => 1,
        Level::Info => 2,
    });
    verdicts
}
