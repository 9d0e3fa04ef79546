//! The per-second time series of a target, keyed by completion second. Each second keeps a small
//! TTFT histogram only while it may still receive records; then it is reduced to a few numbers,
//! so memory grows by one small point per second of run time, not with requests.

use std::collections::BTreeMap;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::record::RequestRecord;
use crate::results::SeriesPoint;

/// Seconds a point stays open for late records before it is reduced.
const OPEN_SECONDS: u64 = 3;

#[derive(Debug, Clone)]
struct OpenSecond {
    point: SeriesPoint,
    ttft: Histogram<u64>,
}

/// Per-second counters and TTFT percentiles.
#[derive(Debug, Clone)]
pub struct Series {
    start: Instant,
    open: BTreeMap<u64, OpenSecond>,
    closed: BTreeMap<u64, SeriesPoint>,
}

impl Series {
    pub fn new(start: Instant) -> Self {
        Series {
            start,
            open: BTreeMap::new(),
            closed: BTreeMap::new(),
        }
    }

    pub fn record(&mut self, record: &RequestRecord) {
        let second = record.done.saturating_duration_since(self.start).as_secs();
        if let Some(point) = self.closed.get_mut(&second) {
            // A late arrival for a reduced second: counts still add up, percentiles stay.
            Self::count(point, record);
            return;
        }
        let open = self.open.entry(second).or_insert_with(|| OpenSecond {
            point: SeriesPoint {
                second,
                ..SeriesPoint::default()
            },
            // Two significant digits are plenty for a per-second p50/p99.
            ttft: Histogram::new_with_bounds(1, super::histogram::MAX_MICROS, 2)
                .expect("static bounds"),
        });
        Self::count(&mut open.point, record);
        if record.outcome.is_ok() {
            if let Some(ttft) = record.ttft() {
                open.ttft.saturating_record(super::micros(ttft));
            }
        }
        let newest = *self.open.keys().next_back().unwrap_or(&0);
        while let Some((&oldest, _)) = self.open.first_key_value() {
            if oldest + OPEN_SECONDS > newest {
                break;
            }
            self.close(oldest);
        }
    }

    fn count(point: &mut SeriesPoint, record: &RequestRecord) {
        match record.outcome {
            Ok(()) => {
                point.completed += 1;
                point.output_tokens += record.output_tokens;
            }
            Err(_) => point.failed += 1,
        }
    }

    fn close(&mut self, second: u64) {
        if let Some(mut open) = self.open.remove(&second) {
            if !open.ttft.is_empty() {
                open.point.ttft_p50_ms = Some(open.ttft.value_at_quantile(0.5) as f64 / 1000.0);
                open.point.ttft_p99_ms = Some(open.ttft.value_at_quantile(0.99) as f64 / 1000.0);
            }
            self.closed.insert(second, open.point);
        }
    }

    /// Reduces every open second and returns all points, with empty seconds filled in.
    pub fn finish(&mut self) -> Vec<SeriesPoint> {
        let open: Vec<u64> = self.open.keys().copied().collect();
        for second in open {
            self.close(second);
        }
        let Some(&last) = self.closed.keys().next_back() else {
            return Vec::new();
        };
        (0..=last)
            .map(|second| {
                self.closed.get(&second).cloned().unwrap_or(SeriesPoint {
                    second,
                    ..SeriesPoint::default()
                })
            })
            .collect()
    }
}
