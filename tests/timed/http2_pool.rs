//! HTTP/2 connection pools from the CLI: a server that allows 100 concurrent streams per
//! connection and 400 users. On one connection, 300 requests at a time wait for a stream slot,
//! and that wait is its own figure, not TTFT; on four, none waits.

use crate::common;

use std::time::Duration;

use common::{drover, only_results, text, TIMING_LOCK};
use drover::mock::{self, LatencyModel, MockConfig, MockOptions};

/// The mock's time to first token and inter-token delay, and answers' length.
const TTFT_MS: u64 = 40;
const ITL_MS: u64 = 2;
const TOKENS: u32 = 10;
const USERS: u64 = 400;
const REQUESTS: u64 = 1200;

fn start_mock() -> mock::MockHandle {
    mock::start(
        MockConfig {
            ttft: LatencyModel::Fixed(Duration::from_millis(TTFT_MS)),
            itl: LatencyModel::Fixed(Duration::from_millis(ITL_MS)),
            output_tokens: TOKENS,
            max_concurrent_streams: Some(100),
            ..MockConfig::default()
        },
        MockOptions::default(),
    )
    .unwrap()
}

/// Runs a scenario from the CLI; gives the results and stdout.
fn run_cli(scenario: &str) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), scenario).unwrap();
    let output = drover(
        dir.path(),
        &["run", "s.toml", "--out", "out", "--no-progress"],
        &[],
    );
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    (only_results(&dir.path().join("out")), stdout)
}

/// Runs 400 users against the mock over `connections` HTTP/2 connections.
fn run(server: &mock::MockHandle, connections: u32) -> (serde_json::Value, String) {
    run_cli(&format!(
        "[[targets]]\nname = \"h2\"\nmodel = \"m\"\nbase_url = \"{}\"\nhttp = \"http2\"\n\
         http2 = {{ connections = {connections} }}\n\n\
         [[classes]]\nname = \"c\"\ninput_tokens = 16\n\n\
         [load]\nkind = \"closed\"\nusers = {USERS}\nrequests = {REQUESTS}\n",
        server.base_url()
    ))
}

fn latency<'a>(summary: &'a serde_json::Value, metric: &str) -> &'a serde_json::Value {
    &summary["latency_ms"][metric]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_makes_requests_wait_for_a_stream_slot_outside_ttft_and_four_do_not() {
    let _serial = TIMING_LOCK.lock().await;
    let server = start_mock();

    let (results, stdout) = run(&server, 1);
    let target = &results["targets"][0];
    let summary = &target["summary"];
    assert_eq!(summary["requests"]["succeeded"], REQUESTS, "{stdout}");
    let connections = &summary["connections"];
    assert_eq!(connections["server_max_streams"], 100, "{connections}");
    assert_eq!(connections["connections_used"], 1, "{connections}");
    assert_eq!(connections["requests_per_connection"][0], REQUESTS);
    assert_eq!(target["http2"]["connections"], 1);
    // 400 users on 100 slots, first come first served: the 100 served as the connection opened
    // waited for it (set-up, not a stream wait); after them, every request until the last
    // 300 users have nothing left to send waited for a slot.
    let waits = connections["stream_waits"].as_u64().unwrap();
    assert!(
        (REQUESTS - 400..=REQUESTS - 100).contains(&waits),
        "{waits} waits: {connections}"
    );
    let wait = latency(summary, "stream_wait");
    assert_eq!(wait["count"], waits);
    // A slot frees as an answer ends (about TTFT + 9 gaps of 2 ms later), and three users queue
    // for each slot: the typical wait is a couple of answers long.
    let answer_ms = (TTFT_MS + u64::from(TOKENS - 1) * ITL_MS) as f64;
    let wait_p50 = wait["p50"].as_f64().unwrap();
    assert!(wait_p50 >= answer_ms, "stream wait p50 {wait_p50} ms");
    // TTFT starts once the request is on the wire: the mock's 40 ms plus the client's and
    // loopback's share, never the wait.
    let ttft_p50 = latency(summary, "ttft")["p50"].as_f64().unwrap();
    assert!(
        (TTFT_MS as f64..TTFT_MS as f64 + 20.0).contains(&ttft_p50),
        "TTFT p50 {ttft_p50} ms with a stream wait p50 of {wait_p50} ms"
    );
    assert!(
        stdout.contains("http2 h2: 1 of 1 connection(s) used, 100 streams each (the server's limit); requests per connection 1,200;")
            && stdout.contains(&format!(
                "{},{:03} of 1,200 requests waited for a stream slot",
                waits / 1000,
                waits % 1000
            )),
        "{stdout}"
    );

    let (results, stdout) = run(&server, 4);
    let summary = &results["targets"][0]["summary"];
    assert_eq!(summary["requests"]["succeeded"], REQUESTS, "{stdout}");
    let connections = &summary["connections"];
    assert_eq!(connections["stream_waits"], 0, "{connections}");
    assert_eq!(connections["connections_used"], 4, "{connections}");
    assert_eq!(connections["server_max_streams"], 100, "{connections}");
    let spread: Vec<u64> = connections["requests_per_connection"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(spread.iter().sum::<u64>(), REQUESTS, "{spread:?}");
    assert!(latency(summary, "stream_wait").is_null(), "{summary}");
    assert!(
        stdout
            .contains("http2 h2: 4 of 4 connection(s) used, 100 streams each (the server's limit)")
            && stdout.contains("no request waited for a stream slot"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_a_stream_slot_longer_than_the_first_byte_timeout_is_not_a_timeout() {
    let _serial = TIMING_LOCK.lock().await;
    // One stream at a time, 300 ms each, four users: the last in line waits about 900 ms for
    // its slot, longer than first_byte_timeout, and then gets its headers at once.
    let server = mock::start(
        MockConfig {
            ttft: LatencyModel::Fixed(Duration::from_millis(300)),
            itl: LatencyModel::Fixed(Duration::from_millis(1)),
            output_tokens: 2,
            max_concurrent_streams: Some(1),
            ..MockConfig::default()
        },
        MockOptions::default(),
    )
    .unwrap();
    let (results, stdout) = run_cli(&format!(
        "[[targets]]\nname = \"h2\"\nmodel = \"m\"\nbase_url = \"{}\"\nhttp = \"http2\"\n\
         first_byte_timeout = \"500ms\"\n\n\
         [[classes]]\nname = \"c\"\ninput_tokens = 16\n\n\
         [load]\nkind = \"closed\"\nusers = 4\nrequests = 8\n",
        server.base_url()
    ));
    let summary = &results["targets"][0]["summary"];
    assert_eq!(summary["requests"]["succeeded"], 8, "{stdout}");
    let wait_max = latency(summary, "stream_wait")["max"].as_f64().unwrap();
    assert!(
        wait_max > 500.0,
        "the longest stream wait was {wait_max} ms"
    );
}
