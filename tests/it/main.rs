//! The integration tests that may share the machine: a module per topic, run in parallel.
//! Tests whose assertions depend on timing live in the `timed` binary (`tests/timed/`): cargo
//! runs test binaries one after another, so they never share the two CI cores with a test of
//! this binary; `layout::timed_tests_run_alone` keeps the two apart. Helpers are in `tests/common`.

#[path = "../common/mod.rs"]
mod common;

mod anthropic;
mod app;
mod batch;
mod cli;
mod cluster_merge;
mod cost;
mod deploy;
mod driver;
mod fuzz_corpus;
mod history;
mod hostile;
mod images;
mod layers;
mod layout;
mod live;
mod message_batches;
mod overrides;
mod properties;
mod protocol;
mod quick;
mod readme;
mod report;
mod schema;
mod sharded_traffic;
mod tls;
mod tokenizer;
mod tools;
mod workloads;
