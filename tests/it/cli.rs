//! The `drover` binary end to end: scenario errors with their places and exit codes, a full run
//! writing results, secrets kept out of every output, failed and interrupted runs.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{drover, text};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const GOOD_TARGET: &str = r#"[[targets]]
name = "mock"
model = "m"
[targets.mock]
ttft = "5ms"
itl = "1ms"
output_tokens = 4
"#;

const GOOD_CLASS: &str = r#"[[classes]]
name = "c"
input_tokens = 8
"#;

const GOOD_LOAD: &str = r#"[load]
kind = "closed"
users = 2
requests = 10
"#;

/// Every file below `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).unwrap();
}

/// Each malformed scenario, the exact place its error must name, and words of the message.
#[test]
fn malformed_scenarios_name_file_line_column_and_exit_2() {
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "bad type",
            format!("{GOOD_TARGET}{GOOD_CLASS}[load]\nkind = \"open\"\nrate = \"fast\"\nduration = \"2s\"\n"),
            "s.toml:13:8:",
            "invalid type",
        ),
        (
            "unknown key",
            format!("{GOOD_TARGET}{GOOD_CLASS}{GOOD_LOAD}concurency = 4\n"),
            "s.toml:15:1:",
            "unknown field `concurency`",
        ),
        (
            "negative rate",
            format!("{GOOD_TARGET}{GOOD_CLASS}[load]\nkind = \"open\"\nrate = -5\nduration = \"2s\"\n"),
            "s.toml:13:8:",
            "load.rate must be from 0.0001 to 1000000",
        ),
        (
            "missing target",
            format!("{GOOD_CLASS}{GOOD_LOAD}"),
            "s.toml:1:1:",
            "targets is missing",
        ),
        (
            "unreadable dataset",
            format!("{GOOD_TARGET}[[classes]]\nname = \"d\"\ndataset = \"no-such.jsonl\"\n{GOOD_LOAD}"),
            "s.toml:10:11:",
            "cannot read dataset",
        ),
        (
            "empty mix",
            format!("{GOOD_TARGET}{GOOD_LOAD}"),
            "s.toml:1:1:",
            "classes is empty",
        ),
        (
            "bad duration",
            format!("{GOOD_TARGET}{GOOD_CLASS}[load]\nkind = \"open\"\nrate = 5\nduration = \"10 parsecs\"\n"),
            "s.toml:14:12:",
            "invalid duration",
        ),
        (
            "toml syntax",
            format!("{GOOD_TARGET}{GOOD_CLASS}[load\n"),
            "s.toml:11:",
            "",
        ),
        (
            "closed loop without users",
            format!("{GOOD_TARGET}{GOOD_CLASS}[load]\nkind = \"closed\"\nrequests = 3\n"),
            "s.toml:11:1:",
            "needs users",
        ),
        (
            "bad dataset record",
            format!("{GOOD_TARGET}[[classes]]\nname = \"d\"\ndataset = \"bad.jsonl\"\n{GOOD_LOAD}"),
            "s.toml:10:11:",
            "bad.jsonl:2: record has no \"messages\" array",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "bad.jsonl",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n{\"prompt\":\"x\"}\n",
    );
    for (name, scenario, place, words) in cases {
        write(dir.path(), "s.toml", &scenario);
        for command in ["validate", "run"] {
            let output = drover(dir.path(), &[command, "s.toml"], &[]);
            let stderr = text(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{name} ({command}): {stderr}"
            );
            assert!(
                stderr.contains(place) && stderr.contains(words),
                "{name} ({command}): expected {place} … {words}, got:\n{stderr}"
            );
            assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        }
    }
}

/// A key variable that is not set: `run` refuses the file at its place; `validate` (which sends
/// nothing) passes it with a warning; an embedded mock runs without the key.
#[test]
fn an_unset_key_variable_stops_a_run_but_only_warns_in_validate() {
    let dir = tempfile::tempdir().unwrap();
    let real = "[[targets]]\nname = \"real\"\nmodel = \"m\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key_env = \"DROVER_TEST_SURELY_UNSET\"\n";
    write(
        dir.path(),
        "s.toml",
        &format!("{real}{GOOD_CLASS}{GOOD_LOAD}"),
    );
    let run = drover(dir.path(), &["run", "s.toml"], &[]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("s.toml:5:15:")
            && stderr.contains("environment variable DROVER_TEST_SURELY_UNSET is not set"),
        "{stderr}"
    );
    let validate = drover(dir.path(), &["validate", "s.toml"], &[]);
    let stderr = text(&validate.stderr);
    assert_eq!(validate.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: environment variable DROVER_TEST_SURELY_UNSET is not set"),
        "{stderr}"
    );
    let mock = GOOD_TARGET.replace(
        "model = \"m\"\n",
        "model = \"m\"\napi_key_env = \"DROVER_TEST_SURELY_UNSET\"\n",
    );
    write(
        dir.path(),
        "s.toml",
        &format!("{mock}{GOOD_CLASS}{GOOD_LOAD}"),
    );
    let output = common::run_s_toml(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

#[test]
fn a_good_scenario_validates_and_describes_itself() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s.toml",
        &format!("{GOOD_TARGET}{GOOD_CLASS}{GOOD_LOAD}"),
    );
    let output = drover(dir.path(), &["validate", "s.toml"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("ok: s.toml"));
    assert!(
        stdout.contains("closed loop, 2 concurrent users for 10 requests"),
        "{stdout}"
    );
}

#[test]
fn an_assertion_too_strict_for_the_planned_sample_is_named_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        r#"
name = "small"
[[targets]]
name = "mock"
model = "m"
[targets.mock]
ttft = "5ms"
[[classes]]
name = "chat"
weight = 3
input_tokens = 16
[[classes]]
name = "long"
weight = 1
input_tokens = 64
[load]
kind = "closed"
users = 4
requests = 400
[slo]
assert = ["error_rate < 1%", "mock/long: ttft.p99 < 1s", "ttft.p50 < 1s"]
"#,
    )
    .unwrap();
    let output = drover(dir.path(), &["validate", "s.toml"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let said = text(&output.stdout);
    // 400 requests are enough for the error rate (381) and the median; the class "long" gets
    // about 100 of them, and a p99 needs 368.
    assert!(!said.contains("\"error_rate < 1%\" cannot pass"), "{said}");
    assert!(!said.contains("\"ttft.p50 < 1s\" cannot pass"), "{said}");
    assert!(
        said.contains("warning: slo \"mock/long: ttft.p99 < 1s\" cannot pass on the ~100 measured requests planned: a pass at 95% confidence needs at least 368"),
        "{said}"
    );
}

#[test]
fn the_shipped_scenarios_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(root.join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = format!("scenarios/{}", path.file_name().unwrap().to_string_lossy());
        let output = drover(
            root,
            &["validate", &name],
            &[("OPENAI_API_KEY", "sk-placeholder-for-validation")],
        );
        assert_eq!(
            output.status.code(),
            Some(0),
            "{name}: {}",
            text(&output.stderr)
        );
        // Every SLO assertion can be decided (can pass) at the scenario's planned size.
        let said = text(&output.stdout);
        assert!(!said.contains("cannot pass"), "{name}: {said}");
        assert!(!said.contains("cannot decide"), "{name}: {said}");
        checked.push(name);
    }
    checked.sort();
    // One example per workload kind, besides the first scenarios.
    for name in [
        "quickstart",
        "batch-vs-stream",
        "openai-compatible",
        "datasets",
        "exact-lengths",
        "prompt-cache",
        "multi-turn",
        "trace-replay",
        "migration",
        "own-tokenizer",
        "images",
        "tools",
    ] {
        assert!(
            checked.contains(&format!("scenarios/{name}.toml")),
            "{name} missing from {checked:?}"
        );
    }
}

#[test]
fn run_prints_a_summary_and_writes_versioned_results() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s.toml",
        &format!("{GOOD_TARGET}{GOOD_CLASS}{GOOD_LOAD}"),
    );
    let output = drover(dir.path(), &["run", "s.toml", "--out", "out"], &[]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        stdout.contains("TTFT p50") && stdout.contains("10/10"),
        "{stdout}"
    );
    let folders: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    let folder = &folders[0];
    let name = folder.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("s-2"), "{name}");
    assert!(
        stdout.contains(&format!("results: out/{name}/results.json")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("report: out/{name}/report.html")),
        "{stdout}"
    );
    for file in [
        "summary.md",
        "report.html",
        "charts/ttft-percentiles.svg",
        "charts/ttft-percentiles.png",
    ] {
        assert!(folder.join(file).is_file(), "{file} missing");
    }
    let files = [folder.join("results.json")];
    let results: drover::results::RunResults =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(results.schema, "drover.results/v1");
    let summary = &results.targets[0].summary;
    assert_eq!(summary.requests.succeeded, 10);
    let ttft = drover::metrics::decode_histogram(&summary.histograms["ttft"]).unwrap();
    assert_eq!(ttft.len(), 10);
    assert_eq!(results.targets[0].classes[0].name, "c");
    assert!(!results.targets[0].series.is_empty());
}

#[tokio::test]
async fn the_api_key_appears_in_no_output() {
    const KEY: &str = "sk-drover-test-9f8e7d6c5b4a";
    // One server accepts the key; the other rejects it and echoes it back, as some providers do.
    let accepting = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("you sent {KEY}")},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2}
        })))
        .mount(&accepting)
        .await;
    let echoing = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": {"message": format!("Incorrect API key provided: {KEY}"), "type": "invalid_request_error"}
        })))
        .mount(&echoing)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        r#"
[[targets]]
name = "accepting"
base_url = "{}/v1"
model = "m"
mode = "complete"
api_key_env = "DROVER_TEST_KEY"

[[targets]]
name = "echoing"
base_url = "{}/v1"
model = "m"
api_key_env = "DROVER_TEST_KEY"
headers = {{ "x-api-key" = "{KEY}" }}

[[classes]]
name = "c"
input_tokens = 4

[load]
kind = "closed"
users = 1
requests = 3
"#,
        accepting.uri(),
        echoing.uri()
    );
    write(dir.path(), "s.toml", &scenario);
    let run_dir = dir.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        drover(
            &run_dir,
            &[
                "run",
                "s.toml",
                "--out",
                "out",
                "--no-preflight",
                "--export-requests",
            ],
            &[("DROVER_TEST_KEY", KEY)],
        )
    })
    .await
    .unwrap();
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    // The echoing target failed every request, so the run is a failed run.
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stdout.contains("http_401"), "{stdout}");
    assert!(
        stdout.contains("<redacted>"),
        "the echoed key is shown redacted: {stdout}"
    );
    // The key was really used: the accepting server matched it.
    assert!(stdout.contains("accepting  (all)      3/3"), "{stdout}");
    let mut outputs = vec![
        ("stdout".to_string(), stdout),
        ("stderr".to_string(), stderr),
    ];
    for path in files_under(&dir.path().join("out")) {
        let bytes = std::fs::read(&path).unwrap();
        outputs.push((
            path.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    assert!(
        outputs.len() >= 7,
        "results, requests, summary, report and charts: {}",
        outputs.len()
    );
    // The per-request export has a line per request, errors with their (scrubbed) messages.
    let (_, export) = outputs
        .iter()
        .find(|(name, _)| name.ends_with("requests.jsonl"))
        .expect("--export-requests writes requests.jsonl");
    let lines: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    let outcomes = |target: &str, outcome: &str| {
        lines
            .iter()
            .filter(|l| l["target"] == target && l["outcome"] == outcome)
            .count()
    };
    assert_eq!(
        (outcomes("accepting", "ok"), outcomes("echoing", "http_401")),
        (3, 3)
    );
    for (name, content) in outputs {
        assert!(
            !content.contains(KEY),
            "{name} contains the key:\n{content}"
        );
        assert!(
            !content.contains("9f8e7d6c5b4a"),
            "{name} contains part of the key"
        );
    }
}

#[test]
fn a_run_where_every_request_fails_exits_3() {
    // A port that was just free: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s.toml",
        &format!(
            "[[targets]]\nname = \"down\"\nmodel = \"m\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n{GOOD_CLASS}{GOOD_LOAD}"
        ),
    );
    // Preflight finds the endpoint down and sends no load.
    let output = drover(dir.path(), &["run", "s.toml", "--out", "out"], &[]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
    assert!(text(&output.stderr)
        .contains("error: preflight: target \"down\": the preflight request failed (connect:"));
    assert!(!dir.path().join("out").exists());
    // Without preflight, the run is made and fails as a whole.
    let output = drover(
        dir.path(),
        &["run", "s.toml", "--out", "out", "--no-preflight"],
        &[],
    );
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    assert!(stdout.contains("connect x10"), "{stdout}");
    assert!(text(&output.stderr).contains("completed no request successfully"));
    assert_eq!(
        std::fs::read_dir(dir.path().join("out")).unwrap().count(),
        1
    );
}

#[cfg(unix)]
#[test]
fn an_interrupted_run_writes_what_it_measured_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s.toml",
        &format!(
            "{GOOD_TARGET}{GOOD_CLASS}[load]\nkind = \"open\"\nrate = 20\nduration = \"60s\"\n"
        ),
    );
    let child = std::process::Command::new(common::drover_bin())
        .current_dir(dir.path())
        .args(["run", "s.toml", "--out", "out", "--no-progress"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("INTERRUPTED"));
    let file = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("results.json");
    let results: drover::results::RunResults =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(results.status, drover::results::RunStatus::Interrupted);
    let done = results.targets[0].summary.requests.succeeded;
    assert!(
        (15..=40).contains(&done),
        "{done} requests in ~1.5 s at 20/s"
    );
    assert!(results.duration_s < 10.0);
}

#[test]
fn run_shows_live_progress_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s.toml",
        &format!(
            "{GOOD_TARGET}{GOOD_CLASS}[load]\nkind = \"open\"\nrate = 10\nduration = \"2500ms\"\n"
        ),
    );
    let output = drover(dir.path(), &["run", "s.toml", "--out", "out"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let stderr = text(&output.stderr);
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("  mock: done "))
        .collect();
    assert!(progress.len() >= 2, "{stderr}");
    assert!(progress
        .iter()
        .all(|l| l.contains("req/s") && l.contains("failed 0")));
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("TTFT p50/p99") && !l.contains("TTFT p50/p99 - ")),
        "{stderr}"
    );
    // The summary goes to stdout only.
    assert!(!stderr.contains("ok/sent"));
}

#[tokio::test]
async fn preflight_stops_a_wrong_key_at_once_naming_the_variable() {
    const KEY: &str = "sk-preflight-wrong-1234567890";
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": {"message": format!("Incorrect API key provided: {KEY}"), "type": "invalid_request_error"}
        })))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s.toml",
        &format!(
            "[[targets]]\nname = \"relay\"\nmodel = \"m\"\nbase_url = \"{}/v1\"\napi_key_env = \"RELAY_KEY\"\n{GOOD_CLASS}[load]\nkind = \"open\"\nrate = 50\nduration = \"30s\"\n",
            server.uri()
        ),
    );
    let run_dir = dir.path().to_path_buf();
    let started = std::time::Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        drover(
            &run_dir,
            &["run", "s.toml", "--out", "out"],
            &[("RELAY_KEY", KEY)],
        )
    })
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("target \"relay\": the endpoint rejected the API key read from RELAY_KEY"),
        "{stderr}"
    );
    assert!(!stderr.contains(KEY) && !text(&output.stdout).contains(KEY));
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "no load was sent"
    );
}

#[tokio::test]
async fn preflight_lists_the_models_when_the_model_is_unknown() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!({
            "error": {"message": "The model `gpt-9` does not exist or you do not have access to it.", "type": "invalid_request_error", "code": "model_not_found"}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "object": "list",
            "data": [{"id": "gpt-4o-mini", "object": "model"}, {"id": "gpt-4o", "object": "model"}]
        })))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s.toml",
        &format!(
            "[[targets]]\nname = \"relay\"\nmodel = \"gpt-9\"\nbase_url = \"{}/v1\"\n{GOOD_CLASS}{GOOD_LOAD}",
            server.uri()
        ),
    );
    let run_dir = dir.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || drover(&run_dir, &["run", "s.toml"], &[]))
        .await
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("model \"gpt-9\" is not served"), "{stderr}");
    assert!(
        stderr.contains("The endpoint serves: gpt-4o-mini, gpt-4o."),
        "{stderr}"
    );
    assert!(stderr.contains("model_map"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn a_second_interrupt_exits_at_once_leaving_a_valid_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // Responses take 3 s, so the first interrupt's grace period is still running at the second.
    write(
        dir.path(),
        "s.toml",
        &format!(
            "{}{GOOD_CLASS}[load]\nkind = \"open\"\nrate = 5\nduration = \"60s\"\n",
            GOOD_TARGET.replace("ttft = \"5ms\"", "ttft = \"3s\"")
        ),
    );
    let child = std::process::Command::new(common::drover_bin())
        .current_dir(dir.path())
        .args([
            "run",
            "s.toml",
            "--out",
            "out",
            "--no-progress",
            "--checkpoint-every",
            "1s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let interrupt = |pid: u32| {
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    std::thread::sleep(Duration::from_millis(1500));
    interrupt(child.id());
    std::thread::sleep(Duration::from_millis(300));
    let second = std::time::Instant::now();
    interrupt(child.id());
    let output = child.wait_with_output().unwrap();
    assert!(
        second.elapsed() < Duration::from_secs(2),
        "{:?}",
        second.elapsed()
    );
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("second interrupt: exiting now"));
    let folder = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let results: drover::results::RunResults =
        serde_json::from_str(&std::fs::read_to_string(folder.join("results.json")).unwrap())
            .unwrap();
    // What finished before the second interrupt was written, as an interrupted run.
    assert_eq!(results.status, drover::results::RunStatus::Interrupted);
    assert_eq!(results.targets[0].name, "mock");
}

#[test]
fn calibrate_prints_the_floor_and_the_mock_precision() {
    let dir = tempfile::tempdir().unwrap();
    let output = drover(
        dir.path(),
        &[
            "calibrate",
            "--rates",
            "50,200",
            "--duration",
            "1s",
            "--streams",
            "25",
        ],
        &[],
    );
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    for line in [
        "harness floor: open loop against an embedded mock with zero configured delay",
        "at 50 req/s this machine adds",
        "at 200 req/s this machine adds",
        "cannot be resolved on this machine at this rate",
        "mock precision: configured TTFT 50 ms and inter-token delay 10 ms",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from {stdout}");
    }
    // One row per rate (45 and 180 measured after the warm-up tenth) and per stream count.
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    assert!(
        rows[0].split_whitespace().nth(1) == Some("45"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].split_whitespace().nth(1) == Some("180"),
        "{}",
        rows[1]
    );
    let bad = drover(dir.path(), &["calibrate", "--rates", "0"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("is not a rate between 0 and 100,000"));
}

/// `drover run --help` prints the one exit-code table of the binary (`cli/exit.rs`), and README's
/// "Exit codes" table lists exactly the same codes.
#[test]
fn run_help_and_readme_list_the_same_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let help = common::drover(dir.path(), &["run", "--help"], &[]);
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let from_help: Vec<u32> = help
        .split_once("Exit codes:")
        .expect("run --help has an exit-code table")
        .1
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split_once("### Exit codes")
        .expect("README has an exit-code section")
        .1;
    let from_readme: Vec<u32> = table
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| {
            line.trim_start_matches('|')
                .split('|')
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(from_help, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 130]);
    assert_eq!(
        from_readme, from_help,
        "README's exit codes differ from drover run --help"
    );
}

#[test]
fn the_version_and_the_results_name_the_commit_and_the_build_profile() {
    let dir = tempfile::tempdir().unwrap();
    let version = text(&drover(dir.path(), &["--version"], &[]).stdout);
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    let commit = match git {
        Ok(out) if out.status.success() => text(&out.stdout).trim().to_string(),
        _ => "unknown".to_string(),
    };
    let build = version
        .trim()
        .strip_prefix("drover ")
        .unwrap_or_else(|| panic!("{version}"));
    let expected = format!("{} (commit {commit}, ", env!("CARGO_PKG_VERSION"));
    assert!(build.starts_with(&expected), "{build} vs {expected}");
    assert!(build.ends_with(')'), "{build}");
    let output = drover(
        dir.path(),
        &[
            "run",
            "--mock",
            "--requests",
            "2",
            "--out",
            "out",
            "--no-progress",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let results = common::only_results(&dir.path().join("out"));
    assert_eq!(results["environment"]["build"], build);
}

#[test]
fn completions_and_manual_pages_are_generated_from_the_arguments() {
    let dir = tempfile::tempdir().unwrap();
    // Every flag is there, as each shell writes it (fish: `-l set`).
    for (shell, set) in [("bash", "--set"), ("zsh", "--set"), ("fish", "-l set")] {
        let output = drover(dir.path(), &["completions", shell], &[]);
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let script = text(&output.stdout);
        assert!(
            script.contains("print-scenario") && script.contains(set),
            "{shell}"
        );
    }
    // The bash script is valid bash.
    let bash = drover(dir.path(), &["completions", "bash"], &[]).stdout;
    std::fs::write(dir.path().join("drover.bash"), bash).unwrap();
    let syntax = std::process::Command::new("bash")
        .args(["-n", "drover.bash"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{}", text(&syntax.stderr));
    let unknown = drover(dir.path(), &["completions", "tcsh"], &[]);
    assert_eq!(unknown.status.code(), Some(2));

    let page = text(&drover(dir.path(), &["man"], &[]).stdout);
    assert!(page.contains(".TH drover 1"), "{page}");
    let output = drover(dir.path(), &["man", "--out", "man1"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let run_page = std::fs::read_to_string(dir.path().join("man1/drover-run.1")).unwrap();
    assert!(run_page.contains(".TH drover-run 1"), "{run_page}");
    assert!(run_page.contains("\\-\\-set"), "{run_page}");
    assert!(dir.path().join("man1/drover-validate.1").exists());
}

#[test]
fn every_commands_help_names_only_codes_of_the_one_exit_code_table() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| text(&common::drover(dir.path(), args, &[]).stdout);
    let table: Vec<u32> = help(&["run", "--help"])
        .split_once("Exit codes:")
        .unwrap()
        .1
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect();
    for command in [
        "validate",
        "report",
        "compare",
        "merge",
        "audit",
        "calibrate",
    ] {
        let text = help(&[command, "--help"]);
        let codes_text = text
            .split_once("Exit codes:")
            .unwrap_or_else(|| panic!("{command} --help lists no exit codes"))
            .1;
        // "0 ok; 2 a results file is missing, …; 3 …": the number that opens each clause.
        let codes: Vec<u32> = codes_text
            .split(';')
            .filter_map(|clause| clause.split_whitespace().next()?.parse().ok())
            .collect();
        assert!(
            codes.contains(&0) && codes.len() >= 2,
            "{command}: {codes_text}"
        );
        for code in codes {
            assert!(table.contains(&code), "{command} --help names exit code {code}, which the table of drover run --help has not");
        }
    }
}
