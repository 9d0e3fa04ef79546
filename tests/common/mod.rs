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

/// The published JSON Schema of results documents (docs/results.schema.json), compiled once.
fn results_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(drover::results::SCHEMA_FILE);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        jsonschema::validator_for(&schema).expect("the published schema compiles")
    })
}

/// Panics, naming `origin` and every violation, unless `document` validates against the
/// published schema.
pub fn assert_valid_results(document: &serde_json::Value, origin: &str) {
    let errors: Vec<String> = results_validator()
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{origin} does not validate against {}:\n{}",
        drover::results::SCHEMA_FILE,
        errors.join("\n")
    );
}

/// Every results document (schema drover.results/v1) written at or after `since` under
/// `place` (a file or a folder, searched a few levels deep) validates against the schema.
pub fn check_results_written(place: &Path, since: std::time::SystemTime) -> usize {
    let mut checked = 0;
    let mut pending = vec![(place.to_path_buf(), 0)];
    while let Some((path, depth)) = pending.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            let skip = path
                .file_name()
                .is_some_and(|n| n == "target" || n == ".git" || n == "node_modules");
            if depth < 6 && !skip {
                if let Ok(entries) = std::fs::read_dir(&path) {
                    for entry in entries.flatten() {
                        pending.push((entry.path(), depth + 1));
                    }
                }
            }
            continue;
        }
        let fresh = meta.modified().is_ok_and(|t| t >= since);
        if !fresh || path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(document) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if document.get("schema").and_then(|s| s.as_str()) == Some(drover::results::SCHEMA) {
            assert_valid_results(&document, &path.display().to_string());
            checked += 1;
        }
    }
    checked
}

/// Parses and runs scenario text (as if read from `dir/scenario.toml`); the results validate
/// against the published schema as they would be written.
pub async fn run_scenario_in(dir: &Path, text: &str) -> RunResults {
    let path = dir.join("scenario.toml");
    let plan = drover::scenario::parse(text, &path).unwrap_or_else(|e| panic!("{e}"));
    let results = driver::run(&plan, RunOptions::default(), StopSignal::default())
        .await
        .expect("run starts");
    assert_valid_results(
        &serde_json::to_value(&results).unwrap(),
        "the results of a library run",
    );
    results
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

/// Runs the CLI with `args` in `dir`, with extra environment variables. Every results document
/// the command wrote (under `dir`, or a path named by an argument, outside the repository's own
/// folders) must validate against the published schema.
pub fn drover(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(drover_bin());
    command.current_dir(dir).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let since = std::time::SystemTime::now();
    let output = command.output().expect("drover binary runs");
    let repository = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut places: Vec<PathBuf> = args
        .iter()
        .map(|arg| dir.join(arg))
        .filter(|path| path.exists())
        .collect();
    places.push(dir.to_path_buf());
    for place in places {
        // The repository's own folders hold fixtures (some broken on purpose) and reports/.
        if !place.starts_with(repository) {
            check_results_written(&place, since);
        }
    }
    output
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
