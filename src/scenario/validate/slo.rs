//! `[slo]`: each assertion parsed and scoped to a target or class that exists.

use crate::scenario::locate::KeyPath;
use crate::scenario::{ClassPlan, TargetPlan};

use super::*;

/// Parses `[slo]` assertions and checks that their scopes name real targets and classes.
pub(super) fn slo_plan(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &crate::scenario::schema::SloSpec,
    targets: &[TargetPlan],
    classes: &[ClassPlan],
) -> crate::slo::SloPlan {
    let confidence = spec.confidence.unwrap_or(0.95);
    if !(0.5..=0.9999).contains(&confidence) {
        checker.fail(
            &key.key("confidence"),
            format!("must be between 0.5 and 0.9999 (got {confidence})"),
        );
    }
    if spec.assert.is_empty() {
        checker.fail(
            &key.key("assert"),
            "is empty: list assertions such as \"ttft.p99 < 200ms\" or \"error_rate < 1%\"",
        );
    }
    let mut assertions = Vec::new();
    for (index, text) in spec.assert.iter().enumerate() {
        let at = key.key("assert").index(index);
        match crate::slo::parse(text) {
            Err(message) => checker.fail(&at, message),
            Ok(assertion) => {
                if let Some(target) = &assertion.target {
                    if !targets.iter().any(|t| t.name == *target) {
                        checker.fail(
                            &at,
                            format!("names target \"{target}\", which the scenario does not have"),
                        );
                    }
                }
                if let Some(class) = &assertion.class {
                    if !classes.iter().any(|c| c.name == *class) {
                        checker.fail(
                            &at,
                            format!("names class \"{class}\", which the scenario does not have"),
                        );
                    }
                }
                assertions.push(assertion);
            }
        }
    }
    crate::slo::SloPlan {
        assertions,
        confidence,
        fail_on_inconclusive: spec.fail_on_inconclusive.unwrap_or(false),
    }
}
