//! One scenario split over N independent workers (`--shard K/N`, or a Kubernetes Indexed Job's
//! `JOB_COMPLETION_INDEX`), so that the shards together send exactly the unsharded traffic.
//!
//! How the load is split:
//! - open loop: every worker computes the scenario's whole arrival schedule (from the scenario
//!   seed) and sends arrivals `K, K+N, K+2N, …`; the union of the shards is the unsharded
//!   schedule, each shard offers `rate / N`, and a request budget splits with it;
//! - closed loop: the users split (`users / N`, the remainder to the lowest shards);
//! - `max_in_flight` splits the same way, so the shards together never exceed it;
//! - request `j` of shard K has the global index `j·N + K`, which decides budgets and warm-up;
//! - request k's class, prompt, output cap and send time depend only on the scenario seed and k
//!   (datasets are read whole), so request k is the same request on every shard and unsharded;
//! - an embedded mock draws its latencies from the shard's own seed, derived from the scenario
//!   seed and K.
//!
//! Shard indices are 0-based, as `JOB_COMPLETION_INDEX` is.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Environment variable a Kubernetes Indexed Job sets to each pod's index.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Environment variable giving the number of shards when [`INDEX_ENV`] is used.
pub const COUNT_ENV: &str = "DROVER_SHARD_COUNT";

/// Which part of the load this worker sends: shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why a shard specification or a sharded plan is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShardError(pub String);

impl Shard {
    /// The whole load: one worker.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// A checked shard.
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError("the shard count must be at least 1".into()));
        }
        if index >= count {
            return Err(ShardError(format!(
                "shard index {index} is out of range for {count} shards (indices are 0-based: 0..{})",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// Parses `K/N` (0-based K).
    pub fn parse(text: &str) -> Result<Shard, ShardError> {
        let bad = || {
            ShardError(format!(
                "\"{text}\" is not K/N (shard K of N, 0-based, e.g. 0/4 … 3/4)"
            ))
        };
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index: u32 = index.trim().parse().map_err(|_| bad())?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count)
    }

    /// The shard named by `JOB_COMPLETION_INDEX` and `DROVER_SHARD_COUNT`, if the index is set.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Shard>, ShardError> {
        let Some(index) = env(INDEX_ENV) else {
            return Ok(None);
        };
        let index: u32 = index.trim().parse().map_err(|_| {
            ShardError(format!(
                "{INDEX_ENV}=\"{index}\" is not a non-negative integer"
            ))
        })?;
        let count = env(COUNT_ENV).ok_or_else(|| {
            ShardError(format!(
                "{INDEX_ENV} is set ({index}) but {COUNT_ENV} is not: set it to the number of \
                 shards (the Job's completions), or pass --shard K/N"
            ))
        })?;
        let count: u32 = count.trim().parse().map_err(|_| {
            ShardError(format!("{COUNT_ENV}=\"{count}\" is not a positive integer"))
        })?;
        Shard::new(index, count).map(Some)
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// This shard's seed for prompts and class choices: the scenario seed itself for the whole
    /// load, else a SplitMix64 mix of the scenario seed and the index.
    pub fn seed(&self, scenario_seed: u64) -> u64 {
        if self.is_whole() {
            return scenario_seed;
        }
        let mut z = scenario_seed ^ (u64::from(self.index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// This shard's part of `total` things split as evenly as possible (the remainder goes to
    /// the lowest indices).
    pub fn share(&self, total: u64) -> u64 {
        let count = u64::from(self.count);
        total / count + u64::from(u64::from(self.index) < total % count)
    }

    /// Whether the request or arrival with this global index is this shard's.
    pub fn owns(&self, global_index: u64) -> bool {
        global_index % u64::from(self.count) == u64::from(self.index)
    }

    /// The global index of this shard's `local`-th request.
    pub fn global_index(&self, local: u64) -> u64 {
        local
            .saturating_mul(u64::from(self.count))
            .saturating_add(u64::from(self.index))
    }
}

/// Parses an RFC 3339 time with a zone (`2026-11-25T16:00:00Z`, `…+01:00`), as `--start-at`
/// takes it.
pub fn parse_start_at(text: &str) -> Result<std::time::SystemTime, ShardError> {
    let bad = |why: &str| {
        ShardError(format!(
            "--start-at \"{text}\" {why} (expected RFC 3339 with a zone, e.g. 2026-11-25T16:00:00Z)"
        ))
    };
    let text = text.trim();
    let parse = |local: &str| {
        humantime::parse_rfc3339_weak(local).map_err(|e| bad(&format!("is not a time: {e}")))
    };
    if let Some(local) = text.strip_suffix(['Z', 'z']) {
        return parse(local);
    }
    // A numeric offset: the last six characters are ±HH:MM.
    let split = text
        .len()
        .checked_sub(6)
        .filter(|&i| text.is_char_boundary(i));
    let Some((local, offset)) = split.map(|i| text.split_at(i)) else {
        return Err(bad("has no time zone"));
    };
    let sign = match offset.as_bytes().first() {
        Some(b'+') => 1i64,
        Some(b'-') => -1i64,
        _ => return Err(bad("has no time zone")),
    };
    let (hours, minutes) = offset[1..]
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<u64>().ok()?, m.parse::<u64>().ok()?)))
        .filter(|&(h, m)| h < 24 && m < 60)
        .ok_or_else(|| bad("has a malformed zone offset"))?;
    let offset = std::time::Duration::from_secs(hours * 3600 + minutes * 60);
    let local = parse(local)?;
    // Local time = UTC + offset.
    let utc = if sign > 0 {
        local.checked_sub(offset)
    } else {
        local.checked_add(offset)
    };
    utc.ok_or_else(|| bad("is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_of_n_and_rejects_nonsense() {
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
        assert_eq!(Shard::parse(" 0 / 1 ").unwrap(), Shard::WHOLE);
        for bad in ["4/4", "1/0", "x/4", "3", "-1/4", "1/4/5"] {
            assert!(Shard::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(Shard::parse("4/4").unwrap_err().0.contains("0-based"));
    }

    #[test]
    fn reads_the_indexed_job_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Shard::from_env(&env(&[])).unwrap(), None);
        assert_eq!(
            Shard::from_env(&env(&[(INDEX_ENV, "3"), (COUNT_ENV, "8")])).unwrap(),
            Some(Shard { index: 3, count: 8 })
        );
        let missing = Shard::from_env(&env(&[(INDEX_ENV, "3")])).unwrap_err();
        assert!(missing.0.contains(COUNT_ENV), "{missing}");
        assert!(Shard::from_env(&env(&[(INDEX_ENV, "9"), (COUNT_ENV, "8")])).is_err());
    }

    #[test]
    fn shares_indices_and_slices_partition_the_whole() {
        for count in 1..=7u32 {
            let shards: Vec<Shard> = (0..count).map(|i| Shard::new(i, count).unwrap()).collect();
            for total in [0u64, 1, 6, 7, 100, 1001] {
                assert_eq!(shards.iter().map(|s| s.share(total)).sum::<u64>(), total);
            }
            for global in 0..50u64 {
                assert_eq!(shards.iter().filter(|s| s.owns(global)).count(), 1);
            }
            for shard in &shards {
                assert!((0..10).all(|j| shard.owns(shard.global_index(j))));
            }
        }
    }

    #[test]
    fn start_times_take_utc_and_offsets() {
        let utc = parse_start_at("2026-11-25T16:00:00Z").unwrap();
        assert_eq!(parse_start_at("2026-11-25T17:30:00+01:30").unwrap(), utc);
        assert_eq!(parse_start_at("2026-11-25T11:00:00-05:00").unwrap(), utc);
        assert_eq!(
            humantime::format_rfc3339_millis(parse_start_at("2026-11-25T16:00:00.250Z").unwrap())
                .to_string(),
            "2026-11-25T16:00:00.250Z"
        );
        for bad in [
            "2026-11-25T16:00:00",
            "tomorrow",
            "2026-11-25T16:00:00+25:00",
            "",
        ] {
            let error = parse_start_at(bad).unwrap_err().0;
            assert!(error.contains("RFC 3339"), "{bad}: {error}");
        }
    }

    #[test]
    fn shard_seeds_differ_and_the_whole_keeps_the_scenario_seed() {
        assert_eq!(Shard::WHOLE.seed(42), 42);
        let seeds: std::collections::BTreeSet<u64> = (0..16)
            .map(|i| Shard::new(i, 16).unwrap().seed(42))
            .collect();
        assert_eq!(seeds.len(), 16);
        assert!(!seeds.contains(&42));
    }
}
