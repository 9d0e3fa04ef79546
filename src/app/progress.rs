//! Live progress on stderr, once a second: elapsed time, requests done and failed, the current
//! completion rate and the running TTFT p50/p99. Redrawn in place on a terminal, one line per
//! second otherwise (CI logs). A [`RecordSink`] of the run, made by [`sink`].

use std::io::{IsTerminal, Write};
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::driver::{RecordSink, SinkFactory};
use crate::record::RequestRecord;

/// The progress line as a run's live output.
pub fn sink() -> SinkFactory {
    std::sync::Arc::new(|start| Box::new(Progress::new(start)) as Box<dyn RecordSink>)
}

struct Progress {
    terminal: bool,
    start: Instant,
    done: u64,
    failed: u64,
    done_at_last_print: u64,
    last_print: Instant,
    ttft: Histogram<u64>,
    printed: bool,
}

impl Progress {
    fn new(start: Instant) -> Self {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            start,
            done: 0,
            failed: 0,
            done_at_last_print: 0,
            last_print: start,
            ttft: crate::hist::new_histogram(),
            printed: false,
        }
    }
}

impl RecordSink for Progress {
    fn record(&mut self, record: &RequestRecord) {
        match record.outcome {
            Ok(()) => {
                self.done += 1;
                if let Some(ttft) = record.ttft() {
                    self.ttft.saturating_record(crate::hist::micros(ttft));
                }
            }
            Err(_) => self.failed += 1,
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let interval = now.duration_since(self.last_print).as_secs_f64();
        let finished = self.done + self.failed;
        let rate = if interval > 0.0 {
            (finished - self.done_at_last_print) as f64 / interval
        } else {
            0.0
        };
        self.done_at_last_print = finished;
        self.last_print = now;
        let ttft = if self.ttft.is_empty() {
            "TTFT -".to_string()
        } else {
            format!(
                "TTFT p50 {:.1} ms p99 {:.1} ms",
                self.ttft.value_at_quantile(0.5) as f64 / 1000.0,
                self.ttft.value_at_quantile(0.99) as f64 / 1000.0
            )
        };
        let line = format!(
            "[{:>6.1}s] done {} failed {} | {:.1} req/s | {}",
            now.duration_since(self.start).as_secs_f64(),
            self.done,
            self.failed,
            rate,
            ttft
        );
        let mut stderr = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(stderr, "\r\x1b[2K{line}")
        } else {
            writeln!(stderr, "{line}")
        };
        let _ = stderr.flush();
        self.printed = true;
    }

    /// Ends an in-place progress line so the next output starts on a fresh line.
    fn finish(&mut self) {
        if self.terminal && self.printed {
            let _ = writeln!(std::io::stderr());
        }
    }
}
