//! Driver features that are about what is sent, not how fast: HTTP/2, staged profiles, the class
//! mix, datasets, warm-up exclusion, request bodies as targets see them.

use crate::common;

use common::{run_scenario, run_scenario_in, summary};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FAST_MOCK: &str = r#"
[[targets]]
name = "mock"
model = "m"
[targets.mock]
ttft = "2ms"
itl = "1ms"
output_tokens = 3
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_works_against_the_mock() {
    let results = run_scenario(&format!(
        "{}\n[[classes]]\nname = \"c\"\ninput_tokens = 8\n\n[load]\nkind = \"closed\"\nusers = 4\nrequests = 40\n",
        FAST_MOCK.replace("model = \"m\"", "model = \"m\"\nhttp = \"http2\"")
    ))
    .await;
    let all = summary(&results);
    assert_eq!(all.requests.succeeded, 40, "{:?}", all.error_samples);
    assert_eq!(all.tokens.output, 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_ramp_and_warmup_is_excluded() {
    // 1 s at 20/s, then a ramp 20→60/s over 1 s: 20 + 40 = 60 requests; the first 0.5 s (10
    // requests) is warm-up.
    let results = run_scenario(&format!(
        "{FAST_MOCK}\n[[classes]]\nname = \"c\"\ninput_tokens = 8\n\n[load]\nkind = \"open\"\nstages = [{{ rate = 20, duration = \"1s\" }}, {{ rate = 20, end_rate = 60, duration = \"1s\" }}]\nwarmup = \"500ms\"\n"
    ))
    .await;
    let all = summary(&results);
    assert_eq!(all.requests.warmup_excluded, 10);
    assert_eq!(all.requests.sent, 50);
    assert_eq!(all.requests.succeeded, 50, "{:?}", all.error_samples);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_class_mix_follows_the_weights() {
    let results = run_scenario(&format!(
        "{FAST_MOCK}\n[[classes]]\nname = \"a\"\nweight = 3\ninput_tokens = 4\n\n[[classes]]\nname = \"b\"\nweight = 1\ninput_tokens = {{ dist = \"normal\", mean = 16, stddev = 2 }}\n\n[load]\nkind = \"closed\"\nusers = 8\nrequests = 800\n"
    ))
    .await;
    let target = &results.targets[0];
    let a = target.classes[0].results.requests.sent as f64;
    let b = target.classes[1].results.requests.sent as f64;
    assert_eq!(a + b, 800.0);
    // Binomial(800, 0.75): standard deviation ≈ 12; allow four.
    assert!((a - 600.0).abs() < 50.0, "a {a}, b {b}");
    // The mock counts prompt words: class b sends longer prompts.
    let per_request =
        |g: &drover::results::GroupResults| g.tokens.input as f64 / g.requests.succeeded as f64;
    assert_eq!(per_request(&target.classes[0].results), 4.0);
    assert!((per_request(&target.classes[1].results) - 16.0).abs() < 1.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_prompts_model_map_and_extra_body_reach_the_server() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1}
        })))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prompts.jsonl"),
        "{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"first\"}]}\n\n{\"messages\":[{\"role\":\"user\",\"content\":\"second\"}],\"note\":\"ignored\"}\n",
    )
    .unwrap();
    let scenario = format!(
        r#"
[[targets]]
name = "relay"
base_url = "{}/v1/"
model = "default-model"
mode = "complete"
extra_body = {{ mode = "batch", temperature = 0 }}
model_map = {{ small = "relay/small-v2" }}
headers = {{ "x-team" = "perf" }}

[[classes]]
name = "from-file"
dataset = "prompts.jsonl"
model = "small"
max_tokens = 5

[load]
kind = "closed"
users = 1
requests = 20
"#,
        server.uri()
    );
    let results = run_scenario_in(dir.path(), &scenario).await;
    assert_eq!(summary(&results).requests.succeeded, 20);
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 20);
    let mut contents = std::collections::BTreeSet::new();
    for request in &received {
        assert_eq!(request.headers.get("x-team").unwrap(), "perf");
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["model"], "relay/small-v2");
        assert_eq!(body["mode"], "batch");
        assert_eq!(body["temperature"], 0);
        assert_eq!(body["max_tokens"], 5);
        let messages = body["messages"].as_array().unwrap();
        contents.insert(
            messages.last().unwrap()["content"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Both records were drawn.
    assert_eq!(
        contents.into_iter().collect::<Vec<_>>(),
        vec!["first", "second"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_target_gets_the_same_traffic() {
    let results = run_scenario(&format!(
        "{FAST_MOCK}{}\n[[classes]]\nname = \"a\"\ninput_tokens = {{ dist = \"uniform\", min = 5, max = 50 }}\n\n[[classes]]\nname = \"b\"\ninput_tokens = 7\n\n[load]\nkind = \"closed\"\nusers = 3\nrequests = 60\n",
        FAST_MOCK.replace("name = \"mock\"", "name = \"mock-2\"")
    ))
    .await;
    let [first, second] = [&results.targets[0], &results.targets[1]];
    for class in 0..2 {
        let (x, y) = (
            &first.classes[class].results,
            &second.classes[class].results,
        );
        assert_eq!(x.requests.sent, y.requests.sent);
        assert_eq!(
            x.tokens.input, y.tokens.input,
            "same prompts, same word counts"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_passes_a_streaming_server_and_flags_a_buffered_one() {
    let server = drover::mock::start(
        drover::mock::MockConfig::default(),
        drover::mock::MockOptions::default(),
    )
    .unwrap();
    let scenario = |base_url: &str| {
        format!(
            "[[targets]]\nname = \"t\"\nmodel = \"m\"\nbase_url = \"{base_url}\"\n\n[[classes]]\nname = \"c\"\ninput_tokens = 4\n\n[load]\nkind = \"closed\"\nusers = 1\nrequests = 1\n"
        )
    };
    let plan = drover::scenario::parse(
        &scenario(&server.base_url()),
        std::path::Path::new("p.toml"),
    )
    .unwrap();
    assert_eq!(
        drover::driver::preflight(&plan).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(server.requests_received(), 1);

    // A relay that buffers the whole stream and sends it at once.
    let buffered = MockServer::start().await;
    let body = "data: {\"choices\":[{\"delta\":{\"content\":\"O\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"K\"}}]}\n\ndata: [DONE]\n\n";
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), "text/event-stream"),
        )
        .mount(&buffered)
        .await;
    let plan = drover::scenario::parse(
        &scenario(&format!("{}/v1", buffered.uri())),
        std::path::Path::new("p.toml"),
    )
    .unwrap();
    let warnings = drover::driver::preflight(&plan).await.unwrap();
    assert!(warnings[0].contains("arrived in one piece"), "{warnings:?}");
}
