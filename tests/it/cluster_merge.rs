//! The merge step as the Kubernetes recipe runs it: started together with the workers
//! (`drover merge --wait`), it waits for every shard's final results, then writes the merged
//! results, the merged report and one archive to take out of the cluster; and shards whose loads
//! began too far apart are refused unless forced.

use crate::common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::{drover, drover_bin, text};

const SHARDS: u32 = 3;

fn read(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every file name in a `.tar.gz`, with its size.
fn archive_names(path: &Path) -> Vec<(String, usize)> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        names.push((name, bytes.len()));
    }
    names
}

#[test]
fn a_merge_started_with_the_workers_waits_for_them_and_packs_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/quickstart.toml");
    std::fs::create_dir(dir.path().join("run-1")).unwrap();

    // The merge Job starts first and waits (as `helm install` starts both Jobs at once).
    // --max-start-skew 3s: a busy CI machine may start a worker's process late; the refusal
    // itself is checked below on start times set by hand.
    let merge = Command::new(drover_bin())
        .current_dir(dir.path())
        .args(["merge", "run-1", "-o", "run-1/merged.json", "--wait", "60s"])
        .args(["--max-start-skew", "3s", "--report", "run-1/report"])
        .args(["--archive", "run-1/run-1.tar.gz"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start_at =
        humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(3)).to_string();
    let workers: Vec<_> = (0..SHARDS)
        .map(|k| {
            Command::new(drover_bin())
                .current_dir(dir.path())
                .args([
                    "run",
                    scenario,
                    "--set",
                    "load.duration=2s",
                    "--no-progress",
                ])
                .args(["--no-preflight", "--out", "run-1", "--exit-zero-on-verdict"])
                .args(["--shard", &format!("{k}/{SHARDS}"), "--start-at", &start_at])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for worker in workers {
        let output = worker.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    let output = merge.wait_with_output().unwrap();
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );

    // Every shard was merged: the wait ended on their final results, not at its deadline.
    let merged = read(&dir.path().join("run-1/merged.json"));
    assert_eq!(merged["merged"]["present"], serde_json::json!([0, 1, 2]));
    assert_eq!(merged["merged"]["missing"], serde_json::json!([]));
    assert_eq!(merged["status"], "completed");
    let skew = merged["merged"]["start_skew_s"].as_f64().unwrap();
    assert!((0.0..3.0).contains(&skew), "{skew}");
    for shard in merged["merged"]["shards"].as_array().unwrap() {
        let late = shard["start_late_s"].as_f64().unwrap();
        assert!(late >= 0.0, "a shard began before --start-at: {late}");
    }
    assert!(
        stdout.contains("merged 3 of 3 shards; loads began within "),
        "{stdout}"
    );
    assert!(stdout.contains("s after --start-at"), "{stdout}");
    let summary = std::fs::read_to_string(dir.path().join("run-1/report/summary.md")).unwrap();
    assert!(summary.contains("## Shards: "), "{summary}");
    assert!(summary.contains("merged 3 of 3 shards"), "{summary}");

    // One archive holds the merged results, the report with its charts, and every shard's
    // results, byte for byte.
    let names = archive_names(&dir.path().join("run-1/run-1.tar.gz"));
    let size_of = |name: &str| {
        names
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} is not in the archive: {names:?}"))
            .1
    };
    assert_eq!(
        size_of("run-1/merged.json"),
        std::fs::metadata(dir.path().join("run-1/merged.json"))
            .unwrap()
            .len() as usize
    );
    assert!(size_of("run-1/report/report.html") > 0);
    assert!(size_of("run-1/report/summary.md") > 0);
    assert!(names
        .iter()
        .any(|(n, _)| n.starts_with("run-1/report/charts/") && n.ends_with(".png")));
    let shard_files: Vec<&String> = names
        .iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("run-1/shards/") && n.ends_with("-of-3/results.json"))
        .collect();
    assert_eq!(shard_files.len(), 3, "{names:?}");

    // Shards whose loads began 5 s apart are refused, and merged when forced.
    let skewed = dir.path().join("skewed");
    for (k, folder) in std::fs::read_dir(dir.path().join("run-1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("results.json").is_file())
        .enumerate()
    {
        let mut results = read(&folder.join("results.json"));
        if k == 0 {
            let started = results["started_at"].as_str().unwrap();
            let later = humantime::parse_rfc3339(started).unwrap() + Duration::from_secs(5);
            results["started_at"] = humantime::format_rfc3339_millis(later).to_string().into();
        }
        let copy = skewed.join(folder.file_name().unwrap());
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::write(copy.join("results.json"), results.to_string()).unwrap();
    }
    let output = drover(dir.path(), &["merge", "skewed", "-o", "skewed.json"], &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("s apart") && stderr.contains("more than --max-start-skew 1s"),
        "{stderr}"
    );
    assert!(!dir.path().join("skewed.json").exists());
    let output = drover(
        dir.path(),
        &["merge", "skewed", "-o", "skewed.json", "--force"],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let forced = read(&dir.path().join("skewed.json"));
    let skew = forced["merged"]["start_skew_s"].as_f64().unwrap();
    assert!(skew > 4.0, "{skew}");
    assert!(
        forced["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("merged with --force")),
        "{}",
        forced["warnings"]
    );
}
