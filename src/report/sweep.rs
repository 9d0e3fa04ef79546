//! A sweep's words and pictures: the line per step, the knee with the advice that names the
//! real next step, the steps table, and the load charts (latency against offered and achieved
//! load with the knee and the SLO thresholds marked; tokens/s per user against total tokens/s).

use super::charts::{Line, Panel};
use super::format;
use crate::results::slo::Verdict;
use crate::results::sweep::{SweepResults, SweepStep};
use crate::results::RunResults;

/// `" req/s"` or `" users"`.
fn unit(over: &str) -> &'static str {
    if over == "rate" {
        " req/s"
    } else {
        " users"
    }
}

/// The line printed for a step as it finishes.
pub fn step_line(over: &str, step: &SweepStep) -> String {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let mut line = format!(
        "{over} {:>8}: {:<12} {:>9.1} req/s  TTFT p50 {:>7} p99 {:>7} ms  E2E p99 {:>7} ms  failed {:.1}%",
        step.value,
        step.verdict.name(),
        step.requests_per_s,
        ms(step.ttft_p50_ms),
        ms(step.ttft_p99_ms),
        ms(step.e2e_p99_ms),
        step.failed_fraction * 100.0
    );
    match step.server_saturated {
        Some(true) => line.push_str("  server SATURATED"),
        Some(false) => line.push_str("  server not saturated"),
        None => {}
    }
    if !step.missed.is_empty() {
        line.push_str(&format!("  missed: {}", step.missed.join("; ")));
    }
    line
}

/// For a step that could not decide: how long a step would need to be, from the samples its
/// undecided assertions need and the rate it achieved.
fn longer_steps(results: &SweepResults, step: &SweepStep) -> String {
    let needed = match step.samples_needed {
        Some(samples) if step.requests_per_s > 0.0 => format!(
            " (about {} samples would decide: about {:.0} s at the {:.1} req/s it achieved, against {:.0} s now)",
            format::thousands(samples),
            samples as f64 / step.requests_per_s,
            step.requests_per_s,
            results.step_duration_s
        ),
        _ => String::new(),
    };
    format!("its sample was too small to decide the SLOs{needed}: lengthen step_duration")
}

/// The step that first missed, when it neither met nor missed the SLOs (too few samples).
fn undecided_miss(results: &SweepResults) -> Option<&SweepStep> {
    results
        .first_miss
        .and_then(|miss| results.steps.iter().find(|s| s.value == miss))
        .filter(|s| s.verdict == Verdict::Inconclusive)
}

/// Whether the sweep found its knee: a load that met every SLO, with the first miss (if any)
/// a real miss, not a step too short to decide.
pub fn knee_found(results: &SweepResults) -> bool {
    results.knee.is_some() && undecided_miss(results).is_none()
}

/// The closing line: the knee, or why there is none and what to do next.
pub fn knee_line(results: &SweepResults) -> String {
    let unit = unit(&results.over);
    let undecided = undecided_miss(results);
    let line = match (results.knee, results.first_miss, undecided) {
        (Some(knee), Some(miss), Some(step)) => format!(
            "knee: at least {knee}{unit}; {miss}{unit} neither met nor missed the SLOs: {}",
            longer_steps(results, step)
        ),
        (Some(knee), Some(miss), None) => format!(
            "knee: {knee}{unit} is the highest load that met every SLO; {miss}{unit} did not (the limit lies between)"
        ),
        (Some(knee), None, _) => format!(
            "knee: every step met the SLOs, up to {knee}{unit}; the limit is higher: extend the values"
        ),
        (None, Some(miss), Some(step)) => format!(
            "knee: none yet: the first step ({miss}{unit}) could not decide; {}, not a lower start",
            longer_steps(results, step)
        ),
        (None, Some(miss), None) => format!(
            "knee: none: the first step ({miss}{unit}) already missed the SLOs; start lower"
        ),
        (None, None, _) => "knee: none: no step finished".to_string(),
    };
    format!("{line}{}", server_explanation(results, unit))
}

/// What the server's own metrics say of the knee, where they were scraped: saturated from which
/// step, or at none (then the limit is not the server's queue or cache).
fn server_explanation(results: &SweepResults, unit: &str) -> String {
    let scraped: Vec<&SweepStep> = results
        .steps
        .iter()
        .filter(|s| s.server_saturated.is_some())
        .collect();
    if scraped.is_empty() {
        return String::new();
    }
    match scraped.iter().find(|s| s.server_saturated == Some(true)) {
        Some(first) => format!(
            "; the server's own metrics show it saturated (queue growing or KV cache full) from {}{unit}",
            first.value
        ),
        None => format!(
            "; the server's own metrics show no saturation up to {}{unit}: the limit is not its queue or KV cache (look at the network, the client's schedule lag, or an SLO tighter than what the server does unloaded)",
            scraped.last().map_or(0.0, |s| s.value)
        ),
    }
}

/// The steps table: header and rows (load, verdict, achieved rate, latency, tokens/s, failed).
pub fn step_table(results: &SweepResults) -> (Vec<String>, Vec<Vec<String>>) {
    let header = [
        results.over.as_str(),
        "verdict",
        "sent",
        "req/s",
        "out tok/s",
        "TTFT p50",
        "TTFT p99",
        "E2E p99",
        "failed",
        "schedule lag p99",
        "missed",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect();
    let ms = |v: Option<f64>| v.map_or("-".to_string(), format::ms);
    let rows = results
        .steps
        .iter()
        .map(|step| {
            let mut verdict = step.verdict.name().to_string();
            if results.knee == Some(step.value) {
                verdict.push_str(" (knee)");
            }
            vec![
                format::thousands(step.value as u64),
                verdict,
                format::thousands(step.sent),
                format::rate(step.requests_per_s),
                format::rate(step.output_tokens_per_s),
                ms(step.ttft_p50_ms),
                ms(step.ttft_p99_ms),
                ms(step.e2e_p99_ms),
                format::percent(step.failed_fraction),
                ms(step.schedule_lag_p99_ms),
                step.missed.join("; "),
            ]
        })
        .collect();
    (header, rows)
}

/// A step's first target (the one whose limit the sweep seeks), with its load.
fn steps<'a>(
    results: &'a SweepResults,
    runs: &'a [&'a RunResults],
) -> impl Iterator<Item = (&'a SweepStep, &'a crate::results::GroupResults)> + 'a {
    results
        .steps
        .iter()
        .zip(runs)
        .filter_map(|(step, run)| run.targets.first().map(|t| (step, &t.summary)))
}

/// Reads one statistic (p50, p99, …) of a latency.
type Pick = fn(&crate::results::LatencyStat) -> f64;

/// The metric and percentile an SLO's text names (`ttft.p90 < 200ms` → `ttft`, p90).
fn slo_statistic(text: &str) -> Option<(&str, Pick)> {
    let (metric, rest) = text.split_once('.')?;
    let stat = rest.split_whitespace().next()?;
    let pick: Pick = match stat {
        "p50" => |s| s.p50,
        "p90" => |s| s.p90,
        "p95" => |s| s.p95,
        "p99" => |s| s.p99,
        "p99_9" | "p999" => |s| s.p99_9,
        "mean" => |s| s.mean,
        _ => return None,
    };
    Some((metric, pick))
}

/// Latency SLOs as their text and threshold (`ttft.p90 < 200ms`, 200), read from the steps'
/// evaluated assertions.
fn latency_thresholds(runs: &[&RunResults]) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for run in runs {
        let Some(slo) = &run.slo else { continue };
        for assertion in &slo.assertions {
            if assertion.unit != "ms" {
                continue;
            }
            let text = assertion
                .assertion
                .split_once(':')
                .map_or(assertion.assertion.as_str(), |(_, body)| body.trim())
                .to_string();
            if !out.iter().any(|(t, _)| *t == text) {
                out.push((text, assertion.threshold));
            }
        }
    }
    out
}

/// Latency (TTFT and E2E, p50 and p99) against the load: offered on the first panel, achieved
/// on the second; the knee a vertical line, the SLO thresholds horizontal ones.
pub fn load_panels(results: &SweepResults, runs: &[&RunResults]) -> Vec<Panel> {
    let unit = unit(&results.over);
    let series: [(&str, &str, Pick, bool); 4] = [
        ("TTFT p50", "ttft", |s| s.p50, false),
        ("TTFT p99", "ttft", |s| s.p99, true),
        ("E2E p50", "e2e", |s| s.p50, false),
        ("E2E p99", "e2e", |s| s.p99, true),
    ];
    let panel = |x_of: &dyn Fn(&SweepStep, &crate::results::GroupResults) -> f64,
                 title: String,
                 x_desc: String| {
        let mut lines: Vec<Line> = series
            .iter()
            .enumerate()
            .map(|(i, (name, metric, pick, dashed))| Line {
                name: name.to_string(),
                color: i / 2 * 3,
                dashed: *dashed,
                markers_only: false,
                points: steps(results, runs)
                    .filter_map(|(step, group)| {
                        group
                            .latency_ms
                            .get(*metric)
                            .map(|s| (x_of(step, group), pick(s)))
                    })
                    .collect(),
            })
            .filter(|l| !l.points.is_empty())
            .collect();
        let top = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        let (low, high) = steps(results, runs)
            .map(|(step, group)| x_of(step, group))
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            });
        for (i, (text, threshold)) in latency_thresholds(runs).into_iter().enumerate() {
            if !low.is_finite() {
                continue;
            }
            let color = 2 + 2 * i;
            // The statistic the SLO names, when the lines above do not show it (`ttft.p90`).
            if let Some((metric, pick)) = slo_statistic(&text) {
                let shown = series
                    .iter()
                    .any(|(name, ..)| text.starts_with(&name.to_lowercase().replace(' ', ".")));
                if !shown {
                    lines.push(Line {
                        name: text
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string(),
                        color,
                        dashed: false,
                        markers_only: false,
                        points: steps(results, runs)
                            .filter_map(|(step, group)| {
                                group
                                    .latency_ms
                                    .get(metric)
                                    .map(|s| (x_of(step, group), pick(s)))
                            })
                            .collect(),
                    });
                }
            }
            lines.push(Line {
                name: format!("SLO {text}"),
                color,
                dashed: true,
                markers_only: false,
                points: vec![(low, threshold), (high, threshold)],
            });
        }
        if let Some((step, group)) =
            steps(results, runs).find(|(s, _)| Some(s.value) == results.knee)
        {
            let x = x_of(step, group);
            lines.push(Line {
                name: format!("knee: {}{unit}", step.value),
                color: 6,
                dashed: true,
                markers_only: false,
                points: vec![(x, 0.0), (x, top)],
            });
        }
        Panel {
            title,
            x_desc,
            y_desc: "latency (ms)".into(),
            x_nines: false,
            x_log: false,
            lines,
        }
    };
    vec![
        panel(
            &|step, _| step.value,
            format!("Latency against offered load ({})", results.over),
            format!("offered load ({})", unit.trim()),
        ),
        panel(
            &|_, group| group.throughput.requests_per_s,
            "Latency against achieved throughput".into(),
            "achieved throughput (successful req/s)".into(),
        ),
    ]
}

/// The operating-point view vLLM and AIPerf users read: output tokens/s per user (1 / TPOT
/// p50, the speed one stream sees) against the total output tokens/s, one point per step.
pub fn pareto_panel(results: &SweepResults, runs: &[&RunResults]) -> Panel {
    let unit = unit(&results.over);
    let points: Vec<(f64, f64)> = steps(results, runs)
        .filter_map(|(_, group)| {
            let tpot = group.latency_ms.get("tpot")?.p50;
            (tpot > 0.0).then(|| (group.throughput.output_tokens_per_s, 1000.0 / tpot))
        })
        .collect();
    let mut lines = Vec::new();
    if !points.is_empty() {
        lines.push(Line {
            name: format!(
                "steps ({} {} to {})",
                results.over,
                results.steps.first().map_or(0.0, |s| s.value),
                results.steps.last().map_or(0.0, |s| s.value)
            ),
            color: 0,
            dashed: false,
            markers_only: false,
            points,
        });
    }
    if let Some((_, group)) = steps(results, runs).find(|(s, _)| Some(s.value) == results.knee) {
        if let Some(tpot) = group
            .latency_ms
            .get("tpot")
            .map(|s| s.p50)
            .filter(|t| *t > 0.0)
        {
            let point = (group.throughput.output_tokens_per_s, 1000.0 / tpot);
            lines.push(Line {
                name: format!("knee: {}{unit}", results.knee.unwrap_or_default()),
                color: 3,
                dashed: false,
                markers_only: false,
                points: vec![point],
            });
        }
    }
    Panel {
        title: "Tokens/s per user against total tokens/s".into(),
        x_desc: "total output tokens/s".into(),
        y_desc: "output tokens/s per user (1000 / TPOT p50)".into(),
        x_nines: false,
        x_log: false,
        lines,
    }
}
