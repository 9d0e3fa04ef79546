//! `[migration]`: two live targets, single-turn classes, phases with a share and a length, and
//! gates with sensible thresholds.

use crate::scenario::locate::KeyPath;
use crate::scenario::schema::TargetMode;
use crate::scenario::{ClassPlan, LoadPlan, LoadShape, TargetPlan};

use super::*;

/// Checks `[migration]`: two live targets, single-turn classes, phases with a share and a
/// length, and gates with sensible thresholds.
pub(super) fn migration_plan(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &crate::scenario::schema::MigrationSpec,
    targets: &[TargetPlan],
    classes: &[ClassPlan],
    load: Option<&LoadPlan>,
    has_sweep: bool,
) -> Option<crate::scenario::MigrationPlan> {
    use crate::scenario::{MigrationPlan, PhasePlan};
    let before = checker.issues.len();
    let (primary, candidate) = sides(checker, key, spec, targets);
    check_what_it_drives(checker, key, spec, targets, classes, load, has_sweep);
    let mirror = spec.mirror.unwrap_or(1.0);
    if spec.mirror.is_some() {
        fraction(checker, &key.key("mirror"), mirror);
    }
    let extend_up_to = spec.extend_up_to.unwrap_or(DEFAULT_EXTEND_UP_TO);
    if !(extend_up_to.is_finite() && (1.0..=MAX_EXTEND_UP_TO).contains(&extend_up_to)) {
        checker.fail(
            &key.key("extend_up_to"),
            format!(
                "must be from 1 (never extend a phase) to {MAX_EXTEND_UP_TO} (got {extend_up_to})"
            ),
        );
    }
    let defaults = spec.gates.clone().unwrap_or_default();
    let default_gates = gate_plan(checker, &key.key("gates"), &defaults);
    let priced = |index: Option<usize>| index.is_some_and(|i| targets[i].price.is_some());
    let mut phases = Vec::new();
    if spec.phases.is_empty() {
        phases.push(PhasePlan {
            name: "shadow".into(),
            share: 0.0,
            mirror: 1.0,
            duration: None,
            requests: None,
            gates: default_gates.clone(),
        });
        if spec.mirror.is_some_and(|m| m < 1.0) {
            checker.fail(
                &key.key("mirror"),
                "without phases the run is one shadow phase that pairs every request; set phases to mirror a fraction",
            );
        }
    }
    for (index, phase) in spec.phases.iter().enumerate() {
        let at = key.key("phases").index(index);
        phases.push(phase_plan(
            checker,
            key,
            &at,
            index,
            phase,
            mirror,
            (&defaults, &default_gates),
        ));
    }
    let wants_cost = phases
        .iter()
        .any(|p| p.gates.max_cost.is_some() || p.gates.max_cost_ratio.is_some());
    if wants_cost && !(priced(primary) && priced(candidate)) {
        checker.fail(
            &key.key("gates"),
            "max_cost and max_cost_ratio need both targets priced (a model in the pricing table, or a price override)",
        );
    }
    if checker.issues.len() > before {
        return None;
    }
    Some(MigrationPlan {
        primary: primary?,
        candidate: candidate?,
        phases,
        extend_up_to,
    })
}

/// Checks one phase's gates.
pub(super) fn gate_plan(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &crate::scenario::schema::GatesSpec,
) -> crate::scenario::GatePlan {
    use crate::scenario::{GatePlan, RegressionGate};
    let mut fraction = |name: &str, value: Option<f64>| -> Option<f64> {
        let value = value?;
        if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
            checker.fail(
                &key.key(name),
                format!("must be a fraction from 0 to 1 (got {value}; 0.01 is 1%)"),
            );
        }
        Some(value)
    };
    let max_error_rate = fraction("max_error_rate", spec.max_error_rate);
    let max_throttle_rate = fraction("max_throttle_rate", spec.max_throttle_rate);
    let min_agreement = fraction("min_agreement", spec.min_agreement);
    let mut max_regression = Vec::new();
    for (name, max) in &spec.max_regression {
        let at = key.key("max_regression").key(name);
        match crate::slo::parse_latency_quantile(name) {
            Err(message) => checker.fail(&at, message),
            Ok(_) if !(max.is_finite() && *max >= 0.0) => checker.fail(
                &at,
                format!("must be a relative regression of at least 0 (got {max}; 0.25 allows 25% slower)"),
            ),
            Ok((histogram, quantile)) => max_regression.push(RegressionGate {
                key: name.clone(),
                histogram,
                quantile,
                max: *max,
            }),
        }
    }
    let positive = |checker: &mut Checker, name: &str, value: Option<f64>| {
        if let Some(value) = value {
            if !(value.is_finite() && value >= 0.0) {
                checker.fail(&key.key(name), format!("must be at least 0 (got {value})"));
            }
        }
        value
    };
    GatePlan {
        max_error_rate,
        max_throttle_rate,
        max_regression,
        min_agreement,
        max_cost_ratio: positive(checker, "max_cost_ratio", spec.max_cost_ratio),
        max_cost: positive(checker, "max_cost", spec.max_cost),
    }
}

/// A fraction from 0 to 1, or a failure at `at`.
fn fraction(checker: &mut Checker, at: &KeyPath, value: f64) {
    if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
        checker.fail(at, format!("must be a fraction from 0 to 1 (got {value})"));
    }
}

/// The primary's and the candidate's indices: live targets, and two different ones.
fn sides(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &crate::scenario::schema::MigrationSpec,
    targets: &[TargetPlan],
) -> (Option<usize>, Option<usize>) {
    let mut side = |field: &str, name: &str| -> Option<usize> {
        let found = targets.iter().position(|t| t.name == name);
        match found {
            None => checker.fail(
                &key.key(field),
                format!(
                    "names no target: \"{name}\" (targets: {})",
                    targets
                        .iter()
                        .map(|t| format!("\"{}\"", t.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Some(index)
                if targets[index].mode == TargetMode::BatchApi || targets[index].is_routed() =>
            {
                checker.fail(
                    &key.key(field),
                    format!("target \"{name}\" sends through the Batch API: shadow pairs need live requests"),
                );
            }
            Some(_) => {}
        }
        found
    };
    let primary = side("primary", &spec.primary);
    let candidate = side("candidate", &spec.candidate);
    if primary.is_some() && primary == candidate {
        checker.fail(
            &key.key("candidate"),
            "is the primary: name a different target to compare with it",
        );
    }
    (primary, candidate)
}

/// A migration drives exactly its two targets, single-turn classes, no sweep, and a load
/// without stages (phases set their own length).
fn check_what_it_drives(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &crate::scenario::schema::MigrationSpec,
    targets: &[TargetPlan],
    classes: &[ClassPlan],
    load: Option<&LoadPlan>,
    has_sweep: bool,
) {
    let both_named = targets.iter().any(|t| t.name == spec.primary)
        && targets.iter().any(|t| t.name == spec.candidate);
    if targets.len() != 2 && both_named {
        let others: Vec<String> = targets
            .iter()
            .filter(|t| t.name != spec.primary && t.name != spec.candidate)
            .map(|t| format!("\"{}\"", t.name))
            .collect();
        checker.fail(
            key,
            format!(
                "a migration drives exactly its primary and candidate; remove the other targets ({})",
                others.join(", ")
            ),
        );
    }
    for class in classes.iter().filter(|c| c.session.is_some()) {
        checker.fail(
            key,
            format!(
                "class \"{}\" is multi-turn; shadow pairs compare single requests, so a migration takes single-turn classes only",
                class.name
            ),
        );
    }
    if has_sweep {
        checker.fail(
            key,
            "cannot be combined with [sweep]: run them as separate scenarios",
        );
    }
    if let Some(LoadShape::Open { stages, .. }) = load.map(|l| &l.shape) {
        if stages.len() > 1 && !spec.phases.is_empty() {
            checker.fail(
                key,
                "phases set their own length: give [load] a single rate, not stages",
            );
        }
    }
}

/// One `[[migration.phases]]` entry (`defaults`: the migration's gates as written and as
/// checked).
fn phase_plan(
    checker: &mut Checker,
    key: &KeyPath,
    at: &KeyPath,
    index: usize,
    phase: &crate::scenario::schema::PhaseSpec,
    mirror: f64,
    (defaults, default_gates): (
        &crate::scenario::schema::GatesSpec,
        &crate::scenario::GatePlan,
    ),
) -> crate::scenario::PhasePlan {
    use crate::scenario::PhasePlan;
    fraction(checker, &at.key("share"), phase.share);
    let phase_mirror = phase.mirror.unwrap_or(mirror);
    if phase.mirror.is_some() {
        fraction(checker, &at.key("mirror"), phase_mirror);
    }
    match (&phase.duration, phase.requests) {
        (Some(_), Some(_)) => checker.fail(at, "give duration or requests, not both"),
        (None, None) => checker.fail(at, "needs a length: duration = \"2m\" or requests = 500"),
        (Some(duration), None) if duration.0.is_zero() => {
            checker.fail(&at.key("duration"), "must be longer than 0")
        }
        (None, Some(0)) => checker.fail(&at.key("requests"), "must be at least 1"),
        _ => {}
    }
    // A phase's own gates replace the migration's, gate by gate.
    let (gates_key, gates) = phase_gates(checker, key, at, phase, defaults, default_gates);
    if gates.min_agreement.is_some() && phase_mirror == 0.0 {
        checker.fail(
            &gates_key.key("min_agreement"),
            "needs paired answers, but the phase mirrors nothing: raise mirror",
        );
    }
    if (phase.share == 0.0 || phase.share == 1.0) && phase_mirror == 0.0 {
        checker.fail(
            at,
            "sends every request to one side and mirrors nothing, so it measures one side only: raise mirror",
        );
    }
    PhasePlan {
        name: phase
            .name
            .clone()
            .unwrap_or_else(|| format!("phase {}", index + 1)),
        share: phase.share,
        mirror: phase_mirror,
        duration: phase.duration.as_ref().map(|d| d.0),
        requests: phase.requests,
        gates,
    }
}

/// A phase's gates: its own replace the migration's, gate by gate.
fn phase_gates(
    checker: &mut Checker,
    key: &KeyPath,
    at: &KeyPath,
    phase: &crate::scenario::schema::PhaseSpec,
    defaults: &crate::scenario::schema::GatesSpec,
    default_gates: &crate::scenario::GatePlan,
) -> (KeyPath, crate::scenario::GatePlan) {
    match &phase.gates {
        Some(own) => {
            let own = own.clone();
            let mut merged = defaults.clone();
            merged.max_error_rate = own.max_error_rate.or(merged.max_error_rate);
            merged.max_throttle_rate = own.max_throttle_rate.or(merged.max_throttle_rate);
            merged.max_regression.extend(own.max_regression);
            merged.min_agreement = own.min_agreement.or(merged.min_agreement);
            merged.max_cost_ratio = own.max_cost_ratio.or(merged.max_cost_ratio);
            merged.max_cost = own.max_cost.or(merged.max_cost);
            let at_gates = at.key("gates");
            let plan = gate_plan(checker, &at_gates, &merged);
            (at_gates, plan)
        }
        None => (key.key("gates"), default_gates.clone()),
    }
}
