//! `drover compare`: a run's results against a baseline's, metric by metric with a noise test
//! ([`crate::compare::baseline`]), for CI gates: printed, appended as Markdown (a CI step
//! summary), written as JUnit, and `Regressed` when anything got worse beyond its threshold.

use std::path::PathBuf;

use crate::report;

use super::Outcome;

/// `drover compare`'s arguments.
#[derive(Debug, Clone)]
pub struct CompareRequest {
    pub baseline: PathBuf,
    pub current: PathBuf,
    /// `NAME=VALUE` thresholds.
    pub thresholds: Vec<String>,
    pub confidence: f64,
    pub markdown: Option<PathBuf>,
    pub junit: Option<PathBuf>,
}

/// `drover compare`: a run against its baseline, printed, and as Markdown and JUnit when asked.
pub fn command(args: CompareRequest) -> Outcome {
    use crate::compare::baseline::{self, CompareOptions, Threshold};
    if !(0.5..=0.9999).contains(&args.confidence) {
        eprintln!(
            "error: --confidence must be between 0.5 and 0.9999 (got {})",
            args.confidence
        );
        return Outcome::BadInput;
    }
    let mut options = CompareOptions {
        confidence: args.confidence,
        ..CompareOptions::default()
    };
    for flag in &args.thresholds {
        let Some((name, value)) = flag.split_once('=') else {
            eprintln!(
                "error: --threshold {flag}: write NAME=VALUE, e.g. ttft.p99=20% or latency=5ms"
            );
            return Outcome::BadInput;
        };
        if let Err(error) = crate::compare::baseline::check_threshold_name(name.trim()) {
            eprintln!("error: --threshold {flag}: {error}");
            return Outcome::BadInput;
        }
        match Threshold::parse(value) {
            Ok(threshold) => {
                options
                    .thresholds
                    .insert(name.trim().to_string(), threshold);
            }
            Err(error) => {
                eprintln!("error: --threshold {flag}: {error}");
                return Outcome::BadInput;
            }
        }
    }
    let mut runs = Vec::new();
    for path in [&args.baseline, &args.current] {
        match report::read_results(path) {
            Ok(results) => runs.push(results),
            Err(error) => {
                eprintln!("error: {error}");
                return Outcome::BadInput;
            }
        }
    }
    let comparison = match baseline::compare(&runs[0], &runs[1], &options) {
        Ok(comparison) => comparison,
        Err(error) => {
            eprintln!(
                "error: cannot compare {} with {}: {error}",
                args.current.display(),
                args.baseline.display()
            );
            return Outcome::BadInput;
        }
    };
    print!("{}", baseline::terminal(&comparison));
    if let Some(path) = &args.markdown {
        // Appended: $GITHUB_STEP_SUMMARY collects every step's summary in one file.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, baseline::markdown(&comparison).as_bytes())
            });
        if let Err(error) = written {
            eprintln!("error: cannot write {}: {error}", path.display());
            return Outcome::RunFailed;
        }
    }
    if let Some(path) = &args.junit {
        if let Err(error) =
            report::json::write_atomically(path, baseline::junit(&comparison).as_bytes())
        {
            eprintln!("error: {error}");
            return Outcome::RunFailed;
        }
    }
    if comparison.regressed() {
        Outcome::Regressed
    } else {
        Outcome::Ok
    }
}
