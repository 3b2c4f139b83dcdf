//! Record-level checks of vote logs: every vote, certificate, evidence and
//! roster epoch is decoded strictly, checked against the roster of its
//! epoch, and its signatures queued for parallel verification. All votes of
//! all logs feed one coordinator, so an equivocation is re-detected even when
//! its two votes sit in different nodes' logs.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::audit::sigbatch::SigBatch;
use crate::proto::bytes32::NetworkId;
use crate::proto::identity::ClusterId;
use crate::proto::log_entry::LogEntry;
use crate::proto::quorum::{Coordinator, VoteEffect, assume_signature_checked, check_vote_context};
use crate::proto::roster::Roster;
use crate::proto::roster_epoch::RosterEpoch;
use crate::proto::vote::SignedVote;

/// Signatures queued before a parallel verification batch runs.
const BATCH: usize = 8192;

/// The first bad record of a log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fault {
    /// Index (sequence number) of the bad record; `None` for the header.
    pub index: Option<u64>,
    /// A stable short code for scripts (`bad_signature`, `chain_mismatch`, ...).
    pub code: &'static str,
    /// What is wrong, for people.
    pub reason: String,
}

/// How many records of each kind a log held.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// All records, checkpoints included.
    pub records: u64,
    /// Vote records.
    pub votes: u64,
    /// Certificate records.
    pub certificates: u64,
    /// Evidence records.
    pub evidence: u64,
    /// Roster epoch records.
    pub rosters: u64,
    /// Checkpoint records.
    pub checkpoints: u64,
}

/// How a signer came to be flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagSource {
    /// The log holds evidence against it.
    EvidenceRecord,
    /// The verifier found two conflicting votes itself.
    Redetected,
}

/// Shared state across all logs of one `verify` run.
pub struct Auditor {
    genesis: Arc<Roster>,
    coordinator: Coordinator,
    sigs: SigBatch,
    flagged: BTreeMap<(u64, ClusterId), Vec<FlagSource>>,
}

impl Auditor {
    /// An auditor for the network whose genesis roster is `genesis`.
    pub fn new(genesis: Arc<Roster>) -> Self {
        Auditor {
            coordinator: Coordinator::new(genesis.clone()),
            genesis,
            sigs: SigBatch::new(BATCH),
            flagged: BTreeMap::new(),
        }
    }

    /// The network being audited.
    pub fn network_id(&self) -> NetworkId {
        self.genesis.network_id()
    }

    /// Starts checking one log whose header names `network_id`.
    pub fn begin_log(&mut self, network_id: NetworkId) -> LogAudit<'_> {
        let fault = (network_id != self.genesis.network_id()).then(|| Fault {
            index: None,
            code: "wrong_network",
            reason: format!(
                "log belongs to network {network_id}, the roster defines {}",
                self.genesis.network_id()
            ),
        });
        LogAudit {
            auditor: self,
            counts: Counts::default(),
            fault,
            in_flight: Vec::new(),
            queue: Vec::new(),
        }
    }

    /// Flagged signers: (epoch, signer, name in that epoch's roster, how found).
    pub fn flagged(&self) -> Vec<(u64, ClusterId, String, Vec<FlagSource>)> {
        self.flagged
            .iter()
            .map(|((epoch, id), sources)| {
                let name = self
                    .coordinator
                    .roster(*epoch)
                    .and_then(|r| r.member(id))
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                (*epoch, *id, name, sources.clone())
            })
            .collect()
    }

    /// Signatures verified and signatures skipped as duplicates.
    pub fn signature_counts(&self) -> (u64, u64) {
        (self.sigs.checked(), self.sigs.skipped())
    }

    fn flag(&mut self, epoch: u64, signer: ClusterId, source: FlagSource) {
        let sources = self.flagged.entry((epoch, signer)).or_default();
        if !sources.contains(&source) {
            sources.push(source);
            sources.sort();
        }
    }
}

/// The checks of one log in progress.
pub struct LogAudit<'a> {
    auditor: &'a mut Auditor,
    counts: Counts,
    fault: Option<Fault>,
    /// Work of the batch being verified on the pool.
    in_flight: Vec<Pending>,
    /// Work of the batch being filled.
    queue: Vec<Pending>,
}

/// Work that waits for its signatures: nothing is tallied or flagged on the
/// strength of a signature that has not verified, so a forgery can never
/// make an honest signer look like an equivocator.
enum Pending {
    Vote {
        index: u64,
        vote: SignedVote,
        digest: [u8; 32],
    },
    Evidence {
        epoch: u64,
        signer: ClusterId,
        digests: [[u8; 32]; 2],
    },
}

fn fault(index: u64, code: &'static str, reason: impl std::fmt::Display) -> Fault {
    Fault {
        index: Some(index),
        code,
        reason: reason.to_string(),
    }
}

impl LogAudit<'_> {
    /// Whether a fault was found (further records need not be fed).
    pub fn failed(&self) -> bool {
        self.fault.is_some()
    }

    /// Records a structural fault found by the log reader.
    pub fn structural(&mut self, f: Fault) {
        self.note(f);
    }

    /// Counts a checkpoint (verified by the log reader).
    pub fn checkpoint(&mut self) {
        self.counts.records += 1;
        self.counts.checkpoints += 1;
    }

    /// Checks one typed record. Stops at the first fault.
    pub fn record(&mut self, index: u64, kind: u8, body: &[u8]) {
        if self.failed() {
            return;
        }
        self.counts.records += 1;
        let entry = match LogEntry::decode(kind, body) {
            Ok(e) => e,
            Err(e) => return self.note(fault(index, "malformed_record", e)),
        };
        let result = match entry {
            LogEntry::Vote(v) => {
                self.counts.votes += 1;
                self.vote(index, &v)
            }
            LogEntry::Certificate(c) => {
                self.counts.certificates += 1;
                self.certificate(index, &c)
            }
            LogEntry::Evidence(e) => {
                self.counts.evidence += 1;
                self.evidence(index, &e)
            }
            LogEntry::Roster(r) => {
                self.counts.rosters += 1;
                self.roster(index, &r)
            }
        };
        if let Err(f) = result {
            self.note(f);
        }
    }

    fn roster_of(&self, index: u64, epoch: u64) -> Result<Arc<Roster>, Fault> {
        self.auditor
            .coordinator
            .roster(epoch)
            .cloned()
            .ok_or_else(|| {
                fault(
                    index,
                    "unknown_epoch",
                    format!("no roster for epoch {epoch} precedes this record"),
                )
            })
    }

    /// Queues the signature; the vote is tallied once it has verified.
    fn vote(&mut self, index: u64, vote: &SignedVote) -> Result<(), Fault> {
        let roster = self.roster_of(index, vote.vote.round.epoch)?;
        check_vote_context(&roster, vote).map_err(|e| fault(index, "vote_refused", e))?;
        let key = roster
            .key(&vote.vote.voter)
            .ok_or_else(|| fault(index, "vote_refused", "voter has no key"))?;
        let digest = self.auditor.sigs.push(index, vote, key);
        self.queue.push(Pending::Vote {
            index,
            vote: *vote,
            digest,
        });
        if self.auditor.sigs.is_full() {
            let bad = self.auditor.sigs.launch();
            let settled = std::mem::replace(&mut self.in_flight, std::mem::take(&mut self.queue));
            self.settle(settled, &bad);
        }
        Ok(())
    }

    /// Waits until every queued signature has a verdict, then tallies and
    /// flags, in record order, only what the signatures vouch for.
    fn flush(&mut self) {
        let bad = self.auditor.sigs.flush();
        let mut work = std::mem::take(&mut self.in_flight);
        work.append(&mut self.queue);
        self.settle(work, &bad);
    }

    fn settle(&mut self, work: Vec<Pending>, bad: &[crate::audit::sigbatch::BadSignature]) {
        if let Some(first) = bad.first() {
            let voter = first.vote.vote.voter;
            self.note(fault(
                first.index,
                "bad_signature",
                format!(
                    "signature by {} does not verify (verify_strict)",
                    voter.short()
                ),
            ));
        }
        let bad: std::collections::HashSet<[u8; 32]> = bad.iter().map(|b| b.digest).collect();
        for pending in work {
            match pending {
                Pending::Vote {
                    index,
                    vote,
                    digest,
                } if !bad.contains(&digest) => {
                    if let Err(f) = self.tally(index, &vote) {
                        self.note(f);
                    }
                }
                Pending::Evidence {
                    epoch,
                    signer,
                    digests,
                } if !digests.iter().any(|d| bad.contains(d)) => {
                    self.auditor.flag(epoch, signer, FlagSource::EvidenceRecord);
                }
                _ => {}
            }
        }
    }

    fn tally(&mut self, index: u64, vote: &SignedVote) -> Result<(), Fault> {
        let roster = self.roster_of(index, vote.vote.round.epoch)?;
        let verified =
            assume_signature_checked(&roster, vote).map_err(|e| fault(index, "vote_refused", e))?;
        let report = self
            .auditor
            .coordinator
            .add_vote(&verified)
            .map_err(|e| fault(index, "vote_refused", e))?;
        if let VoteEffect::Equivocation(e) = report.effect {
            self.auditor
                .flag(e.slot().round.epoch, e.signer(), FlagSource::Redetected);
        }
        Ok(())
    }

    fn certificate(
        &mut self,
        index: u64,
        cert: &crate::proto::certificate::Certificate,
    ) -> Result<(), Fault> {
        let roster = self.roster_of(index, cert.round().epoch)?;
        cert.verify_tally(&roster)
            .map_err(|e| fault(index, "bad_certificate", e))?;
        for vote in cert.votes() {
            self.vote(index, &vote)?;
        }
        Ok(())
    }

    fn evidence(
        &mut self,
        index: u64,
        evidence: &crate::proto::evidence::Evidence,
    ) -> Result<(), Fault> {
        let epoch = evidence.slot().round.epoch;
        let roster = self.roster_of(index, epoch)?;
        let signer = evidence
            .verify_without_signatures(&roster)
            .map_err(|e| fault(index, "bad_evidence", e))?;
        let key = roster
            .key(&signer)
            .ok_or_else(|| fault(index, "bad_evidence", "signer has no key"))?;
        let digests = [
            self.auditor.sigs.push(index, evidence.first(), key),
            self.auditor.sigs.push(index, evidence.second(), key),
        ];
        self.queue.push(Pending::Evidence {
            epoch,
            signer,
            digests,
        });
        Ok(())
    }

    fn roster(&mut self, index: u64, epoch: &RosterEpoch) -> Result<(), Fault> {
        let n = epoch.roster.epoch();
        if n == 0 {
            epoch
                .verify_genesis(&self.auditor.genesis)
                .map_err(|e| fault(index, "bad_roster", e))?;
            return Ok(());
        }
        let previous = self.roster_of(index, n - 1)?;
        let cert = epoch
            .verify_successor_tally(&previous)
            .map_err(|e| fault(index, "bad_roster", e))?;
        for vote in cert.votes() {
            self.vote(index, &vote)?;
        }
        // Later records are checked with this roster's weights: adopt it only
        // once its certificate's signatures have verified.
        self.flush();
        if self.failed() {
            return Ok(());
        }
        self.auditor
            .coordinator
            .add_roster(epoch.roster.clone())
            .map_err(|e| fault(index, "bad_roster", e))
    }

    fn note(&mut self, f: Fault) {
        let earlier = match (&self.fault, f.index) {
            (None, _) => true,
            (Some(old), Some(new)) => old.index.is_some_and(|o| new < o),
            (Some(_), None) => true,
        };
        if earlier {
            self.fault = Some(f);
        }
    }

    /// Verifies every queued signature and returns the counts and the first fault.
    pub fn finish(mut self) -> (Counts, Option<Fault>) {
        self.flush();
        (self.counts, self.fault)
    }
}
