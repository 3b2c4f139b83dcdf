//! Why a vote log does not read back: every record-level fault names the
//! record index and the byte offset where that record starts, so a verifier
//! can point at the first bad record and a writer can truncate a torn tail.

use super::checkpoint::CheckpointFault;
use super::format::{HEADER_LEN, MAX_RECORD_LEN, MIN_RECORD_LEN};
use crate::proto::identity::IdentityError;
use crate::proto::{ClusterId, Digest};

/// A fault found while reading a vote log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The underlying reader failed; nothing is known about the bytes from `offset` on.
    #[error("I/O error reading the vote log at byte {offset}: {source}")]
    Io {
        /// Offset of the header or record being read.
        offset: u64,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Zero bytes: not even a header.
    #[error("empty file, no header")]
    EmptyFile,
    /// The file does not start with `fedmesh-votelog\n`.
    #[error("not a fedmesh vote log: file starts with {} instead of the magic", hex::encode(.found))]
    BadMagic {
        /// The first bytes of the file (at most 16).
        found: Vec<u8>,
    },
    /// The magic is right but the file ends inside the header.
    #[error("truncated header: {len} of {HEADER_LEN} bytes")]
    TruncatedHeader {
        /// Bytes present.
        len: usize,
    },
    /// A format version this build does not read.
    #[error("unsupported vote log format version {version} (this build reads version 1)")]
    UnsupportedVersion {
        /// The version in the header.
        version: u16,
    },
    /// The header's node id is not a strong, canonical ed25519 key, so no
    /// checkpoint in the log could ever be trusted.
    #[error("header node id {node_id} cannot sign checkpoints: {source}")]
    BadNodeId {
        /// The node id from the header.
        node_id: ClusterId,
        /// Why the key is refused.
        source: IdentityError,
    },
    /// A length prefix below the fixed part of a record.
    #[error("record {index} at byte {offset}: length {len} is below the minimum {MIN_RECORD_LEN}")]
    RecordTooShort {
        /// Record index (0-based position in the file).
        index: u64,
        /// Byte offset of the record's length prefix.
        offset: u64,
        /// The length prefix.
        len: u32,
    },
    /// A length prefix above the 4 MiB cap; refused before any allocation.
    #[error("record {index} at byte {offset}: length {len} exceeds the cap of {MAX_RECORD_LEN}")]
    RecordTooLong {
        /// Record index.
        index: u64,
        /// Byte offset of the record's length prefix.
        offset: u64,
        /// The length prefix.
        len: u32,
    },
    /// The file ends inside a record: what a crash during an append leaves.
    #[error(
        "torn tail: record {index} at byte {offset} needs {needed} bytes, only {available} present"
    )]
    TornTail {
        /// Record index.
        index: u64,
        /// Byte offset of the incomplete record (where a writer truncates to).
        offset: u64,
        /// Bytes the record needs, length prefix included (4 if even the prefix is cut).
        needed: u64,
        /// Bytes present from `offset` to the end of the file.
        available: u64,
    },
    /// A record's seq is not its position: a record was deleted, duplicated or moved.
    #[error("record {index} at byte {offset}: seq {found}, expected {index}")]
    SeqMismatch {
        /// Record index (the expected seq).
        index: u64,
        /// Byte offset of the record.
        offset: u64,
        /// The seq stored in the record.
        found: u64,
    },
    /// A kind byte that version 1 does not define.
    #[error("record {index} at byte {offset}: unknown kind {kind}")]
    UnknownKind {
        /// Record index.
        index: u64,
        /// Byte offset of the record.
        offset: u64,
        /// The kind byte.
        kind: u8,
    },
    /// A record's `prev` is not the hash of the record before it: that record
    /// (or this field) was altered.
    #[error("record {index} at byte {offset}: chain broken, prev is {found}, expected {expected}")]
    ChainMismatch {
        /// Record index.
        index: u64,
        /// Byte offset of the record.
        offset: u64,
        /// The hash of the previous record (or `h_0`).
        expected: Digest,
        /// The `prev` field stored in the record.
        found: Digest,
    },
    /// A checkpoint record that does not vouch for the records before it.
    #[error("record {index} at byte {offset}: bad checkpoint: {fault}")]
    BadCheckpoint {
        /// Record index.
        index: u64,
        /// Byte offset of the record.
        offset: u64,
        /// What is wrong with it.
        #[source]
        fault: CheckpointFault,
    },
}

impl LogError {
    /// The index of the bad record, for faults inside a record.
    pub fn index(&self) -> Option<u64> {
        match self {
            LogError::RecordTooShort { index, .. }
            | LogError::RecordTooLong { index, .. }
            | LogError::TornTail { index, .. }
            | LogError::SeqMismatch { index, .. }
            | LogError::UnknownKind { index, .. }
            | LogError::ChainMismatch { index, .. }
            | LogError::BadCheckpoint { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// The byte offset where the faulty header (0) or record starts.
    pub fn offset(&self) -> u64 {
        match self {
            LogError::Io { offset, .. }
            | LogError::RecordTooShort { offset, .. }
            | LogError::RecordTooLong { offset, .. }
            | LogError::TornTail { offset, .. }
            | LogError::SeqMismatch { offset, .. }
            | LogError::UnknownKind { offset, .. }
            | LogError::ChainMismatch { offset, .. }
            | LogError::BadCheckpoint { offset, .. } => *offset,
            LogError::EmptyFile
            | LogError::BadMagic { .. }
            | LogError::TruncatedHeader { .. }
            | LogError::UnsupportedVersion { .. }
            | LogError::BadNodeId { .. } => 0,
        }
    }
}
