//! `[load]`: the shape (open, closed, trace), its stages, bounds and warm-up.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::scenario::locate::KeyPath;
use crate::scenario::schema::{LoadKind, LoadSpec};
use crate::scenario::{LoadPlan, LoadShape, StagePlan};
use crate::workload::Trace;

use super::*;

pub(super) fn load_plan(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &LoadSpec,
    base_dir: &Path,
    class_names: &[String],
) -> Option<LoadPlan> {
    let issues_before = checker.issues.len();
    if spec.kind != LoadKind::Trace {
        for (field, present) in [
            ("trace", spec.trace.is_some()),
            ("speed", spec.speed.is_some()),
        ] {
            if present {
                checker.fail(&key.key(field), "belongs to kind = \"trace\"");
            }
        }
    }
    if let Some(duration) = spec.duration {
        checker.non_zero(&key.key("duration"), duration.0);
    }
    if spec.requests == Some(0) {
        checker.fail(&key.key("requests"), "must be at least 1");
    }
    checker.request_count(&key.key("requests"), spec.requests);
    checker.request_count(&key.key("warmup_requests"), spec.warmup_requests);
    let shape = match spec.kind {
        LoadKind::Open => open_shape(checker, key, spec),
        LoadKind::Closed => closed_shape(checker, key, spec),
        LoadKind::Trace => trace_shape(checker, key, spec, base_dir, class_names)?,
    };
    let duration = match &shape {
        LoadShape::Open { stages, .. } if spec.stages.is_some() => {
            Some(stages.iter().filter_map(|s| s.duration).sum())
        }
        _ => spec.duration.map(|d| d.0),
    };
    let (warmup, warmup_requests) = warmup_of(checker, key, spec, duration);
    if checker.issues.len() > issues_before {
        return None;
    }
    Some(LoadPlan {
        shape,
        duration,
        requests: spec.requests,
        warmup,
        warmup_requests,
    })
}

/// An open loop: its stages (one constant rate, or a list of ramps) and in-flight cap.
fn open_shape(checker: &mut Checker, key: &KeyPath, spec: &LoadSpec) -> LoadShape {
    for (field, present) in [("users", spec.users.is_some())] {
        if present {
            checker.fail(&key.key(field), "belongs to kind = \"closed\"");
        }
    }
    if spec.max_in_flight == Some(0) {
        checker.fail(&key.key("max_in_flight"), "must be at least 1");
    }
    let stages = open_stages(checker, key, spec);
    LoadShape::Open {
        arrival: spec.arrival.unwrap_or_default(),
        stages,
        max_in_flight: spec.max_in_flight,
    }
}

/// An open loop's stages: `rate` for the whole run, or `stages`.
fn open_stages(checker: &mut Checker, key: &KeyPath, spec: &LoadSpec) -> Vec<StagePlan> {
    match (&spec.rate, &spec.stages) {
        (Some(_), Some(_)) => {
            checker.fail(&key.key("stages"), "set either rate or stages, not both");
            Vec::new()
        }
        (None, None) => {
            checker.fail(
                key,
                "an open loop needs rate (requests per second) or stages",
            );
            Vec::new()
        }
        (Some(rate), None) => {
            checker.positive_rate(&key.key("rate"), *rate);
            if spec.duration.is_none() && spec.requests.is_none() {
                checker.fail(key, "needs duration and/or requests to know when to stop");
            }
            vec![StagePlan {
                rate: *rate,
                end_rate: *rate,
                duration: spec.duration.map(|d| d.0),
            }]
        }
        (None, Some(stages)) => {
            if stages.is_empty() {
                checker.fail(&key.key("stages"), "must list at least one stage");
            }
            if spec.duration.is_some() {
                checker.fail(
                    &key.key("duration"),
                    "is the sum of the stages; remove it when stages are set",
                );
            }
            stages
                .iter()
                .enumerate()
                .map(|(i, stage)| {
                    let stage_key = key.key("stages").index(i);
                    checker.positive_rate(&stage_key.key("rate"), stage.rate);
                    if let Some(end) = stage.end_rate {
                        checker.positive_rate(&stage_key.key("end_rate"), end);
                    }
                    checker.non_zero(&stage_key.key("duration"), stage.duration.0);
                    StagePlan {
                        rate: stage.rate,
                        end_rate: stage.end_rate.unwrap_or(stage.rate),
                        duration: Some(stage.duration.0),
                    }
                })
                .collect()
        }
    }
}

/// A closed loop: its users.
fn closed_shape(checker: &mut Checker, key: &KeyPath, spec: &LoadSpec) -> LoadShape {
    for (field, present) in [
        ("rate", spec.rate.is_some()),
        ("stages", spec.stages.is_some()),
        ("arrival", spec.arrival.is_some()),
        ("max_in_flight", spec.max_in_flight.is_some()),
    ] {
        if present {
            checker.fail(
                &key.key(field),
                "belongs to kind = \"open\"; a closed loop is paced by users",
            );
        }
    }
    let users = match spec.users {
        Some(0) => {
            checker.fail(&key.key("users"), "must be at least 1");
            0
        }
        Some(users) => users,
        None => {
            checker.fail(key, "a closed loop needs users (concurrent users)");
            0
        }
    };
    if spec.duration.is_none() && spec.requests.is_none() {
        checker.fail(key, "needs duration and/or requests to know when to stop");
    }
    LoadShape::Closed { users }
}

/// A trace replay: the trace file (its classes among `class_names`), its speed and cap.
fn trace_shape(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &LoadSpec,
    base_dir: &Path,
    class_names: &[String],
) -> Option<LoadShape> {
    for (field, present) in [
        ("rate", spec.rate.is_some()),
        ("stages", spec.stages.is_some()),
        ("arrival", spec.arrival.is_some()),
        ("users", spec.users.is_some()),
    ] {
        if present {
            checker.fail(
                &key.key(field),
                "does not apply to kind = \"trace\"; the trace's timestamps pace it",
            );
        }
    }
    if spec.max_in_flight == Some(0) {
        checker.fail(&key.key("max_in_flight"), "must be at least 1");
    }
    let speed = spec.speed.unwrap_or(1.0);
    if !(SPEED_RANGE.0..=SPEED_RANGE.1).contains(&speed) {
        checker.fail(
            &key.key("speed"),
            format!(
                "must be from {} to {} (got {})",
                SPEED_RANGE.0,
                SPEED_RANGE.1,
                number(speed)
            ),
        );
    }
    let trace = match &spec.trace {
        None => {
            checker.fail(
                key,
                "a trace load needs trace (a JSONL file of timestamped requests)",
            );
            None
        }
        Some(file) => match Trace::load(&base_dir.join(file), class_names) {
            Ok(trace) => Some(Arc::new(trace)),
            Err(error) => {
                checker.fail(&key.key("trace"), error.to_string());
                None
            }
        },
    };
    Some(LoadShape::Trace {
        trace: trace?,
        speed,
        max_in_flight: spec.max_in_flight,
    })
}

/// The warm-up (`warmup`, `warmup_requests`): shorter than the run, fewer than its requests.
fn warmup_of(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &LoadSpec,
    duration: Option<Duration>,
) -> (Duration, u64) {
    let warmup = spec.warmup.map_or(Duration::ZERO, |w| w.0);
    if let Some(total) = duration {
        if warmup >= total && !warmup.is_zero() {
            checker.fail(
                &key.key("warmup"),
                "must be shorter than the run's duration",
            );
        }
    }
    let warmup_requests = spec.warmup_requests.unwrap_or(0);
    if let Some(total) = spec.requests {
        if warmup_requests >= total {
            checker.fail(
                &key.key("warmup_requests"),
                "must be smaller than requests, or nothing is measured",
            );
        }
    }
    (warmup, warmup_requests)
}
