//! The integration tests whose assertions depend on timing (latencies, schedule lag, verdicts on
//! measured percentiles, runs killed after a delay), one at a time. cargo runs test binaries one
//! after another, so nothing from the `it` binary runs beside these; within this binary each
//! test holds `common::TIMING_LOCK` for its whole length, so no two of them overlap either
//! (`layout::timed_tests_run_alone` in the `it` binary checks that every test here takes it).
//! `.config/nextest.toml` puts this binary in a one-at-a-time group for cargo-nextest, which runs
//! each test in its own process.

#[path = "../common/mod.rs"]
mod common;

mod apis;
mod compare;
mod faults;
mod history;
mod hostile;
mod http2_pool;
mod migration;
mod server_metrics;
mod shards;
mod slo;
mod spend;
mod sweep;
mod timing;
