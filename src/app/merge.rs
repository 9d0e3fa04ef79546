//! Merges the results files of a sharded run into one results file that every other command reads
//! like any other. Exact where the data allows: HDR histograms add without loss, so merged
//! percentiles equal those of one histogram of all samples; counters and tokens add; time series
//! line up by wall-clock second. Refuses inputs that are not shards of one run, and records
//! missing shards in the result.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use hdrhistogram::Histogram;

use crate::metrics::{
    decode_histogram, encode_histogram, fill_gaps, finish_cost, stat_ms, PointSum, ERROR_SAMPLES,
    RETRY_AFTER_SAMPLES,
};
use crate::results::{
    ClassResults, ConnectionCounts, CostResults, Environment, GroupResults, MergeInfo, MergedShard,
    MergedShardTarget, OutputLength, RunResults, RunStatus, SeriesPoint, SessionCounts, ShardInfo,
    SharedPrefixCounts, StageResults, StreamPreamble, TargetResults, Throughput,
};

use super::Outcome;

/// One results file to merge and where it came from (for messages).
#[derive(Debug, Clone)]
pub struct MergeInput {
    pub source: String,
    pub results: RunResults,
}

/// Why files cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge: give the results files of the shards")]
    NoInputs,
    #[error(
        "{file}: not a shard (no \"shard\" in it); merge combines the results of `drover run --shard K/N` workers"
    )]
    NotSharded { file: String },
    #[error("{second}: {what} differs from {first}'s: {detail}; merge combines shards of one scenario and run")]
    Mismatch {
        first: String,
        second: String,
        what: &'static str,
        detail: String,
    },
    #[error("{second}: shard {index} of {count} is also in {first}; give each shard once")]
    Duplicate {
        first: String,
        second: String,
        index: u32,
        count: u32,
    },
    #[error("{file}: {message}")]
    Unreadable { file: String, message: String },
}

/// Merges shard results into one. The inputs may come in any order.
pub fn merge(mut inputs: Vec<MergeInput>) -> Result<RunResults, MergeError> {
    if inputs.is_empty() {
        return Err(MergeError::NoInputs);
    }
    let mut shards = Vec::with_capacity(inputs.len());
    for input in &inputs {
        match &input.results.shard {
            Some(shard) => shards.push(shard.clone()),
            None => {
                return Err(MergeError::NotSharded {
                    file: input.source.clone(),
                })
            }
        }
    }
    check_compatible(&inputs, &shards)?;
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| shards[i].index);
    inputs = order.iter().map(|&i| inputs[i].clone()).collect();
    let shards: Vec<ShardInfo> = order.iter().map(|&i| shards[i].clone()).collect();

    let first = &inputs[0];
    let count = shards[0].count;
    let present: Vec<u32> = shards.iter().map(|s| s.index).collect();
    let missing: Vec<u32> = (0..count).filter(|i| !present.contains(i)).collect();

    let mut targets = Vec::new();
    for (t, target) in first.results.targets.iter().enumerate() {
        let parts: Vec<&TargetResults> = inputs.iter().map(|i| &i.results.targets[t]).collect();
        targets.push(merge_target(target, &parts, &inputs)?);
    }

    let warnings = shard_warnings(&inputs, &shards, &present, &missing);

    let status = merged_status(&inputs);
    let started = inputs
        .iter()
        .filter_map(|i| parse_time(&i.results.started_at))
        .min();
    let ended = inputs
        .iter()
        .filter_map(|i| parse_time(&i.results.ended_at))
        .max();
    let duration_s = match (started, ended) {
        (Some(s), Some(e)) => e.duration_since(s).unwrap_or_default().as_secs_f64(),
        _ => inputs
            .iter()
            .map(|i| i.results.duration_s)
            .fold(0.0, f64::max),
    };
    let format = |t: SystemTime| humantime::format_rfc3339_millis(t).to_string();

    let merged_shards = merged_shards(&inputs, &shards);
    let start_skew_s = start_skew(&inputs);

    let spend = crate::results::RunSpend::of(&targets);
    // The shards' SLOs, decided again on the merged histograms (exact: histograms and goodput
    // counts add). Shards of one run share their scenario, so the first one's plan is theirs.
    let slo_plan = match inputs.iter().find_map(|i| i.results.slo.as_ref()) {
        Some(slo) => Some(crate::slo::SloPlan::of_results(slo).map_err(|message| {
            MergeError::Unreadable {
                file: first.source.clone(),
                message,
            }
        })?),
        None => None,
    };
    let mut merged = RunResults {
        schema: first.results.schema.clone(),
        drover_version: first.results.drover_version.clone(),
        scenario: first.results.scenario.clone(),
        status,
        started_at: started.map_or_else(|| first.results.started_at.clone(), format),
        ended_at: ended.map_or_else(|| first.results.ended_at.clone(), format),
        duration_s,
        targets,
        environment: merge_environments(&inputs),
        warnings,
        shard: None,
        pricing: first.results.pricing.clone(),
        spend,
        slo: None,
        paired: None,
        phase: None,
        merged: Some(MergeInfo {
            shard_count: count,
            present,
            missing,
            shards: merged_shards,
            start_skew_s,
        }),
    };
    merged.slo = slo_plan.map(|plan| crate::slo::evaluate(&plan, &merged));
    Ok(merged)
}

/// The merged run's warnings: missing shards, each shard's status and own warnings, and
/// shards made by different drover versions.
fn shard_warnings(
    inputs: &[MergeInput],
    shards: &[ShardInfo],
    present: &[u32],
    missing: &[u32],
) -> Vec<String> {
    let count = shards[0].count;
    let mut warnings = Vec::new();
    if !missing.is_empty() {
        warnings.push(format!(
            "{} of {count} shards missing (index {}): the merged results cover {} of {count} shards, \
             about {:.0}% of the planned load",
            missing.len(),
            missing.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
            present.len(),
            100.0 * present.len() as f64 / f64::from(count)
        ));
    }
    for (input, shard) in inputs.iter().zip(shards) {
        match input.results.status {
            RunStatus::Completed => {}
            RunStatus::Interrupted => warnings.push(format!(
                "shard {}/{count} was interrupted: it covers only part of its share",
                shard.index
            )),
            RunStatus::InProgress => warnings.push(format!(
                "shard {}/{count} is a checkpoint of a worker that did not finish",
                shard.index
            )),
            RunStatus::BudgetExhausted => warnings.push(format!(
                "shard {}/{count} stopped at its spend cap",
                shard.index
            )),
            RunStatus::Degraded => warnings.push(format!(
                "shard {}/{count} is degraded: drover itself failed on some of its requests (see its warnings)",
                shard.index
            )),
        }
        for warning in &input.results.warnings {
            warnings.push(format!("shard {}/{count}: {warning}", shard.index));
        }
    }
    let versions: BTreeSet<&str> = inputs
        .iter()
        .map(|i| i.results.drover_version.as_str())
        .collect();
    if versions.len() > 1 {
        warnings.push(format!(
            "shards were made by different drover versions ({})",
            versions.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    warnings
}

/// The merged status: in progress if any shard is, else budget-exhausted, else interrupted,
/// else degraded.
fn merged_status(inputs: &[MergeInput]) -> RunStatus {
    if inputs
        .iter()
        .any(|i| i.results.status == RunStatus::InProgress)
    {
        RunStatus::InProgress
    } else if inputs
        .iter()
        .any(|i| i.results.status == RunStatus::BudgetExhausted)
    {
        RunStatus::BudgetExhausted
    } else if inputs
        .iter()
        .any(|i| i.results.status == RunStatus::Interrupted)
    {
        RunStatus::Interrupted
    } else if inputs
        .iter()
        .any(|i| i.results.status == RunStatus::Degraded)
    {
        RunStatus::Degraded
    } else {
        RunStatus::Completed
    }
}

/// What each shard contributed, for the merged file's `merged.shards`.
fn merged_shards(inputs: &[MergeInput], shards: &[ShardInfo]) -> Vec<MergedShard> {
    inputs
        .iter()
        .zip(shards)
        .map(|(input, shard)| MergedShard {
            index: shard.index,
            source: input.source.clone(),
            host: input.results.environment.host.clone(),
            status: input.results.status,
            started_at: input.results.started_at.clone(),
            start_late_s: shard.start_at.as_deref().and_then(|agreed| {
                let agreed = crate::shard::parse_start_at(agreed).ok()?;
                let started = parse_time(&input.results.started_at)?;
                Some(seconds_between(agreed, started))
            }),
            duration_s: input.results.duration_s,
            targets: input
                .results
                .targets
                .iter()
                .map(|t| MergedShardTarget {
                    name: t.name.clone(),
                    sent: t.summary.requests.sent,
                    succeeded: t.summary.requests.succeeded,
                    sent_per_s: if input.results.duration_s > 0.0 {
                        t.summary.requests.sent as f64 / input.results.duration_s
                    } else {
                        0.0
                    },
                })
                .collect(),
        })
        .collect()
}

/// Seconds from `from` to `to`, negative when `to` is earlier.
fn seconds_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(later) => later.as_secs_f64(),
        Err(earlier) => -earlier.duration().as_secs_f64(),
    }
}

/// How far apart the shards' loads began: the last `started_at` less the first. `None` when a
/// shard's start cannot be read (then nothing can be said of the skew).
fn start_skew(inputs: &[MergeInput]) -> Option<f64> {
    let starts: Option<Vec<SystemTime>> = inputs
        .iter()
        .map(|i| parse_time(&i.results.started_at))
        .collect();
    let starts = starts?;
    let first = *starts.iter().min()?;
    let last = *starts.iter().max()?;
    Some(seconds_between(first, last))
}

fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()
}

/// Every input must be a shard of the same scenario, run, shard count and target layout.
fn check_compatible(inputs: &[MergeInput], shards: &[ShardInfo]) -> Result<(), MergeError> {
    let (first, first_shard) = (&inputs[0], &shards[0]);
    let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
    for (input, shard) in inputs.iter().zip(shards) {
        let mismatch = |what: &'static str, detail: String| MergeError::Mismatch {
            first: first.source.clone(),
            second: input.source.clone(),
            what,
            detail,
        };
        let (a, b) = (&first.results, &input.results);
        if a.schema != b.schema {
            return Err(mismatch(
                "the schema",
                format!("\"{}\" vs \"{}\"", b.schema, a.schema),
            ));
        }
        if a.scenario.name != b.scenario.name {
            return Err(mismatch(
                "the scenario",
                format!("\"{}\" vs \"{}\"", b.scenario.name, a.scenario.name),
            ));
        }
        if a.scenario.as_run != b.scenario.as_run || a.scenario.seed != b.scenario.seed {
            return Err(mismatch(
                "the scenario",
                format!(
                    "both are named \"{}\" but their scenario files differ",
                    a.scenario.name
                ),
            ));
        }
        if shard.count != first_shard.count {
            return Err(mismatch(
                "the shard count",
                format!("{} vs {}", shard.count, first_shard.count),
            ));
        }
        if shard.start_at != first_shard.start_at {
            return Err(mismatch(
                "the agreed start time (--start-at)",
                format!(
                    "{} vs {}",
                    shard.start_at.as_deref().unwrap_or("none"),
                    first_shard.start_at.as_deref().unwrap_or("none")
                ),
            ));
        }
        let names = |r: &RunResults| -> Vec<(String, Vec<String>, usize)> {
            r.targets
                .iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        t.classes.iter().map(|c| c.name.clone()).collect(),
                        t.stages.len(),
                    )
                })
                .collect()
        };
        if names(a) != names(b) {
            return Err(mismatch(
                "the list of targets, classes or stages",
                "the files do not describe the same traffic".into(),
            ));
        }
        if let Some(earlier) = seen.insert(shard.index, &input.source) {
            return Err(MergeError::Duplicate {
                first: earlier.to_string(),
                second: input.source.clone(),
                index: shard.index,
                count: shard.count,
            });
        }
    }
    Ok(())
}

fn merge_target(
    first: &TargetResults,
    parts: &[&TargetResults],
    inputs: &[MergeInput],
) -> Result<TargetResults, MergeError> {
    let summary = merge_groups(parts.iter().map(|t| &t.summary), inputs)?;
    let mut classes = Vec::new();
    for (c, class) in first.classes.iter().enumerate() {
        classes.push(ClassResults {
            route: class.route.clone(),
            name: class.name.clone(),
            results: merge_groups(parts.iter().map(|t| &t.classes[c].results), inputs)?,
        });
    }
    let mut stages = Vec::new();
    for (s, stage) in first.stages.iter().enumerate() {
        stages.push(StageResults {
            index: stage.index,
            // Each shard offered its share; together they offered the sum.
            rate: parts.iter().map(|t| t.stages[s].rate).sum(),
            end_rate: parts.iter().map(|t| t.stages[s].end_rate).sum(),
            start_s: stage.start_s,
            duration_s: stage.duration_s,
            results: merge_groups(parts.iter().map(|t| &t.stages[s].results), inputs)?,
        });
    }
    let (series, series_origin_unix, series_step_s) = merge_series(parts);
    Ok(TargetResults {
        name: first.name.clone(),
        model: first.model.clone(),
        mode: first.mode.clone(),
        endpoint: first.endpoint.clone(),
        summary,
        classes,
        series,
        series_origin_unix,
        series_step_s,
        stages,
        batches: parts
            .iter()
            .flat_map(|t| t.batches.iter().cloned())
            .collect(),
        accounting: merge_accounting(parts),
        // Every shard scraped the same server: the first shard's view stands for the run's.
        server_metrics: parts.iter().find_map(|t| t.server_metrics.clone()),
        tokenizer: first.tokenizer.clone(),
        http2: first.http2,
    })
}

/// Adds groups: counters and token totals sum, histograms add, statistics are recomputed from
/// the merged histograms, the throughput window spans the earliest send to the last completion.
pub fn merge_groups<'a>(
    parts: impl Iterator<Item = &'a GroupResults> + Clone,
    inputs: &[MergeInput],
) -> Result<GroupResults, MergeError> {
    let mut merged = GroupResults::default();
    let mut histograms: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut token_check = crate::results::TokenCheck::default();
    for (part, input) in parts.clone().zip(inputs) {
        add_counts(&mut merged, part, &mut token_check);
        add_histograms(&mut histograms, part, input)?;
    }
    add_latencies(&mut merged, histograms, parts.clone());
    merged.token_check = crate::metrics::token_check_of(&token_check, &merged.output_length);
    let good: Option<u64> = parts
        .clone()
        .filter_map(|p| p.goodput.as_ref().map(|g| g.good))
        .reduce(|a, b| a + b);
    merged.throughput = merge_throughput(parts, &merged);
    merged.goodput = good.map(|good| {
        let mut goodput = crate::results::Goodput {
            good,
            ..Default::default()
        };
        goodput.finish(&merged.requests, merged.throughput.window_s);
        goodput
    });
    if let Some(answers) = &mut merged.answers {
        answers.finish(merged.throughput.window_s);
    }
    if let Some(cost) = &mut merged.cost {
        finish_cost(cost, merged.tokens.input, merged.tokens.output);
    }
    Ok(merged)
}

/// Adds a part's counters, tokens, cost and counted sections into `merged`.
fn add_counts(
    merged: &mut GroupResults,
    part: &GroupResults,
    token_check: &mut crate::results::TokenCheck,
) {
    let requests = &mut merged.requests;
    requests.sent += part.requests.sent;
    requests.succeeded += part.requests.succeeded;
    requests.failed += part.requests.failed;
    requests.throttled += part.requests.throttled;
    requests.aborted += part.requests.aborted;
    requests.warmup_excluded += part.requests.warmup_excluded;
    for (key, count) in &part.errors {
        *merged.errors.entry(key.clone()).or_default() += count;
    }
    for (key, count) in &part.http_statuses {
        *merged.http_statuses.entry(key.clone()).or_default() += count;
    }
    for (key, messages) in &part.error_samples {
        let samples = merged.error_samples.entry(key.clone()).or_default();
        for message in messages {
            if samples.len() < ERROR_SAMPLES && !samples.contains(message) {
                samples.push(message.clone());
            }
        }
    }
    let room = RETRY_AFTER_SAMPLES.saturating_sub(merged.retry_after_s.len());
    merged
        .retry_after_s
        .extend(part.retry_after_s.iter().take(room).copied());
    merged.retries.requests_retried += part.retries.requests_retried;
    for (key, count) in &part.retries.attempts_failed {
        *merged
            .retries
            .attempts_failed
            .entry(key.clone())
            .or_default() += count;
    }
    let tokens = &mut merged.tokens;
    tokens.output += part.tokens.output;
    tokens.input += part.tokens.input;
    tokens.cached_input += part.tokens.cached_input;
    if let Some(cost) = &part.cost {
        let total = merged.cost.get_or_insert_with(|| CostResults {
            currency: cost.currency.clone(),
            model: cost.model.clone(),
            discount: cost.discount,
            projection: cost.projection.clone(),
            ..CostResults::default()
        });
        total.total += cost.total;
        total.list += cost.list;
        total.official += cost.official;
        total.input += cost.input;
        total.output += cost.output;
        total.requests_priced += cost.requests_priced;
        total.requests_estimated += cost.requests_estimated;
    }
    if let Some(theirs) = &part.output_length {
        merged
            .output_length
            .get_or_insert_with(OutputLength::default)
            .add(theirs);
    }
    if let Some(theirs) = &part.token_check {
        token_check.add(theirs);
    }
    if let Some(theirs) = &part.shared_prefix {
        merged
            .shared_prefix
            .get_or_insert_with(SharedPrefixCounts::default)
            .add(theirs);
    }
    if let Some(theirs) = &part.sessions {
        merged
            .sessions
            .get_or_insert_with(SessionCounts::default)
            .add(theirs);
    }
    if let Some(theirs) = &part.connections {
        merged
            .connections
            .get_or_insert_with(ConnectionCounts::default)
            .add(theirs);
    }
    if let Some(theirs) = &part.stream_preamble {
        merged
            .stream_preamble
            .get_or_insert_with(StreamPreamble::default)
            .add(theirs);
    }
    if let Some(theirs) = &part.answers {
        merged
            .answers
            .get_or_insert_with(crate::results::AnswerDetail::default)
            .add(theirs);
    }
    let tokens = &mut merged.tokens;
    tokens.source_usage += part.tokens.source_usage;
    tokens.source_chunks += part.tokens.source_chunks;
    tokens.source_estimated += part.tokens.source_estimated;
    tokens.source_tokenizer += part.tokens.source_tokenizer;
    tokens.source_max_tokens += part.tokens.source_max_tokens;
    if let Some(theirs) = &part.tool_calls {
        merged
            .tool_calls
            .get_or_insert_with(crate::results::ToolCallResults::default)
            .add(theirs);
    }
    if let Some(theirs) = &part.inputs {
        let inputs = merged
            .inputs
            .get_or_insert_with(crate::results::InputTotals::default);
        inputs.images += theirs.images;
        inputs.image_tokens += theirs.image_tokens;
        inputs.request_bytes += theirs.request_bytes;
    }
}

/// Adds a part's histograms into `histograms`; every statistic must come with its histogram.
fn add_histograms(
    histograms: &mut BTreeMap<String, Histogram<u64>>,
    part: &GroupResults,
    input: &MergeInput,
) -> Result<(), MergeError> {
    for metric in part.latency_ms.keys() {
        if !part.histograms.contains_key(metric) {
            return Err(MergeError::Unreadable {
                file: input.source.clone(),
                message: format!(
                    "\"{metric}\" has statistics but no histogram, so it cannot be merged exactly"
                ),
            });
        }
    }
    for (metric, encoded) in &part.histograms {
        let histogram = decode_histogram(encoded).map_err(|e| MergeError::Unreadable {
            file: input.source.clone(),
            message: format!("histogram \"{metric}\": {e}"),
        })?;
        match histograms.get_mut(metric) {
            Some(total) => total.add(&histogram).map_err(|e| MergeError::Unreadable {
                file: input.source.clone(),
                message: format!("histogram \"{metric}\" cannot be added: {e:?}"),
            })?,
            None => {
                histograms.insert(metric.clone(), histogram);
            }
        }
    }
    Ok(())
}

/// Each merged histogram's statistics; a per-gap metric keeps its sample size in requests when
/// every part gives one.
fn add_latencies<'a>(
    merged: &mut GroupResults,
    histograms: BTreeMap<String, Histogram<u64>>,
    parts: impl Iterator<Item = &'a GroupResults> + Clone,
) {
    for (metric, histogram) in histograms {
        if histogram.is_empty() {
            continue;
        }
        let mut stat = stat_ms(&histogram);
        // A per-gap metric keeps its sample size in requests when every part gives one.
        stat.requests = parts
            .clone()
            .filter(|p| p.histograms.contains_key(&metric))
            .map(|p| p.latency_ms.get(&metric).and_then(|s| s.requests))
            .sum::<Option<u64>>();
        merged.latency_ms.insert(metric.clone(), stat);
        merged
            .histograms
            .insert(metric, encode_histogram(&histogram));
    }
}

fn merge_throughput<'a>(
    parts: impl Iterator<Item = &'a GroupResults>,
    merged: &GroupResults,
) -> Throughput {
    let parts: Vec<&GroupResults> = parts.filter(|p| p.requests.sent > 0).collect();
    let first = parts
        .iter()
        .map(|p| p.throughput.first_sent_unix_s)
        .try_fold(f64::INFINITY, |acc, t| t.map(|t| acc.min(t)));
    let last = parts
        .iter()
        .map(|p| p.throughput.last_done_unix_s)
        .try_fold(f64::NEG_INFINITY, |acc, t| t.map(|t| acc.max(t)));
    let (window_s, first, last) = match (first, last) {
        (Some(first), Some(last)) if last >= first => (last - first, Some(first), Some(last)),
        // Without wall-clock windows the longest shard window is the best estimate.
        _ => (
            parts
                .iter()
                .map(|p| p.throughput.window_s)
                .fold(0.0, f64::max),
            None,
            None,
        ),
    };
    let per_second = |n: u64| {
        if window_s > 0.0 {
            n as f64 / window_s
        } else {
            0.0
        }
    };
    Throughput {
        window_s,
        first_sent_unix_s: first,
        last_done_unix_s: last,
        requests_per_s: per_second(merged.requests.succeeded),
        output_tokens_per_s: per_second(merged.tokens.output),
    }
}

/// Lines the targets' series up on the wall clock and adds them point by point.
/// The shards' books added up (absent unless every shard kept them).
fn merge_accounting(parts: &[&TargetResults]) -> Option<crate::results::Accounting> {
    parts.iter().try_fold(
        crate::results::Accounting {
            balanced: true,
            ..Default::default()
        },
        |sum, part| {
            let part = part.accounting?;
            Some(crate::results::Accounting {
                scheduled: sum.scheduled + part.scheduled,
                recorded: sum.recorded + part.recorded,
                aborted: sum.aborted + part.aborted,
                handed_over: sum.handed_over + part.handed_over,
                balanced: sum.balanced && part.balanced,
            })
        },
    )
}

fn merge_series(parts: &[&TargetResults]) -> (Vec<SeriesPoint>, u64, u64) {
    let origin = parts
        .iter()
        .map(|t| t.series_origin_unix)
        .min()
        .unwrap_or(0);
    let step = parts
        .iter()
        .map(|t| t.series_step_s.max(1))
        .max()
        .unwrap_or(1);
    let mut sums: BTreeMap<u64, PointSum> = BTreeMap::new();
    for part in parts {
        let shift = part.series_origin_unix - origin;
        for point in &part.series {
            let key = (point.second + shift) / step * step;
            sums.entry(key)
                .or_insert_with(|| PointSum::new(key))
                .add(point);
        }
    }
    let points = sums.into_iter().map(|(k, s)| (k, s.finish())).collect();
    (fill_gaps(points, step), origin, step)
}

/// Hosts and systems listed once each; cores add up (the load generators' total); peak memory is
/// the largest of any worker.
fn merge_environments(inputs: &[MergeInput]) -> Environment {
    let unique = |pick: fn(&Environment) -> &str| {
        let mut seen: Vec<&str> = Vec::new();
        for input in inputs {
            let value = pick(&input.results.environment);
            if !seen.contains(&value) {
                seen.push(value);
            }
        }
        seen.join(", ")
    };
    Environment {
        host: unique(|e| &e.host),
        os: unique(|e| &e.os),
        cores: inputs.iter().map(|i| i.results.environment.cores).sum(),
        peak_rss_bytes: inputs
            .iter()
            .filter_map(|i| i.results.environment.peak_rss_bytes)
            .max(),
        build: Some(unique(|e| e.build.as_deref().unwrap_or("unknown"))),
    }
}

/// `drover merge`'s arguments.
#[derive(Debug, Clone)]
pub struct MergeRequest {
    /// Results files, or folders holding them (one level deep).
    pub results: Vec<std::path::PathBuf>,
    pub output: std::path::PathBuf,
    pub require_all: bool,
    /// The most the shards' load starts may lie apart before the merge is refused.
    pub max_start_skew: std::time::Duration,
    /// Merge shards that started further apart than `max_start_skew` (with a warning).
    pub force: bool,
    /// Wait up to this long for every shard's final results before merging.
    pub wait: Option<std::time::Duration>,
    /// Also render the merged report (report.html, summary.md, charts) into this folder.
    pub report: Option<std::path::PathBuf>,
    /// Also write the merged results, its report and each shard's results as one `.tar.gz`.
    pub archive: Option<std::path::PathBuf>,
}

/// `drover merge`: the shards' results read, merged exactly, written and summarised; the exit
/// code carries the merged run's verdict (as `drover run` would give it unsharded).
pub fn command(args: MergeRequest) -> Outcome {
    if let Some(limit) = args.wait {
        let end = super::shard_wait::wait_for_shards(
            limit,
            super::shard_wait::STALE_AFTER,
            || results_paths(&args.results).unwrap_or_default(),
            |line| eprintln!("{line}"),
        );
        for index in &end.stale {
            eprintln!(
                "warning: shard {index}'s checkpoint has not changed for {}: its worker died; merging its last checkpoint",
                humantime::format_duration(super::shard_wait::STALE_AFTER)
            );
        }
        if end.timed_out {
            match end.shard_count {
                Some(count) => eprintln!(
                    "warning: waited {}: {} of {count} shards finished; merging what is there",
                    humantime::format_duration(limit),
                    end.finished.len()
                ),
                None => {
                    eprintln!(
                        "error: waited {}: no shard wrote results under {}",
                        humantime::format_duration(limit),
                        args.results
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    return Outcome::RunFailed;
                }
            }
        }
    }
    let paths = match results_paths(&args.results) {
        Ok(paths) => paths,
        Err(error) => {
            eprintln!("error: {error}");
            return Outcome::BadInput;
        }
    };
    let mut inputs = Vec::new();
    for path in &paths {
        match crate::report::read_results(path) {
            Ok(results) => inputs.push(MergeInput {
                source: path.display().to_string(),
                results,
            }),
            Err(error) => {
                eprintln!("error: {error}");
                return Outcome::BadInput;
            }
        }
    }
    let mut merged = match merge(inputs) {
        Ok(merged) => merged,
        Err(error) => {
            eprintln!("error: {error}");
            return Outcome::BadInput;
        }
    };
    if let Err(message) = check_start_skew(&mut merged, args.max_start_skew, args.force) {
        eprintln!("error: {message}");
        return Outcome::BadInput;
    }
    let text = serde_json::to_string_pretty(&merged).expect("results always serialize");
    if let Err(error) = crate::report::json::write_atomically(&args.output, text.as_bytes()) {
        eprintln!("error: {error}");
        return Outcome::RunFailed;
    }
    print!("{}", crate::report::terminal::summary(&merged));
    println!("merged results: {}", args.output.display());
    if let Err(outcome) = write_outputs(&args, &merged, &paths) {
        return outcome;
    }
    let missing = merged.merged.as_ref().map_or(0, |m| m.missing.len());
    if args.require_all && missing > 0 {
        eprintln!("error: {missing} shard(s) missing and --require-all was given");
        return Outcome::RunFailed;
    }
    // The verdict of the whole run, as a single run would give it: a budget or drover's own
    // trouble on any shard, a target that never succeeded, or a failed SLO. Interrupted or
    // unfinished shards are warnings above (their share is missing from the totals).
    match merged.status {
        RunStatus::BudgetExhausted | RunStatus::Degraded => super::run::verdict_of(&merged),
        _ => super::run::measured_verdict(&merged),
    }
}

/// Refuses (or, forced, warns of) shards whose loads began further apart than `bound`: their
/// traffic did not overlap as one run's would, so the merged rates and latencies under load are
/// not the planned experiment's.
fn check_start_skew(
    merged: &mut RunResults,
    bound: std::time::Duration,
    force: bool,
) -> Result<(), String> {
    let Some(info) = &merged.merged else {
        return Ok(());
    };
    let Some(skew) = info.start_skew_s.filter(|s| *s > bound.as_secs_f64()) else {
        return Ok(());
    };
    let latest = info
        .shards
        .iter()
        .max_by(|a, b| a.started_at.cmp(&b.started_at))
        .map(|shard| match shard.start_late_s {
            Some(late) => format!(
                "; the last, shard {}, began {late:.3} s after --start-at",
                shard.index
            ),
            None => format!("; the last was shard {}", shard.index),
        })
        .unwrap_or_default();
    let message = format!(
        "the shards' loads began {skew:.3} s apart{latest}, more than --max-start-skew {}: \
         their traffic did not overlap as one run's would",
        humantime::format_duration(bound)
    );
    if !force {
        return Err(format!(
            "{message}. Start the workers with one --start-at far enough ahead for all of them \
             (image pulls, scheduling), or merge anyway with --force"
        ));
    }
    eprintln!("warning: {message} (merged anyway: --force)");
    merged
        .warnings
        .push(format!("{message} (merged with --force)"));
    Ok(())
}

/// The merged report and the archive, when asked for.
fn write_outputs(
    args: &MergeRequest,
    merged: &RunResults,
    shard_files: &[std::path::PathBuf],
) -> Result<(), Outcome> {
    let mut entries = vec![super::archive::ArchiveEntry {
        source: args.output.clone(),
        name: "merged.json".into(),
    }];
    if let Some(dir) = &args.report {
        match crate::report::write_report(dir, &crate::report::Report::of_run(merged)) {
            Ok(written) => {
                println!("report: {}", written.described());
                for file in ["report.html", "summary.md"] {
                    entries.push(super::archive::ArchiveEntry {
                        source: dir.join(file),
                        name: format!("report/{file}"),
                    });
                }
                for chart in &written.charts {
                    for extension in ["svg", "png"] {
                        let file = format!("charts/{chart}.{extension}");
                        entries.push(super::archive::ArchiveEntry {
                            source: dir.join(&file),
                            name: format!("report/{file}"),
                        });
                    }
                }
            }
            Err(error) => {
                eprintln!("error: could not render the merged report: {error}");
                return Err(Outcome::RunFailed);
            }
        }
    }
    let Some(archive) = &args.archive else {
        return Ok(());
    };
    for file in shard_files {
        let folder = file
            .parent()
            .and_then(|p| p.file_name())
            .map_or_else(|| "shard".to_string(), |f| f.to_string_lossy().into_owned());
        entries.push(super::archive::ArchiveEntry {
            source: file.clone(),
            name: format!("shards/{folder}/results.json"),
        });
    }
    let root = archive
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .map(|f| {
            f.trim_end_matches(".tar.gz")
                .trim_end_matches(".tgz")
                .to_string()
        })
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "drover-run".into());
    match super::archive::write(archive, &root, &entries) {
        Ok(()) => {
            println!("archive: {}", archive.display());
            Ok(())
        }
        Err(error) => {
            eprintln!("error: {error}");
            Err(Outcome::RunFailed)
        }
    }
}

/// The results files named by merge's arguments: a file as given; a folder stands for the
/// `results.json` files in it and in its immediate subfolders (one per worker).
fn results_paths(arguments: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>, String> {
    let mut paths = Vec::new();
    for argument in arguments {
        if !argument.is_dir() {
            paths.push(argument.clone());
            continue;
        }
        let entries = std::fs::read_dir(argument)
            .map_err(|e| format!("{}: cannot list folder: {e}", argument.display()))?;
        let mut found: Vec<std::path::PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("results.json"))
            .chain(std::iter::once(argument.join("results.json")))
            .filter(|path| path.is_file())
            .collect();
        if found.is_empty() {
            return Err(format!(
                "{}: no results.json in this folder or its subfolders",
                argument.display()
            ));
        }
        found.sort();
        paths.extend(found);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::new_histogram;
    use crate::results::{LatencyStat, RequestCounts, ScenarioInfo};
    use rand::{RngExt, SeedableRng};

    /// A shard's results whose `ttft` histogram holds `samples` (µs).
    fn shard(index: u32, count: u32, scenario: &str, samples: &[u64]) -> MergeInput {
        let mut histogram = new_histogram();
        for &value in samples {
            histogram.record(value).unwrap();
        }
        let n = samples.len() as u64;
        let group = GroupResults {
            requests: RequestCounts {
                sent: n + 1,
                succeeded: n,
                failed: 1,
                ..RequestCounts::default()
            },
            errors: BTreeMap::from([("http_500".to_string(), 1)]),
            latency_ms: BTreeMap::from([("ttft".to_string(), stat_ms(&histogram))]),
            histograms: BTreeMap::from([("ttft".to_string(), encode_histogram(&histogram))]),
            throughput: Throughput {
                window_s: 10.0,
                first_sent_unix_s: Some(1000.0 + f64::from(index)),
                last_done_unix_s: Some(1010.0 + f64::from(index)),
                ..Throughput::default()
            },
            ..GroupResults::default()
        };
        let target = TargetResults {
            name: "t".into(),
            model: "m".into(),
            mode: "stream".into(),
            endpoint: "embedded-mock".into(),
            summary: group.clone(),
            classes: vec![ClassResults {
                route: None,
                name: "c".into(),
                results: group,
            }],
            series: vec![SeriesPoint {
                second: 0,
                completed: n,
                ..SeriesPoint::default()
            }],
            // Shard 1 started a second after the others: its second 0 is their second 1.
            series_origin_unix: 1000 + u64::from(index == 1),
            series_step_s: 1,
            stages: Vec::new(),
            batches: Vec::new(),
            accounting: None,
            server_metrics: None,
            tokenizer: None,
            http2: None,
        };
        MergeInput {
            source: format!("shard{index}.json"),
            results: RunResults {
                schema: crate::results::SCHEMA.into(),
                drover_version: "0.1.0".into(),
                scenario: ScenarioInfo {
                    name: scenario.into(),
                    source: "s.toml".into(),
                    seed: 1,
                    as_run: serde_json::json!({ "name": scenario }),
                    overrides: Vec::new(),
                },
                status: RunStatus::Completed,
                started_at: "2026-11-25T10:00:00.000Z".into(),
                ended_at: "2026-11-25T10:00:10.000Z".into(),
                duration_s: 10.0,
                targets: vec![target],
                environment: Environment::default(),
                warnings: Vec::new(),
                shard: Some(ShardInfo {
                    index,
                    count,
                    seed: u64::from(index),
                    start_at: None,
                }),
                merged: None,
                pricing: None,
                spend: None,
                slo: None,
                paired: None,
                phase: None,
            },
        }
    }

    fn samples(seed: u64, n: usize) -> Vec<u64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // Log-spread values from 1 ms to 5 s, so the percentiles span many HDR buckets.
        (0..n)
            .map(|_| (1_000.0 * 5_000f64.powf(rng.random::<f64>())) as u64)
            .collect()
    }

    #[test]
    fn merged_histograms_equal_one_histogram_of_all_samples() {
        let parts: Vec<Vec<u64>> = (0..4).map(|i| samples(i, 500 + 137 * i as usize)).collect();
        let inputs: Vec<MergeInput> = (0..4)
            .rev()
            .map(|i| shard(i, 4, "s", &parts[i as usize]))
            .collect();
        let merged = merge(inputs).unwrap();
        let mut all = new_histogram();
        for value in parts.iter().flatten() {
            all.record(*value).unwrap();
        }
        let summary = &merged.targets[0].summary;
        let histogram = decode_histogram(&summary.histograms["ttft"]).unwrap();
        assert_eq!(histogram, all);
        assert_eq!(
            histogram.len(),
            parts.iter().map(Vec::len).sum::<usize>() as u64
        );
        let expected: LatencyStat = stat_ms(&all);
        assert_eq!(summary.latency_ms["ttft"], expected);
        assert_eq!(summary.requests.sent, all.len() + 4);
        assert_eq!(summary.errors["http_500"], 4);
        // The window joins the shards' windows on the wall clock: 1000 s to 1013 s.
        assert!((summary.throughput.window_s - 13.0).abs() < 1e-9);
        assert_eq!(
            merged.targets[0].classes[0].results.latency_ms["ttft"],
            expected
        );
        // Series line up by wall-clock second: shard 1's point lands one second later.
        let series = &merged.targets[0].series;
        assert_eq!(series.len(), 2);
        assert_eq!(series[1].completed, parts[1].len() as u64);
        let info = merged.merged.unwrap();
        assert_eq!((info.present, info.missing), (vec![0, 1, 2, 3], vec![]));
        assert!(merged.shard.is_none());
    }

    #[test]
    fn costs_add_up_and_their_ratios_are_recomputed() {
        let priced = |index: u32, total: f64, list: f64, output: u64| {
            let mut input = shard(index, 2, "s", &[1000]);
            let summary = &mut input.results.targets[0].summary;
            summary.tokens.output = output;
            summary.cost = Some(CostResults {
                currency: "USD".into(),
                model: "gpt-4.1".into(),
                discount: 1.0 - total / list,
                total,
                list,
                requests_priced: 1,
                projection: Some(crate::results::CostProjection {
                    basis: "requests_per_day".into(),
                    volume: 100.0,
                    per_day: total * 100.0,
                    per_month: total * 3000.0,
                }),
                ..CostResults::default()
            });
            input
        };
        // A streamed shard at list price and a Batch API shard at half price.
        let merged = merge(vec![priced(0, 3.0, 3.0, 1000), priced(1, 1.0, 2.0, 3000)]).unwrap();
        let cost = merged.targets[0].summary.cost.as_ref().unwrap();
        assert_eq!((cost.total, cost.list, cost.requests_priced), (4.0, 5.0, 2));
        assert!((cost.discount - 0.2).abs() < 1e-9);
        assert_eq!(cost.per_request, 2.0);
        assert_eq!(cost.per_million_output_tokens, 1000.0);
        let projection = cost.projection.as_ref().unwrap();
        assert_eq!((projection.per_day, projection.per_month), (200.0, 6000.0));
        assert_eq!(merged.spend.as_ref().unwrap().total, 4.0);
    }

    #[test]
    fn a_missing_shard_is_recorded_and_warned_about() {
        let inputs = vec![shard(0, 4, "s", &[1000]), shard(2, 4, "s", &[2000])];
        let merged = merge(inputs).unwrap();
        let info = merged.merged.as_ref().unwrap();
        assert_eq!(info.missing, vec![1, 3]);
        assert!(merged.warnings[0].starts_with("2 of 4 shards missing (index 1, 3)"));
        let summary = crate::report::terminal::summary(&merged);
        assert!(
            summary.contains("merged 2 of 4 shards; MISSING shard(s) 1, 3"),
            "{summary}"
        );
    }

    #[test]
    fn shards_of_different_scenarios_duplicates_and_plain_runs_are_refused() {
        let error = merge(vec![shard(0, 2, "a", &[1]), shard(1, 2, "b", &[1])]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "shard1.json: the scenario differs from shard0.json's: \"b\" vs \"a\"; merge combines \
             shards of one scenario and run"
        );
        let error = merge(vec![shard(0, 2, "a", &[1]), shard(0, 2, "a", &[2])]).unwrap_err();
        assert!(error
            .to_string()
            .contains("shard 0 of 2 is also in shard0.json"));
        let error = merge(vec![shard(0, 2, "a", &[1]), shard(1, 3, "a", &[2])]).unwrap_err();
        assert!(error.to_string().contains("the shard count differs"));
        let mut plain = shard(0, 2, "a", &[1]);
        plain.results.shard = None;
        let error = merge(vec![plain]).unwrap_err();
        assert!(error.to_string().starts_with("shard0.json: not a shard"));
        let mut other_schema = shard(1, 2, "a", &[1]);
        other_schema.results.schema = "drover.results/v2".into();
        let error = merge(vec![shard(0, 2, "a", &[1]), other_schema]).unwrap_err();
        assert!(error.to_string().contains("the schema differs"));
        assert!(matches!(merge(Vec::new()), Err(MergeError::NoInputs)));
    }

    /// Three shards agreed on 10:00:00 and began 5 ms, 20 ms and `last_ms` after it.
    fn skewed_shards(last_ms: u32) -> Vec<MergeInput> {
        [5, 20, last_ms]
            .iter()
            .enumerate()
            .map(|(index, late_ms)| {
                let mut input = shard(index as u32, 3, "s", &[1_000, 2_000]);
                input.results.started_at = format!("2026-11-25T10:00:00.{late_ms:03}Z");
                input.results.shard.as_mut().unwrap().start_at =
                    Some("2026-11-25T10:00:00Z".into());
                input
            })
            .collect()
    }

    #[test]
    fn the_start_skew_and_each_shards_lateness_are_recorded() {
        let merged = merge(skewed_shards(140)).unwrap();
        let info = merged.merged.as_ref().unwrap();
        let skew = info.start_skew_s.unwrap();
        assert!((skew - 0.135).abs() < 1e-9, "{skew}");
        let late: Vec<f64> = info
            .shards
            .iter()
            .map(|s| s.start_late_s.unwrap())
            .collect();
        for (got, want) in late.iter().zip([0.005, 0.020, 0.140]) {
            assert!((got - want).abs() < 1e-9, "{late:?}");
        }
        // Within the bound: nothing refused, nothing added.
        let mut within = merged.clone();
        check_start_skew(&mut within, std::time::Duration::from_secs(1), false).unwrap();
        assert_eq!(within.warnings, merged.warnings);
    }

    #[test]
    fn shards_begun_too_far_apart_are_refused_unless_forced() {
        let mut merged = merge(skewed_shards(900)).unwrap();
        let bound = std::time::Duration::from_millis(500);
        let error = check_start_skew(&mut merged.clone(), bound, false).unwrap_err();
        assert!(
            error.contains("0.895 s apart")
                && error.contains("shard 2, began 0.900 s after --start-at")
                && error.contains("--max-start-skew 500ms")
                && error.contains("--force"),
            "{error}"
        );
        check_start_skew(&mut merged, bound, true).unwrap();
        assert!(
            merged
                .warnings
                .iter()
                .any(|w| w.contains("merged with --force")),
            "{:?}",
            merged.warnings
        );
    }

    #[test]
    fn a_degraded_shard_makes_the_merged_run_degraded() {
        let mut inputs = skewed_shards(30);
        inputs[1].results.status = RunStatus::Degraded;
        assert_eq!(merge(inputs.clone()).unwrap().status, RunStatus::Degraded);
        inputs[2].results.status = RunStatus::BudgetExhausted;
        assert_eq!(merge(inputs).unwrap().status, RunStatus::BudgetExhausted);
    }
}
