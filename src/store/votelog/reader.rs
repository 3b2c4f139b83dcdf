//! Streaming vote log reader: checks framing, sequence numbers, the hash
//! chain and checkpoint signatures one record at a time, so a log of any
//! size is verified in constant memory (one record, at most 4 MiB).

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::Path;

use ed25519_dalek::VerifyingKey;

use super::checkpoint::Checkpoint;
use super::error::LogError;
use super::format::{
    HEADER_LEN, LogHeader, MAX_RECORD_LEN, MIN_RECORD_LEN, RECORD_FIXED_LEN, RecordFixed,
    RecordKind, record_hash,
};
use crate::proto::Digest;

/// Initial buffer for a body: bodies are usually small, and a torn record
/// claiming 4 MiB must not reserve 4 MiB before its bytes are seen.
const BODY_CHUNK: usize = 64 * 1024;

/// One verified record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// 0-based position in the log.
    pub index: u64,
    /// The stored sequence number (always equal to `index` once verified).
    pub seq: u64,
    /// What the body holds.
    pub kind: RecordKind,
    /// The hash of the previous record (`h_0` for the first).
    pub prev: Digest,
    /// The opaque body.
    pub body: Vec<u8>,
    /// This record's chain hash, which the next record's `prev` must equal.
    pub hash: Digest,
    /// Byte offset of the record's length prefix in the file.
    pub offset: u64,
}

impl LogRecord {
    /// Bytes the record occupies in the file, length prefix included.
    pub fn encoded_len(&self) -> u64 {
        (4 + RECORD_FIXED_LEN + self.body.len()) as u64
    }
}

/// What the records read so far add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSummary {
    /// The log's header.
    pub header: LogHeader,
    /// Records read and verified.
    pub records: u64,
    /// Checkpoints among them.
    pub checkpoints: u64,
    /// Index of the last checkpoint, if any.
    pub last_checkpoint: Option<u64>,
    /// Records after the last checkpoint (all of them if there is none):
    /// their bodies are chained but not yet vouched for by a signature.
    pub unsealed: u64,
    /// Whether the last record is a checkpoint, i.e. the node signed the
    /// whole log. A cleanly closed log is sealed; a crashed one may not be.
    pub sealed: bool,
    /// Hash of the last record (`h_0` for an empty log).
    pub head: Digest,
    /// Bytes of verified log, header included: where the next record goes.
    pub end_offset: u64,
    /// Bytes vouched for by the last checkpoint's signature: the header and
    /// every record up to and including that checkpoint. 0 without a
    /// checkpoint, since nothing, not even the header, is signed then.
    pub signed_len: u64,
}

/// Reads and verifies a vote log from any byte stream. Records are yielded
/// only after every check on them passed; the first fault ends the stream.
#[derive(Debug)]
pub struct VoteLogReader<R> {
    inner: R,
    header: LogHeader,
    key: VerifyingKey,
    next_index: u64,
    offset: u64,
    head: Digest,
    checkpoints: u64,
    last_checkpoint: Option<u64>,
    signed_len: u64,
    done: bool,
}

impl VoteLogReader<BufReader<File>> {
    /// Opens the log file at `path` and checks its header.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        let file = File::open(path).map_err(|source| LogError::Io { offset: 0, source })?;
        Self::new(BufReader::new(file))
    }
}

impl<R: Read> VoteLogReader<R> {
    /// Reads and checks the header, including that the node id is a key
    /// checkpoints can be verified under. Pass a buffered reader: records
    /// are read in several small pieces.
    pub fn new(mut inner: R) -> Result<Self, LogError> {
        let mut buf = [0u8; HEADER_LEN];
        let n =
            read_full(&mut inner, &mut buf).map_err(|source| LogError::Io { offset: 0, source })?;
        let header = LogHeader::decode(&buf[..n]).map_err(|fault| {
            use super::format::HeaderFault as F;
            match fault {
                F::Empty => LogError::EmptyFile,
                F::BadMagic(found) => LogError::BadMagic { found },
                F::Truncated(len) => LogError::TruncatedHeader { len },
                F::UnsupportedVersion(version) => LogError::UnsupportedVersion { version },
            }
        })?;
        let key = header
            .node_id
            .verifying_key()
            .map_err(|source| LogError::BadNodeId {
                node_id: header.node_id,
                source,
            })?;
        Ok(VoteLogReader {
            inner,
            head: header.chain_seed(),
            header,
            key,
            next_index: 0,
            offset: HEADER_LEN as u64,
            checkpoints: 0,
            last_checkpoint: None,
            signed_len: 0,
            done: false,
        })
    }

    /// The log's header.
    pub fn header(&self) -> &LogHeader {
        &self.header
    }

    /// The state after the records verified so far. After an error it
    /// describes the valid prefix before the bad record.
    pub fn summary(&self) -> LogSummary {
        let unsealed = match self.last_checkpoint {
            Some(cp) => self.next_index - cp - 1,
            None => self.next_index,
        };
        LogSummary {
            header: self.header,
            records: self.next_index,
            checkpoints: self.checkpoints,
            last_checkpoint: self.last_checkpoint,
            unsealed,
            sealed: self.next_index > 0 && unsealed == 0,
            head: self.head,
            end_offset: self.offset,
            signed_len: self.signed_len,
        }
    }

    /// The next verified record, `Ok(None)` at a clean end of the log, or
    /// the first fault. After a fault or the end, always `Ok(None)`.
    pub fn next_record(&mut self) -> Result<Option<LogRecord>, LogError> {
        if self.done {
            return Ok(None);
        }
        let result = self.read_record();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    fn read_record(&mut self) -> Result<Option<LogRecord>, LogError> {
        let index = self.next_index;
        let offset = self.offset;
        let io = |source| LogError::Io { offset, source };
        let torn = |needed: u64, available: u64| LogError::TornTail {
            index,
            offset,
            needed,
            available,
        };

        let mut len_buf = [0u8; 4];
        let got = read_full(&mut self.inner, &mut len_buf).map_err(io)?;
        if got == 0 {
            return Ok(None);
        }
        if got < len_buf.len() {
            return Err(torn(4, got as u64));
        }
        let len = u32::from_be_bytes(len_buf);
        if len < MIN_RECORD_LEN {
            return Err(LogError::RecordTooShort { index, offset, len });
        }
        if len > MAX_RECORD_LEN {
            return Err(LogError::RecordTooLong { index, offset, len });
        }
        let needed = 4 + u64::from(len);

        let mut fixed_buf = [0u8; RECORD_FIXED_LEN];
        let got = read_full(&mut self.inner, &mut fixed_buf).map_err(io)?;
        if got < RECORD_FIXED_LEN {
            return Err(torn(needed, 4 + got as u64));
        }
        let body_len = len as usize - RECORD_FIXED_LEN;
        let mut body = Vec::with_capacity(body_len.min(BODY_CHUNK));
        (&mut self.inner)
            .take(body_len as u64)
            .read_to_end(&mut body)
            .map_err(io)?;
        if body.len() < body_len {
            return Err(torn(needed, (4 + RECORD_FIXED_LEN + body.len()) as u64));
        }

        let fixed = RecordFixed::decode(&fixed_buf);
        // Checked in this order so that each kind of tampering is named by
        // the earliest record it can be seen at: a moved record by its seq,
        // an altered record by its successor's prev.
        if fixed.seq != index {
            return Err(LogError::SeqMismatch {
                index,
                offset,
                found: fixed.seq,
            });
        }
        let kind = RecordKind::from_u8(fixed.kind).ok_or(LogError::UnknownKind {
            index,
            offset,
            kind: fixed.kind,
        })?;
        if fixed.prev != self.head {
            return Err(LogError::ChainMismatch {
                index,
                offset,
                expected: self.head,
                found: fixed.prev,
            });
        }
        if kind == RecordKind::Checkpoint {
            Checkpoint::verify(&body, &self.key, &self.header, index, &fixed.prev).map_err(
                |fault| LogError::BadCheckpoint {
                    index,
                    offset,
                    fault,
                },
            )?;
            self.checkpoints += 1;
            self.last_checkpoint = Some(index);
        }

        let hash = record_hash(index, kind, &fixed.prev, &body);
        self.head = hash;
        self.next_index += 1;
        self.offset += needed;
        if kind == RecordKind::Checkpoint {
            self.signed_len = self.offset;
        }
        Ok(Some(LogRecord {
            index,
            seq: fixed.seq,
            kind,
            prev: fixed.prev,
            body,
            hash,
            offset,
        }))
    }
}

impl<R: Read> Iterator for VoteLogReader<R> {
    type Item = Result<LogRecord, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Reads and verifies a whole log from `input`, keeping no bodies.
pub fn verify_log<R: Read>(input: R) -> Result<LogSummary, LogError> {
    let mut reader = VoteLogReader::new(input)?;
    while reader.next_record()?.is_some() {}
    Ok(reader.summary())
}

/// Reads and verifies the whole log file at `path`, keeping no bodies.
pub fn verify_log_file(path: &Path) -> Result<LogSummary, LogError> {
    let mut reader = VoteLogReader::open(path)?;
    while reader.next_record()?.is_some() {}
    Ok(reader.summary())
}

/// Fills `buf` as far as the input allows; returns how many bytes were read,
/// fewer than `buf.len()` only at end of input.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
        let room = rest.len();
        match input.read(rest) {
            Ok(0) => break,
            // `min` keeps a Read impl that over-reports from moving the cursor past the buffer.
            Ok(n) => filled += n.min(room),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
