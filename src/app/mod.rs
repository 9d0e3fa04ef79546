//! Workflows: what a command does from a validated plan to its results and verdict, in the
//! library so that tests call them without spawning the binary. Each orchestrates the layers
//! below (traffic, driver, metrics, analysis, report); the binary's `cli/` only parses arguments,
//! calls one and maps its outcome to an exit code.
//!
//! - [`migration`]: a phased migration from a primary to a candidate, gate by gate;
//! - [`sweep`]: a load sweep to the knee;
//! - [`calibrate`]: what this machine adds to every number;
//! - [`merge`]: the results of a sharded run, merged exactly ([`shard_wait`] waits for them,
//!   [`archive`] packs the outcome into one file);
//! - [`audit`]: a request log priced streaming, batch and routed;
//! - [`compare`]: a run against its baseline, for CI gates;
//! - [`report`]: results files rendered side by side;
//! - [`mock`]: the mock server on its own;
//! - [`exposition`]: a run's live figures served in Prometheus text (`--metrics-addr`);
//! - [`run`]: one run (and `drover validate`), which also starts a scenario's sweep or migration.

pub mod archive;
pub mod audit;
pub mod calibrate;
pub mod compare;
pub mod exposition;
pub mod history;
pub mod merge;
pub mod migration;
pub mod mock;
pub mod progress;
pub mod report;
pub mod run;
pub mod shard_wait;
pub mod sweep;

/// How a workflow ended, as the binary maps it to an exit code (`cli/exit.rs` holds the one
/// table of codes and meanings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything ran and every verdict passed.
    Ok,
    /// drover itself failed (a bug, or the runtime could not start).
    Internal,
    /// A scenario, flag or input file is wrong; nothing was sent.
    BadInput,
    /// The run could not complete, or its results could not be written.
    RunFailed,
    /// The one-request-per-target check failed; nothing else was sent.
    PreflightFailed,
    /// The spend projection is over a budget (or a budgeted target is unpriced); nothing sent.
    OverBudget,
    /// A budget stopped the run.
    BudgetExhausted,
    /// An SLO failed (or was inconclusive under `fail_on_inconclusive`), or a sweep found no
    /// step that met them.
    SloFailed,
    /// A run regressed against its baseline.
    Regressed,
    /// A migration's gate failed: roll back.
    Rollback,
    /// drover itself failed on some requests, or its books did not balance.
    Degraded,
    /// A migration phase's gates had too few samples to decide.
    Insufficient,
    /// Interrupted before it finished.
    Interrupted,
}

/// Resolves on Ctrl-C, or SIGTERM on Unix (how Kubernetes and CI stop a process).
pub async fn wait_for_interrupt() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
