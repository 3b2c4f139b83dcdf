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

mod voting;

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
/// How long a member waits for a round's certificate before asking the
/// origin for it (by sending its vote again), and between asks.
const PULL_EVERY: Duration = Duration::from_secs(1);
/// Asks per round at most (a rejected round has no certificate to get).
const MAX_PULLS: u8 = 3;
/// Rounds asked about in one pass at most.
const PULLS_PER_PASS: usize = 256;

/// What this node knows of one round's message.
#[derive(Debug)]
struct KnownRound {
    first_seen: Millis,
    /// The messages proposed for this slot (two only from an equivocating origin).
    envelopes: Vec<Arc<Envelope>>,
    /// A verified certificate waiting for its message.
    cert: Option<Arc<QuorumCertificate>>,
    delivered: bool,
    /// Own round: the certificate, for members that missed it.
    certified: Option<Arc<QuorumCertificate>>,
    /// Times this node asked the origin for the certificate.
    pulls: u8,
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
    last_pull: Millis,
    /// The time of the input being handled (routed payloads carry none).
    pub(super) now: Millis,
    counters: QuorumPathCounters,
}

/// Round settings in the core. A node's event loop can lag far behind the
/// network RTT under load (4 × a loopback RTT is under a millisecond), so
/// the first timeout is at least 100 ms and the origin tries six times
/// (about 6.3 s in all) before giving up. Rounds are remembered for 12 s,
/// about twice that: a node tracks at most `max_tracked` (131,072) rounds,
/// so the retention bounds the sustained rate, here at about 10,900
/// rounds/s across the federation (the driver's 60 s default would cap it
/// near 2,200/s); votes arriving later than that are no longer compared.
pub(super) fn round_config() -> QuorumConfig {
    let d = QuorumConfig::default();
    QuorumConfig {
        backoff: crate::proto::delivery::Backoff {
            min: Duration::from_millis(100),
            ..d.backoff
        },
        max_attempts: 6,
        retention: Duration::from_secs(12),
        ..d
    }
}

impl QuorumPath {
    pub(super) fn new(identity: Arc<Identity>, roster: Arc<Roster>, cache: Arc<SigCache>) -> Self {
        QuorumPath {
            driver: QuorumDriver::new(identity.id(), roster, round_config(), cache),
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
            last_pull: Millis::ZERO,
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

/// A record for this node's vote log, as a `Persist` output.
pub(super) fn log_record(entry: LogEntry) -> Output {
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
                    out.push(Output::Event(Event::SignerFlagged {
                        signer: e.signer(),
                        epoch: e.slot().round.epoch,
                    }));
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
                QuorumOutput::Echo(mut votes) => {
                    let me = self.own.id();
                    // Others' votes only: ours reached the origin directly,
                    // and sending it again asks for the certificate
                    // (which would answer this echo with another).
                    votes.retain(|v| v.vote.voter != me);
                    if let Some(f) = from.filter(|f| *f != me)
                        && !votes.is_empty()
                    {
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
                if let Some(k) = self.quorum.rounds.get_mut(&round) {
                    k.certified = Some(cert);
                }
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
                certified: None,
                pulls: 0,
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
            certified: None,
            pulls: 0,
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

    /// A new roster epoch: later rounds use it.
    pub(super) fn quorum_roster(&mut self, roster: Arc<Roster>) {
        let epoch = roster.epoch();
        if self.quorum.driver.add_roster(roster).is_ok() {
            // Proposals of older epochs are refused from now on.
            self.quorum.record.retain(|r| r.epoch >= epoch);
        }
    }
}
