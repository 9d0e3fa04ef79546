//! Shadow pairs: the same request sent to a primary and a candidate target, compared request by
//! request. Per class and overall it reports the paired latency differences (candidate −
//! primary: median with a distribution-free 95% interval, Wilcoxon signed-rank test, share of
//! requests where the candidate was faster), error and throttle rates per side with a
//! two-proportion test, output agreement and cost per side.
//!
//! Output agreement, per pair where both sides answered:
//! - exact match: byte-identical output text;
//! - similarity: token F1 (as SQuAD scores answers): both texts lowercased and split into words
//!   of letters and digits; `2 · overlap / (words_a + words_b)`, where overlap counts common words
//!   with multiplicity. 1 for identical word bags (and for two empty answers), 0 when one side is
//!   empty or no word is shared. Word order is ignored, so it measures content, not fluency.
//! - length ratio: candidate output tokens / primary output tokens (median over pairs);
//! - finish-reason agreement: both stopped for the same reason, after mapping Anthropic's names to
//!   OpenAI's (`end_turn`/`stop_sequence` → `stop`, `max_tokens` → `length`, `tool_use` →
//!   `tool_calls`);
//! - model match, per side: the response's `model` is the one asked for, or a dated snapshot of
//!   it (`gpt-4o` answered by `gpt-4o-2024-08-06`).

use std::collections::HashMap;

use crate::results::paired::{
    AgreementStats, DifferenceHistogram, PairedComparison, PairedDifference, PairedGroup, SideStats,
};
use crate::stats::{quantile_ranks, two_proportion_test, wilcoxon_signed_rank};

/// How one side of a pair ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideOutcome {
    Succeeded,
    /// HTTP 429.
    Throttled,
    /// Any other failure.
    Failed,
}

/// One side of a pair, as measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SideSample {
    pub outcome: SideOutcome,
    /// Time to first token, in milliseconds (streams that produced a token).
    pub ttft_ms: Option<f64>,
    /// End-to-end latency, in milliseconds (successful requests).
    pub e2e_ms: Option<f64>,
    pub output_tokens: u64,
    /// What it cost, when the target is priced.
    pub cost: Option<f64>,
    /// Whether the response named the model asked for (`None`: it named none).
    pub model_matches: Option<bool>,
}

/// Two successful answers compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    pub exact: bool,
    pub similarity: f64,
    /// `None` when a side gave no finish reason.
    pub finish_agrees: Option<bool>,
}

impl Agreement {
    /// Compares two answers' texts and finish reasons.
    pub fn of(
        primary_text: &str,
        candidate_text: &str,
        primary_finish: Option<&str>,
        candidate_finish: Option<&str>,
    ) -> Agreement {
        Agreement {
            exact: primary_text == candidate_text,
            similarity: token_f1(primary_text, candidate_text),
            finish_agrees: match (primary_finish, candidate_finish) {
                (Some(a), Some(b)) => Some(normalised_finish(a) == normalised_finish(b)),
                _ => None,
            },
        }
    }
}

/// One request sent to both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct PairSample {
    pub class: usize,
    pub primary: SideSample,
    pub candidate: SideSample,
    /// Set when both sides succeeded.
    pub agreement: Option<Agreement>,
}

/// The words of a text for [`token_f1`]: lowercased runs of letters and digits.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Token F1 of two texts (see the module documentation).
pub fn token_f1(a: &str, b: &str) -> f64 {
    let mut counts: HashMap<String, i64> = HashMap::new();
    let mut total_a = 0u64;
    for word in words(a) {
        *counts.entry(word).or_default() += 1;
        total_a += 1;
    }
    let mut total_b = 0u64;
    let mut overlap = 0u64;
    for word in words(b) {
        total_b += 1;
        if let Some(count) = counts.get_mut(&word) {
            if *count > 0 {
                *count -= 1;
                overlap += 1;
            }
        }
    }
    if total_a == 0 && total_b == 0 {
        return 1.0;
    }
    2.0 * overlap as f64 / (total_a + total_b) as f64
}

/// A finish reason in OpenAI's vocabulary (Anthropic's stop reasons mapped onto it).
pub fn normalised_finish(reason: &str) -> &str {
    match reason {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        other => other,
    }
}

/// Whether a response's `model` names what was asked for (or a dated snapshot of it).
pub fn model_matches(asked: &str, answered: &str) -> bool {
    answered == asked
        || answered.strip_prefix(asked).is_some_and(|rest| {
            rest.starts_with('-') && rest[1..].starts_with(|c: char| c.is_ascii_digit())
        })
}

/// Sorted-sample quantile by nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

const HISTOGRAM_BINS: usize = 40;

fn difference(mut values: Vec<f64>) -> Option<PairedDifference> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let (low, high) = quantile_ranks(n as u64, 0.5, 0.95);
    let wilcoxon = wilcoxon_signed_rank(&values);
    let (start, end) = (quantile(&values, 0.01), quantile(&values, 0.99));
    let width = ((end - start) / HISTOGRAM_BINS as f64).max(1e-3);
    let mut histogram = DifferenceHistogram {
        start,
        width,
        counts: vec![0; HISTOGRAM_BINS],
        below: 0,
        above: 0,
    };
    for value in &values {
        if *value < start {
            histogram.below += 1;
        } else {
            let bin = ((value - start) / width) as usize;
            match histogram.counts.get_mut(bin) {
                Some(count) => *count += 1,
                None if *value <= end => histogram.counts[HISTOGRAM_BINS - 1] += 1,
                None => histogram.above += 1,
            }
        }
    }
    Some(PairedDifference {
        pairs: n as u64,
        median: quantile(&values, 0.5),
        median_ci_low: low.map(|r| values[r as usize - 1]),
        median_ci_high: high.map(|r| values[r as usize - 1]),
        mean: values.iter().sum::<f64>() / n as f64,
        p10: quantile(&values, 0.1),
        p90: quantile(&values, 0.9),
        candidate_faster: values.iter().filter(|v| **v < 0.0).count() as f64 / n as f64,
        wilcoxon_p: wilcoxon.map(|(_, p)| p),
        histogram,
    })
}

fn side_stats<'a>(sides: impl Iterator<Item = &'a SideSample>) -> SideStats {
    let mut stats = SideStats::default();
    let (mut ttft, mut e2e) = (Vec::new(), Vec::new());
    let (mut named, mut matched) = (0u64, 0u64);
    let mut cost: Option<f64> = None;
    for side in sides {
        stats.requests += 1;
        match side.outcome {
            SideOutcome::Succeeded => stats.succeeded += 1,
            SideOutcome::Throttled => stats.throttled += 1,
            SideOutcome::Failed => stats.errors += 1,
        }
        ttft.extend(side.ttft_ms);
        e2e.extend(side.e2e_ms);
        if let Some(matches) = side.model_matches {
            named += 1;
            matched += u64::from(matches);
        }
        if let Some(c) = side.cost {
            *cost.get_or_insert(0.0) += c;
        }
    }
    if stats.requests > 0 {
        stats.error_rate = stats.errors as f64 / stats.requests as f64;
        stats.throttle_rate = stats.throttled as f64 / stats.requests as f64;
    }
    ttft.sort_by(f64::total_cmp);
    e2e.sort_by(f64::total_cmp);
    let at = |values: &[f64], q| (!values.is_empty()).then(|| quantile(values, q));
    stats.ttft_p50_ms = at(&ttft, 0.5);
    stats.ttft_p90_ms = at(&ttft, 0.9);
    stats.ttft_p99_ms = at(&ttft, 0.99);
    stats.e2e_p50_ms = at(&e2e, 0.5);
    stats.e2e_p90_ms = at(&e2e, 0.9);
    stats.e2e_p99_ms = at(&e2e, 0.99);
    stats.cost = cost;
    stats.model_match_rate = (named > 0).then(|| matched as f64 / named as f64);
    stats
}

fn group(class: &str, pairs: &[&PairSample]) -> PairedGroup {
    let primary = side_stats(pairs.iter().map(|p| &p.primary));
    let candidate = side_stats(pairs.iter().map(|p| &p.candidate));
    let error_rate_p_value = two_proportion_test(
        primary.errors,
        primary.requests,
        candidate.errors,
        candidate.requests,
    )
    .map(|(_, p)| p);
    let throttle_rate_p_value = two_proportion_test(
        primary.throttled,
        primary.requests,
        candidate.throttled,
        candidate.requests,
    )
    .map(|(_, p)| p);
    let both: Vec<&&PairSample> = pairs.iter().filter(|p| p.agreement.is_some()).collect();
    let diffs = |pick: fn(&SideSample) -> Option<f64>| -> Vec<f64> {
        both.iter()
            .filter_map(|p| Some(pick(&p.candidate)? - pick(&p.primary)?))
            .collect()
    };
    let agreement = (!both.is_empty()).then(|| {
        let agreements: Vec<Agreement> = both.iter().filter_map(|p| p.agreement).collect();
        let n = agreements.len() as f64;
        let mut similarity: Vec<f64> = agreements.iter().map(|a| a.similarity).collect();
        similarity.sort_by(f64::total_cmp);
        let mut ratios: Vec<f64> = both
            .iter()
            .filter(|p| p.primary.output_tokens > 0)
            .map(|p| p.candidate.output_tokens as f64 / p.primary.output_tokens as f64)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let finishes: Vec<bool> = agreements.iter().filter_map(|a| a.finish_agrees).collect();
        AgreementStats {
            compared: agreements.len() as u64,
            exact_match_rate: agreements.iter().filter(|a| a.exact).count() as f64 / n,
            similarity_mean: similarity.iter().sum::<f64>() / n,
            similarity_p10: quantile(&similarity, 0.1),
            length_ratio_median: (!ratios.is_empty()).then(|| quantile(&ratios, 0.5)),
            finish_reason_agreement: (!finishes.is_empty())
                .then(|| finishes.iter().filter(|f| **f).count() as f64 / finishes.len() as f64),
        }
    });
    let cost_difference = match (primary.cost, candidate.cost) {
        (Some(p), Some(c)) => Some(c - p),
        _ => None,
    };
    PairedGroup {
        class: class.to_string(),
        pairs: pairs.len() as u64,
        both_succeeded: both.len() as u64,
        ttft_difference_ms: difference(diffs(|s| s.ttft_ms)),
        e2e_difference_ms: difference(diffs(|s| s.e2e_ms)),
        primary,
        candidate,
        error_rate_p_value,
        throttle_rate_p_value,
        agreement,
        cost_difference,
    }
}

/// Summarises a run's pairs: overall, then per class (classes without pairs are left out).
pub fn compare_pairs(
    samples: &[PairSample],
    primary: &str,
    candidate: &str,
    classes: &[String],
) -> PairedComparison {
    let all: Vec<&PairSample> = samples.iter().collect();
    let mut groups = vec![group("(all)", &all)];
    if classes.len() > 1 {
        for (index, name) in classes.iter().enumerate() {
            let of_class: Vec<&PairSample> = samples.iter().filter(|p| p.class == index).collect();
            if !of_class.is_empty() {
                groups.push(group(name, &of_class));
            }
        }
    }
    PairedComparison {
        primary: primary.to_string(),
        candidate: candidate.to_string(),
        groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "The capital of France is Paris. It lies on the Seine.";

    #[test]
    fn identical_answers_agree_exactly() {
        let a = Agreement::of(ANSWER, ANSWER, Some("stop"), Some("end_turn"));
        assert!(a.exact);
        assert_eq!(a.similarity, 1.0);
        assert_eq!(a.finish_agrees, Some(true));
    }

    #[test]
    fn a_reworded_answer_is_similar_but_not_exact() {
        let reworded = "Paris is the capital of France; it lies on the river Seine.";
        let a = Agreement::of(ANSWER, reworded, Some("stop"), Some("stop"));
        assert!(!a.exact);
        // 11 words against 12, sharing 11 (all but "river"): F1 = 22 / 23.
        assert!(
            (a.similarity - 22.0 / 23.0).abs() < 1e-9,
            "{}",
            a.similarity
        );
        // A different answer shares only "the" and "capital": 2·2 / (11 + 8).
        let different = "Berlin has been the German capital since 1990.";
        assert!((token_f1(ANSWER, different) - 4.0 / 19.0).abs() < 1e-9);
    }

    #[test]
    fn an_empty_answer_agrees_with_nothing_but_another_empty_one() {
        assert_eq!(token_f1(ANSWER, ""), 0.0);
        assert_eq!(token_f1("", ANSWER), 0.0);
        assert_eq!(token_f1("", "  "), 1.0);
        assert!(!Agreement::of(ANSWER, "", Some("stop"), Some("stop")).exact);
    }

    #[test]
    fn a_truncated_answer_scores_its_share_and_a_different_finish() {
        // The first 5 of 11 words: F1 = 2·5 / (11 + 5).
        let truncated = "The capital of France is";
        let a = Agreement::of(ANSWER, truncated, Some("stop"), Some("length"));
        assert!(
            (a.similarity - 10.0 / 16.0).abs() < 1e-9,
            "{}",
            a.similarity
        );
        assert_eq!(a.finish_agrees, Some(false));
        // Anthropic's max_tokens is OpenAI's length.
        assert_eq!(
            Agreement::of(ANSWER, truncated, Some("length"), Some("max_tokens")).finish_agrees,
            Some(true)
        );
    }

    #[test]
    fn dated_snapshots_match_their_model() {
        assert!(model_matches("gpt-4o", "gpt-4o"));
        assert!(model_matches("gpt-4o", "gpt-4o-2024-08-06"));
        assert!(!model_matches("gpt-4o", "gpt-4o-mini"));
        assert!(!model_matches("gpt-4o", "gpt-3.5-turbo"));
    }

    fn side(outcome: SideOutcome, ttft: f64) -> SideSample {
        SideSample {
            outcome,
            ttft_ms: (outcome == SideOutcome::Succeeded).then_some(ttft),
            e2e_ms: (outcome == SideOutcome::Succeeded).then_some(ttft + 100.0),
            output_tokens: 10,
            cost: Some(0.001),
            model_matches: Some(true),
        }
    }

    #[test]
    fn paired_differences_and_rates_are_summarised() {
        // 100 pairs: the candidate is 20 ms slower (± a deterministic wobble) and fails 5.
        let samples: Vec<PairSample> = (0..100)
            .map(|i| {
                let primary = side(SideOutcome::Succeeded, 40.0 + (i % 7) as f64);
                let failed = i % 20 == 0;
                let outcome = if failed {
                    SideOutcome::Failed
                } else {
                    SideOutcome::Succeeded
                };
                let candidate = side(outcome, 60.0 + (i % 7) as f64 + (i % 3) as f64 - 1.0);
                PairSample {
                    class: i % 2,
                    primary,
                    candidate,
                    agreement: (!failed).then(|| Agreement::of("a b", "a b", None, None)),
                }
            })
            .collect();
        let compared = compare_pairs(&samples, "p", "c", &["x".into(), "y".into()]);
        assert_eq!(compared.groups.len(), 3);
        let all = compared.overall().unwrap();
        assert_eq!((all.pairs, all.both_succeeded), (100, 95));
        let ttft = all.ttft_difference_ms.as_ref().unwrap();
        assert_eq!(ttft.pairs, 95);
        assert_eq!(ttft.median, 20.0);
        assert!(ttft.median_ci_low.unwrap() >= 19.0 && ttft.median_ci_high.unwrap() <= 21.0);
        assert_eq!(ttft.candidate_faster, 0.0);
        assert!(ttft.wilcoxon_p.unwrap() < 1e-6);
        assert_eq!(
            ttft.histogram.counts.iter().sum::<u64>() + ttft.histogram.below + ttft.histogram.above,
            95
        );
        assert_eq!(all.candidate.error_rate, 0.05);
        assert_eq!((all.candidate.errors, all.candidate.throttled), (5, 0));
        assert_eq!(all.primary.error_rate, 0.0);
        assert!(all.error_rate_p_value.unwrap() < 0.05);
        let agreement = all.agreement.as_ref().unwrap();
        assert_eq!(agreement.exact_match_rate, 1.0);
        assert_eq!(agreement.length_ratio_median, Some(1.0));
        assert!((all.primary.cost.unwrap() - 0.1).abs() < 1e-9);
        assert_eq!(compared.groups[1].pairs + compared.groups[2].pairs, 100);
    }
}
