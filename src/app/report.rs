//! `drover report`: renders one or more results files, side by side, without re-running
//! anything: each labelled (by its folder or file name unless told), labels kept distinct.

use std::path::PathBuf;

use crate::report;

use super::Outcome;

/// `drover report`'s arguments.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub results: Vec<PathBuf>,
    pub out: Option<PathBuf>,
    /// One per results file, in order, or none.
    pub labels: Vec<String>,
    /// Also write groups.csv.
    pub csv: bool,
}

/// `drover report`: results files rendered side by side (Markdown, HTML, charts).
pub fn command(args: ReportRequest) -> Outcome {
    if !args.labels.is_empty() && args.labels.len() != args.results.len() {
        eprintln!(
            "error: {} --label given for {} results files; give one per file, in order, or none",
            args.labels.len(),
            args.results.len()
        );
        return Outcome::BadInput;
    }
    let mut inputs = Vec::new();
    for (i, path) in args.results.iter().enumerate() {
        let results = match report::read_results(path) {
            Ok(results) => results,
            Err(error) => {
                eprintln!("error: {error}");
                return Outcome::BadInput;
            }
        };
        let label = args
            .labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| default_label(path, &results));
        let folder = path.parent().unwrap_or(std::path::Path::new("."));
        inputs.push(report::ReportInput::new(label, results).with_requests_in(folder));
    }
    // Labels name the lines on every chart: keep them distinct.
    for i in 1..inputs.len() {
        let taken = inputs[..i]
            .iter()
            .filter(|p| p.label == inputs[i].label)
            .count();
        if taken > 0 {
            inputs[i].label = format!("{} #{}", inputs[i].label, taken + 1);
        }
    }
    let out = args.out.unwrap_or_else(|| {
        let stamp = report::json::utc_stamp(std::time::SystemTime::now());
        std::path::PathBuf::from("reports").join(format!("report-{stamp}"))
    });
    let report = report::Report {
        inputs,
        rollout: None,
        sweep: None,
    };
    if args.csv {
        match report::write_groups_csv(&out, &report) {
            Ok(path) => println!("csv: {}", path.display()),
            Err(error) => {
                eprintln!("error: {error}");
                return Outcome::RunFailed;
            }
        }
    }
    match report::write_report(&out, &report) {
        Ok(written) => {
            println!("report: {}", written.described());
            Outcome::Ok
        }
        Err(error) => {
            eprintln!("error: {error}");
            Outcome::RunFailed
        }
    }
}

/// A results file's label: its folder's name for `…/results.json`, else its file stem.
fn default_label(path: &std::path::Path, results: &crate::results::RunResults) -> String {
    let from_path = if path.file_name().is_some_and(|n| n == "results.json") {
        path.parent().and_then(|p| p.file_name())
    } else {
        path.file_stem()
    };
    from_path
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| results.scenario.name.clone())
}
