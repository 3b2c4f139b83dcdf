//! GLOBAL_QUORUM and BYZANTINE_QUORUM over the mesh: the core carries out
//! what the IO-free [`QuorumDriver`], [`Voter`] and [`VoteSigner`] decide.
//!
//! Flow: the origin proposes to every roster member over routed messages;
//! each member checks the proposal, and at the end of the input its queued
//! votes are signed (one signature per input's worth of votes), persisted
//! ([`Persist::QuorumVotes`], ahead of the sends) and sent to every member.
//! Every node tallies every vote it receives, so every coordinator sees
//! votes first-hand and flags equivocators; evidence is routed to every
//! member. The origin decides as soon as the outcome is certain and routes
//! the certificate, with the message, to every member and subscriber; each
//! verifies it ([`verify_delivery`]) before handing the message to its
//! subscribers ([`Delivery::Message`]). The origin's application learns the
//! outcome with [`Delivery::QuorumDecided`].
//!
//! Driver timers are checked after every input (the gossip tick guarantees
//! one every gossip interval), so a retry fires at most one interval late.
//!
//! Every vote signed or received with a single signature, every
//! certificate and every evidence is also emitted as a vote-log record
//! ([`Persist::VoteLog`]). Batch-attested votes have no foundation (format
//! v1) encoding and are counted in [`QuorumPathCounters::unloggable`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::proto::delivery::{
    AttestedVote, Envelope, MemoryVoteRecord, MessageKey, Outcome, Proposal, QuorumCertificate,
    QuorumConfig, QuorumCounters, QuorumDriver, QuorumOutput, VoteBatch, VoteEvidence, VoteSigner,
    Voter, verify_delivery,
};
use crate::proto::log_entry::LogEntry;
use crate::proto::topology::RoutedPayload;
use crate::proto::topology::payload::MAX_QUORUM_VOTES;
use crate::proto::vote::{REJECT, Round, Vote};

use super::routing::Delivery;
use super::*;

/// How a quorum round this node originated ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuorumOutcome {
    /// Certified: the certificate was sent to every member and subscriber.
    Accepted,
    /// No value can reach quorum any more (decided early, not at the timeout).
    Rejected,
    /// Not enough members answered before the last retry.
    TimedOut,
}

/// Misbehaviour for tests and the demo only: a node set to one of these is
/// a Byzantine cluster. Never set in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Byzantine {
    /// Votes accept to the first half of the roster (in roster order) and
    /// reject to the rest, signing both directly (bypassing the signer that
    /// forbids two values per slot), with single signatures.
    EquivocateVotes,
    /// Proposes two different messages for each slot: every member gets
    /// both, the upper half of the roster the second one first.
    EquivocateProposals,
}

/// Counters of the quorum path (beside the driver's [`QuorumCounters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuorumPathCounters {
    /// Proposals refused (malformed, wrong epoch or origin, too many rounds).
    pub proposals_refused: u64,
    /// Votes or batches refused (malformed or not verifying).
    pub votes_refused: u64,
    /// Certificates refused (malformed, not verifying, not for the message).
    pub certificates_refused: u64,
    /// Evidence refused (malformed or not verifying).
    pub evidence_refused: u64,
    /// Votes this node refused to sign (a second value for a slot).
    pub sign_refusals: u64,
    /// Certified messages handed to local subscribers.
    pub delivered: u64,
    /// Batch-attested votes or certificates the v1 vote log cannot hold.
    pub unloggable: u64,
}

/// Most rounds whose messages this node remembers at once.
const MAX_KNOWN_ROUNDS: usize = 131_072;
/// How often finished rounds are forgotten.
const GC_EVERY: Duration = Duration::from_secs(1);

/// What this node knows of one round's message.
#[derive(Debug)]
struct KnownRound {
    first_seen: Millis,
    /// The messages proposed for this slot (two only from an equivocating origin).
    envelopes: Vec<Arc<Envelope>>,
    /// A verified certificate waiting for its message.
    cert: Option<Arc<QuorumCertificate>>,
    delivered: bool,
}

/// The quorum state of one node.
#[derive(Debug)]
pub(super) struct QuorumPath {
    identity: Arc<Identity>,
    driver: QuorumDriver,
    voter: Voter,
    signer: VoteSigner,
    record: MemoryVoteRecord,
    rounds: BTreeMap<Round, KnownRound>,
    /// Own rounds in flight: the message key.
    own: BTreeMap<Round, MessageKey>,
    timers: BTreeSet<(Millis, Round)>,
    refused_topics: BTreeSet<String>,
    byzantine: Option<Byzantine>,
    last_gc: Millis,
    /// The time of the input being handled (routed payloads carry none).
    pub(super) now: Millis,
    counters: QuorumPathCounters,
}

impl QuorumPath {
    pub(super) fn new(identity: Arc<Identity>, roster: Arc<Roster>, cache: Arc<SigCache>) -> Self {
        QuorumPath {
            driver: QuorumDriver::new(identity.id(), roster, QuorumConfig::default(), cache),
            voter: Voter::new(),
            signer: VoteSigner::new(identity.clone()),
            identity,
            record: MemoryVoteRecord::new(),
            rounds: BTreeMap::new(),
            own: BTreeMap::new(),
            timers: BTreeSet::new(),
            refused_topics: BTreeSet::new(),
            byzantine: None,
            last_gc: Millis::ZERO,
            now: Millis::ZERO,
            counters: QuorumPathCounters::default(),
        }
    }

    /// Keeps the signed-vote record across a rebuild (new roster or cache).
    pub(super) fn rebuilt(self, roster: Arc<Roster>, cache: Arc<SigCache>) -> Self {
        let mut q = QuorumPath::new(self.identity, roster, cache);
        q.record = self.record;
        q.refused_topics = self.refused_topics;
        q.byzantine = self.byzantine;
        q
    }
}

fn log_record(entry: LogEntry) -> Output {
    Output::Persist(Persist::VoteLog {
        kind: entry.kind(),
        body: entry.encode(),
    })
}

impl Core {
    /// Restores the quorum votes this node signed (from the durable
    /// signed-vote store) so that it never signs another value for their
    /// slots after a restart; call before the first input.
    pub fn with_quorum_votes(mut self, votes: impl IntoIterator<Item = AttestedVote>) -> Self {
        use crate::proto::delivery::SignedVoteRecord;
        let me = self.own.id();
        let mine: Vec<AttestedVote> = votes.into_iter().filter(|v| v.vote.voter == me).collect();
        // The memory record is infallible.
        let Ok(()) = self.quorum.record.remember(&mine);
        self
    }

    /// Test and demo only: makes this node misbehave (see [`Byzantine`]).
    pub fn set_byzantine(&mut self, behaviour: Option<Byzantine>) {
        self.quorum.byzantine = behaviour;
    }

    /// The application's validation hook: this node votes REJECT on quorum
    /// messages published to `topic`.
    pub fn refuse_quorum_topic(&mut self, topic: &str) {
        self.quorum.refused_topics.insert(topic.to_owned());
    }

    /// Whether this node's coordinator has flagged `signer` in `epoch`.
    pub fn is_flagged(&self, epoch: u64, signer: &ClusterId) -> bool {
        self.quorum.driver.is_flagged(epoch, signer)
    }

    /// Every signer flagged here, with its epoch.
    pub fn flagged_signers(&self) -> Vec<(u64, ClusterId)> {
        self.quorum.driver.flagged().collect()
    }

    /// The round driver's counters (rounds started/accepted/rejected/timed
    /// out, equivocations detected, ...).
    pub fn quorum_counters(&self) -> QuorumCounters {
        self.quorum.driver.counters()
    }

    /// The quorum path's own counters.
    pub fn quorum_path_counters(&self) -> QuorumPathCounters {
        self.quorum.counters
    }

    /// This node's local decision on `round`, if any (a rejection means no
    /// quorum in what this node saw; only a certificate is final).
    pub fn quorum_decision(&self, round: &Round) -> Option<crate::proto::quorum::Decision> {
        self.quorum.driver.decision(round)
    }

    /// Own quorum rounds in flight.
    pub fn quorum_in_flight(&self) -> usize {
        self.quorum.own.len()
    }

    fn quorum_members(&self) -> Vec<ClusterId> {
        self.quorum
            .driver
            .roster()
            .members()
            .iter()
            .map(|m| m.id)
            .collect()
    }

    /// `Command::Publish` with a quorum guarantee (the message id is taken).
    pub(super) fn publish_quorum(
        &mut self,
        now: Millis,
        envelope: Arc<Envelope>,
        out: &mut Vec<Output>,
    ) {
        let key = envelope.key;
        let max_rtt = self
            .quorum_members()
            .iter()
            .filter_map(|m| self.routing.routes().get(m))
            .map(|r| Duration::from_micros(r.cost_micros))
            .max();
        let outs = match self.quorum.driver.propose(now, envelope.clone(), max_rtt) {
            Ok(o) => o,
            Err(e) => {
                out.push(Output::Deliver(Delivery::PublishRefused {
                    topic: envelope.topic.as_str().to_owned(),
                    reason: e.to_string(),
                }));
                return;
            }
        };
        let dests: Vec<ClusterId> = self.queues.subscribers(&envelope.topic).collect();
        out.push(Output::Deliver(Delivery::Published { key, dests }));
        let evil = match self.quorum.byzantine {
            Some(Byzantine::EquivocateProposals) => {
                let mut payload = envelope.payload.clone();
                payload.extend_from_slice(b"/evil");
                Envelope::new(
                    key,
                    envelope.topic.clone(),
                    envelope.guarantee,
                    payload,
                    None,
                )
                .ok()
                .map(Arc::new)
            }
            _ => None,
        };
        for o in outs {
            let QuorumOutput::Propose { to, proposal } = o else {
                self.apply_quorum(now, None, vec![o], out);
                continue;
            };
            let round = proposal.round;
            self.quorum.own.insert(round, key);
            self.remember_envelope(now, round, proposal.envelope.clone());
            let Some(evil) = &evil else {
                self.apply_quorum(now, None, vec![QuorumOutput::Propose { to, proposal }], out);
                continue;
            };
            self.remember_envelope(now, round, evil.clone());
            let half = to.len() / 2;
            for (i, dst) in to.into_iter().enumerate() {
                let (a, b) = if i >= half {
                    (evil, &proposal.envelope)
                } else {
                    (&proposal.envelope, evil)
                };
                self.send_proposal(now, dst, round, a.clone(), out);
                if dst != self.own.id() {
                    self.send_proposal(now, dst, round, b.clone(), out);
                }
            }
        }
    }

    fn send_proposal(
        &mut self,
        now: Millis,
        dst: ClusterId,
        round: Round,
        envelope: Arc<Envelope>,
        out: &mut Vec<Output>,
    ) {
        if dst == self.own.id() {
            self.on_proposal(now, round, envelope, out);
        } else {
            self.originate(
                dst,
                RoutedPayload::QuorumProposal {
                    epoch: round.epoch,
                    envelope: envelope.encode(),
                },
                out,
            );
        }
    }

    /// Carries out what the driver asks. `from` is who sent the input (for echoes).
    fn apply_quorum(
        &mut self,
        now: Millis,
        from: Option<ClusterId>,
        outs: Vec<QuorumOutput>,
        out: &mut Vec<Output>,
    ) {
        for o in outs {
            match o {
                QuorumOutput::Propose { to, proposal } => {
                    for dst in to {
                        self.send_proposal(
                            now,
                            dst,
                            proposal.round,
                            proposal.envelope.clone(),
                            out,
                        );
                    }
                }
                QuorumOutput::Timer { round, at } => {
                    self.quorum.timers.insert((at, round));
                }
                QuorumOutput::Decided {
                    round,
                    outcome,
                    own,
                } => self.decided(round, outcome, own, out),
                QuorumOutput::Certified(cert) => {
                    self.log_certificate(&cert, out);
                    self.try_deliver(now, &cert, out);
                }
                QuorumOutput::Evidence(e) => {
                    match e.to_single() {
                        Some(ev) => out.push(log_record(LogEntry::Evidence(Box::new(ev)))),
                        None => self.quorum.counters.unloggable += 1,
                    }
                    let me = self.own.id();
                    let bytes = e.encode();
                    for m in self.quorum_members() {
                        if m != me {
                            self.originate(
                                m,
                                RoutedPayload::QuorumEvidence {
                                    evidence: bytes.clone(),
                                },
                                out,
                            );
                        }
                    }
                }
                QuorumOutput::Echo(votes) => {
                    if let Some(f) = from.filter(|f| *f != self.own.id()) {
                        self.send_votes(f, &votes, out);
                    }
                }
            }
        }
    }

    fn log_certificate(&mut self, cert: &QuorumCertificate, out: &mut Vec<Output>) {
        let roster = self.quorum.driver.roster();
        let single = (roster.epoch() == cert.round().epoch)
            .then(|| cert.to_single(roster))
            .flatten();
        match single {
            Some(c) => out.push(log_record(LogEntry::Certificate(c))),
            None => self.quorum.counters.unloggable += 1,
        }
    }

    fn decided(&mut self, round: Round, outcome: Outcome, own: bool, out: &mut Vec<Output>) {
        if !own {
            return;
        }
        let Some(key) = self.quorum.own.remove(&round) else {
            return;
        };
        let outcome = match outcome {
            Outcome::Accepted(cert) => {
                self.disseminate(round, &cert, out);
                QuorumOutcome::Accepted
            }
            Outcome::Rejected => QuorumOutcome::Rejected,
            Outcome::TimedOut => QuorumOutcome::TimedOut,
        };
        out.push(Output::Deliver(Delivery::QuorumDecided {
            key,
            round,
            outcome,
        }));
    }

    /// Routes the certificate with its message to every member and subscriber.
    fn disseminate(&mut self, round: Round, cert: &QuorumCertificate, out: &mut Vec<Output>) {
        let network = self.network_id;
        let Some(envelope) = self.quorum.rounds.get(&round).and_then(|k| {
            k.envelopes
                .iter()
                .find(|e| e.digest(network) == cert.value())
                .cloned()
        }) else {
            return;
        };
        let me = self.own.id();
        let mut dests: BTreeSet<ClusterId> = self.quorum_members().into_iter().collect();
        dests.extend(self.queues.subscribers(&envelope.topic));
        let (cert, envelope) = (cert.encode(), envelope.encode());
        for d in dests {
            if d != me {
                self.originate(
                    d,
                    RoutedPayload::QuorumCertificate {
                        cert: cert.clone(),
                        envelope: envelope.clone(),
                    },
                    out,
                );
            }
        }
    }

    fn remember_envelope(&mut self, now: Millis, round: Round, envelope: Arc<Envelope>) -> bool {
        let known = self.quorum.rounds.len();
        let entry = match self.quorum.rounds.entry(round) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(_) if known >= MAX_KNOWN_ROUNDS => {
                return false;
            }
            std::collections::btree_map::Entry::Vacant(v) => v.insert(KnownRound {
                first_seen: now,
                envelopes: Vec::new(),
                cert: None,
                delivered: false,
            }),
        };
        // At most two messages per slot are kept: an equivocating origin's
        // further variants add nothing (votes for them are still tallied).
        if entry.envelopes.len() < 2 && !entry.envelopes.contains(&envelope) {
            entry.envelopes.push(envelope);
        }
        true
    }

    /// Hands a certified message to the local subscribers, once, after
    /// checking the certificate is for exactly that message.
    fn try_deliver(&mut self, now: Millis, cert: &Arc<QuorumCertificate>, out: &mut Vec<Output>) {
        let round = cert.round();
        let network = self.network_id;
        let roster = self.quorum.driver.roster().clone();
        if !self.quorum.rounds.contains_key(&round) && self.quorum.rounds.len() >= MAX_KNOWN_ROUNDS
        {
            return;
        }
        let known = self.quorum.rounds.entry(round).or_insert(KnownRound {
            first_seen: now,
            envelopes: Vec::new(),
            cert: None,
            delivered: false,
        });
        if known.delivered {
            return;
        }
        let Some(envelope) = known
            .envelopes
            .iter()
            .find(|e| e.digest(network) == cert.value())
            .cloned()
        else {
            known.cert = Some(cert.clone());
            return;
        };
        if roster.epoch() != round.epoch
            || verify_delivery(&roster, Some(&self.sigcache), &envelope, cert).is_err()
        {
            self.quorum.counters.certificates_refused += 1;
            return;
        }
        known.delivered = true;
        known.cert = None;
        let me = self.own.id();
        if self.queues.subscribers(&envelope.topic).any(|c| c == me) {
            self.quorum.counters.delivered += 1;
            out.push(Output::Deliver(Delivery::Message((*envelope).clone())));
        }
    }

    /// A proposal for this node to vote on (from the routed origin, or local).
    fn on_proposal(
        &mut self,
        now: Millis,
        round: Round,
        envelope: Arc<Envelope>,
        out: &mut Vec<Output>,
    ) {
        let roster = self.quorum.driver.roster().clone();
        if !self.remember_envelope(now, round, envelope.clone()) {
            self.quorum.counters.proposals_refused += 1;
            return;
        }
        if let Some(cert) = self.quorum.rounds.get(&round).and_then(|k| k.cert.clone()) {
            self.try_deliver(now, &cert, out);
        }
        let proposal = Proposal { round, envelope };
        if self.quorum.byzantine == Some(Byzantine::EquivocateVotes) {
            return self.equivocate(now, &roster, &proposal, out);
        }
        let refused = &self.quorum.refused_topics;
        let accept = |e: &Envelope| !refused.contains(e.topic.as_str());
        if self
            .quorum
            .voter
            .on_proposal(&roster, &proposal, accept)
            .is_err()
        {
            self.quorum.counters.proposals_refused += 1;
        }
    }

    /// [`Byzantine::EquivocateVotes`]: accept to the first half, reject to the rest.
    fn equivocate(&mut self, now: Millis, roster: &Roster, p: &Proposal, out: &mut Vec<Output>) {
        let network = roster.network_id();
        let sign = |value| {
            Vote {
                round: p.round,
                value,
                voter: self.quorum.identity.id(),
            }
            .sign(&self.quorum.identity)
            .ok()
            .map(AttestedVote::from)
        };
        let (Some(yes), Some(no)) = (sign(p.envelope.digest(network)), sign(REJECT)) else {
            return;
        };
        let me = self.own.id();
        let members = self.quorum_members();
        let half = members.len() / 2;
        for (i, m) in members.into_iter().enumerate() {
            let v = if i < half { &yes } else { &no };
            if m == me {
                if let Ok(outs) = self.quorum.driver.on_vote(now, v.clone()) {
                    self.apply_quorum(now, None, outs, out);
                }
            } else {
                self.send_votes(m, std::slice::from_ref(v), out);
            }
        }
    }

    fn send_votes(&mut self, to: ClusterId, votes: &[AttestedVote], out: &mut Vec<Output>) {
        for chunk in votes.chunks(MAX_QUORUM_VOTES) {
            let votes = chunk.iter().map(AttestedVote::encode).collect();
            self.originate(to, RoutedPayload::QuorumVotes { votes }, out);
        }
    }

    /// After every input: sign and send the votes queued by it, fire due
    /// round timers, forget old rounds.
    pub(super) fn quorum_after_input(&mut self, now: Millis, out: &mut Vec<Output>) {
        if self.quorum.voter.queued() > 0 {
            self.flush_votes(now, out);
        }
        while let Some(&(at, round)) = self.quorum.timers.first() {
            if at > now {
                break;
            }
            self.quorum.timers.pop_first();
            let outs = self.quorum.driver.on_timer(now, round);
            self.apply_quorum(now, None, outs, out);
        }
        if now.since(self.quorum.last_gc) >= GC_EVERY {
            self.quorum.last_gc = now;
            self.quorum.driver.gc(now);
            let keep = QuorumConfig::default().retention;
            let own = &self.quorum.own;
            self.quorum
                .rounds
                .retain(|r, k| now.since(k.first_seen) <= keep || own.contains_key(r));
        }
    }

    fn flush_votes(&mut self, now: Millis, out: &mut Vec<Output>) {
        let roster = self.quorum.driver.roster().clone();
        let q = &mut self.quorum;
        let signed = match q.voter.flush(&roster, &q.signer, &mut q.record) {
            Ok(s) => s,
            Err(e) => {
                // Nothing was sent; the origins' retries bring the rounds back.
                tracing::warn!(error = %e, "cannot sign quorum votes");
                q.counters.sign_refusals += 1;
                return;
            }
        };
        let me = self.own.id();
        let others: Vec<ClusterId> = self
            .quorum_members()
            .into_iter()
            .filter(|m| *m != me)
            .collect();
        for s in signed {
            self.quorum.counters.sign_refusals += s.refused.len() as u64;
            if !s.new_votes.is_empty() {
                // Durable before any frame carrying them is sent.
                out.push(Output::Persist(Persist::QuorumVotes(s.new_votes.clone())));
                for v in &s.new_votes {
                    self.log_vote(v, out);
                }
            }
            match &s.batch {
                Some(batch) => {
                    let bytes = batch.encode();
                    for m in &others {
                        self.originate(
                            *m,
                            RoutedPayload::QuorumBatch {
                                batch: bytes.clone(),
                            },
                            out,
                        );
                    }
                    if let Ok(outs) = self.quorum.driver.on_batch(now, batch) {
                        self.apply_quorum(now, None, outs, out);
                    }
                }
                None if !s.new_votes.is_empty() => {
                    for m in &others {
                        self.send_votes(*m, &s.new_votes, out);
                    }
                    for v in s.new_votes {
                        if let Ok(outs) = self.quorum.driver.on_vote(now, v) {
                            self.apply_quorum(now, None, outs, out);
                        }
                    }
                }
                None => {}
            }
            // Votes signed earlier (a retried proposal): resend, they may have been lost.
            if !s.repeats.is_empty() {
                for m in &others {
                    self.send_votes(*m, &s.repeats, out);
                }
            }
        }
    }

    fn log_vote(&mut self, v: &AttestedVote, out: &mut Vec<Output>) {
        match v.as_single() {
            Some(sv) => out.push(log_record(LogEntry::Vote(sv))),
            None => self.quorum.counters.unloggable += 1,
        }
    }

    /// A quorum payload routed to this node from `origin`.
    pub(super) fn on_quorum(
        &mut self,
        origin: ClusterId,
        payload: RoutedPayload,
        out: &mut Vec<Output>,
    ) {
        let now = self.quorum.now;
        match payload {
            RoutedPayload::QuorumProposal { epoch, envelope } => {
                let network = self.network_id;
                match Envelope::decode(&envelope) {
                    Ok(e) if e.key.origin == origin => match e.guarantee.vote_kind() {
                        Some(kind) => {
                            let round = Round {
                                network_id: network,
                                epoch,
                                kind,
                                subject: e.subject(network),
                            };
                            self.on_proposal(now, round, Arc::new(e), out);
                        }
                        None => self.quorum.counters.proposals_refused += 1,
                    },
                    _ => self.quorum.counters.proposals_refused += 1,
                }
            }
            RoutedPayload::QuorumVotes { votes } => {
                for bytes in votes {
                    let Ok(v) = AttestedVote::decode(&bytes) else {
                        self.quorum.counters.votes_refused += 1;
                        continue;
                    };
                    match self.quorum.driver.on_vote(now, v.clone()) {
                        Ok(outs) => {
                            self.log_vote(&v, out);
                            self.apply_quorum(now, Some(origin), outs, out);
                        }
                        Err(_) => self.quorum.counters.votes_refused += 1,
                    }
                }
            }
            RoutedPayload::QuorumBatch { batch } => {
                let outs = VoteBatch::decode(&batch)
                    .ok()
                    .and_then(|b| self.quorum.driver.on_batch(now, &b).ok());
                match outs {
                    Some(outs) => {
                        self.quorum.counters.unloggable += 1;
                        self.apply_quorum(now, Some(origin), outs, out);
                    }
                    None => self.quorum.counters.votes_refused += 1,
                }
            }
            RoutedPayload::QuorumCertificate { cert, envelope } => {
                let (Ok(cert), Ok(envelope)) = (
                    QuorumCertificate::decode(&cert),
                    Envelope::decode(&envelope),
                ) else {
                    self.quorum.counters.certificates_refused += 1;
                    return;
                };
                let roster = self.quorum.driver.roster().clone();
                if roster.epoch() != cert.round().epoch
                    || verify_delivery(&roster, Some(&self.sigcache), &envelope, &cert).is_err()
                {
                    self.quorum.counters.certificates_refused += 1;
                    return;
                }
                let round = cert.round();
                self.remember_envelope(now, round, Arc::new(envelope));
                match self.quorum.driver.on_certificate(now, &cert) {
                    Ok(outs) => self.apply_quorum(now, Some(origin), outs, out),
                    Err(_) => {
                        self.quorum.counters.certificates_refused += 1;
                        return;
                    }
                }
                self.try_deliver(now, &Arc::new(cert), out);
            }
            RoutedPayload::QuorumEvidence { evidence } => {
                let outs = VoteEvidence::decode(&evidence)
                    .ok()
                    .and_then(|e| self.quorum.driver.on_evidence(now, &e).ok());
                match outs {
                    Some(outs) => self.apply_quorum(now, Some(origin), outs, out),
                    None => self.quorum.counters.evidence_refused += 1,
                }
            }
            _ => {}
        }
    }

    /// A new roster epoch: later rounds use it.
    pub(super) fn quorum_roster(&mut self, roster: Arc<Roster>) {
        let epoch = roster.epoch();
        if self.quorum.driver.add_roster(roster).is_ok() {
            // Proposals of older epochs are refused from now on.
            self.quorum.record.retain(|r| r.epoch >= epoch);
        }
    }
}
