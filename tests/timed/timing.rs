//! Timing accuracy end to end: the driver against the mock. Each test holds `TIMING_LOCK`, so
//! they run one at a time in this binary (cargo runs test binaries one after another).
//!
//! Tolerances are those in the issue's acceptance checks. The mock schedules tokens at absolute
//! deadlines and tokio's timer fires at the first millisecond tick at or after a deadline, so a
//! configured 50 ms reads 50–51 ms; client-side overhead adds well under a millisecond.
//! The send-time bound of the trace replay is stated beyond what a probe thread measures of the
//! machine's own wake-up lateness during the same seconds, so a busy neighbour on a 2-core
//! machine (which preempts any thread for whole scheduler slices) does not fail it.

use crate::common;

use std::time::Duration;

use common::{run_scenario, stat, summary, TIMING_LOCK};
use drover::driver::{self, RunOptions, StopSignal};
use drover::mock::{self, LatencyModel, MockConfig, MockOptions};

/// Starts a standalone mock with fixed delays.
fn start_mock(ttft_ms: u64, itl_ms: u64, output_tokens: u32) -> mock::MockHandle {
    mock::start(
        MockConfig {
            ttft: LatencyModel::Fixed(Duration::from_millis(ttft_ms)),
            itl: LatencyModel::Fixed(Duration::from_millis(itl_ms)),
            output_tokens,
            ..MockConfig::default()
        },
        MockOptions::default(),
    )
    .unwrap()
}

/// A scenario with one target at `server` and one synthetic class, under the given `[load]` body.
fn scenario_against(server: &mock::MockHandle, load: &str) -> String {
    format!(
        "[[targets]]\nname = \"local\"\nmodel = \"m\"\nbase_url = \"{}\"\n\n\
         [[classes]]\nname = \"c\"\ninput_tokens = 16\n\n[load]\n{load}",
        server.base_url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_measures_configured_ttft_and_itl() {
    let _serial = TIMING_LOCK.lock().await;
    let results = run_scenario(
        r#"
[[targets]]
name = "mock"
model = "m"
[targets.mock]
ttft = "50ms"
itl = "10ms"
output_tokens = 32

[[classes]]
name = "c"
input_tokens = 32

[load]
kind = "closed"
users = 8
requests = 200
"#,
    )
    .await;
    let all = summary(&results);
    assert_eq!(all.requests.sent, 200);
    assert_eq!(all.requests.succeeded, 200);
    assert_eq!(all.requests.failed, 0, "{:?}", all.error_samples);
    let ttft = stat(all, "ttft");
    let itl = stat(all, "itl");
    assert_eq!(ttft.count, 200);
    assert_eq!(itl.count, 200 * 31);
    assert!((50.0..=52.0).contains(&ttft.p50), "TTFT p50 {ttft:?}");
    assert!((10.0..=11.0).contains(&itl.p50), "ITL p50 {itl:?}");
    assert_eq!(all.tokens.output, 200 * 32);
    assert_eq!(all.tokens.source_usage, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_rate_times_duration() {
    let _serial = TIMING_LOCK.lock().await;
    let server = start_mock(5, 1, 4);
    let results = run_scenario(&scenario_against(
        &server,
        "kind = \"open\"
rate = 50
duration = \"4s\"
",
    ))
    .await;
    let sent = summary(&results).requests.sent;
    assert!((199..=201).contains(&sent), "sent {sent}");
    assert!((199..=201).contains(&server.requests_received()));
    assert_eq!(summary(&results).requests.failed, 0);
    // Evenly spaced arrivals at 50/s against a fast server leave on time.
    assert!(stat(summary(&results), "schedule_lag").p99 < 10.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrected_latency_shows_requests_held_back_by_a_stall() {
    let _serial = TIMING_LOCK.lock().await;
    let server = start_mock(10, 2, 8);
    let text = scenario_against(
        &server,
        "kind = \"open\"
rate = 50
duration = \"4s\"
max_in_flight = 4
",
    );
    let plan = drover::scenario::parse(&text, std::path::Path::new("co.toml")).unwrap();
    let run = driver::run(&plan, RunOptions::default(), StopSignal::default());
    let stall = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        server.pause_for(Duration::from_secs(1));
    };
    let (results, ()) = tokio::join!(run, stall);
    let results = results.unwrap();
    let all = summary(&results);
    assert_eq!(all.requests.failed, 0, "{:?}", all.error_samples);
    assert!((199..=201).contains(&all.requests.sent));
    let corrected = stat(all, "e2e_corrected");
    let service = stat(all, "e2e");
    let lag = stat(all, "schedule_lag");
    assert!(corrected.p90 >= 400.0, "corrected E2E {corrected:?}");
    assert!(lag.max >= 900.0, "schedule lag {lag:?}");
    assert!(service.p90 < 100.0, "service E2E {service:?}");
    assert!(
        results.warnings.iter().any(|w| w.contains("schedule lag")),
        "{:?}",
        results.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_only_prelude_is_the_first_event_but_not_the_first_token() {
    let _serial = TIMING_LOCK.lock().await;
    // The mock sends a role-only chunk at 10 ms and the first content at 50 ms.
    let results = run_scenario(
        r#"
[[targets]]
name = "mock"
model = "m"
[targets.mock]
ttft = "50ms"
itl = "5ms"
output_tokens = 4
prelude = "10ms"

[[classes]]
name = "c"
input_tokens = 8

[load]
kind = "closed"
users = 2
requests = 20
"#,
    )
    .await;
    let all = summary(&results);
    assert_eq!(all.requests.succeeded, 20);
    let first_event = stat(all, "time_to_first_event");
    let ttft = stat(all, "ttft");
    assert!((10.0..=12.0).contains(&first_event.p50), "{first_event:?}");
    assert!((50.0..=52.0).contains(&ttft.p50), "{ttft:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_keeps_its_timing_at_200_concurrent_streams() {
    let _serial = TIMING_LOCK.lock().await;
    let server = start_mock(50, 10, 20);
    let results = run_scenario(&scenario_against(
        &server,
        "kind = \"closed\"
users = 200
requests = 1000
warmup_requests = 200
",
    ))
    .await;
    let all = summary(&results);
    assert_eq!(all.requests.succeeded, 800, "{:?}", all.error_samples);
    // What the mock produced, measured where it emits each frame: within 1 ms at p50.
    let produced = server.produced_delays();
    assert_eq!(produced.ttft.count, 1000);
    assert!((produced.ttft.p50 - 50.0).abs() <= 1.0, "{produced:?}");
    assert!((produced.itl.p50 - 10.0).abs() <= 1.0, "{produced:?}");
    // What the client saw adds its own work and loopback, which grow when the machine is
    // oversubscribed; it can never read faster than what the mock produced.
    let ttft = stat(all, "ttft");
    let itl = stat(all, "itl");
    assert!(ttft.p50 >= produced.ttft.p50 - 0.1, "TTFT {ttft:?}");
    assert!(itl.p50 >= 10.0, "ITL {itl:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_entry_trace_replays_on_time() {
    let _serial = TIMING_LOCK.lock().await;
    let server = start_mock(2, 1, 4);
    let dir = tempfile::tempdir().unwrap();
    // 1,000 requests 5 ms apart (200 req/s), with a little jitter as a real trace has, recorded
    // at half speed and replayed at 2x.
    let mut trace = String::new();
    for k in 0..1000u64 {
        let jitter = (k * 7919 % 5) as f64 * 0.4;
        let stamp = (k as f64 * 5.0 + jitter) * 2.0;
        trace.push_str(&format!(
            "{{\"timestamp_ms\": {stamp}, \"input_tokens\": 16, \"output_tokens\": 4}}\n"
        ));
    }
    std::fs::write(dir.path().join("trace.jsonl"), trace).unwrap();
    let scenario = format!(
        "[[targets]]\nname = \"local\"\nmodel = \"m\"\nbase_url = \"{}\"\n\n\
         [[classes]]\nname = \"c\"\ninput_tokens = 16\n\n\
         [load]\nkind = \"trace\"\ntrace = \"trace.jsonl\"\nspeed = 2.0\n",
        server.base_url()
    );
    let started = std::time::Instant::now();
    let probe = SchedulingProbe::start(started, Duration::from_millis(5), 1000);
    let results = common::run_scenario_in(dir.path(), &scenario).await;
    let elapsed = started.elapsed();
    let machine_p99 = probe.p99_ms();
    let all = summary(&results);
    assert_eq!(all.requests.sent, 1000);
    assert_eq!(all.requests.failed, 0, "{:?}", all.error_samples);
    assert_eq!(server.requests_received(), 1000);
    // The last entry is due at 4.995 s (9,990 ms recorded, 2x speed).
    assert!(
        elapsed >= Duration::from_millis(4995) && elapsed < Duration::from_secs(7),
        "took {elapsed:?}"
    );
    // drover's own lateness is at most 2 ms at p99 beyond what this machine inflicts right now
    // on any thread that sleeps to a deadline and hands the wake-up on (on a quiet machine the
    // probe reads about 0.1 ms, so the bound is about 2 ms there).
    let lag = stat(all, "schedule_lag");
    assert!(
        lag.p99 <= machine_p99 + 2.0,
        "schedule lag {lag:?}, machine's own wake-up lateness p99 {machine_p99:.3} ms"
    );
    let output = all.output_length.as_ref().expect("trace caps are sent");
    assert_eq!((output.requests, output.requested_mean), (1000, 4.0));
}

/// What the machine itself does to deadlines while a timing test runs: one thread sleeps to
/// absolute deadlines at a fixed cadence and hands each wake-up to a second thread, which notes
/// how late it arrived. That is the path of drover's own send times (the timer thread wakes, a
/// worker picks the request up), without drover; on a CPU shared with a busy neighbour both are
/// preempted alike, so a bound on drover's lateness is stated beyond this probe's.
struct SchedulingProbe {
    recorder: std::thread::JoinHandle<Vec<f64>>,
}

impl SchedulingProbe {
    fn start(first: std::time::Instant, every: Duration, count: u32) -> Self {
        let (wake, woken) = std::sync::mpsc::channel::<std::time::Instant>();
        std::thread::spawn(move || {
            for k in 0..count {
                let deadline = first + every * k;
                let now = std::time::Instant::now();
                if deadline > now {
                    std::thread::sleep(deadline - now);
                }
                if wake.send(deadline).is_err() {
                    return;
                }
            }
        });
        let recorder = std::thread::spawn(move || {
            woken
                .iter()
                .map(|deadline| deadline.elapsed().as_secs_f64() * 1000.0)
                .collect()
        });
        SchedulingProbe { recorder }
    }

    /// The 99th percentile of the hand-over lateness, in ms (waits for the probe to finish).
    fn p99_ms(self) -> f64 {
        let mut late = self
            .recorder
            .join()
            .expect("the probe thread does not panic");
        late.sort_by(f64::total_cmp);
        let rank = ((late.len() as f64 * 0.99).ceil() as usize).clamp(1, late.len().max(1));
        late.get(rank - 1).copied().unwrap_or(0.0)
    }
}

/// The nearest-rank percentile of `values` (sorted in place).
fn nearest_rank(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// A cell of summary.md's table as a number (`1,011` → 1011).
fn cell_number(cell: &str) -> f64 {
    cell.trim()
        .replace(',', "")
        .parse()
        .unwrap_or_else(|e| panic!("{cell}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_shows_corrected_latency_of_a_stalled_server_as_the_request_log_has_it() {
    let _serial = TIMING_LOCK.lock().await;
    // An open loop held to one request in flight, against a server that stalls a stream for a
    // second about every 50th request (2%, drawn from the mock's seed): requests scheduled
    // during a stall wait, which only latency from the intended send time shows.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        r#"name = "stalled"
[[targets]]
name = "mock"
model = "m"
mode = "stream"
[targets.mock]
ttft = "5ms"
itl = "1ms"
output_tokens = 8
faults = { stall = 0.02, stall_for = "1s" }

[[classes]]
name = "c"
input_tokens = 16
max_tokens = 8

[load]
kind = "open"
rate = 25
requests = 200
max_in_flight = 1
"#,
    )
    .unwrap();
    let output = common::run_s_toml(dir.path(), &["--export-requests"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        common::text(&output.stderr)
    );
    let run = common::only_run_dir(&dir.path().join("out"));

    // Corrected E2E of each successful request, from the log: its wait to be sent plus its
    // service time.
    let log = std::fs::read_to_string(run.join("requests.jsonl")).unwrap();
    let mut corrected = Vec::new();
    let mut service = Vec::new();
    for line in log.lines() {
        let request: serde_json::Value = serde_json::from_str(line).unwrap();
        if request["outcome"] != "ok" || request["warmup"] == true {
            continue;
        }
        let number = |field: &str| request[field].as_f64().unwrap();
        service.push(number("e2e_ms"));
        corrected.push(number("sent_ms") - number("intended_ms") + number("e2e_ms"));
    }
    assert_eq!(corrected.len(), 200, "every request succeeded");
    let recomputed_p90 = nearest_rank(&mut corrected, 0.90);
    let service_p90 = nearest_rank(&mut service, 0.90);

    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    let row = summary
        .lines()
        .find(|l| l.starts_with("| mock | (all) | E2E |"))
        .unwrap_or_else(|| panic!("no corrected E2E row in:\n{summary}"));
    let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
    let (shown_p90, shown_p90_corrected) = (cell_number(cells[5]), cell_number(cells[6]));
    // The stalls must have made a difference for the comparison to mean anything.
    assert!(
        recomputed_p90 > 5.0 * service_p90,
        "corrected p90 {recomputed_p90} ms vs service p90 {service_p90} ms"
    );
    assert!(
        (shown_p90_corrected - recomputed_p90).abs() <= 0.05 * recomputed_p90,
        "summary.md corrected E2E p90 {shown_p90_corrected} ms, requests.jsonl {recomputed_p90} ms"
    );
    assert!(
        (shown_p90 - service_p90).abs() <= 0.05 * service_p90.max(1.0),
        "summary.md E2E p90 {shown_p90} ms, requests.jsonl {service_p90} ms"
    );
    assert!(summary.contains("coordinated omission"), "{summary}");
}
