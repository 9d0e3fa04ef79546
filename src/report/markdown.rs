//! `summary.md`: GitHub-flavoured Markdown (fit for `$GITHUB_STEP_SUMMARY`) with the verdicts,
//! the summary table, comparisons and errors — the same numbers as the terminal and HTML.

use std::fmt::Write;

use super::charts::Chart;
use super::compare::{self, Level};
use super::format::{self, SUMMARY_COLUMNS};
use super::Report;

/// A table cell: pipes escaped, line breaks made spaces.
pub(crate) fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A table row.
pub(crate) fn row(cells: &[String]) -> String {
    format!(
        "| {} |\n",
        cells
            .iter()
            .map(|c| cell(c))
            .collect::<Vec<_>>()
            .join(" | ")
    )
}

fn header(columns: &[&str]) -> String {
    header_with(columns, 3)
}

/// A table's header and alignment rows: the first `label_columns` left-aligned, the rest (the
/// numbers) right-aligned.
pub(crate) fn header_with(columns: &[&str], label_columns: usize) -> String {
    let cells: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let mut out = row(&cells);
    out.push_str(&format!(
        "|{}\n",
        columns
            .iter()
            .enumerate()
            .map(|(i, _)| if i < label_columns { "---|" } else { "---:|" })
            .collect::<String>()
    ));
    out
}

/// The rows of the summary table: run label, target, class, then [`SUMMARY_COLUMNS`].
pub fn summary_rows(report: &Report) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for input in &report.inputs {
        for target in &input.results.targets {
            for (class, group, _) in format::shown_groups(target) {
                let mut row = vec![input.label.clone(), target.name.clone(), class.to_string()];
                row.extend(format::summary_cells(group));
                rows.push(row);
            }
        }
    }
    rows
}

pub fn render(report: &Report, charts: &[Chart]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", report.title());
    for input in &report.inputs {
        let r = &input.results;
        let _ = writeln!(
            out,
            "- **{}**: scenario `{}`, started {}, {:.1} s, {:?}, drover {}, host {} ({} cores)",
            input.label,
            r.scenario.name,
            r.started_at,
            r.duration_s,
            r.status,
            r.drover_version,
            r.environment.host,
            r.environment.cores
        );
    }
    let _ = writeln!(out, "\n## Verdicts\n");
    for verdict in compare::verdicts(report) {
        let mark = match verdict.level {
            Level::Fail => "✗",
            Level::Warn => "⚠",
            Level::Info => "ℹ",
        };
        let _ = writeln!(out, "- {mark} {}", cell(&verdict.text));
    }
    if let Some(sweep) = &report.sweep {
        let _ = writeln!(out, "\n## Sweep\n");
        let _ = writeln!(out, "{}\n", cell(&super::sweep::knee_line(sweep)));
        let (columns, rows) = super::sweep::step_table(sweep);
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        out.push_str(&header(&columns));
        for cells in &rows {
            out.push_str(&row(cells));
        }
        let _ = writeln!(
            out,
            "\nThe first target's figures, one row per step of {:.0} s; each step's own results are in its folder.",
            sweep.step_duration_s
        );
    }
    let _ = writeln!(out, "\n## Summary\n");
    let mut columns = vec!["run", "target", "class"];
    columns.extend(SUMMARY_COLUMNS);
    out.push_str(&header(&columns));
    for cells in summary_rows(report) {
        out.push_str(&row(&cells));
    }
    let _ = writeln!(
        out,
        "\nLatencies in ms. \"E2E p99 corr\" is measured from the intended send time (coordinated omission corrected)."
    );
    for note in report
        .inputs
        .iter()
        .filter_map(|input| format::estimate_note(&input.results))
    {
        let _ = writeln!(out, "\n{note}");
    }
    for input in &report.inputs {
        let Some(rows) = format::corrected_table(&input.results) else {
            continue;
        };
        let _ = writeln!(out, "\n## Corrected latency: {}\n", cell(&input.label));
        out.push_str(&header(&format::CORRECTED_COLUMNS));
        for cells in &rows {
            out.push_str(&row(cells));
        }
        let _ = writeln!(out, "\nLatencies in ms. {}", format::CORRECTED_NOTE);
    }
    for input in &report.inputs {
        let Some(cost) = format::cost_table(&input.results) else {
            continue;
        };
        let _ = writeln!(out, "\n## Cost: {}\n", cell(&input.label));
        let _ = writeln!(out, "{}\n", cell(&cost.heading));
        let columns: Vec<&str> = cost.header.iter().map(String::as_str).collect();
        out.push_str(&header(&columns));
        for cells in &cost.rows {
            out.push_str(&row(cells));
        }
        if !cost.notes.is_empty() {
            out.push('\n');
        }
        for note in &cost.notes {
            let _ = writeln!(out, "- {}", cell(note));
        }
    }
    let workload: Vec<(String, String)> = report
        .inputs
        .iter()
        .flat_map(|input| {
            format::workload_lines(&input.results)
                .into_iter()
                .map(|line| (input.label.clone(), line))
        })
        .collect();
    if !workload.is_empty() {
        let _ = writeln!(out, "\n## Workload\n");
        for (label, line) in workload {
            let _ = writeln!(out, "- {}: {}", cell(&label), cell(&line));
        }
    }
    for input in &report.inputs {
        let server = format::server_lines(&input.results);
        if !server.is_empty() {
            let _ = writeln!(out, "\n## Server metrics: {}\n", cell(&input.label));
            for line in server {
                let _ = writeln!(out, "- {}", cell(&line));
            }
        }
    }
    for input in &report.inputs {
        let shards = format::shard_lines(&input.results);
        if !shards.is_empty() {
            let _ = writeln!(out, "\n## Shards: {}\n", cell(&input.label));
            for line in shards {
                let _ = writeln!(out, "- {}", cell(line.trim_start()));
            }
        }
    }
    for input in &report.inputs {
        let slo = format::slo_lines(&input.results);
        if !slo.is_empty() {
            let _ = writeln!(out, "\n## SLOs: {}\n", cell(&input.label));
            for line in slo {
                let _ = writeln!(out, "- {}", cell(&line));
            }
        }
    }
    if let Some(rollout) = &report.rollout {
        let _ = writeln!(out, "\n## Rollout\n");
        for line in format::rollout_lines(rollout) {
            let _ = writeln!(out, "- {}", cell(&line));
        }
    }
    for input in &report.inputs {
        let Some(paired) = &input.results.paired else {
            continue;
        };
        let _ = writeln!(out, "\n## Shadow pairs: {}\n", cell(&input.label));
        for line in format::paired_lines(&input.results)
            .iter()
            .chain(&format::phase_lines(&input.results))
        {
            let _ = writeln!(out, "- {}", cell(line.trim_start()));
        }
        for group in &paired.groups {
            let (columns, rows) = format::paired_table(group);
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            out.push('\n');
            out.push_str(&header(&columns));
            for cells in &rows {
                out.push_str(&row(cells));
            }
        }
    }
    let comparisons = compare::comparisons(report);
    if !comparisons.is_empty() {
        let _ = writeln!(out, "\n## Comparison against {}\n", report.inputs[0].label);
        for comparison in &comparisons {
            let _ = writeln!(out, "### {}\n", comparison.target);
            let mut columns: Vec<String> = vec!["metric".into()];
            for (i, input) in report.inputs.iter().enumerate() {
                columns.push(input.label.clone());
                if i > 0 {
                    columns.push(format!("Δ {}", input.label));
                }
            }
            let column_refs: Vec<&str> = columns.iter().map(String::as_str).collect();
            out.push_str(&header(&column_refs));
            for delta in &comparison.rows {
                let mut cells = vec![delta.metric.to_string()];
                for i in 0..report.inputs.len() {
                    cells.push(delta.shown(i));
                    if i > 0 {
                        cells.push(delta.shown_change(i));
                    }
                }
                out.push_str(&row(&cells));
            }
            out.push('\n');
        }
    }
    let errors = error_rows(report);
    let _ = writeln!(out, "\n## Errors\n");
    if errors.is_empty() {
        let _ = writeln!(out, "No request failed.");
    } else {
        out.push_str(&header(&[
            "run",
            "target",
            "class",
            "count",
            "sample message",
        ]));
        for cells in errors {
            out.push_str(&row(&cells));
        }
    }
    let _ = writeln!(out, "\n## Charts\n");
    if charts.is_empty() {
        let _ = writeln!(
            out,
            "No chart: no request succeeded, so there is nothing to plot."
        );
    }
    for chart in charts {
        let _ = writeln!(out, "- [{}](charts/{}.svg)", chart.title, chart.id);
    }
    out
}

/// Error rows: run, target, error class, count, first sample message (secrets already scrubbed).
pub fn error_rows(report: &Report) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for input in &report.inputs {
        for target in &input.results.targets {
            for (class, count) in &target.summary.errors {
                let sample = target
                    .summary
                    .error_samples
                    .get(class)
                    .and_then(|s| s.first())
                    .cloned()
                    .unwrap_or_default();
                rows.push(vec![
                    input.label.clone(),
                    target.name.clone(),
                    class.clone(),
                    format::thousands(*count),
                    sample,
                ]);
            }
        }
    }
    rows
}
