//! drover: a load-testing and benchmarking harness for LLM inference endpoints.
//!
//! Data flows one way: a [`scenario`] file becomes a validated [`scenario::RunPlan`]; the
//! [`driver`] sends its traffic and produces one [`record::RequestRecord`] per request; [`metrics`]
//! turns records into histograms and counters and then a [`results::RunResults`] document, which
//! [`report`] renders. The [`mock`] server stands beside it all, for tests and the quickstart.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let plan = drover::scenario::load(std::path::Path::new("scenarios/quickstart.toml"))?;
//! let results = drover::driver::run(&plan, Default::default(), Default::default()).await?;
//! println!("{}", drover::report::terminal::summary(&results));
//! # Ok(()) }
//! ```

pub mod audit;
pub mod calibrate;
pub mod compare;
pub mod cost;
pub mod driver;
pub mod export;
pub mod fuzzing;
pub mod merge;
pub mod metrics;
pub mod mock;
pub mod protocol;
pub mod record;
pub mod redact;
pub mod report;
pub mod resources;
pub mod results;
pub mod retry_after;
pub mod rollout;
pub mod scenario;
pub mod shard;
pub mod spend;
pub mod sweep;
mod timer;
pub mod tokenizer;
pub mod workload;
