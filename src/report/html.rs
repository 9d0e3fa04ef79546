//! `report.html`: one self-contained file (inline SVG and CSS; no scripts, fonts or fetches) with
//! verdicts first, then the summary table, comparisons, charts, errors, the scenario as run and
//! the environment. The markup is also well-formed XML, so tests can parse it strictly.

use std::fmt::Write;

use super::charts::Chart;
use super::compare::{self, Level};
use super::format::SUMMARY_COLUMNS;
use super::markdown::{error_rows, summary_rows};
use super::Report;

/// Escapes text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) const STYLE: &str = "
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1.5em; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #e5e5e5; padding-bottom: 0.2em; margin-top: 1.8em; }
.meta { color: #555; margin: 0.2em 0; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0.4em 1.2em; }
nav a { color: #0072b2; }
ul.verdicts { list-style: none; padding: 0; }
ul.verdicts li { padding: 0.45em 0.7em; margin: 0.3em 0; border-left: 5px solid; border-radius: 3px; }
li.fail { border-color: #d55e00; background: #fbe9e1; }
li.warn { border-color: #e69f00; background: #fdf4e0; }
li.info { border-color: #0072b2; background: #e6f1f8; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.55em; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.2em 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
";

/// A table: the first `label_columns` cells of a row as text, the rest as right-aligned numbers.
pub(crate) fn table(
    out: &mut String,
    columns: &[String],
    rows: &[Vec<String>],
    label_columns: usize,
) {
    out.push_str("<table><thead><tr>");
    for column in columns {
        let _ = write!(out, "<th>{}</th>", escape(column));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            if i < label_columns {
                let _ = write!(out, "<td>{}</td>", escape(cell));
            } else {
                let _ = write!(out, "<td class=\"num\">{}</td>", escape(cell));
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>\n");
}

/// The chart's SVG without an XML declaration, ready to inline.
pub(crate) fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(start) => &svg[start..],
        None => svg,
    }
}

pub fn render(report: &Report, charts: &[Chart]) -> String {
    let mut out = String::new();
    let title = report.title();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    let _ = writeln!(out, "<header><h1>{}</h1>", escape(&title));
    for input in &report.inputs {
        let r = &input.results;
        let _ = writeln!(
            out,
            "<p class=\"meta\"><strong>{}</strong>: scenario {}, started {}, {:.1} s, {:?}</p>",
            escape(&input.label),
            escape(&r.scenario.name),
            escape(&r.started_at),
            r.duration_s,
            r.status
        );
    }
    out.push_str("</header>\n<nav><ul>");
    let comparisons = compare::comparisons(report);
    let mut sections = vec![("verdicts", "Verdicts".to_string())];
    if report.sweep.is_some() {
        sections.push(("sweep", "Sweep".into()));
    }
    sections.push(("summary", "Summary".into()));
    if report
        .inputs
        .iter()
        .any(|i| super::format::corrected_table(&i.results).is_some())
    {
        sections.push(("corrected", "Corrected latency".into()));
    }
    if report
        .inputs
        .iter()
        .any(|i| i.results.targets.iter().any(|t| t.summary.cost.is_some()))
    {
        sections.push(("cost", "Cost".into()));
    }
    if report.rollout.is_some() {
        sections.push(("rollout", "Rollout".into()));
    }
    if report.inputs.iter().any(|i| i.results.paired.is_some()) {
        sections.push(("shadow", "Shadow pairs".into()));
    }
    if !comparisons.is_empty() {
        sections.push(("comparison", "Comparison".into()));
    }
    sections.push(("charts", "Charts".into()));
    for (id, name) in &sections {
        let _ = write!(out, "<li><a href=\"#{id}\">{name}</a></li>");
    }
    for chart in charts {
        let _ = write!(
            out,
            "<li><a href=\"#chart-{}\">{}</a></li>",
            escape(&chart.id),
            escape(chart.title.split(" — ").next().unwrap_or(&chart.title))
        );
    }
    out.push_str("<li><a href=\"#errors\">Errors</a></li><li><a href=\"#scenario\">Scenario</a></li><li><a href=\"#environment\">Environment</a></li></ul></nav>\n");

    out.push_str("<section id=\"verdicts\"><h2>Verdicts</h2><ul class=\"verdicts\">");
    for verdict in compare::verdicts(report) {
        let class = match verdict.level {
            Level::Fail => "fail",
            Level::Warn => "warn",
            Level::Info => "info",
        };
        let _ = write!(out, "<li class=\"{class}\">{}</li>", escape(&verdict.text));
    }
    out.push_str("</ul></section>\n");

    if let Some(sweep) = &report.sweep {
        let knee = super::sweep::knee_line(sweep);
        let class = if super::sweep::knee_found(sweep) {
            "info"
        } else {
            "warn"
        };
        let _ = write!(
            out,
            "<section id=\"sweep\"><h2>Sweep</h2><ul class=\"verdicts\"><li class=\"{class}\">{}</li></ul>",
            escape(&knee)
        );
        let (columns, rows) = super::sweep::step_table(sweep);
        table(&mut out, &columns, &rows, 2);
        let _ = writeln!(
            out,
            "<p class=\"meta\">The first target's figures, one row per step of {:.0} s; each step's own results are in its folder.</p></section>",
            sweep.step_duration_s
        );
    }
    out.push_str("<section id=\"summary\"><h2>Summary</h2>");
    let mut columns: Vec<String> = vec!["run".into(), "target".into(), "class".into()];
    columns.extend(SUMMARY_COLUMNS.iter().map(|c| c.to_string()));
    table(&mut out, &columns, &summary_rows(report), 3);
    out.push_str("<p class=\"meta\">Latencies in ms. “E2E p99 corr” is measured from the intended send time (coordinated omission corrected).</p>");
    for note in report
        .inputs
        .iter()
        .filter_map(|input| super::format::estimate_note(&input.results))
    {
        let _ = write!(out, "<p class=\"meta\">{}</p>", escape(&note));
    }
    out.push_str("</section>\n");

    let corrected: Vec<(&str, Vec<Vec<String>>)> = report
        .inputs
        .iter()
        .filter_map(|input| {
            super::format::corrected_table(&input.results).map(|rows| (input.label.as_str(), rows))
        })
        .collect();
    if !corrected.is_empty() {
        out.push_str("<section id=\"corrected\"><h2>Corrected latency</h2>");
        let columns: Vec<String> = super::format::CORRECTED_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .collect();
        for (label, rows) in &corrected {
            if report.inputs.len() > 1 {
                let _ = write!(out, "<h3>{}</h3>", escape(label));
            }
            table(&mut out, &columns, rows, 3);
        }
        let _ = writeln!(
            out,
            "<p class=\"meta\">Latencies in ms. {}</p></section>",
            escape(super::format::CORRECTED_NOTE)
        );
    }
    let costs: Vec<(&str, super::format::CostTable)> = report
        .inputs
        .iter()
        .filter_map(|input| {
            super::format::cost_table(&input.results).map(|cost| (input.label.as_str(), cost))
        })
        .collect();
    if !costs.is_empty() {
        out.push_str("<section id=\"cost\"><h2>Cost</h2>");
        for (label, cost) in &costs {
            if report.inputs.len() > 1 {
                let _ = write!(out, "<h3>{}</h3>", escape(label));
            }
            let _ = write!(out, "<p class=\"meta\">{}</p>", escape(&cost.heading));
            table(&mut out, &cost.header, &cost.rows, 3);
            if !cost.notes.is_empty() {
                out.push_str("<ul>");
                for note in &cost.notes {
                    let _ = write!(out, "<li>{}</li>", escape(note));
                }
                out.push_str("</ul>");
            }
        }
        out.push_str("</section>\n");
    }

    let workload: Vec<String> = report
        .inputs
        .iter()
        .flat_map(|input| {
            super::format::workload_lines(&input.results)
                .into_iter()
                .map(move |line| format!("{}: {line}", input.label))
        })
        .collect();
    if !workload.is_empty() {
        out.push_str("<section id=\"workload\"><h2>Workload</h2><ul>");
        for line in &workload {
            let _ = write!(out, "<li>{}</li>", escape(line));
        }
        out.push_str("</ul></section>\n");
    }

    let slo: Vec<String> = report
        .inputs
        .iter()
        .flat_map(|input| {
            super::format::slo_lines(&input.results)
                .into_iter()
                .map(move |line| format!("{}: {line}", input.label))
        })
        .collect();
    let server: Vec<String> = report
        .inputs
        .iter()
        .flat_map(|input| {
            super::format::server_lines(&input.results)
                .into_iter()
                .map(move |line| format!("{}: {line}", input.label))
        })
        .collect();
    if !server.is_empty() {
        out.push_str("<section id=\"server-metrics\"><h2>Server metrics</h2><ul>");
        for line in &server {
            let class = if line.contains("SATURATED") {
                " class=\"fail\""
            } else {
                ""
            };
            let _ = write!(out, "<li{class}>{}</li>", escape(line));
        }
        out.push_str("</ul></section>\n");
    }
    let shards: Vec<String> = report
        .inputs
        .iter()
        .flat_map(|input| {
            super::format::shard_lines(&input.results)
                .into_iter()
                .map(move |line| format!("{}: {}", input.label, line.trim_start()))
        })
        .collect();
    if !shards.is_empty() {
        out.push_str("<section id=\"shards\"><h2>Shards</h2><ul>");
        for line in &shards {
            let _ = write!(out, "<li>{}</li>", escape(line));
        }
        out.push_str("</ul></section>\n");
    }
    if !slo.is_empty() {
        out.push_str("<section id=\"slo\"><h2>SLOs</h2><ul>");
        for line in &slo {
            let _ = write!(out, "<li>{}</li>", escape(line));
        }
        out.push_str("</ul></section>\n");
    }

    if let Some(rollout) = &report.rollout {
        let class = match rollout.verdict {
            crate::results::migration::RolloutVerdict::Promote => "info",
            crate::results::migration::RolloutVerdict::Rollback => "fail",
            crate::results::migration::RolloutVerdict::Interrupted
            | crate::results::migration::RolloutVerdict::BudgetExhausted
            | crate::results::migration::RolloutVerdict::Insufficient => "warn",
        };
        out.push_str("<section id=\"rollout\"><h2>Rollout</h2><ul class=\"verdicts\">");
        for (i, line) in super::format::rollout_lines(rollout).iter().enumerate() {
            let class = if i == 0 { class } else { "info" };
            let _ = write!(out, "<li class=\"{class}\">{}</li>", escape(line));
        }
        out.push_str("</ul>");
        let columns: Vec<String> = ["phase", "gate", "result", "measured and threshold"]
            .iter()
            .map(|c| c.to_string())
            .collect();
        let rows: Vec<Vec<String>> = rollout
            .phases
            .iter()
            .flat_map(|phase| {
                phase.gates.iter().map(move |gate| {
                    vec![
                        phase.name.clone(),
                        gate.gate.clone(),
                        gate.word().to_string(),
                        gate.describe(),
                    ]
                })
            })
            .collect();
        table(&mut out, &columns, &rows, 2);
        out.push_str("</section>\n");
    }

    if report.inputs.iter().any(|i| i.results.paired.is_some()) {
        out.push_str("<section id=\"shadow\"><h2>Shadow pairs</h2>");
        for input in &report.inputs {
            let Some(paired) = &input.results.paired else {
                continue;
            };
            let _ = write!(
                out,
                "<h3>{}: candidate “{}” against primary “{}”</h3><ul>",
                escape(&input.label),
                escape(&paired.candidate),
                escape(&paired.primary)
            );
            for line in super::format::paired_lines(&input.results).iter().skip(1) {
                let _ = write!(out, "<li>{}</li>", escape(line.trim_start()));
            }
            for line in super::format::phase_lines(&input.results) {
                let _ = write!(out, "<li>{}</li>", escape(&line));
            }
            out.push_str("</ul>");
            for group in &paired.groups {
                let (columns, rows) = super::format::paired_table(group);
                table(&mut out, &columns, &rows, 1);
            }
        }
        out.push_str("<p class=\"meta\">Side by side over the pairs (requests sent to both). Differences of medians here are not the median of paired differences above; p-values are two-proportion z-tests.</p></section>\n");
    }

    if !comparisons.is_empty() {
        let _ = write!(
            out,
            "<section id=\"comparison\"><h2>Comparison against {}</h2>",
            escape(&report.inputs[0].label)
        );
        for comparison in &comparisons {
            let _ = write!(out, "<h3>{}</h3>", escape(&comparison.target));
            let mut columns: Vec<String> = vec!["metric".into()];
            for (i, input) in report.inputs.iter().enumerate() {
                columns.push(input.label.clone());
                if i > 0 {
                    columns.push(format!("Δ {}", input.label));
                }
            }
            let rows: Vec<Vec<String>> = comparison
                .rows
                .iter()
                .map(|delta| {
                    let mut cells = vec![delta.metric.to_string()];
                    for i in 0..report.inputs.len() {
                        cells.push(delta.shown(i));
                        if i > 0 {
                            cells.push(delta.shown_change(i));
                        }
                    }
                    cells
                })
                .collect();
            table(&mut out, &columns, &rows, 1);
        }
        out.push_str("</section>\n");
    }

    out.push_str("<section id=\"charts\"><h2>Charts</h2>");
    if charts.is_empty() {
        out.push_str("<p>No chart: no request succeeded, so there is nothing to plot.</p>");
    }
    for chart in charts {
        let _ = writeln!(
            out,
            "<figure id=\"chart-{id}\">{svg}<figcaption>{caption} Files: <a href=\"charts/{id}.svg\">SVG</a>, <a href=\"charts/{id}.png\">PNG</a>.</figcaption></figure>",
            id = escape(&chart.id),
            svg = inline_svg(&chart.svg),
            caption = escape(&chart.caption)
        );
    }
    out.push_str("</section>\n");

    out.push_str("<section id=\"errors\"><h2>Errors</h2>");
    let errors = error_rows(report);
    if errors.is_empty() {
        out.push_str("<p>No request failed.</p>");
    } else {
        let columns: Vec<String> = ["run", "target", "class", "count", "sample message"]
            .iter()
            .map(|c| c.to_string())
            .collect();
        table(&mut out, &columns, &errors, 3);
    }
    out.push_str("</section>\n");

    out.push_str("<section id=\"scenario\"><h2>Scenario as run</h2><p class=\"meta\">As TOML, with only what the file and its overrides set (every default left out; header values redacted).</p>");
    for input in &report.inputs {
        let text = super::format::scenario_toml(&input.results.scenario.as_run);
        let _ = write!(
            out,
            "<h3>{} ({})</h3><pre>{}</pre>",
            escape(&input.label),
            escape(&input.results.scenario.source),
            escape(&text)
        );
    }
    out.push_str("</section>\n");

    out.push_str("<section id=\"environment\"><h2>Environment</h2>");
    let columns: Vec<String> = ["run", "drover", "host", "os", "cores", "started", "ended"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    let rows: Vec<Vec<String>> = report
        .inputs
        .iter()
        .map(|input| {
            let r = &input.results;
            vec![
                input.label.clone(),
                r.drover_version.clone(),
                r.environment.host.clone(),
                r.environment.os.clone(),
                r.environment.cores.to_string(),
                r.started_at.clone(),
                r.ended_at.clone(),
            ]
        })
        .collect();
    table(&mut out, &columns, &rows, 7);
    out.push_str("</section>\n</body></html>\n");
    out
}
