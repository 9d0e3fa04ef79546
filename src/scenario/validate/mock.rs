//! `[targets.mock]`: latencies, faults and capacity of an embedded mock.

use crate::mock::{Fault, FaultPlan, LatencyModel, MockConfig};
use crate::scenario::locate::KeyPath;
use crate::scenario::schema::{LatencySpec, MockSpec, SpreadKind};

use super::*;

pub(super) fn latency_model(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &LatencySpec,
) -> LatencyModel {
    match spec {
        LatencySpec::Fixed(d) => LatencyModel::Fixed(d.0),
        LatencySpec::Distribution(dist) => {
            if dist.mean.0.is_zero() && !dist.spread.0.is_zero() {
                checker.fail(&key.key("mean"), "must be > 0 when spread is set");
            }
            match dist.dist {
                SpreadKind::Normal => LatencyModel::Normal {
                    mean: dist.mean.0,
                    stddev: dist.spread.0,
                },
                SpreadKind::Uniform => LatencyModel::Uniform {
                    mean: dist.mean.0,
                    half_width: dist.spread.0,
                },
            }
        }
    }
}

/// `tokenizer` of `[targets.mock]`: the vocabulary the mock answers and counts in.
fn mock_vocabulary(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &MockSpec,
    base_dir: &std::path::Path,
) -> crate::mock::MockVocabulary {
    super::tokenizer::tokenizer(
        checker,
        &key.key("tokenizer"),
        spec.tokenizer.as_ref(),
        base_dir,
    )
    .and_then(|tokenizer| {
        let name = tokenizer.name();
        let vocabulary = crate::mock::MockVocabulary::of(tokenizer);
        if vocabulary.is_none() {
            checker.fail(
                &key.key("tokenizer"),
                format!(
                    "{name} has too few words that are one token each for the mock to answer in"
                ),
            );
        }
        vocabulary
    })
    .unwrap_or_default()
}

/// A probability between 0 and 1 (default 0).
fn probability(checker: &mut Checker, key: &KeyPath, field: &str, value: Option<f64>) -> f64 {
    match value {
        Some(p) if !(0.0..=1.0).contains(&p) => {
            checker.fail(
                &key.key(field),
                format!("must be a probability between 0 and 1 (got {p})"),
            );
            0.0
        }
        Some(p) => p,
        None => 0.0,
    }
}

pub(super) fn mock_config(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &MockSpec,
    seed: u64,
    base_dir: &std::path::Path,
) -> MockConfig {
    let defaults = MockConfig::default();
    let vocabulary = mock_vocabulary(checker, key, spec, base_dir);
    let output_tokens = spec.output_tokens.unwrap_or(defaults.output_tokens);
    if output_tokens > MAX_TOKENS {
        checker.fail(
            &key.key("output_tokens"),
            format!("must be at most {MAX_TOKENS} (got {output_tokens})"),
        );
    }
    if output_tokens == 0 {
        checker.fail(&key.key("output_tokens"), "must be at least 1");
    }
    let faults = spec.faults.as_ref().map_or_else(FaultPlan::default, |f| {
        fault_plan(checker, &key.key("faults"), f)
    });
    let tool_call_rate = probability(checker, key, "tool_call_rate", spec.tool_call_rate);
    let broken_arguments_rate = probability(
        checker,
        key,
        "broken_arguments_rate",
        spec.broken_arguments_rate,
    );
    MockConfig {
        vocabulary,
        tool_call_rate,
        broken_arguments_rate,
        faults,
        ttft: spec.ttft.as_ref().map_or(defaults.ttft, |s| {
            latency_model(checker, &key.key("ttft"), s)
        }),
        itl: spec
            .itl
            .as_ref()
            .map_or(defaults.itl, |s| latency_model(checker, &key.key("itl"), s)),
        output_tokens,
        reasoning_tokens: match spec.reasoning_tokens {
            Some(n) if n > MAX_TOKENS => {
                checker.fail(
                    &key.key("reasoning_tokens"),
                    format!("must be at most {MAX_TOKENS} (got {n})"),
                );
                0
            }
            Some(n) => n,
            None => defaults.reasoning_tokens,
        },
        prelude: spec.prelude.map(|d| d.0),
        seed,
        batch: crate::mock::BatchMockConfig {
            processing_time: spec
                .batch_processing_time
                .map_or(defaults.batch.processing_time, |d| d.0),
            failure_rate: match spec.batch_failure_rate {
                Some(rate) if !(0.0..=1.0).contains(&rate) => {
                    checker.fail(
                        &key.key("batch_failure_rate"),
                        format!("must be a fraction between 0 and 1 (got {rate})"),
                    );
                    0.0
                }
                Some(rate) => rate,
                None => defaults.batch.failure_rate,
            },
        },
        batch_mode_speedup: match spec.batch_mode_speedup {
            Some(speedup) if !(SPEEDUP_RANGE.0..=SPEEDUP_RANGE.1).contains(&speedup) => {
                checker.fail(
                    &key.key("batch_mode_speedup"),
                    format!(
                        "must be from {} to {} (got {})",
                        SPEEDUP_RANGE.0,
                        SPEEDUP_RANGE.1,
                        number(speedup)
                    ),
                );
                1.0
            }
            Some(speedup) => speedup,
            None => defaults.batch_mode_speedup,
        },
        early_stop: probability(checker, key, "early_stop", spec.early_stop),
        input_usage_scale: match spec.input_usage_scale {
            Some(scale) if !(scale.is_finite() && (0.01..=1000.0).contains(&scale)) => {
                checker.fail(
                    &key.key("input_usage_scale"),
                    format!("must be from 0.01 to 1000 (got {})", number(scale)),
                );
                1.0
            }
            Some(scale) => scale,
            None => defaults.input_usage_scale,
        },
        cache_ttft: spec
            .cache_ttft
            .as_ref()
            .map(|s| latency_model(checker, &key.key("cache_ttft"), s)),
        decode_slots: at_least_one(
            checker,
            &key.key("decode_slots"),
            spec.decode_slots,
            "unlimited capacity",
        ),
        max_concurrent_streams: at_least_one(
            checker,
            &key.key("max_concurrent_streams"),
            spec.max_concurrent_streams,
            "the default of 200",
        ),
    }
}

/// A count that, when set, must be at least 1; leaving it out means `default`.
fn at_least_one(
    checker: &mut Checker,
    key: &KeyPath,
    value: Option<u32>,
    default: &str,
) -> Option<u32> {
    if value == Some(0) {
        checker.fail(
            key,
            format!("must be at least 1 (leave it out for {default})"),
        );
        return None;
    }
    value
}

pub(super) fn fault_plan(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &crate::scenario::schema::FaultsSpec,
) -> FaultPlan {
    let defaults = FaultPlan::default();
    let mut probabilities = Vec::new();
    let mut total = 0.0;
    for (name, probability) in spec.probabilities() {
        if !(0.0..=1.0).contains(&probability) {
            checker.fail(
                &key.key(name),
                format!("must be a probability from 0 to 1 (got {probability})"),
            );
            continue;
        }
        total += probability;
        if let Some(fault) = Fault::from_name(name) {
            probabilities.push((fault, probability));
        }
    }
    if total > 1.0 + 1e-9 {
        checker.fail(
            key,
            format!("fault probabilities add up to {total}, more than 1"),
        );
    }
    if spec.oversized_bytes == Some(0) {
        checker.fail(&key.key("oversized_bytes"), "must be at least 1");
    }
    FaultPlan {
        probabilities,
        stall_for: spec.stall_for.map_or(defaults.stall_for, |d| d.0),
        drip_every: spec.drip_every.map_or(defaults.drip_every, |d| d.0),
        oversized_bytes: spec.oversized_bytes.unwrap_or(defaults.oversized_bytes),
    }
}
