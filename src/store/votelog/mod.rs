//! The vote log container: an append-only file of length-prefixed records
//! with sequence numbers, a BLAKE3 hash chain and periodic checkpoints signed
//! by the node, readable and verifiable offline by anyone.
//!
//! This module handles framing, the chain, checkpoints, group commit and
//! crash recovery. Record bodies (votes, certificates, evidence, rosters)
//! are opaque bytes here; their meaning is decoded elsewhere. The byte
//! layout is specified in `docs/vote-log.md`.

pub mod checkpoint;
mod error;
pub mod format;
mod reader;
mod recovery;
mod sync;
mod writer;

#[cfg(test)]
mod tests;

pub use checkpoint::{Checkpoint, CheckpointFault};
pub use error::LogError;
pub use format::{LogHeader, RecordKind};
pub use reader::{LogRecord, LogSummary, VoteLogReader, verify_log, verify_log_file};
pub use sync::{SyncPolicy, WriterOptions};
pub use writer::{VoteLogWriter, WriterError};
