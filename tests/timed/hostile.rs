//! drover's own durability and its isolation from a hostile neighbour, timed: a run killed
//! or interrupted twice still leaves every finished request counted, and a 30 MB stream beside
//! an embedded mock neither bloats drover nor stalls the mock's target.

use crate::common;

use std::time::Duration;

use common::hostile::{HostileServer, Reply};
use common::{drover, only_results, only_run_dir, text};

/// A 30 s open-loop run against an embedded mock, exported, checkpointed every second.
const LONG_RUN: &str = r#"
name = "durable"

[[targets]]
name = "m"
model = "m"
[targets.mock]
ttft = "20ms"
itl = "5ms"
output_tokens = 8

[[classes]]
name = "c"
input_tokens = 8

[load]
kind = "open"
rate = 200
duration = "30s"
"#;

fn start_long_run(dir: &std::path::Path) -> std::process::Child {
    std::fs::write(dir.join("s.toml"), LONG_RUN).unwrap();
    std::process::Command::new(common::drover_bin())
        .current_dir(dir)
        .args([
            "run",
            "s.toml",
            "--out",
            "out",
            "--no-progress",
            "--export-requests",
            "--checkpoint-every",
            "1s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Requests a results file counts (every finished one: measured and warm-up).
fn counted(results: &serde_json::Value) -> u64 {
    let requests = &results["targets"][0]["summary"]["requests"];
    ["succeeded", "failed", "warmup_excluded"]
        .iter()
        .map(|k| requests[k].as_u64().unwrap())
        .sum()
}

/// Whole lines of an export (a torn last line, without its newline, is not counted).
fn whole_lines(path: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .count() as u64
}

#[test]
fn a_killed_run_leaves_every_request_its_checkpoint_counted() {
    let _serial = common::TIMING_LOCK.blocking_lock();
    for (attempt, wait_ms) in [2300u64, 2600, 2900, 3200, 3500].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = start_long_run(dir.path());
        std::thread::sleep(Duration::from_millis(wait_ms));
        // SAFETY: kill sends a signal to the child this test started; it touches no memory.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
        let run = only_run_dir(&dir.path().join("out"));
        let results: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(results["status"], "in_progress");
        let checkpoint = counted(&results);
        let exported = whole_lines(&run.join("requests.jsonl"));
        assert!(
            exported >= checkpoint,
            "attempt {attempt}: export {exported} < checkpoint {checkpoint}"
        );
        assert!(checkpoint > 0, "attempt {attempt}: nothing checkpointed");
    }
}

#[test]
fn a_second_interrupt_writes_every_finished_request_before_exiting() {
    let _serial = common::TIMING_LOCK.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_long_run(dir.path());
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY: kill sends a signal to the child this test started; it touches no memory.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    std::thread::sleep(Duration::from_millis(50));
    let second = std::time::Instant::now();
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    // Written at once, not after the 3 s it may wait for the writing.
    assert!(
        second.elapsed() < Duration::from_secs(2),
        "{:?}",
        second.elapsed()
    );
    let run = only_run_dir(&dir.path().join("out"));
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["status"], "interrupted");
    // Every request that finished is in the results: as many as the export holds.
    let exported = whole_lines(&run.join("requests.jsonl"));
    assert!(exported > 200, "{exported}");
    assert_eq!(counted(&results), exported);
}

/// Runs a hostile stream target (`chunks` events of `content`, one every millisecond: 64 MB/s
/// for 64 KiB events, as a fast network carries a stream) beside an embedded mock target, 2
/// closed-loop users each; returns the results.
fn beside_a_mock(chunks: usize, content: &'static str) -> serde_json::Value {
    let chunk = common::hostile::sse_chunk(content);
    let server = HostileServer::start(move |_| {
        let body = std::iter::repeat_n(chunk.clone(), chunks)
            .chain(std::iter::once(b"data: [DONE]\n\n".to_vec()));
        Reply::Paced(
            common::hostile::sse_head("text/event-stream"),
            Box::new(body),
            Duration::from_millis(1),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        r#"
name = "beside"

[[targets]]
name = "hostile"
model = "m"
base_url = "{}"
stream_usage = false

[[targets]]
name = "mock"
model = "m"
[targets.mock]
ttft = "20ms"
itl = "5ms"
output_tokens = 16

[[classes]]
name = "c"
input_tokens = 8

[load]
kind = "closed"
users = 2
duration = "6s"
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
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    only_results(&dir.path().join("out"))
}

#[test]
fn a_30_mb_stream_without_usage_neither_bloats_drover_nor_disturbs_another_target() {
    let _serial = common::TIMING_LOCK.blocking_lock();
    // 30 MiB of one repeated letter in 480 events of 64 KiB, no usage; and a small answer.
    let letters: &'static str = Box::leak("a".repeat(64 * 1024).into_boxed_str());
    let hostile = beside_a_mock(480, letters);
    let calm = beside_a_mock(8, "word ");
    let rss = |r: &serde_json::Value| r["environment"]["peak_rss_bytes"].as_u64().unwrap();
    let mock = |r: &serde_json::Value| r["targets"][1]["summary"].clone();
    let (hostile_mock, calm_mock) = (mock(&hostile), mock(&calm));
    let grew = rss(&hostile).saturating_sub(rss(&calm));
    assert!(grew <= 64 * 1024 * 1024, "peak RSS grew by {grew} bytes");
    let done = |s: &serde_json::Value| s["requests"]["succeeded"].as_f64().unwrap();
    let ratio = done(&hostile_mock) / done(&calm_mock);
    assert!((0.9..=1.1).contains(&ratio), "mock completed {ratio:.3}x");
    let itl = |s: &serde_json::Value, at: &str| s["latency_ms"]["itl"][at].as_f64().unwrap();
    eprintln!(
        "peak RSS {} vs {} bytes; mock completed {} vs {}; mock ITL p99 {} vs {} ms, max {} vs {} ms",
        rss(&hostile),
        rss(&calm),
        done(&hostile_mock),
        done(&calm_mock),
        itl(&hostile_mock, "p99"),
        itl(&calm_mock, "p99"),
        itl(&hostile_mock, "max"),
        itl(&calm_mock, "max"),
    );
    // No stall: inline work on the async workers made a 15,007 ms gap here; a gap a busy
    // machine's scheduler produces stays far below 250 ms.
    assert!(itl(&hostile_mock, "max") < 250.0, "{hostile_mock}");
    // Two runs' ITL p99 agree within 2 ms only on a quiet machine (under a CPU hog the calm run
    // alone moves more than that): `bash benches/hostile-neighbour.sh` checks it there.
    if std::env::var_os("HOSTILE_STRICT_TIMING").is_some() {
        let moved = (itl(&hostile_mock, "p99") - itl(&calm_mock, "p99")).abs();
        assert!(moved <= 2.0, "mock ITL p99 moved {moved:.2} ms");
    }
    // The hostile target's answers were all read and counted, in bounded memory.
    let hostile_target = &hostile["targets"][0]["summary"];
    assert!(
        hostile_target["requests"]["succeeded"].as_u64().unwrap() >= 2,
        "{hostile_target}"
    );
    assert_eq!(hostile_target["requests"]["failed"], 0, "{hostile_target}");
}
