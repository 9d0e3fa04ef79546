//! `drover history add` and `drover history report`: keep each run's headline figures in a
//! SQLite file and render the trends over the last runs, flagging slow drifts.

use std::path::PathBuf;

use crate::history::render::{self, HistoryView};
use crate::history::{trend, Added, Provenance, Store};

use super::Outcome;

/// `drover history add`'s arguments.
#[derive(Debug, Clone)]
pub struct AddRequest {
    pub results: Vec<PathBuf>,
    pub db: PathBuf,
    pub provenance: Provenance,
}

/// The commit and branch CI names in its environment (GitHub Actions, then GitLab CI), for
/// what a flag does not give.
pub fn provenance_from_env(mut given: Provenance) -> Provenance {
    let var = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    };
    given.commit = given
        .commit
        .or_else(|| var(&["GITHUB_SHA", "CI_COMMIT_SHA"]));
    given.branch = given
        .branch
        .or_else(|| var(&["GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME"]));
    given
}

/// Adds each results file to the history.
pub fn add(request: AddRequest) -> Outcome {
    let mut store = match Store::open(&request.db) {
        Ok(store) => store,
        Err(error) => {
            eprintln!("error: {error}");
            return Outcome::BadInput;
        }
    };
    for path in &request.results {
        let results = match crate::report::read_results(path) {
            Ok(results) => results,
            Err(error) => {
                eprintln!("error: {error}");
                return Outcome::BadInput;
            }
        };
        let shown = path.display().to_string();
        match store.add(&results, &request.provenance, &shown) {
            Ok(Added::New(id)) => println!(
                "history: added {shown} as run {id} ({} started {}, {} target(s))",
                results.scenario.name,
                results.started_at,
                results.targets.len()
            ),
            Ok(Added::Already(id)) => println!(
                "history: {shown} is already run {id} (same scenario, start and host); nothing changed"
            ),
            Err(error) => {
                eprintln!("error: {error}");
                return Outcome::BadInput;
            }
        }
    }
    Outcome::Ok
}

/// `drover history report`'s arguments.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub db: PathBuf,
    /// The scenario whose runs to show (default: the scenario of the run added last).
    pub scenario: Option<String>,
    pub last: usize,
    /// The relative move a drift needs (0.10 for 10%).
    pub threshold: f64,
    pub out: Option<PathBuf>,
    /// Exit with code 8 when a figure drifted.
    pub fail_on_drift: bool,
}

/// Renders the trends over the last runs.
pub fn report(request: ReportRequest) -> Outcome {
    if !request.db.exists() {
        eprintln!(
            "error: {}: no such history (make one with `drover history add RESULTS --db {}`)",
            request.db.display(),
            request.db.display()
        );
        return Outcome::BadInput;
    }
    let store = match Store::open(&request.db) {
        Ok(store) => store,
        Err(error) => {
            eprintln!("error: {error}");
            return Outcome::BadInput;
        }
    };
    let shown = request.db.display().to_string();
    let scenario = match request.scenario.clone() {
        Some(scenario) => scenario,
        None => match store.latest_scenario() {
            Ok(Some(scenario)) => scenario,
            Ok(None) => {
                eprintln!(
                    "error: {}",
                    crate::history::HistoryError::Empty { path: shown }
                );
                return Outcome::BadInput;
            }
            Err(error) => {
                eprintln!("error: {error}");
                return Outcome::BadInput;
            }
        },
    };
    let runs = match store.recent(&scenario, request.last) {
        Ok(runs) if runs.is_empty() => {
            eprintln!(
                "error: {}",
                crate::history::HistoryError::NoRuns {
                    path: shown,
                    scenario
                }
            );
            return Outcome::BadInput;
        }
        Ok(runs) => runs,
        Err(error) => {
            eprintln!("error: {error}");
            return Outcome::BadInput;
        }
    };
    let view = HistoryView {
        trends: trend::trends(&runs, request.threshold),
        scenario,
        runs,
        threshold: request.threshold,
    };
    println!("{}", view.headline());
    for drift in view.drifts() {
        println!("drift: {}", trend::describe(drift, view.threshold));
    }
    let out = request.out.clone().unwrap_or_else(|| {
        let stamp = crate::report::json::utc_stamp(std::time::SystemTime::now());
        PathBuf::from("reports").join(format!("history-{stamp}"))
    });
    match render::write(&out, &view) {
        Ok(chart) => println!(
            "report: {} (history.md{})",
            out.join("history.html").display(),
            chart.map_or(String::new(), |id| format!(", charts/{id}.svg"))
        ),
        Err(error) => {
            eprintln!("error: {error}");
            return Outcome::RunFailed;
        }
    }
    if request.fail_on_drift && !view.drifts().is_empty() {
        Outcome::Regressed
    } else {
        Outcome::Ok
    }
}
