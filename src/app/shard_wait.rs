//! `drover merge --wait`: waits until every shard of a run has written its final results, so that
//! the merge step can be started together with the workers (one `helm install` or `kubectl apply`)
//! instead of after them. A shard is final when its results file no longer says `in_progress`;
//! the shard count comes from the first results file found. At the deadline the merge goes on
//! with what is there, and the shards still missing are reported as missing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::results::RunStatus;

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
    /// The deadline passed first.
    pub timed_out: bool,
}

/// Polls `find()` (the results files merge would read) until every shard's results are final,
/// or `limit` has passed. Unreadable files are skipped while waiting: a worker may be writing
/// its first checkpoint, and merge reports any file that stays unreadable.
pub fn wait_for_shards(
    limit: Duration,
    find: impl Fn() -> Vec<PathBuf>,
    mut report: impl FnMut(&str),
) -> WaitEnd {
    let started = Instant::now();
    let mut last_report = started;
    loop {
        let mut shard_count = None;
        let mut finished = BTreeSet::new();
        for path in find() {
            let Ok(results) = crate::report::read_results(&path) else {
                continue;
            };
            let Some(shard) = results.shard else { continue };
            shard_count.get_or_insert(shard.count);
            if results.status != RunStatus::InProgress {
                finished.insert(shard.index);
            }
        }
        let done = shard_count.is_some_and(|count| (0..count).all(|i| finished.contains(&i)));
        let timed_out = !done && started.elapsed() >= limit;
        if done || timed_out {
            return WaitEnd {
                shard_count,
                finished,
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
                timed_out: true,
            }
        );
    }

    #[test]
    fn with_no_results_file_at_all_the_count_is_unknown() {
        let end = wait_for_shards(Duration::ZERO, Vec::new, |_| {});
        assert_eq!(end.shard_count, None);
        assert!(end.timed_out);
    }
}
