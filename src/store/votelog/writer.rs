//! The vote log writer: appends records, chains them, signs checkpoints and
//! batches fsyncs (group commit). One writer per file, enforced with an
//! advisory lock, because two interleaved writers would fork the chain.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::checkpoint::Checkpoint;
use super::error::LogError;
use super::format::{LogHeader, MAX_BODY_LEN, RecordKind, encode_record_head, record_hash};
use super::recovery::scan_for_append;
use super::sync::{GroupCommit, WriterOptions};
use crate::proto::{ClusterId, Digest, Identity, NetworkId};

/// Why the writer refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The file system failed. If this happened while appending, the writer
    /// is poisoned: reopen the log with [`VoteLogWriter::open`] to learn
    /// which records are durable.
    #[error("vote log {}: {source}", .path.display())]
    Io {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `create` found a non-empty file: it never overwrites a log.
    #[error("vote log {} already exists and is not empty; open it to append", .path.display())]
    AlreadyExists {
        /// The log file.
        path: PathBuf,
    },
    /// Another writer holds the file's lock.
    #[error("vote log {} is locked by another writer", .path.display())]
    Locked {
        /// The log file.
        path: PathBuf,
    },
    /// The existing log is damaged somewhere a crash cannot explain.
    #[error("vote log {} is damaged: {source}", .path.display())]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// The first fault.
        source: LogError,
    },
    /// The existing log belongs to another network.
    #[error("vote log {} belongs to network {found}, not {expected}", .path.display())]
    NetworkMismatch {
        /// The log file.
        path: PathBuf,
        /// The network the caller expected.
        expected: NetworkId,
        /// The network in the log's header.
        found: NetworkId,
    },
    /// The existing log was written by another node.
    #[error("vote log {} was written by node {found}, not {expected}", .path.display())]
    NodeMismatch {
        /// The log file.
        path: PathBuf,
        /// This node's id.
        expected: ClusterId,
        /// The node id in the log's header.
        found: ClusterId,
    },
    /// Callers cannot append checkpoints: only the writer signs them.
    #[error("checkpoint records are written by the log itself; call checkpoint()")]
    CheckpointKind,
    /// The body does not fit the 4 MiB record cap.
    #[error("record body of {len} bytes exceeds the limit of {max} bytes")]
    BodyTooLarge {
        /// The body's length.
        len: usize,
        /// The largest body allowed.
        max: usize,
    },
    /// The options would disable checkpoints or syncing.
    #[error("invalid vote log options: {0}")]
    InvalidOptions(&'static str),
    /// An earlier I/O error left the file in an unknown state.
    #[error("vote log {} is unusable after an earlier I/O error; reopen it", .path.display())]
    Poisoned {
        /// The log file.
        path: PathBuf,
    },
}

/// Appends records to one vote log file.
///
/// Records reach the disk in groups (see [`SyncPolicy`](super::SyncPolicy)):
/// a record is durable after the next sync, whether the policy, a
/// checkpoint, [`sync`](Self::sync) or [`close`](Self::close) triggers it
/// ([`unsynced`](Self::unsynced) counts the records still waiting). Dropping the writer
/// without `close` flushes to the OS but neither syncs nor seals the log,
/// exactly like a crash; [`open`](Self::open) recovers from it.
#[derive(Debug)]
pub struct VoteLogWriter {
    path: PathBuf,
    out: BufWriter<File>,
    identity: Arc<Identity>,
    header: LogHeader,
    options: WriterOptions,
    next_seq: u64,
    head: Digest,
    since_checkpoint: u64,
    commit: GroupCommit,
    syncs: u64,
    poisoned: bool,
}

impl VoteLogWriter {
    /// Creates a new log at `path` and makes its header durable. Refuses a
    /// non-empty file, except one holding only the start of this same
    /// header (what a crash during an earlier `create` leaves).
    pub fn create(
        path: &Path,
        network_id: NetworkId,
        identity: Arc<Identity>,
        options: WriterOptions,
    ) -> Result<Self, WriterError> {
        options.validate().map_err(WriterError::InvalidOptions)?;
        let io = io_error(path);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(&io)?;
        lock(&file, path)?;
        let header = LogHeader {
            network_id,
            node_id: identity.id(),
        };
        let encoded = header.encode();
        let existing = file.metadata().map_err(&io)?.len();
        if existing != 0 {
            // A crash inside an earlier `create` can leave part of this very
            // header and nothing else; redoing it loses nothing. Any other
            // content may be someone's log.
            if !is_header_prefix(&mut file, existing, &encoded).map_err(&io)? {
                return Err(WriterError::AlreadyExists {
                    path: path.to_owned(),
                });
            }
            file.set_len(0).map_err(&io)?;
            file.seek(SeekFrom::Start(0)).map_err(&io)?;
        }
        file.write_all(&encoded).map_err(&io)?;
        file.sync_all().map_err(&io)?;
        sync_parent_dir(path).map_err(&io)?;
        Ok(VoteLogWriter {
            path: path.to_owned(),
            out: BufWriter::new(file),
            identity,
            head: header.chain_seed(),
            header,
            options,
            next_seq: 0,
            since_checkpoint: 0,
            commit: GroupCommit::default(),
            // The file, and on Unix its directory.
            syncs: 1 + u64::from(cfg!(unix)),
            poisoned: false,
        })
    }

    /// Opens an existing log for appending, typically after a crash: checks
    /// the whole log, discards a torn tail (bytes a crash left after the
    /// last complete record) and continues the sequence and the chain.
    /// Every record that was synced survives. Damage a crash cannot explain
    /// is refused with [`WriterError::Corrupt`].
    pub fn open(
        path: &Path,
        network_id: NetworkId,
        identity: Arc<Identity>,
        options: WriterOptions,
    ) -> Result<Self, WriterError> {
        options.validate().map_err(WriterError::InvalidOptions)?;
        let io = io_error(path);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(&io)?;
        lock(&file, path)?;
        let recovered = scan_for_append(&file).map_err(|source| WriterError::Corrupt {
            path: path.to_owned(),
            source,
        })?;
        let summary = recovered.summary;
        if summary.header.network_id != network_id {
            return Err(WriterError::NetworkMismatch {
                path: path.to_owned(),
                expected: network_id,
                found: summary.header.network_id,
            });
        }
        if summary.header.node_id != identity.id() {
            return Err(WriterError::NodeMismatch {
                path: path.to_owned(),
                expected: identity.id(),
                found: summary.header.node_id,
            });
        }
        let mut syncs = 0;
        if let Some(fault) = &recovered.discarded {
            tracing::warn!(
                path = %path.display(),
                keep_bytes = summary.end_offset,
                records = summary.records,
                %fault,
                "vote log: discarding the torn tail a crash left"
            );
            file.set_len(summary.end_offset).map_err(&io)?;
            // Durable before anything is appended, so a second crash cannot
            // resurrect the discarded bytes behind new records.
            file.sync_all().map_err(&io)?;
            syncs += 1;
        }
        file.seek(SeekFrom::Start(summary.end_offset))
            .map_err(&io)?;
        Ok(VoteLogWriter {
            path: path.to_owned(),
            out: BufWriter::new(file),
            identity,
            header: summary.header,
            options,
            next_seq: summary.records,
            head: summary.head,
            since_checkpoint: summary.unsealed,
            commit: GroupCommit::default(),
            syncs,
            poisoned: false,
        })
    }

    /// Appends one record and returns its sequence number. May also write a
    /// checkpoint and sync, as the options ask. An error while writing
    /// poisons the writer: the record may or may not be in the file.
    pub fn append(&mut self, kind: RecordKind, body: &[u8]) -> Result<u64, WriterError> {
        if kind == RecordKind::Checkpoint {
            return Err(WriterError::CheckpointKind);
        }
        if body.len() > MAX_BODY_LEN {
            return Err(WriterError::BodyTooLarge {
                len: body.len(),
                max: MAX_BODY_LEN,
            });
        }
        let seq = self.write_record(kind, body)?;
        self.since_checkpoint += 1;
        // The checkpoint syncs anyway, so it is checked first and the
        // record it follows shares its fsync.
        if self.since_checkpoint >= self.options.checkpoint_every {
            self.checkpoint()?;
        } else {
            self.sync_if_due()?;
        }
        Ok(seq)
    }

    /// Appends a checkpoint signed over the current chain head and syncs.
    /// Returns its sequence number.
    pub fn checkpoint(&mut self) -> Result<u64, WriterError> {
        let cp = Checkpoint::sign(&self.identity, &self.header, self.next_seq, &self.head);
        let seq = self.write_record(RecordKind::Checkpoint, &cp.encode())?;
        self.since_checkpoint = 0;
        self.sync()?;
        Ok(seq)
    }

    /// Flushes and `sync_data`s every record appended so far (a no-op when
    /// nothing is pending).
    pub fn sync(&mut self) -> Result<(), WriterError> {
        self.check_poisoned()?;
        if self.commit.unsynced() == 0 {
            return Ok(());
        }
        let result = self
            .out
            .flush()
            .and_then(|()| self.out.get_ref().sync_data());
        if let Err(source) = result {
            // After a failed fsync the page cache may already have dropped
            // the dirty pages; retrying could report success for lost data.
            self.poisoned = true;
            return Err(WriterError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.syncs += 1;
        self.commit.synced();
        Ok(())
    }

    /// Syncs if the policy's count or delay is reached; for callers that
    /// want the delay bound to hold while no records arrive (from a timer).
    pub fn sync_if_due(&mut self) -> Result<(), WriterError> {
        if self.commit.due(&self.options.sync, Instant::now()) {
            self.sync()?;
        }
        Ok(())
    }

    /// Seals the log with a checkpoint (unless its last record already is
    /// one), syncs, and releases the file.
    pub fn close(mut self) -> Result<(), WriterError> {
        if self.is_sealed() {
            self.sync()
        } else {
            self.checkpoint().map(|_| ())
        }
    }

    /// The seq the next record will get (= records in the log).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The chain hash of the last record (`h_0` for an empty log).
    pub fn head(&self) -> Digest {
        self.head
    }

    /// The log's header.
    pub fn header(&self) -> &LogHeader {
        &self.header
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// fsyncs performed by this writer (file and directory), so callers and
    /// tests can see what group commit saves.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Records appended but not yet synced.
    pub fn unsynced(&self) -> usize {
        self.commit.unsynced()
    }

    /// Whether the last record is a checkpoint.
    pub fn is_sealed(&self) -> bool {
        self.next_seq > 0 && self.since_checkpoint == 0
    }

    fn write_record(&mut self, kind: RecordKind, body: &[u8]) -> Result<u64, WriterError> {
        self.check_poisoned()?;
        let seq = self.next_seq;
        let head = encode_record_head(seq, kind, &self.head, body.len());
        let result = self
            .out
            .write_all(&head)
            .and_then(|()| self.out.write_all(body));
        if let Err(source) = result {
            self.poisoned = true;
            return Err(WriterError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.head = record_hash(seq, kind, &self.head, body);
        self.next_seq += 1;
        self.commit.written(Instant::now());
        Ok(seq)
    }

    fn check_poisoned(&self) -> Result<(), WriterError> {
        if self.poisoned {
            return Err(WriterError::Poisoned {
                path: self.path.clone(),
            });
        }
        Ok(())
    }
}

/// Whether the file's `len` bytes are a strict prefix of `header`.
fn is_header_prefix(file: &mut File, len: u64, header: &[u8]) -> std::io::Result<bool> {
    if len >= header.len() as u64 {
        return Ok(false);
    }
    let mut existing = Vec::with_capacity(header.len());
    file.seek(SeekFrom::Start(0))?;
    file.take(len).read_to_end(&mut existing)?;
    Ok(header.starts_with(&existing))
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> WriterError + '_ {
    move |source| WriterError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Takes the advisory exclusive lock; platforms without file locks go on
/// unprotected rather than refusing to log.
fn lock(file: &File, path: &Path) -> Result<(), WriterError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(WriterError::Locked {
            path: path.to_owned(),
        }),
        Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => Ok(()),
        Err(TryLockError::Error(source)) => Err(WriterError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Makes a new file's directory entry durable: without it a crash can lose
/// the whole log even though its contents were synced.
fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
