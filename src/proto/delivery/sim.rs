//! A small deterministic simulation of quorum delivery among N clusters (no
//! Core, no sockets): virtual time, seeded latency, partitions, an
//! equivocating voter and an origin that proposes two messages for one slot.
//! Every failure message names its seed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::proto::bytes32::Digest;
use crate::proto::identity::{ClusterId, Identity};
use crate::proto::membership::sigcache::SigCache;
use crate::proto::queue::QueueName;
use crate::proto::time::Millis;
use crate::proto::vote::{REJECT, Round};
use crate::testkit::TestNet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Honest,
    /// Votes accept to the nodes in the set and reject to everyone else.
    Equivocator,
    /// Proposes a second payload for each of its message ids to some members.
    TwoFacedOrigin,
}

#[derive(Debug, Clone)]
enum Msg {
    Proposal(Proposal),
    Batch(VoteBatch),
    Votes(Vec<AttestedVote>),
    Cert(Arc<QuorumCertificate>),
    Evidence(Box<VoteEvidence>),
}

#[derive(Debug)]
enum Event {
    Deliver { to: usize, from: usize, msg: Msg },
    Timer { node: usize, round: Round },
    Flush { node: usize },
}

struct Node {
    role: Role,
    identity: Identity,
    driver: QuorumDriver,
    voter: Voter,
    signer: VoteSigner,
    record: MemoryVoteRecord,
    envelopes: HashMap<Digest, Arc<Envelope>>,
    delivered: BTreeMap<Round, Digest>,
    /// Certificates whose message has not arrived yet.
    waiting: HashMap<Digest, Arc<QuorumCertificate>>,
    outcomes: BTreeMap<Round, Outcome>,
    decided_at: BTreeMap<Round, Millis>,
}

struct Sim {
    seed: u64,
    now: Millis,
    rng: StdRng,
    net: TestNet,
    nodes: Vec<Node>,
    events: BTreeMap<(Millis, u64), Event>,
    seq: u64,
    /// Node index → partition side; messages across sides are dropped.
    sides: Option<Vec<u8>>,
    accept_set: BTreeSet<usize>,
    flush_every: Duration,
    certs: Vec<Arc<QuorumCertificate>>,
    rejected_topic: Option<QueueName>,
    /// Second values for a slot that honest signers refused.
    refusals: usize,
}

impl Sim {
    fn new(seed: u64, roles: &[Role], config: QuorumConfig) -> Self {
        let net = TestNet::new(seed, &vec![1; roles.len()]);
        let nodes = roles
            .iter()
            .enumerate()
            .map(|(i, role)| {
                let identity = Identity::from_seed(net.seed_of(i));
                Node {
                    role: *role,
                    driver: QuorumDriver::new(
                        identity.id(),
                        net.roster.clone(),
                        config,
                        Arc::new(SigCache::new(4096)),
                    ),
                    voter: Voter::new(),
                    signer: VoteSigner::new(Identity::from_seed(net.seed_of(i))),
                    identity,
                    record: MemoryVoteRecord::new(),
                    envelopes: HashMap::new(),
                    delivered: BTreeMap::new(),
                    waiting: HashMap::new(),
                    outcomes: BTreeMap::new(),
                    decided_at: BTreeMap::new(),
                }
            })
            .collect();
        Sim {
            seed,
            now: Millis(0),
            rng: StdRng::seed_from_u64(seed),
            net,
            nodes,
            events: BTreeMap::new(),
            seq: 0,
            sides: None,
            accept_set: BTreeSet::new(),
            flush_every: Duration::from_millis(2),
            certs: Vec::new(),
            rejected_topic: None,
            refusals: 0,
        }
    }

    fn at(&mut self, t: Millis, e: Event) {
        self.seq += 1;
        self.events.insert((t, self.seq), e);
    }

    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        if let Some(sides) = &self.sides
            && sides[from] != sides[to]
        {
            return;
        }
        let delay = if from == to {
            0
        } else {
            self.rng.gen_range(1..=10)
        };
        self.at(
            self.now + Duration::from_millis(delay),
            Event::Deliver { to, from, msg },
        );
    }

    fn broadcast(&mut self, from: usize, msg: Msg) {
        for to in 0..self.nodes.len() {
            self.send(from, to, msg.clone());
        }
    }

    fn index(&self, id: &ClusterId) -> usize {
        self.nodes
            .iter()
            .position(|n| n.identity.id() == *id)
            .unwrap_or_else(|| panic!("seed {}: unknown node {id}", self.seed))
    }

    fn envelope(
        &self,
        origin: usize,
        id: u64,
        payload: &[u8],
        topic: &str,
        g: Guarantee,
    ) -> Arc<Envelope> {
        let key = MessageKey {
            origin: self.nodes[origin].identity.id(),
            id,
        };
        let topic = QueueName::new(topic).unwrap_or_else(|e| panic!("{e}"));
        Arc::new(
            Envelope::new(key, topic, g, payload.to_vec(), None).unwrap_or_else(|e| panic!("{e}")),
        )
    }

    /// `origin` proposes message `id`; a two-faced origin also sends a second
    /// payload for the same id to every member, the upper half first.
    fn propose(&mut self, origin: usize, id: u64, topic: &str, g: Guarantee) {
        let e = self.envelope(origin, id, format!("m{id}").as_bytes(), topic, g);
        let out = self.nodes[origin]
            .driver
            .propose(self.now, e, Some(Duration::from_millis(10)))
            .unwrap_or_else(|err| panic!("seed {}: propose: {err}", self.seed));
        if self.nodes[origin].role == Role::TwoFacedOrigin {
            let n = self.nodes.len();
            for o in out {
                match o {
                    QuorumOutput::Propose { proposal, .. } => {
                        let evil =
                            self.envelope(origin, id, format!("evil{id}").as_bytes(), topic, g);
                        let second = Proposal {
                            round: proposal.round,
                            envelope: evil,
                        };
                        // Everyone gets both payloads (random arrival order);
                        // the upper half is sent the evil one first.
                        for to in 0..n {
                            let (a, b) = if to >= n / 2 && to != origin {
                                (&second, &proposal)
                            } else {
                                (&proposal, &second)
                            };
                            self.send(origin, to, Msg::Proposal(a.clone()));
                            if to != origin {
                                self.send(origin, to, Msg::Proposal(b.clone()));
                            }
                        }
                    }
                    other => self.apply(origin, None, other),
                }
            }
        } else {
            for o in out {
                self.apply(origin, None, o);
            }
        }
    }

    fn apply(&mut self, node: usize, from: Option<usize>, o: QuorumOutput) {
        match o {
            QuorumOutput::Propose { to, proposal } => {
                for id in to {
                    let i = self.index(&id);
                    self.send(node, i, Msg::Proposal(proposal.clone()));
                }
            }
            QuorumOutput::Timer { round, at } => self.at(at, Event::Timer { node, round }),
            QuorumOutput::Decided {
                round,
                outcome,
                own,
            } => {
                if own {
                    if let Outcome::Accepted(cert) = &outcome {
                        self.broadcast(node, Msg::Cert(cert.clone()));
                    }
                    self.nodes[node].outcomes.insert(round, outcome);
                    self.nodes[node].decided_at.insert(round, self.now);
                }
            }
            QuorumOutput::Certified(cert) => {
                self.certs.push(cert.clone());
                self.deliver(node, cert);
            }
            QuorumOutput::Evidence(e) => self.broadcast(node, Msg::Evidence(e)),
            QuorumOutput::Echo(votes) => {
                if let Some(f) = from {
                    self.send(node, f, Msg::Votes(votes));
                }
            }
        }
    }

    /// Delivers a certified message once both the certificate and the message are here.
    fn deliver(&mut self, node: usize, cert: Arc<QuorumCertificate>) {
        let roster = self.net.roster.clone();
        let n = &mut self.nodes[node];
        match n.envelopes.get(&cert.value()) {
            Some(e) => {
                verify_delivery(&roster, None, e, &cert)
                    .unwrap_or_else(|err| panic!("seed {}: delivery refused: {err}", self.seed));
                n.delivered.insert(cert.round(), cert.value());
            }
            None => {
                n.waiting.insert(cert.value(), cert);
            }
        }
    }

    fn on_proposal(&mut self, node: usize, from: usize, p: Proposal) {
        let roster = self.net.roster.clone();
        let network = roster.network_id();
        let refuse = self.rejected_topic.clone();
        let digest = p.envelope.digest(network);
        self.nodes[node]
            .envelopes
            .insert(digest, p.envelope.clone());
        if let Some(cert) = self.nodes[node].waiting.remove(&digest) {
            self.deliver(node, cert);
        }
        let n = &mut self.nodes[node];
        match n.role {
            Role::Equivocator => {
                // Sign accept for some and reject for others, bypassing the signer's safety.
                let d = p.envelope.digest(network);
                let r = p.round;
                let sign = |value| {
                    VoteBatch::sign(
                        &n.identity,
                        r.network_id,
                        r.epoch,
                        r.kind,
                        vec![(r.subject, value)],
                    )
                    .unwrap_or_else(|e| panic!("{e}"))
                };
                let (yes, no) = (sign(d), sign(REJECT));
                for to in 0..self.nodes.len() {
                    let b = if self.accept_set.contains(&to) {
                        &yes
                    } else {
                        &no
                    };
                    self.send(node, to, Msg::Batch(b.clone()));
                }
            }
            Role::Honest | Role::TwoFacedOrigin => {
                let _ = from;
                let accept = |e: &Envelope| refuse.as_ref() != Some(&e.topic);
                if n.voter.on_proposal(&roster, &p, accept).is_ok() && n.voter.queued() == 1 {
                    let t = self.now + self.flush_every;
                    self.at(t, Event::Flush { node });
                }
            }
        }
    }

    fn step(&mut self, node: usize, from: usize, msg: Msg) {
        let now = self.now;
        let res = match msg {
            Msg::Proposal(p) => {
                self.on_proposal(node, from, p);
                return;
            }
            Msg::Batch(b) => self.nodes[node].driver.on_batch(now, &b),
            Msg::Votes(votes) => {
                let mut all = Vec::new();
                for v in votes {
                    match self.nodes[node].driver.on_vote(now, v) {
                        Ok(o) => all.extend(o),
                        Err(e) => panic!("seed {}: vote refused: {e}", self.seed),
                    }
                }
                Ok(all)
            }
            Msg::Cert(c) => self.nodes[node].driver.on_certificate(now, &c),
            Msg::Evidence(e) => self.nodes[node].driver.on_evidence(now, &e),
        };
        let out = res.unwrap_or_else(|e| panic!("seed {}: node {node}: {e}", self.seed));
        for o in out {
            self.apply(node, Some(from), o);
        }
    }

    fn flush(&mut self, node: usize) {
        let roster = self.net.roster.clone();
        let n = &mut self.nodes[node];
        let signed = n
            .voter
            .flush(&roster, &n.signer, &mut n.record)
            .unwrap_or_else(|e| panic!("seed {}: flush: {e}", self.seed));
        for s in signed {
            self.refusals += s.refused.len();
            match s.batch {
                Some(b) => self.broadcast(node, Msg::Batch(b)),
                None if !s.new_votes.is_empty() => self.broadcast(node, Msg::Votes(s.new_votes)),
                None => {}
            }
        }
    }

    fn run(&mut self, until: Millis) {
        while let Some(((t, _), event)) = self.events.pop_first() {
            if t > until {
                break;
            }
            self.now = t;
            match event {
                Event::Deliver { to, from, msg } => self.step(to, from, msg),
                Event::Timer { node, round } => {
                    let out = self.nodes[node].driver.on_timer(self.now, round);
                    for o in out {
                        self.apply(node, None, o);
                    }
                }
                Event::Flush { node } => self.flush(node),
            }
        }
    }

    /// At most one value certified per slot, and every certificate verifies.
    fn check_certificates(&self) {
        let mut by_round: HashMap<Round, BTreeSet<Digest>> = HashMap::new();
        for c in &self.certs {
            c.verify(&self.net.roster, None)
                .unwrap_or_else(|e| panic!("seed {}: certificate does not verify: {e}", self.seed));
            by_round.entry(c.round()).or_default().insert(c.value());
        }
        for (round, values) in by_round {
            assert_eq!(
                values.len(),
                1,
                "seed {}: two values certified for {round:?}",
                self.seed
            );
        }
    }
}

fn config() -> QuorumConfig {
    QuorumConfig {
        backoff: Backoff {
            min: Duration::from_millis(50),
            ..Backoff::default()
        },
        max_attempts: 3,
        ..QuorumConfig::default()
    }
}

#[test]
fn byzantine_quorum_with_an_equivocating_voter_and_a_two_faced_origin() {
    use Role::*;
    const ROUNDS: u64 = 10;
    for seed in 1..=12 {
        let roles = [
            Honest,
            Honest,
            Honest,
            Honest,
            Honest,
            Equivocator,
            TwoFacedOrigin,
        ];
        let mut sim = Sim::new(seed, &roles, config());
        sim.accept_set = [0, 1, 2, 6].into();
        for id in 1..=ROUNDS {
            for origin in [0, 1, 2, 3, 4, 6] {
                sim.propose(origin, id, "orders", Guarantee::ByzantineQuorum);
            }
        }
        sim.run(Millis(60_000));
        let (equivocator, two_faced) = (5, 6);
        let eq_id = sim.nodes[equivocator].identity.id();
        for (i, n) in sim.nodes.iter().enumerate() {
            if n.role != Honest && i != two_faced {
                continue;
            }
            // Every round this node originated decided before any timeout.
            assert_eq!(
                n.outcomes.len() as u64,
                ROUNDS,
                "seed {seed}: node {i} decided {} rounds",
                n.outcomes.len()
            );
            for (round, o) in &n.outcomes {
                assert!(
                    !matches!(o, Outcome::TimedOut),
                    "seed {seed}: node {i} timed out {round:?}"
                );
                if n.role == Honest {
                    assert!(
                        matches!(o, Outcome::Accepted(_)),
                        "seed {seed}: honest round rejected"
                    );
                }
            }
            if n.role == Honest {
                assert!(
                    n.driver.is_flagged(0, &eq_id),
                    "seed {seed}: node {i} did not flag the equivocator"
                );
                let flagged: Vec<_> = n.driver.flagged().map(|(_, id)| id).collect();
                assert_eq!(
                    flagged,
                    [eq_id],
                    "seed {seed}: node {i} flagged {flagged:?}"
                );
            }
        }
        sim.check_certificates();
        assert!(
            sim.refusals > 0,
            "seed {seed}: the second payloads never reached a signer"
        );
        // Every honest node delivered every honest origin's messages.
        for i in 0..5 {
            assert!(
                sim.nodes[i].delivered.len() as u64 >= 5 * ROUNDS,
                "seed {seed}: node {i} delivered {}",
                sim.nodes[i].delivered.len()
            );
        }
    }
}

#[test]
fn global_quorum_decides_on_the_majority_side_only() {
    for seed in 1..=8 {
        let mut sim = Sim::new(seed, &[Role::Honest; 5], config());
        sim.sides = Some(vec![0, 0, 0, 1, 1]);
        sim.propose(0, 1, "orders", Guarantee::GlobalQuorum);
        sim.propose(3, 1, "orders", Guarantee::GlobalQuorum);
        sim.run(Millis(60_000));
        let majority = sim.nodes[0].outcomes.values().next();
        assert!(
            matches!(majority, Some(Outcome::Accepted(_))),
            "seed {seed}: {majority:?}"
        );
        let minority = sim.nodes[3].outcomes.values().next();
        assert!(
            matches!(minority, Some(Outcome::TimedOut)),
            "seed {seed}: {minority:?}"
        );
        for n in &sim.nodes[..3] {
            assert_eq!(n.delivered.len(), 1, "seed {seed}");
        }
        assert!(
            sim.nodes[3..].iter().all(|n| n.delivered.is_empty()),
            "seed {seed}"
        );
        sim.check_certificates();
    }
}

#[test]
fn a_thousand_concurrent_rounds_complete() {
    let seed = 7;
    let mut sim = Sim::new(seed, &[Role::Honest; 5], config());
    for id in 1..=200 {
        for origin in 0..5 {
            sim.propose(origin, id, "orders", Guarantee::ByzantineQuorum);
        }
    }
    assert_eq!(sim.nodes[0].driver.in_flight(), 200);
    sim.run(Millis(60_000));
    let accepted: usize = sim
        .nodes
        .iter()
        .map(|n| {
            n.outcomes
                .values()
                .filter(|o| matches!(o, Outcome::Accepted(_)))
                .count()
        })
        .sum();
    assert_eq!(accepted, 1000, "seed {seed}");
    assert!(
        sim.nodes
            .iter()
            .all(|n| n.delivered.len() == 1000 && n.driver.in_flight() == 0)
    );
    // Batching: far fewer signatures than votes.
    assert!(sim.nodes.iter().all(|n| n.record.len() == 1000));
    sim.check_certificates();
}

#[test]
fn a_round_that_cannot_reach_quorum_is_rejected_early() {
    let seed = 3;
    let mut sim = Sim::new(seed, &[Role::Honest; 7], config());
    sim.rejected_topic = Some(QueueName::new("forbidden").unwrap_or_else(|e| panic!("{e}")));
    sim.propose(0, 1, "forbidden", Guarantee::ByzantineQuorum);
    sim.run(Millis(60_000));
    let (round, outcome) = sim.nodes[0]
        .outcomes
        .iter()
        .next()
        .unwrap_or_else(|| panic!("no decision"));
    assert_eq!(*outcome, Outcome::Rejected);
    // Latency is at most 10 ms each way plus a 2 ms flush: far below the 50 ms timeout.
    assert!(sim.nodes[0].decided_at[round] < Millis(25));
}

#[test]
fn rejection_is_decided_by_the_vote_that_makes_quorum_unreachable() {
    // 7 equal weights: a Byzantine quorum needs 5, so the 3rd reject decides.
    let net = TestNet::new(11, &[1; 7]);
    let mut d = QuorumDriver::new(
        net.identities[0].id(),
        net.roster.clone(),
        config(),
        Arc::new(SigCache::new(64)),
    );
    let key = MessageKey {
        origin: net.identities[0].id(),
        id: 1,
    };
    let e = Arc::new(
        Envelope::new(
            key,
            QueueName::new("q").unwrap_or_else(|e| panic!("{e}")),
            Guarantee::ByzantineQuorum,
            vec![],
            None,
        )
        .unwrap_or_else(|e| panic!("{e}")),
    );
    let out = d
        .propose(Millis(0), e.clone(), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let round = match &out[0] {
        QuorumOutput::Propose { proposal, .. } => proposal.round,
        o => panic!("{o:?}"),
    };
    let digest = e.digest(net.roster.network_id());
    let votes = [(1, digest), (2, REJECT), (3, REJECT)];
    for (k, (i, v)) in votes.iter().enumerate() {
        let out = d
            .on_vote(Millis(1), net.vote(*i, round, *v).into())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.is_empty(), "decided after {} votes", k + 1);
    }
    let out = d
        .on_vote(Millis(2), net.vote(4, round, REJECT).into())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.iter().any(|o| matches!(
            o,
            QuorumOutput::Decided {
                outcome: Outcome::Rejected,
                own: true,
                ..
            }
        )),
        "{out:?}"
    );
    assert_eq!(d.counters().rejected, 1);
    // The timer finds nothing left to do.
    assert!(d.on_timer(Millis(10_000), round).is_empty());
}
