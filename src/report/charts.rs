//! Charts with plotters: latency by percentile (HdrHistogram's "nines" scale), TTFT and ITL
//! distributions (CDF), per-second activity, and latency against achieved throughput for stepped
//! profiles. Each chart is data first ([`ChartSpec`]), drawn by one function onto an SVG string or
//! a PNG (with an embedded DejaVu Sans, so no system fonts are needed).
//!
//! Colours are the Okabe–Ito palette, chosen to stay distinguishable with colour-blindness.

use std::path::Path;
use std::sync::Once;

use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Report, ReportError};
use crate::hist::decode_histogram;

/// Okabe–Ito: blue, orange, bluish green, vermillion, reddish purple, sky blue, black, yellow.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(213, 94, 0),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
];

/// Pixel size of a chart: taller when it stacks several panels.
fn size(panels: usize) -> (u32, u32) {
    if panels > 1 {
        (960, 60 + 230 * panels as u32)
    } else {
        (960, 540)
    }
}
const FONT: &str = "sans-serif";

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub color: usize,
    /// Drawn dashed: the second line of a series (a p99 beside its p50).
    pub dashed: bool,
    /// Drawn as dots without a line (a scatter of requests).
    pub markers_only: bool,
    pub points: Vec<(f64, f64)>,
}

/// A panel: axes and lines.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    /// Label the x axis as percentiles on a log "nines" scale (x = −log10(1 − q)).
    pub x_nines: bool,
    /// A logarithmic x axis (for values spanning orders of magnitude: seconds of a stream beside
    /// hours of a batch). Points at or below zero are left out.
    pub x_log: bool,
    pub lines: Vec<Line>,
}

impl Panel {
    /// A panel over the run's time: x in seconds since its start.
    fn over_time(title: &str, unit: &str, lines: Vec<Line>) -> Panel {
        Panel {
            title: title.into(),
            x_desc: "seconds since start".into(),
            y_desc: unit.into(),
            x_nines: false,
            x_log: false,
            lines,
        }
    }
}

/// A chart: one or more panels stacked vertically.
#[derive(Debug, Clone)]
pub struct Chart {
    pub id: String,
    pub title: String,
    pub caption: String,
    pub panels: Vec<Panel>,
    pub svg: String,
}

fn histogram(report: &Report, input: usize, target: usize, metric: &str) -> Option<Histogram<u64>> {
    let encoded = report.inputs[input].results.targets[target]
        .summary
        .histograms
        .get(metric)?;
    decode_histogram(encoded).ok().filter(|h| !h.is_empty())
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Percentile lines in nines space, up to the nines the sample supports (log10 of its count);
/// for a run on a schedule, the coordinated-omission-corrected line beside each, dashed.
fn percentile_panel(report: &Report, metric: &str, label: &str) -> Panel {
    let mut lines = Vec::new();
    let corrected_metric = format!("{metric}_corrected");
    for (color, (input, target)) in report.series().into_iter().enumerate() {
        let Some(h) = histogram(report, input, target, metric) else {
            continue;
        };
        let max_nines = (h.len() as f64).log10().clamp(1.0, 4.0);
        let curve = |h: &Histogram<u64>| -> Vec<(f64, f64)> {
            (0..=200)
                .map(|i| max_nines * i as f64 / 200.0)
                .map(|x| (x, ms(h.value_at_quantile(1.0 - 10f64.powf(-x)))))
                .collect()
        };
        lines.push(Line {
            name: report.series_name(input, target),
            color,
            dashed: false,
            markers_only: false,
            points: curve(&h),
        });
        if super::format::scheduled(&report.inputs[input].results) {
            if let Some(corrected) = histogram(report, input, target, &corrected_metric) {
                lines.push(Line {
                    name: format!("{} corrected", report.series_name(input, target)),
                    color,
                    dashed: true,
                    markers_only: false,
                    points: curve(&corrected),
                });
            }
        }
    }
    Panel {
        title: format!("{label} by percentile"),
        x_desc: "percentile (log scale of nines)".into(),
        y_desc: format!("{label} (ms)"),
        x_nines: true,
        x_log: false,
        lines,
    }
}

/// The quantile a distribution chart's x axis ends at: one outlier would otherwise stretch the
/// axis until the body of the distribution is a vertical line at its left edge.
const CDF_CLIP_QUANTILE: f64 = 0.99;

/// The cumulative distribution up to [`CDF_CLIP_QUANTILE`] (the tail beyond it is in the
/// percentile charts, which are made for it).
fn cdf_panel(report: &Report, metric: &str, label: &str) -> Panel {
    let mut lines = Vec::new();
    for (color, (input, target)) in report.series().into_iter().enumerate() {
        let Some(h) = histogram(report, input, target, metric) else {
            continue;
        };
        let points = (0..=200)
            .map(|i| CDF_CLIP_QUANTILE * i as f64 / 200.0)
            .map(|q| (ms(h.value_at_quantile(q)), q))
            .collect();
        lines.push(Line {
            name: report.series_name(input, target),
            color,
            dashed: false,
            markers_only: false,
            points,
        });
    }
    Panel {
        title: format!("{label} distribution (CDF), up to p99"),
        x_desc: format!("{label} (ms; the axis ends at p99)"),
        y_desc: "fraction of samples at or below".into(),
        x_nines: false,
        x_log: false,
        lines,
    }
}

/// Cost against latency, one line per priced target from its E2E p50 to its p99 at the height
/// of its cost per 1M output tokens: the batch-or-stream trade-off at a glance (lower is
/// cheaper, further left is faster). The latency axis is logarithmic, as a batch's hours and a
/// stream's seconds belong on one chart.
fn cost_panel(report: &Report) -> Panel {
    let mut lines = Vec::new();
    for (color, (input, target)) in report.series().into_iter().enumerate() {
        let results = &report.inputs[input].results.targets[target];
        let group = &results.summary;
        let (Some(cost), Some(e2e)) = (&group.cost, group.latency_ms.get("e2e")) else {
            continue;
        };
        if group.tokens.output == 0 || e2e.p50.is_nan() || e2e.p50 <= 0.0 {
            continue;
        }
        let y = cost.per_million_output_tokens;
        let name = report.series_name(input, target);
        // "stream" needs no "(stream)"; a routed target's mode already says "routed (…)".
        let mode = results
            .mode
            .strip_prefix("routed ")
            .unwrap_or(&results.mode);
        let name = if name == mode {
            name
        } else if mode.starts_with('(') {
            format!("{name} {mode}")
        } else {
            format!("{name} ({mode})")
        };
        lines.push(Line {
            name: format!("{name}: E2E p50 → p99"),
            color,
            dashed: false,
            markers_only: false,
            points: vec![(e2e.p50, y), (e2e.p99.max(e2e.p50), y)],
        });
    }
    Panel {
        title: "Cost per 1M output tokens against end-to-end latency".into(),
        x_desc: "E2E latency, p50 to p99 (log scale)".into(),
        y_desc: "cost per 1M output tokens".into(),
        x_nines: false,
        x_log: true,
        lines,
    }
}

fn over_time_panels(report: &Report) -> Vec<Panel> {
    // A point covers `step` seconds: counts are divided by it to give per-second rates.
    type Pick = fn(&crate::results::SeriesPoint, f64) -> Option<f64>;
    type PanelSpec = (&'static str, &'static str, Vec<(&'static str, Pick)>);
    let specs: [PanelSpec; 4] = [
        (
            "Completed requests per second",
            "req/s",
            vec![("", |p, step| Some(p.completed as f64 / step))],
        ),
        (
            "Output tokens per second",
            "tokens/s",
            vec![("", |p, step| Some(p.output_tokens as f64 / step))],
        ),
        (
            "TTFT per second (p50, p99)",
            "ms",
            vec![
                (" p50", |p, _| p.ttft_p50_ms),
                (" p99", |p, _| p.ttft_p99_ms),
            ],
        ),
        (
            "Failed requests per second",
            "errors/s",
            vec![("", |p, step| Some(p.failed as f64 / step))],
        ),
    ];
    // A migration's phases and a sweep's steps ran one after another: each is drawn where it
    // ran on one timeline (seconds since the first one started), not all from zero.
    let sequence = report.rollout.is_some() || report.sweep.is_some();
    let first_origin = report
        .inputs
        .iter()
        .flat_map(|i| i.results.targets.iter().map(|t| t.series_origin_unix))
        .min()
        .unwrap_or(0);
    specs
        .into_iter()
        .map(|(title, unit, picks)| {
            let mut lines = Vec::new();
            for (color, (input, target)) in report.series().into_iter().enumerate() {
                let results = &report.inputs[input].results.targets[target];
                let step = results.series_step_s.max(1) as f64;
                let offset = if sequence {
                    results.series_origin_unix.saturating_sub(first_origin) as f64
                } else {
                    0.0
                };
                for (suffix, pick) in &picks {
                    let points: Vec<(f64, f64)> = results
                        .series
                        .iter()
                        .filter_map(|p| pick(p, step).map(|v| (offset + p.second as f64, v)))
                        .collect();
                    if !points.is_empty() {
                        lines.push(Line {
                            name: format!("{}{suffix}", report.series_name(input, target)),
                            color,
                            dashed: *suffix == " p99",
                            markers_only: false,
                            points,
                        });
                    }
                }
            }
            Panel::over_time(title, unit, lines)
        })
        .collect()
}

/// The server's scraped queue and KV cache above the client's TTFT, second by second on the
/// same clock (empty panels when no target scraped its server).
fn server_panels(report: &Report) -> Vec<Panel> {
    type Pick = fn(&crate::results::server::ServerPoint) -> Option<f64>;
    /// A panel's title and unit, and its lines: name suffix, value, dashed.
    type PanelSpec = (&'static str, &'static str, Vec<(&'static str, Pick, bool)>);
    let server: [PanelSpec; 2] = [
        (
            "Server: requests running and waiting (scraped)",
            "requests",
            vec![
                (" running", |p| p.running, false),
                (" waiting", |p| p.waiting, true),
            ],
        ),
        (
            "Server: KV-cache usage (scraped)",
            "%",
            vec![(" KV cache", |p| p.kv_usage.map(|u| 100.0 * u), false)],
        ),
    ];
    let targets: Vec<(usize, usize)> = report
        .series()
        .into_iter()
        .filter(|&(input, target)| {
            report.inputs[input].results.targets[target]
                .server_metrics
                .is_some()
        })
        .collect();
    if targets.is_empty() {
        return Vec::new();
    }
    let mut panels: Vec<Panel> = server
        .into_iter()
        .map(|(title, unit, picks)| {
            let mut lines = Vec::new();
            for (color, &(input, target)) in targets.iter().enumerate() {
                let Some(metrics) = &report.inputs[input].results.targets[target].server_metrics
                else {
                    continue;
                };
                for (suffix, pick, dashed) in &picks {
                    let points: Vec<(f64, f64)> = metrics
                        .points
                        .iter()
                        .filter_map(|p| pick(p).map(|v| (p.t_s, v)))
                        .collect();
                    if !points.is_empty() {
                        lines.push(Line {
                            name: format!("{}{suffix}", report.series_name(input, target)),
                            color,
                            dashed: *dashed,
                            markers_only: false,
                            points,
                        });
                    }
                }
            }
            Panel::over_time(title, unit, lines)
        })
        .collect();
    let mut ttft = Vec::new();
    for (color, &(input, target)) in targets.iter().enumerate() {
        let results = &report.inputs[input].results.targets[target];
        for (suffix, pick) in [
            (
                " p50",
                (|p| p.ttft_p50_ms) as fn(&crate::results::SeriesPoint) -> Option<f64>,
            ),
            (" p99", |p| p.ttft_p99_ms),
        ] {
            // A point covers [second, second + step): drawn at its middle, as the server's
            // scrapes are at their instants.
            let half_step = results.series_step_s.max(1) as f64 / 2.0;
            let points: Vec<(f64, f64)> = results
                .series
                .iter()
                .filter_map(|p| pick(p).map(|v| (p.second as f64 + half_step, v)))
                .collect();
            if !points.is_empty() {
                ttft.push(Line {
                    name: format!("{} TTFT{suffix}", report.series_name(input, target)),
                    color,
                    dashed: suffix == " p99",
                    markers_only: false,
                    points,
                });
            }
        }
    }
    panels.push(Panel::over_time(
        "Client: TTFT per second (p50, p99)",
        "ms",
        ttft,
    ));
    panels.retain(|p| !p.lines.is_empty());
    panels
}

fn throughput_panel(report: &Report) -> Panel {
    let mut lines = Vec::new();
    for (color, (input, target)) in report.series().into_iter().enumerate() {
        let stages = &report.inputs[input].results.targets[target].stages;
        if stages.len() < 2 {
            continue;
        }
        for (suffix, metric) in [(" TTFT p99", "ttft"), (" E2E p99", "e2e")] {
            let points: Vec<(f64, f64)> = stages
                .iter()
                .filter_map(|s| {
                    let stat = s.results.latency_ms.get(metric)?;
                    Some((s.results.throughput.requests_per_s, stat.p99))
                })
                .collect();
            if !points.is_empty() {
                lines.push(Line {
                    name: format!("{}{suffix}", report.series_name(input, target)),
                    color,
                    dashed: metric == "e2e",
                    markers_only: false,
                    points,
                });
            }
        }
    }
    Panel {
        title: "Latency against achieved throughput, one point per stage".into(),
        x_desc: "achieved throughput (successful req/s)".into(),
        y_desc: "p99 latency (ms)".into(),
        x_nines: false,
        x_log: false,
        lines,
    }
}

/// The distribution (CDF) of paired differences, candidate − primary, one line per input with
/// shadow pairs (their overall group), from the binned histogram the results keep.
fn paired_panel(report: &Report, metric: &str, label: &str) -> Panel {
    let mut lines = Vec::new();
    for (color, input) in report.inputs.iter().enumerate() {
        let Some(paired) = &input.results.paired else {
            continue;
        };
        let difference = paired.overall().and_then(|g| match metric {
            "ttft" => g.ttft_difference_ms.as_ref(),
            _ => g.e2e_difference_ms.as_ref(),
        });
        let Some(difference) = difference else {
            continue;
        };
        let histogram = &difference.histogram;
        let total = difference.pairs.max(1) as f64;
        let mut cumulative = histogram.below;
        let mut points = vec![(histogram.start, cumulative as f64 / total)];
        for (bin, count) in histogram.counts.iter().enumerate() {
            cumulative += count;
            points.push((
                histogram.start + (bin + 1) as f64 * histogram.width,
                cumulative as f64 / total,
            ));
        }
        lines.push(Line {
            name: if report.inputs.len() == 1 {
                format!("{} − {}", paired.candidate, paired.primary)
            } else {
                input.label.clone()
            },
            color,
            dashed: false,
            markers_only: false,
            points,
        });
    }
    Panel {
        title: format!("Paired {label} difference, candidate − primary (CDF)"),
        x_desc: format!("{label} difference (ms; below 0: the candidate was faster)"),
        y_desc: "fraction of pairs at or below".into(),
        x_nines: false,
        x_log: false,
        lines,
    }
}

/// Each request as a dot at its send time: TTFT above, E2E below (failed requests in their own
/// colour on the E2E panel), for inputs whose `requests.jsonl` was read (up to
/// [`super::requests::SCATTER_MAX`] requests).
fn scatter_panels(report: &Report) -> Vec<Panel> {
    let mut ttft = Vec::new();
    let mut e2e = Vec::new();
    let mut failed = Vec::new();
    for (color, (input, target)) in report.series().into_iter().enumerate() {
        let Some(requests) = &report.inputs[input].requests else {
            continue;
        };
        let name = report.series_name(input, target);
        let target_name = &report.inputs[input].results.targets[target].name;
        let mine = || requests.iter().filter(|r| &r.target == target_name);
        let dots = |points: Vec<(f64, f64)>, name: String, color: usize| Line {
            name,
            color,
            dashed: false,
            markers_only: true,
            points,
        };
        let ttft_points: Vec<(f64, f64)> = mine()
            .filter(|r| r.ok)
            .filter_map(|r| r.ttft_ms.map(|t| (r.sent_s, t)))
            .collect();
        if !ttft_points.is_empty() {
            ttft.push(dots(ttft_points, name.clone(), color));
        }
        let e2e_points: Vec<(f64, f64)> = mine()
            .filter(|r| r.ok)
            .map(|r| (r.sent_s, r.e2e_ms))
            .collect();
        if !e2e_points.is_empty() {
            e2e.push(dots(e2e_points, name.clone(), color));
        }
        failed.extend(mine().filter(|r| !r.ok).map(|r| (r.sent_s, r.e2e_ms)));
    }
    if !failed.is_empty() {
        e2e.push(Line {
            name: "failed (time to the failure)".into(),
            color: 3,
            dashed: false,
            markers_only: true,
            points: failed,
        });
    }
    let panel = |title: &str, lines| Panel {
        title: title.into(),
        x_desc: "seconds since start (actual send)".into(),
        y_desc: "ms".into(),
        x_nines: false,
        x_log: false,
        lines,
    };
    vec![
        panel("TTFT of each request", ttft),
        panel("E2E of each request", e2e),
    ]
}

/// Every chart the report's data supports; a chart without data is left out, not drawn empty.
pub fn build(report: &Report) -> Result<Vec<Chart>, ReportError> {
    // Text is measured with the embedded font for SVG too.
    register_font();
    let date = report
        .inputs
        .first()
        .map(|i| i.results.started_at.chars().take(10).collect::<String>())
        .unwrap_or_default();
    let mut scenarios: Vec<&str> = report
        .inputs
        .iter()
        .map(|i| i.results.scenario.name.as_str())
        .collect();
    scenarios.dedup();
    let subtitle = format!("{} · {date}", scenarios.join(", "));
    let runs: Vec<&crate::results::RunResults> = report.inputs.iter().map(|i| &i.results).collect();
    let (sweep_load, sweep_pareto) = match &report.sweep {
        Some(sweep) => (
            super::sweep::load_panels(sweep, &runs),
            vec![super::sweep::pareto_panel(sweep, &runs)],
        ),
        None => (Vec::new(), Vec::new()),
    };
    let candidates = vec![
        (
            "sweep-latency",
            "Latency against load",
            "Each step's TTFT and E2E (p50 solid, p99 dashed) against the load it was offered (top) and the throughput it achieved (bottom), the first target's; the knee (the highest load that met every SLO) is the vertical line, the SLOs' latency thresholds the horizontal ones.",
            sweep_load,
        ),
        (
            "sweep-pareto",
            "Tokens/s per user against total tokens/s",
            "One point per step: what one stream gets (1000 / TPOT p50, tokens/s) against what the server delivers in all (output tokens/s). Up and to the right is better; past the knee, total throughput stops growing while each user's speed falls.",
            sweep_pareto,
        ),
        (
            "ttft-percentiles",
            "Time to first token by percentile",
            "TTFT at each percentile; x is −log10(1 − q): 1 = p90, 2 = p99, 3 = p99.9. For a run on a schedule (open loop, trace) the dashed line is corrected latency, from the time each request was meant to leave: the gap between the lines is time spent waiting to be sent.",
            vec![percentile_panel(report, "ttft", "TTFT")],
        ),
        (
            "e2e-percentiles",
            "End-to-end latency by percentile",
            "E2E (service time, from the actual send) at each percentile. For a run on a schedule the dashed line is corrected E2E, from the intended send time: the gap is time spent waiting to be sent.",
            vec![percentile_panel(report, "e2e", "E2E")],
        ),
        (
            "ttft-cdf",
            "Time to first token distribution",
            "Cumulative distribution of TTFT up to its p99 (the axis is clipped there; the slowest 1% is in the percentile chart).",
            vec![cdf_panel(report, "ttft", "TTFT")],
        ),
        (
            "itl-cdf",
            "Inter-token latency distribution",
            "Cumulative distribution of every gap between output tokens up to its p99 (the axis is clipped there, as one long stall would flatten the rest).",
            vec![cdf_panel(report, "itl", "ITL")],
        ),
        (
            "latency-scatter",
            "Every request over time",
            "One dot per measured request at the time it was sent (drawn when the run exported requests.jsonl and measured at most 20,000 requests): stalls, bursts and slow starts that percentiles average away.",
            scatter_panels(report),
        ),
        (
            "over-time",
            "Activity over time",
            "Per second of the run, by completion time; a migration's phases and a sweep's steps each where they ran, on one timeline.",
            over_time_panels(report),
        ),
        (
            "server",
            "Server metrics against client latency",
            "Scraped from the server's /metrics on the run's clock: the requests it ran and queued and its KV-cache usage, above the TTFT drover measured in the same seconds.",
            server_panels(report),
        ),
        (
            "paired-differences",
            "Shadow pairs: latency differences",
            "Per request sent to both sides: candidate − primary, between the 1st and 99th percentiles of the differences.",
            vec![
                paired_panel(report, "ttft", "TTFT"),
                paired_panel(report, "e2e", "E2E"),
            ],
        ),
        (
            "cost",
            "Cost against latency",
            "Each priced target from its E2E p50 (left dot) to its p99 (right dot), at the height of what it cost per 1M output tokens: lower is cheaper, further left is faster. The latency axis is logarithmic.",
            vec![cost_panel(report)],
        ),
        (
            "latency-throughput",
            "Latency against throughput",
            "p99 latency of each load stage against the throughput it achieved.",
            vec![throughput_panel(report)],
        ),
    ];
    candidates
        .into_iter()
        .filter(|(_, _, _, panels)| panels.iter().any(|p| !p.lines.is_empty()))
        .map(|(id, title, caption, panels)| {
            chart(id, &format!("{title} — {subtitle}"), caption, panels)
        })
        .collect()
}

/// Draws panels as a chart (its SVG; [`write_png`] makes the PNG).
pub fn chart(
    id: &str,
    title: &str,
    caption: &str,
    panels: Vec<Panel>,
) -> Result<Chart, ReportError> {
    register_font();
    let error = |message: String| ReportError::Chart {
        chart: id.to_string(),
        message,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size(panels.len())).into_drawing_area();
        draw(&root, title, &panels).map_err(error)?;
        root.present().map_err(|e| error(e.to_string()))?;
    }
    Ok(Chart {
        id: id.into(),
        title: title.into(),
        caption: caption.into(),
        panels,
        svg,
    })
}

/// Renders a chart to a PNG file (written to a temporary name, then renamed).
pub fn write_png(chart: &Chart, path: &Path) -> Result<(), ReportError> {
    register_font();
    let error = |message: String| ReportError::Chart {
        chart: chart.id.clone(),
        message,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| error(e.to_string()))?;
    }
    let temp = path.with_file_name(format!(".tmp-{}.png", chart.id));
    {
        let root = BitMapBackend::new(&temp, size(chart.panels.len())).into_drawing_area();
        draw(&root, &chart.title, &chart.panels).map_err(error)?;
        root.present().map_err(|e| error(e.to_string()))?;
    }
    std::fs::rename(&temp, path).map_err(|e| error(e.to_string()))
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
        // The font is embedded and known to be valid; failure would only lose PNG text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, bytes);
    });
}

fn nines_label(x: f64) -> String {
    let q = 100.0 * (1.0 - 10f64.powf(-x));
    if x < 0.05 {
        "0".into()
    } else if (q - q.round()).abs() < 1e-6 {
        format!("{q:.0}")
    } else {
        let text = format!("{q:.4}");
        text.trim_end_matches('0').to_string()
    }
}

fn axis_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        low = low.min(v);
        high = high.max(v);
    }
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    // Zero is always on the axis: latencies start there, and differences are read against it.
    let low = low.min(0.0);
    high = high.max(0.0);
    if high <= low {
        high = low + 1.0;
    }
    let pad = (high - low) * 0.05;
    (if low < 0.0 { low - pad } else { low }, high + pad)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Panel],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let body = root.titled(title, (FONT, 20)).map_err(|e| e.to_string())?;
    let areas = body.split_evenly((panels.len(), 1));
    let compact = panels.len() > 1;
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel, compact).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The x range of a log axis: the positive values, padded by a fifth of a decade each side.
fn log_axis_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        low = low.min(v);
        high = high.max(v);
    }
    if !low.is_finite() {
        return (1.0, 10.0);
    }
    let pad = 10f64.powf(0.2);
    (low / pad, high * pad)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    compact: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let xs = || {
        panel
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0))
    };
    let (y_low, y_high) = axis_range(
        panel
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1)),
    );
    let builder = |area| {
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(&panel.title, (FONT, if compact { 13 } else { 16 }))
            .margin(if compact { 4 } else { 12 })
            .x_label_area_size(if compact { 28 } else { 42 })
            .y_label_area_size(if compact { 52 } else { 64 });
        builder
    };
    if panel.x_log {
        let (x_low, x_high) = log_axis_range(xs());
        let mut chart =
            builder(area).build_cartesian_2d((x_low..x_high).log_scale(), y_low..y_high)?;
        let compact_ms = |x: &f64| compact_milliseconds(*x);
        let mut mesh = chart.configure_mesh();
        style_mesh(&mut mesh, panel, compact);
        mesh.x_label_formatter(&compact_ms);
        mesh.draw()?;
        plot_lines(&mut chart, panel, compact, |x| x > 0.0)
    } else {
        let (x_low, x_high) = axis_range(xs());
        let (x_low, x_high) = if panel.x_nines {
            (0.0, x_high.clamp(1.0, 4.0))
        } else {
            (x_low, x_high)
        };
        let mut chart = builder(area).build_cartesian_2d(x_low..x_high, y_low..y_high)?;
        let nines = |x: &f64| nines_label(*x);
        // Whole-number x values (runs, steps) get whole-number labels only.
        let whole = |x: &f64| {
            if x.fract().abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        };
        let integral = xs().all(|x| x.fract() == 0.0) && x_high - x_low <= 60.0;
        let mut mesh = chart.configure_mesh();
        style_mesh(&mut mesh, panel, compact);
        if panel.x_nines {
            mesh.x_labels(x_high.floor() as usize + 1)
                .x_label_formatter(&nines);
        } else if integral {
            mesh.x_label_formatter(&whole);
        }
        mesh.draw()?;
        plot_lines(&mut chart, panel, compact, |_| true)
    }
}

/// A log axis label in milliseconds: short, so that the crowded top decade stays readable
/// (`500 ms`, `2 s`, `1.5 min`, `3 h`).
fn compact_milliseconds(x: f64) -> String {
    let trim = |v: f64| {
        let text = format!("{v:.1}");
        text.trim_end_matches(".0").to_string()
    };
    if x < 1_000.0 {
        format!("{} ms", trim(x))
    } else if x < 60_000.0 {
        format!("{} s", trim(x / 1_000.0))
    } else if x < 3_600_000.0 {
        format!("{} min", trim(x / 60_000.0))
    } else {
        format!("{} h", trim(x / 3_600_000.0))
    }
}

fn label_size(compact: bool) -> u32 {
    if compact {
        11
    } else {
        14
    }
}

/// The corner for the legend that covers the fewest points (a third of each axis from the
/// corner), preferring the upper corners, then the right, on ties.
fn legend_corner(panel: &Panel) -> SeriesLabelPosition {
    let points: Vec<(f64, f64)> = panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter().copied())
        .filter(|p| p.0.is_finite() && p.1.is_finite() && (!panel.x_log || p.0 > 0.0))
        .map(|(x, y)| (if panel.x_log { x.log10() } else { x }, y))
        .collect();
    let range = |values: Vec<f64>, starts_at_zero: bool| {
        let (low, high) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(*v), hi.max(*v))
            });
        // Linear axes start at zero (or below, for negative values), as `axis_range` draws them.
        let low = if starts_at_zero { low.min(0.0) } else { low };
        (low, (high - low).max(f64::MIN_POSITIVE))
    };
    let (x_low, x_span) = range(
        points.iter().map(|p| p.0).collect(),
        !panel.x_log && !panel.x_nines,
    );
    let (y_low, y_span) = range(points.iter().map(|p| p.1).collect(), true);
    let covered = |right: bool, upper: bool| {
        points
            .iter()
            .filter(|(x, y)| {
                let fx = (x - x_low) / x_span;
                let fy = (y - y_low) / y_span;
                (if right { fx > 0.6 } else { fx < 0.4 })
                    && (if upper { fy > 0.6 } else { fy < 0.4 })
            })
            .count()
    };
    let preferred_left = panel.x_nines || panel.y_desc.starts_with("fraction");
    let candidates = if preferred_left {
        [
            (false, true, SeriesLabelPosition::UpperLeft),
            (true, true, SeriesLabelPosition::UpperRight),
            (true, false, SeriesLabelPosition::LowerRight),
            (false, false, SeriesLabelPosition::LowerLeft),
        ]
    } else {
        [
            (true, true, SeriesLabelPosition::UpperRight),
            (false, true, SeriesLabelPosition::UpperLeft),
            (true, false, SeriesLabelPosition::LowerRight),
            (false, false, SeriesLabelPosition::LowerLeft),
        ]
    };
    candidates
        .into_iter()
        .min_by_key(|(right, upper, _)| covered(*right, *upper))
        .map_or(SeriesLabelPosition::UpperRight, |(_, _, corner)| corner)
}

/// Axis descriptions, fonts and grid shared by every panel.
fn style_mesh<DB: DrawingBackend, X: Ranged, Y: Ranged>(
    mesh: &mut plotters::chart::MeshStyle<'_, '_, X, Y, DB>,
    panel: &Panel,
    compact: bool,
) {
    let label_size = label_size(compact);
    mesh.x_desc(panel.x_desc.as_str())
        .y_desc(panel.y_desc.as_str())
        .label_style((FONT, label_size))
        .axis_desc_style((FONT, label_size + 1))
        .y_labels(if compact { 5 } else { 10 })
        .light_line_style(RGBColor(235, 235, 235));
}

/// Draws a panel's lines (and their points, when there are few) and its legend; `keep` filters
/// points the axis cannot show (zero on a log axis).
fn plot_lines<'a, DB: DrawingBackend + 'a, X: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    panel: &Panel,
    compact: bool,
    keep: impl Fn(f64) -> bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for line in &panel.lines {
        let color = PALETTE[line.color % PALETTE.len()];
        let style = color.stroke_width(2);
        let points: Vec<(f64, f64)> = line.points.iter().copied().filter(|p| keep(p.0)).collect();
        if line.markers_only {
            let dot = color.mix(0.55).filled();
            chart
                .draw_series(points.iter().map(|&(x, y)| Circle::new((x, y), 2, dot)))?
                .label(line.name.as_str())
                .legend(move |(x, y)| Circle::new((x + 9, y), 3, color.filled()));
            continue;
        }
        let drawn = if line.dashed {
            chart.draw_series(DashedLineSeries::new(points.iter().copied(), 6, 4, style))?
        } else {
            chart.draw_series(LineSeries::new(points.iter().copied(), style))?
        };
        let dashed = line.dashed;
        drawn.label(line.name.as_str()).legend(move |(x, y)| {
            let end = if dashed { x + 8 } else { x + 18 };
            PathElement::new(vec![(x, y), (end, y)], color.stroke_width(3))
        });
        if points.len() <= 20 {
            chart.draw_series(
                points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .label_font((FONT, label_size(compact)))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(150, 150, 150))
        .position(legend_corner(panel))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_labels_read_as_percentiles() {
        assert_eq!(nines_label(0.0), "0");
        assert_eq!(nines_label(1.0), "90");
        assert_eq!(nines_label(2.0), "99");
        assert_eq!(nines_label(3.0), "99.9");
        assert_eq!(nines_label(4.0), "99.99");
    }

    #[test]
    fn steps_of_a_sweep_are_drawn_on_one_timeline() {
        let first = crate::results::committed_baseline();
        let mut second = first.clone();
        second.targets[0].series_origin_unix += 10;
        let inputs = vec![
            super::super::ReportInput::new("rate 20", first),
            super::super::ReportInput::new("rate 30", second),
        ];
        let mut report = Report {
            inputs,
            rollout: None,
            sweep: None,
        };
        let start =
            |report: &Report, line: usize| over_time_panels(report)[0].lines[line].points[0].0;
        // Two runs compared side by side share x = 0 …
        assert_eq!(start(&report, 0), start(&report, 1));
        // … the steps of one sweep do not: the second began 10 s after the first.
        report.sweep = Some(crate::results::sweep::SweepResults {
            scenario: "s".into(),
            over: "rate".into(),
            step_duration_s: 4.0,
            steps: Vec::new(),
            knee: None,
            first_miss: None,
            interrupted: false,
            budget_exhausted: false,
            degraded_steps: Vec::new(),
        });
        assert_eq!(start(&report, 1) - start(&report, 0), 10.0);
    }

    #[test]
    fn log_axis_labels_are_short() {
        assert_eq!(compact_milliseconds(500.0), "500 ms");
        assert_eq!(compact_milliseconds(2_000.0), "2 s");
        assert_eq!(compact_milliseconds(90_000.0), "1.5 min");
        assert_eq!(compact_milliseconds(3.0 * 3_600_000.0), "3 h");
    }

    #[test]
    fn log_axis_range_skips_zero_and_pads() {
        let (low, high) = log_axis_range([0.0, 100.0, 10_000.0].into_iter());
        assert!(low < 100.0 && low > 50.0, "{low}");
        assert!(high > 10_000.0 && high < 20_000.0, "{high}");
    }
}
