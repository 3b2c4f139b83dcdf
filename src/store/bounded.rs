//! Reading small untrusted files (keys, certificates, rosters, configs)
//! with a size cap checked before and while reading, so a huge or growing
//! file can never drive an allocation.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Why a bounded read failed.
#[derive(Debug)]
pub enum BoundedReadError {
    /// The file could not be opened or read.
    Io(std::io::Error),
    /// The file is larger than the cap (`len` is what was seen, at least cap + 1).
    TooLarge {
        /// Bytes in the file.
        len: u64,
    },
}

/// The whole file at `path`, refusing more than `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, BoundedReadError> {
    let file = File::open(path).map_err(BoundedReadError::Io)?;
    let len = file.metadata().map_err(BoundedReadError::Io)?.len();
    if len > max {
        return Err(BoundedReadError::TooLarge { len });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(BoundedReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(BoundedReadError::TooLarge {
            len: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Like [`read_bounded`], as UTF-8 text (invalid UTF-8 is an I/O error of kind `InvalidData`).
pub fn read_bounded_text(path: &Path, max: u64) -> Result<String, BoundedReadError> {
    let bytes = read_bounded(path, max)?;
    String::from_utf8(bytes)
        .map_err(|e| BoundedReadError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_reads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read_bounded(&p, 5).unwrap(), b"hello");
        assert!(matches!(
            read_bounded(&p, 4),
            Err(BoundedReadError::TooLarge { len: 5 })
        ));
        assert!(matches!(
            read_bounded(&dir.path().join("nope"), 4),
            Err(BoundedReadError::Io(_))
        ));
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_bounded_text(&p, 10),
            Err(BoundedReadError::Io(_))
        ));
    }
}
