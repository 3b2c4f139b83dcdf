//! Core unit tests: handshakes, refusals, gossip and leaving, without sockets.

use super::*;
use crate::proto::identity::Identity;
use crate::proto::membership::config::MembershipConfig;
use crate::proto::membership::failure::MemberState;
use crate::proto::membership::heartbeat::SignedHeartbeat;
use crate::proto::membership::record::{MAX_ADDRS, NodeRecord};
use crate::proto::membership::record::{SignedRecord, Version};
use crate::proto::wire::PROTOCOL_VERSION;
use crate::proto::wire::{DigestEntry, MAX_DIGEST_ENTRIES, Sig64};
use crate::testkit::TestNet;
use std::collections::VecDeque;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 7000))
}

pub(super) fn core(net: &TestNet, i: usize, seeds: Vec<SocketAddr>) -> Core {
    let identity = Arc::new(Identity::from_seed(net.seed_of(i)));
    Core::new(
        identity,
        net.roster.clone(),
        MembershipConfig::default(),
        seeds,
        vec![addr(i)],
        0,
        i as u64,
    )
    .unwrap()
}

/// Routes `Send`s between cores until quiet; returns everything else.
pub(super) fn pump(
    cores: &mut [Core],
    now: Millis,
    from: usize,
    outs: Vec<Output>,
) -> Vec<(usize, Output)> {
    pump_dropping(cores, now, from, outs, |_| false)
}

/// Like [`pump`], but every frame `drop` says true of is lost on the way.
pub(super) fn pump_dropping(
    cores: &mut [Core],
    now: Millis,
    from: usize,
    outs: Vec<Output>,
    mut drop: impl FnMut(&Frame) -> bool,
) -> Vec<(usize, Output)> {
    let mut rest = Vec::new();
    let mut queue: VecDeque<(usize, Output)> = outs.into_iter().map(|o| (from, o)).collect();
    while let Some((src, o)) = queue.pop_front() {
        match o {
            Output::Send { to, frame } => {
                if drop(&frame) {
                    continue;
                }
                let Some(dst) = cores.iter().position(|c| c.id() == to) else {
                    continue;
                };
                let from_id = cores[src].id();
                let outs = cores[dst].handle(
                    now,
                    Input::Frame {
                        from: from_id,
                        frame,
                    },
                );
                queue.extend(outs.into_iter().map(|o| (dst, o)));
            }
            other => rest.push((src, other)),
        }
    }
    rest
}

/// Whether `frame` carries the data path's messages or acks (what the
/// lossy data-path tests drop).
pub(super) fn is_data_frame(frame: &Frame) -> bool {
    matches!(frame, Frame::Routed(r) if r.payload.is_data_path())
}

pub(super) fn connect(cores: &mut [Core], now: Millis, a: usize, b: usize) -> Vec<(usize, Output)> {
    let (ida, idb) = (cores[a].id(), cores[b].id());
    let up = |peer, addr, inbound| Input::PeerUp {
        peer,
        addr,
        rtt: Duration::from_millis(10),
        inbound,
    };
    let mut rest = Vec::new();
    let outs = cores[b].handle(now, up(ida, addr(a), true));
    rest.extend(pump(cores, now, b, outs));
    let outs = cores[a].handle(now, up(idb, addr(b), false));
    rest.extend(pump(cores, now, a, outs));
    rest
}

fn goodbye_to(outs: &[Output], peer: ClusterId) -> Option<String> {
    outs.iter().find_map(|o| match o {
        Output::Send {
            to,
            frame: Frame::Goodbye { reason },
        } if *to == peer => Some(reason.clone()),
        _ => None,
    })
}

fn disconnects(outs: &[Output], peer: ClusterId) -> bool {
    outs.iter()
        .any(|o| matches!(o, Output::Disconnect { peer: p, .. } if *p == peer))
}

#[test]
fn start_persists_the_incarnation_dials_seeds_and_arms_the_timer() {
    let net = TestNet::new(1, &[1, 1]);
    let identity = Arc::new(Identity::from_seed(net.seed_of(0)));
    let mut c = Core::new(
        identity,
        net.roster.clone(),
        MembershipConfig::default(),
        vec![addr(1), addr(0)],
        vec![addr(0)],
        41,
        0,
    )
    .unwrap();
    let outs = c.handle(Millis(5), Input::Start);
    assert_eq!(outs[0], Output::Persist(Persist::Incarnation(42)));
    assert!(outs.contains(&Output::Connect {
        addr: addr(1),
        expected: None
    }));
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Connect { addr: a, .. } if *a == addr(0))),
        "never dials its own address"
    );
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::SetTimer { id: TimerId::Tick, at } if *at > Millis(5)))
    );
    assert!(c.handle(Millis(6), Input::Start).is_empty());
    assert_eq!(c.incarnation(), 42);
}

#[test]
fn construction_refuses_bad_inputs() {
    let net = TestNet::new(1, &[1]);
    let stranger = Arc::new(Identity::from_seed([77; 32]));
    let mk = |id: Arc<Identity>, config: MembershipConfig, addrs: Vec<SocketAddr>, prev| {
        Core::new(id, net.roster.clone(), config, vec![], addrs, prev, 0)
    };
    let cfg = MembershipConfig::default();
    assert!(matches!(
        mk(stranger.clone(), cfg.clone(), vec![addr(0)], 0),
        Err(CoreError::NotAMember { .. })
    ));
    let open = MembershipConfig {
        open: true,
        ..cfg.clone()
    };
    assert!(mk(stranger.clone(), open, vec![addr(0)], 0).is_ok());
    let me = Arc::new(Identity::from_seed(net.seed_of(0)));
    assert!(matches!(
        mk(
            me.clone(),
            cfg.clone(),
            vec!["0.0.0.0:7000".parse().unwrap()],
            0
        ),
        Err(CoreError::Record(RecordError::BadAddr(_)))
    ));
    let many: Vec<SocketAddr> = (0..=MAX_ADDRS).map(addr).collect();
    assert!(matches!(
        mk(me.clone(), cfg.clone(), many, 0),
        Err(CoreError::Record(RecordError::TooManyAddrs(_)))
    ));
    assert_eq!(
        mk(me, cfg, vec![addr(0)], u64::MAX).unwrap_err(),
        CoreError::IncarnationExhausted
    );
}

#[test]
fn handshake_then_anti_entropy_makes_both_sides_know_each_other() {
    let net = TestNet::new(2, &[1, 1, 1]);
    let mut cores: Vec<Core> = (0..3).map(|i| core(&net, i, vec![])).collect();
    for (i, c) in cores.iter_mut().enumerate() {
        c.handle(Millis(0), Input::Start);
        let _ = i;
    }
    let rest = connect(&mut cores, Millis(10), 0, 1);
    assert!(
        rest.iter()
            .any(|(i, o)| *i == 0
                && matches!(o, Output::Event(Event::LinkUp { inbound: false, .. })))
    );
    assert!(
        rest.iter().any(
            |(i, o)| *i == 1 && matches!(o, Output::Event(Event::LinkUp { inbound: true, .. }))
        )
    );
    connect(&mut cores, Millis(20), 1, 2);
    // One more exchange through node 1 spreads node 2 to node 0 and back.
    let outs = cores[0].handle(Millis(600), Input::Timer(TimerId::Tick));
    pump(&mut cores, Millis(600), 0, outs);
    let outs = cores[2].handle(Millis(600), Input::Timer(TimerId::Tick));
    pump(&mut cores, Millis(600), 2, outs);
    for c in &cores {
        for other in &cores {
            assert_eq!(
                c.member_state(&other.id()),
                Some(MemberState::Alive),
                "{:?} knows {:?}",
                c.id(),
                other.id()
            );
        }
    }
    let m = cores[0].member(&cores[1].id(), Millis(600)).unwrap();
    assert_eq!(m.name.as_deref(), Some("c1"));
    assert_eq!(m.rtt, Some(Duration::from_millis(10)));
    assert_eq!(m.addrs, vec![addr(1)]);
    assert!(cores[0].counters().signatures_verified > 0);
    assert!(
        cores[0]
            .counters()
            .frames_in
            .get(crate::proto::wire::FrameKind::SynAck)
            > 0
    );
    assert_eq!(cores[0].links().len(), 1);
    assert_eq!(cores[0].members(Millis(600)).len(), 3);
}

#[test]
fn non_members_are_refused_with_a_reason() {
    let net = TestNet::new(3, &[1]);
    let mut a = core(&net, 0, vec![]);
    a.handle(Millis(0), Input::Start);
    let stranger = Identity::from_seed([99; 32]).id();
    let outs = a.handle(
        Millis(1),
        Input::PeerUp {
            peer: stranger,
            addr: addr(9),
            rtt: Duration::from_millis(1),
            inbound: true,
        },
    );
    let reason = goodbye_to(&outs, stranger).unwrap();
    assert!(reason.contains("is not a member of network"), "{reason}");
    assert!(disconnects(&outs, stranger));
    assert_eq!(a.counters().refused_not_member, 1);
    // Whatever it sends next is ignored while the connection closes.
    let outs = a.handle(
        Millis(2),
        Input::Frame {
            from: stranger,
            frame: Frame::Records { records: vec![] },
        },
    );
    assert!(outs.is_empty());
    a.handle(
        Millis(3),
        Input::PeerDown {
            peer: stranger,
            reason: "closed".into(),
        },
    );
    assert!(a.links().is_empty());
    assert_eq!(a.member_state(&stranger), None);
}

fn inbound(a: &mut Core, peer: ClusterId) {
    a.handle(
        Millis(1),
        Input::PeerUp {
            peer,
            addr: addr(5),
            rtt: Duration::from_millis(1),
            inbound: true,
        },
    );
}

#[test]
fn hello_with_wrong_version_network_or_sender_is_refused() {
    let net = TestNet::new(4, &[1, 1]);
    let b = net.identities[1].id();
    let cases = [
        (99, net.roster.network_id(), b, "protocol version mismatch"),
        (
            PROTOCOL_VERSION,
            NetworkId([5; 32]),
            b,
            "network id mismatch",
        ),
        (
            PROTOCOL_VERSION,
            net.roster.network_id(),
            net.identities[0].id(),
            "hello names sender",
        ),
    ];
    for (version, network_id, sender, expect) in cases {
        let mut a = core(&net, 0, vec![]);
        inbound(&mut a, b);
        let outs = a.handle(
            Millis(2),
            Input::Frame {
                from: b,
                frame: Frame::Hello {
                    protocol_version: version,
                    network_id,
                    sender,
                    incarnation: 1,
                    roster_epoch: 0,
                },
            },
        );
        let reason = goodbye_to(&outs, b).unwrap();
        assert!(reason.contains(expect), "{reason}");
        assert!(disconnects(&outs, b));
        assert_eq!(a.counters().refused_hello, 1);
        assert!(a.live_peers().is_empty());
    }
}

#[test]
fn gossip_before_hello_malformed_and_oversized_frames_close_only_that_link() {
    let net = TestNet::new(5, &[1, 1, 1]);
    let mut cores: Vec<Core> = (0..3).map(|i| core(&net, i, vec![])).collect();
    connect(&mut cores, Millis(1), 0, 1);
    let (b, c) = (cores[1].id(), cores[2].id());

    // c is connected but has not said Hello yet.
    inbound(&mut cores[0], c);
    let outs = cores[0].handle(
        Millis(2),
        Input::Frame {
            from: c,
            frame: Frame::Syn { digest: vec![] },
        },
    );
    assert!(goodbye_to(&outs, c).unwrap().contains("protocol violation"));
    assert_eq!(cores[0].counters().protocol_violations, 1);

    let outs = cores[0].handle(
        Millis(3),
        Input::MalformedFrame {
            peer: b,
            error: "postcard: unexpected end".into(),
        },
    );
    assert!(goodbye_to(&outs, b).unwrap().contains("malformed frame"));
    assert!(disconnects(&outs, b));
    assert_eq!(cores[0].counters().malformed_frames, 1);

    let mut cores: Vec<Core> = (0..3).map(|i| core(&net, i, vec![])).collect();
    connect(&mut cores, Millis(1), 0, 1);
    connect(&mut cores, Millis(1), 0, 2);
    let huge = vec![
        DigestEntry {
            id: b,
            version: Version::default(),
            heartbeat: 0,
        };
        MAX_DIGEST_ENTRIES + 1
    ];
    let outs = cores[0].handle(
        Millis(4),
        Input::Frame {
            from: b,
            frame: Frame::Syn { digest: huge },
        },
    );
    assert!(goodbye_to(&outs, b).unwrap().contains("oversized"));
    assert_eq!(cores[0].counters().oversized_frames, 1);
    assert_eq!(
        cores[0].live_peers(),
        vec![c],
        "the other link is untouched"
    );
}

#[test]
fn a_peer_cannot_ask_for_digests_faster_than_the_budget() {
    let net = TestNet::new(10, &[1, 1]);
    let mut cores: Vec<Core> = (0..2).map(|i| core(&net, i, vec![])).collect();
    // Node 0 dials node 1 and opens with one Syn (budget 4 - 1).
    connect(&mut cores, Millis(1), 0, 1);
    let a = cores[0].id();
    let syn = || Input::Frame {
        from: a,
        frame: Frame::Syn { digest: vec![] },
    };
    let answered = (0..6)
        .filter(|_| !cores[1].handle(Millis(2), syn()).is_empty())
        .count();
    assert_eq!(answered, 3);
    assert_eq!(cores[1].counters().syns_rate_limited, 3);
    cores[1].handle(Millis(600), Input::Timer(TimerId::Tick));
    assert!(!cores[1].handle(Millis(601), syn()).is_empty());
}

#[test]
fn forged_records_are_dropped_and_counted() {
    let net = TestNet::new(6, &[1, 1, 1]);
    let mut cores: Vec<Core> = (0..2).map(|i| core(&net, i, vec![])).collect();
    connect(&mut cores, Millis(1), 0, 1);
    let b = cores[1].id();
    let victim = Identity::from_seed(net.seed_of(2));
    let record = NodeRecord {
        id: victim.id(),
        incarnation: 1,
        revision: 1,
        roster_epoch: 0,
        left: false,
        addrs: vec![addr(2)],
        links: vec![],
        queues: vec![],
        subscriptions: Vec::new(),
    };
    // Signed by b, claiming to be the victim.
    let mallory = Identity::from_seed(net.seed_of(1));
    let forged = SignedRecord {
        signature: Sig64(mallory.sign(&record.sign_bytes(&net.roster.network_id()))),
        record: Arc::new(record.clone()),
    };
    // A valid record, then tampered with.
    let mut tampered = SignedRecord::sign(record, &victim, &net.roster.network_id()).unwrap();
    Arc::make_mut(&mut tampered.record).revision = 7;
    for rec in [forged, tampered] {
        cores[0].handle(
            Millis(2),
            Input::Frame {
                from: b,
                frame: Frame::Records { records: vec![rec] },
            },
        );
    }
    assert_eq!(cores[0].counters().records_bad_signature, 2);
    assert_eq!(cores[0].member_state(&victim.id()), None);
    assert_eq!(cores[0].live_peers(), vec![b]);
    // A record of a non-member is dropped too.
    let stranger = Identity::from_seed([123; 32]);
    let rec = SignedRecord::sign(
        NodeRecord {
            id: stranger.id(),
            incarnation: 1,
            revision: 1,
            roster_epoch: 0,
            left: false,
            addrs: vec![],
            links: vec![],
            queues: vec![],
            subscriptions: Vec::new(),
        },
        &stranger,
        &net.roster.network_id(),
    )
    .unwrap();
    cores[0].handle(
        Millis(3),
        Input::Frame {
            from: b,
            frame: Frame::Records { records: vec![rec] },
        },
    );
    assert_eq!(cores[0].counters().records_not_member, 1);
}

#[test]
fn a_record_from_an_earlier_life_raises_the_incarnation() {
    let net = TestNet::new(7, &[1, 1]);
    let mut cores: Vec<Core> = (0..2).map(|i| core(&net, i, vec![])).collect();
    connect(&mut cores, Millis(1), 0, 1);
    let me = Identity::from_seed(net.seed_of(0));
    let old = SignedRecord::sign(
        NodeRecord {
            id: me.id(),
            incarnation: 9,
            revision: 500,
            roster_epoch: 0,
            left: false,
            addrs: vec![addr(0)],
            links: vec![],
            queues: vec![],
            subscriptions: Vec::new(),
        },
        &me,
        &net.roster.network_id(),
    )
    .unwrap();
    let b = cores[1].id();
    let outs = cores[0].handle(
        Millis(2),
        Input::Frame {
            from: b,
            frame: Frame::Records { records: vec![old] },
        },
    );
    assert!(outs.contains(&Output::Persist(Persist::Incarnation(10))));
    assert_eq!(cores[0].incarnation(), 10);
    assert_eq!(cores[0].counters().incarnation_bumps, 1);
    // Its own echo is not news.
    let own = cores[0].own_record().clone();
    let outs = cores[0].handle(
        Millis(3),
        Input::Frame {
            from: b,
            frame: Frame::Records { records: vec![own] },
        },
    );
    assert!(!outs.iter().any(|o| matches!(o, Output::Persist(_))));
    // A heartbeat of a later beat in the current incarnation (an earlier
    // life that reached incarnation 10 too) raises it again.
    let beat = SignedHeartbeat::sign(&me, &net.roster.network_id(), 10, 10_000);
    let outs = cores[0].handle(
        Millis(4),
        Input::Frame {
            from: b,
            frame: Frame::Ack {
                records: vec![],
                heartbeats: vec![beat],
            },
        },
    );
    assert!(outs.contains(&Output::Persist(Persist::Incarnation(11))));
    assert_eq!(cores[0].counters().incarnation_bumps, 2);
}

#[test]
fn forged_heartbeats_cannot_keep_a_member_alive() {
    let net = TestNet::new(12, &[1, 1, 1]);
    let mut cores: Vec<Core> = (0..3).map(|i| core(&net, i, vec![])).collect();
    connect(&mut cores, Millis(1), 0, 1);
    let b = cores[1].id();
    let victim = Identity::from_seed(net.seed_of(2));
    let nid = net.roster.network_id();
    let record = cores[2].own_record().clone();
    let incarnation = record.record.incarnation;
    let frame = |heartbeats| Input::Frame {
        from: b,
        frame: Frame::Ack {
            records: vec![record.clone()],
            heartbeats,
        },
    };
    cores[0].handle(Millis(2), frame(vec![]));
    assert_eq!(
        cores[0].member_state(&victim.id()),
        Some(MemberState::Alive)
    );
    // b relays beats for the victim: one signed by b, one tampered with.
    let mallory = Identity::from_seed(net.seed_of(1));
    let forged = SignedHeartbeat {
        signature: Sig64(
            mallory.sign(&crate::proto::membership::heartbeat::sign_bytes(
                &nid,
                &victim.id(),
                incarnation,
                5,
            )),
        ),
        ..SignedHeartbeat::sign(&victim, &nid, incarnation, 5)
    };
    let tampered = SignedHeartbeat {
        counter: 6,
        ..SignedHeartbeat::sign(&victim, &nid, incarnation, 1)
    };
    // b's own genuine beats keep b itself alive meanwhile.
    let b_incarnation = cores[1].incarnation();
    let mut t = 2;
    let mut k = 0;
    while t < 30_000 {
        t += 500;
        k += 1;
        let own = SignedHeartbeat::sign(&mallory, &nid, b_incarnation, k);
        cores[0].handle(Millis(t), frame(vec![forged, tampered, own]));
        cores[0].handle(Millis(t), Input::Timer(TimerId::Tick));
    }
    assert_eq!(cores[0].member_state(&victim.id()), Some(MemberState::Dead));
    assert_eq!(cores[0].member_state(&b), Some(MemberState::Alive));
    assert!(cores[0].counters().heartbeats_bad_signature >= 2);
    assert_eq!(cores[0].counters().heartbeats_applied, k);
    // A genuine later beat revives it.
    let genuine = SignedHeartbeat::sign(&victim, &nid, incarnation, 7);
    cores[0].handle(Millis(t + 1), frame(vec![genuine]));
    assert_eq!(
        cores[0].member_state(&victim.id()),
        Some(MemberState::Alive)
    );
    assert_eq!(cores[0].counters().heartbeats_applied, k + 1);
    // A first-hand Beat must be the sender's own.
    let outs = cores[0].handle(
        Millis(t + 2),
        Input::Frame {
            from: b,
            frame: Frame::Beat {
                heartbeat: SignedHeartbeat::sign(&victim, &nid, incarnation, 8),
            },
        },
    );
    assert!(
        goodbye_to(&outs, b)
            .unwrap()
            .contains("Beat for another cluster")
    );
    assert_eq!(cores[0].counters().heartbeats_applied, k + 1);
}

#[test]
fn leave_announces_a_signed_departure_and_closes_links() {
    let net = TestNet::new(8, &[1, 1, 1]);
    let mut cores: Vec<Core> = (0..3).map(|i| core(&net, i, vec![])).collect();
    connect(&mut cores, Millis(1), 0, 1);
    connect(&mut cores, Millis(1), 1, 2);
    let outs = cores[0].handle(Millis(2), Input::Command(Command::Leave));
    let b = cores[1].id();
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Send { to, frame: Frame::Leave { .. } } if *to == b))
    );
    assert!(disconnects(&outs, b));
    assert!(cores[0].has_left());
    let rest = pump(&mut cores, Millis(2), 0, outs);
    let a = cores[0].id();
    assert_eq!(cores[1].member_state(&a), Some(MemberState::Left));
    assert!(
        rest.iter()
            .any(|(i, o)| *i == 1 && *o == Output::Event(Event::MemberLeft { id: a }))
    );
    assert_eq!(
        cores[2].member_state(&a),
        Some(MemberState::Left),
        "relayed eagerly"
    );
    // A Leave naming someone else is a violation.
    let c = cores[2].id();
    let other = cores[2].own_record().clone();
    let outs = cores[1].handle(
        Millis(3),
        Input::Frame {
            from: c,
            frame: Frame::Leave { record: other },
        },
    );
    assert!(
        goodbye_to(&outs, c)
            .unwrap()
            .contains("Leave for another cluster")
    );
    // After leaving, timers do nothing.
    assert!(
        cores[0]
            .handle(Millis(9), Input::Timer(TimerId::Tick))
            .is_empty()
    );
}

#[test]
fn same_seed_same_outputs() {
    let net = TestNet::new(9, &[1, 1, 1, 1]);
    let run = || {
        let mut cores: Vec<Core> = (0..4).map(|i| core(&net, i, vec![])).collect();
        connect(&mut cores, Millis(1), 0, 1);
        connect(&mut cores, Millis(1), 0, 2);
        connect(&mut cores, Millis(1), 0, 3);
        let mut log = Vec::new();
        for t in 1..20u64 {
            let outs = cores[0].handle(Millis(t * 500), Input::Timer(TimerId::Tick));
            log.push(format!("{outs:?}"));
            pump(&mut cores, Millis(t * 500), 0, outs);
        }
        log
    };
    assert_eq!(run(), run());
}

#[test]
fn the_link_policy_refuses_other_peers_with_a_clear_reason_and_never_dials_them() {
    let net = TestNet::new(21, &[1; 3]);
    let identity = Arc::new(Identity::from_seed(net.seed_of(0)));
    let config = MembershipConfig {
        link_policy: crate::proto::topology::LinkPolicy::only([net.identities[1].id()]),
        ..MembershipConfig::default()
    };
    let mut a = Core::new(
        identity,
        net.roster.clone(),
        config,
        vec![],
        vec![addr(0)],
        0,
        1,
    )
    .unwrap();
    let c = net.identities[2].id();
    let outs = a.handle(
        Millis(0),
        Input::PeerUp {
            peer: c,
            addr: addr(2),
            rtt: Duration::from_millis(1),
            inbound: true,
        },
    );
    let reason = goodbye_to(&outs, c).expect("refused with a goodbye");
    assert!(reason.contains("link policy"), "{reason}");
    assert!(reason.contains("allowed_peers"), "{reason}");
    // Routed frames over budget from an allowed peer are dropped and counted.
    let mut cores = vec![a, core(&net, 1, vec![])];
    connect(&mut cores, Millis(0), 0, 1);
    let b = cores[1].id();
    let msg = crate::proto::topology::Routed {
        dst: c,
        hop_budget: 1,
        path: vec![b],
        payload: crate::proto::topology::RoutedPayload::Probe {
            id: 1,
            body: vec![],
        },
    };
    let outs = cores[0].handle(
        Millis(1),
        Input::Frame {
            from: b,
            frame: Frame::Routed(msg),
        },
    );
    assert!(!outs.iter().any(|o| matches!(o, Output::Send { .. })));
    let dropped = cores[0].routing_counters().dropped;
    use crate::proto::topology::DropReason;
    assert_eq!(dropped[DropReason::OverBudget.index()], 1);
    // Probes: too big or a duplicate id are refused; a probe to a known
    // cluster without a route yet waits for the retry path.
    let probe = |id, body| Input::Command(Command::SendProbe { dst: c, id, body });
    let big = vec![0; crate::proto::topology::payload::MAX_PROBE_BODY + 1];
    let refused = |outs: &[Output]| {
        outs.iter()
            .any(|o| matches!(o, Output::Deliver(Delivery::ProbeRefused { .. })))
    };
    assert!(refused(&cores[0].handle(Millis(2), probe(1, big))));
    assert!(!refused(&cores[0].handle(Millis(2), probe(1, vec![1]))));
    assert_eq!(cores[0].pending_probes(), 1);
    assert!(refused(&cores[0].handle(Millis(2), probe(1, vec![2]))));
}
