//! drover against hostile servers, from the command line: whatever a server sends (absurd
//! headers, endless streams, echoed keys, connections closed at awkward moments), every request
//! is counted, nothing panics, no key leaks, and the exit code says what happened.

use crate::common;

use std::time::{Duration, SystemTime};

use common::hostile::{completion, response, HostileServer, Reply};
use common::{drover, only_results, only_run_dir, text};

/// A non-streamed target at `base_url` with a retry policy, 4 closed-loop users.
fn retry_scenario(base_url: &str, requests: u32, users: u32) -> String {
    format!(
        r#"
name = "hostile"

[[targets]]
name = "h"
model = "m"
mode = "complete"
base_url = "{base_url}"
retry = {{ max = 3, base = "10ms", max_backoff = "50ms", max_retry_after = "5s" }}

[[classes]]
name = "c"
input_tokens = 8
max_tokens = 4

[load]
kind = "closed"
users = {users}
requests = {requests}
"#
    )
}

/// Every 5th request answers 429 with this Retry-After (a closure of the time, for dates);
/// a request body it throttled once is answered the next time, so retries always end.
fn throttling_server(retry_after: impl Fn() -> String + Send + Sync + 'static) -> HostileServer {
    let throttled = std::sync::Mutex::new(std::collections::HashSet::new());
    HostileServer::start(move |seen| {
        if seen.number % 5 == 4 && throttled.lock().unwrap().insert(seen.body.clone()) {
            Reply::Bytes(response(
                "429 Too Many Requests",
                &[("retry-after", &retry_after())],
                r#"{"error":{"message":"slow down"}}"#,
            ))
        } else {
            Reply::Bytes(completion("ok"))
        }
    })
}

fn run_cli(dir: &std::path::Path, scenario: &str) -> std::process::Output {
    std::fs::write(dir.join("s.toml"), scenario).unwrap();
    drover(
        dir,
        &[
            "run",
            "s.toml",
            "--out",
            "out",
            "--no-progress",
            "--no-preflight",
        ],
        &[],
    )
}

#[test]
fn absurd_retry_after_values_neither_panic_nor_lose_requests() {
    for value in ["1e300", "inf", "NaN", "1e400", "-5", "soon"] {
        let server = throttling_server(move || value.to_string());
        let dir = tempfile::tempdir().unwrap();
        let output = run_cli(dir.path(), &retry_scenario(&server.base_url(), 100, 4));
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{value}: {stderr}");
        let results = only_results(&dir.path().join("out"));
        let summary = &results["targets"][0]["summary"];
        // Every request is recorded, and each 429 was retried (the value read as no wait).
        assert_eq!(summary["requests"]["sent"], 100, "{value}: {summary}");
        assert_eq!(summary["requests"]["succeeded"], 100, "{value}: {summary}");
        assert!(summary["retries"]["requests_retried"].as_u64().unwrap() >= 1);
        assert_eq!(summary["retry_after_s"], serde_json::json!([]), "{value}");
        let books = &results["targets"][0]["accounting"];
        assert_eq!(books["balanced"], true, "{value}: {books}");
        assert_eq!(books["scheduled"], 100, "{value}: {books}");
        // The results file reads back.
        let run_dir = only_run_dir(&dir.path().join("out"));
        let report = drover(
            dir.path(),
            &["report", run_dir.join("results.json").to_str().unwrap()],
            &[],
        );
        assert_eq!(report.status.code(), Some(0), "{}", text(&report.stderr));
    }
}

#[test]
fn an_http_date_retry_after_is_waited_for() {
    // Two seconds ahead, in whole seconds: the wait is more than one second.
    let server =
        throttling_server(|| httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2)));
    let dir = tempfile::tempdir().unwrap();
    let output = run_cli(dir.path(), &retry_scenario(&server.base_url(), 6, 1));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let results = only_results(&dir.path().join("out"));
    let summary = &results["targets"][0]["summary"];
    assert_eq!(summary["requests"]["succeeded"], 6, "{summary}");
    let waited = summary["latency_ms"]["retry_wait"]["min"]
        .as_f64()
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(waited >= 1000.0, "waited {waited} ms");
    // Retry waits are the server's doing, not the client's lateness.
    let lag = summary["latency_ms"]["schedule_lag"]["max"]
        .as_f64()
        .unwrap();
    assert!(lag < 500.0, "schedule lag {lag} ms");
}

#[test]
fn a_retry_after_beyond_the_policy_ends_the_request_as_throttled() {
    let server = throttling_server(|| "3600".to_string());
    let dir = tempfile::tempdir().unwrap();
    let output = run_cli(dir.path(), &retry_scenario(&server.base_url(), 10, 1));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let results = only_results(&dir.path().join("out"));
    let summary = &results["targets"][0]["summary"];
    assert_eq!(summary["requests"]["succeeded"], 8, "{summary}");
    assert_eq!(summary["errors"]["throttled"], 2, "{summary}");
    assert_eq!(
        summary["retry_after_s"],
        serde_json::json!([3600.0, 3600.0])
    );
    assert_eq!(server.requests(), 10);
}

#[test]
fn a_results_file_with_null_where_a_number_belongs_is_refused_by_name() {
    let server = HostileServer::start(|_| Reply::Bytes(completion("ok")));
    let dir = tempfile::tempdir().unwrap();
    let output = run_cli(dir.path(), &retry_scenario(&server.base_url(), 4, 1));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let path = only_run_dir(&dir.path().join("out")).join("results.json");
    let mut results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    results["targets"][0]["summary"]["latency_ms"]["e2e"]["p50"] = serde_json::Value::Null;
    std::fs::write(&path, results.to_string()).unwrap();
    let report = drover(dir.path(), &["report", path.to_str().unwrap()], &[]);
    let stderr = text(&report.stderr);
    assert_eq!(report.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("targets[0].summary.latency_ms.e2e.p50"),
        "{stderr}"
    );
}

#[test]
fn a_connection_closed_right_after_a_keep_alive_answer_loses_no_request() {
    // Every answer says nothing of closing, and the server closes the connection right after
    // it: the next request on it crosses the close.
    let server = HostileServer::start(|_| Reply::BytesThenClose(completion("ok")));
    let dir = tempfile::tempdir().unwrap();
    let scenario = retry_scenario(&server.base_url(), 50, 2).replace("retry = ", "# retry = ");
    let output = run_cli(dir.path(), &scenario);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let results = only_results(&dir.path().join("out"));
    let summary = &results["targets"][0]["summary"];
    assert_eq!(summary["requests"]["succeeded"], 50, "{summary}");
    assert_eq!(summary["requests"]["failed"], 0, "{summary}");
    // Each request was answered once: none was sent twice to a live handler.
    assert_eq!(server.requests(), 50);
}

/// A mock-target scenario whose `[load]` (and mock) take the given extra lines.
fn input_scenario(mock_extra: &str, class_extra: &str, load: &str) -> String {
    format!(
        r#"
[[targets]]
name = "m"
model = "m"
[targets.mock]
ttft = "20ms"
{mock_extra}

[[classes]]
name = "c"
{class_extra}

[load]
{load}
"#
    )
}

#[test]
fn extreme_inputs_are_refused_with_their_place_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.jsonl"),
        "{\"timestamp_ms\": 0, \"input_tokens\": 5}\n{\"timestamp_ms\": 1e300, \"input_tokens\": 5}\n",
    )
    .unwrap();
    let open = "kind = \"open\"\nrate = 5\nduration = \"10s\"";
    let cases = [
        (
            input_scenario(
                "",
                "input_tokens = 8",
                "kind = \"open\"\nrate = 1e-300\nduration = \"10s\"",
            ),
            "s.toml:15:8",
        ),
        (
            input_scenario(
                "",
                "input_tokens = 8",
                "kind = \"open\"\narrival = \"poisson\"\nrate = 1e-300\nduration = \"10s\"",
            ),
            "s.toml:16:8",
        ),
        (
            input_scenario(
                "",
                "input_tokens = 8",
                "kind = \"trace\"\ntrace = \"t.jsonl\"\nspeed = 1e-300",
            ),
            "s.toml:16:9",
        ),
        (
            input_scenario(
                "",
                "input_tokens = 8",
                "kind = \"trace\"\ntrace = \"t.jsonl\"",
            ),
            "t.jsonl:2",
        ),
        (
            input_scenario("batch_mode_speedup = 1e-300", "input_tokens = 8", open),
            "s.toml:7:22",
        ),
        (
            input_scenario("", "input_tokens = 2000000000", open),
            "s.toml:11:16",
        ),
        (
            input_scenario(
                "",
                "input_tokens = 8",
                "kind = \"closed\"\nusers = 2\nrequests = 9223372036854775807",
            ),
            "s.toml:16:12",
        ),
        (
            input_scenario(
                "",
                "input_tokens = 8",
                "kind = \"open\"\nrate = 1000\nduration = \"3650d\"",
            ),
            "s.toml:16:12",
        ),
    ];
    for (scenario, place) in cases {
        std::fs::write(dir.path().join("s.toml"), &scenario).unwrap();
        let started = std::time::Instant::now();
        let output = drover(dir.path(), &["validate", "s.toml"], &[]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{scenario}\n{stderr}");
        assert!(stderr.contains(place), "{place} in {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    // A month-long soak at 1,000 req/s (2.6 billion requests) is projected at once.
    std::fs::write(
        dir.path().join("s.toml"),
        input_scenario(
            "",
            "input_tokens = 8",
            "kind = \"open\"\nrate = 1000\nduration = \"30d\"",
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let output = drover(dir.path(), &["validate", "s.toml"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        text(&output.stderr).contains("2,592,000,000 requests")
            || text(&output.stdout).contains("2,592,000,000 requests"),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

#[test]
fn nothing_is_sent_when_the_results_cannot_be_written() {
    let server = HostileServer::start(|_| Reply::Bytes(completion("ok")));
    let dir = tempfile::tempdir().unwrap();
    let scenario = retry_scenario(&server.base_url(), 5, 1);
    std::fs::write(dir.path().join("s.toml"), &scenario).unwrap();
    // An output folder that cannot exist (preflight on: not even its request may go out).
    let output = drover(dir.path(), &["run", "s.toml", "--out", "/dev/null/x"], &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    // A scenario name too long for a folder name.
    let long = scenario.replace(
        "name = \"hostile\"",
        &format!("name = \"{}\"", "n".repeat(240)),
    );
    std::fs::write(dir.path().join("long.toml"), long).unwrap();
    let output = drover(dir.path(), &["run", "long.toml", "--out", "out"], &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_eq!(server.requests(), 0);
}

/// `drover run s.toml --out out --no-progress` in `dir`, with `extra` flags, in a child whose
/// file-descriptor limit (soft and hard) is `limit`.
fn run_under_descriptor_limit(
    dir: &std::path::Path,
    limit: libc::rlim_t,
    extra: &[&str],
) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(common::drover_bin());
    command
        .current_dir(dir)
        .args(["run", "s.toml", "--out", "out", "--no-progress"])
        .args(extra);
    // SAFETY: setrlimit is async-signal-safe; it only lowers this child's own limit.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            Ok(())
        });
    }
    command.output().unwrap()
}

#[test]
fn running_out_of_descriptors_is_drovers_shortage_not_the_endpoints() {
    let server =
        HostileServer::start(|_| Reply::Later(Duration::from_millis(1500), completion("ok")));
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        r#"
[[targets]]
name = "h"
model = "m"
mode = "complete"
base_url = "{}"

[[classes]]
name = "c"
input_tokens = 8

[load]
kind = "open"
rate = 400
requests = 400
"#,
        server.base_url()
    );
    std::fs::write(dir.path().join("s.toml"), scenario).unwrap();
    let output = run_under_descriptor_limit(dir.path(), 96, &["--no-preflight"]);
    let stderr = text(&output.stderr);
    // Degraded, never a pass: the shortage is drover's.
    assert_eq!(output.status.code(), Some(10), "{stderr}");
    let results = only_results(&dir.path().join("out"));
    let summary = &results["targets"][0]["summary"];
    assert!(
        summary["errors"]["client_resources"].as_u64().unwrap_or(0) > 0,
        "{summary}"
    );
    assert!(summary["errors"].get("connect").is_none(), "{summary}");
    assert_eq!(results["status"], "degraded");
    assert_eq!(results["targets"][0]["accounting"]["balanced"], true);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("ran out of file descriptors"), "{stdout}");
}

#[test]
fn ten_thousand_users_that_cannot_fit_the_descriptor_limit_are_refused_before_any_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        input_scenario(
            "",
            "input_tokens = 8",
            "kind = \"closed\"\nusers = 10000\nduration = \"5s\"",
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let output = run_under_descriptor_limit(dir.path(), 4096, &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("20064 file descriptors"), "{stderr}");
    assert!(stderr.contains("the limit is 4096"), "{stderr}");
    assert!(!dir.path().join("out").exists(), "nothing was started");
    assert!(started.elapsed() < Duration::from_secs(2));
}

const PLANTED_KEY: &str = "sk-ZqXwVbNmKjHgFdSaPoIuYt";
const CUSTOM_SECRET: &str = "TyReWqAsZxPlMkOnJhBgVcDf";

/// Every 8-character piece of `secret` found in `text`.
fn pieces_in(text: &str, secret: &str) -> Vec<String> {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .windows(8)
        .map(|w| w.iter().collect::<String>())
        .filter(|piece| text.contains(piece.as_str()))
        .collect()
}

fn all_files_text(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(all_files_text(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            found.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    found
}

#[test]
fn a_key_echoed_at_every_offset_around_the_cut_leaks_nowhere() {
    let server = HostileServer::start(|seen| {
        let auth = seen.header("authorization").unwrap_or("").to_string();
        let custom = seen.header("x-custom-auth").unwrap_or("").to_string();
        let bare = auth
            .trim_start_matches("Bearer ")
            .trim_start_matches("sk-")
            .to_string();
        // Offsets from 250 to 329 characters: every key straddles the 300-character cut once.
        let pad = "x".repeat(250 + (seen.number as usize * 7) % 80);
        match seen.number % 4 {
            0 => Reply::Bytes(response(
                "401 Unauthorized",
                &[("content-type", "application/json")],
                &serde_json::json!({"error": {"message": format!("{pad}bad key {auth} given")}})
                    .to_string(),
            )),
            1 => Reply::Bytes(response(
                "500 Internal Server Error",
                &[("content-type", "text/plain")],
                &format!("{pad}upstream said no to {bare} and {custom} today"),
            )),
            2 => {
                let event = serde_json::json!({"error": {"message": format!("{pad}{auth}")}});
                Reply::Pieces(
                    common::hostile::sse_head("text/event-stream"),
                    Box::new(
                        vec![
                            common::hostile::sse_chunk("hi"),
                            format!("data: {event}\n\n").into_bytes(),
                        ]
                        .into_iter(),
                    ),
                )
            }
            _ => Reply::Pieces(
                common::hostile::sse_head("text/event-stream"),
                Box::new(
                    vec![
                        common::hostile::sse_chunk("hi"),
                        format!("data: {{\"broken\": \"{pad}{custom}{bare}\n\n").into_bytes(),
                    ]
                    .into_iter(),
                ),
            ),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        r#"
name = "echo"

[[targets]]
name = "h"
model = "m"
base_url = "{}"
api_key_env = "PLANTED_KEY"
headers = {{ "x-custom-auth" = "Bearer {CUSTOM_SECRET}" }}

[[classes]]
name = "c"
input_tokens = 8

[load]
kind = "closed"
users = 2
requests = 80
"#,
        server.base_url()
    );
    std::fs::write(dir.path().join("s.toml"), scenario).unwrap();
    let output = drover(
        dir.path(),
        &[
            "run",
            "s.toml",
            "--out",
            "out",
            "--no-progress",
            "--no-preflight",
            "--export-requests",
        ],
        &[("PLANTED_KEY", PLANTED_KEY)],
    );
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    // Every request failed: exit 3, with results and report written.
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    let mut texts = all_files_text(&dir.path().join("out"));
    assert!(texts.len() >= 4, "{texts:?}");
    texts.push(("stdout".into(), stdout));
    texts.push(("stderr".into(), stderr));
    for (place, content) in &texts {
        for secret in [PLANTED_KEY, CUSTOM_SECRET] {
            let leaked = pieces_in(content, secret);
            assert!(leaked.is_empty(), "{}: {leaked:?}", place.display());
        }
    }
    // The errors are still there to read, scrubbed.
    let results = only_results(&dir.path().join("out"));
    let errors = &results["targets"][0]["summary"]["errors"];
    assert_eq!(errors["http_401"], 20, "{errors}");
    assert_eq!(errors["http_500"], 20, "{errors}");
    assert_eq!(errors["protocol"], 40, "{errors}");
}

#[test]
fn media_types_are_case_insensitive() {
    let server = HostileServer::start(|_| {
        Reply::Pieces(
            common::hostile::sse_head("Text/Event-Stream; Charset=UTF-8"),
            Box::new(
                vec![
                    common::hostile::sse_chunk("hello"),
                    common::hostile::sse_chunk(" there"),
                    b"data: [DONE]\n\n".to_vec(),
                ]
                .into_iter(),
            ),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let scenario = retry_scenario(&server.base_url(), 4, 1)
        .replace("mode = \"complete\"", "mode = \"stream\"");
    let output = run_cli(dir.path(), &scenario);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let results = only_results(&dir.path().join("out"));
    assert_eq!(results["targets"][0]["summary"]["requests"]["succeeded"], 4);
}

#[test]
fn a_404_names_the_missing_v1() {
    let server = HostileServer::start(|_| {
        Reply::Bytes(response(
            "404 Not Found",
            &[("content-type", "text/plain")],
            "Not Found",
        ))
    });
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{}", server.port);
    std::fs::write(dir.path().join("s.toml"), retry_scenario(&base, 4, 1)).unwrap();
    let output = drover(
        dir.path(),
        &["run", "s.toml", "--out", "out", "--no-progress"],
        &[],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!("try base_url = \"{base}/v1\"")),
        "{stderr}"
    );
    assert!(
        !dir.path().join("out").exists()
            || std::fs::read_dir(dir.path().join("out"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        input_scenario(
            "",
            "input_tokens = 8",
            "kind = \"open\"\nrate = 5\nduration = \"10s\"",
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(common::drover_bin())
        .current_dir(dir.path())
        .args(["validate", "s.toml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader closes its end before drover writes.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

#[test]
fn audit_sums_saturate_and_a_bad_timestamp_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let huge = 10_000_000_000_000_000_000u64;
    std::fs::write(
        dir.path().join("log.jsonl"),
        format!(
            "{{\"model\":\"gpt-4.1\",\"input_tokens\":{huge},\"output_tokens\":{huge},\"timestamp\":\"2026-11-01T00:00:00Z\"}}\n\
             {{\"model\":\"gpt-4.1\",\"input_tokens\":{huge},\"output_tokens\":{huge},\"timestamp\":\"2026-11-02T00:00:00Z\"}}\n\
             {{\"model\":\"gpt-4.1\",\"input_tokens\":5,\"output_tokens\":5,\"timestamp\":\"yesterday\"}}\n"
        ),
    )
    .unwrap();
    let output = drover(dir.path(), &["audit", "log.jsonl"], &[]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{stdout}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("line 3: \"timestamp\" is not a time"),
        "{stdout}"
    );
    assert!(stdout.contains("2 priced"), "{stdout}");
}

/// A stream of `chunks` content events of " word" (one token each) and, when `usage` is given, a final usage
/// chunk claiming that many output tokens.
fn word_stream(chunks: usize, usage: Option<u64>) -> HostileServer {
    HostileServer::start(move |_| {
        let mut pieces: Vec<Vec<u8>> = (0..chunks)
            .map(|_| common::hostile::sse_chunk(" word"))
            .collect();
        if let Some(claimed) = usage {
            let chunk = serde_json::json!({
                "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [],
                "usage": {"prompt_tokens": 5, "completion_tokens": claimed,
                          "total_tokens": 5 + claimed}
            });
            pieces.push(format!("data: {chunk}\n\n").into_bytes());
        }
        pieces.push(b"data: [DONE]\n\n".to_vec());
        Reply::Pieces(
            common::hostile::sse_head("text/event-stream"),
            Box::new(pieces.into_iter()),
        )
    })
}

/// Runs 20 streamed requests capped at 32 tokens against `server`; the results and stderr.
fn token_run(server: &HostileServer) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let scenario = retry_scenario(&server.base_url(), 20, 2)
        .replace("mode = \"complete\"", "mode = \"stream\"")
        .replace("max_tokens = 4", "max_tokens = 32");
    let output = run_cli(dir.path(), &scenario);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    (
        only_results(&dir.path().join("out")),
        stderr + &text(&output.stdout),
    )
}

#[test]
fn token_counts_that_do_not_add_up_are_flagged() {
    // Honest: 10 events of " word" (10 tokens by drover's count) and usage 10, under the cap.
    let (results, said) = token_run(&word_stream(10, Some(10)));
    let check = &results["targets"][0]["summary"]["token_check"];
    assert_eq!(check["checked"], 20, "{check:#}");
    assert_eq!(check["usage_to_client"], 1.0, "{check:#}");
    assert_eq!(check["over_max_tokens"], 0);
    assert!(check.get("flags").is_none(), "{check:#}");
    assert!(
        said.contains("tokens h: the server's usage is 1.00x drover's own count"),
        "{said}"
    );
    assert!(!said.contains("token counts:"), "{said}");

    // A server claiming 99 tokens for the same 10 events: 9.9x drover's count, and over the
    // 32-token cap. Both are flagged in the results and as warnings.
    let (results, said) = token_run(&word_stream(10, Some(99)));
    let check = &results["targets"][0]["summary"]["token_check"];
    assert_eq!(check["usage_to_client"], 9.9, "{check:#}");
    assert_eq!(check["over_max_tokens"], 20);
    let flags = check["flags"].as_array().unwrap();
    assert_eq!(flags.len(), 2, "{flags:?}");
    assert!(
        said.contains("warning: target \"h\": token counts: the server's usage claims 9.90x the output tokens drover counts"),
        "{said}"
    );
    assert!(
        said.contains("20 of 20 answers counted more output tokens than their max_tokens"),
        "{said}"
    );
    let warnings = results["warnings"].as_array().unwrap();
    assert!(warnings
        .iter()
        .any(|w| w.as_str().unwrap().contains("claims 9.90x")));

    // Usage below the events streamed: 10 events, 3 tokens claimed.
    let (results, _) = token_run(&word_stream(10, Some(3)));
    let check = &results["targets"][0]["summary"]["token_check"];
    assert_eq!(check["usage_below_events"], 20, "{check:#}");

    // A reasoning model that hides its reasoning: 99 tokens claimed, 89 of them reasoning the
    // stream never showed. Not compared (drover cannot count what it was not sent).
    let hidden = HostileServer::start(|_| {
        let mut pieces: Vec<Vec<u8>> = (0..10)
            .map(|_| common::hostile::sse_chunk(" word"))
            .collect();
        let chunk = serde_json::json!({
            "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 99, "total_tokens": 104,
                      "completion_tokens_details": {"reasoning_tokens": 89}}
        });
        pieces.push(format!("data: {chunk}\n\n").into_bytes());
        pieces.push(b"data: [DONE]\n\n".to_vec());
        Reply::Pieces(
            common::hostile::sse_head("text/event-stream"),
            Box::new(pieces.into_iter()),
        )
    });
    let (results, said) = token_run(&hidden);
    let check = &results["targets"][0]["summary"]["token_check"];
    assert_eq!(check["checked"], 0, "{check:#}");
    assert!(!said.contains("claims"), "{said}");

    // No usage at all: drover's own estimate of 40 tokens exceeds the cap of 32.
    let (results, said) = token_run(&word_stream(40, None));
    let check = &results["targets"][0]["summary"]["token_check"];
    assert_eq!(check["checked"], 0, "{check:#}");
    assert_eq!(check["over_max_tokens"], 20, "{check:#}");
    assert!(
        said.contains("20 of 20 answers counted more output tokens than their max_tokens"),
        "{said}"
    );
}

#[test]
fn a_sweep_with_a_degraded_step_exits_degraded() {
    // As above: 400 requests at once against a server that answers after 1.5 s, with 96 file
    // descriptors: drover runs out, the step is degraded, and so is the sweep (exit 10).
    let server =
        HostileServer::start(|_| Reply::Later(Duration::from_millis(1500), completion("ok")));
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        r#"
[[targets]]
name = "h"
model = "m"
mode = "complete"
base_url = "{}"

[[classes]]
name = "c"
input_tokens = 8

[load]
kind = "open"
rate = 10
duration = "1s"

[slo]
assert = ["e2e.p50 < 10s"]

[sweep]
over = "rate"
values = [400]
step_duration = "1s"
"#,
        server.base_url()
    );
    std::fs::write(dir.path().join("s.toml"), scenario).unwrap();
    let output = run_under_descriptor_limit(dir.path(), 96, &["--no-preflight"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(10), "{stderr}");
    assert!(stderr.contains("the sweep is degraded"), "{stderr}");
    let run_dir = only_run_dir(&dir.path().join("out"));
    let sweep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("sweep.json")).unwrap())
            .unwrap();
    assert_eq!(
        sweep["degraded_steps"],
        serde_json::json!([400.0]),
        "{sweep:#}"
    );
}
