//! Phased migration from a primary target to a candidate: run each phase of `[migration]` (the
//! candidate's share of traffic rising, shadow copies paired with the primary's answers),
//! evaluate the phase's gates on what it measured, and stop with `rollback` at the first failed
//! gate — naming the gate, the measured value and the threshold — or end with `promote`.
//! Every phase keeps its results file; `migration.json` holds the verdict and each phase's
//! numbers.

use std::path::{Path, PathBuf};

use crate::driver::{self, DriverError, RunOptions, StopSignal};
pub use crate::report::format::{phase_line, verdict_line};
pub use crate::results::migration::{GateResult, PhaseOutcome, RolloutResults, RolloutVerdict};
use crate::results::{GroupResults, RunResults, RunStatus};
use crate::scenario::{GatePlan, RunPlan, GATE_CONFIDENCE};
use crate::stats::{quantile_minimum, rate_minimum, wilson_interval};

use super::Outcome;

/// Why a migration could not run.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("the scenario has no [migration]")]
    NoMigration,
    #[error("phase \"{phase}\": {source}")]
    Phase { phase: String, source: DriverError },
    #[error("phase \"{phase}\": the results could not be written: {message}")]
    Write { phase: String, message: String },
}

/// A quantile of a group's latency histogram, in ms, and the requests it rests on (`None`
/// without samples).
fn quantile_ms(group: &GroupResults, histogram: &str, quantile: f64) -> Option<(f64, u64)> {
    let decoded = crate::hist::decode_histogram(group.histograms.get(histogram)?).ok()?;
    let samples = group
        .latency_ms
        .get(histogram)
        .map_or(decoded.len(), |stat| stat.sample_size());
    (!decoded.is_empty()).then(|| (decoded.value_at_quantile(quantile) as f64 / 1000.0, samples))
}

/// A gate with too few requests to decide.
fn insufficient(
    gate: String,
    threshold: f64,
    measured: Option<f64>,
    needed: u64,
    detail: String,
) -> GateResult {
    GateResult {
        gate,
        measured,
        threshold,
        passed: false,
        insufficient: true,
        samples_needed: Some(needed),
        detail,
    }
}

/// A rate of the candidate's requests against its maximum. Decided on the measured rate once
/// the candidate finished the gate's minimum sample ([`rate_minimum`]); below it, insufficient,
/// unless the failures already counted exceed the maximum of the minimum sample (a certain
/// failure however the rest turns out).
fn rate_gate(gate: &str, threshold: f64, count: u64, finished: u64, what: &str) -> GateResult {
    if finished == 0 {
        return GateResult {
            gate: gate.into(),
            measured: None,
            threshold,
            passed: false,
            insufficient: false,
            samples_needed: None,
            detail: "the candidate finished no request".into(),
        };
    }
    let measured = count as f64 / finished as f64;
    let (low, high) = wilson_interval(count, finished, GATE_CONFIDENCE);
    let detail = format!(
        "{count} of {finished} candidate requests {what}; 95% CI {:.2}% to {:.2}%",
        low * 100.0,
        high * 100.0
    );
    let minimum = rate_minimum(threshold, GATE_CONFIDENCE).unwrap_or(0);
    let certain_failure = count as f64 > threshold * minimum.max(finished) as f64;
    if finished < minimum && !certain_failure {
        return insufficient(gate.into(), threshold, Some(measured), minimum, detail);
    }
    GateResult {
        gate: gate.into(),
        measured: Some(measured),
        threshold,
        passed: measured <= threshold,
        insufficient: false,
        samples_needed: None,
        detail,
    }
}

/// Evaluates a phase's gates on its results: rates and costs are the candidate's, regressions
/// compare the candidate's percentile with the primary's over the phase, agreement is over the
/// pairs where both answered. A gate with nothing to measure fails.
pub fn evaluate_gates(
    gates: &GatePlan,
    results: &RunResults,
    primary: usize,
    candidate: usize,
) -> Vec<GateResult> {
    let mut out = Vec::new();
    let (Some(p), Some(c)) = (results.targets.get(primary), results.targets.get(candidate)) else {
        return out;
    };
    let (ps, cs): (&GroupResults, &GroupResults) = (&p.summary, &c.summary);
    let finished = cs.requests.succeeded + cs.requests.failed;
    let throttled = cs.requests.throttled.min(cs.requests.failed);
    if let Some(max) = gates.max_error_rate {
        out.push(rate_gate(
            "max_error_rate",
            max,
            cs.requests.failed - throttled,
            finished,
            "failed (429s counted apart)",
        ));
    }
    if let Some(max) = gates.max_throttle_rate {
        out.push(rate_gate(
            "max_throttle_rate",
            max,
            throttled,
            finished,
            "were throttled (429)",
        ));
    }
    for gate in &gates.max_regression {
        out.push(regression_gate(gate, ps, cs));
    }
    if let Some(min) = gates.min_agreement {
        out.push(agreement_gate(min, results));
    }
    if let Some(max) = gates.max_cost_ratio {
        out.push(cost_ratio_gate(max, ps, cs));
    }
    if let Some(max) = gates.max_cost {
        out.push(match &cs.cost {
            Some(cost) => GateResult {
                gate: "max_cost".into(),
                measured: Some(cost.total),
                threshold: max,
                passed: cost.total <= max,
                insufficient: false,
                samples_needed: None,
                detail: format!(
                    "{} {} over {} priced requests",
                    crate::units::money(cost.total),
                    cost.currency,
                    cost.requests_priced
                ),
            },
            None => GateResult {
                gate: "max_cost".into(),
                measured: None,
                threshold: max,
                passed: false,
                insufficient: false,
                samples_needed: None,
                detail: "the candidate is not priced".into(),
            },
        });
    }
    out
}

/// `max_regression.<metric>.<quantile>`: the candidate's quantile against the primary's, each
/// on enough requests to bound it.
fn regression_gate(
    gate: &crate::scenario::RegressionGate,
    ps: &GroupResults,
    cs: &GroupResults,
) -> GateResult {
    let name = format!("max_regression.{}", gate.key);
    let candidate_value = quantile_ms(cs, &gate.histogram, gate.quantile);
    let primary_value = quantile_ms(ps, &gate.histogram, gate.quantile);
    let (Some((cv, cn)), Some((pv, pn))) = (candidate_value, primary_value) else {
        return GateResult {
            gate: name,
            measured: None,
            threshold: gate.max,
            passed: false,
            insufficient: false,
            samples_needed: None,
            detail: format!(
                "no {} measured on {}",
                gate.histogram,
                if candidate_value.is_some() {
                    "the primary"
                } else {
                    "the candidate"
                }
            ),
        };
    };
    let measured = if pv > 0.0 { cv / pv - 1.0 } else { 0.0 };
    let detail =
        format!("candidate {cv:.2} ms against primary {pv:.2} ms ({cn} and {pn} requests)");
    // Each side must bound its quantile: a p99 of 6 requests is not a p99.
    let minimum = quantile_minimum(gate.quantile, GATE_CONFIDENCE);
    if cn.min(pn) < minimum {
        return insufficient(name, gate.max, Some(measured), minimum, detail);
    }
    GateResult {
        gate: name,
        measured: Some(measured),
        threshold: gate.max,
        passed: measured <= gate.max,
        insufficient: false,
        samples_needed: None,
        detail,
    }
}

/// `min_agreement`: the mean token F1 of the pairs where both sides answered.
fn agreement_gate(min: f64, results: &RunResults) -> GateResult {
    let agreement = results
        .paired
        .as_ref()
        .and_then(|p| p.overall())
        .and_then(|g| g.agreement.as_ref());
    match agreement {
        Some(a) => GateResult {
            gate: "min_agreement".into(),
            measured: Some(a.similarity_mean),
            threshold: min,
            passed: a.similarity_mean >= min,
            insufficient: false,
            samples_needed: None,
            detail: format!(
                "mean token F1 over {} pairs; {:.1}% exact matches",
                a.compared,
                a.exact_match_rate * 100.0
            ),
        },
        None => GateResult {
            gate: "min_agreement".into(),
            measured: None,
            threshold: min,
            passed: false,
            insufficient: false,
            samples_needed: None,
            detail: "no pair where both sides answered".into(),
        },
    }
}

/// `max_cost_ratio`: the candidate's cost per request over the primary's.
fn cost_ratio_gate(max: f64, ps: &GroupResults, cs: &GroupResults) -> GateResult {
    match (&cs.cost, &ps.cost) {
        (Some(cc), Some(pc)) if pc.per_request > 0.0 => {
            let ratio = cc.per_request / pc.per_request;
            GateResult {
                gate: "max_cost_ratio".into(),
                measured: Some(ratio),
                threshold: max,
                passed: ratio <= max,
                insufficient: false,
                samples_needed: None,
                detail: format!(
                    "{} against {} {} per request",
                    crate::units::money(cc.per_request),
                    crate::units::money(pc.per_request),
                    cc.currency
                ),
            }
        }
        _ => GateResult {
            gate: "max_cost_ratio".into(),
            measured: None,
            threshold: max,
            passed: false,
            insufficient: false,
            samples_needed: None,
            detail: "no priced request on one side".into(),
        },
    }
}

/// What phase `index` (0-based) of `plan` measured, with its gates evaluated.
pub fn phase_outcome(plan: &RunPlan, index: usize, results: &RunResults) -> Option<PhaseOutcome> {
    let migration = plan.migration.as_ref()?;
    let phase = migration.phases.get(index)?;
    let gates = evaluate_gates(
        &phase.gates,
        results,
        migration.primary,
        migration.candidate,
    );
    let finished = |i: usize| {
        results.targets.get(i).map_or(0, |t| {
            t.summary.requests.succeeded + t.summary.requests.failed
        })
    };
    let overall = results.paired.as_ref().and_then(|p| p.overall());
    Some(PhaseOutcome {
        index: index + 1,
        name: phase.name.clone(),
        share: phase.share,
        mirror: phase.mirror,
        primary: plan.targets[migration.primary].name.clone(),
        candidate: plan.targets[migration.candidate].name.clone(),
        primary_requests: finished(migration.primary),
        candidate_requests: finished(migration.candidate),
        pairs: overall.map_or(0, |g| g.pairs),
        ttft_difference_ms: overall
            .and_then(|g| g.ttft_difference_ms.as_ref())
            .map(|d| d.median),
        e2e_difference_ms: overall
            .and_then(|g| g.e2e_difference_ms.as_ref())
            .map(|d| d.median),
        passed: gates.iter().all(|g| g.passed),
        gates,
        extended_by: plan.phase_growth(index),
        results: String::new(),
    })
}

/// Runs every phase of `plan`'s migration in order, each with the run options `options` gives
/// for its folder (progress, checkpoints there), writing each phase's results under `dir`
/// through `write` (which returns the file it wrote) and reporting each phase through
/// `progress`. Stops at the first phase with a failed gate.
pub async fn run(
    plan: &RunPlan,
    dir: &Path,
    stop: StopSignal,
    options: &dyn Fn(&Path) -> RunOptions,
    write: &dyn Fn(&Path, &RunResults) -> Result<PathBuf, String>,
    progress: &mut dyn FnMut(&PhaseOutcome, &RunResults),
) -> Result<RolloutResults, RolloutError> {
    let migration = plan.migration.as_ref().ok_or(RolloutError::NoMigration)?;
    let mut rollout = RolloutResults {
        scenario: plan.name.clone(),
        primary: plan.targets[migration.primary].name.clone(),
        candidate: plan.targets[migration.candidate].name.clone(),
        verdict: RolloutVerdict::Promote,
        reason: String::new(),
        failed_phase: None,
        failed_gate: None,
        phases_planned: migration.phases.len(),
        degraded_phases: Vec::new(),
        phases: Vec::new(),
    };
    // Budgets cover the whole migration: each phase gets what the phases before it left.
    let mut spent_run = 0.0;
    let mut spent_by_target = vec![0.0; plan.targets.len()];
    for (index, phase) in migration.phases.iter().enumerate() {
        if stop.is_stopped() {
            rollout.verdict = RolloutVerdict::Interrupted;
            break;
        }
        let mut phase_plan = plan.at_phase(index).ok_or(RolloutError::NoMigration)?;
        phase_plan.cost.budget = plan.cost.budget.map(|cap| cap - spent_run);
        for (target, spent) in phase_plan.targets.iter_mut().zip(&spent_by_target) {
            target.budget = target.budget.map(|cap| cap - spent);
        }
        let left = |cap: Option<f64>| cap.is_some_and(|cap| cap <= 0.0);
        if left(phase_plan.cost.budget) || phase_plan.targets.iter().any(|t| left(t.budget)) {
            rollout.verdict = RolloutVerdict::BudgetExhausted;
            break;
        }
        let folder = dir.join(format!(
            "phase-{:02}-{}",
            index + 1,
            crate::report::json::slug(&phase.name)
        ));
        let mut results = driver::run(&phase_plan, options(&folder), stop.clone())
            .await
            .map_err(|source| RolloutError::Phase {
                phase: phase.name.clone(),
                source,
            })?;
        if let Some(slo) = &plan.slo {
            results.slo = Some(crate::slo::evaluate(slo, &results));
        }
        let mut outcome = phase_outcome(plan, index, &results).ok_or(RolloutError::NoMigration)?;
        results.phase = Some(outcome.clone());
        let written = write(&folder, &results).map_err(|message| RolloutError::Write {
            phase: phase.name.clone(),
            message,
        })?;
        outcome.results = written
            .strip_prefix(dir)
            .unwrap_or(&written)
            .display()
            .to_string();
        progress(&outcome, &results);
        spent_run += results.spend.as_ref().map_or(0.0, |spend| spend.total);
        for (spent, target) in spent_by_target.iter_mut().zip(&results.targets) {
            *spent += target.summary.cost.as_ref().map_or(0.0, |cost| cost.total);
        }
        let interrupted = results.status == RunStatus::Interrupted;
        let budget_stopped = results.status == RunStatus::BudgetExhausted;
        if results.status == RunStatus::Degraded {
            rollout.degraded_phases.push(phase.name.clone());
        }
        let failed = outcome
            .gates
            .iter()
            .find(|g| !g.passed && !g.insufficient)
            .cloned();
        let undecided = outcome.gates.iter().find(|g| g.insufficient).cloned();
        rollout.phases.push(outcome);
        if interrupted {
            rollout.verdict = RolloutVerdict::Interrupted;
            break;
        }
        if budget_stopped {
            rollout.verdict = RolloutVerdict::BudgetExhausted;
            break;
        }
        if let Some(gate) = failed {
            rollout.verdict = RolloutVerdict::Rollback;
            rollout.failed_phase = Some(phase.name.clone());
            rollout.failed_gate = Some(gate);
            break;
        }
        if let Some(gate) = undecided {
            rollout.verdict = RolloutVerdict::Insufficient;
            rollout.failed_phase = Some(phase.name.clone());
            rollout.failed_gate = Some(gate);
            break;
        }
    }
    rollout.reason = reason_of(&rollout, migration.extend_up_to);
    Ok(rollout)
}

/// The one line on why a rollout ended as it did (`extend_up_to`: the migration's cap on a
/// phase's growth, named when a gate stayed insufficient).
fn reason_of(rollout: &RolloutResults, extend_up_to: f64) -> String {
    match (&rollout.verdict, &rollout.failed_gate) {
        (RolloutVerdict::Rollback, Some(gate)) => format!(
            "phase \"{}\" failed {}",
            rollout.failed_phase.as_deref().unwrap_or("?"),
            gate.describe()
        ),
        (RolloutVerdict::Insufficient, Some(gate)) => format!(
            "phase \"{}\" ran {:.1}x its length (extend_up_to {}) and still could not decide {}: stopped without promoting",
            rollout.failed_phase.as_deref().unwrap_or("?"),
            rollout.phases.last().map_or(1.0, |p| p.extended_by),
            extend_up_to,
            gate.describe()
        ),
        (RolloutVerdict::Interrupted, _) => format!(
            "interrupted after {} of {} phases: no verdict",
            rollout.phases.len(),
            rollout.phases_planned
        ),
        (RolloutVerdict::BudgetExhausted, _) => format!(
            "a budget was reached after {} of {} phases: no verdict (the budget covers every phase)",
            rollout.phases.len(),
            rollout.phases_planned
        ),
        _ => format!("all {} phases passed their gates", rollout.phases_planned),
    }
}

/// How each phase runs, as `drover run` was asked: progress, checkpoints, export.
#[derive(Debug, Clone, Copy)]
pub struct PhaseOptions {
    /// Live progress, and how it is drawn.
    pub progress: Option<super::progress::Style>,
    pub checkpoint_every: std::time::Duration,
    /// Each phase writes its requests (both sides of every pair) to its `requests.jsonl` and/or
    /// `requests.csv` (and with CSV its `groups.csv`).
    pub formats: super::run::RequestFormats,
}

/// Runs a scenario's `[migration]`: one run per phase (each with its results and report), the
/// gates after each, then `migration.json`, a report over every phase, and the verdict.
pub async fn run_and_report(
    plan: &RunPlan,
    dir: &Path,
    stop: StopSignal,
    phases_run: PhaseOptions,
) -> Outcome {
    // Each phase shows its progress and checkpoints into its own folder, as a run does, and
    // with --export-requests writes its requests.jsonl there (both sides of every pair).
    let options = |folder: &Path| {
        let request_log = phases_run
            .formats
            .any()
            .then(
                || match super::run::create_request_log(plan, folder, phases_run.formats) {
                    Ok(log) => Some(log),
                    Err(message) => {
                        eprintln!("warning: the per-request export: {message}");
                        None
                    }
                },
            )
            .flatten();
        RunOptions {
            live: super::run::live_outputs(plan, phases_run.progress, false),
            notices: super::run::stderr_notices(),
            checkpoint: Some(super::run::checkpoint_sink(folder)),
            checkpoint_every: phases_run.checkpoint_every,
            request_log,
            ..RunOptions::default()
        }
    };
    let write = |folder: &Path, results: &RunResults| {
        let path =
            crate::report::json::write_results(folder, results).map_err(|e| e.to_string())?;
        let report = crate::report::Report::of_run(results);
        if phases_run.formats.csv {
            crate::report::write_groups_csv(folder, &report).map_err(|e| e.to_string())?;
        }
        crate::report::write_report(folder, &report).map_err(|e| e.to_string())?;
        Ok(path)
    };
    let mut phases = Vec::new();
    let mut progress = |outcome: &PhaseOutcome, results: &RunResults| {
        println!("{}", phase_line(outcome));
        for line in crate::report::format::paired_lines(results).iter().skip(1) {
            println!("  {line}");
        }
        phases.push(crate::report::ReportInput::new(
            outcome.name.clone(),
            results.clone(),
        ));
    };
    let rollout = match run(plan, dir, stop, &options, &write, &mut progress).await {
        Ok(rollout) => rollout,
        Err(error) => {
            eprintln!("error: migration: {error}");
            return Outcome::RunFailed;
        }
    };
    println!("{}", verdict_line(&rollout));
    let path = dir.join("migration.json");
    let text = serde_json::to_string_pretty(&rollout).expect("migration results serialize");
    if let Err(error) = crate::report::json::write_atomically(&path, text.as_bytes()) {
        eprintln!("error: {error}");
        return Outcome::RunFailed;
    }
    println!("migration: {}", path.display());
    if !phases.is_empty() {
        let rendered = crate::report::write_report(
            dir,
            &crate::report::Report {
                inputs: phases,
                rollout: Some(rollout.clone()),
                sweep: None,
            },
        );
        match rendered {
            Ok(written) => println!("report: {}", written.dir.join("report.html").display()),
            Err(error) => {
                eprintln!("error: could not render the report: {error}");
                return Outcome::RunFailed;
            }
        }
    }
    let stopped = matches!(
        rollout.verdict,
        RolloutVerdict::Interrupted | RolloutVerdict::BudgetExhausted
    );
    if !stopped && !rollout.degraded_phases.is_empty() {
        eprintln!(
            "error: the migration is degraded: drover itself failed on some requests of phase(s) {:?} (see their results' warnings); its verdict ({}) rests on figures that are not the endpoints' alone",
            rollout.degraded_phases,
            rollout.verdict.name()
        );
        return Outcome::Degraded;
    }
    match rollout.verdict {
        RolloutVerdict::Promote => Outcome::Ok,
        RolloutVerdict::Rollback => Outcome::Rollback,
        RolloutVerdict::Interrupted => Outcome::Interrupted,
        RolloutVerdict::BudgetExhausted => Outcome::BudgetExhausted,
        RolloutVerdict::Insufficient => Outcome::Insufficient,
    }
}
