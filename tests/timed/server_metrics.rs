//! Scraping the server's `/metrics` during a run. `scenarios/server-metrics.toml` against the
//! embedded mock (4 decode slots, about 14 requests/s) above its capacity: the scraped waiting
//! requests rise with the client's TTFT and the run is flagged saturated; below it, not. And
//! endpoints that answer in 10 s, send 50 MB or send HTML: the run sends the same requests with
//! the same TTFT as without scraping, and says what went wrong.

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::{drover, only_results, text};

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

#[test]
fn above_capacity_the_queue_rises_with_ttft_and_is_flagged_and_below_it_is_not() {
    let _serial = common::TIMING_LOCK.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/server-metrics.toml");
    let run = |out: &str, rate: &str| {
        let output = drover(
            dir.path(),
            &["run", scenario, "--no-progress", "--out", out],
            &[
                ("DROVER_SET_RATE", &format!("load.rate={rate}")),
                ("DROVER_SET_DURATION", "load.duration=5s"),
            ],
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        (only_results(&dir.path().join(out)), text(&output.stdout))
    };

    let (above, stdout) = run("above", "25");
    let target = &above["targets"][0];
    let metrics = &target["server_metrics"];
    assert_eq!(metrics["server"], "vllm");
    let points = metrics["points"].as_array().unwrap();
    assert!(points.len() >= 10, "{} scrapes", points.len());
    assert_eq!(metrics["failed"], serde_json::Value::Null, "{metrics}");
    // Waiting requests rise with TTFT over the 5 s of sending: the later half of each is higher.
    let while_sending = |pick: &dyn Fn(&serde_json::Value) -> Option<f64>, t: &str| {
        let values: Vec<f64> = points
            .iter()
            .filter(|p| p[t].as_f64().unwrap() < 6.0)
            .filter_map(pick)
            .collect();
        let half = values.len() / 2;
        (mean(&values[..half]), mean(&values[half..]))
    };
    let (early_waiting, late_waiting) = while_sending(&|p| p["waiting"].as_f64(), "t_s");
    assert!(
        late_waiting > early_waiting + 10.0,
        "waiting {early_waiting:.1} -> {late_waiting:.1}"
    );
    let series = target["series"].as_array().unwrap();
    let ttft: Vec<f64> = series
        .iter()
        .filter(|p| p["second"].as_f64().unwrap() < 6.0)
        .filter_map(|p| p["ttft_p50_ms"].as_f64())
        .collect();
    let half = ttft.len() / 2;
    assert!(
        mean(&ttft[half..]) > 2.0 * mean(&ttft[..half]),
        "client TTFT p50 per second: {ttft:?}"
    );
    let saturation: Vec<&str> = metrics["saturation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        saturation.iter().any(|s| s.contains("queue grew")),
        "{saturation:?}"
    );
    assert!(
        saturation
            .iter()
            .any(|s| s.contains("KV cache stayed full")),
        "{saturation:?}"
    );
    // The server's own TTFT (from arrival, waiting included) is the client's within its buckets.
    let server_ttft = metrics["summary"]["ttft_ms"]["p50"].as_f64().unwrap();
    let client_ttft = target["summary"]["latency_ms"]["ttft"]["p50"]
        .as_f64()
        .unwrap();
    assert!(
        (server_ttft - client_ttft).abs() < 0.2 * client_ttft,
        "server {server_ttft} vs client {client_ttft}"
    );
    assert!(stdout.contains("server mock: SATURATED: the server's queue grew"));
    let folder = common::only_run_dir(&dir.path().join("above"));
    let summary = std::fs::read_to_string(folder.join("summary.md")).unwrap();
    assert!(summary.contains("## Server metrics"), "{summary}");
    assert!(summary.contains("SATURATED"), "{summary}");
    let html = std::fs::read_to_string(folder.join("report.html")).unwrap();
    assert!(html.contains("id=\"server-metrics\""));
    assert!(
        html.contains("charts/server.svg"),
        "the chart is in the report"
    );
    assert!(folder.join("charts/server.png").is_file());

    let (below, stdout) = run("below", "5");
    let metrics = &below["targets"][0]["server_metrics"];
    assert_eq!(
        metrics["saturation"],
        serde_json::json!([]),
        "{}",
        metrics["summary"]
    );
    assert!(metrics["summary"]["max_waiting"].as_f64().unwrap() <= 2.0);
    assert!(
        stdout.contains("server mock: no sign of saturation"),
        "{stdout}"
    );
}

/// A loopback server whose `/metrics` misbehaves: `/slow` answers after 10 s, `/huge` sends a
/// 50 MB page, `/html` an HTML page. One thread per connection, for the test's length.
fn misbehaving_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    port
}

fn answer(mut stream: TcpStream) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let line = String::from_utf8_lossy(&request);
    if line.starts_with("GET /slow") {
        std::thread::sleep(Duration::from_secs(10));
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nm 1.0\n");
    } else if line.starts_with("GET /huge") {
        const SIZE: usize = 50 * 1024 * 1024;
        let _ = stream.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {SIZE}\r\n\r\n"
            )
            .as_bytes(),
        );
        let chunk = "metric_with_a_long_name{label=\"value\"} 1.0\n".repeat(1500);
        let mut sent = 0;
        while sent < SIZE {
            let part = &chunk.as_bytes()[..chunk.len().min(SIZE - sent)];
            if stream.write_all(part).is_err() {
                return;
            }
            sent += part.len();
        }
    } else {
        let body = "<!doctype html>\n<html><head><title>Metrics</title></head>\n<body><h1>Dashboard</h1></body>\n</html>\n";
        let _ = stream.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
}

/// A 3 s constant-rate run against an embedded mock with fixed latencies, scraping `metrics`
/// (a TOML inline table) when given; returns (sent, TTFT p50, results).
fn constant_run(dir: &Path, name: &str, metrics: Option<&str>) -> (u64, f64, serde_json::Value) {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let scrape = metrics
        .map(|m| format!("server_metrics = {m}\n"))
        .unwrap_or_default();
    std::fs::write(
        folder.join("s.toml"),
        format!(
            r#"name = "scrape-{name}"
seed = 5

[[targets]]
name = "mock"
model = "mock-llm"
{scrape}
[targets.mock]
ttft = "40ms"
itl = "5ms"
output_tokens = 16

[[classes]]
name = "c"
input_tokens = 32
max_tokens = 16

[load]
kind = "open"
arrival = "constant"
rate = 20
duration = "3s"
"#
        ),
    )
    .unwrap();
    let output = common::run_s_toml(&folder, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let results = only_results(&folder.join("out"));
    let summary = &results["targets"][0]["summary"];
    (
        summary["requests"]["sent"].as_u64().unwrap(),
        summary["latency_ms"]["ttft"]["p50"].as_f64().unwrap(),
        results,
    )
}

#[test]
fn a_slow_huge_or_html_metrics_page_costs_the_load_nothing_and_is_reported() {
    let _serial = common::TIMING_LOCK.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let port = misbehaving_server();
    let (sent, ttft, _) = constant_run(dir.path(), "plain", None);
    assert_eq!(sent, 60);
    for (path, class, message) in [
        ("slow", "timeout", "no whole page within 500ms"),
        ("huge", "too_large", "larger than max_bytes (4194304 bytes)"),
        ("html", "not_prometheus", "is not Prometheus text"),
    ] {
        let metrics = format!("{{ url = \"http://127.0.0.1:{port}/{path}\", every = \"500ms\" }}");
        let (scraped_sent, scraped_ttft, results) = constant_run(dir.path(), path, Some(&metrics));
        eprintln!(
            "{path}: sent {scraped_sent}, TTFT p50 {scraped_ttft:.2} ms (without scraping: {sent}, {ttft:.2} ms)"
        );
        // The same requests, the same TTFT: the mock's fixed 40 ms, measured within 3 ms of
        // the run without scraping (the noise of two runs on a busy 2-core machine).
        assert_eq!(scraped_sent, sent, "{path}");
        assert!(
            (scraped_ttft - ttft).abs() < 3.0,
            "{path}: TTFT p50 {scraped_ttft} ms with scraping, {ttft} ms without"
        );
        let server = &results["targets"][0]["server_metrics"];
        assert!(
            server["failed"][class].as_u64().unwrap_or(0) >= 1,
            "{path}: {server}"
        );
        assert!(
            server["last_error"].as_str().unwrap().contains(message),
            "{path}: {server}"
        );
        assert_eq!(server["scrapes"], 0, "{path}");
        let warnings = results["warnings"].to_string();
        assert!(
            warnings.contains("scrapes of its server metrics") && warnings.contains(class),
            "{path}: {warnings}"
        );
        if path != "slow" {
            // A page that is not usable three times in a row is not asked for again.
            assert!(
                server["stopped"]
                    .as_str()
                    .unwrap()
                    .contains("3 unusable answers in a row"),
                "{path}: {server}"
            );
        }
    }
}
