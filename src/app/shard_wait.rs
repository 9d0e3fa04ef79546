//! `drover merge --wait`: waits until every shard of a run has written its final results, so that
//! the merge step can be started together with the workers (one `helm install` or `kubectl apply`)
//! instead of after them. A shard is final when its results file no longer says `in_progress`,
//! or when that checkpoint has not changed for [`STALE_AFTER`] past the run's agreed start (its
//! worker died: killed, out of memory; a live worker rewrites it every `--checkpoint-every`,
//! 10 s by default). The shard count comes from the first results file found. At the deadline
//! the merge goes on with what is there, and the shards still missing are reported as missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::results::RunStatus;

/// A checkpoint unchanged this long after the later of its run's agreed start and its own write
/// is a dead worker's last word.
pub const STALE_AFTER: Duration = Duration::from_secs(120);
/// How often the folder is looked at again.
const POLL: Duration = Duration::from_millis(500);
/// How often a line says what is still awaited.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// What the folders held when the wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitEnd {
    /// The run's shard count, once a results file said it.
    pub shard_count: Option<u32>,
    /// Shards whose results are final.
    pub finished: BTreeSet<u32>,
    /// Of those, shards whose last checkpoint went stale (their worker died).
    pub stale: BTreeSet<u32>,
    /// The deadline passed first.
    pub timed_out: bool,
}

/// Polls `find()` (the results files merge would read) until every shard's results are final,
/// or `limit` has passed. Unreadable files are skipped while waiting: a worker may be writing
/// its first checkpoint, and merge reports any file that stays unreadable.
pub fn wait_for_shards(
    limit: Duration,
    stale_after: Duration,
    find: impl Fn() -> Vec<PathBuf>,
    mut report: impl FnMut(&str),
) -> WaitEnd {
    let started = Instant::now();
    let mut last_report = started;
    // Final results do not change: each is read once, not at every poll of a long wait.
    let mut final_shards: BTreeMap<PathBuf, (u32, u32)> = BTreeMap::new();
    loop {
        let mut shard_count = None;
        let mut finished = BTreeSet::new();
        let mut stale = BTreeSet::new();
        for path in find() {
            if let Some(&(count, index)) = final_shards.get(&path) {
                shard_count.get_or_insert(count);
                finished.insert(index);
                continue;
            }
            let Ok(results) = crate::report::read_results(&path) else {
                continue;
            };
            let Some(shard) = results.shard else { continue };
            shard_count.get_or_insert(shard.count);
            if results.status != RunStatus::InProgress {
                finished.insert(shard.index);
                final_shards.insert(path, (shard.count, shard.index));
            } else if is_stale(&path, shard.start_at.as_deref(), stale_after) {
                finished.insert(shard.index);
                stale.insert(shard.index);
            }
        }
        let done = shard_count.is_some_and(|count| (0..count).all(|i| finished.contains(&i)));
        let timed_out = !done && started.elapsed() >= limit;
        if done || timed_out {
            return WaitEnd {
                shard_count,
                finished,
                stale,
                timed_out,
            };
        }
        if last_report.elapsed() >= REPORT_EVERY {
            last_report = Instant::now();
            report(&match shard_count {
                Some(count) => format!(
                    "waiting for shards: {} of {count} finished after {:.0} s",
                    finished.len(),
                    started.elapsed().as_secs_f64()
                ),
                None => format!(
                    "waiting for shards: no results file yet after {:.0} s",
                    started.elapsed().as_secs_f64()
                ),
            });
        }
        std::thread::sleep(POLL.min(limit.saturating_sub(started.elapsed())));
    }
}

/// Whether the checkpoint at `path` has not been rewritten for `stale_after`, counted from the
/// later of its last write and the run's agreed start (a worker waiting for `--start-at` does
/// not write).
fn is_stale(path: &std::path::Path, start_at: Option<&str>, stale_after: Duration) -> bool {
    let Ok(written) = std::fs::metadata(path).and_then(|m| m.modified()) else {
        return false;
    };
    let agreed = start_at.and_then(|t| crate::shard::parse_start_at(t).ok());
    let quiet_since = agreed.map_or(written, |agreed| agreed.max(written));
    std::time::SystemTime::now()
        .duration_since(quiet_since)
        .is_ok_and(|quiet| quiet >= stale_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{RunResults, ShardInfo};

    fn write_shard(dir: &std::path::Path, index: u32, status: RunStatus) -> PathBuf {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scenarios/baselines/ci-gate.json"),
        )
        .unwrap();
        let mut results: RunResults = serde_json::from_str(&text).unwrap();
        results.status = status;
        results.shard = Some(ShardInfo {
            index,
            count: 2,
            seed: 1,
            start_at: None,
        });
        let folder = dir.join(format!("shard-{index}"));
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join("results.json");
        std::fs::write(&path, serde_json::to_string(&results).unwrap()).unwrap();
        path
    }

    #[test]
    fn the_wait_ends_when_every_shard_is_final_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_shard(dir.path(), 0, RunStatus::Completed);
        let second = write_shard(dir.path(), 1, RunStatus::InProgress);
        let polls = std::cell::Cell::new(0);
        let end = wait_for_shards(
            Duration::from_secs(60),
            STALE_AFTER,
            || {
                polls.set(polls.get() + 1);
                // The second worker finishes (budget reached) while merge waits.
                if polls.get() == 3 {
                    write_shard(dir.path(), 1, RunStatus::BudgetExhausted);
                }
                vec![first.clone(), second.clone()]
            },
            |_| {},
        );
        assert_eq!(
            polls.get(),
            3,
            "the wait ended at the poll that saw shard 1 final"
        );
        assert_eq!(
            end,
            WaitEnd {
                shard_count: Some(2),
                finished: BTreeSet::from([0, 1]),
                stale: BTreeSet::new(),
                timed_out: false,
            }
        );
    }

    #[test]
    fn at_the_deadline_the_wait_reports_what_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_shard(dir.path(), 0, RunStatus::Interrupted);
        let second = write_shard(dir.path(), 1, RunStatus::InProgress);
        let end = wait_for_shards(
            Duration::from_millis(50),
            STALE_AFTER,
            || {
                vec![
                    first.clone(),
                    second.clone(),
                    dir.path().join("unreadable.json"),
                ]
            },
            |_| {},
        );
        assert_eq!(
            end,
            WaitEnd {
                shard_count: Some(2),
                finished: BTreeSet::from([0]),
                stale: BTreeSet::new(),
                timed_out: true,
            }
        );
    }

    #[test]
    fn with_no_results_file_at_all_the_count_is_unknown() {
        let end = wait_for_shards(Duration::ZERO, STALE_AFTER, Vec::new, |_| {});
        assert_eq!(end.shard_count, None);
        assert!(end.timed_out);
    }

    /// Shard 1's checkpoint was last written `age` ago, for a run agreed to start `since` ago.
    fn dead_worker(age: Duration, since: Duration) -> WaitEnd {
        let dir = tempfile::tempdir().unwrap();
        let first = write_shard(dir.path(), 0, RunStatus::Completed);
        let second = write_shard(dir.path(), 1, RunStatus::InProgress);
        let mut results: RunResults =
            serde_json::from_str(&std::fs::read_to_string(&second).unwrap()).unwrap();
        let agreed = std::time::SystemTime::now() - since;
        results.shard.as_mut().unwrap().start_at =
            Some(humantime::format_rfc3339_millis(agreed).to_string());
        std::fs::write(&second, serde_json::to_string(&results).unwrap()).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&second)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - age)
            .unwrap();
        wait_for_shards(
            Duration::from_millis(50),
            Duration::from_secs(120),
            || vec![first.clone(), second.clone()],
            |_| {},
        )
    }

    #[test]
    fn a_checkpoint_unchanged_past_the_start_is_a_dead_workers_last_word() {
        // Written 5 min ago, the run began 4 min ago: the worker died.
        let end = dead_worker(Duration::from_secs(300), Duration::from_secs(240));
        assert_eq!(end.finished, BTreeSet::from([0, 1]));
        assert_eq!(end.stale, BTreeSet::from([1]));
        assert!(!end.timed_out);
        // Written 5 min ago, but the run began only a minute ago: the worker waited for it.
        let end = dead_worker(Duration::from_secs(300), Duration::from_secs(60));
        assert_eq!(end.finished, BTreeSet::from([0]));
        assert!(end.timed_out);
        // Rewritten 30 s ago: alive.
        let end = dead_worker(Duration::from_secs(30), Duration::from_secs(600));
        assert_eq!(end.finished, BTreeSet::from([0]));
    }
}
