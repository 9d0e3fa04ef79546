//! `[sweep]`: what it varies, its values and step length, and the SLOs that decide each step.

use crate::scenario::locate::KeyPath;
use crate::scenario::{LoadPlan, LoadShape};

use super::*;

/// Checks `[sweep]`: what it varies must match the load's kind, the values must rise, and the
/// SLOs that decide each step must exist.
pub(super) fn sweep_plan(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &crate::scenario::schema::SweepSpec,
    load: Option<&LoadPlan>,
    has_slo: bool,
) -> Option<crate::scenario::SweepPlan> {
    use crate::scenario::{SweepOver, SweepPlan};
    let before = checker.issues.len();
    let over = match spec.over.as_str() {
        "rate" => Some(SweepOver::Rate),
        "users" => Some(SweepOver::Users),
        other => {
            checker.fail(
                &key.key("over"),
                format!("\"{other}\" is not something a sweep varies: use \"rate\" (open loop) or \"users\" (closed loop)"),
            );
            None
        }
    };
    match (over, load.map(|l| &l.shape)) {
        (Some(SweepOver::Rate), Some(LoadShape::Open { stages, .. })) if stages.len() > 1 => {
            checker.fail(
                &key.key("over"),
                "a rate sweep replaces the load's rate: give [load] a single rate, not stages",
            );
        }
        (Some(SweepOver::Rate), Some(LoadShape::Closed { .. } | LoadShape::Trace { .. })) => {
            checker.fail(&key.key("over"), "\"rate\" needs load.kind = \"open\"");
        }
        (Some(SweepOver::Users), Some(LoadShape::Open { .. } | LoadShape::Trace { .. })) => {
            checker.fail(&key.key("over"), "\"users\" needs load.kind = \"closed\"");
        }
        _ => {}
    }
    if spec.values.is_empty() {
        checker.fail(
            &key.key("values"),
            "is empty: list the loads to try, rising",
        );
    }
    for (index, value) in spec.values.iter().enumerate() {
        if !(value.is_finite() && *value > 0.0) {
            checker.fail(
                &key.key("values").index(index),
                format!("must be a number above 0 (got {value})"),
            );
        } else if over == Some(SweepOver::Users) && value.fract() != 0.0 {
            checker.fail(
                &key.key("values").index(index),
                format!("users must be whole numbers (got {value})"),
            );
        } else if index > 0 && *value <= spec.values[index - 1] {
            checker.fail(
                &key.key("values").index(index),
                format!(
                    "must be above the value before it ({})",
                    spec.values[index - 1]
                ),
            );
        }
    }
    let step_duration = spec.step_duration.0;
    if step_duration.is_zero() {
        checker.fail(&key.key("step_duration"), "must be longer than 0");
    }
    if !has_slo {
        checker.fail(
            key,
            "needs [slo] assertions: they decide which steps still meet the target",
        );
    }
    if checker.issues.len() > before {
        return None;
    }
    Some(SweepPlan {
        over: over?,
        values: spec.values.clone(),
        step_duration,
        stop_at_first_failure: spec.stop_at_first_failure.unwrap_or(true),
    })
}
