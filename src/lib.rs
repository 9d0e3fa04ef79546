//! drover: a load-testing and benchmarking harness for LLM inference endpoints.
//!
//! Data flows one way: a [`scenario`] file becomes a validated [`scenario::RunPlan`]; the
//! [`traffic`] model says when request k is due and what it carries; the [`driver`] sends it and
//! produces one [`record::RequestRecord`] per request; [`metrics`] turns records into histograms
//! and counters and then a [`results::RunResults`] document, which [`slo`] and [`compare`] judge
//! and [`report`] renders. The workflows of [`app`] (a run, a sweep, a migration, a merge, …)
//! orchestrate it all; the [`mock`] server stands beside it, for tests and the quickstart.
//!
//! The modules form one-way layers; a module imports only modules listed before it here (a test,
//! `tests/it/layers.rs`, enforces it; ARCHITECTURE.md explains it):
//!
//! | layer | modules |
//! |---|---|
//! | leaves | [`units`], [`stats`], [`redact`], `timer`, [`tokenizer`], [`retry_after`], [`shard`], [`notice`] |
//! | vocabulary | [`record`], [`cost`], [`results`], [`hist`], [`slo`], [`protocol`] |
//! | inputs | [`workload`], [`mock`] |
//! | plan | [`scenario`] |
//! | traffic model | [`traffic`] |
//! | execution | [`export`], [`metrics`], [`spend`], [`resources`], [`driver`] |
//! | analysis and rendering | [`compare`], [`report`] |
//! | workflows | [`app`], [`fuzzing`] |
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let plan = drover::scenario::load(std::path::Path::new("scenarios/quickstart.toml"))?;
//! let results = drover::driver::run(&plan, Default::default(), Default::default()).await?;
//! println!("{}", drover::report::terminal::summary(&results));
//! # Ok(()) }
//! ```

// Leaves: import nothing from the crate.
pub mod notice;
pub mod redact;
pub mod retry_after;
pub mod shard;
pub mod stats;
mod timer;
pub mod tokenizer;
pub mod units;

// Vocabulary: records, prices, the results schema, SLO language, wire formats.
pub mod cost;
pub mod hist;
pub mod protocol;
pub mod record;
pub mod results;
pub mod slo;

// Inputs.
pub mod mock;
pub mod workload;

// Plan.
pub mod scenario;

// Traffic model: pure functions of plan, seed and request index.
pub mod traffic;

// Execution.
pub mod driver;
pub mod export;
pub mod metrics;
pub mod resources;
pub mod spend;

// Analysis and rendering.
pub mod compare;
pub mod history;
pub mod report;

// Workflows.
pub mod app;
pub mod fuzzing;
