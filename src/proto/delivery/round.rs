//! The quorum round driver for GLOBAL_QUORUM and BYZANTINE_QUORUM, on top
//! of the foundation [`Coordinator`].
//!
//! Flow: the origin [`QuorumDriver::propose`]s a message to every member;
//! each member's `Voter` signs (batched) and sends its votes to every member;
//! every node's driver verifies and tallies every vote it receives
//! ([`QuorumDriver::on_batch`], [`QuorumDriver::on_vote`]), so every node's
//! coordinator sees votes first-hand and flags equivocators. A round decides
//! as soon as the outcome is certain: accepted when a value reaches quorum,
//! rejected as soon as the remaining weight cannot get any value there (not at
//! the timeout). The origin then disseminates the certificate; receivers check
//! it with [`verify_delivery`] before delivering, and feed it to
//! [`QuorumDriver::on_certificate`], which also compares its votes with the
//! ones seen directly (that is how a voter that sent different values to
//! different nodes is caught). Evidence is gossiped and applied with
//! [`QuorumDriver::on_evidence`].
//!
//! Votes may be batch-attested, which the foundation coordinator does not
//! know: the driver verifies each attested vote itself, hands the coordinator
//! the vote with the attestation's signature bytes as an opaque tag (never
//! exported: this driver's coordinator is private and its `Evidence` and
//! `Certificate` values are never used), and keeps the attested vote that was
//! counted for each slot, from which it builds [`QuorumCertificate`]s and
//! [`VoteEvidence`].
//!
//! A round that decides locally as `Rejected` can still be certified
//! elsewhere when a Byzantine voter equivocated: a local rejection means "no
//! quorum in what this node saw"; only a certificate is final, and at most one
//! value per slot can ever be certified while faulty weight stays under the
//! threshold's tolerance.

use std::sync::Arc;
use std::time::Duration;

use ahash::{HashMap, HashSet};

use crate::proto::bytes32::{Digest, NetworkId};
use crate::proto::certificate::CertificateError;
use crate::proto::evidence::EvidenceError;
use crate::proto::identity::ClusterId;
use crate::proto::membership::sigcache::SigCache;
use crate::proto::quorum::{
    Coordinator, CoordinatorError, Decision, VoteEffect, assume_signature_checked,
};
use crate::proto::roster::Roster;
use crate::proto::time::Millis;
use crate::proto::vote::{Round, SignedVote, Vote, VoteError};

use super::batch::{Attestation, AttestedVote, VerifiedBatch, VoteBatch};
use super::certificate::QuorumCertificate;
use super::envelope::Envelope;
use super::evidence::VoteEvidence;
use super::timing::Backoff;
use super::voter::Proposal;

/// Round driver settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumConfig {
    /// Round timeouts: the first is `rtt_multiple` × the largest member RTT.
    pub backoff: Backoff,
    /// Proposals sent per round (first + retries to members that did not vote)
    /// before the origin gives up with [`Outcome::TimedOut`].
    pub max_attempts: u32,
    /// Most rounds this node originates at once (backpressure beyond).
    pub max_rounds: usize,
    /// Most rounds tallied at once, own and others' (older ones are forgotten by [`QuorumDriver::gc`]).
    pub max_tracked: usize,
    /// How long a decided or foreign round's tally is kept (late votes and
    /// certificates still catch equivocators within it).
    pub retention: Duration,
}

impl Default for QuorumConfig {
    fn default() -> Self {
        QuorumConfig {
            backoff: Backoff::default(),
            max_attempts: 4,
            max_rounds: 16_384,
            max_tracked: 131_072,
            retention: Duration::from_secs(60),
        }
    }
}

/// How a round ended at this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A quorum accepted the value: the certificate proves it.
    Accepted(Arc<QuorumCertificate>),
    /// No value can reach quorum in the votes this node saw.
    Rejected,
    /// The origin gave up after its last retry (own rounds only).
    TimedOut,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumOutput {
    /// Send the proposal to these members (this node included: hand it to the local voter).
    Propose {
        /// Destinations.
        to: Vec<ClusterId>,
        /// The proposal.
        proposal: Proposal,
    },
    /// Call [`QuorumDriver::on_timer`] for `round` at `at`.
    Timer {
        /// The round.
        round: Round,
        /// When.
        at: Millis,
    },
    /// A round decided at this node. For `own` rounds with
    /// [`Outcome::Accepted`], disseminate the certificate to every member.
    Decided {
        /// The round.
        round: Round,
        /// The outcome.
        outcome: Outcome,
        /// Whether this node originated the round.
        own: bool,
    },
    /// A verified certificate seen for the first time here (from the tally or
    /// from elsewhere): the message may be delivered (after [`verify_delivery`]).
    Certified(Arc<QuorumCertificate>),
    /// A signer equivocated: flagged here; gossip the evidence and log it.
    Evidence(Box<VoteEvidence>),
    /// Votes this node holds for a certified round from voters whose vote is
    /// not in the certificate, whatever their value: send them back to
    /// whoever sent the certificate. A voter that told different nodes
    /// different things is then caught there even when quorum was reached
    /// without it (its votes are in no certificate): the origin holds one
    /// value directly and receives the other from a node that was told it.
    Echo(Vec<AttestedVote>),
}

/// Why an input is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    /// The message's guarantee is not a quorum guarantee.
    #[error("guarantee {0} is not decided by a quorum round")]
    NotAQuorumGuarantee(super::Guarantee),
    /// Too many own rounds in flight.
    #[error("{0} quorum rounds in flight, the limit")]
    Busy(usize),
    /// Too many rounds tallied; the vote was not counted.
    #[error("{0} rounds tracked, the limit")]
    TooManyRounds(usize),
    /// This message is already being decided.
    #[error("a round for this message is already in flight")]
    Duplicate,
    /// A vote or batch does not verify.
    #[error(transparent)]
    Vote(#[from] VoteError),
    /// The coordinator refused the input.
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    /// A certificate does not verify.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// Evidence does not verify.
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
}

/// Counters an operator sees (MPREG's names in parentheses).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuorumCounters {
    /// Rounds this node originated (consensus rounds total).
    pub started: u64,
    /// Own rounds accepted (consensus rounds succeeded).
    pub accepted: u64,
    /// Own rounds rejected (consensus rounds failed).
    pub rejected: u64,
    /// Own rounds given up at the timeout (consensus rounds failed).
    pub timed_out: u64,
    /// Proposal retransmissions.
    pub retries: u64,
    /// Equivocations detected first-hand (byzantine faults detected).
    pub equivocations: u64,
    /// Signers flagged from others' evidence.
    pub flagged_from_evidence: u64,
    /// Votes, batches or certificates refused.
    pub refused: u64,
}

/// What proves one voter's vote in a tallied round.
#[derive(Debug)]
enum Proof {
    /// Entry `index` of a verified batch; the attested vote (with its Merkle
    /// path) is built only when a certificate, evidence or echo needs it, so
    /// tallying an entry copies a pointer, not a ~600-byte proof.
    Batch {
        batch: Arc<VerifiedBatch>,
        index: u32,
        value: Digest,
    },
    /// A vote that arrived alone, or from a certificate or evidence.
    Attested(Box<AttestedVote>),
}

impl Proof {
    fn voter(&self) -> ClusterId {
        match self {
            Proof::Batch { batch, .. } => batch.voter(),
            Proof::Attested(v) => v.vote.voter,
        }
    }

    fn value(&self) -> Digest {
        match self {
            Proof::Batch { value, .. } => *value,
            Proof::Attested(v) => v.vote.value,
        }
    }

    /// The signature bytes handed to the coordinator as an opaque tag.
    fn signature(&self) -> [u8; 64] {
        match self {
            Proof::Batch { batch, .. } => *batch.signature(),
            Proof::Attested(v) => match &v.attestation {
                Attestation::Single(s) => *s,
                Attestation::Batch(p) => p.signature,
            },
        }
    }

    fn attestation(&self) -> Attestation {
        match self {
            Proof::Batch { batch, index, .. } => Attestation::Batch(batch.proof(*index)),
            Proof::Attested(v) => v.attestation.clone(),
        }
    }

    /// The self-contained attested vote for `round`.
    fn attested(&self, round: Round) -> AttestedVote {
        match self {
            Proof::Batch { batch, value, .. } => AttestedVote {
                vote: Vote {
                    round,
                    value: *value,
                    voter: batch.voter(),
                },
                attestation: self.attestation(),
            },
            Proof::Attested(v) => (**v).clone(),
        }
    }
}

#[derive(Debug)]
struct RoundInfo {
    first_seen: Millis,
    certified: bool,
    /// The proof recorded first for each voter whose vote was counted.
    proofs: Vec<Proof>,
}

impl RoundInfo {
    fn new(now: Millis, members: usize) -> Self {
        RoundInfo {
            first_seen: now,
            certified: false,
            // One allocation per round: every member's vote fits.
            proofs: Vec::with_capacity(members.min(64)),
        }
    }
}

#[derive(Debug)]
struct OwnRound {
    proposal: Proposal,
    attempt: u32,
    timeout: Duration,
    deadline: Millis,
}

/// Drives quorum rounds: own proposals, tallies of every round seen,
/// certificates, evidence.
#[derive(Debug)]
pub struct QuorumDriver {
    me: ClusterId,
    config: QuorumConfig,
    /// Every tallied round, with beside its tally: when first seen, whether
    /// a certificate was reported, and the proof recorded first for each voter.
    coordinator: Coordinator<RoundInfo>,
    cache: Arc<SigCache>,
    current: Arc<Roster>,
    own: HashMap<Round, OwnRound>,
    counters: QuorumCounters,
}

impl QuorumDriver {
    /// A driver for `me` in the network of `roster` (its current epoch).
    pub fn new(
        me: ClusterId,
        roster: Arc<Roster>,
        config: QuorumConfig,
        cache: Arc<SigCache>,
    ) -> Self {
        QuorumDriver {
            me,
            config,
            coordinator: Coordinator::with_round_data(roster.clone()),
            cache,
            current: roster,
            own: HashMap::default(),
            counters: QuorumCounters::default(),
        }
    }

    /// Adds a validated roster; rounds proposed afterwards use the highest epoch.
    pub fn add_roster(&mut self, roster: Arc<Roster>) -> Result<(), CoordinatorError> {
        self.coordinator.add_roster(roster.clone())?;
        if roster.epoch() > self.current.epoch() {
            self.current = roster;
        }
        Ok(())
    }

    /// The network.
    pub fn network_id(&self) -> NetworkId {
        self.roster().network_id()
    }

    /// The roster of the current epoch.
    pub fn roster(&self) -> &Arc<Roster> {
        &self.current
    }

    /// Starts a round for `envelope` in the current epoch; `max_rtt` is the
    /// largest RTT to the members (None if not measured yet).
    pub fn propose(
        &mut self,
        now: Millis,
        envelope: Arc<Envelope>,
        max_rtt: Option<Duration>,
    ) -> Result<Vec<QuorumOutput>, QuorumError> {
        let kind = envelope
            .guarantee
            .vote_kind()
            .ok_or(QuorumError::NotAQuorumGuarantee(envelope.guarantee))?;
        if self.own.len() >= self.config.max_rounds {
            return Err(QuorumError::Busy(self.own.len()));
        }
        let roster = self.roster().clone();
        let round = Round {
            network_id: roster.network_id(),
            epoch: roster.epoch(),
            kind,
            subject: envelope.subject(roster.network_id()),
        };
        if self.own.contains_key(&round) || self.coordinator.round(&round).is_some() {
            return Err(QuorumError::Duplicate);
        }
        let timeout = self.config.backoff.initial(max_rtt);
        let deadline = now + timeout;
        let proposal = Proposal { round, envelope };
        self.own.insert(
            round,
            OwnRound {
                proposal: proposal.clone(),
                attempt: 1,
                timeout,
                deadline,
            },
        );
        self.coordinator
            .round_data(round, || RoundInfo::new(now, roster.members().len()));
        self.counters.started += 1;
        let to = roster.members().iter().map(|m| m.id).collect();
        Ok(vec![
            QuorumOutput::Propose { to, proposal },
            QuorumOutput::Timer {
                round,
                at: deadline,
            },
        ])
    }

    /// A vote batch from a member: one signature check for the whole batch.
    pub fn on_batch(
        &mut self,
        now: Millis,
        batch: &VoteBatch,
    ) -> Result<Vec<QuorumOutput>, QuorumError> {
        let epoch = batch.round(Digest::default()).epoch;
        let roster = self
            .coordinator
            .roster(epoch)
            .ok_or(CoordinatorError::UnknownEpoch(epoch))?
            .clone();
        let verified = match batch.verified(&roster, Some(&self.cache)) {
            Ok(v) => Arc::new(v),
            Err(e) => {
                self.counters.refused += 1;
                return Err(e.into());
            }
        };
        let voter = batch.voter();
        let mut out = Vec::new();
        for (index, (subject, value)) in batch.entries().iter().enumerate() {
            let vote = Vote {
                round: batch.round(*subject),
                value: *value,
                voter,
            };
            let proof = Proof::Batch {
                batch: verified.clone(),
                index: index as u32,
                value: *value,
            };
            self.ingest(now, vote, proof, &mut out)?;
        }
        Ok(out)
    }

    /// One attested vote (a single vote, or a batch entry relayed alone).
    pub fn on_vote(
        &mut self,
        now: Millis,
        vote: AttestedVote,
    ) -> Result<Vec<QuorumOutput>, QuorumError> {
        self.verify_vote(&vote)?;
        let mut out = Vec::new();
        self.ingest(now, vote.vote, Proof::Attested(Box::new(vote)), &mut out)?;
        Ok(out)
    }

    fn verify_vote(&mut self, vote: &AttestedVote) -> Result<(), QuorumError> {
        let epoch = vote.vote.round.epoch;
        let roster = self
            .coordinator
            .roster(epoch)
            .ok_or(CoordinatorError::UnknownEpoch(epoch))?;
        vote.verify(roster, Some(&self.cache)).map_err(|e| {
            self.counters.refused += 1;
            e.into()
        })
    }

    /// A certificate from elsewhere: verified, then its votes are compared
    /// with the ones seen here (catching voters that told nodes different
    /// things) and counted.
    pub fn on_certificate(
        &mut self,
        now: Millis,
        cert: &QuorumCertificate,
    ) -> Result<Vec<QuorumOutput>, QuorumError> {
        let epoch = cert.round().epoch;
        let roster = self
            .coordinator
            .roster(epoch)
            .ok_or(CoordinatorError::UnknownEpoch(epoch))?
            .clone();
        if let Err(e) = cert.verify(&roster, Some(&self.cache)) {
            self.counters.refused += 1;
            return Err(e.into());
        }
        let mut out = Vec::new();
        for vote in cert.votes() {
            self.ingest(now, vote.vote, Proof::Attested(Box::new(vote)), &mut out)?;
        }
        let in_cert: HashSet<ClusterId> = cert.votes().map(|v| v.vote.voter).collect();
        let echo: Vec<AttestedVote> = roster
            .members()
            .iter()
            .filter(|m| !in_cert.contains(&m.id))
            .filter_map(|m| self.proof(&cert.round(), &m.id))
            .collect();
        if !echo.is_empty() {
            out.push(QuorumOutput::Echo(echo));
        }
        if self.mark_certified(&cert.round()) {
            out.push(QuorumOutput::Certified(Arc::new(cert.clone())));
        }
        Ok(out)
    }

    /// Evidence gossiped by another node: verified, the signer flagged, and
    /// undecided rounds re-evaluated (a flag can make quorum unreachable).
    /// Emits the evidence again only if the signer is newly flagged here.
    pub fn on_evidence(
        &mut self,
        now: Millis,
        evidence: &VoteEvidence,
    ) -> Result<Vec<QuorumOutput>, QuorumError> {
        let epoch = evidence.slot().round.epoch;
        let roster = self
            .coordinator
            .roster(epoch)
            .ok_or(CoordinatorError::UnknownEpoch(epoch))?
            .clone();
        let signer = evidence
            .verify(&roster, Some(&self.cache))
            .inspect_err(|_| {
                self.counters.refused += 1;
            })?;
        let mut out = Vec::new();
        if self.coordinator.is_flagged(epoch, &signer) {
            return Ok(out);
        }
        let before = self.counters.equivocations;
        // Replaying both votes through the tally flags the signer exactly as
        // first-hand detection does (and counts its first value once, as the
        // coordinator's rule says).
        for vote in [evidence.first().clone(), evidence.second().clone()] {
            self.ingest(now, vote.vote, Proof::Attested(Box::new(vote)), &mut out)?;
        }
        self.counters.equivocations = before;
        if !out.iter().any(|o| matches!(o, QuorumOutput::Evidence(_))) {
            out.push(QuorumOutput::Evidence(Box::new(evidence.clone())));
        }
        self.counters.flagged_from_evidence += 1;
        // Rounds without any vote yet (own proposals) are left to their votes.
        let pending: Vec<Round> = self
            .coordinator
            .rounds()
            .filter(|(r, t, _)| r.epoch == epoch && !t.is_empty() && t.decision().is_none())
            .map(|(r, _, _)| *r)
            .collect();
        for round in pending {
            if let Some(d) = self.coordinator.evaluate(round)? {
                self.decided(round, d, &mut out);
            }
        }
        Ok(out)
    }

    /// Counts a verified vote; `proof` is what proves it.
    fn ingest(
        &mut self,
        now: Millis,
        vote: Vote,
        proof: Proof,
        out: &mut Vec<QuorumOutput>,
    ) -> Result<(), QuorumError> {
        let round = vote.round;
        let roster = self
            .coordinator
            .roster(round.epoch)
            .ok_or(CoordinatorError::UnknownEpoch(round.epoch))?;
        let members = roster.members().len();
        let tagged = SignedVote {
            vote,
            signature: proof.signature(),
        };
        let verified = assume_signature_checked(roster, &tagged)?;
        let tracked = self.coordinator.round_count();
        if tracked >= self.config.max_tracked && self.coordinator.round(&round).is_none() {
            self.counters.refused += 1;
            return Err(QuorumError::TooManyRounds(tracked));
        }
        let (report, info) = self
            .coordinator
            .add_vote_with(&verified, || RoundInfo::new(now, members))?;
        match report.effect {
            VoteEffect::Counted | VoteEffect::SignerFlagged => {
                if !info.proofs.iter().any(|p| p.voter() == vote.voter) {
                    info.proofs.push(proof);
                }
            }
            VoteEffect::Equivocation(_) => {
                let first = info.proofs.iter().find(|p| p.voter() == vote.voter);
                if let Some(first) = first
                    && let Ok(e) =
                        VoteEvidence::from_conflict(first.attested(round), proof.attested(round))
                {
                    self.counters.equivocations += 1;
                    out.push(QuorumOutput::Evidence(Box::new(e)));
                }
            }
            VoteEffect::Duplicate | VoteEffect::FurtherConflict => {}
        }
        if let Some(d) = report.decided {
            self.decided(round, d, out);
        }
        Ok(())
    }

    fn decided(&mut self, round: Round, decision: Decision, out: &mut Vec<QuorumOutput>) {
        let own = self.own.remove(&round).is_some();
        let outcome = match decision {
            Decision::Accepted(value) => {
                let (cert, first) = self.certify(round, value);
                let cert = Arc::new(cert);
                if first {
                    out.push(QuorumOutput::Certified(cert.clone()));
                }
                Outcome::Accepted(cert)
            }
            Decision::Rejected => Outcome::Rejected,
        };
        if own {
            match outcome {
                Outcome::Accepted(_) => self.counters.accepted += 1,
                _ => self.counters.rejected += 1,
            }
        }
        out.push(QuorumOutput::Decided {
            round,
            outcome,
            own,
        });
    }

    /// The certificate of an accepted round from the proofs of its counted
    /// votes for `value`, and whether the round is newly marked certified.
    fn certify(&mut self, round: Round, value: Digest) -> (QuorumCertificate, bool) {
        let Some((tally, info)) = self.coordinator.round_mut(&round) else {
            return (QuorumCertificate::from_votes(round, value, &[]), false);
        };
        let votes = info
            .proofs
            .iter()
            .filter(|p| p.value() == value && tally.is_counted(&p.voter()))
            .map(|p| (p.voter(), p.attestation()))
            .collect();
        let first = !info.certified;
        info.certified = true;
        (
            QuorumCertificate::from_attestations(round, value, votes),
            first,
        )
    }

    /// The round timer fired: resend the proposal to members that have not
    /// voted, with a doubled timeout, or give up after the last attempt.
    pub fn on_timer(&mut self, now: Millis, round: Round) -> Vec<QuorumOutput> {
        let Some(own) = self.own.get_mut(&round) else {
            return Vec::new();
        };
        if now < own.deadline {
            return vec![QuorumOutput::Timer {
                round,
                at: own.deadline,
            }];
        }
        if own.attempt >= self.config.max_attempts {
            self.own.remove(&round);
            self.counters.timed_out += 1;
            return vec![QuorumOutput::Decided {
                round,
                outcome: Outcome::TimedOut,
                own: true,
            }];
        }
        own.attempt += 1;
        own.timeout = self.config.backoff.next(own.timeout);
        own.deadline = now + own.timeout;
        let (proposal, deadline) = (own.proposal.clone(), own.deadline);
        self.counters.retries += 1;
        let known = self.coordinator.round(&round);
        let to = self
            .roster()
            .members()
            .iter()
            .map(|m| m.id)
            .filter(|id| {
                !known.is_some_and(|(t, i)| {
                    t.is_counted(id) || i.proofs.iter().any(|p| p.voter() == *id)
                })
            })
            .collect();
        vec![
            QuorumOutput::Propose { to, proposal },
            QuorumOutput::Timer {
                round,
                at: deadline,
            },
        ]
    }

    /// Forgets rounds first seen more than `retention` ago that are not own
    /// rounds still in flight (bounded memory).
    pub fn gc(&mut self, now: Millis) {
        let keep = self.config.retention;
        let own = &self.own;
        self.coordinator
            .retain(|round, _, info| now.since(info.first_seen) <= keep || own.contains_key(round));
    }

    fn proof(&self, round: &Round, voter: &ClusterId) -> Option<AttestedVote> {
        self.coordinator
            .round(round)?
            .1
            .proofs
            .iter()
            .find(|p| p.voter() == *voter)
            .map(|p| p.attested(*round))
    }

    /// Marks a round as certified; true the first time.
    fn mark_certified(&mut self, round: &Round) -> bool {
        match self.coordinator.round_mut(round) {
            Some((_, info)) if !info.certified => {
                info.certified = true;
                true
            }
            _ => false,
        }
    }

    /// Whether `signer` is flagged in `epoch`.
    pub fn is_flagged(&self, epoch: u64, signer: &ClusterId) -> bool {
        self.coordinator.is_flagged(epoch, signer)
    }

    /// Every flagged signer, by epoch.
    pub fn flagged(&self) -> impl Iterator<Item = (u64, ClusterId)> + '_ {
        self.coordinator.flagged().map(|(e, id, _)| (e, *id))
    }

    /// This round's local decision, if any.
    pub fn decision(&self, round: &Round) -> Option<Decision> {
        self.coordinator.decision(round)
    }

    /// Own rounds in flight.
    pub fn in_flight(&self) -> usize {
        self.own.len()
    }

    /// Rounds tallied.
    pub fn tracked(&self) -> usize {
        self.coordinator.round_count()
    }

    /// The counters.
    pub fn counters(&self) -> QuorumCounters {
        self.counters
    }

    /// This node's id.
    pub fn id(&self) -> ClusterId {
        self.me
    }
}

/// Why a receiver refuses to deliver a quorum message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The certificate is for another message (subject or digest differ).
    #[error("certificate does not certify this message")]
    NotThisMessage,
    /// The certificate's kind does not match the message's guarantee.
    #[error("certificate kind does not match the message's guarantee")]
    WrongKind,
    /// The certificate does not verify.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

/// What a receiver checks before delivering a GLOBAL_QUORUM or
/// BYZANTINE_QUORUM message: the certificate is for exactly this message
/// (subject = origin and id, value = digest), of the guarantee's kind, and it
/// verifies against `roster` (the roster of the certificate's epoch).
pub fn verify_delivery(
    roster: &Roster,
    cache: Option<&SigCache>,
    envelope: &Envelope,
    cert: &QuorumCertificate,
) -> Result<u64, DeliveryError> {
    let network = roster.network_id();
    if envelope.guarantee.vote_kind() != Some(cert.round().kind) {
        return Err(DeliveryError::WrongKind);
    }
    if cert.round().subject != envelope.subject(network) || cert.value() != envelope.digest(network)
    {
        return Err(DeliveryError::NotThisMessage);
    }
    Ok(cert.verify(roster, cache)?)
}
