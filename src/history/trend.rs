//! Trends over a history's runs, figure by figure: the Mann–Kendall test says whether a series
//! moves one way more than chance would (distribution-free, so latency's skew does not matter),
//! and the Theil–Sen slope (the median of the slopes between every two runs) says by how much.
//!
//! The rule (README, "History"): a figure **drifted** when, over at least [`MIN_RUNS`] runs, the
//! test's two-sided p-value is below 0.05 *and* the slope carried over the window moved it the
//! worse way by at least the threshold (default 10%) of its median. When no single step between
//! two consecutive runs moved it that far, the drift is *slow*: a comparison of any run with
//! the one before would have passed it. Fewer than [`MIN_RUNS`] runs are `insufficient`, never
//! steady.

use super::figures::{Figure, FIGURES};
use super::store::StoredRun;
use crate::stats::standard_normal_cdf;

/// The fewest runs a trend is judged on (with 5 runs a strictly monotone series has p ≈ 0.03).
pub const MIN_RUNS: usize = 5;

/// The significance level of the trend test.
pub const SIGNIFICANCE: f64 = 0.05;

/// What a figure's series did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrendVerdict {
    /// Moved the worse way beyond the threshold, and the test says it is no accident.
    Drift,
    /// Moved the better way beyond the threshold, significantly.
    Improving,
    /// No significant move beyond the threshold.
    Steady,
    /// Too few runs to tell.
    Insufficient,
}

impl TrendVerdict {
    pub fn name(self) -> &'static str {
        match self {
            TrendVerdict::Drift => "drift",
            TrendVerdict::Improving => "improving",
            TrendVerdict::Steady => "steady",
            TrendVerdict::Insufficient => "insufficient",
        }
    }
}

/// One figure of one target over the runs.
#[derive(Debug, Clone)]
pub struct Trend {
    pub target: String,
    pub figure: &'static Figure,
    /// (run index in the window, value) for the runs that have the figure.
    pub values: Vec<(usize, f64)>,
    /// Theil–Sen slope per run.
    pub slope: f64,
    /// The slope carried over the window, relative to the median: the size of the move.
    pub change: f64,
    /// Mann–Kendall two-sided p-value (`None` below [`MIN_RUNS`]).
    pub p_value: Option<f64>,
    /// The largest move between two consecutive runs, relative to the earlier.
    pub largest_step: f64,
    pub verdict: TrendVerdict,
}

impl Trend {
    /// Whether no single step moved as far as `threshold`: a drift no two-run comparison shows.
    pub fn is_slow(&self, threshold: f64) -> bool {
        self.largest_step < threshold
    }
}

/// The Mann–Kendall two-sided p-value of a series (ties corrected), or `None` for fewer than
/// two values.
pub fn mann_kendall(values: &[f64]) -> Option<f64> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let mut s = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            s += match values[j].partial_cmp(&values[i]) {
                Some(std::cmp::Ordering::Greater) => 1,
                Some(std::cmp::Ordering::Less) => -1,
                _ => 0,
            };
        }
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && sorted[j + 1] == sorted[i] {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        ties += t * (t - 1.0) * (2.0 * t + 5.0);
        i = j + 1;
    }
    let n = n as f64;
    let variance = (n * (n - 1.0) * (2.0 * n + 5.0) - ties) / 18.0;
    if variance <= 0.0 {
        return Some(1.0);
    }
    // Continuity correction: S moves in steps of 2.
    let z = match s.signum() {
        1 => (s - 1) as f64 / variance.sqrt(),
        -1 => (s + 1) as f64 / variance.sqrt(),
        _ => 0.0,
    };
    Some((2.0 * (1.0 - standard_normal_cdf(z.abs()))).clamp(0.0, 1.0))
}

/// The Theil–Sen slope of `(x, y)` points: the median of the slopes between every two points
/// with different x (0 for fewer than two).
pub fn theil_sen(points: &[(usize, f64)]) -> f64 {
    let mut slopes = Vec::new();
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if b.0 != a.0 {
                slopes.push((b.1 - a.1) / (b.0 as f64 - a.0 as f64));
            }
        }
    }
    median(&mut slopes).unwrap_or(0.0)
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// Judges one series against `threshold` (a relative move, 0.10 for 10%).
pub fn judge(
    target: &str,
    figure: &'static Figure,
    values: Vec<(usize, f64)>,
    threshold: f64,
) -> Trend {
    let series: Vec<f64> = values.iter().map(|p| p.1).collect();
    let slope = theil_sen(&values);
    let middle = median(&mut series.clone()).unwrap_or(0.0);
    let span = values.last().map_or(0, |p| p.0) - values.first().map_or(0, |p| p.0);
    let change = if middle.abs() > f64::EPSILON {
        slope * span as f64 / middle.abs()
    } else {
        0.0
    };
    let largest_step = series
        .windows(2)
        .map(|w| {
            if w[0].abs() > f64::EPSILON {
                ((w[1] - w[0]) / w[0]).abs()
            } else if w[1] != w[0] {
                f64::INFINITY
            } else {
                0.0
            }
        })
        .fold(0.0, f64::max);
    let (p_value, verdict) = if values.len() < MIN_RUNS {
        (None, TrendVerdict::Insufficient)
    } else {
        let p = mann_kendall(&series).unwrap_or(1.0);
        let worse = (change > 0.0) == figure.lower_is_better;
        let verdict = if p >= SIGNIFICANCE || change.abs() < threshold {
            TrendVerdict::Steady
        } else if worse {
            TrendVerdict::Drift
        } else {
            TrendVerdict::Improving
        };
        (Some(p), verdict)
    };
    Trend {
        target: target.to_string(),
        figure,
        values,
        slope,
        change,
        p_value,
        largest_step,
        verdict,
    }
}

/// Every figure of every target present in `runs` (oldest first), judged.
pub fn trends(runs: &[StoredRun], threshold: f64) -> Vec<Trend> {
    let mut targets: Vec<&str> = Vec::new();
    for run in runs {
        for target in run.figures.keys() {
            if !targets.contains(&target.as_str()) {
                targets.push(target);
            }
        }
    }
    let mut out = Vec::new();
    for target in targets {
        for figure in &FIGURES {
            let values: Vec<(usize, f64)> = runs
                .iter()
                .enumerate()
                .filter_map(|(i, run)| {
                    run.figures
                        .get(target)
                        .and_then(|f| f.get(figure.key))
                        .map(|v| (i, *v))
                })
                .collect();
            if !values.is_empty() {
                out.push(judge(target, figure, values, threshold));
            }
        }
    }
    out
}

/// The sentence a drift (or an improvement) is reported with.
pub fn describe(trend: &Trend, threshold: f64) -> String {
    let first = trend.values.first().map_or(0.0, |p| p.1);
    let last = trend.values.last().map_or(0.0, |p| p.1);
    let shown = |v: f64| {
        let text = super::figures::shown(trend.figure, v);
        match trend.figure.unit {
            "ms" | "req/s" | "tok/s" => format!("{text} {}", trend.figure.unit),
            _ => text,
        }
    };
    let slow = if trend.is_slow(threshold) {
        format!(
            "; no step between two runs moved it {:.0}% or more (the largest: {:.1}%), so no comparison with the run before would flag it",
            threshold * 100.0,
            trend.largest_step * 100.0
        )
    } else {
        format!(
            "; its largest step between two runs was {:.1}%",
            trend.largest_step * 100.0
        )
    };
    format!(
        "{} of \"{}\": {} {:+.1}% over {} runs ({} → {}; Theil–Sen {:+.2}%/run of its median, Mann–Kendall p = {:.3}){slow}",
        trend.figure.key,
        trend.target,
        trend.verdict.name(),
        trend.change * 100.0,
        trend.values.len(),
        shown(first),
        shown(last),
        trend.change * 100.0 / (trend.values.len().max(2) - 1) as f64,
        trend.p_value.unwrap_or(1.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttft() -> &'static Figure {
        super::super::figures::figure("ttft.p50").unwrap()
    }

    #[test]
    fn mann_kendall_matches_its_textbook_values() {
        // n = 5 strictly increasing: S = 10, Var = 5·4·15/18 = 16.67, z = 9/4.08 = 2.205.
        let p = mann_kendall(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert!((p - 0.0275).abs() < 0.001, "{p}");
        // No order at all.
        let flat = mann_kendall(&[3.0, 3.0, 3.0, 3.0, 3.0]).unwrap();
        assert_eq!(flat, 1.0);
        let zigzag = mann_kendall(&[1.0, 3.0, 1.0, 3.0, 1.0, 3.0]).unwrap();
        assert!(zigzag > 0.5, "{zigzag}");
    }

    #[test]
    fn theil_sen_ignores_one_outlier() {
        let points: Vec<(usize, f64)> =
            vec![(0, 10.0), (1, 11.0), (2, 12.0), (3, 100.0), (4, 14.0)];
        assert!((theil_sen(&points) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_slow_drift_is_flagged_and_noise_is_not() {
        // +4% a run for 6 runs: every step below 10%, 20% in all.
        let creeping: Vec<(usize, f64)> = (0..6)
            .map(|i| (i, 100.0 * 1.04f64.powi(i as i32)))
            .collect();
        let trend = judge("mock", ttft(), creeping, 0.10);
        assert_eq!(trend.verdict, TrendVerdict::Drift);
        assert!(trend.is_slow(0.10));
        assert!(describe(&trend, 0.10).contains("no comparison with the run before would flag it"));
        // The same values in a shuffled order: no trend.
        let shuffled: Vec<(usize, f64)> = [3, 0, 5, 1, 4, 2]
            .iter()
            .enumerate()
            .map(|(i, k)| (i, 100.0 * 1.04f64.powi(*k)))
            .collect();
        assert_eq!(
            judge("mock", ttft(), shuffled, 0.10).verdict,
            TrendVerdict::Steady
        );
        // Falling latency is an improvement; four runs are too few to say.
        let falling: Vec<(usize, f64)> = (0..6).map(|i| (i, 100.0 - 5.0 * i as f64)).collect();
        assert_eq!(
            judge("mock", ttft(), falling, 0.10).verdict,
            TrendVerdict::Improving
        );
        let few: Vec<(usize, f64)> = (0..4usize)
            .map(|i| (i, 100.0 * 1.2f64.powi(i as i32)))
            .collect();
        assert_eq!(
            judge("mock", ttft(), few, 0.10).verdict,
            TrendVerdict::Insufficient
        );
        // A significant but small move (1% in all) is steady.
        let tiny: Vec<(usize, f64)> = (0..8).map(|i| (i, 100.0 + 0.15 * i as f64)).collect();
        assert_eq!(
            judge("mock", ttft(), tiny, 0.10).verdict,
            TrendVerdict::Steady
        );
    }
}
