//! Small pieces of node state that must survive a restart (the membership
//! incarnation), written atomically: temp file, fsync, rename, fsync dir.

use std::fs;
use std::path::{Path, PathBuf};

/// Why node state cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// File system error.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file exists but does not hold a number.
    #[error("{path} is corrupt: expected a decimal number, found {found:?}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it holds (at most 32 characters).
        found: String,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_owned();
    move |source| StateError::Io {
        action,
        path,
        source,
    }
}

/// The incarnation file in `data_dir`.
pub fn incarnation_path(data_dir: &Path) -> PathBuf {
    data_dir.join("incarnation")
}

/// The last persisted incarnation (0 if the node never ran).
pub fn load_incarnation(data_dir: &Path) -> Result<u64, StateError> {
    let path = incarnation_path(data_dir);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io("read", &path)(e)),
    };
    let text = String::from_utf8_lossy(&text[..text.len().min(64)])
        .trim()
        .to_owned();
    text.parse().map_err(|_| StateError::Corrupt {
        path,
        found: text.chars().take(32).collect(),
    })
}

/// Persists `incarnation` durably before the node uses it.
pub fn store_incarnation(data_dir: &Path, incarnation: u64) -> Result<(), StateError> {
    fs::create_dir_all(data_dir).map_err(io("create", data_dir))?;
    let text = format!("{incarnation}\n");
    crate::store::atomic::write_atomically(&incarnation_path(data_dir), text.as_bytes(), 0o644)
        .map_err(|e| StateError::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_incarnation(dir.path()).unwrap(), 0);
        store_incarnation(dir.path(), 7).unwrap();
        assert_eq!(load_incarnation(dir.path()).unwrap(), 7);
        fs::write(incarnation_path(dir.path()), "x").unwrap();
        assert!(matches!(
            load_incarnation(dir.path()),
            Err(StateError::Corrupt { .. })
        ));
    }
}
