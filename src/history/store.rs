//! The history file: SQLite (rusqlite, with SQLite's own source built in), two tables. `runs`
//! holds one row per added run (scenario, start, host, status, commit, branch, label), unique
//! by scenario, start and host so that adding the same results twice keeps one; `figures`
//! holds each target's [`FIGURES`](super::figures::FIGURES) of that run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::figures::FIGURES;
use super::HistoryError;
use crate::results::{RunResults, RunStatus};

/// The format this drover writes (SQLite's `user_version`).
const FORMAT: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    scenario TEXT NOT NULL,
    started_at TEXT NOT NULL,
    host TEXT NOT NULL,
    status TEXT NOT NULL,
    duration_s REAL NOT NULL,
    drover_version TEXT NOT NULL,
    commit_sha TEXT,
    branch TEXT,
    label TEXT,
    added_at TEXT NOT NULL,
    UNIQUE (scenario, started_at, host)
);
CREATE TABLE IF NOT EXISTS figures (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run_id, target, metric)
);
";

/// Where a run came from, beside its results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub label: Option<String>,
}

/// What adding a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Stored under this id.
    New(i64),
    /// The same run (scenario, start, host) was already stored under this id; nothing changed.
    Already(i64),
}

/// A stored run with its figures, by target and figure key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    pub id: i64,
    pub scenario: String,
    pub started_at: String,
    pub host: String,
    pub status: String,
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub label: Option<String>,
    /// Target → figure key → value.
    pub figures: BTreeMap<String, BTreeMap<String, f64>>,
}

/// An open history file.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    connection: Connection,
}

fn status_name(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Completed => "completed",
        RunStatus::Interrupted => "interrupted",
        RunStatus::InProgress => "in_progress",
        RunStatus::BudgetExhausted => "budget_exhausted",
        RunStatus::Degraded => "degraded",
    }
}

impl Store {
    /// Opens (creating when missing) the history at `path`.
    pub fn open(path: &Path) -> Result<Store, HistoryError> {
        let shown = path.display().to_string();
        let error = |e: rusqlite::Error| HistoryError::Database {
            path: shown.clone(),
            message: match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::NotADatabase) => {
                    "not a drover history (not an SQLite database)".into()
                }
                _ => e.to_string(),
            },
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| HistoryError::Database {
                path: shown.clone(),
                message: format!("cannot create its folder: {e}"),
            })?;
        }
        let connection = Connection::open(path).map_err(error)?;
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(error)?;
        if version > FORMAT {
            return Err(HistoryError::TooNew {
                path: shown,
                found: version,
                supported: FORMAT,
            });
        }
        let tables: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |row| row.get(0),
            )
            .map_err(error)?;
        if version == 0 && tables > 0 {
            return Err(HistoryError::Database {
                path: shown,
                message: "an SQLite database that is not a drover history".into(),
            });
        }
        connection
            .execute_batch(&format!(
                "PRAGMA foreign_keys = ON; {SCHEMA} PRAGMA user_version = {FORMAT};"
            ))
            .map_err(error)?;
        Ok(Store {
            path: path.to_path_buf(),
            connection,
        })
    }

    fn error(&self, e: rusqlite::Error) -> HistoryError {
        HistoryError::Database {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Stores a run's figures (each target's summary); `source` names the results in errors.
    pub fn add(
        &mut self,
        results: &RunResults,
        provenance: &Provenance,
        source: &str,
    ) -> Result<Added, HistoryError> {
        if results.status == RunStatus::InProgress {
            return Err(HistoryError::Unfinished {
                path: source.to_string(),
            });
        }
        let transaction = self
            .connection
            .transaction()
            .map_err(|e| HistoryError::Database {
                path: self.path.display().to_string(),
                message: e.to_string(),
            })?;
        let existing: Option<i64> = transaction
            .query_row(
                "SELECT id FROM runs WHERE scenario = ?1 AND started_at = ?2 AND host = ?3",
                params![
                    results.scenario.name,
                    results.started_at,
                    results.environment.host
                ],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| HistoryError::Database {
                path: self.path.display().to_string(),
                message: e.to_string(),
            })?;
        if let Some(id) = existing {
            return Ok(Added::Already(id));
        }
        let added_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let write = || -> rusqlite::Result<i64> {
            transaction.execute(
                "INSERT INTO runs (scenario, started_at, host, status, duration_s, drover_version, commit_sha, branch, label, added_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    results.scenario.name,
                    results.started_at,
                    results.environment.host,
                    status_name(results.status),
                    results.duration_s,
                    results.drover_version,
                    provenance.commit,
                    provenance.branch,
                    provenance.label,
                    added_at
                ],
            )?;
            let id = transaction.last_insert_rowid();
            let mut insert = transaction.prepare(
                "INSERT INTO figures (run_id, target, metric, value) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for target in &results.targets {
                for figure in &FIGURES {
                    if let Some(value) = (figure.read)(&target.summary).filter(|v| v.is_finite()) {
                        insert.execute(params![id, target.name, figure.key, value])?;
                    }
                }
            }
            Ok(id)
        };
        let path = self.path.display().to_string();
        let failed = |e: rusqlite::Error| HistoryError::Database {
            path: path.clone(),
            message: e.to_string(),
        };
        let id = write().map_err(failed)?;
        transaction.commit().map_err(failed)?;
        Ok(Added::New(id))
    }

    /// The scenario of the run added last, if any.
    pub fn latest_scenario(&self) -> Result<Option<String>, HistoryError> {
        self.connection
            .query_row(
                "SELECT scenario FROM runs ORDER BY id DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// The last `last` completed runs of `scenario` by start time, oldest first.
    pub fn recent(&self, scenario: &str, last: usize) -> Result<Vec<StoredRun>, HistoryError> {
        let read = || -> rusqlite::Result<Vec<StoredRun>> {
            let mut select = self.connection.prepare(
                "SELECT id, scenario, started_at, host, status, commit_sha, branch, label FROM runs
                 WHERE scenario = ?1 AND status = 'completed'
                 ORDER BY started_at DESC, id DESC LIMIT ?2",
            )?;
            let mut runs: Vec<StoredRun> = select
                .query_map(params![scenario, last as i64], |row| {
                    Ok(StoredRun {
                        id: row.get(0)?,
                        scenario: row.get(1)?,
                        started_at: row.get(2)?,
                        host: row.get(3)?,
                        status: row.get(4)?,
                        commit: row.get(5)?,
                        branch: row.get(6)?,
                        label: row.get(7)?,
                        figures: BTreeMap::new(),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            runs.reverse();
            let mut figures = self
                .connection
                .prepare("SELECT target, metric, value FROM figures WHERE run_id = ?1")?;
            for run in &mut runs {
                let rows = figures.query_map(params![run.id], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get(2)?,
                    ))
                })?;
                for row in rows {
                    let (target, metric, value) = row?;
                    run.figures.entry(target).or_default().insert(metric, value);
                }
            }
            Ok(runs)
        };
        read().map_err(|e| self.error(e))
    }
}
