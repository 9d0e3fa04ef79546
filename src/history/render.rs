//! The trend report: `history.md` (runs table, drifts, every trend), `history.html` (the same,
//! with the charts inline) and `charts/history.svg|png` (TTFT, E2E, throughput, error rate and
//! cost over the runs, one line per target).

use std::fmt::Write;

use super::figures;
use super::store::StoredRun;
use super::trend::{describe, Trend, TrendVerdict, MIN_RUNS};
use crate::report::charts::{self, Chart, Line, Panel};
use crate::report::html::{self, escape};
use crate::report::markdown;
use crate::report::ReportError;

/// Everything the trend report shows.
#[derive(Debug, Clone)]
pub struct HistoryView {
    pub scenario: String,
    /// The runs of the window, oldest first.
    pub runs: Vec<StoredRun>,
    pub trends: Vec<Trend>,
    /// The relative move that counts (0.10 for 10%).
    pub threshold: f64,
}

impl HistoryView {
    /// The drifts, largest first.
    pub fn drifts(&self) -> Vec<&Trend> {
        let mut drifts: Vec<&Trend> = self
            .trends
            .iter()
            .filter(|t| t.verdict == TrendVerdict::Drift)
            .collect();
        drifts.sort_by(|a, b| b.change.abs().total_cmp(&a.change.abs()));
        drifts
    }

    /// The headline: how many runs, and what drifted.
    pub fn headline(&self) -> String {
        let span = match (self.runs.first(), self.runs.last()) {
            (Some(first), Some(last)) => format!(", {} to {}", first.started_at, last.started_at),
            _ => String::new(),
        };
        let verdict = if self.runs.len() < MIN_RUNS {
            format!(
                "insufficient: a trend needs at least {MIN_RUNS} completed runs, there are {}",
                self.runs.len()
            )
        } else {
            match self.drifts().len() {
                0 => format!(
                    "no drift: no figure moved the worse way by {:.0}% or more with a significant trend",
                    self.threshold * 100.0
                ),
                n => format!("{n} drift(s)"),
            }
        };
        format!(
            "history of {}: {} completed run(s){span}; {verdict}",
            self.scenario,
            self.runs.len()
        )
    }

    fn targets(&self) -> Vec<&str> {
        let mut targets: Vec<&str> = Vec::new();
        for run in &self.runs {
            for target in run.figures.keys() {
                if !targets.contains(&target.as_str()) {
                    targets.push(target);
                }
            }
        }
        targets
    }

    /// The runs table: one row per run and target.
    pub fn table(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let shown_figures = [
            "ttft.p50",
            "ttft.p99",
            "e2e.p50",
            "e2e.p99",
            "output_tokens_per_s",
            "error_rate",
            "cost_per_mtok",
        ];
        let mut header: Vec<String> = ["run", "id", "started", "commit", "branch", "target"]
            .iter()
            .map(|c| c.to_string())
            .collect();
        header.extend(
            shown_figures
                .iter()
                .filter_map(|k| figures::figure(k))
                .map(|f| f.label.to_string()),
        );
        let mut rows = Vec::new();
        for (i, run) in self.runs.iter().enumerate() {
            for (target, values) in &run.figures {
                let mut row = vec![
                    (i + 1).to_string(),
                    run.id.to_string(),
                    run.started_at.clone(),
                    run.commit
                        .as_deref()
                        .map_or("-".into(), |c| c.chars().take(12).collect()),
                    run.branch.clone().unwrap_or_else(|| "-".into()),
                    target.clone(),
                ];
                for key in shown_figures {
                    let figure = figures::figure(key).expect("a kept figure");
                    row.push(
                        values
                            .get(key)
                            .map_or("-".into(), |v| figures::shown(figure, *v)),
                    );
                }
                rows.push(row);
            }
        }
        (header, rows)
    }

    /// Every judged trend: target, figure, verdict, change, p-value, largest step.
    pub fn trend_rows(&self) -> Vec<Vec<String>> {
        self.trends
            .iter()
            .map(|t| {
                vec![
                    t.target.clone(),
                    t.figure.key.to_string(),
                    t.verdict.name().to_string(),
                    format!("{:+.1}%", t.change * 100.0),
                    t.p_value.map_or("-".into(), |p| format!("{p:.3}")),
                    format!("{:.1}%", t.largest_step * 100.0),
                    t.values.len().to_string(),
                ]
            })
            .collect()
    }
}

/// The trend chart: TTFT, E2E, output tokens/s, error rate and (when priced) cost per run.
pub fn chart(view: &HistoryView) -> Result<Option<Chart>, ReportError> {
    /// A panel's title, unit, and its figures (key, drawn dashed).
    type PanelSpec<'a> = (&'a str, &'a str, &'a [(&'a str, bool)]);
    let panel_specs: [PanelSpec; 5] = [
        (
            "TTFT (p50 solid, p99 dashed)",
            "ms",
            &[("ttft.p50", false), ("ttft.p99", true)],
        ),
        (
            "E2E (p50 solid, p99 dashed)",
            "ms",
            &[("e2e.p50", false), ("e2e.p99", true)],
        ),
        (
            "Output tokens per second",
            "tokens/s",
            &[("output_tokens_per_s", false)],
        ),
        ("Error rate", "%", &[("error_rate", false)]),
        (
            "Cost per 1M output tokens",
            "cost",
            &[("cost_per_mtok", false)],
        ),
    ];
    let targets = view.targets();
    let mut panels = Vec::new();
    for (title, unit, keys) in panel_specs {
        let mut lines = Vec::new();
        for (color, target) in targets.iter().enumerate() {
            for (key, dashed) in keys {
                let scale = if unit == "%" { 100.0 } else { 1.0 };
                let points: Vec<(f64, f64)> = view
                    .runs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, run)| {
                        let value = run.figures.get(*target)?.get(*key)?;
                        Some(((i + 1) as f64, value * scale))
                    })
                    .collect();
                if !points.is_empty() {
                    let label = figures::figure(key).map_or(*key, |f| f.label);
                    lines.push(Line {
                        name: if targets.len() > 1 || keys.len() > 1 {
                            format!("{target} {label}")
                        } else {
                            target.to_string()
                        },
                        color,
                        dashed: *dashed,
                        markers_only: false,
                        points,
                    });
                }
            }
        }
        if !lines.is_empty() {
            panels.push(Panel {
                title: title.into(),
                x_desc: "run (oldest → newest, as numbered in the table)".into(),
                y_desc: unit.into(),
                x_nines: false,
                x_log: false,
                lines,
            });
        }
    }
    if panels.is_empty() {
        return Ok(None);
    }
    charts::chart(
        "history",
        &format!("Trends — {} · last {} runs", view.scenario, view.runs.len()),
        "Each run's headline figures in the order the runs started; a drift is a series that moves one way beyond chance (Mann–Kendall) and beyond the threshold (Theil–Sen slope over the window).",
        panels,
    )
    .map(Some)
}

/// A Markdown table with `label_columns` text columns, then numbers.
fn md_table(out: &mut String, header: &[String], rows: &[Vec<String>], label_columns: usize) {
    let columns: Vec<&str> = header.iter().map(String::as_str).collect();
    out.push_str(&markdown::header_with(&columns, label_columns));
    for cells in rows {
        out.push_str(&markdown::row(cells));
    }
}

const TREND_COLUMNS: [&str; 7] = [
    "target",
    "figure",
    "verdict",
    "change",
    "p",
    "largest step",
    "runs",
];

/// `history.md`.
pub fn markdown(view: &HistoryView, chart: Option<&Chart>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# drover history: {}\n", view.scenario);
    let _ = writeln!(out, "{}\n", markdown::cell(&view.headline()));
    for drift in view.drifts() {
        let _ = writeln!(
            out,
            "- ✗ {}",
            markdown::cell(&describe(drift, view.threshold))
        );
    }
    for trend in view
        .trends
        .iter()
        .filter(|t| t.verdict == TrendVerdict::Improving)
    {
        let _ = writeln!(
            out,
            "- ℹ {}",
            markdown::cell(&describe(trend, view.threshold))
        );
    }
    let _ = writeln!(out, "\n## Runs\n");
    let (header, rows) = view.table();
    md_table(&mut out, &header, &rows, 6);
    let _ = writeln!(out, "\n## Trends\n");
    let header: Vec<String> = TREND_COLUMNS.iter().map(|c| c.to_string()).collect();
    md_table(&mut out, &header, &view.trend_rows(), 3);
    let _ = writeln!(
        out,
        "\nchange: the Theil–Sen slope carried over the window, relative to the median; p: Mann–Kendall, two-sided; a drift needs p < 0.05 and a move of {:.0}% or more the worse way, over at least {MIN_RUNS} runs.",
        view.threshold * 100.0
    );
    if let Some(chart) = chart {
        let _ = writeln!(
            out,
            "\n## Chart\n\n- [{}](charts/{}.svg)",
            chart.title, chart.id
        );
    }
    out
}

/// `history.html`: self-contained, the chart inline.
pub fn html(view: &HistoryView, chart: Option<&Chart>) -> String {
    let title = format!("drover history: {}", view.scenario);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>{}</title><style>{}</style></head><body>\n",
        escape(&title),
        html::STYLE
    );
    let _ = writeln!(out, "<h1>{}</h1><ul class=\"verdicts\">", escape(&title));
    let class = if view.drifts().is_empty() {
        "info"
    } else {
        "fail"
    };
    let _ = write!(
        out,
        "<li class=\"{class}\">{}</li>",
        escape(&view.headline())
    );
    for drift in view.drifts() {
        let _ = write!(
            out,
            "<li class=\"fail\">{}</li>",
            escape(&describe(drift, view.threshold))
        );
    }
    out.push_str("</ul>\n");
    if let Some(chart) = chart {
        let _ = writeln!(
            out,
            "<figure id=\"chart-history\">{}<figcaption>{}</figcaption></figure>",
            html::inline_svg(&chart.svg),
            escape(&chart.caption)
        );
    }
    out.push_str("<h2>Runs</h2>");
    let (header, rows) = view.table();
    html::table(&mut out, &header, &rows, 6);
    out.push_str("<h2>Trends</h2>");
    let header: Vec<String> = TREND_COLUMNS.iter().map(|c| c.to_string()).collect();
    html::table(&mut out, &header, &view.trend_rows(), 3);
    out.push_str("</body></html>\n");
    out
}

/// Writes `history.md`, `history.html` and the chart into `dir`; returns the chart's id, if
/// there was data to draw.
pub fn write(dir: &std::path::Path, view: &HistoryView) -> Result<Option<String>, ReportError> {
    let chart = chart(view)?;
    if let Some(chart) = &chart {
        let charts_dir = dir.join("charts");
        crate::report::json::write_atomically(
            &charts_dir.join(format!("{}.svg", chart.id)),
            chart.svg.as_bytes(),
        )?;
        charts::write_png(chart, &charts_dir.join(format!("{}.png", chart.id)))?;
    }
    crate::report::json::write_atomically(
        &dir.join("history.md"),
        markdown(view, chart.as_ref()).as_bytes(),
    )?;
    crate::report::json::write_atomically(
        &dir.join("history.html"),
        html(view, chart.as_ref()).as_bytes(),
    )?;
    Ok(chart.map(|c| c.id))
}
