//! SLO assertions (`[slo] assert = ["ttft.p99 < 200ms", …]`): parsing, evaluation against a
//! run's results with a distribution-free confidence interval, and the verdict — `pass`, `fail`,
//! or `inconclusive` when the sample cannot decide at the chosen confidence, with the number of
//! samples that would. Also the per-request criteria that define goodput.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::stats::{
    quantile_interval, quantile_ranks, smallest_deciding, value_at_fraction, value_at_rank,
    wilson_interval,
};
use crate::metrics::decode_histogram;
use crate::record::RequestRecord;
use crate::results::{GroupResults, RunResults};

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

    fn upper_bound(self) -> bool {
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

/// A latency a single request has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerRequest {
    Ttft,
    TtftCorrected,
    Ttfb,
    TimeToFirstEvent,
    TimeToFirstAnswer,
    /// The mean of the request's inter-token gaps.
    Itl,
    Tpot,
    E2e,
    E2eCorrected,
}

impl PerRequest {
    fn from_name(name: &str) -> Option<PerRequest> {
        Some(match name {
            "ttft" => PerRequest::Ttft,
            "ttft_corrected" => PerRequest::TtftCorrected,
            "ttfb" => PerRequest::Ttfb,
            "time_to_first_event" => PerRequest::TimeToFirstEvent,
            "time_to_first_answer" => PerRequest::TimeToFirstAnswer,
            "itl" => PerRequest::Itl,
            "tpot" => PerRequest::Tpot,
            "e2e" => PerRequest::E2e,
            "e2e_corrected" => PerRequest::E2eCorrected,
            _ => return None,
        })
    }

    fn of(self, record: &RequestRecord) -> Option<Duration> {
        match self {
            PerRequest::Ttft => record.ttft(),
            PerRequest::TtftCorrected => record.ttft_corrected(),
            PerRequest::Ttfb => record.ttfb(),
            PerRequest::TimeToFirstEvent => record.time_to_first_event(),
            PerRequest::TimeToFirstAnswer => record.time_to_first_answer(),
            PerRequest::Itl => {
                let gaps = u32::try_from(record.token_gaps.len()).ok()?;
                (gaps > 0).then(|| record.token_gaps.iter().sum::<Duration>() / gaps)
            }
            PerRequest::Tpot => record.tpot(),
            PerRequest::E2e => Some(record.e2e()),
            PerRequest::E2eCorrected => Some(record.e2e_corrected()),
        }
    }
}

/// One per-request criterion of goodput, scoped like its assertion.
#[derive(Debug, Clone, PartialEq)]
pub struct GoodCriterion {
    pub target: Option<String>,
    pub class: Option<String>,
    pub metric: PerRequest,
    pub comparison: Comparison,
    pub threshold_ms: f64,
}

/// Decides, request by request, whether it was "good": successful and within every latency
/// criterion that applies to its target and class. A missing latency (a non-streamed request
/// has no TTFT) does not meet its criterion.
#[derive(Debug, Clone, Default)]
pub struct GoodputJudge {
    /// Per target, per class: the criteria that apply.
    criteria: Vec<Vec<Vec<GoodCriterion>>>,
}

impl GoodputJudge {
    pub fn new(criteria: &[GoodCriterion], targets: &[String], classes: &[String]) -> Self {
        let criteria = targets
            .iter()
            .map(|target| {
                classes
                    .iter()
                    .map(|class| {
                        criteria
                            .iter()
                            .filter(|c| c.target.as_ref().is_none_or(|t| t == target))
                            .filter(|c| c.class.as_ref().is_none_or(|k| k == class))
                            .cloned()
                            .collect()
                    })
                    .collect()
            })
            .collect();
        GoodputJudge { criteria }
    }

    /// Whether any criterion exists (else goodput is not tracked).
    pub fn is_active(&self) -> bool {
        self.criteria.iter().flatten().any(|c| !c.is_empty())
    }

    pub fn is_good(&self, record: &RequestRecord) -> bool {
        if record.outcome.is_err() {
            return false;
        }
        let Some(criteria) = self
            .criteria
            .get(record.target)
            .and_then(|t| t.get(record.class))
        else {
            return true;
        };
        criteria.iter().all(|c| {
            c.metric.of(record).is_some_and(|value| {
                c.comparison
                    .holds(value.as_secs_f64() * 1000.0, c.threshold_ms)
            })
        })
    }
}

/// `pass`, `fail` or `inconclusive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One assertion, evaluated on one target (and class).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AssertionResult {
    pub assertion: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The point value (`None`: nothing to measure, e.g. no successful request).
    pub measured: Option<f64>,
    /// `ms`, `fraction`, `tokens/s`, `requests/s` or the currency per 1M output tokens.
    pub unit: String,
    pub threshold: f64,
    /// Samples behind the value (latency samples, or finished requests for a rate).
    pub samples: u64,
    /// The two-sided interval at the run's confidence; a side is `None` when the sample is too
    /// small to bound it. Absent for point values (throughput, cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<(Option<f64>, Option<f64>)>,
    pub verdict: Verdict,
    /// For `inconclusive`: how many samples would decide, if the distribution stays as measured
    /// (`None`: no sample size would, at the measured value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_needed: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Every assertion of a run, evaluated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SloResults {
    pub confidence: f64,
    pub fail_on_inconclusive: bool,
    /// `fail` if any assertion failed, else `inconclusive` if any was, else `pass`.
    pub verdict: Verdict,
    pub assertions: Vec<AssertionResult>,
}

impl SloResults {
    /// Whether the run should exit non-zero for its SLOs.
    pub fn failed(&self) -> bool {
        self.verdict == Verdict::Fail
            || (self.fail_on_inconclusive && self.verdict == Verdict::Inconclusive)
    }
}

/// Evaluates every assertion on every target (and class) it applies to.
pub fn evaluate(plan: &SloPlan, results: &RunResults) -> SloResults {
    let mut out = Vec::new();
    for assertion in &plan.assertions {
        for target in &results.targets {
            if assertion.target.as_ref().is_some_and(|t| *t != target.name) {
                continue;
            }
            let group = match &assertion.class {
                None => Some(&target.summary),
                Some(class) => target
                    .classes
                    .iter()
                    .find(|c| c.name == *class)
                    .map(|c| &c.results),
            };
            let mut result = match group {
                Some(group) => evaluate_one(assertion, group, plan.confidence),
                None => AssertionResult {
                    note: "the class sent no request to this target".into(),
                    ..AssertionResult::failed(assertion)
                },
            };
            result.target = target.name.clone();
            result.class = assertion.class.clone();
            out.push(result);
        }
    }
    let verdict = if out.iter().any(|r| r.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if out.iter().any(|r| r.verdict == Verdict::Inconclusive) {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    };
    SloResults {
        confidence: plan.confidence,
        fail_on_inconclusive: plan.fail_on_inconclusive,
        verdict,
        assertions: out,
    }
}

impl AssertionResult {
    /// A failed result with nothing measured yet; evaluation fills it in.
    fn failed(assertion: &Assertion) -> AssertionResult {
        AssertionResult {
            assertion: assertion.text.clone(),
            target: String::new(),
            class: None,
            measured: None,
            unit: String::new(),
            threshold: assertion.threshold,
            samples: 0,
            interval: None,
            verdict: Verdict::Fail,
            samples_needed: None,
            note: String::new(),
        }
    }
}

fn evaluate_one(assertion: &Assertion, group: &GroupResults, confidence: f64) -> AssertionResult {
    let mut result = AssertionResult::failed(assertion);
    let finished = group.requests.succeeded + group.requests.failed;
    if group.requests.succeeded == 0 {
        result.note = "no successful request: a run that served nothing never passes".into();
        result.samples = finished;
        return result;
    }
    let comparison = assertion.comparison;
    match &assertion.metric {
        SloMetric::Quantile {
            histogram,
            quantile,
        } => {
            result.unit = "ms".into();
            let decoded = group
                .histograms
                .get(histogram)
                .and_then(|text| decode_histogram(text).ok());
            let Some(histogram_us) = decoded.filter(|h| !h.is_empty()) else {
                result.note = format!("no {histogram} samples in this run");
                return result;
            };
            let samples = group
                .latency_ms
                .get(histogram)
                .map_or(histogram_us.len(), |stat| stat.sample_size());
            quantile_verdict(
                &mut result,
                &histogram_us,
                samples,
                *quantile,
                comparison,
                confidence,
            );
        }
        SloMetric::ErrorRate | SloMetric::ThrottleRate | SloMetric::GoodFraction => {
            result.unit = "fraction".into();
            let throttled = group.requests.throttled;
            let count = match assertion.metric {
                SloMetric::ErrorRate => {
                    group.requests.failed - throttled.min(group.requests.failed)
                }
                SloMetric::ThrottleRate => throttled,
                _ => match &group.goodput {
                    Some(goodput) => goodput.good,
                    None => {
                        result.note = "no latency criterion defines goodput".into();
                        return result;
                    }
                },
            };
            rate_verdict(&mut result, count, finished, comparison, confidence);
        }
        SloMetric::OutputTokensPerS | SloMetric::RequestsPerS | SloMetric::GoodputPerS => {
            result.unit = if assertion.metric == SloMetric::OutputTokensPerS {
                "tokens/s".into()
            } else {
                "requests/s".into()
            };
            let value = match assertion.metric {
                SloMetric::OutputTokensPerS => Some(group.throughput.output_tokens_per_s),
                SloMetric::RequestsPerS => Some(group.throughput.requests_per_s),
                _ => group.goodput.as_ref().map(|g| g.good_per_s),
            };
            point_verdict(&mut result, value, finished, comparison);
        }
        SloMetric::CostPerMTok => {
            let cost = group.cost.as_ref();
            result.unit = cost.map_or("cost".into(), |c| {
                format!("{} per 1M output tokens", c.currency)
            });
            let value = cost
                .filter(|c| c.requests_priced > 0)
                .map(|c| c.per_million_output_tokens);
            if value.is_none() {
                result.note = "the target is not priced".into();
            }
            point_verdict(&mut result, value, finished, comparison);
        }
    }
    result
}

/// A throughput or cost: compared as measured (no sampling interval is claimed).
fn point_verdict(
    result: &mut AssertionResult,
    value: Option<f64>,
    samples: u64,
    comparison: Comparison,
) {
    result.samples = samples;
    result.measured = value;
    let Some(value) = value else {
        result.verdict = Verdict::Fail;
        return;
    };
    result.verdict = if comparison.holds(value, result.threshold) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    if result.note.is_empty() {
        result.note = "a point value over the measured window (no interval)".into();
    }
}

/// Whether the bound decides the assertion: an upper bound meeting `value < T` passes it, a lower
/// bound already at or over `T` fails it (mirrored for `>`).
fn decide(
    comparison: Comparison,
    threshold: f64,
    lower: Option<f64>,
    upper: Option<f64>,
) -> Verdict {
    let (deciding_pass, deciding_fail) = if comparison.upper_bound() {
        (upper, lower)
    } else {
        (lower, upper)
    };
    if deciding_pass.is_some_and(|v| comparison.holds(v, threshold)) {
        Verdict::Pass
    } else if deciding_fail.is_some_and(|v| !comparison.holds(v, threshold)) {
        Verdict::Fail
    } else {
        Verdict::Inconclusive
    }
}

/// A quantile assertion, decided on the distribution-free interval from `samples` independent
/// samples (requests; see [`quantile_interval`]). When undecided, `samples_needed` is the size at
/// which the interval would decide if the observed value held: a side the data bounds narrows as
/// 1/√n around the observed value; a side it cannot bound yet (a p99 of 20 samples) is read from
/// the observed distribution at the ranks of the larger sample.
fn quantile_verdict(
    result: &mut AssertionResult,
    histogram: &Histogram<u64>,
    samples: u64,
    quantile: f64,
    comparison: Comparison,
    confidence: f64,
) {
    let count = histogram.len();
    let samples = samples.clamp(1, count);
    result.samples = samples;
    let point = value_at_rank(
        histogram,
        ((quantile * count as f64).ceil() as u64).clamp(1, count),
    );
    result.measured = Some(point);
    let (lower, upper) = quantile_interval(histogram, samples, quantile, confidence);
    result.interval = Some((lower, upper));
    result.verdict = decide(comparison, result.threshold, lower, upper);
    if result.verdict != Verdict::Inconclusive {
        return;
    }
    // Reading the observed distribution at a fraction, shifted so that the quantile itself
    // reads as the observed value.
    let shift = point - value_at_fraction(histogram, quantile);
    result.samples_needed = smallest_deciding(samples, |larger| {
        let narrowing = (samples as f64 / larger as f64).sqrt();
        let (far_lower, far_upper) = quantile_interval(histogram, larger, quantile, confidence);
        let projected_lower = match lower {
            Some(bound) => Some(point - (point - bound) * narrowing),
            None => far_lower.map(|v| (v + shift).min(point)),
        };
        let projected_upper = match upper {
            Some(bound) => Some(point + (bound - point) * narrowing),
            None => far_upper.map(|v| (v + shift).max(point)),
        };
        decide(
            comparison,
            result.threshold,
            projected_lower,
            projected_upper,
        ) != Verdict::Inconclusive
    });
}

fn rate_verdict(
    result: &mut AssertionResult,
    count: u64,
    n: u64,
    comparison: Comparison,
    confidence: f64,
) {
    result.samples = n;
    let rate = if n > 0 { count as f64 / n as f64 } else { 0.0 };
    result.measured = Some(rate);
    let (lower, upper) = wilson_interval(count, n, confidence);
    result.interval = Some((Some(lower), Some(upper)));
    result.verdict = decide(comparison, result.threshold, Some(lower), Some(upper));
    if result.verdict == Verdict::Inconclusive {
        result.samples_needed = smallest_deciding(n, |n_| {
            let scaled = (rate * n_ as f64).round() as u64;
            let (lower, upper) = wilson_interval(scaled, n_, confidence);
            decide(comparison, result.threshold, Some(lower), Some(upper)) != Verdict::Inconclusive
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode_histogram, new_histogram};

    #[test]
    fn assertions_parse_with_scope_units_and_comparisons() {
        let a = parse("ttft.p50 < 50ms").unwrap();
        assert_eq!(
            a.metric,
            SloMetric::Quantile {
                histogram: "ttft".into(),
                quantile: 0.5
            }
        );
        assert_eq!((a.comparison, a.threshold), (Comparison::Below, 50.0));
        let a = parse("mock/chat: e2e.p99.9 <= 1.5s").unwrap();
        assert_eq!(
            (a.target.as_deref(), a.class.as_deref()),
            (Some("mock"), Some("chat"))
        );
        assert_eq!(a.comparison, Comparison::AtMost);
        assert_eq!(a.threshold, 1500.0);
        assert!(
            matches!(a.metric, SloMetric::Quantile { quantile, .. } if (quantile - 0.999).abs() < 1e-12)
        );
        assert_eq!(parse("error_rate < 1%").unwrap().threshold, 0.01);
        assert_eq!(parse("throttle_rate < 0.05").unwrap().threshold, 0.05);
        let a = parse("output_tokens_per_s > 500").unwrap();
        assert_eq!((a.comparison, a.threshold), (Comparison::Above, 500.0));
        for (bad, says) in [
            ("ttft.p50 50ms", "no comparison"),
            (
                "ttfx.p50 < 50ms",
                "unknown latency \"ttfx\" (did you mean ttft or ttfb?)",
            ),
            (
                "ttftt.p50 < 50ms",
                "unknown latency \"ttftt\" (did you mean ttft?)",
            ),
            (
                "eror_rate < 1%",
                "unknown metric \"eror_rate\" (did you mean error_rate?)",
            ),
            ("ttft.p100 < 50ms", "percentile"),
            ("ttft.p50 < fast", "not a duration"),
            ("error_rate < 150%", "not a rate"),
            ("latency < 3", "unknown metric"),
        ] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    fn group_with_ttft(values_ms: &[f64], failed: u64) -> GroupResults {
        let mut histogram = new_histogram();
        for v in values_ms {
            histogram.record((v * 1000.0) as u64).unwrap();
        }
        let mut group = GroupResults::default();
        group.requests.succeeded = values_ms.len() as u64;
        group.requests.failed = failed;
        group
            .histograms
            .insert("ttft".into(), encode_histogram(&histogram));
        group
    }

    fn one(text: &str, group: &GroupResults) -> AssertionResult {
        evaluate_one(&parse(text).unwrap(), group, 0.95)
    }

    #[test]
    fn quantile_verdicts_pass_fail_and_inconclusive() {
        // 400 values spread evenly over 40–50 ms.
        let values: Vec<f64> = (0..400).map(|i| 40.0 + i as f64 / 40.0).collect();
        let group = group_with_ttft(&values, 0);
        let pass = one("ttft.p50 < 50ms", &group);
        assert_eq!(pass.verdict, Verdict::Pass, "{pass:?}");
        let (lower, upper) = pass.interval.unwrap();
        assert!(lower.unwrap() < 45.0 && upper.unwrap() > 45.0 && upper.unwrap() < 46.0);
        let fail = one("ttft.p99 < 45ms", &group);
        assert_eq!(fail.verdict, Verdict::Fail, "{fail:?}");
        // 20 samples cannot bound a p99 from above.
        let few = group_with_ttft(
            &values[..400]
                .iter()
                .step_by(20)
                .copied()
                .collect::<Vec<_>>(),
            0,
        );
        let inconclusive = one("ttft.p99 < 60ms", &few);
        assert_eq!(
            inconclusive.verdict,
            Verdict::Inconclusive,
            "{inconclusive:?}"
        );
        assert_eq!(inconclusive.interval.unwrap().1, None);
        assert_eq!(inconclusive.samples_needed, Some(368));
    }

    #[test]
    fn a_borderline_median_projects_the_samples_that_would_decide_it() {
        // 20 samples, the 10th at 20.98 ms: `ttft.p50 < 21ms` cannot be decided on 20, but
        // would be on enough samples if 20.98 held (the bound narrows as 1/sqrt(n)).
        let values: Vec<f64> = (0..20)
            .map(|i| {
                if i < 10 {
                    16.0 + 4.98 * i as f64 / 9.0
                } else {
                    21.5 + 0.5 * (i - 10) as f64
                }
            })
            .collect();
        let group = group_with_ttft(&values, 0);
        let result = one("ttft.p50 < 21ms", &group);
        assert_eq!(result.verdict, Verdict::Inconclusive, "{result:?}");
        let measured = result.measured.unwrap();
        assert!((measured - 20.98).abs() < 0.02, "{measured}");
        let (_, upper) = result.interval.unwrap();
        let upper = upper.unwrap();
        let needed = result.samples_needed.expect("a sample size that decides");
        // The projection: n · ((upper − measured) / (21 − measured))², to within the bisection.
        let expected = 20.0 * ((upper - measured) / (21.0 - measured)).powi(2);
        assert!(
            (needed as f64 - expected).abs() <= expected * 0.01 + 1.0,
            "{needed} against {expected}"
        );
        // On the other side of the threshold it projects a failure just as well.
        let failing = one("ttft.p50 < 20.9ms", &group);
        assert_eq!(failing.verdict, Verdict::Inconclusive);
        assert!(failing.samples_needed.is_some(), "{failing:?}");
    }

    #[test]
    fn the_samples_an_assertion_needs_to_pass_follow_its_interval() {
        let needs = |text: &str| parse(text).unwrap().samples_to_pass(0.95);
        // No error among n: the Wilson upper bound falls below 1% from 381 requests on.
        assert_eq!(needs("error_rate < 1%"), Some(381));
        let (_, upper) = wilson_interval(0, 380, 0.95);
        assert!(upper >= 0.01, "{upper}");
        // The top sample bounds a p99 from 368 samples on, a median from 6.
        assert_eq!(needs("ttft.p99 < 50ms"), Some(368));
        assert_eq!(needs("ttft.p50 < 50ms"), Some(6));
        assert_eq!(needs("good_fraction > 90%"), Some(35));
        assert_eq!(needs("output_tokens_per_s > 100"), Some(1));
        assert_eq!(needs("error_rate < 0%"), None);
    }

    #[test]
    fn a_per_gap_quantile_rests_on_the_requests_it_came_from() {
        // 1,000 gaps of 10 ms to 20 ms, from only 10 streams of 100 alike gaps each.
        let mut histogram = new_histogram();
        for stream in 0..10u64 {
            histogram.record_n(10_000 + stream * 1_000, 100).unwrap();
        }
        let mut group = GroupResults::default();
        group.requests.succeeded = 10;
        group
            .histograms
            .insert("itl".into(), encode_histogram(&histogram));
        let mut stat = crate::metrics::stat_ms(&histogram);
        stat.requests = Some(10);
        group.latency_ms.insert("itl".into(), stat.clone());
        let result = one("itl.p50 < 16ms", &group);
        assert_eq!(result.samples, 10);
        assert_eq!(result.verdict, Verdict::Inconclusive, "{result:?}");
        // Read as 1,000 independent gaps, the same numbers would pass.
        stat.requests = None;
        group.latency_ms.insert("itl".into(), stat);
        let as_gaps = one("itl.p50 < 16ms", &group);
        assert_eq!(as_gaps.samples, 1000);
        assert_eq!(as_gaps.verdict, Verdict::Pass, "{as_gaps:?}");
    }

    #[test]
    fn rates_use_wilson_intervals_and_no_success_never_passes() {
        let group = group_with_ttft(&vec![40.0; 990], 10);
        let pass = one("error_rate < 5%", &group);
        assert_eq!(pass.verdict, Verdict::Pass);
        assert_eq!(pass.samples, 1000);
        let inconclusive = one("error_rate < 1.2%", &group);
        assert_eq!(
            inconclusive.verdict,
            Verdict::Inconclusive,
            "{inconclusive:?}"
        );
        assert!(inconclusive.samples_needed.unwrap() > 1000);
        assert_eq!(one("error_rate < 0.5%", &group).verdict, Verdict::Fail);
        let nothing = group_with_ttft(&[], 5);
        let verdict = one("error_rate < 100%", &nothing);
        assert_eq!(verdict.verdict, Verdict::Fail);
        assert!(verdict.note.contains("no successful request"));
    }
}
