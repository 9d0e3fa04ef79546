//! Verdicts about two runs: a run against a baseline for CI gates ([`baseline`]). The
//! statistics they rest on are in [`crate::stats`]; SLO verdicts about one run are in
//! [`crate::slo`]; shadow pairs are computed by [`crate::metrics::paired`].

pub mod baseline;
