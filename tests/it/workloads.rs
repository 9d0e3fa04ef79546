//! Workloads end to end: every dataset format from its fixture, bad records reported with
//! file:line and field, synthetic prompts of exact length as the server receives them, early
//! stops against max_tokens, shared prefixes against the mock's prompt cache (and their cost),
//! and multi-turn sessions checked on the server side. Every server is on loopback.

use crate::common;

use std::path::{Path, PathBuf};

use common::{drover, only_results, run_scenario_in, stat, text};
use drover::tokenizer::Encoding;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workloads")
}

/// A non-streaming chat completion whose answer names how many messages the request carried,
/// so a later turn's history can be checked against what the server said.
struct CountingResponder;

impl Respond for CountingResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let count = body["messages"].as_array().map_or(0, Vec::len);
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": format!("answer to {count} messages") },
                "finish_reason": "stop"
            }],
            "usage": { "prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14 }
        }))
    }
}

/// A scenario whose one target, "wire", asks `server` for whole (non-streamed) responses.
fn wire_scenario(server: &MockServer, classes_and_load: &str) -> String {
    format!(
        "[[targets]]\nname = \"wire\"\nmodel = \"m\"\nmode = \"complete\"\nbase_url = \"{}/v1\"\n{classes_and_load}",
        server.uri()
    )
}

/// The `messages` of every request `server` received, in arrival order.
async fn received_messages(server: &MockServer) -> Vec<Vec<Value>> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

async fn counting_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(CountingResponder)
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dataset_format_loads_from_its_fixture_and_runs() {
    let dir = fixtures();
    let scenario = r#"
[[targets]]
name = "mock"
model = "m"
mode = "complete"
[targets.mock]
ttft = "1ms"
itl = "1ms"
output_tokens = 4

[[classes]]
name = "chat"
dataset = "chat.jsonl"
sampling = "sequential"

[[classes]]
name = "sharegpt"
dataset = "sharegpt.json"

[[classes]]
name = "batch"
dataset = "batch.jsonl"
dataset_format = "batch"

[[classes]]
name = "text"
dataset = "prompts.txt"
sampling = "shuffle"

[load]
kind = "closed"
users = 4
requests = 80
"#;
    let plan = drover::scenario::parse(scenario, &dir.join("scenario.toml")).unwrap();
    let described: Vec<String> = plan
        .classes
        .iter()
        .map(drover::workload::describe_class)
        .collect();
    assert!(described[0].starts_with("chat dataset"), "{described:?}");
    assert!(described[0].contains("(3 records, sequential sampling)"));
    assert!(described[1].contains("sharegpt dataset") && described[1].contains("(3 records"));
    assert!(described[2].contains("batch dataset") && described[2].contains("(3 records"));
    assert!(described[3].contains("text dataset") && described[3].contains("(4 records"));
    let results = run_scenario_in(&dir, scenario).await;
    let target = &results.targets[0];
    assert_eq!(target.summary.requests.sent, 80);
    assert_eq!(
        target.summary.requests.succeeded, 80,
        "{:?}",
        target.summary.error_samples
    );
    for class in &target.classes {
        assert!(
            class.results.requests.sent > 0,
            "class {} sent none",
            class.name
        );
    }
    // Batch lines carry their own caps (40, 24 or none); the class sets none, so they are sent.
    let batch = &target.classes[2].results;
    let length = batch.output_length.as_ref().expect("batch lines have caps");
    assert!(length.requests > 0 && length.requests < batch.requests.succeeded);
}

#[tokio::test]
async fn datasets_reach_the_server_as_written() {
    let server = counting_server().await;
    let dir = fixtures();
    let scenario = wire_scenario(
        &server,
        r#"
[[classes]]
name = "sharegpt"
dataset = "sharegpt.json"
sampling = "sequential"

[load]
kind = "closed"
users = 1
requests = 3
"#,
    );
    let results = run_scenario_in(&dir, &scenario).await;
    assert_eq!(results.targets[0].summary.requests.succeeded, 3);
    let mut sent: Vec<Value> = received_messages(&server)
        .await
        .into_iter()
        .map(Value::Array)
        .collect();
    sent.sort_by_key(|m| m.to_string());
    let mut expected = vec![
        // The greeting before the first human turn is dropped; the prompt ends at that turn.
        json!([{ "role": "user", "content": "Explain what a load balancer does." }]),
        json!([
            { "role": "system", "content": "You are a terse assistant." },
            { "role": "user", "content": "What is TCP slow start?" }
        ]),
        json!([{ "role": "user", "content": "Translate 'good morning' into French." }]),
    ];
    expected.sort_by_key(|m| m.to_string());
    assert_eq!(sent, expected);
}

#[test]
fn malformed_records_are_reported_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "dataset = \"FIXTURES/bad-chat.jsonl\"",
            "bad-chat.jsonl:3: messages[0] has no \"content\"",
        ),
        (
            "dataset = \"FIXTURES/bad-sharegpt.json\"",
            "bad-sharegpt.json:3: conversations[0] has no string \"value\"",
        ),
        (
            "dataset = \"FIXTURES/bad-batch.jsonl\"",
            "bad-batch.jsonl:2: body.messages[0] has no string \"role\"",
        ),
        (
            "dataset = \"FIXTURES/empty.txt\"",
            "empty.txt: dataset has no records",
        ),
        (
            "dataset = \"FIXTURES/chat.jsonl\"\ndataset_format = \"csv\"",
            "classes[0].dataset_format \"csv\" is not a dataset format",
        ),
    ];
    let fixtures = fixtures();
    for (source, expected) in cases {
        let scenario = format!(
            "[[targets]]\nname = \"t\"\nmodel = \"m\"\n[targets.mock]\n\n[[classes]]\nname = \"c\"\n{}\n\n[load]\nkind = \"closed\"\nusers = 1\nrequests = 1\n",
            source.replace("FIXTURES", &fixtures.display().to_string())
        );
        std::fs::write(dir.path().join("s.toml"), scenario).unwrap();
        let output = drover(dir.path(), &["validate", "s.toml"], &[]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
        // The scenario's own place is named too.
        assert!(stderr.contains("s.toml:"), "{stderr}");
    }
    let scenario = format!(
        "[[targets]]\nname = \"t\"\nmodel = \"m\"\n[targets.mock]\n\n[[classes]]\nname = \"c\"\ninput_tokens = 5\n\n[load]\nkind = \"trace\"\ntrace = \"{}\"\n",
        fixtures.join("bad-trace.jsonl").display()
    );
    std::fs::write(dir.path().join("t.toml"), scenario).unwrap();
    let output = drover(dir.path(), &["validate", "t.toml"], &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "bad-trace.jsonl:2: \"input_tokens\" must be a whole number from 1 to 1048576"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn synthetic_prompts_arrive_with_exactly_the_requested_tokens() {
    let server = counting_server().await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = wire_scenario(
        &server,
        r#"
[[classes]]
name = "short"
input_tokens = 64

[[classes]]
name = "medium"
input_tokens = 512

[[classes]]
name = "long"
input_tokens = 2048

[load]
kind = "closed"
users = 2
requests = 30
"#,
    );
    let results = run_scenario_in(dir.path(), &scenario).await;
    assert_eq!(results.targets[0].summary.requests.succeeded, 30);
    let mut seen = std::collections::BTreeMap::new();
    for messages in received_messages(&server).await {
        let content = messages[0]["content"].as_str().unwrap();
        for encoding in [Encoding::O200kBase, Encoding::Cl100kBase] {
            let tokens = encoding.count(content);
            assert!(
                [64, 512, 2048].contains(&tokens),
                "{tokens} tokens by {}",
                encoding.name()
            );
            *seen.entry((encoding.name(), tokens)).or_insert(0) += 1;
        }
    }
    // All three lengths were drawn, and each prompt measured the same by both vocabularies.
    assert_eq!(seen.len(), 6, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_stops_show_requested_versus_produced_length_and_warn() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = r#"
[[targets]]
name = "mock"
model = "m"
[targets.mock]
ttft = "1ms"
itl = "0ms"
output_tokens = 500
early_stop = 0.3

[[classes]]
name = "capped"
input_tokens = 16
max_tokens = 64

[load]
kind = "closed"
users = 4
requests = 400
"#;
    std::fs::write(dir.path().join("s.toml"), scenario).unwrap();
    let run = |out: &str| {
        drover(
            dir.path(),
            &[
                "run",
                "s.toml",
                "--out",
                out,
                "--no-preflight",
                "--no-progress",
            ],
            &[],
        )
    };
    let output = run("first");
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    let results = only_results(&dir.path().join("first"));
    let length = &results["targets"][0]["classes"][0]["output_length"];
    assert_eq!(length["requests"], 400);
    assert_eq!(length["requested_mean"], 64.0);
    let early = length["stopped_early"].as_u64().unwrap();
    // Binomial(400, 0.3): mean 120, standard deviation 9.2; ±5 sd.
    assert!((74..=166).contains(&early), "{early} stopped early");
    let produced = length["produced_mean"].as_f64().unwrap();
    assert!(produced < 64.0 && produced > 40.0, "produced {produced}");
    let warnings = results["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("stopped before their max_tokens")),
        "{warnings:?}"
    );
    assert!(
        stdout.contains("output mock/capped: asked 64.0 tokens on average (max_tokens), produced"),
        "{stdout}"
    );
    assert!(
        stdout.contains("stopped before their max_tokens"),
        "{stdout}"
    );
    // The Markdown and HTML reports carry the same line.
    let folder = std::fs::read_dir(dir.path().join("first"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let markdown = std::fs::read_to_string(folder.join("summary.md")).unwrap();
    assert!(markdown.contains("## Workload"), "{markdown}");
    assert!(markdown.contains("output mock/capped: asked 64.0 tokens on average"));
    let html = std::fs::read_to_string(folder.join("report.html")).unwrap();
    assert!(html.contains("<section id=\"workload\"><h2>Workload</h2>"));
    assert!(html.contains("output mock/capped: asked 64.0 tokens on average"));

    // ignore_eos asks the server not to stop early; the mock honours it, so no warning.
    std::fs::write(
        dir.path().join("s.toml"),
        scenario.replace("max_tokens = 64", "max_tokens = 64\nignore_eos = true"),
    )
    .unwrap();
    let output = run("second");
    assert_eq!(output.status.code(), Some(0));
    let results = only_results(&dir.path().join("second"));
    assert_eq!(
        results["targets"][0]["classes"][0]["output_length"]["stopped_early"],
        0
    );
    assert!(!text(&output.stdout).contains("stopped before their max_tokens"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_prefixes_hit_the_mock_cache_lower_ttft_and_cost_the_cached_price() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = r#"
[[targets]]
name = "mock"
model = "cache-model"
stream_usage = true
[targets.mock]
ttft = "60ms"
cache_ttft = "15ms"
itl = "1ms"
output_tokens = 8

[cost.models.cache-model]
input = 2.0
cached_input = 0.5
output = 8.0

[[classes]]
name = "prefixed"
input_tokens = 20
shared_prefix = { prompts = 2, tokens = 300 }

[[classes]]
name = "plain"
input_tokens = 20

[load]
kind = "closed"
users = 2
requests = 60
"#;
    let results = run_scenario_in(dir.path(), scenario).await;
    let target = &results.targets[0];
    let prefixed = &target.classes[0].results;
    let plain = &target.classes[1].results;
    assert_eq!(
        target.summary.requests.succeeded, 60,
        "{:?}",
        target.summary.error_samples
    );
    let counts = prefixed.shared_prefix.as_ref().expect("prefix counts");
    assert_eq!(counts.requests, prefixed.requests.succeeded);
    // Each of the two prefixes misses once, then hits.
    assert_eq!(counts.cache_hits, counts.requests - 2);
    assert_eq!(counts.cached_input_tokens, counts.cache_hits * 300);
    assert_eq!(prefixed.tokens.cached_input, counts.cached_input_tokens);
    assert_eq!(plain.tokens.cached_input, 0);
    assert!(plain.shared_prefix.is_none());
    let hit = stat(prefixed, "ttft_cache_hit");
    let miss = stat(prefixed, "ttft_cache_miss");
    assert_eq!(miss.count, 2);
    assert!(
        hit.p50 < 30.0 && miss.p50 >= 60.0,
        "cached {hit:?} uncached {miss:?}"
    );
    // The mock counts prompt words: 300 (prefix) + 20 for a prefixed request. Cached tokens are
    // billed at 0.5 per million instead of 2.0.
    let cost = prefixed.cost.as_ref().expect("priced");
    let input = prefixed.tokens.input as f64;
    let cached = prefixed.tokens.cached_input as f64;
    let expected_input = ((input - cached) * 2.0 + cached * 0.5) / 1e6;
    assert!(
        (cost.input - expected_input).abs() < 1e-12,
        "input cost {} vs {expected_input}",
        cost.input
    );
    assert!(cost.input < input * 2.0 / 1e6);
}

#[tokio::test]
async fn a_three_turn_session_sends_the_history_on_each_turn() {
    let server = counting_server().await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = wire_scenario(
        &server,
        r#"
[[classes]]
name = "chat"
input_tokens = 12
turns = 3
think_time = "150ms"

[load]
kind = "closed"
users = 1
requests = 2
"#,
    );
    let started = std::time::Instant::now();
    let results = run_scenario_in(dir.path(), &scenario).await;
    // Two sessions of three turns, each turn 150 ms after the answer before it.
    assert!(started.elapsed() >= std::time::Duration::from_millis(4 * 150));
    let class = &results.targets[0].classes[0].results;
    let sessions = class.sessions.as_ref().expect("session counts");
    assert_eq!((sessions.started, sessions.completed), (2, 2));
    assert_eq!(
        sessions
            .turns
            .iter()
            .map(|t| (t.turn, t.sent, t.succeeded))
            .collect::<Vec<_>>(),
        vec![(1, 2, 2), (2, 2, 2), (3, 2, 2)]
    );
    for turn in 1..=3 {
        // Whole (non-streamed) responses have no TTFT; each turn's E2E is kept.
        assert_eq!(stat(class, &format!("e2e_turn_{turn}")).count, 2);
    }
    let bodies = received_messages(&server).await;
    assert_eq!(bodies.len(), 6);
    // One user sends its sessions in order: turns 1, 2, 3 of the first, then of the second.
    for session in bodies.chunks(3) {
        let (first, second, third) = (&session[0], &session[1], &session[2]);
        assert_eq!(first.len(), 1);
        assert_eq!(second.len(), 3);
        assert_eq!(third.len(), 5);
        assert_eq!(second[0], first[0], "turn 2 starts with turn 1's message");
        assert_eq!(
            second[1],
            json!({ "role": "assistant", "content": "answer to 1 messages" })
        );
        assert_eq!(&third[..3], &second[..]);
        assert_eq!(
            third[3],
            json!({ "role": "assistant", "content": "answer to 3 messages" })
        );
        for (index, message) in third.iter().enumerate().step_by(2) {
            assert_eq!(message["role"], "user", "message {index}");
        }
        assert_ne!(third[0], third[2]);
        assert_ne!(third[2], third[4]);
    }
    assert_ne!(bodies[0][0], bodies[3][0], "sessions differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_turns_hit_the_mock_cache_with_their_history() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = r#"
[[targets]]
name = "mock"
model = "m"
[targets.mock]
ttft = "40ms"
cache_ttft = "5ms"
itl = "1ms"
output_tokens = 6

[[classes]]
name = "chat"
input_tokens = 10
turns = 3

[load]
kind = "closed"
users = 2
requests = 6
"#;
    let results = run_scenario_in(dir.path(), scenario).await;
    let class = &results.targets[0].classes[0].results;
    assert_eq!(class.requests.succeeded, 18, "{:?}", class.error_samples);
    // Turns 2 and 3 send the history, which the mock cached with the answer it gave.
    assert_eq!(stat(class, "ttft_cache_hit").count, 12);
    assert!(!class.latency_ms.contains_key("ttft_cache_miss"));
    assert!(stat(class, "ttft_turn_1").p50 >= 40.0);
    assert!(stat(class, "ttft_turn_2").p50 < 20.0);
}

#[tokio::test]
async fn the_fixture_trace_replays_each_line_and_a_duration_cuts_it() {
    let server = counting_server().await;
    let dir = fixtures();
    let load = |bound: &str| {
        wire_scenario(
            &server,
            &format!(
                "\n[[classes]]\nname = \"chat\"\ninput_tokens = 7\n\n[[classes]]\nname = \"long\"\n\n[load]\nkind = \"trace\"\ntrace = \"trace.jsonl\"\n{bound}\n"
            ),
        )
    };
    let results = run_scenario_in(&dir, &load("")).await;
    let target = &results.targets[0];
    assert_eq!(target.summary.requests.succeeded, 4);
    assert_eq!(
        target
            .classes
            .iter()
            .map(|c| c.results.requests.sent)
            .collect::<Vec<_>>(),
        vec![3, 1]
    );
    let sent = received_messages(&server).await;
    let mut tokens: Vec<u64> = sent
        .iter()
        .map(|m| Encoding::O200kBase.count(m[0]["content"].as_str().unwrap()))
        .collect();
    tokens.sort_unstable();
    // Lines: 120 tokens, "Hello there." (3 tokens), 300 tokens, and one drawn from class chat (7).
    assert_eq!(tokens, vec![3, 7, 120, 300]);
    let caps = target.summary.output_length.as_ref().unwrap();
    assert_eq!((caps.requests, caps.requested_tokens), (4, 16 + 8 + 32 + 4));

    server.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(CountingResponder)
        .mount(&server)
        .await;
    // The last line is due at 95.5 ms; a 50 ms duration leaves it out.
    let results = run_scenario_in(&dir, &load("duration = \"50ms\"")).await;
    assert_eq!(results.targets[0].summary.requests.sent, 3);
}
