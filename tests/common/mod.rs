//! Helpers shared by the end-to-end tests: run scenario text through the library, start the
//! mock, run the CLI binary. Servers bind 127.0.0.1:0; nothing leaves loopback.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use drover::driver::{self, RunOptions, StopSignal};
use drover::results::{GroupResults, LatencyStat, RunResults};

/// A writer (for a request log) that the test reads back.
#[derive(Clone, Default)]
pub struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuffer {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Timing-sensitive tests hold this so they never share the two CI cores with each other.
pub static TIMING_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Parses and runs scenario text (as if read from `dir/scenario.toml`).
pub async fn run_scenario_in(dir: &Path, text: &str) -> RunResults {
    let path = dir.join("scenario.toml");
    let plan = drover::scenario::parse(text, &path).unwrap_or_else(|e| panic!("{e}"));
    driver::run(&plan, RunOptions::default(), StopSignal::default())
        .await
        .expect("run starts")
}

pub async fn run_scenario(text: &str) -> RunResults {
    run_scenario_in(Path::new("."), text).await
}

/// The all-classes results of the first target.
pub fn summary(results: &RunResults) -> &GroupResults {
    &results.targets[0].summary
}

pub fn stat<'a>(group: &'a GroupResults, metric: &str) -> &'a LatencyStat {
    group
        .latency_ms
        .get(metric)
        .unwrap_or_else(|| panic!("no {metric} in {:?}", group.latency_ms.keys()))
}

/// The built `drover` binary (`DROVER_TEST_BIN` names another build, e.g. the release one, for
/// the figures of a closing note).
pub fn drover_bin() -> PathBuf {
    std::env::var_os("DROVER_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_drover")))
}

/// Runs the CLI with `args` in `dir`, with extra environment variables.
pub fn drover(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(drover_bin());
    command.current_dir(dir).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("drover binary runs")
}

/// `drover run s.toml --out out --no-progress` in `dir`, with `extra` flags after them.
pub fn run_s_toml(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", "s.toml", "--out", "out", "--no-progress"];
    args.extend_from_slice(extra);
    drover(dir, &args, &[])
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The folder of the single run written under `out` (`drover run --out out`).
pub fn only_run_dir(out: &Path) -> PathBuf {
    let folders: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap_or_else(|e| panic!("{}: {e}", out.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    folders.into_iter().next().unwrap()
}

/// The results.json of the single run written under `out` (`drover run --out out`).
pub fn only_results(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(only_run_dir(out).join("results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}
pub mod hostile;
