//! The one table of exit codes: what each workflow [`Outcome`] exits with and what it means.
//! `drover run --help` prints it, and a test checks README's table against it. The table is an
//! exhaustive match, so a new outcome cannot go without its code.

use drover::app::Outcome;

/// Every outcome, in code order (the order of the help text).
pub const OUTCOMES: [Outcome; 13] = [
    Outcome::Ok,
    Outcome::Internal,
    Outcome::BadInput,
    Outcome::RunFailed,
    Outcome::PreflightFailed,
    Outcome::OverBudget,
    Outcome::BudgetExhausted,
    Outcome::SloFailed,
    Outcome::Regressed,
    Outcome::Rollback,
    Outcome::Degraded,
    Outcome::Insufficient,
    Outcome::Interrupted,
];

/// An outcome's exit code and what it means.
pub fn entry(outcome: Outcome) -> (i32, &'static str) {
    match outcome {
        Outcome::Ok => (0, "ok"),
        Outcome::Internal => (1, "internal error"),
        Outcome::BadInput => (2, "bad input (scenario, dataset, flags, missing key variable)"),
        Outcome::RunFailed => (
            3,
            "the run could not complete (could not start, results not written, or every request to a target failed)",
        ),
        Outcome::PreflightFailed => (
            4,
            "preflight failed (key rejected, unknown model, endpoint unusable; no load was sent)",
        ),
        Outcome::OverBudget => (
            5,
            "refused by the spend guard (the projection exceeds a budget, or a target is unpriced under a budget; nothing was sent)",
        ),
        Outcome::BudgetExhausted => (
            6,
            "stopped at a budget (results were written, status budget_exhausted)",
        ),
        Outcome::SloFailed => (
            7,
            "an [slo] assertion failed (or was inconclusive with fail_on_inconclusive), or a sweep found no step that met them",
        ),
        Outcome::Regressed => (8, "regressed against a baseline (drover compare)"),
        Outcome::Rollback => (9, "a [migration] gate failed (rollback)"),
        Outcome::Degraded => (
            10,
            "degraded (drover itself failed on some requests: internal or client_resources errors, or unbalanced books; results were written)",
        ),
        Outcome::Insufficient => (
            11,
            "a [migration] phase's gate had too few requests to decide (verdict insufficient)",
        ),
        Outcome::Interrupted => (130, "interrupted (partial results were written)"),
    }
}

/// Whether an outcome is a verdict on results that were written (a budget stop, a failed SLO,
/// a rollback, insufficient samples, a degraded run), as `--exit-zero-on-verdict` withholds it;
/// every other non-zero outcome means the run itself went wrong.
pub fn is_verdict(outcome: Outcome) -> bool {
    match outcome {
        Outcome::BudgetExhausted
        | Outcome::SloFailed
        | Outcome::Rollback
        | Outcome::Degraded
        | Outcome::Insufficient => true,
        Outcome::Ok
        | Outcome::Internal
        | Outcome::BadInput
        | Outcome::RunFailed
        | Outcome::PreflightFailed
        | Outcome::OverBudget
        | Outcome::Regressed
        | Outcome::Interrupted => false,
    }
}

/// The exit code of an outcome.
pub fn code(outcome: Outcome) -> i32 {
    entry(outcome).0
}

/// The exit-code paragraph of `drover run --help`.
pub fn run_help() -> String {
    let codes: Vec<String> = OUTCOMES
        .iter()
        .map(|&outcome| {
            let (code, meaning) = entry(outcome);
            format!("  {code:>3}  {meaning}")
        })
        .collect();
    format!(
        "Examples:\n  drover run scenarios/quickstart.toml\n  drover run scenarios/quickstart.toml --set load.rate=40 --set classes.chat.max_tokens=16\n  OPENAI_API_KEY=... drover run scenarios/openai-compatible.toml --out results/\n  drover run --url http://127.0.0.1:8000/v1 --model m --rate 20 --duration 30s\n  drover run --mock --users 4 --requests 200 --print-scenario > my.toml\n\nExit codes:\n{}",
        codes.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdicts_withheld_for_shard_workers_are_6_7_9_10_and_11() {
        let verdicts: Vec<i32> = OUTCOMES
            .iter()
            .filter(|&&o| is_verdict(o))
            .map(|&o| code(o))
            .collect();
        assert_eq!(verdicts, [6, 7, 9, 10, 11]);
    }

    #[test]
    fn outcomes_are_listed_once_in_code_order() {
        let codes: Vec<i32> = OUTCOMES.iter().map(|&o| code(o)).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(codes, sorted, "listed in code order, each code once");
        assert_eq!(code(Outcome::Ok), 0);
        assert_eq!(code(Outcome::Interrupted), 130);
        assert_eq!(code(Outcome::Insufficient), 11);
    }
}
