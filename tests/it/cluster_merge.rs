//! The Kubernetes recipe's processes, run here with the manifests' own args: the merge Job's
//! `drover merge --wait`, started together with the workers, waits for every shard's final
//! results, then writes the merged results, the merged report and one archive to take out of the
//! cluster; and shards whose loads began too far apart are refused unless forced.

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

/// The args of the first container of `Job/<name>` in deploy/kubernetes, with `$(VAR)` taken
/// from `vars` and the pod paths (`/results`, the scenario mount) mapped into `dir`, as the kubelet
/// would hand them to the process.
fn job_args(name: &str, vars: &[(&str, &str)], dir: &Path, scenario: &str) -> Vec<String> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("deploy/kubernetes/{name}.yaml"));
    let docs =
        yaml_rust2::YamlLoader::load_from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let container = &docs[0]["spec"]["template"]["spec"]["containers"][0];
    container["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|arg| {
            let mut arg = arg.as_str().unwrap().to_string();
            for (variable, value) in vars {
                arg = arg.replace(&format!("$({variable})"), value);
            }
            if arg == "/etc/drover/scenario.toml" {
                return scenario.to_string();
            }
            match arg.strip_prefix("/results") {
                Some(rest) => format!("{}{rest}", dir.join("results").display()),
                None => arg,
            }
        })
        .collect()
}

#[test]
fn a_merge_started_with_the_workers_waits_for_them_and_packs_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/quickstart.toml");
    // The run as the manifests start it: the merge Job and the workers at once, each process
    // with the manifest's own args and the variables Kubernetes sets (JOB_COMPLETION_INDEX) or
    // the manifests set (DROVER_SHARD_COUNT, RUN_ID, START_AT). The scenario is quickstart's,
    // shortened to 2 s.
    let start_at =
        humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(5)).to_string();
    let vars = [("RUN_ID", "run-1"), ("START_AT", start_at.as_str())];
    let merge_args = job_args("merge-job", &vars, dir.path(), scenario);
    let worker_args = job_args("workers-job", &vars, dir.path(), scenario);
    assert!(
        worker_args.contains(&"--exit-zero-on-verdict".to_string()),
        "{worker_args:?}"
    );
    let merge = Command::new(drover_bin())
        .current_dir(dir.path())
        .args(&merge_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let workers: Vec<_> = (0..SHARDS)
        .map(|k| {
            Command::new(drover_bin())
                .current_dir(dir.path())
                .args(&worker_args)
                .env("JOB_COMPLETION_INDEX", k.to_string())
                .env("DROVER_SHARD_COUNT", SHARDS.to_string())
                .env("DROVER_SET_DURATION", "load.duration=2s")
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
    let merged = read(&dir.path().join("results/run-1/merged.json"));
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
    let summary =
        std::fs::read_to_string(dir.path().join("results/run-1/report/summary.md")).unwrap();
    assert!(summary.contains("## Shards: "), "{summary}");
    assert!(summary.contains("merged 3 of 3 shards"), "{summary}");

    // One archive holds the merged results, the report with its charts, and every shard's
    // results, byte for byte.
    let names = archive_names(&dir.path().join("results/run-1/run-1.tar.gz"));
    let size_of = |name: &str| {
        names
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} is not in the archive: {names:?}"))
            .1
    };
    assert_eq!(
        size_of("run-1/merged.json"),
        std::fs::metadata(dir.path().join("results/run-1/merged.json"))
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
    for (k, folder) in std::fs::read_dir(dir.path().join("results/run-1"))
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
