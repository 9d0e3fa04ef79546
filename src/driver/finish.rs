//! What a run adds to its results once the loops have ended: the degraded status when drover
//! itself failed, the shadow pairs compared, each Batch API batch's report and warnings, the
//! token-count warnings, and what the spend guard counted.

use std::sync::Mutex;

use crate::metrics::paired::{compare_pairs, PairSample};
use crate::results::paired::PairedComparison;
use crate::results::{BatchResults, RunResults, RunStatus};
use crate::scenario::{RunPlan, ShadowPlan};
use crate::spend::SpendGuard;

use super::client_side_key;

/// A completed run in which drover failed (a generator panicked, the books do not balance, or
/// requests failed on the client's side) is `degraded`.
pub(super) fn degraded_if_drover_failed(results: &mut RunResults, generator_failures: &[String]) {
    if results.status == RunStatus::Completed
        && (!generator_failures.is_empty()
            || results.targets.iter().any(|t| {
                t.accounting.is_some_and(|a| !a.balanced)
                    || t.summary.errors.keys().any(|class| client_side_key(class))
            }))
    {
        results.status = RunStatus::Degraded;
    }
}

/// The shadow pairs, compared request by request.
pub(super) fn paired(
    plan: &RunPlan,
    shadow: ShadowPlan,
    pairs: &Mutex<Vec<PairSample>>,
) -> PairedComparison {
    let pairs = pairs
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default();
    let classes: Vec<String> = plan.classes.iter().map(|c| c.name.clone()).collect();
    compare_pairs(
        &pairs,
        &plan.targets[shadow.primary].name,
        &plan.targets[shadow.candidate].name,
        &classes,
    )
}

/// Each target's scraped server metrics, with a warning for scrapes that failed or stopped (a
/// scraper that could not start is a warning too).
pub(super) fn server_metrics(
    results: &mut RunResults,
    scraped: Vec<Option<Result<crate::results::server::ServerMetricsResults, String>>>,
) {
    for (target, scraped) in results.targets.iter_mut().zip(scraped) {
        match scraped {
            None => {}
            Some(Err(message)) => results.warnings.push(format!(
                "target \"{}\": its server metrics could not be scraped: {message}",
                target.name
            )),
            Some(Ok(metrics)) => {
                let failed: u64 = metrics.failed.values().sum();
                if failed > 0 || metrics.stopped.is_some() {
                    let classes: Vec<String> = metrics
                        .failed
                        .iter()
                        .map(|(class, n)| format!("{class} {n}"))
                        .collect();
                    results.warnings.push(format!(
                        "target \"{}\": {} of {} scrapes of its server metrics ({}) failed ({}){}{}; the load was not affected",
                        target.name,
                        failed,
                        failed + metrics.scrapes,
                        metrics.url,
                        classes.join(", "),
                        metrics
                            .last_error
                            .as_ref()
                            .map(|e| format!(": last, {e}"))
                            .unwrap_or_default(),
                        metrics
                            .stopped
                            .as_ref()
                            .map(|s| format!("; {s}"))
                            .unwrap_or_default()
                    ));
                }
                target.server_metrics = Some(metrics);
            }
        }
    }
}

/// Each target's batch reports, with a warning for skipped lines and for a batch that did not
/// complete.
pub(super) fn batch_reports(results: &mut RunResults, batches: Vec<Vec<BatchResults>>) {
    for (target, reports) in results.targets.iter_mut().zip(batches) {
        for report in &reports {
            let id = report.id.as_deref().unwrap_or("(not created)");
            if report.unknown_custom_ids > 0 || report.malformed_lines > 0 {
                results.warnings.push(format!(
                    "target \"{}\": batch {id}: {} output line(s) with an unknown custom_id and {} malformed line(s) were skipped",
                    target.name, report.unknown_custom_ids, report.malformed_lines
                ));
            }
            // OpenAI's batches end `completed`, Message Batches `ended`.
            if !matches!(report.status.as_str(), "completed" | "ended") {
                results.warnings.push(format!(
                    "target \"{}\": batch {id} ended {}{}",
                    target.name,
                    report.status,
                    report
                        .problems
                        .first()
                        .map_or(String::new(), |p| format!(": {p}"))
                ));
            }
        }
        target.batches = reports;
    }
}

/// Token counts that do not add up make every tokens/s and TPOT figure doubtful: say so.
pub(super) fn token_warnings(results: &mut RunResults) {
    for target in &results.targets {
        if let Some(check) = target.summary.token_check.as_ref() {
            for flag in &check.flags {
                results
                    .warnings
                    .push(format!("target \"{}\": token counts: {flag}", target.name));
            }
        }
    }
}

/// What the spend guard counted (warm-up requests are billed too), its alerts and caps.
pub(super) fn spend(results: &mut RunResults, plan: &RunPlan, guard: &SpendGuard) {
    for (index, target) in results.targets.iter().enumerate() {
        let scale = guard.reservation_scale(index);
        if scale > 1.0 + 1e-9 {
            let warning = format!(
                "target \"{}\": requests cost up to {scale:.2}x their projected cost (the server counts more tokens than drover projects); the spend guard reserved that much for each later request",
                target.name
            );
            results.warnings.push(warning);
        }
    }
    let mut spend = results
        .spend
        .clone()
        .unwrap_or_else(|| crate::results::RunSpend {
            currency: plan.cost.currency.clone(),
            targets_unpriced: results.targets.len(),
            ..Default::default()
        });
    // The money the guard counted: warm-up requests are billed too.
    spend.total = guard.spent().0;
    spend.budget = guard.caps().run;
    spend.target_budgets = plan
        .targets
        .iter()
        .filter_map(|t| t.budget.map(|b| (t.name.clone(), b)))
        .collect();
    spend.alerts_crossed = guard.alerts_crossed();
    spend.exhausted = guard.exhausted();
    for alert in &spend.alerts_crossed {
        results
            .warnings
            .push(format!("spend passed {:.0}% of the budget", alert * 100.0));
    }
    if spend.exhausted {
        let money = crate::units::money;
        let mut caps: Vec<String> = spend
            .budget
            .map(|cap| format!("the run's {}", money(cap)))
            .into_iter()
            .collect();
        caps.extend(
            spend
                .target_budgets
                .iter()
                .map(|(name, cap)| format!("target \"{name}\"'s {}", money(*cap))),
        );
        results.warnings.push(format!(
            "the budget was reached: requests stopped starting at {} {} spent (caps: {})",
            money(spend.total),
            spend.currency,
            caps.join(", ")
        ));
    }
    results.spend = Some(spend);
}
