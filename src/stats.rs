//! The statistics behind verdicts: distribution-free confidence intervals for quantiles (order
//! statistics), Wilson score intervals for rates, and the normal quantile function they need.

/// The standard normal quantile Φ⁻¹(p), 0 < p < 1, by Acklam's rational approximation (relative
/// error below 1.2e-9, ample for confidence levels).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let low = 0.024_25;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

/// Above this many samples the binomial is replaced by its normal approximation.
const EXACT_BINOMIAL_LIMIT: u64 = 200_000;

/// The 1-based ranks `(lower, upper)` of the order statistics that bound the `q` quantile with
/// (at least) `confidence`, two-sided, from `n` samples: `P(x_(lower) ≤ Q_q ≤ x_(upper)) ≥
/// confidence` whatever the distribution. A side is `None` when `n` is too small for it (e.g. no
/// sample is far enough above a p99 in 20 samples).
pub fn quantile_ranks(n: u64, q: f64, confidence: f64) -> (Option<u64>, Option<u64>) {
    if n == 0 {
        return (None, None);
    }
    let tail = (1.0 - confidence) / 2.0;
    // K ~ Binomial(n, q) counts samples below the true quantile. x_(l) ≤ Q when K ≥ l, and
    // x_(u) ≥ Q when K < u: take the largest l with P(K < l) ≤ tail and the smallest u with
    // P(K < u) ≥ 1 − tail.
    let cdf_below = binomial_cdf_table(n, q);
    let below = |rank: u64| -> f64 {
        // P(K < rank) = P(K ≤ rank − 1).
        if rank == 0 {
            0.0
        } else {
            cdf_below(rank - 1)
        }
    };
    let mut lower = None;
    let mut upper = None;
    // Both searches are monotone in the rank: binary search over 1..=n.
    let (mut lo, mut hi) = (1u64, n);
    if below(1) <= tail {
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if below(mid) <= tail {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lower = Some(lo);
    }
    let (mut lo, mut hi) = (1u64, n);
    if below(n) >= 1.0 - tail {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if below(mid) >= 1.0 - tail {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        upper = Some(lo);
    }
    (lower, upper)
}

/// `k ↦ P(K ≤ k)` for `K ~ Binomial(n, q)`: exact (a table of cumulative sums in log space) for
/// up to 200,000 samples, the normal approximation with continuity correction above.
fn binomial_cdf_table(n: u64, q: f64) -> Box<dyn Fn(u64) -> f64> {
    let q = q.clamp(0.0, 1.0);
    if q <= 0.0 {
        return Box::new(|_| 1.0);
    }
    if q >= 1.0 {
        return Box::new(move |k| if k >= n { 1.0 } else { 0.0 });
    }
    if n > EXACT_BINOMIAL_LIMIT {
        let mean = n as f64 * q;
        let sd = (n as f64 * q * (1.0 - q)).sqrt();
        return Box::new(move |k| standard_normal_cdf((k as f64 + 0.5 - mean) / sd));
    }
    let ratio = (q / (1.0 - q)).ln();
    let mut log_pmf = n as f64 * (1.0 - q).ln();
    let mut cumulative = Vec::with_capacity(n as usize + 1);
    let mut total = 0.0f64;
    for k in 0..=n {
        total += log_pmf.exp();
        cumulative.push(total.min(1.0));
        if k < n {
            log_pmf += ((n - k) as f64).ln() - ((k + 1) as f64).ln() + ratio;
        }
    }
    Box::new(move |k| cumulative[(k.min(n)) as usize])
}

/// Φ(x), from the complementary error function.
pub fn standard_normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' `erfcc`, fractional error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// The value in milliseconds of the `rank`-th smallest sample (1-based) of a histogram of
/// microseconds (its bucket's highest equivalent value).
pub fn value_at_rank(histogram: &hdrhistogram::Histogram<u64>, rank: u64) -> f64 {
    let mut seen = 0u64;
    for bucket in histogram.iter_recorded() {
        seen += bucket.count_since_last_iteration();
        if seen >= rank {
            return histogram.highest_equivalent(bucket.value_iterated_to()) as f64 / 1000.0;
        }
    }
    histogram.max() as f64 / 1000.0
}

/// The value in milliseconds at `fraction` (0 to 1) of a histogram's samples, linearly
/// interpolated between the neighbouring order statistics: position `fraction × n` reads the
/// sample of that rank when it is whole, and a mix of the two around it otherwise.
pub fn value_at_fraction(histogram: &hdrhistogram::Histogram<u64>, fraction: f64) -> f64 {
    let n = histogram.len();
    if n == 0 {
        return 0.0;
    }
    let position = (fraction.clamp(0.0, 1.0) * n as f64).max(1.0);
    // A whole rank that floating point put a hair below itself is that rank.
    let nearest = position.round();
    let position = if (position - nearest).abs() < 1e-9 {
        nearest
    } else {
        position
    };
    let rank = (position.floor() as u64).clamp(1, n);
    let below = value_at_rank(histogram, rank);
    let part = position - rank as f64;
    if rank >= n || part <= 0.0 {
        return below;
    }
    below + part * (value_at_rank(histogram, rank + 1) - below)
}

/// The distribution-free interval (ms) of the `quantile` of what `histogram` sampled, resting on
/// `samples` independent samples. `samples` is the histogram's count for a per-request metric;
/// for a per-gap metric it is the number of requests, because the gaps of one stream move
/// together: the order-statistic ranks of `samples` are then read at the same fractions of the
/// histogram, which is exact when every gap of a stream is alike (the worst case) and wider
/// than needed otherwise. A `samples` above the count projects a larger sample from the
/// observed distribution.
pub fn quantile_interval(
    histogram: &hdrhistogram::Histogram<u64>,
    samples: u64,
    quantile: f64,
    confidence: f64,
) -> (Option<f64>, Option<f64>) {
    if samples == 0 || histogram.is_empty() {
        return (None, None);
    }
    let (lower, upper) = quantile_ranks(samples, quantile, confidence);
    let at = |rank: u64| value_at_fraction(histogram, rank as f64 / samples as f64);
    (lower.map(at), upper.map(at))
}

/// The fewest samples on which the `quantile` has a two-sided distribution-free interval at
/// `confidence` (both order statistics exist): 6 for a median, 35 for a p90, 368 for a p99 at 95%.
pub fn quantile_minimum(quantile: f64, confidence: f64) -> u64 {
    let bounded = |n: u64| {
        let (lower, upper) = quantile_ranks(n, quantile, confidence);
        lower.is_some() && upper.is_some()
    };
    if bounded(1) {
        return 1;
    }
    smallest_deciding(1, bounded).unwrap_or(SAMPLE_SEARCH_LIMIT)
}

/// The largest sample size [`smallest_deciding`] looks at.
pub const SAMPLE_SEARCH_LIMIT: u64 = 100_000_000;

/// The smallest sample size above `n` (up to [`SAMPLE_SEARCH_LIMIT`]) at which `decides`
/// holds, assuming it stays true once it is (doubling, then bisection).
pub fn smallest_deciding(n: u64, decides: impl Fn(u64) -> bool) -> Option<u64> {
    let mut low = n.max(1);
    let mut high = low.saturating_mul(2).max(2);
    while !decides(high) {
        if high >= SAMPLE_SEARCH_LIMIT {
            return None;
        }
        low = high;
        high = high.saturating_mul(2).min(SAMPLE_SEARCH_LIMIT);
    }
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if decides(mid) {
            high = mid;
        } else {
            low = mid;
        }
    }
    Some(high)
}

/// The fewest requests on which a clean sample (no request counted) shows a rate below `max`
/// at `confidence`: the Wilson upper bound of 0 of n is z²/(n + z²), so n ≥ z²(1/max − 1). 381
/// for 1%, 73 for 5% at 95%. `None` when `max` is 0 (no sample shows a rate of exactly 0).
pub fn rate_minimum(max: f64, confidence: f64) -> Option<u64> {
    if max.is_nan() || max <= 0.0 {
        return None;
    }
    if max >= 1.0 {
        return Some(1);
    }
    let z = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
    let mut n = (z * z * (1.0 / max - 1.0)).floor().max(1.0) as u64;
    // The closed form, checked against the interval itself (floating point at the edge).
    while wilson_interval(0, n, confidence).1 > max {
        n += 1;
    }
    while n > 1 && wilson_interval(0, n - 1, confidence).1 <= max {
        n -= 1;
    }
    Some(n)
}

/// The Wilson score interval of a proportion `successes / n` at `confidence`, two-sided.
pub fn wilson_interval(successes: u64, n: u64, confidence: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The pooled two-proportion z-test of `k1 / n1` against `k2 / n2`: `(z, two-sided p)`, with
/// `z > 0` when the second proportion is higher. `None` when a side is empty or neither side
/// varies (both 0% or both 100%).
pub fn two_proportion_test(k1: u64, n1: u64, k2: u64, n2: u64) -> Option<(f64, f64)> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (p1, p2) = (k1 as f64 / n1 as f64, k2 as f64 / n2 as f64);
    let pooled = (k1 + k2) as f64 / (n1 + n2) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        return None;
    }
    let z = (p2 - p1) / se;
    Some((z, 2.0 * (1.0 - standard_normal_cdf(z.abs()))))
}

/// The Wilcoxon signed-rank test that paired differences are centred on zero: `(z, two-sided
/// p)` by the normal approximation, with zero differences dropped (Wilcoxon's convention),
/// average ranks for ties, the tie correction of the variance and a continuity correction.
/// `z > 0` when positive differences dominate. `None` with fewer than 10 non-zero differences,
/// where the normal approximation is too rough.
pub fn wilcoxon_signed_rank(differences: &[f64]) -> Option<(f64, f64)> {
    let mut nonzero: Vec<f64> = differences
        .iter()
        .copied()
        .filter(|d| *d != 0.0 && d.is_finite())
        .collect();
    let n = nonzero.len();
    if n < 10 {
        return None;
    }
    nonzero.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    let mut positive_rank_sum = 0.0;
    let mut tie_correction = 0.0;
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && nonzero[end].abs() == nonzero[start].abs() {
            end += 1;
        }
        // Ranks start+1 ..= end share their average.
        let rank = (start + 1 + end) as f64 / 2.0;
        let tied = (end - start) as f64;
        tie_correction += tied * tied * tied - tied;
        positive_rank_sum += rank * nonzero[start..end].iter().filter(|d| **d > 0.0).count() as f64;
        start = end;
    }
    let n = n as f64;
    let mean = n * (n + 1.0) / 4.0;
    let variance = n * (n + 1.0) * (2.0 * n + 1.0) / 24.0 - tie_correction / 48.0;
    if variance <= 0.0 {
        return None;
    }
    let offset = positive_rank_sum - mean;
    let corrected = (offset.abs() - 0.5).max(0.0) * offset.signum();
    let z = corrected / variance.sqrt();
    Some((z, 2.0 * (1.0 - standard_normal_cdf(z.abs()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_proportions_match_a_worked_example() {
        // 30/1000 against 10/1000: pooled 0.02, se 0.00626, z = 3.194, p = 0.0014.
        let (z, p) = two_proportion_test(10, 1000, 30, 1000).unwrap();
        assert!((z - 3.194).abs() < 1e-3, "{z}");
        assert!((p - 0.0014).abs() < 1e-4, "{p}");
        assert_eq!(two_proportion_test(0, 100, 0, 100), None);
        assert_eq!(two_proportion_test(1, 0, 0, 100), None);
    }

    #[test]
    fn wilcoxon_matches_a_textbook_example() {
        // Differences 1..=10 with signs - + + - + + + + + +: negative ranks 1 and 4, so
        // W+ = 55 - 5 = 50; mean 27.5, variance 96.25, z = (50 - 27.5 - 0.5) / 9.811 = 2.242.
        let d = [-1.0, 2.0, 3.0, -4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        let (z, p) = wilcoxon_signed_rank(&d).unwrap();
        assert!((z - 2.242).abs() < 1e-3, "{z}");
        assert!((p - 0.025).abs() < 1e-3, "{p}");
        // Symmetric differences: no evidence either way.
        let symmetric: Vec<f64> = (1..=20)
            .map(|i| if i % 2 == 0 { i as f64 } else { -(i as f64) })
            .collect();
        let (_, p) = wilcoxon_signed_rank(&symmetric).unwrap();
        assert!(p > 0.5, "{p}");
        // Zeros are dropped; too few left gives no answer.
        assert_eq!(wilcoxon_signed_rank(&[0.0; 30]), None);
    }

    #[test]
    fn normal_quantiles_match_the_tables() {
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        assert!((normal_quantile(0.995) - 2.575_829).abs() < 1e-5);
        assert!((normal_quantile(0.5)).abs() < 1e-9);
        assert!((normal_quantile(0.01) + 2.326_348).abs() < 1e-5);
        assert!((standard_normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
    }

    #[test]
    fn median_ranks_of_small_samples_match_the_binomial_tables() {
        // n = 20, 95%: the median lies between the 6th and 15th order statistics (coverage
        // 95.86%, the usual table value).
        assert_eq!(quantile_ranks(20, 0.5, 0.95), (Some(6), Some(15)));
        // n = 10: the 2nd and 9th (97.9%).
        assert_eq!(quantile_ranks(10, 0.5, 0.95), (Some(2), Some(9)));
    }

    #[test]
    fn a_high_quantile_of_few_samples_has_no_upper_bound() {
        // 20 samples cannot bound a p99 from above: all 20 are below it with probability 0.82.
        let (lower, upper) = quantile_ranks(20, 0.99, 0.95);
        assert_eq!(upper, None);
        // P(K ≤ 18) = 0.017 ≤ 2.5% < P(K ≤ 19) for K ~ Binomial(20, 0.99).
        assert_eq!(lower, Some(19), "{lower:?}");
        // The top sample bounds a p99 (two-sided 95%) once P(all below) = 0.99^n ≤ 2.5%:
        // n ≥ ln 0.025 / ln 0.99 = 367.04.
        let needed = (1..2_000)
            .find(|&n| quantile_ranks(n, 0.99, 0.95).1.is_some())
            .unwrap();
        assert_eq!(needed, 368);
    }

    #[test]
    fn large_samples_use_the_normal_approximation_consistently() {
        let n = 1_000_000;
        let (lower, upper) = quantile_ranks(n, 0.99, 0.95);
        let (lower, upper) = (lower.unwrap() as f64, upper.unwrap() as f64);
        let sd = (n as f64 * 0.99 * 0.01).sqrt();
        assert!((lower - (990_000.0 - 1.96 * sd)).abs() < 3.0, "{lower}");
        assert!((upper - (990_000.0 + 1.96 * sd)).abs() < 3.0, "{upper}");
    }

    #[test]
    fn minimum_samples_match_the_closed_forms() {
        assert_eq!(quantile_minimum(0.5, 0.95), 6);
        // A p90 is bounded from above once 0.9^n ≤ 2.5%: n ≥ 35.01.
        assert_eq!(quantile_minimum(0.9, 0.95), 36);
        assert_eq!(quantile_minimum(0.99, 0.95), 368);
        assert_eq!(rate_minimum(0.01, 0.95), Some(381));
        assert_eq!(rate_minimum(0.05, 0.95), Some(73));
        assert_eq!(rate_minimum(0.0, 0.95), None);
        for max in [0.01, 0.02, 0.05, 0.2] {
            let n = rate_minimum(max, 0.95).unwrap();
            assert!(wilson_interval(0, n, 0.95).1 <= max);
            assert!(wilson_interval(0, n - 1, 0.95).1 > max);
        }
    }

    #[test]
    fn wilson_matches_a_worked_example() {
        // 3 of 100 at 95%: (0.0103, 0.0845).
        let (lo, hi) = wilson_interval(3, 100, 0.95);
        assert!(
            (lo - 0.0103).abs() < 1e-4 && (hi - 0.0845).abs() < 1e-4,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson_interval(0, 50, 0.95);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.0713).abs() < 1e-3, "{hi}");
    }
}
