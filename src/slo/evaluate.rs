//! SLO evaluation after a run: each assertion against a group's histograms and counts, with a
//! distribution-free confidence interval, and the verdict `pass`, `fail` or `inconclusive`
//! (with the samples that would decide).

use hdrhistogram::Histogram;

use crate::hist::decode_histogram;
use crate::results::slo::{AssertionResult, SloResults, Verdict};
use crate::results::{GroupResults, RunResults};
use crate::stats::{
    quantile_interval, smallest_deciding, value_at_fraction, value_at_rank, wilson_interval,
};

use super::spec::{Assertion, Comparison, SloMetric, SloPlan};

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

pub(super) fn evaluate_one(
    assertion: &Assertion,
    group: &GroupResults,
    confidence: f64,
) -> AssertionResult {
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
