//! One `[[classes]]` table: weight, prompt source (synthetic lengths or a dataset), output caps,
//! shared prefixes and sessions.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::scenario::locate::KeyPath;
use crate::scenario::schema::{LengthKind, LengthSpec, SamplingSpec};
use crate::scenario::ClassPlan;
use crate::tokenizer::Tokenizer;
use crate::workload::{
    Dataset, DatasetFormat, DatasetSource, InputFilter, LengthModel, PromptSource, Sampling,
    SessionPlan, SharedPrefix, Words,
};

use super::*;
use crate::scenario::schema::ClassSpec;

/// What every class's checks share: where relative paths start, the seed of dataset shuffles,
/// and whether the load replays a trace (whose lines may carry their own prompts).
pub(super) struct ClassContext<'a> {
    pub base_dir: &'a Path,
    pub seed: u64,
    pub is_trace: bool,
    /// The tokenizer of a class that sets none.
    pub default_tokenizer: &'a crate::tokenizer::Tokenizer,
}

/// Checks one `[[classes]]` table (`names`: the class names seen so far) into its plan.
pub(super) fn class_plan(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &ClassSpec,
    names: &mut HashSet<String>,
    ctx: &ClassContext,
) -> Option<ClassPlan> {
    let (base_dir, is_trace) = (ctx.base_dir, ctx.is_trace);
    if spec.name.trim().is_empty() {
        checker.fail(&key.key("name"), "must not be empty");
    } else if !names.insert(spec.name.clone()) {
        checker.fail(
            &key.key("name"),
            format!("\"{}\" is used by another class", spec.name),
        );
    }
    let weight = spec.weight.unwrap_or(1.0);
    if !(weight.is_finite() && weight > 0.0) {
        checker.fail(&key.key("weight"), format!("must be > 0 (got {weight})"));
    }
    let tokenizer = super::tokenizer::tokenizer(
        checker,
        &key.key("tokenizer"),
        spec.tokenizer.as_ref(),
        base_dir,
    )
    .unwrap_or_else(|| ctx.default_tokenizer.clone());
    let prompt = prompt_source(checker, key, spec, is_trace, ctx, &tokenizer);
    check_prompt_fields(checker, key, spec);
    if spec.unique_prompts.is_some() && spec.input_tokens.is_none() {
        checker.fail(
            &key.key("unique_prompts"),
            "applies to synthetic prompts: set input_tokens too",
        );
    }
    let max_tokens = spec.max_tokens.as_ref().and_then(|lengths| {
        length_model(
            checker,
            &key.key("max_tokens"),
            lengths,
            base_dir,
            &tokenizer,
        )
    });
    if spec.min_tokens == Some(0) {
        checker.fail(&key.key("min_tokens"), "must be at least 1");
    }
    let shared_prefix = shared_prefix(checker, key, spec, &tokenizer);
    let session = session(checker, key, spec);
    if session.is_some() && is_trace {
        checker.fail(
            &key.key("turns"),
            "a trace replays single requests; multi-turn sessions need an open or closed load",
        );
    }
    let prompt = prompt?;
    Some(ClassPlan {
        name: spec.name.clone(),
        weight,
        prompt,
        max_tokens,
        min_tokens: spec.min_tokens,
        ignore_eos: spec.ignore_eos,
        inputs_per_request: match spec.inputs_per_request {
            Some(n) if !(1..=2048).contains(&n) => {
                checker.fail(
                    &key.key("inputs_per_request"),
                    format!("must be 1 to 2048 (the embeddings API's limit; got {n})"),
                );
                1
            }
            Some(n) => n,
            None => 1,
        },
        shared_prefix,
        session,
        model: spec.model.clone(),
        labels: spec.labels.to_class_labels(),
        tools: super::tools::tool_set(checker, key, spec, ctx.base_dir).map(Arc::new),
        images: spec.images.as_ref().and_then(|images| {
            image_plan(checker, &key.key("images"), &spec.name, images, ctx.seed)
        }),
    })
}

/// `images`: the class's synthetic images, drawn now (once per validation).
fn image_plan(
    checker: &mut Checker,
    key: &KeyPath,
    class: &str,
    spec: &crate::scenario::schema::ImagesSpec,
    seed: u64,
) -> Option<crate::workload::ImagePlan> {
    if let Some(format) = spec.format.as_deref().filter(|f| *f != "png") {
        checker.fail(
            &key.key("format"),
            format!("synthetic images are drawn as \"png\" only (got \"{format}\")"),
        );
        return None;
    }
    if let Some(detail) = spec
        .detail
        .as_deref()
        .filter(|d| !matches!(*d, "low" | "high" | "auto"))
    {
        checker.fail(
            &key.key("detail"),
            format!("must be \"low\", \"high\" or \"auto\" (got \"{detail}\")"),
        );
        return None;
    }
    match crate::workload::ImagePlan::synthetic(
        class,
        seed,
        spec.count.unwrap_or(1),
        (spec.width, spec.height),
        spec.detail.clone(),
    ) {
        Ok(plan) => Some(plan),
        Err(message) => {
            checker.fail(key, message);
            None
        }
    }
}

/// Where the class's prompts come from: synthetic lengths, a dataset, or (in a trace) the
/// trace's own lines.
fn prompt_source(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &ClassSpec,
    is_trace: bool,
    ctx: &ClassContext,
    tokenizer: &Tokenizer,
) -> Option<PromptSource> {
    let base_dir = ctx.base_dir;
    match (&spec.input_tokens, &spec.dataset) {
        (Some(_), Some(_)) => {
            checker.fail(
                &key.key("dataset"),
                "set either input_tokens or dataset, not both",
            );
            None
        }
        (None, None) if is_trace => Some(PromptSource::TraceOnly),
        (None, None) => {
            checker.fail(
                key,
                format!(
                    "class \"{}\" needs a prompt source: input_tokens or dataset",
                    spec.name
                ),
            );
            None
        }
        (Some(lengths), None) => {
            let words = Words::of(tokenizer);
            if words.is_none() {
                checker.fail(
                    &key.key("input_tokens"),
                    format!(
                        "synthetic prompts of an exact length need words that are one token each, and {} has too few: use a dataset, or another tokenizer for this class",
                        tokenizer.name()
                    ),
                );
            }
            length_model(
                checker,
                &key.key("input_tokens"),
                lengths,
                base_dir,
                tokenizer,
            )
            .zip(words)
            .map(|(lengths, words)| PromptSource::Synthetic {
                lengths,
                unique: spec.unique_prompts.unwrap_or(true),
                words,
            })
        }
        (None, Some(dataset)) => dataset_prompt(checker, key, spec, dataset, ctx, tokenizer),
    }
}

/// A dataset prompt source: its format, length filter and sampling.
fn dataset_prompt(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &ClassSpec,
    dataset: &Path,
    ctx: &ClassContext,
    tokenizer: &Tokenizer,
) -> Option<PromptSource> {
    let (base_dir, seed) = (ctx.base_dir, ctx.seed);
    let format = dataset_format(
        checker,
        &key.key("dataset_format"),
        spec.dataset_format.as_deref(),
    );
    let filter = InputFilter {
        min_tokens: spec.min_input_tokens,
        max_tokens: spec.max_input_tokens,
        tokenizer: tokenizer.clone(),
    };
    if let (Some(min), Some(max)) = (filter.min_tokens, filter.max_tokens) {
        if min > max {
            checker.fail(
                &key.key("min_input_tokens"),
                format!("{min} is above max_input_tokens {max}"),
            );
        }
    }
    match Dataset::load(&base_dir.join(dataset), format, filter) {
        Ok(data) => {
            let sampling = match spec.sampling.unwrap_or(SamplingSpec::Random) {
                SamplingSpec::Random => Sampling::Random,
                SamplingSpec::Sequential => Sampling::Sequential,
                SamplingSpec::Shuffle => Sampling::Shuffle,
            };
            Some(PromptSource::Dataset(DatasetSource::new(
                Arc::new(data),
                sampling,
                seed,
            )))
        }
        Err(error) => {
            checker.fail(&key.key("dataset"), error.to_string());
            None
        }
    }
}

/// Dataset options set without a dataset.
fn check_prompt_fields(checker: &mut Checker, key: &KeyPath, spec: &ClassSpec) {
    if spec.dataset.is_none() {
        for (field, present) in [
            ("dataset_format", spec.dataset_format.is_some()),
            ("sampling", spec.sampling.is_some()),
            ("min_input_tokens", spec.min_input_tokens.is_some()),
            ("max_input_tokens", spec.max_input_tokens.is_some()),
        ] {
            if present {
                checker.fail(&key.key(field), "applies to a dataset: set dataset too");
            }
        }
    }
}

/// `shared_prefix = { prompts, tokens, fraction }`, checked.
fn shared_prefix(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &ClassSpec,
    tokenizer: &Tokenizer,
) -> Option<SharedPrefix> {
    spec.shared_prefix.as_ref().and_then(|shared| {
        // A tokenizer without one-token words is reported at input_tokens.
        let words = Words::of(tokenizer).unwrap_or_default();
        let words = &words;
        let prefix_key = key.key("shared_prefix");
        let fraction = shared.fraction.unwrap_or(1.0);
        let before = checker.issues.len();
        if shared.prompts == 0 {
            checker.fail(&prefix_key.key("prompts"), "must be at least 1");
        }
        if shared.tokens == 0 {
            checker.fail(&prefix_key.key("tokens"), "must be at least 1");
        }
        if !(0.0..=1.0).contains(&fraction) {
            checker.fail(
                &prefix_key.key("fraction"),
                format!("must be between 0 and 1 (got {fraction})"),
            );
        }
        (checker.issues.len() == before)
            .then(|| SharedPrefix::new(&spec.name, shared.prompts, shared.tokens, fraction, words))
    })
}

/// `turns` and `think_time`: a multi-turn session, or none.
fn session(checker: &mut Checker, key: &KeyPath, spec: &ClassSpec) -> Option<SessionPlan> {
    match spec.turns {
        Some(0) => {
            checker.fail(&key.key("turns"), "must be at least 1");
            None
        }
        Some(turns) if turns > 1 => Some(SessionPlan {
            turns,
            think_time: spec.think_time.map_or(Duration::ZERO, |d| d.0),
        }),
        _ => {
            if spec.think_time.is_some() {
                checker.fail(
                    &key.key("think_time"),
                    "is the pause between turns: set turns above 1",
                );
            }
            None
        }
    }
}

pub(super) fn dataset_format(
    checker: &mut Checker,
    key: &KeyPath,
    name: Option<&str>,
) -> Option<DatasetFormat> {
    let name = name?;
    let format = DatasetFormat::parse(name);
    if format.is_none() {
        checker.fail(
            key,
            format!("\"{name}\" is not a dataset format; use chat, sharegpt, batch or text"),
        );
    }
    format
}

pub(super) fn length_model(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &LengthSpec,
    base_dir: &Path,
    tokenizer: &Tokenizer,
) -> Option<LengthModel> {
    let dist = match spec {
        LengthSpec::Fixed(0) => {
            checker.fail(key, "must be at least 1 token");
            return None;
        }
        LengthSpec::Fixed(n) if *n > MAX_TOKENS => {
            checker.fail(
                key,
                format!("must be at most {MAX_TOKENS} tokens (got {n})"),
            );
            return None;
        }
        LengthSpec::Fixed(n) => return Some(LengthModel::Fixed(*n)),
        LengthSpec::Distribution(dist) => dist,
    };
    let issues_before = checker.issues.len();
    for (field, value) in [
        ("min", dist.min.map(f64::from)),
        ("max", dist.max.map(f64::from)),
        ("mean", dist.mean),
        ("stddev", dist.stddev),
    ] {
        if let Some(value) = value.filter(|v| v.is_nan() || *v > f64::from(MAX_TOKENS)) {
            checker.fail(
                &key.key(field),
                format!("must be at most {MAX_TOKENS} tokens (got {value})"),
            );
            return None;
        }
    }
    if dist.dist != LengthKind::Empirical && (dist.dataset.is_some() || dist.format.is_some()) {
        checker.fail(&key.key("dataset"), "belongs to dist = \"empirical\"");
    }
    let model = match dist.dist {
        LengthKind::Empirical => empirical_lengths(checker, key, dist, base_dir, tokenizer),
        LengthKind::Uniform => match (dist.min, dist.max) {
            (Some(min), Some(max)) if min >= 1 && min <= max => {
                Some(LengthModel::Uniform { min, max })
            }
            (Some(_), Some(_)) => {
                checker.fail(&key.key("min"), "must be at least 1 and not above max");
                None
            }
            _ => {
                checker.fail(key, "a uniform distribution needs min and max");
                None
            }
        },
        LengthKind::Normal | LengthKind::Lognormal => match (dist.mean, dist.stddev) {
            (Some(mean), Some(stddev))
                if mean.is_finite() && mean >= 1.0 && stddev.is_finite() && stddev >= 0.0 =>
            {
                Some(if dist.dist == LengthKind::Normal {
                    LengthModel::Normal { mean, stddev }
                } else {
                    LengthModel::LogNormal { mean, stddev }
                })
            }
            (Some(_), Some(_)) => {
                checker.fail(&key.key("mean"), "mean must be >= 1 and stddev >= 0");
                None
            }
            _ => {
                checker.fail(
                    key,
                    "a normal or lognormal distribution needs mean and stddev",
                );
                None
            }
        },
    };
    if checker.issues.len() == issues_before
        && dist.dist != LengthKind::Uniform
        && (dist.min.is_some() || dist.max.is_some())
    {
        checker.fail(&key.key("min"), "min/max belong to a uniform distribution");
        return None;
    }
    model
}

/// `dist = "empirical"`: the content-token lengths of a dataset's prompts.
fn empirical_lengths(
    checker: &mut Checker,
    key: &KeyPath,
    dist: &crate::scenario::schema::LengthDistribution,
    base_dir: &Path,
    tokenizer: &Tokenizer,
) -> Option<LengthModel> {
    let format = dataset_format(checker, &key.key("format"), dist.format.as_deref());
    match &dist.dataset {
        None => {
            checker.fail(
                key,
                "an empirical distribution needs dataset (whose prompt lengths it draws)",
            );
            None
        }
        Some(file) => {
            match Dataset::load(&base_dir.join(file), format, InputFilter::default()) {
                Ok(data) => {
                    // Content tokens of each prompt, the quantity input_tokens asks for.
                    let lengths = data
                        .records
                        .iter()
                        .map(|r| {
                            let content: u64 = r
                                .messages
                                .iter()
                                .filter_map(|m| m.get("content").and_then(|c| c.as_str()))
                                .map(|text| tokenizer.count(text))
                                .sum();
                            u32::try_from(content.max(1)).unwrap_or(u32::MAX)
                        })
                        .collect();
                    Some(LengthModel::Empirical(Arc::new(lengths)))
                }
                Err(error) => {
                    checker.fail(&key.key("dataset"), error.to_string());
                    None
                }
            }
        }
    }
}
