//! Open-loop arrival schedules: the intended send time of every request, from constant or Poisson
//! arrivals over stepped or linearly ramped rate stages.
//!
//! Arrivals are placed in "count space": the k-th constant arrival is due when the expected number
//! of arrivals, ∫rate dt, reaches k; Poisson arrivals add unit-mean exponential increments instead
//! (time rescaling, which stays exact across ramps). Inverting ∫rate dt per stage gives the time.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::scenario::{Arrival, LoadPlan, LoadShape, StagePlan};
use crate::shard::Shard;

/// Visits every request a shard of this load will send, in order, without sending any: its
/// global index, stage and whether it is warm-up; `visit` returns `false` to stop the walk.
/// Returns `None` (visiting nothing) for a closed loop bounded only by time, whose count depends
/// on the server's speed; otherwise whether the walk reached the end. Nothing is stored, so a
/// run of millions of requests is planned in constant memory. (The live loops follow the same
/// rules as they go.)
pub fn planned_requests(
    load: &LoadPlan,
    shard: Shard,
    arrival_seed: u64,
    mut visit: impl FnMut(u64, usize, bool) -> bool,
) -> Option<bool> {
    let Some(mut schedule) = Schedule::of(&load.shape, arrival_seed) else {
        // A closed loop: its requests have no times, only a count.
        let limit = load.requests?;
        let mut local = 0;
        loop {
            let k = shard.global_index(local);
            if k >= limit {
                break;
            }
            if !visit(k, 0, k < load.warmup_requests) {
                return Some(false);
            }
            local += 1;
        }
        return Some(true);
    };
    let mut k = 0u64;
    while let Some(offset) = schedule.next_offset() {
        if load.requests.is_some_and(|limit| k >= limit)
            || load.duration.is_some_and(|d| offset >= d)
        {
            break;
        }
        if shard.owns(k) {
            let warmup = offset < load.warmup || k < load.warmup_requests;
            if !visit(k, schedule.stage_of(offset), warmup) {
                return Some(false);
            }
        }
        k += 1;
    }
    Some(true)
}

/// Mixed into the scenario seed for arrival times, so they are independent of prompt choices
/// (and identical on every target).
pub const ARRIVAL_SALT: u64 = 0xA5A5_0A11_5EED_0001;

/// Yields intended send offsets from the start of the run, in order.
pub struct Schedule {
    stages: Vec<StagePlan>,
    arrival: Arrival,
    rng: StdRng,
    /// Expected-arrival count at which the next request is due.
    next_count: f64,
    started: bool,
    /// A replayed trace's offsets (already divided by the speed) and the next one's index.
    replay: Option<(Vec<Duration>, usize)>,
}

impl Schedule {
    pub fn new(stages: Vec<StagePlan>, arrival: Arrival, seed: u64) -> Self {
        Schedule {
            stages,
            arrival,
            rng: StdRng::seed_from_u64(seed),
            next_count: 0.0,
            started: false,
            replay: None,
        }
    }

    /// The send times of an open loop (its stages and arrival process, seeded) or of a replayed
    /// trace; `None` for a closed loop, which has none.
    pub fn of(shape: &LoadShape, arrival_seed: u64) -> Option<Schedule> {
        match shape {
            LoadShape::Open {
                arrival, stages, ..
            } => Some(Schedule::new(
                stages.clone(),
                *arrival,
                arrival_seed ^ ARRIVAL_SALT,
            )),
            LoadShape::Trace { trace, speed, .. } => Some(Schedule::replay(trace, *speed)),
            LoadShape::Closed { .. } => None,
        }
    }

    /// A trace's own times, `speed` times faster (one stage).
    pub fn replay(trace: &crate::workload::Trace, speed: f64) -> Self {
        let mut schedule = Schedule::new(Vec::new(), Arrival::Constant, 0);
        let offsets = trace
            .entries
            .iter()
            .map(|e| e.offset.div_f64(speed))
            .collect();
        schedule.replay = Some((offsets, 0));
        schedule
    }

    /// The next intended offset, or `None` once it would fall past the last stage.
    pub fn next_offset(&mut self) -> Option<Duration> {
        if let Some((offsets, next)) = &mut self.replay {
            let offset = offsets.get(*next).copied();
            *next += 1;
            return offset;
        }
        match self.arrival {
            Arrival::Constant => {
                if self.started {
                    self.next_count += 1.0;
                }
            }
            Arrival::Poisson => {
                // Exp(1) by inversion; 1 - u is in (0, 1].
                let u: f64 = self.rng.random();
                self.next_count += -(1.0 - u).ln();
            }
        }
        self.started = true;
        self.time_at_count(self.next_count)
            .map(Duration::from_secs_f64)
    }

    /// The index of the stage an offset falls in (the last stage for offsets past the end).
    pub fn stage_of(&self, offset: Duration) -> usize {
        let mut end = Duration::ZERO;
        for (index, stage) in self.stages.iter().enumerate() {
            match stage.duration {
                Some(length) => end += length,
                None => return index,
            }
            if offset < end {
                return index;
            }
        }
        self.stages.len().saturating_sub(1)
    }

    /// Seconds at which ∫rate dt reaches `count`.
    fn time_at_count(&self, count: f64) -> Option<f64> {
        let mut stage_start_time = 0.0;
        let mut stage_start_count = 0.0;
        for stage in &self.stages {
            let within = count - stage_start_count;
            let Some(duration) = stage.duration else {
                return Some(stage_start_time + within / stage.rate);
            };
            let length = duration.as_secs_f64();
            let area = (stage.rate + stage.end_rate) / 2.0 * length;
            if within < area {
                let offset = if (stage.end_rate - stage.rate).abs() < f64::EPSILON {
                    within / stage.rate
                } else {
                    // rate(x) = r0 + slope·x, ∫ = r0·x + slope·x²/2 = within.
                    let slope = (stage.end_rate - stage.rate) / length;
                    let r0 = stage.rate;
                    (-r0 + (r0 * r0 + 2.0 * slope * within).max(0.0).sqrt()) / slope
                };
                return Some(stage_start_time + offset.clamp(0.0, length));
            }
            stage_start_time += length;
            stage_start_count += area;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(rate: f64, end_rate: f64, secs: u64) -> StagePlan {
        StagePlan {
            rate,
            end_rate,
            duration: Some(Duration::from_secs(secs)),
        }
    }

    fn all(mut schedule: Schedule) -> Vec<f64> {
        std::iter::from_fn(|| schedule.next_offset().map(|d| d.as_secs_f64())).collect()
    }

    #[test]
    fn constant_rate_places_exactly_rate_times_duration() {
        let times = all(Schedule::new(
            vec![stage(50.0, 50.0, 4)],
            Arrival::Constant,
            1,
        ));
        assert_eq!(times.len(), 200);
        assert_eq!(times[0], 0.0);
        assert!((times[1] - 0.02).abs() < 1e-9);
        assert!((times[199] - 3.98).abs() < 1e-9);
    }

    #[test]
    fn steps_and_ramps_follow_the_integral_of_the_rate() {
        let times = all(Schedule::new(
            vec![stage(10.0, 10.0, 2), stage(10.0, 30.0, 2)],
            Arrival::Constant,
            1,
        ));
        // 20 in the first stage, (10 + 30) / 2 · 2 = 40 in the ramp.
        assert_eq!(times.len(), 60);
        assert_eq!(times.iter().filter(|t| **t < 2.0).count(), 20);
        // The ramp's second half carries more arrivals than its first.
        let first_half = times.iter().filter(|t| (2.0..3.0).contains(*t)).count();
        let second_half = times.iter().filter(|t| **t >= 3.0).count();
        assert_eq!(first_half, 15);
        assert_eq!(second_half, 25);
        let schedule = Schedule::new(
            vec![stage(10.0, 10.0, 2), stage(10.0, 30.0, 2)],
            Arrival::Constant,
            1,
        );
        assert_eq!(schedule.stage_of(Duration::from_millis(1999)), 0);
        assert_eq!(schedule.stage_of(Duration::from_secs(2)), 1);
        assert_eq!(schedule.stage_of(Duration::from_secs(9)), 1);
    }

    #[test]
    fn poisson_arrivals_average_the_rate_and_are_seeded() {
        let a = all(Schedule::new(
            vec![stage(100.0, 100.0, 100)],
            Arrival::Poisson,
            9,
        ));
        let b = all(Schedule::new(
            vec![stage(100.0, 100.0, 100)],
            Arrival::Poisson,
            9,
        ));
        assert_eq!(a, b);
        // 10,000 expected; a Poisson count's standard deviation is 100.
        assert!((a.len() as i64 - 10_000).abs() < 500, "{}", a.len());
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_trace_replays_its_offsets_divided_by_the_speed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(
            &path,
            "{\"timestamp_ms\": 1000}\n{\"timestamp_ms\": 1100}\n{\"timestamp_ms\": 1400}\n",
        )
        .unwrap();
        let trace = crate::workload::Trace::load(&path, &["c".into()]).unwrap();
        assert_eq!(all(Schedule::replay(&trace, 1.0)), vec![0.0, 0.1, 0.4]);
        let fast = all(Schedule::replay(&trace, 4.0));
        assert_eq!(fast.len(), 3);
        assert!((fast[2] - 0.1).abs() < 1e-9, "{fast:?}");
    }

    #[test]
    fn an_open_ended_stage_never_runs_out() {
        let mut schedule = Schedule::new(
            vec![StagePlan {
                rate: 1000.0,
                end_rate: 1000.0,
                duration: None,
            }],
            Arrival::Constant,
            1,
        );
        let last = (0..5000).map(|_| schedule.next_offset().unwrap()).last();
        assert_eq!(last, Some(Duration::from_secs_f64(4.999)));
    }
}
