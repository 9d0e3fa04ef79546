//! Rendering [`RunResults`]: the terminal summary, the results JSON (written atomically), and a
//! report folder with `summary.md`, a self-contained `report.html`, charts (SVG and PNG) and,
//! for a run with SLOs, `junit.xml`.
//!
//! A report reads only results documents, so it renders a finished run, a saved one, or several
//! side by side (before/after, provider A/B) the same way.

pub mod charts;
pub mod compare;
pub mod csv;
pub mod format;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod requests;
pub mod sweep;
pub mod terminal;

use std::path::{Path, PathBuf};

use crate::results::{RunResults, SCHEMA};

/// One results document with the label it is shown under.
#[derive(Debug, Clone)]
pub struct ReportInput {
    pub label: String,
    pub results: RunResults,
    /// The run's requests one by one, when its folder holds a small enough `requests.jsonl`
    /// (for the per-request scatter).
    pub requests: Option<Vec<requests::RequestPoint>>,
}

impl ReportInput {
    pub fn new(label: impl Into<String>, results: RunResults) -> Self {
        ReportInput {
            label: label.into(),
            results,
            requests: None,
        }
    }

    /// With the requests of `dir/requests.jsonl`, when there and small enough.
    pub fn with_requests_in(mut self, dir: &Path) -> Self {
        self.requests = requests::read_log(&dir.join("requests.jsonl"));
        self
    }
}

/// Everything a report shows.
#[derive(Debug, Clone)]
pub struct Report {
    pub inputs: Vec<ReportInput>,
    /// A migration's verdict and phases, when the inputs are its phases.
    pub rollout: Option<crate::results::migration::RolloutResults>,
    /// A sweep's steps and knee, when the inputs are its steps (in order).
    pub sweep: Option<crate::results::sweep::SweepResults>,
}

impl Report {
    /// The report of one run, under its scenario's name.
    pub fn of_run(results: &RunResults) -> Report {
        Report {
            inputs: vec![ReportInput::new(
                results.scenario.name.clone(),
                results.clone(),
            )],
            rollout: None,
            sweep: None,
        }
    }

    /// Names each plotted line: the target, prefixed by the input's label when there are several
    /// inputs.
    pub fn series_name(&self, input: usize, target: usize) -> String {
        let target_name = &self.inputs[input].results.targets[target].name;
        if self.inputs.len() == 1 {
            target_name.clone()
        } else if self.inputs[input].results.targets.len() == 1 {
            self.inputs[input].label.clone()
        } else {
            format!("{} · {target_name}", self.inputs[input].label)
        }
    }

    /// `(input, target)` of every plotted line, in order.
    pub fn series(&self) -> Vec<(usize, usize)> {
        self.inputs
            .iter()
            .enumerate()
            .flat_map(|(i, input)| (0..input.results.targets.len()).map(move |t| (i, t)))
            .collect()
    }

    /// The report's title: the scenario, or the labels compared.
    pub fn title(&self) -> String {
        let scenario = self
            .inputs
            .first()
            .map_or("", |i| i.results.scenario.name.as_str());
        if self.sweep.is_some() {
            return format!("drover sweep: {scenario}");
        }
        if self.rollout.is_some() {
            return format!("drover migration: {scenario}");
        }
        if self.inputs.len() == 1 {
            format!("drover report: {}", self.inputs[0].results.scenario.name)
        } else {
            format!(
                "drover comparison: {}",
                self.inputs
                    .iter()
                    .map(|i| i.label.as_str())
                    .collect::<Vec<_>>()
                    .join(" vs ")
            )
        }
    }
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: cannot read results: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a drover results file: {message}")]
    Invalid { path: String, message: String },
    #[error(transparent)]
    Write(#[from] json::WriteError),
    #[error("cannot draw chart {chart}: {message}")]
    Chart { chart: String, message: String },
    #[error("cannot write groups.csv: {0}")]
    Csv(String),
}

/// Reads a results file, checking its schema.
pub fn read_results(path: &Path) -> Result<RunResults, ReportError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Unreadable {
        path: shown.clone(),
        source,
    })?;
    parse_results(&text, &shown)
}

/// Parses results text; `shown` names its source in errors.
pub fn parse_results(text: &str, shown: &str) -> Result<RunResults, ReportError> {
    let shown = shown.to_string();
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ReportError::Invalid {
            path: shown.clone(),
            message: format!(
                "invalid JSON at line {} column {}: {e}",
                e.line(),
                e.column()
            ),
        })?;
    match value.get("schema").and_then(|s| s.as_str()) {
        Some(SCHEMA) => {}
        Some(other) => {
            return Err(ReportError::Invalid {
                path: shown,
                message: format!(
                    "schema \"{other}\" is not supported (this drover reads \"{SCHEMA}\")"
                ),
            })
        }
        None => {
            return Err(ReportError::Invalid {
                path: shown,
                message: format!("no \"schema\" field (expected \"{SCHEMA}\")"),
            })
        }
    }
    // A field of the wrong type (a `null` where a number belongs, say) is named by its path.
    serde_path_to_error::deserialize(value).map_err(|e| ReportError::Invalid {
        path: shown,
        message: format!("field {}: {}", e.path(), e.inner()),
    })
}

/// What a written report folder holds.
#[derive(Debug, Clone)]
pub struct WrittenReport {
    pub dir: PathBuf,
    pub charts: Vec<String>,
    /// The extra files written beside summary.md and report.html (`junit.xml`, CSV files).
    pub extras: Vec<String>,
}

impl WrittenReport {
    /// `…/report.html (6 charts, summary.md, junit.xml)`: what a command prints of it.
    pub fn described(&self) -> String {
        let mut parts = vec![format!("{} charts", self.charts.len()), "summary.md".into()];
        parts.extend(self.extras.iter().cloned());
        format!(
            "{} ({})",
            self.dir.join("report.html").display(),
            parts.join(", ")
        )
    }
}

/// Writes `groups.csv` (one row per run, target and class: [`csv::groups_csv`]) into `dir`.
pub fn write_groups_csv(dir: &Path, report: &Report) -> Result<PathBuf, ReportError> {
    let bytes = csv::groups_csv(report).map_err(|e| ReportError::Csv(e.to_string()))?;
    let path = dir.join("groups.csv");
    json::write_atomically(&path, &bytes)?;
    Ok(path)
}

/// Writes `summary.md`, `report.html` and `charts/*.svg|png` into `dir`.
pub fn write_report(dir: &Path, report: &Report) -> Result<WrittenReport, ReportError> {
    let charts = charts::build(report)?;
    let chart_dir = dir.join("charts");
    for chart in &charts {
        json::write_atomically(
            &chart_dir.join(format!("{}.svg", chart.id)),
            chart.svg.as_bytes(),
        )?;
        charts::write_png(chart, &chart_dir.join(format!("{}.png", chart.id)))?;
    }
    json::write_atomically(
        &dir.join("summary.md"),
        markdown::render(report, &charts).as_bytes(),
    )?;
    json::write_atomically(
        &dir.join("report.html"),
        html::render(report, &charts).as_bytes(),
    )?;
    // A run's own SLO assertions as JUnit for CI (a comparison's JUnit is `drover compare`'s).
    let mut extras = Vec::new();
    if let [input] = report.inputs.as_slice() {
        if let Some(xml) = junit::slo_junit(&input.results) {
            json::write_atomically(&dir.join("junit.xml"), xml.as_bytes())?;
            extras.push("junit.xml".to_string());
        }
    }
    Ok(WrittenReport {
        dir: dir.to_path_buf(),
        charts: charts.iter().map(|c| c.id.clone()).collect(),
        extras,
    })
}
