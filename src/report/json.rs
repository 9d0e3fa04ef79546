//! Writes the results JSON atomically: a temporary file in the same folder, flushed to disk, then
//! renamed over the final name, so a reader never sees a half-written file.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::results::RunResults;

/// Why results could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write results to {path}: {source}")]
pub struct WriteError {
    pub path: String,
    pub source: std::io::Error,
}

/// A UTC time as a compact stamp for file names: `20261125T133450374Z` (milliseconds).
pub fn utc_stamp(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(time)
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// Folder name for a run's report: `<scenario>-<stamp>`, with characters unsafe in file names
/// replaced.
pub fn folder_name(scenario: &str, stamp: &str) -> String {
    format!("{}-{stamp}", slug(scenario))
}

/// A name made safe for a file name: characters other than ASCII letters, digits, `-` and `_`
/// become `_`.
pub fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `results` as `dir/results.json` (the folder is created if needed); returns the path.
pub fn write_results(dir: &Path, results: &RunResults) -> Result<PathBuf, WriteError> {
    let path = dir.join("results.json");
    let text = serde_json::to_string_pretty(results).expect("results always serialize");
    write_atomically(&path, text.as_bytes())?;
    Ok(path)
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let error = |source| WriteError {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(error)?;
    let file_name = path
        .file_name()
        .map_or("results".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/r.json");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }
}
