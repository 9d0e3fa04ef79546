//! `drover history`: each run's headline figures, with its commit, branch and time, kept in a
//! SQLite file ([`store`]), and trends over the last runs ([`trend`]) rendered as a Markdown
//! table, an HTML page and charts ([`render`]), flagging slow drifts that no comparison of two
//! runs shows.

pub mod figures;
pub mod render;
pub mod store;
pub mod trend;

pub use store::{Added, Provenance, Store, StoredRun};
pub use trend::{Trend, TrendVerdict};

/// Why the history could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{path}: {message}")]
    Database { path: String, message: String },
    #[error("{path}: made by a newer drover (history format {found}; this drover reads up to {supported})")]
    TooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("{path}: a checkpoint of a run that never finished (status in_progress): add its final results")]
    Unfinished { path: String },
    #[error("{path}: no run of scenario \"{scenario}\" in the history")]
    NoRuns { path: String, scenario: String },
    #[error(
        "{path}: the history is empty: add runs with `drover history add RESULTS --db {path}`"
    )]
    Empty { path: String },
}
