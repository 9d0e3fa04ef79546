//! Assembles the results document from a finished [`Recorder`]: per target and class, the
//! per-second series, and warnings about the run's validity.

use std::time::{Duration, SystemTime};

use super::{Metric, Recorder};
use crate::results::{
    ClassResults, Environment, PricingInfo, RunResults, RunStatus, ScenarioInfo, ShardInfo,
    StageResults, TargetResults, SCHEMA,
};
use crate::scenario::{Endpoint, LoadShape, RunPlan};

/// Schedule lag p99 above which a run is flagged as limited by the client or its in-flight cap.
const LAG_WARNING_MS: f64 = 10.0;

impl Recorder {
    /// Builds the results document, with warnings about the run's validity.
    pub fn into_results(
        mut self,
        plan: &RunPlan,
        aborted: &[u64],
        started_at: SystemTime,
        ended_at: SystemTime,
        elapsed: Duration,
        status: RunStatus,
    ) -> RunResults {
        let mut warnings = Vec::new();
        let mut targets = Vec::new();
        for index in 0..plan.targets.len() {
            targets.push(self.target_results(plan, index, aborted, &mut warnings));
        }
        let spend = crate::results::RunSpend::of(&targets);
        RunResults {
            spend,
            slo: None,
            paired: None,
            phase: None,
            schema: SCHEMA.into(),
            drover_version: env!("CARGO_PKG_VERSION").into(),
            scenario: ScenarioInfo {
                name: plan.name.clone(),
                source: plan.source.display().to_string(),
                seed: plan.seed,
                as_run: plan.scenario_as_run.clone(),
                overrides: plan.overrides.clone(),
            },
            status,
            started_at: humantime::format_rfc3339_millis(started_at).to_string(),
            ended_at: humantime::format_rfc3339_millis(ended_at).to_string(),
            duration_s: elapsed.as_secs_f64(),
            targets,
            environment: Environment::current(),
            warnings,
            shard: (!plan.shard.is_whole()).then(|| ShardInfo {
                index: plan.shard.index,
                count: plan.shard.count,
                seed: plan.shard.seed(plan.seed),
                start_at: plan
                    .start_at
                    .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            }),
            merged: None,
            pricing: plan
                .targets
                .iter()
                .any(|t| t.price.is_some())
                .then(|| PricingInfo {
                    table: plan.cost.table.clone(),
                    as_of: plan.cost.as_of.clone(),
                    note: plan.cost.note.clone(),
                    currency: plan.cost.currency.clone(),
                }),
        }
    }

    /// One target's results: its summary, its classes (with their route), series and stages.
    fn target_results(
        &mut self,
        plan: &RunPlan,
        index: usize,
        aborted: &[u64],
        warnings: &mut Vec<String>,
    ) -> TargetResults {
        let target = &plan.targets[index];
        let summary = self.target_summary(index);
        let aborted_here = aborted.get(index).copied().unwrap_or(0);
        let mut summary_results = self.results_of(index, &summary, aborted_here);
        warnings.extend(target_warnings(plan, target, &summary, &summary_results));
        let live_mode = target.mode.name();
        let classes: Vec<ClassResults> = plan
            .classes
            .iter()
            .enumerate()
            .map(|(class_index, class)| ClassResults {
                route: target.is_routed().then(|| {
                    if target.class_via_batch(class_index) {
                        "batch-api".to_string()
                    } else {
                        live_mode.to_string()
                    }
                }),
                name: class.name.clone(),
                results: with_images(
                    self.results_of(index, self.group(index, class_index), 0),
                    class,
                    target.api,
                ),
            })
            .collect();
        if let Some(inputs) = &mut summary_results.inputs {
            for class in &classes {
                if let Some(theirs) = &class.results.inputs {
                    inputs.images += theirs.images;
                    inputs.image_tokens += theirs.image_tokens;
                }
            }
        }
        warnings.extend(early_stop_warnings(&target.name, &classes));
        let (series, series_origin_unix, series_step_s) = self.series(index);
        TargetResults {
            name: target.name.clone(),
            model: target.model.clone(),
            mode: if target.is_routed() {
                format!("routed ({live_mode} + batch-api)")
            } else {
                live_mode.to_string()
            },
            endpoint: match &target.endpoint {
                Endpoint::Url(url) => url.clone(),
                Endpoint::Mock(_) => "embedded-mock".into(),
            },
            summary: summary_results,
            classes,
            series,
            series_origin_unix,
            series_step_s,
            stages: self.stage_results(plan, index),
            batches: Vec::new(),
            accounting: None,
            server_metrics: None,
            tokenizer: Some(tokenizer_used(&target.tokenizer)),
            http2: http2_shape(target),
        }
    }

    fn stage_results(&self, plan: &RunPlan, target: usize) -> Vec<StageResults> {
        let LoadShape::Open { stages, .. } = &plan.load.shape else {
            return Vec::new();
        };
        let mut start = Duration::ZERO;
        let mut results = Vec::new();
        for (index, stage) in stages.iter().enumerate() {
            let length = stage.duration.unwrap_or_default();
            if let Some(group) = self.stage_group(target, index) {
                results.push(StageResults {
                    index,
                    // A shard offers its share of the rate.
                    rate: stage.rate / f64::from(plan.shard.count),
                    end_rate: stage.end_rate / f64::from(plan.shard.count),
                    start_s: start.as_secs_f64(),
                    duration_s: length.as_secs_f64(),
                    results: self.results_of(target, group, 0),
                });
            }
            start += length;
        }
        results
    }
}

/// Share of a class's capped requests that may stop short of `max_tokens` before the results
/// warn: above it, throughput and cost per request describe shorter answers than were asked for.
pub const EARLY_STOP_WARNING_SHARE: f64 = 0.05;

/// A warning per class whose requests often produced fewer tokens than their `max_tokens`.
pub fn early_stop_warnings(target: &str, classes: &[ClassResults]) -> Vec<String> {
    classes
        .iter()
        .filter_map(|class| {
            let length = class.results.output_length.as_ref()?;
            (length.stopped_early_share > EARLY_STOP_WARNING_SHARE).then(|| {
                format!(
                    "target \"{target}\", class \"{}\": {:.0}% of requests ({} of {}) stopped before their max_tokens (asked {:.1} tokens on average, produced {:.1}); tokens/s and cost per request describe shorter answers than asked for (send ignore_eos or min_tokens where the server supports them)",
                    class.name,
                    length.stopped_early_share * 100.0,
                    length.stopped_early,
                    length.requests,
                    length.requested_mean,
                    length.produced_mean
                )
            })
        })
        .collect()
}

/// Warnings about one target's validity: late sends, TLS verification off, no success, and
/// tokens counted offline.
fn target_warnings(
    plan: &RunPlan,
    target: &crate::scenario::TargetPlan,
    summary: &super::GroupStats,
    summary_results: &crate::results::GroupResults,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if let LoadShape::Open { max_in_flight, .. } | LoadShape::Trace { max_in_flight, .. } =
        &plan.load.shape
    {
        if let Some(lag) = summary_results.latency_ms.get(Metric::ScheduleLag.name()) {
            if lag.p99 > LAG_WARNING_MS {
                let cause = match max_in_flight {
                    Some(cap) => format!(
                        "the max_in_flight cap of {cap} held requests back or the client could not keep up"
                    ),
                    None => "the client could not keep up with the offered rate".into(),
                };
                warnings.push(format!(
                    "target \"{}\": requests left late (schedule lag p99 {:.1} ms, max {:.1} ms): {cause}; \
                     *_corrected latencies include that wait",
                    target.name, lag.p99, lag.max
                ));
            }
        }
    }
    if target.tls.insecure {
        warnings.push(format!(
            "target \"{}\": TLS certificate verification was OFF (insecure_skip_verify); the endpoint's identity was not checked",
            target.name
        ));
    }
    if summary.sent > 0 && summary.succeeded == 0 {
        warnings.push(format!(
            "target \"{}\": every one of its {} requests failed",
            target.name, summary.sent
        ));
    }
    if let Some(line) = estimate_warning(&target.name, &summary_results.tokens, &target.tokenizer) {
        warnings.push(line);
    }
    warnings
}

/// A class's group with the images its requests carried: each request sent carries the class's
/// images, priced by the target's API's formula.
fn with_images(
    mut results: crate::results::GroupResults,
    class: &crate::workload::ClassPlan,
    api: crate::protocol::Api,
) -> crate::results::GroupResults {
    let sent = results.requests.sent - results.requests.aborted;
    if let (Some(inputs), Some(images)) = (&mut results.inputs, &class.images) {
        inputs.images = sent * u64::from(images.count);
        inputs.image_tokens = sent * images.tokens(api);
    }
    results
}

/// How results name a tokenizer and its template.
fn tokenizer_used(tokenizer: &crate::tokenizer::Tokenizer) -> crate::results::TokenizerUsed {
    let template = tokenizer.template();
    crate::results::TokenizerUsed {
        name: tokenizer.name(),
        template_per_message: template.per_message,
        template_per_request: template.per_request,
        template_source: template.source.describe(),
    }
}

/// The warning of a target some of whose answers came without usage: how many, and which source
/// counted their output tokens (the checks that chose it are `driver`'s `output_count`).
fn estimate_warning(
    target: &str,
    tokens: &crate::results::TokenTotals,
    tokenizer: &crate::tokenizer::Tokenizer,
) -> Option<String> {
    let estimated = tokens.estimated();
    if estimated == 0 {
        return None;
    }
    let mut sources = Vec::new();
    if tokens.source_tokenizer > 0 {
        sources.push(format!(
            "{} by the {} tokenizer",
            tokens.source_tokenizer,
            tokenizer.name()
        ));
    }
    if tokens.source_max_tokens > 0 {
        sources.push(format!(
            "{} as their max_tokens (stopped at the cap, or counted above it)",
            tokens.source_max_tokens
        ));
    }
    if tokens.source_chunks > 0 {
        sources.push(format!(
            "{} by their content events (the tokenizer's count was outside what the events and the cap allow)",
            tokens.source_chunks
        ));
    }
    if tokens.source_estimated > 0 {
        sources.push(format!(
            "{} from their length in characters",
            tokens.source_estimated
        ));
    }
    let exact = match tokenizer {
        crate::tokenizer::Tokenizer::Tiktoken(_) => {
            "exact only for OpenAI models of that vocabulary"
        }
        crate::tokenizer::Tokenizer::File(_) => "exact when it is the model's own tokenizer",
    };
    Some(format!(
        "target \"{target}\": {estimated} responses carried no usage, so their output tokens are estimates ({exact}): {}; tokens/s, TPOT, output lengths and cost are marked ~ where they rest on them",
        sources.join(", ")
    ))
}

/// A target's HTTP/2 pool shape, when it speaks HTTP/2 or may.
fn http2_shape(target: &crate::scenario::TargetPlan) -> Option<crate::results::Http2PoolShape> {
    let may_negotiate = target.http == crate::scenario::HttpVersion::Auto
        && matches!(&target.endpoint, Endpoint::Url(url) if url.starts_with("https://"));
    (target.http == crate::scenario::HttpVersion::Http2 || may_negotiate).then_some(
        crate::results::Http2PoolShape {
            connections: target.http2.connections,
            max_streams_per_connection: target.http2.max_streams_per_connection,
        },
    )
}
