//! The cluster, simulated on one machine: a standalone mock on loopback, four `drover run --shard
//! k/4` worker processes started together with `--start-at`, then `drover merge`. The merged
//! results must add up to what the unsharded scenario asks for.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use drover::metrics::decode_histogram;
use drover::mock::{self, LatencyModel, MockConfig, MockOptions};
use drover::results::RunResults;

use common::{drover, drover_bin, text};

const SHARDS: u32 = 4;
/// Offered rate and duration of the whole scenario: 40 req/s × 3 s = 120 requests.
const RATE: f64 = 40.0;
const SECONDS: f64 = 3.0;

fn read(path: &Path) -> RunResults {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn results_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path().join("results.json");
            path.exists().then_some(path)
        })
        .collect();
    files.sort();
    files
}

/// Starts `count` worker processes of `drover <run> --shard k/count --start-at <start_at>` in
/// `dir` together, as a cluster would, and waits for them all.
fn run_shards(dir: &Path, run: &[&str], count: u32, start_at: &str) -> Vec<std::process::Output> {
    let workers: Vec<_> = (0..count)
        .map(|k| {
            Command::new(drover_bin())
                .current_dir(dir)
                .args(run)
                .args(["--shard", &format!("{k}/{count}"), "--start-at", start_at])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    workers
        .into_iter()
        .map(|worker| worker.wait_with_output().unwrap())
        .collect()
}

#[test]
fn four_worker_processes_merge_into_the_single_scenario() {
    let _lock = common::TIMING_LOCK.blocking_lock();
    let server = mock::start(
        MockConfig {
            ttft: LatencyModel::Fixed(Duration::from_millis(5)),
            itl: LatencyModel::Fixed(Duration::from_millis(1)),
            output_tokens: 8,
            ..MockConfig::default()
        },
        MockOptions::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dataset: String = (0..40)
        .map(|i| format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"question {i}\"}}]}}\n"))
        .collect();
    std::fs::write(dir.path().join("prompts.jsonl"), dataset).unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        format!(
            r#"
name = "cluster"
seed = 7
[[targets]]
name = "standalone"
base_url = "{}"
model = "mock-llm"
mode = "stream"
[[classes]]
name = "chat"
dataset = "prompts.jsonl"
max_tokens = 8
[load]
kind = "open"
arrival = "constant"
rate = {RATE}
duration = "{SECONDS}s"
"#,
            server.base_url()
        ),
    )
    .unwrap();

    // All four workers begin at the same wall-clock moment, as on a cluster.
    let start_at =
        humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(2)).to_string();
    let run = [
        "run",
        "s.toml",
        "--no-progress",
        "--no-preflight",
        "--out",
        "out",
    ];
    for output in run_shards(dir.path(), &run, SHARDS, &start_at) {
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
    }
    let files = results_files(&dir.path().join("out"));
    assert_eq!(files.len(), SHARDS as usize, "{files:?}");
    let shards: Vec<RunResults> = files.iter().map(|f| read(f)).collect();

    // The folder the workers wrote into stands for all their results files (as on a cluster's
    // shared volume).
    let output = drover(dir.path(), &["merge", "out", "-o", "merged.json"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("merged 4 of 4 shards"));
    let merged = read(&dir.path().join("merged.json"));

    // The whole scenario: rate × duration requests, all of them served once.
    let expected = (RATE * SECONDS) as u64;
    let total = &merged.targets[0].summary;
    assert_eq!(total.requests.sent, expected);
    assert_eq!(total.requests.succeeded, expected);
    assert_eq!(server.completions_served(), expected);
    // Each shard sent its quarter, at a quarter of the rate. A shard's rate is its requests over
    // its run's duration: from the common start to its last response, ~2.95–3.0 s (the last
    // arrival of 120 at 40/s is due at 2.975 s), so each is about 10.1–10.3/s; a worker that
    // starts late on a busy machine makes its own a little lower. 10% either way covers both.
    let info = merged.merged.as_ref().unwrap();
    assert_eq!(info.present, vec![0, 1, 2, 3]);
    assert!(info.missing.is_empty());
    let mut rate_sum = 0.0;
    for shard in &info.shards {
        assert_eq!(shard.targets[0].sent, expected / u64::from(SHARDS));
        rate_sum += shard.targets[0].sent_per_s;
    }
    assert!(
        (rate_sum - RATE).abs() < RATE * 0.1,
        "shard rates add up to {rate_sum}"
    );
    // Histogram totals add up, and the merged histogram is the sum of the shards' histograms.
    for metric in ["ttft", "e2e", "itl", "schedule_lag"] {
        let mut sum = drover::metrics::new_histogram();
        for shard in &shards {
            let part = decode_histogram(&shard.targets[0].summary.histograms[metric]).unwrap();
            sum.add(&part).unwrap();
        }
        let merged_histogram = decode_histogram(&total.histograms[metric]).unwrap();
        assert_eq!(merged_histogram, sum, "{metric}");
        assert_eq!(total.latency_ms[metric].count, sum.len());
    }
    assert_eq!(total.latency_ms["e2e"].count, expected);
    // The series lines up by wall-clock second: every completion is in it exactly once.
    let series = &merged.targets[0].series;
    assert_eq!(series.iter().map(|p| p.completed).sum::<u64>(), expected);
    // Each shard records its identity and drew prompts from its own seed.
    let seeds: Vec<u64> = shards
        .iter()
        .map(|s| s.shard.as_ref().unwrap().seed)
        .collect();
    assert_eq!(
        seeds
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        4
    );
}

fn scenario(name: &str) -> String {
    format!(
        "name = \"{name}\"\n[[targets]]\nname = \"t\"\nmodel = \"m\"\n[targets.mock]\nttft = \"1ms\"\n\
         itl = \"1ms\"\noutput_tokens = 4\n[[classes]]\nname = \"c\"\ninput_tokens = 8\n\
         [load]\nkind = \"closed\"\nusers = 2\nrequests = 6\n"
    )
}

#[test]
fn merge_refuses_other_scenarios_and_reports_missing_shards() {
    // Not timing-sensitive itself, but its runs would load the cores under the simulation.
    let _lock = common::TIMING_LOCK.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    std::fs::write(path.join("a.toml"), scenario("a")).unwrap();
    std::fs::write(path.join("b.toml"), scenario("b")).unwrap();
    let run = |file: &str, out: &str, shard: Option<&str>, env: &[(&str, &str)]| {
        let mut args = vec!["run", file, "--no-progress", "--out", out];
        if let Some(shard) = shard {
            args.extend(["--shard", shard]);
        }
        let output = drover(path, &args, env);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        results_files(&path.join(out)).pop().unwrap()
    };
    let a0 = run("a.toml", "a0", Some("0/2"), &[]);
    // The Kubernetes way: the index from JOB_COMPLETION_INDEX, the count from DROVER_SHARD_COUNT.
    let a1 = run(
        "a.toml",
        "a1",
        None,
        &[("JOB_COMPLETION_INDEX", "1"), ("DROVER_SHARD_COUNT", "2")],
    );
    let b1 = run("b.toml", "b1", Some("1/2"), &[]);
    assert_eq!(read(&a1).shard.unwrap().index, 1);
    assert!(a1.display().to_string().contains("-shard-1-of-2"));

    let merge = |inputs: &[&Path], extra: &[&str]| {
        let mut args = vec!["merge".to_string()];
        args.extend(inputs.iter().map(|p| p.display().to_string()));
        args.extend(["-o".into(), "m.json".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        drover(path, &args, &[])
    };
    let output = merge(&[&a0, &b1], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("the scenario differs") && stderr.contains("\"b\" vs \"a\""),
        "{stderr}"
    );

    let output = merge(&[&a0], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("merged 1 of 2 shards; MISSING shard(s) 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 of 2 shards missing (index 1)"),
        "{stdout}"
    );
    let merged = read(&path.join("m.json"));
    assert_eq!(merged.merged.unwrap().missing, vec![1]);
    assert_eq!(merged.targets[0].summary.requests.sent, 3);
    let output = merge(&[&a0], &["--require-all"]);
    assert_eq!(output.status.code(), Some(3));

    let output = merge(&[&a0, &a1], &[]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        read(&path.join("m.json")).targets[0].summary.requests.sent,
        6
    );
    // A merged file is a results file like any other.
    let output = drover(path, &["report", "m.json", "--out", "rep"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    let output = drover(path, &["run", "a.toml", "--shard", "2/2"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("0-based"));
    let output = drover(path, &["run", "a.toml", "--shard", "0/3"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("load.users = 2 cannot be split over 3 shards"));
}

/// The SLO verdicts of a results file, assertion by assertion: (assertion, verdict, samples).
fn slo_verdicts(results: &RunResults) -> Vec<(String, String, u64)> {
    let slo = results
        .slo
        .as_ref()
        .expect("the results carry SLO verdicts");
    slo.assertions
        .iter()
        .map(|a| (a.assertion.clone(), a.verdict.name().to_string(), a.samples))
        .collect()
}

#[test]
fn merged_shards_decide_the_slos_as_the_unsharded_run_does() {
    let _lock = common::TIMING_LOCK.blocking_lock();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scenario = root.join("scenarios/ttft-claim.toml");
    let scenario = scenario.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Unsharded: the p99 claim fails (the mock's TTFT is 45 ± 5 ms, normal: p99 about 57 ms),
    // the median, error-rate and goodput claims pass, so the run exits 7.
    let whole = drover(
        dir.path(),
        &["run", scenario, "--no-progress", "--out", "whole"],
        &[],
    );
    assert_eq!(whole.status.code(), Some(7), "{}", text(&whole.stderr));
    let whole_files = results_files(&dir.path().join("whole"));
    let whole_results = read(&whole_files[0]);
    let expected = slo_verdicts(&whole_results);
    assert_eq!(
        expected
            .iter()
            .map(|(a, v, _)| (a.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        [
            ("ttft.p50 < 50ms", "pass"),
            ("ttft.p99 < 50ms", "fail"),
            ("error_rate < 1%", "pass"),
            ("good_fraction > 50%", "pass")
        ]
    );
    // One verdict block: a run with SLOs does not also say it has none.
    let summary = std::fs::read_to_string(whole_files[0].with_file_name("summary.md")).unwrap();
    assert!(summary.contains("SLO verdict: FAIL"), "{summary}");
    assert!(!summary.contains("No SLOs are defined"), "{summary}");
    let html = std::fs::read_to_string(whole_files[0].with_file_name("report.html")).unwrap();
    assert!(!html.contains("No SLOs are defined"));

    // Three workers of the same run; each decides its own third, the merge decides the whole.
    let start_at =
        humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(2)).to_string();
    // As the Kubernetes workers run: a shard's own verdict does not fail its pod.
    let run = [
        "run",
        scenario,
        "--no-progress",
        "--out",
        "shards",
        "--exit-zero-on-verdict",
    ];
    let mut said_withheld = 0;
    for output in run_shards(dir.path(), &run, 3, &start_at) {
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        said_withheld += usize::from(stderr.contains(
            "exit code 7 (an [slo] assertion failed (or was inconclusive with fail_on_inconclusive), or a sweep found no step that met them) withheld by --exit-zero-on-verdict",
        ));
    }
    let mut withheld = 0;
    for file in results_files(&dir.path().join("shards")) {
        let shard = read(&file);
        let failed = shard.slo.as_ref().unwrap().failed();
        let stdout = std::fs::read_to_string(file.with_file_name("summary.md")).unwrap();
        assert_eq!(
            stdout.contains("SLO verdict: FAIL"),
            failed,
            "the shard's verdict stays in its summary"
        );
        withheld += usize::from(failed);
    }
    assert!(
        withheld > 0,
        "a third of the run also fails its own ttft.p99 < 50ms"
    );
    assert_eq!(
        said_withheld, withheld,
        "each failing worker says what it withheld"
    );
    let output = drover(dir.path(), &["merge", "shards", "-o", "merged.json"], &[]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(7),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("SLO verdict: FAIL (3 pass, 1 fail"),
        "{stdout}"
    );
    let merged = read(&dir.path().join("merged.json"));
    let verdicts = slo_verdicts(&merged);
    // The same verdicts as the unsharded run, on the same 400 requests.
    let strip = |v: &[(String, String, u64)]| -> Vec<(String, String)> {
        v.iter().map(|(a, v, _)| (a.clone(), v.clone())).collect()
    };
    assert_eq!(strip(&verdicts), strip(&expected));
    for (assertion, _, samples) in &verdicts {
        assert_eq!(*samples, 400, "{assertion}");
    }
}
