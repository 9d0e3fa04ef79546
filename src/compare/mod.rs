//! Verdicts about runs: SLO assertions with confidence intervals and goodput ([`slo`]), and the
//! statistics they rest on ([`stats`]).

pub mod slo;
pub mod stats;

pub use slo::{GoodputJudge, SloPlan, SloResults, Verdict};
