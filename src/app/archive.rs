//! One `.tar.gz` file holding a merged run (merged results, its report, each shard's results), so
//! that a run on a cluster can be taken out with a single copy of one file. Built in memory and
//! written atomically: a reader never sees half an archive.

use std::path::{Path, PathBuf};

/// A file to put into the archive, and the name it has there (relative, `/`-separated).
#[derive(Debug, Clone)]
pub struct ArchiveEntry {
    pub source: PathBuf,
    pub name: String,
}

/// Why the archive could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: cannot read it into the archive: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot build the archive: {0}")]
    Build(std::io::Error),
    #[error(transparent)]
    Write(#[from] crate::report::json::WriteError),
}

/// Writes `entries` as a gzip-compressed tar file at `path`, every name under the folder `root`.
pub fn write(path: &Path, root: &str, entries: &[ArchiveEntry]) -> Result<(), ArchiveError> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    builder.mode(tar::HeaderMode::Deterministic);
    for entry in entries {
        let bytes = std::fs::read(&entry.source).map_err(|source| ArchiveError::Read {
            path: entry.source.display().to_string(),
            source,
        })?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        builder
            .append_data(
                &mut header,
                format!("{root}/{}", entry.name),
                bytes.as_slice(),
            )
            .map_err(ArchiveError::Build)?;
    }
    let encoder = builder.into_inner().map_err(ArchiveError::Build)?;
    let bytes = encoder.finish().map_err(ArchiveError::Build)?;
    crate::report::json::write_atomically(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_archive_holds_every_entry_under_its_root_with_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), b"{\"a\":1}").unwrap();
        std::fs::create_dir(dir.path().join("charts")).unwrap();
        std::fs::write(dir.path().join("charts/x.svg"), b"<svg/>").unwrap();
        let entries = [
            ArchiveEntry {
                source: dir.path().join("a.json"),
                name: "merged.json".into(),
            },
            ArchiveEntry {
                source: dir.path().join("charts/x.svg"),
                name: "report/charts/x.svg".into(),
            },
        ];
        let path = dir.path().join("out/run.tar.gz");
        write(&path, "run-1", &entries).unwrap();

        let file = std::fs::File::open(&path).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut found = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            found.push((name, text));
        }
        assert_eq!(
            found,
            [
                ("run-1/merged.json".to_string(), "{\"a\":1}".to_string()),
                (
                    "run-1/report/charts/x.svg".to_string(),
                    "<svg/>".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_missing_file_is_named_in_the_error_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.tar.gz");
        let error = write(
            &path,
            "r",
            &[ArchiveEntry {
                source: dir.path().join("absent.json"),
                name: "absent.json".into(),
            }],
        )
        .unwrap_err();
        assert!(error.to_string().contains("absent.json"), "{error}");
        assert!(!path.exists());
    }
}
