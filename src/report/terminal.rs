//! The end-of-run summary table printed on stdout.

use std::fmt::Write;

use crate::results::{GroupResults, RunResults, RunStatus};

fn ms(group: &GroupResults, metric: &str, pick: fn(&crate::results::LatencyStat) -> f64) -> String {
    group
        .latency_ms
        .get(metric)
        .map_or("-".into(), |stat| format!("{:.1}", pick(stat)))
}

fn row(target: &str, class: &str, group: &GroupResults) -> Vec<String> {
    let p50 = |s: &crate::results::LatencyStat| s.p50;
    let p99 = |s: &crate::results::LatencyStat| s.p99;
    vec![
        target.to_string(),
        class.to_string(),
        format!("{}/{}", group.requests.succeeded, group.requests.sent),
        group.requests.failed.to_string(),
        format!("{:.1}", group.throughput.requests_per_s),
        format!("{:.0}", group.throughput.output_tokens_per_s),
        ms(group, "ttft", p50),
        ms(group, "ttft", p99),
        ms(group, "itl", p50),
        ms(group, "itl", p99),
        ms(group, "tpot", p50),
        ms(group, "e2e", p50),
        ms(group, "e2e", p99),
        ms(group, "e2e_corrected", p99),
    ]
}

/// Lays out rows with right-aligned numeric columns.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            if i < 2 {
                let _ = write!(text, "{cell:<width$}");
            } else {
                let _ = write!(text, "{cell:>width$}");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
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
    };
    let _ = writeln!(
        out,
        "drover {} | scenario {} | {status} in {:.1} s | started {}",
        results.drover_version, results.scenario.name, results.duration_s, results.started_at
    );
    let mut rows = Vec::new();
    for target in &results.targets {
        rows.push(row(&target.name, "(all)", &target.summary));
        if target.classes.len() > 1 {
            for class in &target.classes {
                rows.push(row(&target.name, &class.name, &class.results));
            }
        }
    }
    out.push('\n');
    out.push_str(&table(
        &[
            "target",
            "class",
            "ok/sent",
            "failed",
            "req/s",
            "out tok/s",
            "TTFT p50",
            "TTFT p99",
            "ITL p50",
            "ITL p99",
            "TPOT p50",
            "E2E p50",
            "E2E p99",
            "E2E p99 corr",
        ],
        &rows,
    ));
    let _ = writeln!(
        out,
        "latencies in ms; \"corr\" is measured from the intended send time"
    );
    for target in &results.targets {
        let summary = &target.summary;
        if summary.requests.aborted > 0 {
            let _ = writeln!(
                out,
                "{}: {} requests were still in flight at the interrupt and were aborted",
                target.name, summary.requests.aborted
            );
        }
        for (class, count) in &summary.errors {
            let sample = summary
                .error_samples
                .get(class)
                .and_then(|s| s.first())
                .map_or(String::new(), |m| format!(" e.g. \"{m}\""));
            let _ = writeln!(out, "error {}: {class} x{count}{sample}", target.name);
        }
    }
    for warning in &results.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}
