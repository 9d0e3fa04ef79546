//! SLO assertions (`[slo] assert = ["ttft.p99 < 200ms", …]`), split by when they run: the
//! language and plan at plan time ([`spec`]), goodput per finished request ([`goodput`]), and
//! the verdicts after the run ([`evaluate`], into [`crate::results::slo`]): `pass`, `fail`, or
//! `inconclusive` when the sample cannot decide at the chosen confidence.

pub mod evaluate;
pub mod goodput;
pub mod spec;

pub use crate::results::slo::{AssertionResult, SloResults, Verdict};
pub use evaluate::evaluate;
pub use goodput::{GoodCriterion, GoodputJudge, PerRequest};
pub(crate) use spec::{did_you_mean, parse_latency_quantile};
pub use spec::{parse, Assertion, Comparison, SloMetric, SloPlan};

#[cfg(test)]
mod tests {
    use super::evaluate::*;
    use super::spec::*;
    use super::*;
    use crate::hist::{encode_histogram, new_histogram};
    use crate::results::GroupResults;
    use crate::stats::wilson_interval;

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
        let mut stat = crate::hist::stat_ms(&histogram);
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
