//! Verifying a set of vote-log files against a genesis roster: the library
//! side of `fedmesh verify`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::audit::checker::{Auditor, Counts, Fault, FlagSource};
use crate::proto::bytes32::NetworkId;
use crate::proto::identity::ClusterId;
use crate::proto::roster::Roster;
use crate::store::votelog::{LogError, RecordKind, VoteLogReader};

/// Options of a verification run.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Accept records after the last checkpoint (a log whose writer crashed
    /// before sealing it). By default such a tail makes the log invalid,
    /// because it is exactly what cutting off the end of a log looks like.
    pub allow_unsealed: bool,
}

/// The verdict on one log file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogReport {
    /// The file.
    pub path: PathBuf,
    /// The node that wrote it (from the header), if the header was readable.
    pub node_id: Option<ClusterId>,
    /// Records by kind.
    pub counts: Counts,
    /// Whether the log ends with a checkpoint.
    pub sealed: bool,
    /// Records after the last checkpoint.
    pub unsealed: u64,
    /// The first bad record, if any.
    pub fault: Option<Fault>,
    /// An I/O error that stopped reading (the verdict is then unknown).
    pub io_error: Option<String>,
}

impl LogReport {
    /// Valid: fully read, no fault.
    pub fn is_valid(&self) -> bool {
        self.fault.is_none() && self.io_error.is_none()
    }
}

/// One flagged signer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FlaggedSigner {
    /// The epoch it equivocated in.
    pub epoch: u64,
    /// The signer.
    pub id: ClusterId,
    /// Its name in that epoch's roster.
    pub name: String,
    /// How it was found.
    pub sources: Vec<FlagSource>,
}

/// The verdict on a whole run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    /// The network name from the roster.
    pub network: String,
    /// The network id.
    pub network_id: NetworkId,
    /// One report per log, in argument order.
    pub logs: Vec<LogReport>,
    /// Every equivocating signer found, across all logs.
    pub flagged: Vec<FlaggedSigner>,
    /// Signatures verified.
    pub signatures_verified: u64,
    /// Signatures skipped as exact duplicates of ones already verified.
    pub signatures_skipped: u64,
    /// Wall time of the run, in seconds.
    pub seconds: f64,
}

/// How a run ends, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every log is valid (exit 0).
    Valid,
    /// At least one log is invalid (exit 1).
    Invalid,
    /// A log could not be read (exit 2).
    IoError,
}

impl VerifyReport {
    /// The verdict: I/O errors dominate, then invalid logs.
    pub fn verdict(&self) -> Verdict {
        if self.logs.iter().any(|l| l.io_error.is_some()) {
            Verdict::IoError
        } else if self.logs.iter().all(LogReport::is_valid) {
            Verdict::Valid
        } else {
            Verdict::Invalid
        }
    }

    /// Votes and certificate votes per second of wall time.
    pub fn signatures_per_second(&self) -> f64 {
        (self.signatures_verified + self.signatures_skipped) as f64 / self.seconds.max(1e-9)
    }
}

/// A short stable code for each structural fault.
fn code(e: &LogError) -> &'static str {
    match e {
        LogError::Io { .. } => "io",
        LogError::EmptyFile => "empty_file",
        LogError::BadMagic { .. } => "bad_magic",
        LogError::TruncatedHeader { .. } => "truncated_header",
        LogError::UnsupportedVersion { .. } => "unsupported_version",
        LogError::BadNodeId { .. } => "bad_node_id",
        LogError::RecordTooShort { .. } => "record_too_short",
        LogError::RecordTooLong { .. } => "record_too_long",
        LogError::TornTail { .. } => "torn_tail",
        LogError::SeqMismatch { .. } => "seq_mismatch",
        LogError::UnknownKind { .. } => "unknown_kind",
        LogError::ChainMismatch { .. } => "chain_mismatch",
        LogError::BadCheckpoint { .. } => "bad_checkpoint",
    }
}

fn structural(e: &LogError) -> Fault {
    Fault {
        index: e.index(),
        code: code(e),
        reason: e.to_string(),
    }
}

fn verify_one(auditor: &mut Auditor, path: &Path, options: VerifyOptions) -> LogReport {
    let mut report = LogReport {
        path: path.to_owned(),
        node_id: None,
        counts: Counts::default(),
        sealed: false,
        unsealed: 0,
        fault: None,
        io_error: None,
    };
    let mut reader = match VoteLogReader::open(path) {
        Ok(r) => r,
        Err(e @ LogError::Io { .. }) => {
            report.io_error = Some(e.to_string());
            return report;
        }
        Err(e) => {
            report.fault = Some(structural(&e));
            return report;
        }
    };
    report.node_id = Some(reader.header().node_id);
    let mut audit = auditor.begin_log(reader.header().network_id);
    let mut reached_end = false;
    while !audit.failed() {
        match reader.next_record() {
            Ok(Some(rec)) if rec.kind == RecordKind::Checkpoint => audit.checkpoint(),
            Ok(Some(rec)) => audit.record(rec.index, rec.kind.as_u8(), &rec.body),
            Ok(None) => {
                reached_end = true;
                break;
            }
            Err(e @ LogError::Io { .. }) => {
                report.io_error = Some(e.to_string());
                break;
            }
            Err(e) => {
                audit.structural(structural(&e));
                break;
            }
        }
    }
    let summary = reader.summary();
    report.sealed = summary.sealed;
    report.unsealed = summary.unsealed;
    // Only a log read cleanly to its end can be judged for an unsealed tail.
    if reached_end && !audit.failed() && summary.unsealed > 0 && !options.allow_unsealed {
        audit.structural(Fault {
            index: Some(summary.records - summary.unsealed),
            code: "unsealed_tail",
            reason: format!(
                "{} records after the last checkpoint are not covered by the node's signature \
                 (the writer did not close the log, or its end was cut off); \
                 pass --allow-unsealed to accept them",
                summary.unsealed
            ),
        });
    }
    let (counts, fault) = audit.finish();
    report.counts = counts;
    report.fault = fault;
    report
}

/// Verifies every log in `paths` against the network of `genesis`.
/// Equivocations are re-detected across all the logs together.
pub fn verify_logs(
    genesis: Arc<Roster>,
    paths: &[PathBuf],
    options: VerifyOptions,
) -> VerifyReport {
    let start = Instant::now();
    let mut auditor = Auditor::new(genesis.clone());
    let logs = paths
        .iter()
        .map(|p| verify_one(&mut auditor, p, options))
        .collect();
    let (signatures_verified, signatures_skipped) = auditor.signature_counts();
    VerifyReport {
        network: genesis.network_name().to_owned(),
        network_id: genesis.network_id(),
        logs,
        flagged: auditor
            .flagged()
            .into_iter()
            .map(|(epoch, id, name, sources)| FlaggedSigner {
                epoch,
                id,
                name,
                sources,
            })
            .collect(),
        signatures_verified,
        signatures_skipped,
        seconds: start.elapsed().as_secs_f64(),
    }
}
