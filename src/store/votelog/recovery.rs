//! Crash recovery: deciding which bytes at the end of an existing log may be
//! discarded before appending to it again.
//!
//! The writer syncs only after whole records, so every synced record is a
//! complete, valid record in a valid prefix. A crash can only leave extra
//! bytes after that prefix: part of a record (a torn tail), or a run of zero
//! bytes where the file system extended the file but never wrote the data.
//! Those are discarded. Any other fault lies in bytes that were complete when
//! written, so discarding from there could destroy synced records: the log
//! is refused instead and left for an operator (and `fedmesh verify`).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use super::error::LogError;
use super::reader::{LogSummary, VoteLogReader};

/// The valid prefix of a log about to be appended to.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// State of the valid prefix; `end_offset` is where appending resumes.
    pub summary: LogSummary,
    /// The fault that ended the valid prefix, if bytes follow it.
    pub discarded: Option<LogError>,
}

/// Reads the whole log in `file` from its start and finds where appending may resume.
pub(crate) fn scan_for_append(file: &File) -> Result<Recovered, LogError> {
    let io = |offset| move |source| LogError::Io { offset, source };
    (&*file).seek(SeekFrom::Start(0)).map_err(io(0))?;
    let mut reader = VoteLogReader::new(BufReader::new(file))?;
    let fault = loop {
        match reader.next_record() {
            Ok(Some(_)) => {}
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    let summary = reader.summary();
    drop(reader);
    let Some(fault) = fault else {
        return Ok(Recovered {
            summary,
            discarded: None,
        });
    };
    let recoverable = match &fault {
        LogError::TornTail { .. } => true,
        LogError::Io { .. } => false,
        other if other.index().is_some() => {
            is_zero_from(file, summary.end_offset).map_err(io(summary.end_offset))?
        }
        _ => false,
    };
    if recoverable {
        Ok(Recovered {
            summary,
            discarded: Some(fault),
        })
    } else {
        Err(fault)
    }
}

/// Whether every byte of `file` from `offset` to its end is zero.
fn is_zero_from(file: &File, offset: u64) -> std::io::Result<bool> {
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = [0u8; 8192];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                if buf.iter().take(n).any(|&b| b != 0) {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
