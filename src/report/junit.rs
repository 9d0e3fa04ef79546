//! `junit.xml` of a run's SLO assertions, for CI test reporters: one test suite per target, one
//! test case per assertion. A failed assertion is a `failure`; an inconclusive one is `skipped`
//! (or a `failure` when the scenario says `fail_on_inconclusive`); a pass carries its line.

use std::fmt::Write;

use super::format;
use super::html::escape;
use crate::results::slo::Verdict;
use crate::results::RunResults;

/// The run's SLO assertions as JUnit XML, or `None` without `[slo]`.
pub fn slo_junit(results: &RunResults) -> Option<String> {
    let slo = results.slo.as_ref()?;
    // Line k + 1 of the shared SLO lines is assertion k, verdict first.
    let lines = format::slo_lines(results);
    let failing = |verdict: Verdict| {
        verdict == Verdict::Fail || (verdict == Verdict::Inconclusive && slo.fail_on_inconclusive)
    };
    let count =
        |pick: &dyn Fn(Verdict) -> bool| slo.assertions.iter().filter(|a| pick(a.verdict)).count();
    let failures = count(&|v| failing(v));
    let skipped = count(&|v| v == Verdict::Inconclusive && !failing(v));
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"drover SLOs: {}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\">",
        escape(&results.scenario.name),
        slo.assertions.len(),
        results.duration_s
    );
    let mut targets: Vec<&str> = slo.assertions.iter().map(|a| a.target.as_str()).collect();
    targets.dedup();
    for target in targets {
        let cases: Vec<(usize, &crate::results::slo::AssertionResult)> = slo
            .assertions
            .iter()
            .enumerate()
            .filter(|(_, a)| a.target == target)
            .collect();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\">",
            escape(target),
            cases.len(),
            cases.iter().filter(|(_, a)| failing(a.verdict)).count(),
            cases
                .iter()
                .filter(|(_, a)| a.verdict == Verdict::Inconclusive && !failing(a.verdict))
                .count()
        );
        for (index, assertion) in cases {
            let line = lines.get(index + 1).map_or("", |l| l.as_str());
            // Without its verdict word: "ttft.p99 < 50ms: measured 61.2 ms (…), n=400".
            let message = line
                .split_once(' ')
                .map_or(line, |(_, rest)| rest.trim_start());
            let name = assertion
                .assertion
                .split_once(':')
                .map_or(assertion.assertion.as_str(), |(_, body)| body.trim());
            let classname = match &assertion.class {
                Some(class) => format!("{}.{target}.{class}", results.scenario.name),
                None => format!("{}.{target}", results.scenario.name),
            };
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\">",
                escape(&classname),
                escape(name)
            );
            let kind = assertion.verdict.name();
            let body = format!("{kind}: {message}");
            if failing(assertion.verdict) {
                let _ = write!(
                    out,
                    "<failure message=\"{}\" type=\"{kind}\">{}</failure>",
                    escape(message),
                    escape(&body)
                );
            } else if assertion.verdict == Verdict::Inconclusive {
                let _ = write!(out, "<skipped message=\"{}\"/>", escape(message));
            } else {
                let _ = write!(out, "<system-out>{}</system-out>", escape(&body));
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    Some(out)
}
