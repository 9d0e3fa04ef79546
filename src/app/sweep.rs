//! Find the limit: run a scenario's load at rising rates (open loop) or user counts (closed
//! loop), evaluate its SLOs at every step, and report the highest load that still met them —
//! the knee — with every step's numbers kept (each step's results file, and `sweep.json`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::driver::{self, DriverError, RunOptions, StopSignal};
use crate::results::RunResults;
use crate::scenario::{RunPlan, SweepPlan};
use crate::slo::{evaluate, Verdict};

use super::Outcome;

/// One step of a sweep, as `sweep.json` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    /// Whether the first target's server showed saturation in its scraped metrics (its queue
    /// grew, or its KV cache stayed full); absent without `server_metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_saturated: Option<bool>,
}

/// A whole sweep.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

/// Why a sweep could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("the scenario has no [sweep]")]
    NoSweep,
    #[error("step {value}: {source}")]
    Step { value: f64, source: DriverError },
    #[error("step {value}: the results could not be written: {message}")]
    Write { value: f64, message: String },
}

/// Runs every step of `plan`'s sweep, writing each step's results under `dir` through `write`
/// (which returns the file it wrote), and printing a line per step through `progress`.
pub async fn run(
    plan: &RunPlan,
    dir: &Path,
    stop: StopSignal,
    write: &dyn Fn(&Path, &RunResults) -> Result<PathBuf, String>,
    progress: &mut dyn FnMut(&SweepStep),
) -> Result<SweepResults, SweepError> {
    let sweep: &SweepPlan = plan.sweep.as_ref().ok_or(SweepError::NoSweep)?;
    let slo = plan.slo.as_ref().ok_or(SweepError::NoSweep)?;
    let mut results = SweepResults {
        scenario: plan.name.clone(),
        over: sweep.over.name().to_string(),
        step_duration_s: sweep.step_duration.as_secs_f64(),
        steps: Vec::new(),
        knee: None,
        first_miss: None,
        interrupted: false,
        budget_exhausted: false,
        degraded_steps: Vec::new(),
    };
    // Budgets cover the whole sweep: each step gets what the steps before it left.
    let mut spent_run = 0.0;
    let mut spent_by_target = vec![0.0; plan.targets.len()];
    for (index, value) in sweep.values.iter().copied().enumerate() {
        if stop.is_stopped() {
            results.interrupted = true;
            break;
        }
        let mut step_plan = plan.at_sweep_step(sweep.over, value, sweep.step_duration);
        step_plan.cost.budget = plan.cost.budget.map(|cap| cap - spent_run);
        for (target, spent) in step_plan.targets.iter_mut().zip(&spent_by_target) {
            target.budget = target.budget.map(|cap| cap - spent);
        }
        let left = |cap: Option<f64>| cap.is_some_and(|cap| cap <= 0.0);
        if left(step_plan.cost.budget) || step_plan.targets.iter().any(|t| left(t.budget)) {
            results.budget_exhausted = true;
            break;
        }
        // Each step's warnings as they happen (spend alerts, batch cancels) go to stderr, as a
        // run's do.
        let options = RunOptions {
            notices: super::run::stderr_notices(),
            ..RunOptions::default()
        };
        let mut run = driver::run(&step_plan, options, stop.clone())
            .await
            .map_err(|source| SweepError::Step { value, source })?;
        let evaluated = evaluate(slo, &run);
        let verdict = evaluated.verdict;
        let missed = evaluated
            .assertions
            .iter()
            .filter(|a| a.verdict != Verdict::Pass)
            .map(|a| format!("{} ({}: {})", a.assertion, a.target, a.verdict.name()))
            .collect();
        run.slo = Some(evaluated);
        let folder = dir.join(format!(
            "step-{:02}-{}-{}",
            index + 1,
            sweep.over.name(),
            value
        ));
        let written =
            write(&folder, &run).map_err(|message| SweepError::Write { value, message })?;
        let relative = written
            .strip_prefix(dir)
            .unwrap_or(&written)
            .display()
            .to_string();
        let step = summarize(value, verdict, relative, missed, &run);
        progress(&step);
        spent_run += run.spend.as_ref().map_or(0.0, |spend| spend.total);
        for (spent, target) in spent_by_target.iter_mut().zip(&run.targets) {
            *spent += target.summary.cost.as_ref().map_or(0.0, |cost| cost.total);
        }
        let interrupted = run.status == crate::results::RunStatus::Interrupted;
        let budget_stopped = run.status == crate::results::RunStatus::BudgetExhausted;
        if run.status == crate::results::RunStatus::Degraded {
            results.degraded_steps.push(value);
        }
        results.steps.push(step);
        if interrupted {
            results.interrupted = true;
            break;
        }
        if budget_stopped {
            results.budget_exhausted = true;
            break;
        }
        if verdict != Verdict::Pass {
            results.first_miss.get_or_insert(value);
            if sweep.stop_at_first_failure {
                break;
            }
        } else if results.first_miss.is_none() {
            results.knee = Some(value);
        }
    }
    Ok(results)
}

fn summarize(
    value: f64,
    verdict: Verdict,
    results: String,
    missed: Vec<String>,
    run: &RunResults,
) -> SweepStep {
    let mut step = SweepStep {
        value,
        verdict,
        results,
        sent: 0,
        requests_per_s: 0.0,
        output_tokens_per_s: 0.0,
        ttft_p50_ms: None,
        ttft_p99_ms: None,
        e2e_p99_ms: None,
        failed_fraction: 0.0,
        schedule_lag_p99_ms: None,
        missed,
        server_saturated: None,
    };
    // A sweep's figures are the first target's (the one whose limit is sought); each step's
    // results file holds every target.
    if let Some(target) = run.targets.first() {
        let summary = &target.summary;
        step.sent = summary.requests.sent;
        step.requests_per_s = summary.throughput.requests_per_s;
        step.output_tokens_per_s = summary.throughput.output_tokens_per_s;
        step.ttft_p50_ms = summary.latency_ms.get("ttft").map(|s| s.p50);
        step.ttft_p99_ms = summary.latency_ms.get("ttft").map(|s| s.p99);
        step.e2e_p99_ms = summary.latency_ms.get("e2e").map(|s| s.p99);
        step.schedule_lag_p99_ms = summary.latency_ms.get("schedule_lag").map(|s| s.p99);
        step.server_saturated = target
            .server_metrics
            .as_ref()
            .map(|metrics| !metrics.saturation.is_empty());
        let finished = summary.requests.succeeded + summary.requests.failed;
        if finished > 0 {
            step.failed_fraction = summary.requests.failed as f64 / finished as f64;
        }
    }
    step
}

/// The line printed for a step as it finishes.
pub fn step_line(over: &str, step: &SweepStep) -> String {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let mut line = format!(
        "{over} {:>8}: {:<12} {:>9.1} req/s  TTFT p50 {:>7} p99 {:>7} ms  E2E p99 {:>7} ms  failed {:.1}%",
        step.value,
        step.verdict.name(),
        step.requests_per_s,
        ms(step.ttft_p50_ms),
        ms(step.ttft_p99_ms),
        ms(step.e2e_p99_ms),
        step.failed_fraction * 100.0
    );
    match step.server_saturated {
        Some(true) => line.push_str("  server SATURATED"),
        Some(false) => line.push_str("  server not saturated"),
        None => {}
    }
    if !step.missed.is_empty() {
        line.push_str(&format!("  missed: {}", step.missed.join("; ")));
    }
    line
}

/// The closing line: the knee, or why there is none.
pub fn knee_line(results: &SweepResults) -> String {
    let unit = if results.over == "rate" {
        " req/s"
    } else {
        " users"
    };
    let line = match (results.knee, results.first_miss) {
        (Some(knee), Some(miss)) => format!(
            "knee: {knee}{unit} is the highest load that met every SLO; {miss}{unit} did not (the limit lies between)"
        ),
        (Some(knee), None) => format!(
            "knee: every step met the SLOs, up to {knee}{unit}; the limit is higher: extend the values"
        ),
        (None, Some(miss)) => format!(
            "knee: none: the first step ({miss}{unit}) already missed the SLOs; start lower"
        ),
        (None, None) => "knee: none: no step finished".to_string(),
    };
    format!("{line}{}", server_explanation(results, unit))
}

/// What the server's own metrics say of the knee, where they were scraped: saturated from which
/// step, or at none (then the limit is not the server's queue or cache).
fn server_explanation(results: &SweepResults, unit: &str) -> String {
    let scraped: Vec<&SweepStep> = results
        .steps
        .iter()
        .filter(|s| s.server_saturated.is_some())
        .collect();
    if scraped.is_empty() {
        return String::new();
    }
    match scraped.iter().find(|s| s.server_saturated == Some(true)) {
        Some(first) => format!(
            "; the server's own metrics show it saturated (queue growing or KV cache full) from {}{unit}",
            first.value
        ),
        None => format!(
            "; the server's own metrics show no saturation up to {}{unit}: the limit is not its queue or KV cache (look at the network, the client's schedule lag, or an SLO tighter than what the server does unloaded)",
            scraped.last().map_or(0.0, |s| s.value)
        ),
    }
}

/// Runs a scenario's `[sweep]`: one run per load value, each with its results folder, then
/// `sweep.json` and the knee.
pub async fn run_and_report(plan: &RunPlan, dir: &Path, stop: StopSignal) -> Outcome {
    let over = plan.sweep.as_ref().map_or("load", |s| s.over.name());
    let write = |folder: &Path, results: &RunResults| {
        crate::report::json::write_results(folder, results).map_err(|e| e.to_string())
    };
    let mut progress = |step: &SweepStep| {
        println!("{}", step_line(over, step));
    };
    let results = match run(plan, dir, stop, &write, &mut progress).await {
        Ok(results) => results,
        Err(error) => {
            eprintln!("error: sweep: {error}");
            return Outcome::RunFailed;
        }
    };
    println!("{}", knee_line(&results));
    let path = dir.join("sweep.json");
    if let Err(error) = std::fs::create_dir_all(dir) {
        eprintln!("error: cannot create {}: {error}", dir.display());
        return Outcome::RunFailed;
    }
    let text = serde_json::to_string_pretty(&results).expect("sweep results serialize");
    if let Err(error) = crate::report::json::write_atomically(&path, text.as_bytes()) {
        eprintln!("error: {error}");
        return Outcome::RunFailed;
    }
    println!("sweep: {}", path.display());
    if results.interrupted {
        Outcome::Interrupted
    } else if results.budget_exhausted {
        eprintln!(
            "warning: the budget, which covers the whole sweep, was reached after {} of {} steps: later steps did not run",
            results.steps.len(),
            plan.sweep.as_ref().map_or(0, |s| s.values.len())
        );
        Outcome::BudgetExhausted
    } else if !results.degraded_steps.is_empty() {
        eprintln!(
            "error: the sweep is degraded: drover itself failed on some requests of step(s) {:?} (see their results' warnings); the knee is not the endpoint's alone",
            results.degraded_steps
        );
        Outcome::Degraded
    } else if results.knee.is_none() {
        Outcome::SloFailed
    } else {
        Outcome::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(value: f64, verdict: Verdict, server_saturated: Option<bool>) -> SweepStep {
        let mut step = summarize(value, verdict, String::new(), Vec::new(), &empty_run());
        step.server_saturated = server_saturated;
        step
    }

    fn empty_run() -> RunResults {
        serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scenarios/baselines/ci-gate.json"
            ))
            .unwrap(),
        )
        .unwrap()
    }

    fn sweep(steps: Vec<SweepStep>) -> SweepResults {
        SweepResults {
            scenario: "s".into(),
            over: "rate".into(),
            step_duration_s: 4.0,
            knee: Some(30.0),
            first_miss: Some(40.0),
            steps,
            interrupted: false,
            budget_exhausted: false,
            degraded_steps: Vec::new(),
        }
    }

    #[test]
    fn the_knee_line_says_what_the_servers_metrics_show() {
        let saturated = sweep(vec![
            step(20.0, Verdict::Pass, Some(false)),
            step(30.0, Verdict::Pass, Some(false)),
            step(40.0, Verdict::Fail, Some(true)),
        ]);
        assert!(knee_line(&saturated).ends_with(
            "; the server's own metrics show it saturated (queue growing or KV cache full) from 40 req/s"
        ));
        let never = sweep(vec![
            step(20.0, Verdict::Pass, Some(false)),
            step(40.0, Verdict::Fail, Some(false)),
        ]);
        assert!(knee_line(&never).contains("no saturation up to 40 req/s"));
        assert!(step_line("rate", &saturated.steps[2]).contains("server SATURATED"));
        // Without server metrics, nothing is said of the server.
        let unscraped = sweep(vec![step(40.0, Verdict::Fail, None)]);
        assert!(!knee_line(&unscraped).contains("server"));
    }
}
