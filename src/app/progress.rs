//! Live progress on stderr, a [`RecordSink`] of the run made by [`sink`]. Once a second it shows,
//! per target: requests done and failed (with the most frequent error classes), in flight,
//! requests and output tokens per second, and TTFT and E2E p50/p99 both since the start and over
//! the last 10 seconds. The run's progress (elapsed against the planned duration, or requests
//! finished against the planned count) comes with a percentage and an ETA. A target sending
//! through a Batch API also shows its batches' status and counts while they run.
//!
//! On a terminal ([`Style::Live`]) the block is redrawn in place, with a bar and, unless
//! `NO_COLOR` or `--color never`, colours; it never changes the terminal's modes, so an interrupt
//! or a panic leaves nothing to restore. Elsewhere ([`Style::Lines`]: a pipe, a CI log) it prints
//! plain lines, one per target each second, with no escape codes.

use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::driver::{LiveCounts, RecordSink, SinkFactory};
use crate::record::RequestRecord;
use crate::scenario::{LoadShape, RunPlan};

/// Set when something else wrote to stderr since the last frame (a warning, the interrupt
/// message): the next frame is drawn below it instead of over it.
static OTHER_OUTPUT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Tells a live progress display that stderr got other lines, which its next frame must not
/// draw over. Whatever prints to stderr while a run goes calls it after printing.
pub fn other_output_written() {
    OTHER_OUTPUT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Seconds the "recent" percentiles cover.
const RECENT_SECONDS: usize = 10;
/// Width of the progress bar, in cells.
const BAR_CELLS: usize = 30;

/// When colours are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (to anything but the empty string).
    #[default]
    Auto,
    Always,
    Never,
}

/// How progress is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Redrawn in place on a terminal.
    Live { color: bool },
    /// Plain lines: no escape codes.
    Lines,
}

impl Style {
    /// The style for stderr as it is: live on a terminal (not `TERM=dumb`), lines elsewhere.
    pub fn for_stderr(color: ColorChoice) -> Style {
        let terminal = std::io::stderr().is_terminal()
            && std::env::var("TERM").map_or(true, |term| term != "dumb");
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        match (terminal, color) {
            (false, _) => Style::Lines,
            (true, ColorChoice::Always) => Style::Live { color: true },
            (true, ColorChoice::Never) => Style::Live { color: false },
            (true, ColorChoice::Auto) => Style::Live { color: !no_color },
        }
    }
}

/// What the progress of a run is measured against.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    targets: Vec<String>,
    /// The load's planned length, when it has one.
    duration: Option<Duration>,
    /// Requests per target the load plans, when it plans a number.
    requests: Option<f64>,
}

impl Expected {
    fn of(plan: &RunPlan) -> Expected {
        let duration = plan.load.duration.or_else(|| match &plan.load.shape {
            LoadShape::Open { stages, .. } => stages
                .iter()
                .map(|stage| stage.duration)
                .sum::<Option<Duration>>(),
            LoadShape::Closed { .. } | LoadShape::Trace { .. } => None,
        });
        Expected {
            targets: plan.targets.iter().map(|t| t.name.clone()).collect(),
            duration,
            requests: plan
                .load
                .expected_requests(plan.shard)
                .filter(|n| n.is_finite() && *n > 0.0),
        }
    }
}

/// The progress display of a run of `plan`; without `length`, no percentage or ETA (a migration
/// phase runs a share of the plan's load, not the plan).
pub fn sink(plan: &RunPlan, style: Style, length: bool) -> SinkFactory {
    let mut expected = Expected::of(plan);
    if !length {
        expected.duration = None;
        expected.requests = None;
    }
    std::sync::Arc::new(move |start| {
        Box::new(Progress::new(start, expected.clone(), style)) as Box<dyn RecordSink>
    })
}

/// TTFT and E2E histograms of one period.
struct Latencies {
    ttft: Histogram<u64>,
    e2e: Histogram<u64>,
}

impl Latencies {
    fn new() -> Self {
        Latencies {
            ttft: crate::hist::new_histogram(),
            e2e: crate::hist::new_histogram(),
        }
    }

    fn add(&mut self, other: &Latencies) {
        let _ = self.ttft.add(&other.ttft);
        let _ = self.e2e.add(&other.e2e);
    }
}

/// One target's counts.
struct TargetProgress {
    done: u64,
    failed: u64,
    errors: BTreeMap<String, u64>,
    /// Finished requests and output tokens since the last tick.
    finished_now: u64,
    tokens_now: u64,
    total: Latencies,
    this_second: Latencies,
    last_seconds: VecDeque<Latencies>,
}

impl TargetProgress {
    fn new() -> Self {
        TargetProgress {
            done: 0,
            failed: 0,
            errors: BTreeMap::new(),
            finished_now: 0,
            tokens_now: 0,
            total: Latencies::new(),
            this_second: Latencies::new(),
            last_seconds: VecDeque::with_capacity(RECENT_SECONDS),
        }
    }

    fn record(&mut self, record: &RequestRecord) {
        self.finished_now += 1;
        match &record.outcome {
            Ok(()) => {
                self.done += 1;
                self.tokens_now += record.output_tokens;
                let e2e = crate::hist::micros(record.e2e());
                self.total.e2e.saturating_record(e2e);
                self.this_second.e2e.saturating_record(e2e);
                if let Some(ttft) = record.ttft() {
                    let ttft = crate::hist::micros(ttft);
                    self.total.ttft.saturating_record(ttft);
                    self.this_second.ttft.saturating_record(ttft);
                }
            }
            Err(failure) => {
                self.failed += 1;
                *self.errors.entry(failure.class.key()).or_default() += 1;
            }
        }
    }

    /// Ends a second: its latencies join the recent window (the oldest second leaves it).
    fn close_second(&mut self) -> Latencies {
        let second = std::mem::replace(&mut self.this_second, Latencies::new());
        if self.last_seconds.len() == RECENT_SECONDS {
            self.last_seconds.pop_front();
        }
        self.last_seconds.push_back(second);
        let mut recent = Latencies::new();
        for second in &self.last_seconds {
            recent.add(second);
        }
        recent
    }

    /// The two most frequent error classes: `http_500 12, timeout 3`.
    fn top_errors(&self) -> String {
        let mut classes: Vec<(&String, &u64)> = self.errors.iter().collect();
        classes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        classes
            .iter()
            .take(2)
            .map(|(class, count)| format!("{class} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

struct Progress {
    style: Style,
    expected: Expected,
    start: Instant,
    last_tick: Instant,
    targets: Vec<TargetProgress>,
    /// Lines drawn last time (to move back over them when redrawing in place).
    drawn: usize,
}

impl Progress {
    fn new(start: Instant, expected: Expected, style: Style) -> Self {
        let targets = expected
            .targets
            .iter()
            .map(|_| TargetProgress::new())
            .collect();
        Progress {
            style,
            expected,
            start,
            last_tick: start,
            targets,
            drawn: 0,
        }
    }

    fn finished(&self) -> u64 {
        self.targets.iter().map(|t| t.done + t.failed).sum()
    }

    /// The fraction done and the time left, when the plan says how much there is to do.
    fn fraction_and_eta(&self, elapsed: Duration, rate: f64) -> Option<(f64, Option<Duration>)> {
        if let Some(duration) = self.expected.duration.filter(|d| !d.is_zero()) {
            let fraction = (elapsed.as_secs_f64() / duration.as_secs_f64()).min(1.0);
            return Some((fraction, Some(duration.saturating_sub(elapsed))));
        }
        let planned = self.expected.requests? * self.targets.len().max(1) as f64;
        let finished = self.finished() as f64;
        let fraction = (finished / planned).min(1.0);
        let eta =
            (rate > 0.0).then(|| Duration::from_secs_f64((planned - finished).max(0.0) / rate));
        Some((fraction, eta))
    }

    /// The run's headline: elapsed, and the progress with its bar (live) and ETA.
    fn headline(&self, elapsed: Duration, rate: f64) -> String {
        let mut line = format!("[{:>6.1}s]", elapsed.as_secs_f64());
        if let Some((fraction, eta)) = self.fraction_and_eta(elapsed, rate) {
            if let Style::Live { color } = self.style {
                let full = (fraction * BAR_CELLS as f64).round() as usize;
                let bar = format!("{}{}", "█".repeat(full), "░".repeat(BAR_CELLS - full));
                line.push(' ');
                line.push_str(&paint(&bar, "32", color));
            }
            line.push_str(&format!(" {:>3.0}%", fraction * 100.0));
            match eta {
                Some(eta) => line.push_str(&format!(" ETA {}", seconds(eta))),
                None => line.push_str(" ETA -"),
            }
        }
        line
    }

    /// One target's lines: its counts and rates, then its latencies.
    fn target_lines(
        &self,
        index: usize,
        begun: u64,
        interval: f64,
        recent: &Latencies,
    ) -> [String; 2] {
        let target = &self.targets[index];
        let name = &self.expected.targets[index];
        let in_flight = begun.saturating_sub(target.done + target.failed);
        let color = matches!(self.style, Style::Live { color: true });
        let failed = format!("failed {}", target.failed);
        let failed = if target.failed > 0 {
            format!("{} ({})", paint(&failed, "31", color), target.top_errors())
        } else {
            failed
        };
        [
            format!(
                "  {name}: done {} {failed} | in flight {in_flight} | {:.1} req/s {:.0} tok/s",
                target.done,
                target.finished_now as f64 / interval,
                target.tokens_now as f64 / interval,
            ),
            format!(
                "    TTFT p50/p99 {} (last 10s {}) | E2E p50/p99 {} (last 10s {})",
                pair(&target.total.ttft),
                pair(&recent.ttft),
                pair(&target.total.e2e),
                pair(&recent.e2e),
            ),
        ]
    }

    fn draw(&mut self, lines: &[String]) {
        let mut stderr = std::io::stderr().lock();
        let _ = match self.style {
            Style::Live { .. } => {
                let mut frame = String::new();
                if OTHER_OUTPUT.swap(false, std::sync::atomic::Ordering::Relaxed) {
                    self.drawn = 0;
                }
                if self.drawn > 0 {
                    // Back to the first line drawn last time.
                    frame.push_str(&format!("\r\x1b[{}A", self.drawn));
                }
                // A line wider than the terminal would wrap and break the redraw: each is cut.
                let width = terminal_width();
                for line in lines {
                    frame.push_str("\r\x1b[2K");
                    frame.push_str(&fit(line, width));
                    frame.push('\n');
                }
                write!(stderr, "{frame}")
            }
            Style::Lines => writeln!(stderr, "{}", lines.join("\n")),
        };
        let _ = stderr.flush();
        self.drawn = lines.len();
    }
}

/// Columns of the terminal on stderr (80 when it cannot be asked).
fn terminal_width() -> usize {
    #[cfg(unix)]
    {
        let mut size = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes a winsize into the struct it is given and reads nothing.
        let asked = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) };
        if asked == 0 && size.ws_col > 0 {
            return usize::from(size.ws_col);
        }
    }
    80
}

/// `line` cut to `width` visible characters (escape sequences take no room); a cut line ends
/// with a colour reset.
fn fit(line: &str, width: usize) -> String {
    let mut out = String::with_capacity(line.len());
    let mut visible = 0;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            out.push(c);
            for code in chars.by_ref() {
                out.push(code);
                if code.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        if visible == width.saturating_sub(1) {
            out.push_str("\x1b[0m");
            return out;
        }
        out.push(c);
        visible += 1;
    }
    out
}

/// `31.2/40.1 ms`, or `-` before any sample.
fn pair(histogram: &Histogram<u64>) -> String {
    if histogram.is_empty() {
        return "-".into();
    }
    let at = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    format!("{:.1}/{:.1} ms", at(0.5), at(0.99))
}

/// `1m05s`, `42s`.
fn seconds(duration: Duration) -> String {
    let whole = duration.as_secs_f64().ceil() as u64;
    if whole >= 60 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{whole}s")
    }
}

/// `text` in an ANSI colour (`code`), when colours are on.
fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

impl RecordSink for Progress {
    fn record(&mut self, record: &RequestRecord) {
        if let Some(target) = self.targets.get_mut(record.target) {
            target.record(record);
        }
    }

    fn tick(&mut self, live: &LiveCounts) {
        let now = Instant::now();
        let interval = now.duration_since(self.last_tick).as_secs_f64().max(1e-3);
        self.last_tick = now;
        let rate = self.targets.iter().map(|t| t.finished_now).sum::<u64>() as f64 / interval;
        let mut lines = vec![self.headline(now.duration_since(self.start), rate)];
        for index in 0..self.targets.len() {
            let recent = self.targets[index].close_second();
            let begun = live.begun.get(index).copied().unwrap_or(0);
            lines.extend(self.target_lines(index, begun, interval, &recent));
            if let Some(Some(batch)) = live.batch.get(index) {
                lines.push(format!("    batch API: {batch}"));
            }
        }
        for target in &mut self.targets {
            target.finished_now = 0;
            target.tokens_now = 0;
        }
        self.draw(&lines);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(duration: Option<u64>, requests: Option<f64>) -> Expected {
        Expected {
            targets: vec!["a".into(), "b".into()],
            duration: duration.map(Duration::from_secs),
            requests,
        }
    }

    #[test]
    fn progress_follows_the_duration_or_else_the_request_count() {
        let start = Instant::now();
        let timed = Progress::new(start, expected(Some(20), Some(400.0)), Style::Lines);
        let (fraction, eta) = timed
            .fraction_and_eta(Duration::from_secs(5), 10.0)
            .unwrap();
        assert!((fraction - 0.25).abs() < 1e-9);
        assert_eq!(eta, Some(Duration::from_secs(15)));
        let mut counted = Progress::new(start, expected(None, Some(100.0)), Style::Lines);
        counted.targets[0].done = 40;
        counted.targets[1].failed = 10;
        let (fraction, eta) = counted
            .fraction_and_eta(Duration::from_secs(5), 10.0)
            .unwrap();
        assert!((fraction - 0.25).abs() < 1e-9, "50 of 2 × 100");
        assert_eq!(eta, Some(Duration::from_secs(15)), "150 left at 10/s");
        let open_ended = Progress::new(start, expected(None, None), Style::Lines);
        assert!(open_ended.fraction_and_eta(Duration::ZERO, 1.0).is_none());
    }

    #[test]
    fn lines_carry_no_escape_codes_and_live_has_a_bar() {
        let start = Instant::now();
        let mut plain = Progress::new(start, expected(Some(20), None), Style::Lines);
        plain.targets[0].failed = 3;
        plain.targets[0].errors.insert("http_500".into(), 2);
        plain.targets[0].errors.insert("timeout".into(), 1);
        let headline = plain.headline(Duration::from_secs(5), 1.0);
        assert_eq!(headline, "[   5.0s]  25% ETA 15s");
        let [counts, latencies] = plain.target_lines(0, 5, 1.0, &Latencies::new());
        assert!(
            counts.contains("failed 3 (http_500 2, timeout 1)"),
            "{counts}"
        );
        assert!(counts.contains("in flight 2"), "{counts}");
        assert!(!counts.contains('\x1b'), "{counts}");
        assert!(latencies.contains("(last 10s -)"), "{latencies}");
        let live = Progress::new(start, expected(Some(20), None), Style::Live { color: true });
        let headline = live.headline(Duration::from_secs(5), 1.0);
        assert!(headline.contains("\x1b[32m"), "{headline}");
        assert_eq!(headline.matches('█').count(), 8, "{headline}");
        let uncolored = Progress::new(
            start,
            expected(Some(20), None),
            Style::Live { color: false },
        );
        assert!(!uncolored
            .headline(Duration::from_secs(5), 1.0)
            .contains('\x1b'));
    }

    #[test]
    fn recent_percentiles_cover_the_last_ten_seconds_only() {
        let mut target = TargetProgress::new();
        target.this_second.ttft.saturating_record(500_000);
        target.total.ttft.saturating_record(500_000);
        target.close_second();
        for _ in 0..RECENT_SECONDS {
            target.this_second.ttft.saturating_record(10_000);
            target.total.ttft.saturating_record(10_000);
            let recent = target.close_second();
            assert!(recent.ttft.len() <= RECENT_SECONDS as u64);
        }
        let recent = target.close_second();
        assert_eq!(pair(&recent.ttft), "10.0/10.0 ms");
        // Since the start, the slow second still counts (500 ms, to the histogram's precision).
        assert!(pair(&target.total.ttft).starts_with("10.0/500."));
        assert_eq!(seconds(Duration::from_secs(65)), "1m05s");
    }

    #[test]
    fn lines_are_cut_to_the_terminal_without_counting_escape_codes() {
        assert_eq!(fit("abcdef", 80), "abcdef");
        assert_eq!(fit("abcdef", 4), "abc\x1b[0m");
        let painted = format!("{}xyz", paint("ab", "32", true));
        assert_eq!(fit(&painted, 80), painted);
        assert_eq!(fit(&painted, 4), "\x1b[32mab\x1b[0mx\x1b[0m");
    }
}
