//! Every API drover speaks besides chat completions, end to end from the CLI: each example
//! scenario runs against the embedded mock and shows its figures in the terminal, summary.md and
//! report.html; reasoning is timed and counted apart from the answer; Azure's shape carries its
//! key in `api-key`; a stream event of an unknown type is counted and named; shapes an API cannot
//! carry are refused with their place.

use crate::common;

use std::path::{Path, PathBuf};

use common::{drover, only_run_dir, text, TIMING_LOCK};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"))
}

/// Runs an example scenario into a fresh folder: (terminal text, results, summary.md, report.html).
fn run_example(name: &str, env: &[(&str, &str)]) -> (String, serde_json::Value, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(name);
    let output = drover(
        dir.path(),
        &[
            "run",
            file.to_str().unwrap(),
            "--out",
            "out",
            "--no-progress",
        ],
        env,
    );
    let terminal = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{name}: {terminal}");
    let run = only_run_dir(&dir.path().join("out"));
    let read = |file: &str| std::fs::read_to_string(run.join(file)).unwrap();
    let results = serde_json::from_str(&read("results.json")).unwrap();
    (terminal, results, read("summary.md"), read("report.html"))
}

/// `line` is in the terminal output, summary.md and report.html alike.
fn assert_shown(line: &str, terminal: &str, summary: &str, html: &str) {
    for (place, text) in [
        ("terminal", terminal),
        ("summary.md", summary),
        ("report.html", html),
    ] {
        assert!(text.contains(line), "{place} lacks {line:?}");
    }
}

fn target<'a>(results: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    results["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no target {name}"))
}

fn p50(group: &serde_json::Value, metric: &str) -> f64 {
    group["summary"]["latency_ms"][metric]["p50"]
        .as_f64()
        .unwrap_or_else(|| panic!("no {metric} in {}", group["name"]))
}

/// The acceptance check for reasoning: the mock reasons for 10 tokens (first at 50 ms, 10 ms
/// apart), so the answer starts at ~150 ms. Tolerances: the client and the mock share a busy
/// 2-core machine, so each p50 may be a few milliseconds late, never early by more than the
/// mock's timer slack (1 ms).
#[tokio::test]
async fn reasoning_is_timed_and_counted_apart_from_the_answer_on_both_apis() {
    let _timing = TIMING_LOCK.lock().await;
    let (terminal, results, summary, html) = run_example("reasoning", &[]);
    for name in ["chat-reasoning", "responses-reasoning"] {
        let group = target(&results, name);
        let reasoning = p50(group, "time_to_first_reasoning");
        let answer = p50(group, "time_to_first_answer");
        assert!(
            (49.0..70.0).contains(&reasoning),
            "{name}: first reasoning p50 {reasoning} ms"
        );
        assert!(
            (149.0..175.0).contains(&answer),
            "{name}: first answer p50 {answer} ms"
        );
        let answers = &group["summary"]["answers"];
        // 30 requests × 10 reasoning tokens, as the mock's usage says.
        assert_eq!(answers["reasoned"], 30, "{name}: {answers}");
        assert_eq!(answers["reasoning_tokens"], 300, "{name}: {answers}");
        assert_eq!(answers["reasoning_estimated"], 0, "{name}: {answers}");
        assert_eq!(answers["reasoned_output_tokens"], 1200, "{name}: {answers}");
        let line =
            format!("reasoning {name}: 30 of 30 answers reasoned: 300 reasoning tokens, 25.0%");
        assert_shown(&line, &terminal, &summary, &html);
    }
}

#[tokio::test]
async fn responses_completions_and_embeddings_examples_run_and_show_their_figures() {
    let _timing = TIMING_LOCK.lock().await;
    let (terminal, results, _, _) = run_example("responses", &[]);
    for name in ["responses-stream", "responses-whole"] {
        let group = &target(&results, name)["summary"];
        let requests = group["requests"]["succeeded"].as_u64().unwrap();
        assert!(requests > 20, "{name}: {terminal}");
        assert_eq!(group["requests"]["failed"], 0, "{name}");
        // 32 tokens each (the class's max_output_tokens), from the response's usage.
        assert_eq!(
            group["tokens"]["output"].as_u64().unwrap(),
            requests * 32,
            "{name}"
        );
        assert_eq!(
            group["tokens"]["source_usage"].as_u64().unwrap(),
            requests,
            "{name}"
        );
    }
    let stream = target(&results, "responses-stream");
    assert!((39.0..60.0).contains(&p50(stream, "ttft")), "{terminal}");

    let (terminal, results, _, _) = run_example("completions", &[]);
    let group = &target(&results, "completions")["summary"];
    assert_eq!(group["requests"]["succeeded"], 40, "{terminal}");
    assert_eq!(group["tokens"]["output"], 40 * 64, "{terminal}");
    assert!(group["latency_ms"]["itl"]["p50"].as_f64().unwrap() >= 4.5);

    let (terminal, results, summary, html) = run_example("embeddings", &[]);
    let group = &target(&results, "embeddings")["summary"];
    let succeeded = group["requests"]["succeeded"].as_u64().unwrap();
    assert_eq!(succeeded, 100, "{terminal}");
    let answers = &group["answers"];
    let inputs = answers["inputs"].as_u64().unwrap();
    let bulk = target(&results, "embeddings")["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bulk")
        .unwrap()["requests"]["succeeded"]
        .as_u64()
        .unwrap();
    // One text per query request, 16 per bulk request.
    assert_eq!(inputs, (succeeded - bulk) + 16 * bulk, "{answers}");
    assert_eq!(group["tokens"]["output"], 0);
    assert!(
        group["latency_ms"].get("ttft").is_none(),
        "{}",
        group["latency_ms"]
    );
    assert!(group["cost"]["total"].as_f64().unwrap() > 0.0);
    let line = format!("embeddings embeddings: {inputs} texts embedded in 100 requests");
    assert_shown(&line, &terminal, &summary, &html);
}

#[tokio::test]
async fn the_azure_example_sends_its_key_in_api_key_to_its_deployment_path() {
    let _timing = TIMING_LOCK.lock().await;
    // With the key set, the embedded mock requires it: every request passing shows that it went
    // in `api-key` (the mock refuses a request without it with 401).
    let (terminal, results, _, _) =
        run_example("azure-openai", &[("AZURE_OPENAI_API_KEY", "az-test-key")]);
    let group = &target(&results, "azure")["summary"];
    assert!(
        group["requests"]["succeeded"].as_u64().unwrap() > 20,
        "{terminal}"
    );
    assert_eq!(group["requests"]["failed"], 0, "{terminal}");
    assert!(!terminal.contains("az-test-key"), "{terminal}");
    // Without it, validate passes with a warning.
    let dir = tempfile::tempdir().unwrap();
    let file = scenario("azure-openai");
    let output = drover(dir.path(), &["validate", file.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stderr)
        .contains("warning: environment variable AZURE_OPENAI_API_KEY is not set"));
    assert!(text(&output.stdout)
        .contains("POST /openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"));
}

#[tokio::test]
async fn a_real_azure_endpoint_gets_api_key_api_version_and_the_deployment_path() {
    let _serial = common::TIMING_LOCK.lock().await;
    let server = MockServer::start().await;
    let body = serde_json::json!({
        "id": "x", "object": "chat.completion", "model": "gpt-4o",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": "hi there" }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11 }
    });
    Mock::given(method("POST"))
        .and(path("/openai/deployments/dep-1/chat/completions"))
        .and(query_param("api-version", "2024-10-21"))
        .and(header("api-key", "az-secret-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(3)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        format!(
            r#"
[[targets]]
name = "azure"
base_url = "{}/openai/deployments/dep-1"
model = "gpt-4o"
mode = "complete"
api_key_env = "AZ_KEY"
auth = {{ header = "api-key" }}
query = {{ "api-version" = "2024-10-21" }}
[[classes]]
name = "c"
input_tokens = 8
max_tokens = 4
[load]
kind = "closed"
users = 1
requests = 3
"#,
            server.uri()
        ),
    )
    .unwrap();
    let output = drover(
        dir.path(),
        &[
            "run",
            "s.toml",
            "--out",
            "out",
            "--no-progress",
            "--no-preflight",
        ],
        &[("AZ_KEY", "az-secret-1")],
    );
    let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(!all.contains("az-secret-1"), "{all}");
    server.verify().await;
}

#[tokio::test]
async fn an_unknown_event_type_is_counted_and_named_never_dropped() {
    let _serial = common::TIMING_LOCK.lock().await;
    let stream = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"r\",\"status\":\"in_progress\",\"model\":\"m\",\"output\":[]}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"i\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n",
        "event: response.hologram.delta\ndata: {\"type\":\"response.hologram.delta\",\"sequence_number\":2,\"delta\":\"?\"}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":3,\"item_id\":\"i\",\"output_index\":0,\"content_index\":0,\"delta\":\" you\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":4,\"response\":{\"id\":\"r\",\"status\":\"completed\",\"model\":\"m\",\"output\":[],\"usage\":{\"input_tokens\":5,\"output_tokens\":2,\"output_tokens_details\":{\"reasoning_tokens\":0},\"input_tokens_details\":{\"cached_tokens\":0},\"total_tokens\":7}}}\n\n",
    );
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(stream.as_bytes().to_vec(), "text/event-stream"),
        )
        .expect(4)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        format!(
            "[[targets]]\nname = \"r\"\napi = \"responses\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\n[[classes]]\nname = \"c\"\ninput_tokens = 8\nmax_tokens = 4\n[load]\nkind = \"closed\"\nusers = 1\nrequests = 4\n",
            server.uri()
        ),
    )
    .unwrap();
    let output = common::run_s_toml(dir.path(), &["--no-preflight"]);
    let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{all}");
    let results = common::only_results(&dir.path().join("out"));
    let group = &results["targets"][0]["summary"];
    assert_eq!(group["requests"]["succeeded"], 4, "{all}");
    assert_eq!(
        group["answers"]["unknown_events"], 4,
        "{}",
        group["answers"]
    );
    assert_eq!(
        group["answers"]["unknown_event_types"],
        serde_json::json!(["response.hologram.delta"])
    );
    // The unknown event is not a token: two output events per stream.
    assert_eq!(group["tokens"]["output"], 8);
    assert!(
        all.contains("unknown events r: 4 stream event(s) of types the API does not define, not counted as tokens: response.hologram.delta"),
        "{all}"
    );
}

/// Shapes a target's API cannot carry are refused by validate and run alike, at their place.
#[test]
fn shapes_an_api_cannot_carry_are_refused_with_their_place() {
    let _serial = common::TIMING_LOCK.blocking_lock();
    let target = |api: &str, extra: &str| {
        format!(
            "[[targets]]\nname = \"t\"\napi = \"{api}\"\nmodel = \"m\"\n{extra}[targets.mock]\n"
        )
    };
    let load = "[load]\nkind = \"closed\"\nusers = 1\nrequests = 2\n";
    let cases = [
        (
            "embeddings cannot stream",
            format!(
                "{}[[classes]]\nname = \"c\"\ninput_tokens = 8\n{load}",
                target("embeddings", "mode = \"stream\"\n")
            ),
            "s.toml:5:8:",
            "api = \"embeddings\" does not stream",
        ),
        (
            "a session to legacy completions",
            format!(
                "{}[[classes]]\nname = \"c\"\ninput_tokens = 8\nturns = 3\n{load}",
                target("completions", "")
            ),
            "s.toml:9:9:",
            "multi-turn sessions need a chat API",
        ),
        (
            "several inputs to chat",
            format!(
                "{}[[classes]]\nname = \"c\"\ninput_tokens = 8\ninputs_per_request = 4\n{load}",
                target("openai", "")
            ),
            "s.toml:9:22:",
            "only embeddings take several inputs per request",
        ),
        (
            "no cap to anthropic",
            format!(
                "{}[[classes]]\nname = \"c\"\ninput_tokens = 8\n{load}",
                target("anthropic", "max_tokens_field = \"none\"\n")
            ),
            "s.toml:5:20:",
            "the Messages API requires max_tokens",
        ),
        (
            "an output cap to embeddings",
            format!(
                "{}[[classes]]\nname = \"c\"\ninput_tokens = 8\nmax_tokens = 4\n{load}",
                target("embeddings", "")
            ),
            "s.toml:9:14:",
            "embeddings generate no tokens",
        ),
        (
            "a full URL on a mock",
            format!(
                "{}[[classes]]\nname = \"c\"\ninput_tokens = 8\n{load}",
                target(
                    "openai",
                    "url = \"https://x.example/v1/chat/completions\"\n"
                )
            ),
            "s.toml:5:7:",
            "must be a path from its address",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, scenario, place, words) in cases {
        std::fs::write(dir.path().join("s.toml"), &scenario).unwrap();
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
                "{name} ({command}): expected {place} … {words}, got:\n{stderr}\n{scenario}"
            );
        }
    }
}
