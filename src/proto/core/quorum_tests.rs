//! GLOBAL_QUORUM and BYZANTINE_QUORUM through whole cores: routed frames
//! pumped between in-memory cores in a seeded random order.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::tests::{connect, core};
use super::*;
use crate::proto::delivery::{Envelope, Guarantee, QuorumCertificate};
use crate::proto::topology::RoutedPayload;
use crate::proto::vote::Round;
use crate::proto::wire::Frame;
use crate::testkit::TestNet;

/// Whether a frame from core `a` to core `b` is dropped.
type Cut = Box<dyn Fn(usize, usize, &Frame) -> bool>;

/// In-memory cores and what they produced.
struct Mesh {
    net: TestNet,
    cores: Vec<Core>,
    now: Millis,
    rng: StdRng,
    /// Deliveries by core.
    delivered: Vec<(usize, Delivery)>,
    /// Vote-log records by core.
    logs: Vec<Vec<(u8, Vec<u8>)>>,
    /// Every certificate seen on the wire, by round.
    certs: BTreeMap<Round, BTreeSet<[u8; 32]>>,
    /// Frames from `a` to `b` are dropped when this says so.
    cut: Cut,
    /// Frames held back until every other frame was handled, while `late` says so.
    late: Cut,
    held_back: Vec<(usize, Output)>,
}

impl Mesh {
    /// `weights.len()` cores, fully linked, subscribed to `q.#`, routes formed.
    fn new(seed: u64, weights: &[u64]) -> Mesh {
        let net = TestNet::new(seed, weights);
        let n = weights.len();
        let mut cores: Vec<Core> = (0..n).map(|i| core(&net, i, vec![])).collect();
        for a in 0..n {
            for b in a + 1..n {
                connect(&mut cores, Millis(0), a, b);
            }
        }
        let mut m = Mesh {
            net,
            cores,
            now: Millis(0),
            rng: StdRng::seed_from_u64(seed),
            delivered: Vec::new(),
            logs: vec![Vec::new(); n],
            certs: BTreeMap::new(),
            cut: Box::new(|_, _, _| false),
            late: Box::new(|_, _, _| false),
            held_back: Vec::new(),
        };
        for i in 0..n {
            m.input(i, Input::Command(Command::Subscribe("q.#".into())));
        }
        m.ticks(15);
        for i in 0..n {
            assert_eq!(m.cores[i].routes().len(), n - 1, "core {i} routes");
        }
        m
    }

    fn id(&self, i: usize) -> ClusterId {
        self.cores[i].id()
    }

    fn input(&mut self, i: usize, input: Input) {
        let outs = self.cores[i].handle(self.now, input);
        self.run(outs.into_iter().map(|o| (i, o)).collect());
    }

    fn ticks(&mut self, n: usize) {
        for _ in 0..n {
            self.now = self.now + Duration::from_millis(200);
            for i in 0..self.cores.len() {
                self.input(i, Input::Timer(TimerId::Tick));
            }
        }
    }

    fn publish(
        &mut self,
        i: usize,
        topic: &str,
        g: Guarantee,
        payload: &[u8],
    ) -> Vec<(usize, Output)> {
        self.cores[i]
            .handle(
                self.now,
                Input::Command(Command::Publish {
                    topic: topic.into(),
                    guarantee: g,
                    payload: payload.to_vec(),
                }),
            )
            .into_iter()
            .map(|o| (i, o))
            .collect()
    }

    /// Carries out outputs until quiet, in a random order; then the frames
    /// held back (once).
    fn run(&mut self, mut queue: Vec<(usize, Output)>) {
        let mut releasing = false;
        loop {
            if queue.is_empty() {
                if releasing || self.held_back.is_empty() {
                    return;
                }
                releasing = true;
                queue = std::mem::take(&mut self.held_back);
            }
            let k = self.rng.gen_range(0..queue.len());
            let (src, o) = queue.swap_remove(k);
            match o {
                Output::Send { to, frame } => {
                    let Some(dst) = self.cores.iter().position(|c| c.id() == to) else {
                        continue;
                    };
                    if (self.cut)(src, dst, &frame) {
                        continue;
                    }
                    if !releasing && (self.late)(src, dst, &frame) {
                        self.held_back.push((src, Output::Send { to, frame }));
                        continue;
                    }
                    self.check_certificate(&frame);
                    let from = self.id(src);
                    let outs = self.cores[dst].handle(self.now, Input::Frame { from, frame });
                    queue.extend(outs.into_iter().map(|o| (dst, o)));
                }
                Output::Deliver(d) => self.delivered.push((src, d)),
                Output::Persist(Persist::VoteLog { kind, body }) => {
                    self.logs[src].push((kind, body))
                }
                _ => {}
            }
        }
    }

    /// Every certificate on the wire verifies and is for its message.
    fn check_certificate(&mut self, frame: &Frame) {
        let Frame::Routed(r) = frame else { return };
        let RoutedPayload::QuorumCertificate { cert, envelope } = &r.payload else {
            return;
        };
        let cert = QuorumCertificate::decode(cert).unwrap();
        let envelope = Envelope::decode(envelope).unwrap();
        crate::proto::delivery::verify_delivery(&self.net.roster, None, &envelope, &cert)
            .expect("every certificate verifies");
        self.certs
            .entry(cert.round())
            .or_default()
            .insert(cert.value().0);
    }

    fn decided(&self, at: usize) -> Vec<(MessageKey, Round, QuorumOutcome)> {
        self.delivered
            .iter()
            .filter(|(i, _)| *i == at)
            .filter_map(|(_, d)| match d {
                Delivery::QuorumDecided {
                    key,
                    round,
                    outcome,
                } => Some((*key, *round, *outcome)),
                _ => None,
            })
            .collect()
    }
}

use crate::proto::delivery::MessageKey;

const EQUIVOCATOR: usize = 5;
const TWO_FACED: usize = 6;

/// Seven clusters, two Byzantine (weight 2/7 < 1/3): one votes accept to
/// some and reject to others, one proposes two messages per slot.
fn byzantine_run(seed: u64) -> Mesh {
    let mut m = Mesh::new(seed, &[1; 7]);
    m.cores[EQUIVOCATOR].set_byzantine(Some(Byzantine::EquivocateVotes));
    m.cores[TWO_FACED].set_byzantine(Some(Byzantine::EquivocateProposals));
    let mut pending = Vec::new();
    for k in 0..4u8 {
        for origin in 0..7 {
            pending.extend(m.publish(
                origin,
                "q.x",
                Guarantee::ByzantineQuorum,
                &[k, origin as u8],
            ));
        }
    }
    // All rounds in flight at once, frames in a random order.
    m.run(pending);
    m.ticks(3);
    m
}

#[test]
fn byzantine_quorum_with_an_equivocating_voter_and_a_two_faced_origin() {
    for seed in [1u64, 2, 3, 4] {
        println!("seed {seed}");
        let m = byzantine_run(seed);
        let honest: Vec<usize> = (0..7)
            .filter(|i| *i != EQUIVOCATOR && *i != TWO_FACED)
            .collect();
        let (bad_voter, bad_origin) = (m.id(EQUIVOCATOR), m.id(TWO_FACED));
        for &i in &honest {
            let decided = m.decided(i);
            assert_eq!(
                decided.len(),
                4,
                "seed {seed}: core {i} decided {decided:?}"
            );
            assert!(
                decided.iter().all(|d| d.2 == QuorumOutcome::Accepted),
                "seed {seed}: core {i}: {decided:?}"
            );
            // Flagged by every honest node; nobody else ever is.
            assert!(
                m.cores[i].is_flagged(0, &bad_voter),
                "seed {seed}: core {i}"
            );
            assert_eq!(
                m.cores[i].flagged_signers(),
                vec![(0, bad_voter)],
                "seed {seed}: core {i} false positive"
            );
            // The two-faced origin's rounds decide at every honest node.
            let published: Vec<MessageKey> = m
                .delivered
                .iter()
                .filter_map(|(at, d)| match d {
                    Delivery::Published { key, .. } if *at == TWO_FACED => Some(*key),
                    _ => None,
                })
                .collect();
            assert_eq!(published.len(), 4);
            for key in published {
                let network = m.net.roster.network_id();
                let round = Round {
                    network_id: network,
                    epoch: 0,
                    kind: crate::proto::vote::VoteKind::ByzantineQuorum,
                    subject: crate::proto::delivery::message_subject(network, key),
                };
                assert!(
                    m.cores[i].quorum_decision(&round).is_some(),
                    "seed {seed}: core {i} undecided on {key:?}"
                );
            }
        }
        for (round, values) in &m.certs {
            assert_eq!(
                values.len(),
                1,
                "seed {seed}: two values certified for {round:?}"
            );
        }
        // Each honest subscriber got each certified message once, the same everywhere.
        let mut got: BTreeMap<(usize, MessageKey), Vec<Vec<u8>>> = BTreeMap::new();
        for (i, d) in &m.delivered {
            if let Delivery::Message(e) = d {
                got.entry((*i, e.key)).or_default().push(e.payload.clone());
            }
        }
        for &i in &honest {
            for o in &honest {
                let n = got
                    .iter()
                    .filter(|((at, k), _)| at == &i && k.origin == m.id(*o))
                    .inspect(|(_, v)| assert_eq!(v.len(), 1))
                    .count();
                assert_eq!(n, 4, "seed {seed}: core {i} from {o}");
            }
        }
        for ((_, k), v) in &got {
            if k.origin == bad_origin {
                let same: BTreeSet<_> = got
                    .iter()
                    .filter(|((_, k2), _)| k2 == k)
                    .map(|(_, v)| v[0].clone())
                    .collect();
                assert_eq!(same.len(), 1, "seed {seed}: {v:?}");
            }
        }
    }
}

#[test]
fn an_equivocator_whose_votes_all_arrive_after_the_certificates_is_still_flagged() {
    const E: usize = 4;
    for seed in [21u64, 22, 23] {
        let mut m = Mesh::new(seed, &[1; 5]);
        m.cores[E].set_byzantine(Some(Byzantine::EquivocateVotes));
        // The equivocator's votes reach nobody before every round is
        // certified and delivered everywhere: none is in a certificate,
        // and nobody holds one of them when the certificate arrives.
        m.late = Box::new(|src, _, f| {
            src == E
                && matches!(f, Frame::Routed(r) if matches!(r.payload, RoutedPayload::QuorumVotes { .. }))
        });
        let mut pending = Vec::new();
        for k in 0..3u8 {
            pending.extend(m.publish(0, "q.x", Guarantee::ByzantineQuorum, &[k]));
        }
        m.run(pending);
        let bad = m.id(E);
        for i in 0..E {
            let decided = m.decided(0);
            assert_eq!(decided.len(), 3, "seed {seed}: {decided:?}");
            assert_eq!(
                m.cores[i].flagged_signers(),
                vec![(0, bad)],
                "seed {seed}: core {i}"
            );
        }
    }
}

#[test]
fn a_member_that_missed_the_certificates_asks_for_them_and_delivers() {
    let mut m = Mesh::new(31, &[1; 5]);
    // Core 3 gets the proposals but none of the others' votes nor the
    // certificates: it votes, and cannot decide or deliver by itself.
    m.cut = Box::new(|_, b, f| {
        b == 3
            && matches!(f, Frame::Routed(r) if matches!(
                r.payload,
                RoutedPayload::QuorumCertificate { .. }
                    | RoutedPayload::QuorumVotes { .. }
                    | RoutedPayload::QuorumBatch { .. }
            ))
    });
    let mut pending = Vec::new();
    for k in 0..3u8 {
        pending.extend(m.publish(1, "q.x", Guarantee::ByzantineQuorum, &[k]));
    }
    m.run(pending);
    assert_eq!(m.decided(1).len(), 3);
    let got = |m: &Mesh, at: usize| {
        m.delivered
            .iter()
            .filter(|(i, d)| *i == at && matches!(d, Delivery::Message(_)))
            .count()
    };
    assert_eq!(got(&m, 3), 0, "nothing delivered without a certificate");
    assert_eq!(got(&m, 2), 3);
    // The loss is over: core 3 asks the origin again (its vote) and gets them.
    m.cut = Box::new(|_, _, _| false);
    m.ticks(10);
    assert_eq!(got(&m, 3), 3, "every certified message, once");
    assert_eq!(got(&m, 2), 3, "and nobody got one twice");
}

#[test]
fn vote_logs_of_a_byzantine_run_verify_and_flag_the_equivocator() {
    use crate::store::votelog::{VoteLogWriter, WriterOptions};
    let m = byzantine_run(9);
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, records) in m.logs.iter().enumerate() {
        assert!(!records.is_empty(), "core {i} logged nothing");
        let path = dir.path().join(format!("node{i}.log"));
        let id = Arc::new(crate::proto::identity::Identity::from_seed(
            m.net.seed_of(i),
        ));
        let mut w = VoteLogWriter::create(
            &path,
            m.net.roster.network_id(),
            id,
            WriterOptions::default(),
        )
        .unwrap();
        for (kind, body) in records {
            let kind = crate::store::votelog::RecordKind::from_u8(*kind).unwrap();
            w.append(kind, body).unwrap();
        }
        w.close().unwrap();
        paths.push(path);
    }
    let report = crate::audit::verify_logs(m.net.roster.clone(), &paths, Default::default());
    for l in &report.logs {
        assert!(l.is_valid(), "{l:?}");
        assert!(l.counts.certificates > 0 && l.counts.votes > 0, "{l:?}");
    }
    let flagged: Vec<ClusterId> = report.flagged.iter().map(|f| f.id).collect();
    assert_eq!(flagged, vec![m.id(EQUIVOCATOR)]);
}

#[test]
fn global_quorum_decides_with_the_majority_side_of_a_partition_only() {
    let mut m = Mesh::new(11, &[1; 7]);
    let side = |i: usize| i < 4;
    // Only routed traffic is cut, so membership keeps its view and the
    // test isolates the quorum rule.
    m.cut = Box::new(move |a, b, f| side(a) != side(b) && matches!(f, Frame::Routed(_)));
    let outs = m.publish(0, "q.x", Guarantee::GlobalQuorum, b"majority");
    m.run(outs);
    let outs = m.publish(5, "q.x", Guarantee::GlobalQuorum, b"minority");
    m.run(outs);
    m.ticks(40);
    assert_eq!(m.decided(0)[0].2, QuorumOutcome::Accepted);
    assert_eq!(m.decided(5)[0].2, QuorumOutcome::TimedOut);
    let payloads: Vec<(usize, Vec<u8>)> = m
        .delivered
        .iter()
        .filter_map(|(i, d)| match d {
            Delivery::Message(e) => Some((*i, e.payload.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(payloads.len(), 4, "{payloads:?}");
    assert!(payloads.iter().all(|(i, p)| side(*i) && p == b"majority"));
}

#[test]
fn a_round_that_cannot_reach_quorum_is_rejected_at_once() {
    let mut m = Mesh::new(12, &[1; 7]);
    for i in 1..4 {
        m.cores[i].refuse_quorum_topic("q.bad");
    }
    // The four accepting votes never reach the origin: only the three
    // rejections do, which already leave 4 < 5 reachable weight.
    let accepting = |i: usize| i == 0 || i >= 4;
    m.cut = Box::new(move |a, b, f| {
        b == 0
            && accepting(a)
            && matches!(f, Frame::Routed(r) if matches!(r.payload, RoutedPayload::QuorumVotes { .. }))
    });
    let t0 = m.now;
    let outs = m.publish(0, "q.bad", Guarantee::ByzantineQuorum, b"no");
    m.run(outs);
    let d = m.decided(0);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].2, QuorumOutcome::Rejected);
    assert_eq!(m.now, t0, "decided without any timer firing");
    assert_eq!(m.cores[0].quorum_counters().timed_out, 0);
}

#[test]
fn a_thousand_concurrent_rounds_complete() {
    let mut m = Mesh::new(13, &[1; 5]);
    let mut pending = Vec::new();
    for k in 0..200u32 {
        for origin in 0..5 {
            pending.extend(m.publish(
                origin,
                "q.many",
                Guarantee::ByzantineQuorum,
                &k.to_be_bytes(),
            ));
        }
    }
    assert_eq!(
        (0..5).map(|i| m.cores[i].quorum_in_flight()).sum::<usize>(),
        1000
    );
    m.run(pending);
    let accepted: usize = (0..5)
        .map(|i| {
            m.decided(i)
                .iter()
                .filter(|d| d.2 == QuorumOutcome::Accepted)
                .count()
        })
        .sum();
    assert_eq!(accepted, 1000);
    assert_eq!(
        (0..5).map(|i| m.cores[i].quorum_in_flight()).sum::<usize>(),
        0
    );
    let messages = m
        .delivered
        .iter()
        .filter(|(_, d)| matches!(d, Delivery::Message(_)))
        .count();
    assert_eq!(messages, 5000);
}

#[test]
fn a_vote_is_persisted_before_it_is_sent_and_never_changed_after_a_restart() {
    let mut m = Mesh::new(14, &[1; 3]);
    let outs = m.publish(0, "q.x", Guarantee::ByzantineQuorum, b"one");
    // Deliver only the proposal to core 1 and look at what it does.
    let proposal = outs
        .iter()
        .find_map(|(_, o)| match o {
            Output::Send { to, frame } if *to == m.id(1) => Some(frame.clone()),
            _ => None,
        })
        .unwrap();
    let from = m.id(0);
    let out1 = m.cores[1].handle(
        m.now,
        Input::Frame {
            from,
            frame: proposal.clone(),
        },
    );
    let persisted = out1
        .iter()
        .position(|o| matches!(o, Output::Persist(Persist::QuorumVotes(_))))
        .expect("the vote is persisted");
    let first_send = out1
        .iter()
        .position(|o| {
            matches!(o, Output::Send { frame: Frame::Routed(r), .. }
                if matches!(r.payload, RoutedPayload::QuorumVotes { .. }))
        })
        .expect("the vote is sent");
    assert!(persisted < first_send);
    let Output::Persist(Persist::QuorumVotes(votes)) = &out1[persisted] else {
        unreachable!()
    };
    // Restart core 1 with its persisted votes; the origin's id counter is
    // not durable yet, so a second message can reuse the slot: it must be refused.
    m.cores[1] = core(&m.net, 1, vec![]).with_quorum_votes(votes.clone());
    connect(&mut m.cores, m.now, 0, 1);
    let Frame::Routed(mut r) = proposal else {
        unreachable!()
    };
    let RoutedPayload::QuorumProposal { epoch, envelope } = r.payload else {
        unreachable!()
    };
    let mut e = Envelope::decode(&envelope).unwrap();
    e.payload = b"two".to_vec();
    r.payload = RoutedPayload::QuorumProposal {
        epoch,
        envelope: e.encode(),
    };
    let outs = m.cores[1].handle(
        m.now,
        Input::Frame {
            from,
            frame: Frame::Routed(r),
        },
    );
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Persist(Persist::QuorumVotes(_)))),
        "no second value signed"
    );
    assert_eq!(m.cores[1].quorum_path_counters().sign_refusals, 1);
}
