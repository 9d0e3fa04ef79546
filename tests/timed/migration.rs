//! Shadow traffic and phased migration, end to end from the CLI, against two embedded mocks
//! (in-process, on loopback): a primary with 40 ms TTFT and a candidate with 60 ms TTFT and 3%
//! HTTP 500s is rolled back in its shadow phase by the error-rate gate; a faster, clean candidate
//! passes four phases and is promoted. Holds the timing lock: the paired TTFT difference rests on
//! the mocks' delays. The tolerance ([18, 22] ms around the configured 20 ms) covers scheduling
//! jitter on a loaded 2-core machine; the median of per-request differences is barely moved by it
//! because both sides of a pair are sent at the same moment.

use crate::common;

use common::{drover, only_run_dir, text, TIMING_LOCK};
use serde_json::Value;

/// A four-phase rollout from "official" to "relay"; `relay_mock` is the candidate's mock table.
fn scenario(relay_mock: &str) -> String {
    scenario_with(relay_mock, "")
}

/// [`scenario`] with `migration_extra` added to its `[migration]` table.
fn scenario_with(relay_mock: &str, migration_extra: &str) -> String {
    format!(
        r#"
name = "migration-test"
seed = 11

[[targets]]
name = "official"
model = "gpt-4.1"
pricing = {{ model = "gpt-4.1" }}
[targets.mock]
ttft = "40ms"
itl = "2ms"
output_tokens = 12

[[targets]]
name = "relay"
model = "relay-gpt-4.1"
pricing = {{ model = "gpt-4.1" }}
{relay_mock}

[[classes]]
name = "chat"
weight = 3
input_tokens = 32
max_tokens = 12

[[classes]]
name = "long"
weight = 1
input_tokens = 64
max_tokens = 8

[load]
kind = "open"
rate = 60
duration = "10s"

[migration]
primary = "official"
candidate = "relay"
{migration_extra}
gates = {{ max_error_rate = 0.05, max_throttle_rate = 0.05, max_regression = {{ "ttft.p50" = 0.10, "e2e.p90" = 0.10 }}, min_agreement = 0.95, max_cost_ratio = 1.05 }}

[[migration.phases]]
name = "shadow"
share = 0
requests = 150

[[migration.phases]]
name = "canary"
share = 0.1
mirror = 0.25
requests = 120

[[migration.phases]]
name = "half"
share = 0.5
mirror = 0.25
requests = 120

[[migration.phases]]
name = "full"
share = 1.0
mirror = 0.25
requests = 120
"#
    )
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A candidate 15 ms faster than the primary, without faults.
const CLEAN_RELAY: &str = "[targets.mock]\nttft = \"25ms\"\nitl = \"2ms\"\noutput_tokens = 12";

/// What a migration run left: its stdout, its folder and `migration.json`.
struct Migration {
    _dir: tempfile::TempDir,
    stdout: String,
    run_dir: std::path::PathBuf,
    json: Value,
}

/// Runs the scenario with `relay_mock` as the candidate's mock (and `extra` arguments), checks
/// the exit code, and reads `migration.json`.
fn migrate(relay_mock: &str, extra: &[&str], exit: i32) -> Migration {
    migrate_scenario(&scenario(relay_mock), extra, exit)
}

/// [`migrate`] with the whole scenario given.
fn migrate_scenario(scenario: &str, extra: &[&str], exit: i32) -> Migration {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.toml"), scenario).unwrap();
    let mut args = vec!["run", "m.toml", "--out", "out", "--no-progress"];
    args.extend(extra);
    let output = drover(dir.path(), &args, &[]);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(exit), "{stdout}{stderr}");
    assert!(stderr.contains("projection total"), "{stderr}");
    let run_dir = only_run_dir(&dir.path().join("out"));
    let json = read_json(&run_dir.join("migration.json"));
    Migration {
        _dir: dir,
        stdout,
        run_dir,
        json,
    }
}

#[tokio::test]
async fn a_slower_failing_candidate_is_rolled_back_in_its_shadow_phase() {
    let _timing = TIMING_LOCK.lock().await;
    let relay = "[targets.mock]\nttft = \"60ms\"\nitl = \"2ms\"\noutput_tokens = 12\n[targets.mock.faults]\nhttp_500 = 0.12";
    // A failed gate exits 9.
    // `_dir` keeps the folder until the test ends.
    let Migration {
        _dir,
        stdout,
        run_dir,
        json: migration,
    } = migrate(relay, &[], 9);
    assert_eq!(migration["verdict"], "rollback", "{migration:#}");
    assert_eq!(migration["failed_phase"], "shadow");
    let gate = &migration["failed_gate"];
    assert_eq!(gate["gate"], "max_error_rate");
    assert_eq!(gate["threshold"], 0.05);
    let measured = gate["measured"].as_f64().unwrap();
    assert!((0.05..0.25).contains(&measured), "{measured}");
    // 150 requests are more than the 73 a 5% gate needs: the shadow phase ran as written.
    assert_eq!(migration["phases"][0]["extended_by"], 1.0);
    // It stops at the failed phase: later phases never ran.
    let phases = migration["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 1);
    assert_eq!(migration["phases_planned"], 4);

    // Shadow mode pairs every request: all 150 went to both sides.
    let results = read_json(&run_dir.join(phases[0]["results"].as_str().unwrap()));
    let paired = &results["paired"];
    let all = &paired["groups"][0];
    assert_eq!(all["class"], "(all)");
    assert_eq!(all["pairs"], 150, "{paired:#}");
    for target in results["targets"].as_array().unwrap() {
        assert_eq!(target["summary"]["requests"]["sent"], 150);
    }
    let failed = all["candidate"]["error_rate"].as_f64().unwrap();
    assert!((failed - measured).abs() < 1e-9);
    assert_eq!(all["primary"]["error_rate"], 0.0);
    let ttft = &all["ttft_difference_ms"];
    let median = ttft["median"].as_f64().unwrap();
    assert!(
        (18.0..=22.0).contains(&median),
        "paired TTFT difference {median} ms"
    );
    assert!(ttft["median_ci_low"].as_f64().unwrap() >= 18.0, "{ttft:#}");
    assert!(ttft["median_ci_high"].as_f64().unwrap() <= 22.0, "{ttft:#}");
    assert_eq!(ttft["candidate_faster"], 0.0);
    // Both sides answered the same text; the relay reports the model it was asked for.
    assert_eq!(all["agreement"]["exact_match_rate"], 1.0);
    assert_eq!(all["candidate"]["model_match_rate"], 1.0);
    // Per class as well as overall.
    let classes: Vec<&str> = paired["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["(all)", "chat", "long"]);
    // The phase's gates are in its results, the verdict in the summary and the report.
    assert_eq!(results["phase"]["passed"], false);
    assert!(
        stdout.contains(
            "migration verdict: rollback: phase \"shadow\" failed max_error_rate: measured"
        ),
        "{stdout}"
    );
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(html.contains("id=\"rollout\""), "no rollout section");
    assert!(
        html.contains("<title>drover migration: "),
        "not titled as a migration"
    );
    assert!(
        html.contains("Verdict: ROLLBACK"),
        "no verdict in the report"
    );
    assert!(html.contains("max_error_rate: measured"));
    assert!(run_dir.join("charts/paired-differences.svg").exists());
}

#[tokio::test]
async fn a_faster_clean_candidate_passes_every_phase_and_is_promoted() {
    let _timing = TIMING_LOCK.lock().await;
    // `_dir` keeps the folder (and the exports) until the test ends.
    let Migration {
        _dir,
        stdout,
        json: migration,
        run_dir,
    } = migrate(CLEAN_RELAY, &["--export-requests"], 0);
    assert_eq!(migration["verdict"], "promote", "{migration:#}");
    let phases = migration["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["shadow", "canary", "half", "full"]);
    for phase in phases {
        assert_eq!(phase["passed"], true, "{phase:#}");
        let gates: Vec<&str> = phase["gates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["gate"].as_str().unwrap())
            .collect();
        assert_eq!(
            gates,
            [
                "max_error_rate",
                "max_throttle_rate",
                "max_regression.e2e.p90",
                "max_regression.ttft.p50",
                "min_agreement",
                "max_cost_ratio"
            ]
        );
        let ttft = phase["ttft_difference_ms"].as_f64().unwrap();
        assert!((-17.0..=-13.0).contains(&ttft), "{phase:#}");
    }
    // Phases grow so that each side reaches its gates' minimum samples (the candidate 73
    // requests for a 5% rate, each side 36 for a p90): the canary gives the candidate 32.5% of
    // its requests, 39 of 120, so it runs more than twice its length; the shadow phase's 150
    // are enough as written.
    let extended: Vec<f64> = phases
        .iter()
        .map(|p| p["extended_by"].as_f64().unwrap())
        .collect();
    assert_eq!(extended[0], 1.0);
    assert!(extended[1] > 2.0 && extended[1] <= 4.0, "{extended:?}");
    assert!(
        extended.iter().all(|e| (1.0..=4.0).contains(e)),
        "{extended:?}"
    );
    for phase in phases {
        assert!(
            phase["candidate_requests"].as_u64().unwrap() >= 73,
            "{phase:#}"
        );
        assert!(
            phase["primary_requests"].as_u64().unwrap() >= 36,
            "{phase:#}"
        );
    }
    // The candidate's share of each phase's requests follows share and mirror: it serves
    // `share` of them and gets a copy of a quarter of the rest.
    let expected = |share: f64, requests: f64| requests * (share + (1.0 - share) * 0.25);
    for (phase, (share, growth)) in phases
        .iter()
        .zip([0.0, 0.1, 0.5, 1.0].into_iter().zip(&extended))
        .skip(1)
    {
        let requests = (120.0 * growth).ceil();
        let got = phase["candidate_requests"].as_f64().unwrap();
        let want = expected(share, requests);
        // Each request's side is a seeded draw: within 4 binomial standard deviations.
        let sd = (requests * 0.25 * 0.75_f64).sqrt();
        assert!((got - want).abs() <= 4.0 * sd, "{got} vs {want}: {phase:#}");
    }
    assert_eq!(
        phases[3]["candidate_requests"].as_f64().unwrap(),
        (120.0 * extended[3]).ceil()
    );
    // --export-requests writes each phase's requests, both sides of every pair: a pair is a
    // request index with a line for each target.
    for phase in phases {
        let results = run_dir.join(phase["results"].as_str().unwrap());
        let log = std::fs::read_to_string(results.parent().unwrap().join("requests.jsonl"))
            .unwrap_or_else(|e| panic!("{}: {e}", results.display()));
        let mut sides: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
        for line in log.lines() {
            let line: Value = serde_json::from_str(line).unwrap();
            if line["warmup"] == true {
                continue;
            }
            sides
                .entry(line["request"].as_u64().unwrap())
                .or_default()
                .push(line["target"].as_str().unwrap().to_string());
        }
        let pairs = sides.values().filter(|s| s.len() == 2).count() as u64;
        assert_eq!(pairs, phase["pairs"].as_u64().unwrap(), "{phase:#}");
        let lines = |target: &str| {
            sides
                .values()
                .filter(|s| s.iter().any(|t| t == target))
                .count() as u64
        };
        assert_eq!(
            lines("relay"),
            phase["candidate_requests"].as_u64().unwrap()
        );
        assert_eq!(
            lines("official"),
            phase["primary_requests"].as_u64().unwrap()
        );
    }
    assert!(stdout.contains("migration verdict: promote: all 4 phases passed their gates"));
}

#[tokio::test]
async fn a_budget_covers_every_phase_and_stops_the_rollout_without_a_verdict() {
    let _timing = TIMING_LOCK.lock().await;
    // The whole migration is projected at 0.139 USD and the shadow phase costs about 0.051:
    // 0.06 lets the first phase finish and runs out in the second.
    let Migration {
        _dir,
        run_dir,
        json: migration,
        ..
    } = migrate(CLEAN_RELAY, &["--budget", "0.06", "--allow-over-budget"], 6);
    assert_eq!(migration["verdict"], "budget_exhausted", "{migration:#}");
    let phases = migration["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2, "{migration:#}");
    let spent: f64 = phases
        .iter()
        .map(|phase| {
            let results = read_json(&run_dir.join(phase["results"].as_str().unwrap()));
            results["spend"]["total"].as_f64().unwrap()
        })
        .sum();
    // Spend stops at the cap, give or take the requests in flight when it was reached.
    assert!(spent <= 0.06 + 0.002, "spent {spent}");
    assert!(spent >= 0.055, "spent {spent}");
}

#[tokio::test]
async fn a_gate_on_too_few_requests_is_insufficient_and_holds_the_rollout() {
    let _timing = TIMING_LOCK.lock().await;
    // A shadow phase of 400 requests, then the full phase keeping 5% on the primary: about 6
    // of its 120 requests, and extend_up_to = 1 forbids growing it. A p99 of 6 requests is not
    // a p99 (368 are needed per side): the gate is insufficient, never a pass.
    let scenario = scenario_with(CLEAN_RELAY, "extend_up_to = 1")
        .replace(
            "max_regression = { \"ttft.p50\" = 0.10, \"e2e.p90\" = 0.10 }",
            "max_regression = { \"ttft.p99\" = 0.50 }",
        )
        .replace(
            "[[migration.phases]]\nname = \"canary\"\nshare = 0.1\nmirror = 0.25\nrequests = 120\n\n",
            "",
        )
        .replace(
            "[[migration.phases]]\nname = \"half\"\nshare = 0.5\nmirror = 0.25\nrequests = 120\n\n",
            "",
        )
        .replace(
            "share = 1.0\nmirror = 0.25\nrequests = 120",
            "share = 1.0\nmirror = 0.05\nrequests = 120",
        )
        .replacen("share = 0\nrequests = 150", "share = 0\nrequests = 400", 1);
    assert!(!scenario.contains("canary") && scenario.contains("mirror = 0.05"));
    let Migration {
        stdout,
        json: migration,
        ..
    } = migrate_scenario(&scenario, &[], 11);
    assert_eq!(migration["verdict"], "insufficient", "{migration:#}");
    let phases = migration["phases"].as_array().unwrap();
    // The shadow phase (400 requests to both sides) decides every gate and passes.
    assert_eq!(phases.len(), 2, "{migration:#}");
    assert_eq!(phases[0]["passed"], true, "{:#}", phases[0]);
    assert_eq!(migration["failed_phase"], "full");
    let full = &phases[1];
    let primary = full["primary_requests"].as_u64().unwrap();
    assert!((1..=20).contains(&primary), "{full:#}");
    assert_eq!(full["passed"], false);
    let gate = &migration["failed_gate"];
    assert_eq!(gate["gate"], "max_regression.ttft.p99", "{gate:#}");
    assert_eq!(gate["insufficient"], true, "{gate:#}");
    assert_eq!(gate["passed"], false);
    assert_eq!(gate["samples_needed"], 368);
    // The candidate's 120 requests are enough for its 5% error gate (73), which is decided.
    let error_gate = full["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == "max_error_rate")
        .unwrap();
    assert_eq!(error_gate["passed"], true, "{error_gate:#}");
    assert!(
        stdout.contains("migration verdict: insufficient: phase \"full\" ran 1.0x its length (extend_up_to 1) and still could not decide"),
        "{stdout}"
    );
    assert!(
        stdout.contains("INSUFFICIENT max_regression.ttft.p99: insufficient sample"),
        "{stdout}"
    );
}

#[test]
fn a_migration_refuses_to_be_sharded() {
    let _serial = common::TIMING_LOCK.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.toml"), scenario("[targets.mock]")).unwrap();
    let output = drover(
        dir.path(),
        &["run", "m.toml", "--out", "out", "--shard", "1/2"],
        &[],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "a [migration] or [sweep] decides after each phase or step, so it runs on one machine"
        ),
        "{stderr}"
    );
    assert!(!dir.path().join("out").exists());
}
