//! The requests of a run one by one, read back from its `requests.jsonl` (`run
//! --export-requests`) for the per-request latency scatter. Only runs of up to [`SCATTER_MAX`]
//! measured requests are drawn: beyond that a scatter is a smear, and the percentile and
//! per-second charts say more.

use std::io::BufRead;
use std::path::Path;

/// The most measured requests a scatter is drawn for.
pub const SCATTER_MAX: usize = 20_000;

/// One measured request: when it was sent, what it measured, whether it succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestPoint {
    pub target: String,
    /// Seconds from the run's start to the actual send.
    pub sent_s: f64,
    pub ttft_ms: Option<f64>,
    pub e2e_ms: f64,
    pub ok: bool,
}

/// The measured (not warm-up) requests of `path`, or `None` when the file is missing or holds
/// more than [`SCATTER_MAX`] of them. Lines that do not parse (a torn last line of a killed
/// run) are skipped.
pub fn read_log(path: &Path) -> Option<Vec<RequestPoint>> {
    let file = std::fs::File::open(path).ok()?;
    let mut points = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if value["warmup"].as_bool() != Some(false) {
            continue;
        }
        let (Some(target), Some(sent_s), Some(e2e_ms)) = (
            value["target"].as_str(),
            value["sent_ms"].as_f64().map(|ms| ms / 1000.0),
            value["e2e_ms"].as_f64(),
        ) else {
            continue;
        };
        if points.len() == SCATTER_MAX {
            return None;
        }
        points.push(RequestPoint {
            target: target.to_string(),
            sent_s,
            ttft_ms: value["ttft_ms"].as_f64(),
            e2e_ms,
            ok: value["outcome"] == "ok",
        });
    }
    Some(points)
}
