//! Tests across the reader and writer: tampering, crash recovery, group
//! commit, and the documented example log. Shared fixtures live here.

mod golden;
mod recovery;
mod robustness;
mod tamper;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;

use tempfile::TempDir;

use super::{
    LogError, LogRecord, LogSummary, RecordKind, VoteLogReader, VoteLogWriter, WriterOptions,
    verify_log,
};
use crate::proto::{Identity, NetworkId};

/// A temporary directory with a log path, a node identity and a network.
pub(super) struct Fixture {
    _dir: TempDir,
    pub path: PathBuf,
    pub identity: Arc<Identity>,
    pub network: NetworkId,
}

pub(super) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        path: dir.path().join("votes.log"),
        _dir: dir,
        identity: Arc::new(Identity::from_seed([42; 32])),
        network: NetworkId([0xab; 32]),
    }
}

impl Fixture {
    pub fn create(&self, options: WriterOptions) -> VoteLogWriter {
        VoteLogWriter::create(&self.path, self.network, self.identity.clone(), options).unwrap()
    }

    pub fn open(&self, options: WriterOptions) -> VoteLogWriter {
        VoteLogWriter::open(&self.path, self.network, self.identity.clone(), options).unwrap()
    }

    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }
}

/// Options with checkpoints every `n` records and no time-based syncs, so
/// that what the writer does depends on the records alone.
pub(super) fn every(n: u64) -> WriterOptions {
    WriterOptions {
        checkpoint_every: n,
        sync: super::SyncPolicy {
            max_unsynced_records: 256,
            max_delay: std::time::Duration::MAX,
        },
    }
}

/// The kind and body of the `i`-th appended record: kinds cycle through the
/// four ordinary kinds, lengths vary (including empty bodies).
pub(super) fn item(i: u64) -> (RecordKind, Vec<u8>) {
    let kinds = [
        RecordKind::Vote,
        RecordKind::Certificate,
        RecordKind::Evidence,
        RecordKind::Roster,
    ];
    let kind = kinds[(i % 4) as usize];
    let body = format!("record-{i}-").repeat((i % 5) as usize).into_bytes();
    (kind, body)
}

/// Appends items `from..to` and returns their seqs.
pub(super) fn append_items(w: &mut VoteLogWriter, from: u64, to: u64) -> Vec<u64> {
    (from..to)
        .map(|i| {
            let (kind, body) = item(i);
            w.append(kind, &body).unwrap()
        })
        .collect()
}

/// All records of a valid log, plus its summary.
pub(super) fn read_all(bytes: &[u8]) -> (Vec<LogRecord>, LogSummary) {
    let mut reader = VoteLogReader::new(bytes).unwrap();
    let records: Vec<LogRecord> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    (records, reader.summary())
}

/// The fault that makes `bytes` invalid.
pub(super) fn fault(bytes: &[u8]) -> LogError {
    match verify_log(bytes) {
        Ok(summary) => panic!("log unexpectedly valid: {summary:?}"),
        Err(e) => e,
    }
}

/// The ordinary (non-checkpoint) records' kinds and bodies, in order.
pub(super) fn items_of(records: &[LogRecord]) -> Vec<(RecordKind, Vec<u8>)> {
    records
        .iter()
        .filter(|r| r.kind != RecordKind::Checkpoint)
        .map(|r| (r.kind, r.body.clone()))
        .collect()
}
