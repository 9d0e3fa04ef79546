//! `groups.csv`: one row per run, target and class (the `(all)` row of each target first) with
//! its counts, rates, latency percentiles and cost as plain numbers, for spreadsheets and
//! scripts. Missing values (no successful request, an unpriced target) are empty cells.

use super::format;
use super::Report;
use crate::results::GroupResults;

/// The latency metrics and percentiles written, each as `{metric}_{p}_ms`.
const LATENCY: [&str; 6] = [
    "ttft",
    "ttft_corrected",
    "itl",
    "tpot",
    "e2e",
    "e2e_corrected",
];
const PERCENTILES: [&str; 3] = ["p50", "p90", "p99"];

/// The header of `groups.csv`.
pub fn columns() -> Vec<String> {
    let mut columns: Vec<String> = [
        "run",
        "target",
        "class",
        "mode",
        "sent",
        "succeeded",
        "failed",
        "throttled",
        "aborted",
        "requests_per_s",
        "output_tokens_per_s",
        "input_tokens",
        "output_tokens",
        "error_rate",
        "throttle_rate",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect();
    for metric in LATENCY {
        for p in PERCENTILES {
            columns.push(format!("{metric}_{p}_ms"));
        }
    }
    columns.extend(
        [
            "cost_currency",
            "cost_total",
            "cost_per_request",
            "cost_per_million_output_tokens",
            "cost_requests_estimated",
        ]
        .iter()
        .map(|c| c.to_string()),
    );
    columns
}

fn number(value: f64) -> String {
    if value.is_finite() {
        value.to_string()
    } else {
        String::new()
    }
}

fn row(run: &str, target: &str, class: &str, mode: &str, group: &GroupResults) -> Vec<String> {
    let requests = &group.requests;
    let mut cells = vec![
        run.to_string(),
        target.to_string(),
        class.to_string(),
        mode.to_string(),
        requests.sent.to_string(),
        requests.succeeded.to_string(),
        requests.failed.to_string(),
        requests.throttled.to_string(),
        requests.aborted.to_string(),
        number(group.throughput.requests_per_s),
        number(group.throughput.output_tokens_per_s),
        group.tokens.input.to_string(),
        group.tokens.output.to_string(),
        number(format::error_rate(group)),
        number(format::throttle_rate(group)),
    ];
    for metric in LATENCY {
        let stat = group.latency_ms.get(metric);
        for p in PERCENTILES {
            cells.push(stat.map_or(String::new(), |s| {
                number(match p {
                    "p50" => s.p50,
                    "p90" => s.p90,
                    _ => s.p99,
                })
            }));
        }
    }
    match &group.cost {
        Some(cost) => cells.extend([
            cost.currency.clone(),
            number(cost.total),
            number(cost.per_request),
            if group.tokens.output > 0 {
                number(cost.per_million_output_tokens)
            } else {
                String::new()
            },
            cost.requests_estimated.to_string(),
        ]),
        None => cells.extend(std::iter::repeat_n(String::new(), 5)),
    }
    cells
}

/// Every group of every input of the report, as CSV text.
pub fn groups_csv(report: &Report) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(columns())?;
    for input in &report.inputs {
        for target in &input.results.targets {
            writer.write_record(row(
                &input.label,
                &target.name,
                "(all)",
                &target.mode,
                &target.summary,
            ))?;
            for class in &target.classes {
                let mode = class.route.as_deref().unwrap_or(&target.mode);
                writer.write_record(row(
                    &input.label,
                    &target.name,
                    &class.name,
                    mode,
                    &class.results,
                ))?;
            }
        }
    }
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}
