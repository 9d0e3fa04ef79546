//! The time series of a target, by completion time on the wall clock: point `s` covers the
//! seconds `[s, s + step)` after the run's origin (the wall-clock second it started in), so
//! series of shards that ran side by side line up second for second when merged.
//!
//! Each point keeps a small TTFT histogram while it may still receive records; then it is
//! reduced to counts, p50/p99 and the histogram's compact encoding (for exact merging). Memory
//! is bounded: past [`MAX_POINTS`] points the step doubles and neighbouring points merge, so a
//! day-long run holds a few thousand points, not one per request or per second.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;

use crate::hist::{decode_histogram, encode_histogram, MAX_MICROS};
use crate::record::RequestRecord;
use crate::results::SeriesPoint;

/// Seconds a point stays open for late records before it is reduced.
const OPEN_SECONDS: u64 = 3;
/// Most points a series holds before its step doubles.
pub const MAX_POINTS: usize = 3600;

/// A histogram for one point's TTFT: two significant digits are plenty for a per-point p50/p99.
fn point_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 2).expect("static bounds")
}

/// Sums points into one: counts add; TTFT percentiles come from the summed histograms, and are
/// left out when a part had percentiles but no histogram to merge exactly.
#[derive(Debug, Clone)]
pub struct PointSum {
    point: SeriesPoint,
    ttft: Histogram<u64>,
    exact: bool,
}

impl PointSum {
    pub fn new(second: u64) -> Self {
        PointSum {
            point: SeriesPoint {
                second,
                ..SeriesPoint::default()
            },
            ttft: point_histogram(),
            exact: true,
        }
    }

    /// Adds a reduced point.
    pub fn add(&mut self, other: &SeriesPoint) {
        self.point.completed += other.completed;
        self.point.failed += other.failed;
        self.point.output_tokens += other.output_tokens;
        match other.ttft_histogram.as_deref().map(decode_histogram) {
            Some(Ok(histogram)) if self.ttft.add(&histogram).is_ok() => {}
            Some(_) => self.exact = false,
            None if other.ttft_p50_ms.is_some() => self.exact = false,
            None => {}
        }
    }

    fn add_record(&mut self, record: &RequestRecord) {
        count(&mut self.point, record);
        if record.outcome.is_ok() {
            if let Some(ttft) = record.ttft() {
                self.ttft.saturating_record(super::micros(ttft));
            }
        }
    }

    /// The reduced point.
    pub fn finish(self) -> SeriesPoint {
        let mut point = self.point;
        if self.exact && !self.ttft.is_empty() {
            let ms = |q: f64| self.ttft.value_at_quantile(q) as f64 / 1000.0;
            point.ttft_p50_ms = Some(ms(0.5));
            point.ttft_p99_ms = Some(ms(0.99));
            point.ttft_histogram = Some(encode_histogram(&self.ttft));
        }
        point
    }
}

/// Counts one record into a point: completed (with its output tokens) or failed.
fn count(point: &mut SeriesPoint, record: &RequestRecord) {
    match record.outcome {
        Ok(()) => {
            point.completed += 1;
            point.output_tokens += record.output_tokens;
        }
        Err(_) => point.failed += 1,
    }
}

/// Points with empty ones filled in, from second 0 to the last, `step` apart.
pub fn fill_gaps(points: BTreeMap<u64, SeriesPoint>, step: u64) -> Vec<SeriesPoint> {
    let Some(&last) = points.keys().next_back() else {
        return Vec::new();
    };
    let mut points = points;
    (0..=last / step)
        .map(|i| {
            let second = i * step;
            points.remove(&second).unwrap_or(SeriesPoint {
                second,
                ..SeriesPoint::default()
            })
        })
        .collect()
}

/// Per-point counters and TTFT percentiles of one target.
#[derive(Debug, Clone)]
pub struct Series {
    start: Instant,
    /// How far into its wall-clock second the run started.
    offset: Duration,
    origin_unix: u64,
    step: u64,
    open: BTreeMap<u64, PointSum>,
    closed: BTreeMap<u64, SeriesPoint>,
}

/// A run's series origin: the Unix second it started in (what `series_origin_unix` holds, and
/// what every other per-time figure of the run, such as scraped server metrics, counts from).
pub fn origin_unix(started_at: SystemTime) -> u64 {
    started_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Series {
    /// A series for a run that started at `start` (monotonic) = `started_at` (wall clock).
    pub fn new(start: Instant, started_at: SystemTime) -> Self {
        let since_epoch = started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Series {
            start,
            offset: Duration::from_nanos(u64::from(since_epoch.subsec_nanos())),
            origin_unix: origin_unix(started_at),
            step: 1,
            open: BTreeMap::new(),
            closed: BTreeMap::new(),
        }
    }

    /// The wall-clock second (Unix time) at which point 0 starts.
    pub fn origin_unix(&self) -> u64 {
        self.origin_unix
    }

    /// Seconds each point covers.
    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn record(&mut self, record: &RequestRecord) {
        let elapsed = self.offset + record.done.saturating_duration_since(self.start);
        let key = elapsed.as_secs() / self.step * self.step;
        if let Some(point) = self.closed.get_mut(&key) {
            // A late arrival for a reduced point: counts still add up, percentiles stay.
            count(point, record);
            return;
        }
        self.open
            .entry(key)
            .or_insert_with(|| PointSum::new(key))
            .add_record(record);
        let newest = *self.open.keys().next_back().unwrap_or(&0);
        while let Some((&oldest, _)) = self.open.first_key_value() {
            if oldest + OPEN_SECONDS.max(self.step) > newest {
                break;
            }
            if let Some(sum) = self.open.remove(&oldest) {
                self.closed.insert(oldest, sum.finish());
            }
        }
        if self.closed.len() > MAX_POINTS {
            self.coarsen();
        }
    }

    /// Doubles the step, merging neighbouring points.
    fn coarsen(&mut self) {
        let open = std::mem::take(&mut self.open);
        for (key, sum) in open {
            self.closed.insert(key, sum.finish());
        }
        self.step *= 2;
        let mut sums: BTreeMap<u64, PointSum> = BTreeMap::new();
        for (key, point) in std::mem::take(&mut self.closed) {
            let merged = key / self.step * self.step;
            sums.entry(merged)
                .or_insert_with(|| PointSum::new(merged))
                .add(&point);
        }
        self.closed = sums.into_iter().map(|(k, s)| (k, s.finish())).collect();
    }

    /// Reduces every open point and returns all points, with empty ones filled in.
    pub fn finish(&mut self) -> Vec<SeriesPoint> {
        for (key, sum) in std::mem::take(&mut self.open) {
            self.closed.insert(key, sum.finish());
        }
        fill_gaps(self.closed.clone(), self.step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Failure, TokenSource};

    fn done_at(start: Instant, done: Duration, ok: bool) -> RequestRecord {
        let ms = Duration::from_millis;
        RequestRecord {
            index: 0,
            target: 0,
            class: 0,
            stage: 0,
            intended: start,
            started: start,
            sent: start,
            connection: Default::default(),
            connection_id: None,
            stream_wait: None,
            headers: None,
            first_event: None,
            first_token: Some(start + ms(20)),
            first_answer: None,
            empty_preludes: 0,
            keepalive_comments: 0,
            reasoning_first: false,
            detail: Default::default(),
            done: start + done,
            token_gaps: Vec::new(),
            output_tokens: 2,
            input_tokens: None,
            cached_input_tokens: 0,
            token_source: TokenSource::Chunks,
            content_events: 0,
            client_tokens: None,
            warmup: false,
            outcome: if ok {
                Ok(())
            } else {
                Err(Failure {
                    class: crate::record::ErrorClass::Protocol,
                    status: None,
                    message: "x".into(),
                    retry_after: None,
                })
            },
            retried: Vec::new(),
            retry_wait: Duration::ZERO,
            via_batch_api: false,
            request_bytes: 0,
            shape: Default::default(),
            answer: None,
        }
    }

    #[test]
    fn seconds_follow_the_wall_clock_of_the_start() {
        let start = Instant::now();
        // The run started 0.7 s into a wall-clock second: a request done 0.5 s later completed in
        // the next wall-clock second.
        let started_at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_700);
        let mut series = Series::new(start, started_at);
        series.record(&done_at(start, Duration::from_millis(200), true));
        series.record(&done_at(start, Duration::from_millis(500), true));
        series.record(&done_at(start, Duration::from_millis(1500), false));
        let points = series.finish();
        assert_eq!(series.origin_unix(), 1000);
        assert_eq!(points.len(), 3);
        assert_eq!((points[0].completed, points[1].completed), (1, 1));
        assert_eq!(points[2].failed, 1);
        // Two significant digits: within 1% of the true 20 ms.
        assert!((points[0].ttft_p50_ms.unwrap() - 20.0).abs() < 0.2);
        assert!(points[0].ttft_histogram.is_some());
    }

    #[test]
    fn a_long_run_is_down_sampled_without_losing_counts() {
        let start = Instant::now();
        let mut series = Series::new(start, SystemTime::UNIX_EPOCH);
        let seconds = (MAX_POINTS as u64) * 3;
        for second in 0..seconds {
            series.record(&done_at(start, Duration::from_secs(second), true));
        }
        let points = series.finish();
        assert!(points.len() <= MAX_POINTS, "{} points", points.len());
        assert_eq!(series.step(), 4);
        assert_eq!(points.iter().map(|p| p.completed).sum::<u64>(), seconds);
        assert!(points.iter().all(|p| p.second % 4 == 0));
        assert_eq!(points[1].completed, 4);
        assert!((points[1].ttft_p99_ms.unwrap() - 20.0).abs() < 0.2);
    }
}
