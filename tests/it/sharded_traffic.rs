//! A sharded run is the same experiment as the unsharded one: three shards of
//! `scenarios/quickstart.toml` send, request by request, the requests the unsharded run sends
//! (the same class, prompt length and intended send time for every global index k), and the
//! merged results count the same requests per class.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::{drover, drover_bin, text};

const SHARDS: u32 = 3;

/// (request, class, input tokens, intended send time) of every request a run folder exported.
fn exported(run: &Path) -> Vec<(u64, String, u64, String)> {
    std::fs::read_to_string(run.join("requests.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                v["request"].as_u64().unwrap(),
                v["class"].as_str().unwrap().to_string(),
                v["input_tokens"].as_u64().unwrap(),
                v["intended_ms"].to_string(),
            )
        })
        .collect()
}

fn run_folders(out: &Path) -> Vec<std::path::PathBuf> {
    let mut folders: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    folders.sort();
    folders
}

/// Sent requests per class of a results document's first target.
fn sent_per_class(results: &serde_json::Value) -> Vec<(String, u64)> {
    results["targets"][0]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|class| {
            (
                class["name"].as_str().unwrap().to_string(),
                class["requests"]["sent"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn three_shards_send_the_unsharded_runs_requests_one_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/quickstart.toml");
    let run = [
        "run",
        scenario,
        "--set",
        "load.duration=3s",
        "--no-progress",
        "--export-requests",
        "--no-preflight",
    ];
    let output = drover(dir.path(), &[&run[..], &["--out", "whole"]].concat(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    // The shards start together, as a cluster's workers do.
    let start_at =
        humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(2)).to_string();
    let workers: Vec<_> = (0..SHARDS)
        .map(|k| {
            Command::new(drover_bin())
                .current_dir(dir.path())
                .args(run)
                .args(["--out", "shards", "--shard", &format!("{k}/{SHARDS}")])
                .args(["--start-at", &start_at])
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

    let whole = &run_folders(&dir.path().join("whole"))[0];
    let mut unsharded = exported(whole);
    unsharded.sort();
    let shards = run_folders(&dir.path().join("shards"));
    assert_eq!(shards.len(), SHARDS as usize);
    let mut sharded: Vec<_> = shards.iter().flat_map(|shard| exported(shard)).collect();
    sharded.sort();
    assert!(unsharded.len() >= 40, "{}", unsharded.len());
    assert_eq!(
        sharded, unsharded,
        "request k is the same request on the shards"
    );

    let output = drover(dir.path(), &["merge", "shards", "-o", "merged.json"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let read = |path: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let merged = read(&dir.path().join("merged.json"));
    let alone = read(&whole.join("results.json"));
    assert_eq!(sent_per_class(&merged), sent_per_class(&alone));
}
