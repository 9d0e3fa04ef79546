//! The live progress as a person sees it: on a real terminal (a tmux pane), a bar, a percentage,
//! an ETA and the last 10 seconds' percentiles, redrawn in place, and after Ctrl-C the terminal
//! as it was (no hidden cursor, no alternate screen); on a pipe, plain lines without escape codes.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{drover, drover_bin, text};

/// A tmux server of this test's own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        Tmux {
            socket: format!("drover-live-{}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux is installed (Debian package tmux)");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "live"])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// The pane's screen once `ready` holds for it, or after `limit`.
fn wait_for(tmux: &Tmux, ready: impl Fn(&str) -> bool, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let screen = tmux.screen();
        if ready(&screen) || start.elapsed() > limit {
            return screen;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_terminal_gets_a_bar_an_eta_and_recent_percentiles_and_ctrl_c_leaves_it_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux::new();
    let command = format!(
        "cd {} && {} run --mock --rate 20 --duration 20s --out out > summary.txt; echo EXIT=$?; sleep 60",
        dir.path().display(),
        drover_bin().display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "live",
        "-x",
        "160",
        "-y",
        "40",
        &command,
    ]);
    // A frame with answers in: the bar, the percentage and the ETA of a 20 s run (10 s to 19 s
    // left in its first ten seconds), and percentiles over the last 10 s.
    let answered = |screen: &str| {
        screen.contains("(last 10s ")
            && !screen.contains("(last 10s -)")
            && screen.contains("ETA 1")
    };
    let screen = wait_for(&tmux, answered, Duration::from_secs(20));
    assert!(answered(&screen), "{screen}");
    assert!(screen.contains('█') && screen.contains('░'), "{screen}");
    assert!(screen.contains("in flight"), "{screen}");
    // Redrawn in place: one headline on the screen, not one per second.
    assert_eq!(screen.matches(" ETA ").count(), 1, "{screen}");
    tmux.run(&["send-keys", "-t", "live", "C-c"]);
    let screen = wait_for(&tmux, |s| s.contains("EXIT="), Duration::from_secs(20));
    assert!(screen.contains("EXIT=130"), "{screen}");
    assert!(screen.contains("interrupted: no new requests"), "{screen}");
    // The interrupt message was not drawn over by a later frame.
    let flags = tmux.run(&[
        "display-message",
        "-p",
        "-t",
        "live",
        "#{cursor_flag} #{alternate_on}",
    ]);
    assert_eq!(flags.trim(), "1 0", "cursor visible, no alternate screen");
    let summary = std::fs::read_to_string(dir.path().join("summary.txt")).unwrap();
    assert!(
        !summary.contains('\x1b'),
        "the summary on stdout has no escape codes"
    );
}

#[test]
fn a_pipe_gets_plain_lines_with_recent_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let output = drover(
        dir.path(),
        &[
            "run",
            "--mock",
            "--rate",
            "20",
            "--duration",
            "3s",
            "--out",
            "out",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(!stderr.contains('\x1b'), "{stderr}");
    let headlines: Vec<&str> = stderr.lines().filter(|l| l.contains(" ETA ")).collect();
    assert!(headlines.len() >= 3, "{stderr}");
    assert!(headlines[0].contains('%'), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("TTFT p50/p99") && l.contains("last 10s")),
        "{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.starts_with("  target: done ")),
        "{stderr}"
    );
}

#[test]
fn a_batch_api_target_shows_its_batches_while_they_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        "[[targets]]\nname = \"batched\"\nmodel = \"m\"\nmode = \"batch-api\"\n[targets.mock]\nbatch_processing_time = \"2500ms\"\n\n[[classes]]\nname = \"c\"\ninput_tokens = 8\nmax_tokens = 8\n\n[load]\nkind = \"closed\"\nusers = 1\nrequests = 40\n",
    )
    .unwrap();
    let output = drover(dir.path(), &["run", "s.toml", "--out", "out"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let batch_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("    batch API: 1 batch ("))
        .collect();
    assert!(!batch_lines.is_empty(), "{stderr}");
    assert!(
        batch_lines[0].contains("of 40 as the provider counts"),
        "{stderr}"
    );
    // While the batch runs, its requests are in flight.
    assert!(stderr.contains("in flight 40"), "{stderr}");
}
