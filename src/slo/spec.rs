//! The SLO language at plan time: an assertion (`"ttft.p99 < 200ms"`, scoped to a target or
//! class), its metric and bound, the `[slo]` plan, and how many samples it needs to decide.

use std::fmt;

use crate::results::slo::SloResults;
use crate::stats::{quantile_ranks, smallest_deciding, wilson_interval};

use super::goodput::{GoodCriterion, PerRequest};

/// `<`, `<=`, `>` or `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Below,
    AtMost,
    Above,
    AtLeast,
}

impl Comparison {
    /// Whether `value` meets the bound `threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Below => value < threshold,
            Comparison::AtMost => value <= threshold,
            Comparison::Above => value > threshold,
            Comparison::AtLeast => value >= threshold,
        }
    }

    pub(super) fn upper_bound(self) -> bool {
        matches!(self, Comparison::Below | Comparison::AtMost)
    }
}

/// What an assertion measures.
#[derive(Debug, Clone, PartialEq)]
pub enum SloMetric {
    /// A quantile (0–1) of a latency histogram, in milliseconds.
    Quantile {
        histogram: String,
        quantile: f64,
    },
    /// Failed requests other than 429s, over all finished requests.
    ErrorRate,
    /// 429 responses over all finished requests.
    ThrottleRate,
    /// Requests that met every latency criterion, over all finished requests (errors count
    /// against it).
    GoodFraction,
    OutputTokensPerS,
    RequestsPerS,
    /// Requests meeting every latency criterion per second of the measured window.
    GoodputPerS,
    /// Cost per million output tokens, in the reporting currency.
    CostPerMTok,
}

/// Latency histograms an assertion may name, and which of them a single request has (for
/// goodput).
const LATENCY_METRICS: [&str; 14] = [
    "ttft",
    "ttft_corrected",
    "ttfb",
    "time_to_first_event",
    "time_to_first_answer",
    "itl",
    "tpot",
    "e2e",
    "e2e_corrected",
    "schedule_lag",
    "dns",
    "tcp_connect",
    "tls_handshake",
    "connection_setup",
];

/// One assertion, e.g. `chat: ttft.p99 < 200ms` (scope, metric, comparison, threshold).
#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    pub text: String,
    /// Only this target (all targets when `None`).
    pub target: Option<String>,
    /// Only this class (the target's summary of all classes when `None`).
    pub class: Option<String>,
    pub metric: SloMetric,
    pub comparison: Comparison,
    /// Milliseconds for latencies, a fraction for rates, the metric's unit otherwise.
    pub threshold: f64,
}

impl Assertion {
    /// The fewest samples (requests) on which this assertion could pass at `confidence`, had
    /// every sample been as good as it can be: a p99 below a bound needs enough samples for an
    /// order statistic above the p99 (368 at 95%), `error_rate < 1%` needs a Wilson upper bound
    /// of no errors below 1% (381). `Some(1)` for a point value (throughput, cost), `None` when
    /// no sample size could (`error_rate < 0%`).
    pub fn samples_to_pass(&self, confidence: f64) -> Option<u64> {
        let threshold = self.threshold;
        let comparison = self.comparison;
        let passes: Box<dyn Fn(u64) -> bool> = match &self.metric {
            SloMetric::Quantile { quantile, .. } => {
                let quantile = *quantile;
                Box::new(move |n| {
                    let (lower, upper) = quantile_ranks(n, quantile, confidence);
                    if comparison.upper_bound() {
                        upper.is_some()
                    } else {
                        lower.is_some()
                    }
                })
            }
            SloMetric::ErrorRate | SloMetric::ThrottleRate | SloMetric::GoodFraction => {
                Box::new(move |n| {
                    // The best outcome: no request counted for a bound from above, every one
                    // for a bound from below.
                    let (lower, upper) = if comparison.upper_bound() {
                        wilson_interval(0, n, confidence)
                    } else {
                        wilson_interval(n, n, confidence)
                    };
                    let deciding = if comparison.upper_bound() {
                        upper
                    } else {
                        lower
                    };
                    comparison.holds(deciding, threshold)
                })
            }
            SloMetric::OutputTokensPerS
            | SloMetric::RequestsPerS
            | SloMetric::GoodputPerS
            | SloMetric::CostPerMTok => return Some(1),
        };
        if passes(1) {
            return Some(1);
        }
        smallest_deciding(1, passes)
    }
}

impl fmt::Display for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses `[target[/class]:] metric op value`.
pub fn parse(text: &str) -> Result<Assertion, String> {
    let trimmed = text.trim();
    let (scope, body) = match trimmed.split_once(':') {
        Some((scope, body)) => (Some(scope.trim()), body.trim()),
        None => (None, trimmed),
    };
    let (target, class) = match scope {
        None => (None, None),
        Some("") => return Err("the scope before ':' is empty".into()),
        Some(scope) => match scope.split_once('/') {
            Some((target, class)) => (
                Some(target.trim().to_string()),
                Some(class.trim().to_string()),
            ),
            None => (Some(scope.to_string()), None),
        },
    };
    let position = body
        .find(['<', '>'])
        .ok_or_else(|| format!("\"{text}\" has no comparison: write e.g. \"ttft.p99 < 200ms\""))?;
    let (name, rest) = body.split_at(position);
    let (comparison, value) = if let Some(value) = rest.strip_prefix("<=") {
        (Comparison::AtMost, value)
    } else if let Some(value) = rest.strip_prefix(">=") {
        (Comparison::AtLeast, value)
    } else if let Some(value) = rest.strip_prefix('<') {
        (Comparison::Below, value)
    } else {
        (Comparison::Above, &rest[1..])
    };
    let name = name.trim();
    let value = value.trim();
    let metric = parse_metric(name)?;
    let threshold = match &metric {
        SloMetric::Quantile { .. } => parse_duration_ms(value)?,
        SloMetric::ErrorRate | SloMetric::ThrottleRate | SloMetric::GoodFraction => {
            parse_fraction(value)?
        }
        _ => value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("\"{value}\" is not a number of at least 0"))?,
    };
    Ok(Assertion {
        text: trimmed.to_string(),
        target,
        class,
        metric,
        comparison,
        threshold,
    })
}

fn parse_metric(name: &str) -> Result<SloMetric, String> {
    let simple = match name {
        "error_rate" => Some(SloMetric::ErrorRate),
        "throttle_rate" => Some(SloMetric::ThrottleRate),
        "good_fraction" | "goodput_fraction" => Some(SloMetric::GoodFraction),
        "output_tokens_per_s" => Some(SloMetric::OutputTokensPerS),
        "requests_per_s" => Some(SloMetric::RequestsPerS),
        "goodput" | "goodput_per_s" => Some(SloMetric::GoodputPerS),
        "cost_per_mtok" => Some(SloMetric::CostPerMTok),
        _ => None,
    };
    if let Some(metric) = simple {
        return Ok(metric);
    }
    let known = "a latency quantile (ttft.p50, e2e.p99, itl.p95, ttft.p99.9, …), error_rate, \
                 throttle_rate, good_fraction, goodput_per_s, output_tokens_per_s, \
                 requests_per_s or cost_per_mtok";
    if !name.contains(".p") {
        return Err(format!(
            "unknown metric \"{name}\"{}: use {known}",
            did_you_mean(name, &SIMPLE_METRICS)
        ));
    }
    let (histogram, quantile) = parse_latency_quantile(name)?;
    Ok(SloMetric::Quantile {
        histogram,
        quantile,
    })
}

/// The metrics an assertion names without a quantile.
const SIMPLE_METRICS: [&str; 8] = [
    "error_rate",
    "throttle_rate",
    "good_fraction",
    "goodput",
    "goodput_per_s",
    "output_tokens_per_s",
    "requests_per_s",
    "cost_per_mtok",
];

/// `" (did you mean X?)"` for the known names closest to `name`, when they are close enough.
pub(crate) fn did_you_mean(name: &str, known: &[&str]) -> String {
    let distance = |k: &&str| strsim::levenshtein(name, k);
    let Some(best) = known.iter().map(distance).min() else {
        return String::new();
    };
    if best > (name.len() / 3).max(1) {
        return String::new();
    }
    let closest: Vec<&str> = known
        .iter()
        .filter(|k| distance(k) == best)
        .copied()
        .collect();
    format!(" (did you mean {}?)", closest.join(" or "))
}

/// Reads a latency quantile such as `ttft.p99` or `e2e.p99.9`: the histogram's name and the
/// quantile as a fraction (0.99). Shared by SLO assertions and migration gates.
pub(crate) fn parse_latency_quantile(name: &str) -> Result<(String, f64), String> {
    let Some((histogram, quantile)) = name.split_once(".p") else {
        return Err(format!(
            "\"{name}\" is not a latency quantile such as ttft.p99 or e2e.p50"
        ));
    };
    if !LATENCY_METRICS.contains(&histogram) {
        return Err(format!(
            "unknown latency \"{histogram}\"{}: use one of {}",
            did_you_mean(histogram, &LATENCY_METRICS),
            LATENCY_METRICS.join(", ")
        ));
    }
    let percent = quantile
        .parse::<f64>()
        .ok()
        .filter(|p| *p > 0.0 && *p < 100.0)
        .ok_or_else(|| {
            format!("\"p{quantile}\" is not a percentile between p0 and p100 (e.g. p50, p99.9)")
        })?;
    Ok((histogram.to_string(), percent / 100.0))
}

fn parse_duration_ms(value: &str) -> Result<f64, String> {
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    humantime::parse_duration(&compact)
        .map(|d| d.as_secs_f64() * 1000.0)
        .map_err(|_| format!("\"{value}\" is not a duration: write e.g. \"50ms\" or \"1.5s\""))
}

fn parse_fraction(value: &str) -> Result<f64, String> {
    let fraction = match value.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().ok().map(|p| p / 100.0),
        None => value.parse::<f64>().ok(),
    };
    fraction
        .filter(|f| (0.0..=1.0).contains(f))
        .ok_or_else(|| format!("\"{value}\" is not a rate: write e.g. \"1%\" or 0.01"))
}

/// The SLO section of a scenario, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SloPlan {
    pub assertions: Vec<Assertion>,
    /// Two-sided confidence of every interval (default 0.95).
    pub confidence: f64,
    /// Exit non-zero on `inconclusive` as well as on `fail`.
    pub fail_on_inconclusive: bool,
}

impl SloPlan {
    /// The plan `results` were evaluated with: each assertion (as written, once however many
    /// targets it applied to), the confidence and the inconclusive rule. Lets merged shards be
    /// evaluated again on their merged histograms. An assertion that no longer parses is named.
    pub fn of_results(results: &SloResults) -> Result<SloPlan, String> {
        let mut assertions: Vec<Assertion> = Vec::new();
        for result in &results.assertions {
            if assertions.iter().any(|a| a.text == result.assertion) {
                continue;
            }
            assertions.push(
                parse(&result.assertion)
                    .map_err(|why| format!("SLO assertion \"{}\": {why}", result.assertion))?,
            );
        }
        Ok(SloPlan {
            assertions,
            confidence: results.confidence,
            fail_on_inconclusive: results.fail_on_inconclusive,
        })
    }

    /// The per-request latency criteria of goodput: each latency assertion with an upper bound
    /// becomes "this request's value meets the threshold".
    pub fn good_criteria(&self) -> Vec<GoodCriterion> {
        self.assertions
            .iter()
            .filter(|a| a.comparison.upper_bound())
            .filter_map(|a| match &a.metric {
                SloMetric::Quantile { histogram, .. } => {
                    PerRequest::from_name(histogram).map(|metric| GoodCriterion {
                        target: a.target.clone(),
                        class: a.class.clone(),
                        metric,
                        comparison: a.comparison,
                        threshold_ms: a.threshold,
                    })
                }
                _ => None,
            })
            .collect()
    }
}
