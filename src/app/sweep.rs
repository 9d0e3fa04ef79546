//! Find the limit: run a scenario's load at rising rates (open loop) or user counts (closed
//! loop), evaluate its SLOs at every step, and report the highest load that still met them —
//! the knee — with every step's numbers kept (each step's results file, and `sweep.json`).

use std::path::{Path, PathBuf};

use crate::driver::{self, DriverError, RunOptions, StopSignal};
use crate::results::RunResults;
use crate::scenario::{RunPlan, SweepPlan};
use crate::slo::{evaluate, Verdict};

use super::Outcome;

pub use crate::results::sweep::{SweepResults, SweepStep};

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
    progress: &mut dyn FnMut(&SweepStep, &RunResults),
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
        let samples_needed = evaluated
            .assertions
            .iter()
            .filter(|a| a.verdict == Verdict::Inconclusive)
            .filter_map(|a| a.samples_needed)
            .max();
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
        let mut step = summarize(value, verdict, relative, missed, &run);
        step.samples_needed = samples_needed;
        progress(&step, &run);
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
        samples_needed: None,
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

pub use crate::report::sweep::{knee_line, step_line};

/// Runs a scenario's `[sweep]`: one run per load value, each with its results folder, then
/// `sweep.json` and the knee.
pub async fn run_and_report(plan: &RunPlan, dir: &Path, stop: StopSignal) -> Outcome {
    let over = plan.sweep.as_ref().map_or("load", |s| s.over.name());
    let write = |folder: &Path, results: &RunResults| {
        crate::report::json::write_results(folder, results).map_err(|e| e.to_string())
    };
    let mut steps = Vec::new();
    let mut progress = |step: &SweepStep, run: &RunResults| {
        println!("{}", step_line(over, step));
        steps.push(crate::report::ReportInput::new(
            format!("{over} {}", step.value),
            run.clone(),
        ));
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
    if !steps.is_empty() {
        let report = crate::report::Report {
            inputs: steps,
            rollout: None,
            sweep: Some(results.clone()),
        };
        match crate::report::write_report(dir, &report) {
            Ok(written) => println!("report: {}", written.described()),
            Err(error) => {
                eprintln!("error: could not render the report: {error}");
                return Outcome::RunFailed;
            }
        }
    }
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
        let mut step = summarize(
            value,
            verdict,
            String::new(),
            Vec::new(),
            &crate::results::committed_baseline(),
        );
        step.server_saturated = server_saturated;
        step
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
    fn an_undecided_step_asks_for_longer_steps_not_a_lower_start() {
        let mut first = step(20.0, Verdict::Inconclusive, None);
        first.requests_per_s = 20.0;
        first.samples_needed = Some(368);
        let mut undecided = sweep(vec![first.clone()]);
        undecided.knee = None;
        undecided.first_miss = Some(20.0);
        assert_eq!(
            knee_line(&undecided),
            "knee: none yet: the first step (20 req/s) could not decide; its sample was too small to decide the SLOs (about 368 samples would decide: about 18 s at the 20.0 req/s it achieved, against 4 s now): lengthen step_duration, not a lower start"
        );
        // A first step that failed outright still says start lower.
        let mut failed = sweep(vec![step(20.0, Verdict::Fail, None)]);
        failed.knee = None;
        failed.first_miss = Some(20.0);
        assert!(knee_line(&failed).ends_with("already missed the SLOs; start lower"));
        // A later undecided step: the knee is a lower bound.
        let mut later = step(40.0, Verdict::Inconclusive, None);
        later.requests_per_s = 40.0;
        later.samples_needed = Some(400);
        let bound = sweep(vec![step(30.0, Verdict::Pass, None), later]);
        assert!(
            knee_line(&bound).starts_with(
                "knee: at least 30 req/s; 40 req/s neither met nor missed the SLOs: its sample was too small"
            ),
            "{}",
            knee_line(&bound)
        );
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
