//! Verdicts about runs: SLO assertions with confidence intervals and goodput ([`slo`]), a run
//! against a baseline for CI gates ([`baseline`]), and the statistics they rest on ([`stats`]).

pub mod baseline;
pub mod paired;
pub mod slo;
pub mod stats;

pub use slo::{GoodputJudge, SloPlan, SloResults, Verdict};
