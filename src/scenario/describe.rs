//! The plan paragraph `drover validate` and `drover run` print before anything is sent: targets
//! and classes, the load and its bounds, shard, warm-up, sweep, migration and SLOs, with a
//! warning for every verdict the plan cannot reach (an SLO that cannot pass on the planned
//! sample, a migration phase that cannot decide its gates).

use std::time::Duration;

use crate::shard::Shard;
use crate::slo::SloPlan;

use super::{Endpoint, LoadShape, RunPlan, SweepOver};

/// A one-paragraph description of what a plan will do.
pub fn describe(plan: &RunPlan) -> String {
    let mut text = targets_and_classes(plan);
    text.push_str(&format!("load: {} {}", load_shape(plan), load_bound(plan)));
    text.push_str(&shard_and_warmup(plan));
    text.push_str(&sweep_line(plan));
    text.push_str(&migration_lines(plan));
    text.push_str(&slo_lines(plan));
    text
}

fn targets_and_classes(plan: &RunPlan) -> String {
    let targets: Vec<String> = plan
        .targets
        .iter()
        .map(|t| match &t.endpoint {
            Endpoint::Url(url) => format!("{} -> {url}", t.name),
            Endpoint::Mock(_) => format!("{} -> embedded mock", t.name),
        })
        .collect();
    let classes: Vec<String> = plan
        .classes
        .iter()
        .map(|c| format!("{} (weight {})", c.name, c.weight))
        .collect();
    let mut text = format!(
        "scenario \"{}\": {} target(s) [{}], {} class(es) [{}]\n",
        plan.name,
        plan.targets.len(),
        targets.join(", "),
        plan.classes.len(),
        classes.join(", "),
    );
    for target in &plan.targets {
        text.push_str(&format!(
            "target {}: {}\n",
            target.name,
            request_shape(target)
        ));
    }
    for class in &plan.classes {
        text.push_str(&format!(
            "class {}: {}\n",
            class.name,
            crate::workload::describe_class(class)
        ));
    }
    text
}

/// What a target's requests look like: API, mode, path, output cap field, key header.
fn request_shape(target: &crate::scenario::TargetPlan) -> String {
    let path = match &target.url {
        Some(url) => url.clone(),
        None => format!(".../{}", target.api.path()),
    };
    let query: Vec<String> = target
        .query
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let cap = target
        .output_limit
        .field()
        .map_or("no output cap".to_string(), |f| format!("cap as {f}"));
    let key = match (&target.api_key_env, &target.api_key) {
        (None, _) => "no key".to_string(),
        (Some(var), Some(_)) => format!(
            "key from {var} in {}{}",
            target.auth.header,
            if target.auth.scheme.is_empty() {
                String::new()
            } else {
                format!(" ({})", target.auth.scheme)
            }
        ),
        (Some(var), None) => format!("{var} is not set: no key sent"),
    };
    // A batch-api target's requests go in batches: say through which API.
    let via = match (target.mode, target.api.batch_api()) {
        (crate::scenario::TargetMode::BatchApi, Some(batch_api)) => {
            format!(" in batches through {}", batch_api.name())
        }
        _ => String::new(),
    };
    format!(
        "api = \"{}\", mode = \"{}\", POST {path}{query}{via}, {cap}, {key}",
        target.api.name(),
        target.mode.name()
    )
}

fn load_bound(plan: &RunPlan) -> String {
    match (plan.load.duration, plan.load.requests) {
        (Some(d), Some(n)) => format!(
            "for {} or {n} requests, whichever comes first",
            humantime::format_duration(d)
        ),
        (Some(d), None) => format!("for {}", humantime::format_duration(d)),
        (None, Some(n)) => format!("for {n} requests"),
        (None, None) => String::new(),
    }
}

fn load_shape(plan: &RunPlan) -> String {
    let load = &plan.load;
    match &load.shape {
        LoadShape::Open {
            arrival,
            stages,
            max_in_flight,
        } => {
            let expected = load
                .expected_requests(Shard::default())
                .filter(|n| n.is_finite())
                .unwrap_or(0.0);
            let cap = max_in_flight.map_or(String::new(), |c| format!(", at most {c} in flight"));
            let rates = stages
                .iter()
                .map(|s| {
                    if s.rate == s.end_rate {
                        format!("{} req/s", s.rate)
                    } else {
                        format!("{}→{} req/s", s.rate, s.end_rate)
                    }
                })
                .collect::<Vec<_>>()
                .join(", then ");
            let expected = if expected > 0.0 {
                format!(" (~{expected:.0} requests per target)")
            } else {
                String::new()
            };
            format!("open loop, {arrival:?} arrivals at {rates}{cap}{expected}")
        }
        LoadShape::Closed { users } => format!("closed loop, {users} concurrent users"),
        LoadShape::Trace {
            trace,
            speed,
            max_in_flight,
        } => {
            let cap = max_in_flight.map_or(String::new(), |c| format!(", at most {c} in flight"));
            format!(
                "trace replay of {} ({} requests over {} at {speed}x speed{cap})",
                trace.path.display(),
                trace.entries.len(),
                humantime::format_duration(Duration::from_millis(
                    trace.span(*speed).as_millis() as u64
                ))
            )
        }
    }
}

fn shard_and_warmup(plan: &RunPlan) -> String {
    let (load, shard) = (&plan.load, plan.shard);
    let mut text = String::new();
    if !shard.is_whole() {
        text.push_str(&format!(
            "\nshard {shard}: this worker sends 1 in {n} requests of the load above (global \
             indices {k}, {k}+{n}, …), with its share of users and in-flight cap and its own \
             dataset slice",
            n = shard.count,
            k = shard.index,
        ));
        if let LoadShape::Closed { users } = &load.shape {
            text.push_str(&format!(" ({users} users here)"));
        }
    }
    if !load.warmup.is_zero() {
        text.push_str(&format!(
            "; requests scheduled in the first {} are warm-up, not measured",
            humantime::format_duration(load.warmup)
        ));
    }
    if load.warmup_requests > 0 {
        text.push_str(&format!(
            "; the first {} requests are warm-up, not measured",
            load.warmup_requests
        ));
    }
    text
}

fn sweep_line(plan: &RunPlan) -> String {
    let Some(sweep) = &plan.sweep else {
        return String::new();
    };
    let values: Vec<String> = sweep.values.iter().map(|v| v.to_string()).collect();
    format!(
        "\nsweep: {} in {} steps of {} ({}); the load above is replaced at each step",
        sweep.over.name(),
        values.len(),
        humantime::format_duration(sweep.step_duration),
        values.join(", ")
    )
}

fn migration_lines(plan: &RunPlan) -> String {
    let Some(migration) = &plan.migration else {
        return String::new();
    };
    let phases: Vec<String> = migration
        .phases
        .iter()
        .enumerate()
        .map(|(index, phase)| {
            let growth = plan.phase_growth(index);
            let extended = if growth > 1.0 {
                format!(", run {growth:.2}x for its gates' minimum samples")
            } else {
                String::new()
            };
            let length = match (phase.duration, phase.requests) {
                (Some(duration), _) => humantime::format_duration(duration).to_string(),
                (None, Some(requests)) => format!("{requests} requests"),
                (None, None) => "the load's length".into(),
            };
            format!(
                "{} (share {:.0}%, mirror {:.0}%, {length}{extended})",
                phase.name,
                phase.share * 100.0,
                phase.mirror * 100.0
            )
        })
        .collect();
    let mut text = format!(
        "\nmigration: \"{}\" → \"{}\" in {} phase(s): {}; the load above runs in each phase for the phase's length",
        plan.targets[migration.primary].name,
        plan.targets[migration.candidate].name,
        phases.len(),
        phases.join(", ")
    );
    for index in 0..migration.phases.len() {
        let needed = plan.phase_growth_needed(index);
        if needed > migration.extend_up_to {
            text.push_str(&format!(
                "\nwarning: migration phase \"{}\" cannot decide its gates: their minimum samples need {needed:.1}x its length and extend_up_to allows {}; it will end insufficient unless the phase is longer, mirrors more, or its gates ask for less",
                migration.phases[index].name,
                migration.extend_up_to
            ));
        }
    }
    text
}

fn slo_lines(plan: &RunPlan) -> String {
    let Some(slo) = &plan.slo else {
        return String::new();
    };
    let assertions: Vec<&str> = slo.assertions.iter().map(|a| a.text.as_str()).collect();
    let mut text = format!(
        "\nslo: {} at {}% confidence{}",
        assertions.join(", "),
        slo.confidence * 100.0,
        if slo.fail_on_inconclusive {
            "; inconclusive fails the run"
        } else {
            ""
        }
    );
    for warning in undecidable_assertions(plan, slo) {
        text.push_str(&format!("\nwarning: {warning}"));
    }
    text
}

/// The measured requests per target the plan should give (warm-up left out), for a sweep its
/// smallest step: `None` when it cannot be told before the run (a closed-loop sweep, a
/// migration, a load bounded by time alone in a closed loop).
pub fn planned_measured_requests(plan: &RunPlan) -> Option<f64> {
    if plan.migration.is_some() {
        return None;
    }
    let load = match &plan.sweep {
        Some(sweep) if sweep.over == SweepOver::Rate => {
            let lowest = sweep.values.iter().copied().fold(f64::INFINITY, f64::min);
            plan.at_sweep_step(sweep.over, lowest, sweep.step_duration)
                .load
        }
        Some(_) => return None,
        None => plan.load.clone(),
    };
    let planned = load.expected_requests(plan.shard)?;
    let warm_share = match load.duration {
        Some(duration) if !duration.is_zero() && !load.warmup.is_zero() => {
            (load.warmup.as_secs_f64() / duration.as_secs_f64()).min(1.0)
        }
        _ => 0.0,
    };
    Some((planned * (1.0 - warm_share) - load.warmup_requests as f64).max(0.0))
}

/// SLO assertions that could not pass on the planned sample even if every request were as good
/// as it can be: each says how many requests a pass needs (a scoped assertion gets its class's
/// share of the requests).
pub fn undecidable_assertions(plan: &RunPlan, slo: &SloPlan) -> Vec<String> {
    let Some(planned) = planned_measured_requests(plan) else {
        return Vec::new();
    };
    let total_weight: f64 = plan.classes.iter().map(|c| c.weight).sum();
    let mut warnings = Vec::new();
    for assertion in &slo.assertions {
        let share = match &assertion.class {
            Some(name) => plan
                .classes
                .iter()
                .find(|c| &c.name == name)
                .map_or(1.0, |c| c.weight / total_weight.max(f64::MIN_POSITIVE)),
            None => 1.0,
        };
        let expected = (planned * share).floor() as u64;
        match assertion.samples_to_pass(slo.confidence) {
            Some(needed) if needed <= expected => {}
            Some(needed) => warnings.push(format!(
                "slo \"{}\" cannot pass on the ~{expected} measured requests planned{}: a pass at {}% confidence needs at least {needed}; plan more requests or loosen the assertion",
                assertion.text,
                if plan.sweep.is_some() { " for the smallest sweep step" } else { "" },
                slo.confidence * 100.0
            )),
            None => warnings.push(format!(
                "slo \"{}\" cannot pass on any number of requests",
                assertion.text
            )),
        }
    }
    warnings
}
