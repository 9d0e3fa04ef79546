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

/// Percentile lines in nines space, up to the nines the sample supports (log10 of its count).
fn percentile_panel(report: &Report, metric: &str, label: &str) -> Panel {
    let mut lines = Vec::new();
    for (color, (input, target)) in report.series().into_iter().enumerate() {
        let Some(h) = histogram(report, input, target, metric) else {
            continue;
        };
        let max_nines = (h.len() as f64).log10().clamp(1.0, 4.0);
        let points = (0..=200)
            .map(|i| max_nines * i as f64 / 200.0)
            .map(|x| (x, ms(h.value_at_quantile(1.0 - 10f64.powf(-x)))))
            .collect();
        lines.push(Line {
            name: report.series_name(input, target),
            color,
            dashed: false,
            points,
        });
    }
    Panel {
        title: format!("{label} by percentile"),
        x_desc: "percentile (log scale of nines)".into(),
        y_desc: format!("{label} (ms)"),
        x_nines: true,
        lines,
    }
}

fn cdf_panel(report: &Report, metric: &str, label: &str) -> Panel {
    let mut lines = Vec::new();
    for (color, (input, target)) in report.series().into_iter().enumerate() {
        let Some(h) = histogram(report, input, target, metric) else {
            continue;
        };
        let points = (0..=200)
            .map(|i| i as f64 / 200.0)
            .map(|q| (ms(h.value_at_quantile(q)), q))
            .collect();
        lines.push(Line {
            name: report.series_name(input, target),
            color,
            dashed: false,
            points,
        });
    }
    Panel {
        title: format!("{label} distribution (CDF)"),
        x_desc: format!("{label} (ms)"),
        y_desc: "fraction of samples at or below".into(),
        x_nines: false,
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
    specs
        .into_iter()
        .map(|(title, unit, picks)| {
            let mut lines = Vec::new();
            for (color, (input, target)) in report.series().into_iter().enumerate() {
                let results = &report.inputs[input].results.targets[target];
                let step = results.series_step_s.max(1) as f64;
                for (suffix, pick) in &picks {
                    let points: Vec<(f64, f64)> = results
                        .series
                        .iter()
                        .filter_map(|p| pick(p, step).map(|v| (p.second as f64, v)))
                        .collect();
                    if !points.is_empty() {
                        lines.push(Line {
                            name: format!("{}{suffix}", report.series_name(input, target)),
                            color,
                            dashed: *suffix == " p99",
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
            points,
        });
    }
    Panel {
        title: format!("Paired {label} difference, candidate − primary (CDF)"),
        x_desc: format!("{label} difference (ms; below 0: the candidate was faster)"),
        y_desc: "fraction of pairs at or below".into(),
        x_nines: false,
        lines,
    }
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
    let candidates = vec![
        (
            "ttft-percentiles",
            "Time to first token by percentile",
            "TTFT at each percentile; x is −log10(1 − q): 1 = p90, 2 = p99, 3 = p99.9.",
            vec![percentile_panel(report, "ttft", "TTFT")],
        ),
        (
            "e2e-percentiles",
            "End-to-end latency by percentile",
            "E2E (service time, from the actual send) at each percentile.",
            vec![percentile_panel(report, "e2e", "E2E")],
        ),
        (
            "ttft-cdf",
            "Time to first token distribution",
            "Cumulative distribution of TTFT.",
            vec![cdf_panel(report, "ttft", "TTFT")],
        ),
        (
            "itl-cdf",
            "Inter-token latency distribution",
            "Cumulative distribution of every gap between output tokens.",
            vec![cdf_panel(report, "itl", "ITL")],
        ),
        (
            "over-time",
            "Activity over time",
            "Per second of the run, by completion time.",
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
            let title = format!("{title} — {subtitle}");
            let error = |message: String| ReportError::Chart {
                chart: id.to_string(),
                message,
            };
            let mut svg = String::new();
            {
                let root =
                    SVGBackend::with_string(&mut svg, size(panels.len())).into_drawing_area();
                draw(&root, &title, &panels).map_err(error)?;
                root.present().map_err(|e| error(e.to_string()))?;
            }
            Ok(Chart {
                id: id.into(),
                title,
                caption: caption.into(),
                panels,
                svg,
            })
        })
        .collect()
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

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    compact: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (x_low, x_high) = axis_range(
        panel
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0)),
    );
    let (y_low, y_high) = axis_range(
        panel
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1)),
    );
    let (x_low, x_high) = if panel.x_nines {
        (0.0, x_high.clamp(1.0, 4.0))
    } else {
        (x_low, x_high)
    };
    let label_size = if compact { 11 } else { 14 };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, if compact { 13 } else { 16 }))
        .margin(if compact { 4 } else { 12 })
        .x_label_area_size(if compact { 28 } else { 42 })
        .y_label_area_size(if compact { 52 } else { 64 })
        .build_cartesian_2d(x_low..x_high, y_low..y_high)?;
    let nines = |x: &f64| nines_label(*x);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(panel.x_desc.as_str())
        .y_desc(panel.y_desc.as_str())
        .label_style((FONT, label_size))
        .axis_desc_style((FONT, label_size + 1))
        .y_labels(if compact { 5 } else { 10 })
        .light_line_style(RGBColor(235, 235, 235));
    if panel.x_nines {
        mesh.x_labels(x_high.floor() as usize + 1)
            .x_label_formatter(&nines);
    }
    mesh.draw()?;
    for line in &panel.lines {
        let color = PALETTE[line.color % PALETTE.len()];
        let style = color.stroke_width(2);
        let drawn = if line.dashed {
            chart.draw_series(DashedLineSeries::new(
                line.points.iter().copied(),
                6,
                4,
                style,
            ))?
        } else {
            chart.draw_series(LineSeries::new(line.points.iter().copied(), style))?
        };
        let dashed = line.dashed;
        drawn.label(line.name.as_str()).legend(move |(x, y)| {
            let end = if dashed { x + 8 } else { x + 18 };
            PathElement::new(vec![(x, y), (end, y)], color.stroke_width(3))
        });
        if line.points.len() <= 20 {
            chart.draw_series(
                line.points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .label_font((FONT, label_size))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(150, 150, 150))
        .position(if panel.x_nines || panel.y_desc.starts_with("fraction") {
            SeriesLabelPosition::UpperLeft
        } else {
            SeriesLabelPosition::UpperRight
        })
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
}
