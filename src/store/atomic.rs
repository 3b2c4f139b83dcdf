//! Replacing a small file atomically: a fresh temporary file (with its mode
//! set at creation, so a secret is never readable by others, not even
//! briefly), fsync, rename over the target, fsync the directory. A crash
//! leaves either the old file or the new one, never half of either.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A failed step of an atomic write.
#[derive(Debug)]
pub struct AtomicWriteError {
    /// The step (`create`, `write`, `sync`, `rename`).
    pub action: &'static str,
    /// The file the step was done to.
    pub path: PathBuf,
    /// The error.
    pub source: std::io::Error,
}

/// Writes `bytes` to `path` atomically with unix permission bits `mode`.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AtomicWriteError> {
    let fail = |action: &'static str, p: &Path| {
        let path = p.to_owned();
        move |source| AtomicWriteError {
            action,
            path,
            source,
        }
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{:016x}.tmp", rand::random::<u64>()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(fail("create", &tmp))?;
        file.write_all(bytes).map_err(fail("write", &tmp))?;
        file.sync_all().map_err(fail("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(fail("rename", path))
    })();
    if result.is_err() {
        // Best effort: the original error is what the caller needs to see.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_with_the_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        write_atomically(&p, b"one", 0o600).unwrap();
        write_atomically(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = write_atomically(&dir.path().join("missing/x"), b"", 0o644).unwrap_err();
        assert_eq!(err.action, "create");
    }
}
