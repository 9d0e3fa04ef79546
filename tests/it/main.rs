//! The integration tests, in one binary (one build, one link, and one `TIMING_LOCK` for every
//! timing-sensitive test): a module per topic, helpers in `common`. Timing-sensitive tests take
//! `common::TIMING_LOCK`; `.config/nextest.toml` lists the same tests in a group that runs one
//! at a time, for cargo-nextest, which runs each test in its own process.

mod common;

mod anthropic;
mod apis;
mod app;
mod batch;
mod cli;
mod compare;
mod cost;
mod deploy;
mod driver;
mod faults;
mod fuzz_corpus;
mod hostile;
mod layers;
mod message_batches;
mod migration;
mod properties;
mod protocol;
mod report;
mod shards;
mod slo;
mod spend;
mod sweep;
mod timing;
mod tls;
mod workloads;
