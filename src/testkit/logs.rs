//! Writes realistic vote logs for tests and benchmarks: the genesis roster,
//! rounds of votes with their certificates, and optionally one equivocation
//! with its evidence.

use std::path::Path;
use std::sync::Arc;

use crate::proto::certificate::Certificate;
use crate::proto::evidence::Evidence;
use crate::proto::log_entry::LogEntry;
use crate::proto::quorum::verify_vote;
use crate::proto::roster_epoch::RosterEpoch;
use crate::proto::vote::VoteKind;
use crate::store::votelog::{RecordKind, VoteLogWriter, WriterError, WriterOptions};
use crate::testkit::{TestNet, value};

/// What to put in a sample log.
#[derive(Debug, Clone, Copy)]
pub struct SampleLog {
    /// Rounds; every member votes in each.
    pub rounds: u64,
    /// Append each round's certificate after its votes.
    pub certificates: bool,
    /// Member whose conflicting vote (and the evidence) is added in round 0.
    pub equivocator: Option<usize>,
    /// Which member writes (and checkpoints) the log.
    pub writer: usize,
}

/// Appends one typed entry.
pub fn append_entry(writer: &mut VoteLogWriter, entry: &LogEntry) -> Result<u64, WriterError> {
    let kind = match entry {
        LogEntry::Vote(_) => RecordKind::Vote,
        LogEntry::Certificate(_) => RecordKind::Certificate,
        LogEntry::Evidence(_) => RecordKind::Evidence,
        LogEntry::Roster(_) => RecordKind::Roster,
    };
    writer.append(kind, &entry.encode())
}

/// Writes a sample log for `net` at `path`; returns the number of vote records.
pub fn write_sample_log(
    net: &TestNet,
    path: &Path,
    spec: SampleLog,
    options: WriterOptions,
) -> Result<u64, WriterError> {
    let identity = Arc::new(crate::proto::Identity::from_seed(net.seed_of(spec.writer)));
    let mut w = VoteLogWriter::create(path, net.roster.network_id(), identity, options)?;
    append_entry(
        &mut w,
        &LogEntry::Roster(RosterEpoch {
            roster: net.roster.clone(),
            certificate: None,
            attempt: 0,
        }),
    )?;
    let mut votes = 0;
    for r in 0..spec.rounds {
        let round = net.round(VoteKind::ByzantineQuorum, r);
        let mut verified = Vec::with_capacity(net.identities.len());
        for i in 0..net.identities.len() {
            let v = net.vote(i, round, value(r));
            append_entry(&mut w, &LogEntry::Vote(v))?;
            votes += 1;
            if let Ok(ok) = verify_vote(&net.roster, &v) {
                verified.push(ok);
            }
            if r == 0 && spec.equivocator == Some(i) {
                let conflicting = net.vote(i, round, value(u64::MAX));
                append_entry(&mut w, &LogEntry::Vote(conflicting))?;
                votes += 1;
                if let Ok(e) = Evidence::from_conflict(v, conflicting) {
                    append_entry(&mut w, &LogEntry::Evidence(Box::new(e)))?;
                }
            }
        }
        if spec.certificates {
            let cert = Certificate::from_votes(round, value(r), &verified);
            append_entry(&mut w, &LogEntry::Certificate(cert))?;
        }
    }
    w.close()?;
    Ok(votes)
}
