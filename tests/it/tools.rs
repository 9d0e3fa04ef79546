//! Tool-calling workloads: a class declares tools; the mock answers a share of its requests with
//! a tool call (some with deliberately broken arguments); the results report the call rate with
//! its interval, the time to the first tool-call piece, and how many calls' arguments parse and
//! match the declared schema. Bad tool definitions fail validation with their place.

use crate::common::{drover, only_results, run_s_toml, text};

const TOOL: &str = r#"tools = [{ name = "get_weather", description = "Weather in a city", parameters = { type = "object", properties = { city = { type = "string" }, days = { type = "integer", minimum = 1 } }, required = ["city"] } }]"#;

fn scenario(tool_choice: &str) -> String {
    format!(
        r#"
[[targets]]
name = "agent"
model = "m"
[targets.mock]
ttft = "1ms"
itl = "0ms"
output_tokens = 16
tool_call_rate = 0.3
broken_arguments_rate = 0.05

[[classes]]
name = "ask"
input_tokens = 32
max_tokens = 64
{TOOL}
{tool_choice}

[load]
kind = "closed"
users = 4
requests = 400
"#
    )
}

#[test]
fn tool_calls_are_counted_timed_and_checked_against_their_schema() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), scenario("")).unwrap();
    let output = run_s_toml(dir.path(), &[]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let results = only_results(&dir.path().join("out"));
    let group = &results["targets"][0]["classes"][0];
    let tools = &group["tool_calls"];
    assert_eq!(tools["answers"], 400, "{tools}");
    // 30% of answers call a tool: the share is within its 95% interval's reach of 0.3
    // (the mock's draws are seeded, so the figures are the same on every run).
    let (low, high) = (
        tools["call_rate_low"].as_f64().unwrap(),
        tools["call_rate_high"].as_f64().unwrap(),
    );
    assert!(low <= 0.3 && 0.3 <= high, "{tools}");
    let calls = tools["calls"].as_u64().unwrap();
    assert_eq!(calls, tools["answers_with_calls"].as_u64().unwrap());
    // About 5% of the calls' arguments are broken (cut, so not JSON); the others match.
    let broken = calls - tools["valid_json"].as_u64().unwrap();
    assert!(broken >= 1, "{tools}");
    let broken_share = broken as f64 / calls as f64;
    let sigma = (0.05 * 0.95 / calls as f64).sqrt();
    assert!((broken_share - 0.05).abs() <= 3.0 * sigma, "{tools}");
    assert_eq!(tools["valid_json"], tools["matching_schema"], "{tools}");
    assert!(
        tools["argument_tokens"].as_u64().unwrap() > calls,
        "{tools}"
    );
    // The time to the first tool-call piece, one sample per answer that called.
    let first = &group["latency_ms"]["time_to_first_tool_call"];
    assert_eq!(first["count"].as_u64(), Some(calls), "{first}");
    assert!(
        stdout.contains(&format!(
            "tools agent/ask: {calls} of 400 answers called a tool"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("time to first tool call p50"), "{stdout}");
}

#[test]
fn a_required_tool_choice_is_sent_and_always_answered_with_a_call() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        scenario("tool_choice = { name = \"get_weather\" }")
            .replace("requests = 400", "requests = 40"),
    )
    .unwrap();
    let output = run_s_toml(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let results = only_results(&dir.path().join("out"));
    let tools = &results["targets"][0]["summary"]["tool_calls"];
    assert_eq!(tools["answers"], 40, "{tools}");
    assert_eq!(tools["answers_with_calls"], 40, "{tools}");
}

#[test]
fn bad_tool_definitions_are_refused_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tools.json"), "[{ \"name\": 3 }]").unwrap();
    std::fs::write(dir.path().join("not.json"), "{ tools").unwrap();
    for (from, to, said) in [
        (
            "type = \"string\" }, days",
            "type = \"text\" }, days",
            "tool \"get_weather\": parameters parameters.properties.city.type: \"text\" is not a JSON Schema type",
        ),
        (
            "parameters = { type = \"object\",",
            "parameters = { type = \"array\",",
            "parameters must have type = \"object\"",
        ),
        (
            "name = \"get_weather\"",
            "name = \"get weather\"",
            "tool name \"get weather\" must be 1 to 64 letters, digits, _ or -",
        ),
        (
            "tools = [{",
            "tool_choice = { name = \"search\" }\ntools = [{",
            "classes[0].tool_choice names \"search\", which is not among the class's tools",
        ),
        (
            "tools = [{",
            "tool_choice = \"sometimes\"\ntools = [{",
            "classes[0].tool_choice must be \"auto\", \"required\", \"none\"",
        ),
        (
            TOOL,
            "tools = \"tools.json\"",
            "tool 0 has no \"name\"",
        ),
        (TOOL, "tools = \"not.json\"", "not.json: not JSON"),
        (TOOL, "tools = \"missing.json\"", "missing.json"),
    ] {
        let text_of_scenario = scenario("").replacen(from, to, 1);
        std::fs::write(dir.path().join("s.toml"), &text_of_scenario).unwrap();
        let output = drover(dir.path(), &["validate", "s.toml"], &[]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{to}: {stderr}");
        assert!(stderr.contains(said), "{to}: {stderr}");
        assert!(stderr.contains("s.toml:"), "{to}: {stderr}");
    }
}

#[test]
fn a_two_turn_session_answers_the_tool_call_with_its_result() {
    let dir = tempfile::tempdir().unwrap();
    // Every first turn is answered with a call (a named tool_choice); the second turn sends the
    // call and the canned result back, which the mock counts on its /metrics page.
    let scenario = scenario("tool_choice = { name = \"get_weather\" }\ntool_result = '{\"temperature\": 21}'\nturns = 2")
        .replace("requests = 400", "requests = 20")
        .replace(
            "[targets.mock]",
            "server_metrics = { every = \"100ms\", keep = [\"drover_mock_tool_results_total\"] }\n[targets.mock]",
        );
    std::fs::write(dir.path().join("s.toml"), scenario).unwrap();
    let output = run_s_toml(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let results = only_results(&dir.path().join("out"));
    let target = &results["targets"][0];
    // 20 sessions of 2 turns.
    assert_eq!(target["summary"]["requests"]["succeeded"], 40, "{target}");
    let received = target["server_metrics"]["kept"]["drover_mock_tool_results_total"]
        .as_array()
        .and_then(|points| points.last())
        .map(|point| point[1].as_f64().unwrap());
    assert_eq!(
        received,
        Some(20.0),
        "one tool result per session's second turn"
    );
    // A tool result for a target of another API is refused.
    let anthropic = std::fs::read_to_string(dir.path().join("s.toml"))
        .unwrap()
        .replace("model = \"m\"", "model = \"m\"\napi = \"anthropic\"");
    std::fs::write(dir.path().join("s.toml"), anthropic).unwrap();
    let output = drover(dir.path(), &["validate", "s.toml"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains(
            "classes[0].tool_result a tool result is sent back as chat completions write it"
        ),
        "{}",
        text(&output.stderr)
    );
}
