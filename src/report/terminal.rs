//! The end-of-run summary table printed on stdout.

use std::fmt::Write;

use super::format::{self, SUMMARY_COLUMNS};
use crate::results::{RunResults, RunStatus};

/// Lays out rows with left-aligned label columns and right-aligned numbers.
fn table(header: &[&str], rows: &[Vec<String>], label_columns: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            if i < label_columns {
                let _ = write!(text, "{cell:<width$}");
            } else {
                let _ = write!(text, "{cell:>width$}");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Cost per target (and class, when there are several), in the reporting currency: the table
/// every view shares ([`format::cost_table`]) laid out for the terminal.
fn cost_section(cost: &format::CostTable) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n{}", cost.heading);
    let header: Vec<&str> = cost.header.iter().map(String::as_str).collect();
    out.push_str(&table(&header, &cost.rows, 3));
    for note in &cost.notes {
        let _ = writeln!(out, "{note}");
    }
    out
}

/// The summary: one row per target (all classes) and per class when there are several, then
/// errors with sample messages and warnings.
pub fn summary(results: &RunResults) -> String {
    let mut out = String::new();
    let status = match results.status {
        RunStatus::Completed => "completed",
        RunStatus::Interrupted => "INTERRUPTED (partial results)",
        RunStatus::InProgress => "IN PROGRESS (a checkpoint of an unfinished run)",
        RunStatus::BudgetExhausted => {
            "STOPPED AT THE BUDGET (requests stopped starting at a spend cap)"
        }
        RunStatus::Degraded => "DEGRADED (drover itself failed on some requests: see the warnings)",
    };
    let _ = writeln!(
        out,
        "drover {} | scenario {} | {status} in {:.1} s | started {}",
        results.drover_version, results.scenario.name, results.duration_s, results.started_at
    );
    if let Some(shard) = &results.shard {
        let _ = writeln!(
            out,
            "shard {}/{} of a sharded run (merge the shards with `drover merge`)",
            shard.index, shard.count
        );
    }
    for line in format::shard_lines(results) {
        let _ = writeln!(out, "{line}");
    }
    let mut rows = Vec::new();
    for target in &results.targets {
        for (class, group, _) in format::shown_groups(target) {
            let mut row = vec![target.name.clone(), class.to_string()];
            row.extend(format::summary_cells(group));
            rows.push(row);
        }
    }
    let mut header = vec!["target", "class"];
    header.extend(SUMMARY_COLUMNS);
    out.push('\n');
    out.push_str(&table(&header, &rows, 2));
    let _ = writeln!(
        out,
        "latencies in ms; \"corr\" is measured from the intended send time"
    );
    if let Some(note) = format::estimate_note(results) {
        let _ = writeln!(out, "{note}");
    }
    if let Some(rows) = format::corrected_table(results) {
        out.push_str("\nlatency from the intended send time (corrected) beside latency from the actual send\n");
        out.push_str(&table(&format::CORRECTED_COLUMNS, &rows, 3));
        let _ = writeln!(out, "{}", format::CORRECTED_NOTE);
    }
    for target in &results.targets {
        let summary = &target.summary;
        if summary.requests.aborted > 0 {
            let _ = writeln!(
                out,
                "{}: {} requests were still in flight at the interrupt and were aborted",
                target.name,
                format::thousands(summary.requests.aborted)
            );
        }
        if summary.retries.requests_retried > 0 {
            let _ = writeln!(
                out,
                "retries {}: {} requests needed more than one attempt ({})",
                target.name,
                format::thousands(summary.retries.requests_retried),
                summary
                    .retries
                    .attempts_failed
                    .iter()
                    .map(|(class, count)| format!("{class} x{}", format::thousands(*count)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for batch in &target.batches {
            let mut seen: Vec<(&String, &f64)> = batch.status_times_s.iter().collect();
            seen.sort_by(|a, b| a.1.total_cmp(b.1));
            let times = seen
                .iter()
                .map(|(status, at)| format!("{status} {at:.1}s"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                out,
                "batch {} {}: {} requests, {}{}; submitted in {:.2} s; seen: {times}; {} ok, {} failed, {} missing",
                target.name,
                batch.id.as_deref().unwrap_or("(not created)"),
                format::thousands(batch.requests),
                batch.status,
                batch
                    .turnaround_s
                    .map_or(String::new(), |t| format!(" after {t:.1} s")),
                batch.submit_s,
                format::thousands(batch.succeeded),
                format::thousands(batch.failed),
                format::thousands(batch.missing),
            );
        }
        for (class, count) in &summary.errors {
            let sample = summary
                .error_samples
                .get(class)
                .and_then(|s| s.first())
                .map_or(String::new(), |m| format!(" e.g. \"{m}\""));
            let _ = writeln!(
                out,
                "error {}: {class} x{}{sample}",
                target.name,
                format::thousands(*count)
            );
        }
    }
    let workload = format::workload_lines(results);
    if !workload.is_empty() {
        out.push('\n');
        for line in workload {
            let _ = writeln!(out, "{line}");
        }
    }
    let server = format::server_lines(results);
    if !server.is_empty() {
        out.push('\n');
        for line in server {
            let _ = writeln!(out, "{line}");
        }
    }
    let slo = format::slo_lines(results);
    if !slo.is_empty() {
        out.push('\n');
        for line in slo {
            let _ = writeln!(out, "{line}");
        }
    }
    for lines in [format::paired_lines(results), format::phase_lines(results)] {
        if !lines.is_empty() {
            out.push('\n');
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    if let Some(cost) = format::cost_table(results) {
        out.push_str(&cost_section(&cost));
    }
    for warning in &results.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}
