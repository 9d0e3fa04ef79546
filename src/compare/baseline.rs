//! `drover compare BASELINE CURRENT`: per target, class and metric, the baseline and current
//! values, the change, and a verdict — `regressed`, `improved`, `unchanged` or `inconclusive` —
//! from a threshold *and* a noise test on the stored data, so that a CI gate fails on real
//! regressions and not on run-to-run noise. Renders a terminal table, Markdown and JUnit XML.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::hist::decode_histogram;
use crate::results::{GroupResults, RunResults, SeriesPoint, TargetResults};
use crate::stats::{normal_quantile, quantile_interval, two_proportion_test};

/// How a metric moved, all things considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Regressed,
    Improved,
    Unchanged,
    /// Beyond the threshold, but within what noise could explain.
    Inconclusive,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Regressed => "regressed",
            Change::Improved => "improved",
            Change::Unchanged => "unchanged",
            Change::Inconclusive => "inconclusive",
        }
    }
}

/// A threshold: a relative change (`0.10` = 10%) or an absolute one in the metric's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Relative(f64),
    Absolute(f64),
}

impl Threshold {
    /// `"15%"` (relative), `"5ms"` (absolute, milliseconds) or a plain number (absolute).
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let text = text.trim();
        if let Some(percent) = text.strip_suffix('%') {
            return percent
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| p.is_finite() && *p >= 0.0)
                .map(|p| Threshold::Relative(p / 100.0))
                .ok_or_else(|| format!("\"{text}\" is not a percentage"));
        }
        if let Ok(number) = text.parse::<f64>() {
            if number.is_finite() && number >= 0.0 {
                return Ok(Threshold::Absolute(number));
            }
        }
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        humantime::parse_duration(&compact)
            .map(|d| Threshold::Absolute(d.as_secs_f64() * 1000.0))
            .map_err(|_| {
                format!(
                    "\"{text}\" is not a threshold: write 10% (relative), 5ms or 0.01 (absolute)"
                )
            })
    }

    fn exceeded_by(self, baseline: f64, change: f64) -> bool {
        match self {
            Threshold::Relative(fraction) => change.abs() > fraction * baseline.abs(),
            Threshold::Absolute(amount) => change.abs() > amount,
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Threshold::Relative(fraction) => format!("{:.0}%", fraction * 100.0),
            Threshold::Absolute(amount) if unit.is_empty() => {
                format!("{:.2} pp", amount * 100.0)
            }
            Threshold::Absolute(amount) => format!("{amount} {unit}"),
        }
    }
}

/// What to compare and how strictly.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Per metric name (`ttft.p99`, `error_rate`, …) or kind (`latency`, `throughput`, `rate`,
    /// `cost`): overrides of the default thresholds.
    pub thresholds: BTreeMap<String, Threshold>,
    /// Confidence of the noise tests (default 0.95).
    pub confidence: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            thresholds: BTreeMap::new(),
            confidence: 0.95,
        }
    }
}

/// The kinds of compared metrics, with their default thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Milliseconds, lower is better: 10% by default.
    Latency,
    /// Per second, higher is better: 10%.
    Throughput,
    /// A fraction, lower is better: 1 percentage point.
    Rate,
    /// Currency per 1M output tokens, lower is better: 5%.
    Cost,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Latency => "latency",
            Kind::Throughput => "throughput",
            Kind::Rate => "rate",
            Kind::Cost => "cost",
        }
    }

    fn default_threshold(self) -> Threshold {
        match self {
            Kind::Latency | Kind::Throughput => Threshold::Relative(0.10),
            Kind::Rate => Threshold::Absolute(0.01),
            Kind::Cost => Threshold::Relative(0.05),
        }
    }

    fn higher_is_better(self) -> bool {
        self == Kind::Throughput
    }

    fn unit(self) -> &'static str {
        match self {
            Kind::Latency => "ms",
            Kind::Throughput => "/s",
            Kind::Rate => "",
            Kind::Cost => "per 1M out",
        }
    }
}

/// One compared metric of one group.
#[derive(Debug, Clone, Serialize)]
pub struct MetricChange {
    pub target: String,
    /// `(all)` for the target's summary.
    pub class: String,
    pub metric: String,
    pub unit: String,
    pub baseline: f64,
    pub current: f64,
    pub change: f64,
    /// `change / baseline` (`None` when the baseline is 0).
    pub relative: Option<f64>,
    pub threshold: String,
    pub verdict: Change,
    /// The noise test and its outcome, in words.
    pub evidence: String,
}

/// Everything `drover compare` found.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub baseline: String,
    pub current: String,
    pub metrics: Vec<MetricChange>,
    /// Targets or classes in only one of the two runs.
    pub unmatched: Vec<String>,
}

impl Comparison {
    pub fn count(&self, verdict: Change) -> usize {
        self.metrics.iter().filter(|m| m.verdict == verdict).count()
    }

    pub fn regressed(&self) -> bool {
        self.count(Change::Regressed) > 0
    }
}

/// Why two results files cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("the runs are of different scenarios: \"{baseline}\" (baseline) vs \"{current}\" (current); compare runs of one scenario")]
    DifferentScenarios { baseline: String, current: String },
    #[error("the results schemas differ: {baseline} (baseline) vs {current} (current)")]
    DifferentSchemas { baseline: String, current: String },
    #[error("the runs share no target: baseline has {baseline:?}, current has {current:?}")]
    NoCommonTarget {
        baseline: Vec<String>,
        current: Vec<String>,
    },
}

/// Compares `current` with `baseline`.
pub fn compare(
    baseline: &RunResults,
    current: &RunResults,
    options: &CompareOptions,
) -> Result<Comparison, CompareError> {
    if baseline.schema != current.schema {
        return Err(CompareError::DifferentSchemas {
            baseline: baseline.schema.clone(),
            current: current.schema.clone(),
        });
    }
    if baseline.scenario.name != current.scenario.name {
        return Err(CompareError::DifferentScenarios {
            baseline: baseline.scenario.name.clone(),
            current: current.scenario.name.clone(),
        });
    }
    let mut comparison = Comparison {
        baseline: baseline.scenario.name.clone(),
        current: current.scenario.name.clone(),
        metrics: Vec::new(),
        unmatched: Vec::new(),
    };
    for base in &baseline.targets {
        let Some(now) = current.targets.iter().find(|t| t.name == base.name) else {
            comparison
                .unmatched
                .push(format!("target \"{}\" is only in the baseline", base.name));
            continue;
        };
        compare_group(
            &mut comparison.metrics,
            options,
            &base.name,
            "(all)",
            &base.summary,
            &now.summary,
            Some((base, now)),
        );
        for class in &base.classes {
            match now.classes.iter().find(|c| c.name == class.name) {
                Some(other) => compare_group(
                    &mut comparison.metrics,
                    options,
                    &base.name,
                    &class.name,
                    &class.results,
                    &other.results,
                    None,
                ),
                None => comparison.unmatched.push(format!(
                    "class \"{}\" of target \"{}\" is only in the baseline",
                    class.name, base.name
                )),
            }
        }
    }
    for now in &current.targets {
        if !baseline.targets.iter().any(|t| t.name == now.name) {
            comparison.unmatched.push(format!(
                "target \"{}\" is only in the current run",
                now.name
            ));
        }
    }
    if comparison.metrics.is_empty() {
        return Err(CompareError::NoCommonTarget {
            baseline: baseline.targets.iter().map(|t| t.name.clone()).collect(),
            current: current.targets.iter().map(|t| t.name.clone()).collect(),
        });
    }
    Ok(comparison)
}

/// The latencies and quantiles compared when both runs have them.
const LATENCIES: [&str; 4] = ["ttft", "itl", "tpot", "e2e"];
const QUANTILES: [(&str, f64); 3] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)];
/// The other metrics the comparison reports.
const OTHER_METRICS: [&str; 5] = [
    "error_rate",
    "throttle_rate",
    "requests_per_s",
    "output_tokens_per_s",
    "cost_per_mtok",
];

/// Every name a threshold can be given for: a metric the comparison reports (`ttft.p99`,
/// `error_rate`, …) or a kind (`latency`, `throughput`, `rate`, `cost`).
pub fn threshold_names() -> Vec<String> {
    let mut names: Vec<String> = LATENCIES
        .iter()
        .flat_map(|l| QUANTILES.iter().map(move |(q, _)| format!("{l}.{q}")))
        .collect();
    names.extend(OTHER_METRICS.iter().map(|m| m.to_string()));
    names.extend(
        [Kind::Latency, Kind::Throughput, Kind::Rate, Kind::Cost]
            .iter()
            .map(|k| k.name().to_string()),
    );
    names
}

/// `Ok` for a name [`threshold_names`] lists; otherwise why not, with the closest name.
pub fn check_threshold_name(name: &str) -> Result<(), String> {
    let names = threshold_names();
    if names.iter().any(|n| n == name) {
        return Ok(());
    }
    let known: Vec<&str> = names.iter().map(String::as_str).collect();
    let closest = crate::slo::did_you_mean(name, &known);
    Err(format!(
        "\"{name}\" is not a metric drover compare reports{closest}; it compares {}.{{p50,p90,p99}}, {}, and takes the kinds latency, throughput, rate, cost",
        LATENCIES.join("|"),
        OTHER_METRICS.join(", ")
    ))
}

/// Compares one group. `targets` (for a target's summary) gives the per-second series that
/// test throughput against noise; classes have none, so their throughput is not compared.
fn compare_group(
    out: &mut Vec<MetricChange>,
    options: &CompareOptions,
    target: &str,
    class: &str,
    base: &GroupResults,
    now: &GroupResults,
    targets: Option<(&TargetResults, &TargetResults)>,
) {
    let mut changes = Changes {
        out,
        options,
        target,
        class,
    };
    latency_changes(&mut changes, base, now);
    rate_changes(&mut changes, base, now);
    if let Some((base_target, now_target)) = targets {
        throughput_changes(&mut changes, base, now, (base_target, now_target));
    }
    if let (Some(a), Some(b)) = (&base.cost, &now.cost) {
        if a.requests_priced > 0 && b.requests_priced > 0 {
            changes.push(
                "cost_per_mtok".to_string(),
                Kind::Cost,
                a.per_million_output_tokens,
                b.per_million_output_tokens,
                Noise::Untested("computed from token counts and prices".into()),
            );
        }
    }
}

/// Where a group's metric changes go, and what decides them.
struct Changes<'a> {
    out: &'a mut Vec<MetricChange>,
    options: &'a CompareOptions,
    target: &'a str,
    class: &'a str,
}

impl Changes<'_> {
    /// One metric's change, judged against its threshold and the noise test.
    fn push(&mut self, metric: String, kind: Kind, baseline: f64, current: f64, noise: Noise) {
        let threshold = self
            .options
            .thresholds
            .get(&metric)
            .or_else(|| self.options.thresholds.get(kind.name()))
            .copied()
            .unwrap_or_else(|| kind.default_threshold());
        let change = current - baseline;
        let worse = if kind.higher_is_better() {
            change < 0.0
        } else {
            change > 0.0
        };
        let (verdict, evidence) = if !threshold.exceeded_by(baseline, change) {
            (Change::Unchanged, "within the threshold".to_string())
        } else {
            match noise {
                Noise::Significant(evidence) => (
                    if worse {
                        Change::Regressed
                    } else {
                        Change::Improved
                    },
                    evidence,
                ),
                Noise::NotSignificant(evidence) => (Change::Inconclusive, evidence),
                Noise::Untested(evidence) => (
                    if worse {
                        Change::Regressed
                    } else {
                        Change::Improved
                    },
                    evidence,
                ),
            }
        };
        self.out.push(MetricChange {
            target: self.target.to_string(),
            class: self.class.to_string(),
            metric,
            unit: kind.unit().to_string(),
            baseline,
            current,
            change,
            relative: (baseline != 0.0).then(|| change / baseline),
            threshold: threshold.describe(kind.unit()),
            verdict,
            evidence,
        });
    }
}

/// Each latency's p50, p90 and p99, tested on the histograms.
fn latency_changes(changes: &mut Changes, base: &GroupResults, now: &GroupResults) {
    for latency in LATENCIES {
        let (Some(base_stat), Some(now_stat)) =
            (base.latency_ms.get(latency), now.latency_ms.get(latency))
        else {
            continue;
        };
        let histograms = (
            base.histograms
                .get(latency)
                .and_then(|h| decode_histogram(h).ok()),
            now.histograms
                .get(latency)
                .and_then(|h| decode_histogram(h).ok()),
        );
        for (name, quantile) in QUANTILES {
            let (baseline, current) = match name {
                "p50" => (base_stat.p50, now_stat.p50),
                "p90" => (base_stat.p90, now_stat.p90),
                _ => (base_stat.p99, now_stat.p99),
            };
            let samples = (base_stat.sample_size(), now_stat.sample_size());
            let noise = match &histograms {
                (Some(a), Some(b)) => {
                    quantile_noise((a, b), samples, quantile, changes.options.confidence)
                }
                _ => Noise::Untested("no histograms to test against noise".into()),
            };
            changes.push(
                format!("{latency}.{name}"),
                Kind::Latency,
                baseline,
                current,
                noise,
            );
        }
    }
}

/// The error and throttle rates, tested as proportions.
fn rate_changes(changes: &mut Changes, base: &GroupResults, now: &GroupResults) {
    let finished = |g: &GroupResults| g.requests.succeeded + g.requests.failed;
    for (metric, count) in [
        (
            "error_rate",
            (|g: &GroupResults| g.requests.failed - g.requests.throttled.min(g.requests.failed))
                as fn(&GroupResults) -> u64,
        ),
        ("throttle_rate", |g: &GroupResults| g.requests.throttled),
    ] {
        let (base_n, now_n) = (finished(base), finished(now));
        if base_n == 0 || now_n == 0 {
            continue;
        }
        let (base_k, now_k) = (count(base), count(now));
        changes.push(
            metric.to_string(),
            Kind::Rate,
            base_k as f64 / base_n as f64,
            now_k as f64 / now_n as f64,
            proportion_noise(base_k, base_n, now_k, now_n, changes.options.confidence),
        );
    }
}

/// Requests and output tokens per second, tested on the per-second series.
fn throughput_changes(
    changes: &mut Changes,
    base: &GroupResults,
    now: &GroupResults,
    (base_target, now_target): (&TargetResults, &TargetResults),
) {
    for (metric, baseline, current, per_point) in [
        (
            "requests_per_s",
            base.throughput.requests_per_s,
            now.throughput.requests_per_s,
            (|p: &SeriesPoint| p.completed) as fn(&SeriesPoint) -> u64,
        ),
        (
            "output_tokens_per_s",
            base.throughput.output_tokens_per_s,
            now.throughput.output_tokens_per_s,
            |p: &SeriesPoint| p.output_tokens,
        ),
    ] {
        if baseline > 0.0 || current > 0.0 {
            let noise = series_noise(
                base_target,
                now_target,
                per_point,
                changes.options.confidence,
            );
            changes.push(
                metric.to_string(),
                Kind::Throughput,
                baseline,
                current,
                noise,
            );
        }
    }
}

/// What the noise test says.
enum Noise {
    Significant(String),
    NotSignificant(String),
    Untested(String),
}

/// The distribution-free interval of each run's quantile, each at `1 − (1 − c)/2` so that both
/// hold together with confidence ≥ c (Bonferroni); the difference is significant when the two
/// intervals do not overlap. `samples` are the runs' sample sizes in requests (fewer than the
/// histograms' counts for token gaps, see [`quantile_interval`]).
fn quantile_noise(
    (base, now): (&hdrhistogram::Histogram<u64>, &hdrhistogram::Histogram<u64>),
    (base_samples, now_samples): (u64, u64),
    quantile: f64,
    confidence: f64,
) -> Noise {
    let each = 1.0 - (1.0 - confidence) / 2.0;
    let (base_lower, base_upper) = quantile_interval(base, base_samples, quantile, each);
    let (now_lower, now_upper) = quantile_interval(now, now_samples, quantile, each);
    let show = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.2}"));
    let size = |samples: u64, histogram: &hdrhistogram::Histogram<u64>| {
        if samples < histogram.len() {
            format!("n={samples} requests, {} gaps", histogram.len())
        } else {
            format!("n={samples}")
        }
    };
    let text = format!(
        "{:.0}% intervals: baseline [{}, {}] ms ({}), current [{}, {}] ms ({})",
        each * 100.0,
        show(base_lower),
        show(base_upper),
        size(base_samples, base),
        show(now_lower),
        show(now_upper),
        size(now_samples, now)
    );
    let apart = matches!((base_upper, now_lower), (Some(b), Some(n)) if n > b)
        || matches!((now_upper, base_lower), (Some(n), Some(b)) if n < b);
    if apart {
        Noise::Significant(format!("{text}: apart"))
    } else {
        Noise::NotSignificant(format!("{text}: overlapping, within noise"))
    }
}

/// The full seconds of a target's series as per-second rates (the first and last points are
/// partial and left out).
fn per_second_rates(target: &TargetResults, per_point: fn(&SeriesPoint) -> u64) -> Vec<f64> {
    let step = target.series_step_s.max(1) as f64;
    let points = &target.series;
    if points.len() < 3 {
        return Vec::new();
    }
    points[1..points.len() - 1]
        .iter()
        .map(|p| per_point(p) as f64 / step)
        .collect()
}

/// Student's t quantile by the Cornish–Fisher expansion around the normal one (within 1% for
/// 3 or more degrees of freedom at the usual confidences).
fn t_quantile(p: f64, degrees: f64) -> f64 {
    let z = normal_quantile(p);
    let (z3, z5) = (z.powi(3), z.powi(5));
    z + (z3 + z) / (4.0 * degrees) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * degrees.powi(2))
}

/// Welch's t-test on the per-second rates of the two runs, two-sided. Needs three full seconds
/// in each run.
fn series_noise(
    base: &TargetResults,
    now: &TargetResults,
    per_point: fn(&SeriesPoint) -> u64,
    confidence: f64,
) -> Noise {
    let (a, b) = (
        per_second_rates(base, per_point),
        per_second_rates(now, per_point),
    );
    if a.len() < 3 || b.len() < 3 {
        return Noise::NotSignificant(format!(
            "too few full seconds to test throughput against noise ({} and {}; 3 each needed)",
            a.len(),
            b.len()
        ));
    }
    let moments = |v: &[f64]| {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let variance = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (n, mean, variance)
    };
    let ((na, ma, va), (nb, mb, vb)) = (moments(&a), moments(&b));
    let se2 = va / na + vb / nb;
    if se2 == 0.0 {
        return if ma == mb {
            Noise::NotSignificant("identical per-second rates".into())
        } else {
            Noise::Significant("constant per-second rates that differ".into())
        };
    }
    let t = (mb - ma) / se2.sqrt();
    let degrees = se2.powi(2)
        / ((va / na).powi(2) / (na - 1.0) + (vb / nb).powi(2) / (nb - 1.0)).max(f64::MIN_POSITIVE);
    let critical = t_quantile(1.0 - (1.0 - confidence) / 2.0, degrees.max(1.0));
    let text = format!(
        "Welch t = {t:.2} over {} and {} full seconds (critical {critical:.2})",
        a.len(),
        b.len()
    );
    if t.abs() > critical {
        Noise::Significant(text)
    } else {
        Noise::NotSignificant(format!("{text}: within noise"))
    }
}

/// Two-proportion z-test (pooled), two-sided.
fn proportion_noise(base_k: u64, base_n: u64, now_k: u64, now_n: u64, confidence: f64) -> Noise {
    let Some((z, p_value)) = two_proportion_test(base_k, base_n, now_k, now_n) else {
        return Noise::NotSignificant("no variation in either run".into());
    };
    let critical = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
    let text = format!("two-proportion z = {z:.2}, p = {p_value:.3}");
    if z.abs() > critical {
        Noise::Significant(text)
    } else {
        Noise::NotSignificant(format!("{text}: within noise"))
    }
}

fn show_value(value: f64, unit: &str) -> String {
    match unit {
        "" => format!("{:.2}%", value * 100.0),
        "ms" => format!("{value:.2}"),
        _ => format!("{value:.2}"),
    }
}

fn show_change(m: &MetricChange) -> (String, String) {
    let absolute = if m.unit.is_empty() {
        format!("{:+.2} pp", m.change * 100.0)
    } else {
        format!("{:+.2}", m.change)
    };
    let relative = m
        .relative
        .map_or("-".to_string(), |r| format!("{:+.1}%", r * 100.0));
    (absolute, relative)
}

/// The one-line outcome.
pub fn headline(comparison: &Comparison) -> String {
    format!(
        "compare: {} regressed, {} improved, {} inconclusive, {} unchanged ({} metrics)",
        comparison.count(Change::Regressed),
        comparison.count(Change::Improved),
        comparison.count(Change::Inconclusive),
        comparison.count(Change::Unchanged),
        comparison.metrics.len()
    )
}

/// A fixed-width table for the terminal.
pub fn terminal(comparison: &Comparison) -> String {
    let mut rows = vec![[
        "target".to_string(),
        "class".into(),
        "metric".into(),
        "baseline".into(),
        "current".into(),
        "change".into(),
        "rel".into(),
        "threshold".into(),
        "verdict".into(),
    ]];
    for m in &comparison.metrics {
        let (absolute, relative) = show_change(m);
        rows.push([
            m.target.clone(),
            m.class.clone(),
            m.metric.clone(),
            show_value(m.baseline, &m.unit),
            show_value(m.current, &m.unit),
            absolute,
            relative,
            m.threshold.clone(),
            m.verdict.name().to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<width$}", width = widths[i]))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    for m in comparison
        .metrics
        .iter()
        .filter(|m| matches!(m.verdict, Change::Regressed | Change::Inconclusive))
    {
        let _ = writeln!(
            out,
            "{} {}/{} {}: {}",
            m.verdict.name(),
            m.target,
            m.class,
            m.metric,
            m.evidence
        );
    }
    for note in &comparison.unmatched {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = writeln!(out, "{}", headline(comparison));
    out
}

/// GitHub-flavoured Markdown (for `$GITHUB_STEP_SUMMARY`): changed metrics first, then all.
pub fn markdown(comparison: &Comparison) -> String {
    let mut out = String::new();
    let verdict = if comparison.regressed() {
        "❌ regressed"
    } else {
        "✅ no regression"
    };
    let _ = writeln!(out, "## drover compare: {verdict}\n");
    let _ = writeln!(out, "{}\n", headline(comparison));
    let _ = writeln!(
        out,
        "| target | class | metric | baseline | current | change | rel | threshold | verdict |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---|");
    let mut ordered: Vec<&MetricChange> = comparison.metrics.iter().collect();
    ordered.sort_by_key(|m| match m.verdict {
        Change::Regressed => 0,
        Change::Inconclusive => 1,
        Change::Improved => 2,
        Change::Unchanged => 3,
    });
    for m in ordered {
        let (absolute, relative) = show_change(m);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.target.replace('|', "\\|"),
            m.class.replace('|', "\\|"),
            m.metric,
            show_value(m.baseline, &m.unit),
            show_value(m.current, &m.unit),
            absolute,
            relative,
            m.threshold,
            m.verdict.name()
        );
    }
    for note in &comparison.unmatched {
        let _ = writeln!(out, "\n> note: {note}");
    }
    out
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// JUnit XML: one `testsuite` per target, one `testcase` per checked metric; a regression is a
/// `failure`, an inconclusive change `skipped`.
pub fn junit(comparison: &Comparison) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = comparison.count(Change::Regressed);
    let skipped = comparison.count(Change::Inconclusive);
    let _ = writeln!(
        out,
        "<testsuites name=\"drover compare\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
        comparison.metrics.len()
    );
    let mut targets: Vec<&str> = comparison
        .metrics
        .iter()
        .map(|m| m.target.as_str())
        .collect();
    targets.dedup();
    for target in targets {
        let cases: Vec<&MetricChange> = comparison
            .metrics
            .iter()
            .filter(|m| m.target == target)
            .collect();
        let _ =
            writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\">",
            xml_escape(target),
            cases.len(),
            cases.iter().filter(|m| m.verdict == Change::Regressed).count(),
            cases
                .iter()
                .filter(|m| m.verdict == Change::Inconclusive)
                .count()
        );
        for m in cases {
            let (absolute, relative) = show_change(m);
            let summary = format!(
                "{}: baseline {}, current {} ({absolute}, {relative}; threshold {}): {}",
                m.metric,
                show_value(m.baseline, &m.unit),
                show_value(m.current, &m.unit),
                m.threshold,
                m.verdict.name()
            );
            let _ = write!(
                out,
                "    <testcase classname=\"{}.{}\" name=\"{}\"",
                xml_escape(&m.target),
                xml_escape(&m.class),
                xml_escape(&m.metric)
            );
            match m.verdict {
                Change::Regressed => {
                    let _ = writeln!(
                        out,
                        "><failure message=\"{}\" type=\"regression\">{}</failure></testcase>",
                        xml_escape(&summary),
                        xml_escape(&m.evidence)
                    );
                }
                Change::Inconclusive => {
                    let _ = writeln!(
                        out,
                        "><skipped message=\"{}\"/></testcase>",
                        xml_escape(&format!("{summary}; {}", m.evidence))
                    );
                }
                Change::Improved | Change::Unchanged => {
                    let _ = writeln!(
                        out,
                        "><system-out>{}</system-out></testcase>",
                        xml_escape(&summary)
                    );
                }
            }
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::{encode_histogram, new_histogram, stat_ms};

    fn group(ttft_ms: impl Iterator<Item = f64>, failed: u64) -> GroupResults {
        let mut histogram = new_histogram();
        for v in ttft_ms {
            histogram.record((v * 1000.0) as u64).unwrap();
        }
        let mut group = GroupResults::default();
        group.requests.succeeded = histogram.len();
        group.requests.failed = failed;
        group.requests.sent = histogram.len() + failed;
        group.throughput.requests_per_s = 100.0;
        group.latency_ms.insert("ttft".into(), stat_ms(&histogram));
        group
            .histograms
            .insert("ttft".into(), encode_histogram(&histogram));
        group
    }

    fn run(summary: GroupResults) -> RunResults {
        let summary = serde_json::to_value(&summary).unwrap();
        let mut class = summary.clone();
        class["name"] = "chat".into();
        serde_json::from_value(serde_json::json!({
            "schema": "drover.results/v1",
            "drover_version": "0.1.0",
            "scenario": { "name": "s", "source": "s.toml", "seed": 1, "as_run": {} },
            "status": "completed",
            "started_at": "2026-11-29T00:00:00Z",
            "ended_at": "2026-11-29T00:00:10Z",
            "duration_s": 10.0,
            "warnings": [],
            "targets": [{
                "name": "mock", "model": "m", "mode": "stream", "endpoint": "embedded-mock",
                "summary": summary, "classes": [class], "series": []
            }]
        }))
        .expect("a results document")
    }

    fn spread(centre: f64, n: usize) -> impl Iterator<Item = f64> {
        (0..n).map(move |i| centre - 4.0 + 8.0 * i as f64 / n as f64)
    }

    fn verdict(c: &Comparison, class: &str, metric: &str) -> Change {
        c.metrics
            .iter()
            .find(|m| m.class == class && m.metric == metric)
            .unwrap()
            .verdict
    }

    #[test]
    fn identical_runs_are_unchanged_and_a_slower_one_regressed() {
        let base = run(group(spread(40.0, 500), 0));
        let same = compare(&base, &base, &CompareOptions::default()).unwrap();
        assert_eq!(same.count(Change::Unchanged), same.metrics.len());
        assert!(!same.regressed());
        let slower = run(group(spread(52.0, 500), 0));
        let c = compare(&base, &slower, &CompareOptions::default()).unwrap();
        assert_eq!(verdict(&c, "(all)", "ttft.p50"), Change::Regressed);
        assert_eq!(verdict(&c, "chat", "ttft.p99"), Change::Regressed);
        assert!(c.regressed());
        let faster = compare(&slower, &base, &CompareOptions::default()).unwrap();
        assert_eq!(verdict(&faster, "(all)", "ttft.p50"), Change::Improved);
    }

    #[test]
    fn a_change_beyond_the_threshold_that_noise_explains_is_inconclusive() {
        // 10 samples each: a 12% shift of the median is within the intervals.
        let base = run(group(spread(40.0, 10), 0));
        let now = run(group(spread(45.0, 10), 0));
        let c = compare(&base, &now, &CompareOptions::default()).unwrap();
        assert_eq!(verdict(&c, "(all)", "ttft.p50"), Change::Inconclusive);
        // A looser threshold makes it unchanged.
        let mut options = CompareOptions::default();
        options
            .thresholds
            .insert("ttft.p50".into(), Threshold::parse("20%").unwrap());
        let c = compare(&base, &now, &options).unwrap();
        assert_eq!(verdict(&c, "(all)", "ttft.p50"), Change::Unchanged);
    }

    /// A group whose `itl` histogram holds `gaps_per_request` gaps from each of `requests`
    /// streams, a stream's gaps alike (the correlated case) and streams spread around `centre`.
    fn group_with_gaps(centre: f64, requests: usize, gaps_per_request: usize) -> GroupResults {
        let mut group = group(spread(40.0, requests), 0);
        let mut histogram = new_histogram();
        for gap in spread(centre, requests) {
            histogram
                .record_n((gap * 1000.0) as u64, gaps_per_request as u64)
                .unwrap();
        }
        let mut stat = stat_ms(&histogram);
        stat.requests = Some(requests as u64);
        group.latency_ms.insert("itl".into(), stat);
        group
            .histograms
            .insert("itl".into(), encode_histogram(&histogram));
        group
    }

    #[test]
    fn token_gaps_are_compared_with_the_request_as_the_unit() {
        // 12 streams of 50 gaps each, the p50 gap moving from 20 to 23 ms (+15%): 600 gaps
        // would call that apart, 12 requests cannot.
        let base = run(group_with_gaps(20.0, 12, 50));
        let now = run(group_with_gaps(23.0, 12, 50));
        let c = compare(&base, &now, &CompareOptions::default()).unwrap();
        assert_eq!(verdict(&c, "(all)", "itl.p50"), Change::Inconclusive);
        let evidence = &c
            .metrics
            .iter()
            .find(|m| m.metric == "itl.p50")
            .unwrap()
            .evidence;
        assert!(evidence.contains("n=12 requests, 600 gaps"), "{evidence}");
        // Counted as 600 independent samples (results written before the request count was
        // kept), the same data is called a regression.
        let as_gaps = |mut results: RunResults| {
            for target in &mut results.targets {
                target.summary.latency_ms.get_mut("itl").unwrap().requests = None;
            }
            results
        };
        let c = compare(
            &as_gaps(base.clone()),
            &as_gaps(now.clone()),
            &CompareOptions::default(),
        )
        .unwrap();
        assert_eq!(verdict(&c, "(all)", "itl.p50"), Change::Regressed);
        // With enough streams the request-level test sees the shift.
        let c = compare(
            &run(group_with_gaps(20.0, 400, 50)),
            &run(group_with_gaps(23.0, 400, 50)),
            &CompareOptions::default(),
        )
        .unwrap();
        assert_eq!(verdict(&c, "(all)", "itl.p50"), Change::Regressed);
    }

    #[test]
    fn error_rates_use_a_two_proportion_test() {
        let base = run(group(spread(40.0, 1000), 5));
        let now = run(group(spread(40.0, 1000), 60));
        let c = compare(&base, &now, &CompareOptions::default()).unwrap();
        assert_eq!(verdict(&c, "(all)", "error_rate"), Change::Regressed);
        let noisy = run(group(spread(40.0, 100), 3));
        let c = compare(
            &run(group(spread(40.0, 100), 1)),
            &noisy,
            &CompareOptions::default(),
        )
        .unwrap();
        assert_eq!(verdict(&c, "(all)", "error_rate"), Change::Inconclusive);
    }

    #[test]
    fn different_scenarios_cannot_be_compared() {
        let base = run(group(spread(40.0, 10), 0));
        let mut other = base.clone();
        other.scenario.name = "other".into();
        let error = compare(&base, &other, &CompareOptions::default()).unwrap_err();
        assert!(error.to_string().contains("different scenarios"), "{error}");
    }

    #[test]
    fn threshold_names_are_checked_with_a_suggestion() {
        assert!(check_threshold_name("ttft.p99").is_ok());
        assert!(check_threshold_name("latency").is_ok());
        assert!(check_threshold_name("error_rate").is_ok());
        let typo = check_threshold_name("tft.p50").unwrap_err();
        assert!(typo.contains("(did you mean ttft.p50?)"), "{typo}");
        let unknown = check_threshold_name("foo").unwrap_err();
        assert!(!unknown.contains("did you mean"), "{unknown}");
    }

    #[test]
    fn thresholds_parse_relative_and_absolute() {
        assert_eq!(Threshold::parse("15%").unwrap(), Threshold::Relative(0.15));
        assert_eq!(Threshold::parse("5ms").unwrap(), Threshold::Absolute(5.0));
        assert_eq!(Threshold::parse("0.02").unwrap(), Threshold::Absolute(0.02));
        assert!(Threshold::parse("fast").is_err());
    }
}
