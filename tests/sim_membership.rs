//! Deterministic simulations of the membership protocol: joins, churn,
//! partitions, failure detection, refusals and hostile input.
//!
//! Every failure names its seed. `FEDMESH_SIM_SEEDS=N` runs seeds `0..N`
//! for the multi-seed tests; `FEDMESH_SIM_SEEDS=3,17` replays exactly those.

use std::sync::Arc;
use std::time::Duration;

use fedmesh::proto::core::{Command, Input};
use fedmesh::proto::identity::Identity;
use fedmesh::proto::membership::record::NodeRecord;
use fedmesh::proto::membership::{Event, MemberState, MembershipConfig, SignedRecord};
use fedmesh::proto::roster::Roster;
use fedmesh::proto::time::Millis;
use fedmesh::proto::wire::{DigestEntry, Frame, MAX_DIGEST_ENTRIES, PROTOCOL_VERSION, Sig64};
use fedmesh::sim::{NodeSpec, Sim, SimConfig, node_addr};
use fedmesh::testkit::TestNet;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const STEP: Duration = Duration::from_millis(250);

#[path = "support/seeds.rs"]
mod seeds;
use seeds::{for_seeds, seeds};

fn converge(sim: &mut Sim, timeout: Duration) -> Result<Millis, String> {
    sim.run_until_true(timeout, STEP, Sim::full_membership)
        .ok_or_else(|| {
            format!(
                "{} no full membership after {timeout:?}: {:?}",
                sim.context(),
                sim.membership_gaps(5)
            )
        })
}

fn started(seed: u64, n: usize, config: MembershipConfig) -> Sim {
    let mut sim = Sim::cluster(SimConfig::with_seed(seed), n, config);
    if let Err(e) = sim.start_all() {
        panic!("seed {seed}: cannot start: {e}");
    }
    sim
}

fn ensure(cond: bool, sim: &Sim, what: impl std::fmt::Display) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(format!("{} {what}", sim.context()))
    }
}

#[test]
fn two_hundred_clusters_joined_through_one_seed_converge() {
    const N: usize = 200;
    let cfg = MembershipConfig::default();
    // 2·⌈log2 N⌉ + 4 gossip rounds.
    let target_rounds = 2 * (usize::BITS - (N - 1).leading_zeros()) as u64 + 4;
    let target = cfg.gossip_interval * target_rounds as u32;
    for_seeds(seeds(20), |seed| {
        let mut sim = started(seed, N, cfg.clone());
        let t = converge(&mut sim, Duration::from_secs(30))?;
        ensure(
            t.as_duration() <= target,
            &sim,
            format!("converged after {t}, target {target:?} ({target_rounds} rounds)"),
        )?;
        ensure(
            sim.deaths_since(Millis::ZERO) == 0,
            &sim,
            "a member was falsely declared dead while joining",
        )?;
        // Every link went through the handshake and nobody refused anybody.
        for i in 0..N {
            let c = sim.core(i).ok_or("node down")?;
            let k = c.counters();
            ensure(
                k.refused_not_member
                    + k.refused_hello
                    + k.malformed_frames
                    + k.records_bad_signature
                    == 0,
                &sim,
                format!("node {i} refused or dropped something: {k:?}"),
            )?;
        }
        Ok(())
    });
}

#[test]
fn churn_of_ten_percent_converges_with_higher_incarnations() {
    const N: usize = 60;
    for_seeds(seeds(4), |seed| {
        let mut sim = started(seed, N, MembershipConfig::default());
        converge(&mut sim, Duration::from_secs(30))?;
        sim.run_for(Duration::from_secs(5));
        let mut rng = StdRng::seed_from_u64(seed);
        let mut victims: Vec<usize> = (0..N).collect();
        victims.shuffle(&mut rng);
        victims.truncate(N / 10);
        let mut plan: Vec<(Millis, bool, usize)> = Vec::new();
        for v in &victims {
            let crash = sim.now() + Duration::from_millis(rng.gen_range(0..2000));
            let back = crash + Duration::from_millis(rng.gen_range(1000..8000));
            plan.push((crash, false, *v));
            plan.push((back, true, *v));
        }
        plan.sort();
        for (at, restart, v) in plan {
            sim.run_until(at);
            if restart {
                sim.start(v)
                    .map_err(|e| format!("{} restart: {e}", sim.context()))?;
            } else {
                sim.crash(v);
            }
        }
        converge(&mut sim, Duration::from_secs(60))?;
        for v in &victims {
            let inc = sim.core(*v).map(|c| c.incarnation()).unwrap_or(0);
            ensure(
                inc == 2 && sim.persisted_incarnation(*v) == 2,
                &sim,
                format!("restarted node {v} runs incarnation {inc}"),
            )?;
            let id = sim.id(*v);
            for o in 0..N {
                let seen = sim.core(o).and_then(|c| c.member_version(&id));
                ensure(
                    o == *v || seen.is_some_and(|s| s.incarnation == 2),
                    &sim,
                    format!("node {o} sees node {v} at {seen:?}"),
                )?;
            }
        }
        Ok(())
    });
}

#[test]
fn a_partition_marks_the_other_side_dead_and_heals_once_lifted() {
    const N: usize = 40;
    for_seeds(seeds(3), |seed| {
        let mut sim = started(seed, N, MembershipConfig::default());
        converge(&mut sim, Duration::from_secs(30))?;
        sim.run_for(Duration::from_secs(5));
        let a: Vec<usize> = (0..N / 2).collect();
        let b: Vec<usize> = (N / 2..N).collect();
        sim.partition(&[a.clone(), b.clone()]);
        let split = sim.run_until_true(Duration::from_secs(40), STEP, |s| {
            s.group_sees(&a, &b, MemberState::Dead)
                && s.group_sees(&b, &a, MemberState::Dead)
                && s.membership_among(&a)
                && s.membership_among(&b)
        });
        ensure(
            split.is_some(),
            &sim,
            "the halves did not declare each other dead while staying whole",
        )?;
        sim.heal();
        let healed = sim.now();
        let t = converge(&mut sim, Duration::from_secs(30))?;
        ensure(
            t.since(healed) <= Duration::from_secs(20),
            &sim,
            format!("healing took {:?}", t.since(healed)),
        )?;
        Ok(())
    });
}

#[test]
fn a_partition_longer_than_the_tombstone_ttl_heals_too() {
    const N: usize = 20;
    let cfg = MembershipConfig {
        dead_ttl: Duration::from_secs(10),
        ..MembershipConfig::default()
    };
    for_seeds(seeds(2), |seed| {
        let mut sim = started(seed, N, cfg.clone());
        converge(&mut sim, Duration::from_secs(30))?;
        // Node 0, the only seed, is on side A: side B cannot count on it.
        let a: Vec<usize> = (0..N / 2).collect();
        let b: Vec<usize> = (N / 2..N).collect();
        sim.partition(&[a.clone(), b.clone()]);
        sim.run_for(Duration::from_secs(40));
        let forgotten = b.iter().all(|o| {
            let core = sim.core(*o);
            a.iter()
                .all(|t| core.is_some_and(|c| c.member_state(&sim.id(*t)).is_none()))
        });
        ensure(forgotten, &sim, "side B still holds tombstones of side A")?;
        sim.heal();
        let healed = sim.now();
        let t = converge(&mut sim, Duration::from_secs(30))?;
        ensure(
            t.since(healed) <= Duration::from_secs(20),
            &sim,
            format!("healing took {:?}", t.since(healed)),
        )?;
        Ok(())
    });
}

#[test]
fn a_killed_cluster_is_declared_dead_by_all_within_the_detection_time() {
    const N: usize = 30;
    let cfg = MembershipConfig::default();
    let bound = cfg.detection_time();
    assert!(bound <= Duration::from_secs(10));
    for_seeds(seeds(6), |seed| {
        let mut sim = started(seed, N, cfg.clone());
        converge(&mut sim, Duration::from_secs(30))?;
        sim.run_for(Duration::from_secs(20));
        let victim = (seed as usize * 7 + 3) % N;
        sim.crash(victim);
        let killed = sim.now();
        let all = sim.run_until_true(bound + Duration::from_secs(5), STEP, |s| {
            s.all_see(victim, MemberState::Dead)
        });
        ensure(
            all.is_some(),
            &sim,
            format!("node {victim} not declared dead by all"),
        )?;
        for o in sim.up_nodes() {
            let at = sim.dead_at(o, victim).ok_or("no MemberDead event")?;
            ensure(
                at.since(killed) <= bound,
                &sim,
                format!(
                    "node {o} declared node {victim} dead after {:?} > {bound:?}",
                    at.since(killed)
                ),
            )?;
        }
        ensure(
            sim.deaths_since(killed) == N - 1,
            &sim,
            "only the victim dies, once per observer",
        )?;
        Ok(())
    });
}

#[test]
fn a_graceful_leave_is_seen_as_left_never_as_dead() {
    let mut sim = started(11, 20, MembershipConfig::default());
    converge(&mut sim, Duration::from_secs(30)).unwrap();
    sim.inject(5, Input::Command(Command::Leave));
    let t0 = sim.now();
    let left = sim.run_until_true(Duration::from_secs(3), STEP, |s| {
        s.all_see(5, MemberState::Left)
    });
    assert!(
        left.is_some(),
        "{} departure not seen by all",
        sim.context()
    );
    sim.crash(5);
    sim.run_for(Duration::from_secs(20));
    assert_eq!(sim.deaths_since(t0), 0, "{}", sim.context());
    assert!(sim.all_see(5, MemberState::Left));
    assert!(sim.full_membership());
}

/// A node with the given roster and identity, dialing node 0.
fn extra_node(
    sim: &mut Sim,
    seed: [u8; 32],
    roster: Arc<Roster>,
    config: MembershipConfig,
) -> usize {
    sim.add_node(NodeSpec {
        identity_seed: seed,
        roster,
        config,
        seeds: vec![node_addr(0)],
    })
}

fn goodbyes(sim: &Sim, node: usize) -> Vec<String> {
    sim.log()
        .iter()
        .filter(|e| e.node == node)
        .filter_map(|e| match &e.event {
            Event::Goodbye { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_non_member_is_refused_with_a_reason() {
    let mut sim = Sim::cluster(SimConfig::with_seed(21), 5, MembershipConfig::default());
    let roster = sim.core(0).map(|c| c.roster().clone());
    let roster = roster.unwrap_or_else(|| TestNet::new(21, &[1; 5]).roster);
    let open = MembershipConfig {
        open: true,
        ..MembershipConfig::default()
    };
    let outsider = extra_node(&mut sim, [200; 32], roster, open);
    sim.start_all().unwrap();
    sim.run_for(Duration::from_secs(10));
    let reasons = goodbyes(&sim, outsider);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("is not a member of network")),
        "{} the outsider got {reasons:?}",
        sim.context()
    );
    assert!(sim.core(0).unwrap().counters().refused_not_member >= 1);
    let out = sim.id(outsider);
    for i in 0..5 {
        assert_eq!(
            sim.core(i).unwrap().member_state(&out),
            None,
            "{}",
            sim.context()
        );
    }
    assert!(sim.membership_among(&[0, 1, 2, 3, 4]));
    assert!(sim.core(outsider).unwrap().live_peers().is_empty());
}

#[test]
fn in_open_mode_an_unknown_cluster_joins_as_an_observer() {
    let open = MembershipConfig {
        open: true,
        ..MembershipConfig::default()
    };
    let mut sim = Sim::cluster(SimConfig::with_seed(22), 5, open.clone());
    let roster = TestNet::new(22, &[1; 5]).roster;
    let observer = extra_node(&mut sim, [201; 32], roster, open);
    sim.start_all().unwrap();
    converge(&mut sim, Duration::from_secs(10)).unwrap();
    let status = sim
        .core(0)
        .unwrap()
        .member(&sim.id(observer), sim.now())
        .unwrap();
    assert!(status.observer && status.name.is_none());
    assert_eq!(status.state, MemberState::Alive);
}

#[test]
fn a_hello_for_another_network_is_refused() {
    let net = TestNet::new(23, &[1; 6]);
    let other = Arc::new(Roster::genesis("othernet", net.roster.members().to_vec()).unwrap());
    let mut sim = Sim::new(SimConfig::with_seed(23));
    for i in 0..6 {
        let roster = if i == 5 {
            other.clone()
        } else {
            net.roster.clone()
        };
        extra_node(
            &mut sim,
            net.seed_of(i),
            roster,
            MembershipConfig::default(),
        );
    }
    sim.start_all().unwrap();
    sim.run_for(Duration::from_secs(10));
    let reasons = goodbyes(&sim, 5);
    assert!(
        reasons.iter().any(|r| r.contains("network id mismatch")),
        "{} node 5 got {reasons:?}",
        sim.context()
    );
    assert!(sim.core(0).unwrap().counters().refused_hello >= 1);
    assert!(sim.membership_among(&[0, 1, 2, 3, 4]));
    assert_eq!(sim.core(0).unwrap().member_state(&sim.id(5)), None);
}

#[test]
fn a_hello_with_another_protocol_version_is_refused() {
    let mut sim = started(24, 4, MembershipConfig::default());
    sim.set_filter(Box::new(|from, _to, frame| {
        if let Frame::Hello {
            protocol_version, ..
        } = frame
            && from == 3
        {
            *protocol_version = 99;
        }
        true
    }));
    sim.run_for(Duration::from_secs(10));
    let reasons = goodbyes(&sim, 3);
    assert!(
        reasons.iter().any(|r| r.contains(&format!(
            "protocol version mismatch: we speak {PROTOCOL_VERSION}, peer speaks 99"
        ))),
        "{} node 3 got {reasons:?}",
        sim.context()
    );
    assert!(sim.core(0).unwrap().counters().refused_hello >= 1);
    assert!(sim.membership_among(&[0, 1, 2]));
}

#[test]
fn garbage_frames_are_counted_and_close_only_that_connection() {
    let mut sim = started(25, 10, MembershipConfig::default());
    converge(&mut sim, Duration::from_secs(10)).unwrap();
    sim.run_for(Duration::from_secs(5));
    let peers = sim.core(0).unwrap().live_peers();
    assert!(peers.len() >= 2, "{}", sim.context());
    let (p, q) = (
        sim.index_of(&peers[0]).unwrap(),
        sim.index_of(&peers[1]).unwrap(),
    );
    assert!(sim.inject_bytes(p, 0, &[0xff; 37]));
    let huge = Frame::Syn {
        digest: vec![
            DigestEntry {
                id: sim.id(q),
                version: Default::default(),
                heartbeat: 0,
            };
            MAX_DIGEST_ENTRIES + 1
        ],
    };
    assert!(sim.inject_frame(q, 0, huge));
    let injected = sim.now();
    sim.run_for(Duration::from_millis(300));
    let c = sim.core(0).unwrap();
    assert_eq!(c.counters().malformed_frames, 1, "{}", sim.context());
    assert_eq!(c.counters().oversized_frames, 1, "{}", sim.context());
    let live = c.live_peers();
    assert!(!live.contains(&sim.id(p)) && !live.contains(&sim.id(q)));
    assert!(live.len() + 2 >= peers.len(), "other links untouched");
    let refused: Vec<&Event> = sim
        .log()
        .iter()
        .filter(|e| e.node == 0 && e.at >= injected)
        .map(|e| &e.event)
        .filter(|e| matches!(e, Event::Refused { .. }))
        .collect();
    assert!(
        refused.iter().any(
            |e| matches!(e, Event::Refused { reason, .. } if reason.starts_with("malformed frame"))
        ),
        "{refused:?}"
    );
    sim.run_for(Duration::from_secs(20));
    assert!(
        sim.full_membership(),
        "{} {:?}",
        sim.context(),
        sim.membership_gaps(5)
    );
    assert_eq!(sim.deaths_since(injected), 0, "{}", sim.context());
}

#[test]
fn forged_records_are_dropped_and_counted() {
    let net = TestNet::new(26, &[1; 8]);
    let mut sim = started(26, 8, MembershipConfig::default());
    converge(&mut sim, Duration::from_secs(10)).unwrap();
    let peer = sim.core(0).unwrap().live_peers()[0];
    let liar = sim.index_of(&peer).unwrap();
    let victim = (1..8).find(|v| *v != liar).unwrap();
    let real = sim.core(victim).unwrap().own_record().clone();
    let mut record = NodeRecord::clone(&real.record);
    record.revision += 1000;
    // Signed by the liar, claiming to be the victim.
    let mallory = Identity::from_seed(net.seed_of(liar));
    let forged = SignedRecord {
        signature: Sig64(mallory.sign(&record.sign_bytes(&net.roster.network_id()))),
        record: Arc::new(record.clone()),
    };
    // The victim's real signature over other content.
    let tampered = SignedRecord {
        signature: real.signature,
        record: Arc::new(record),
    };
    assert!(sim.inject_frame(
        liar,
        0,
        Frame::Records {
            records: vec![forged, tampered]
        }
    ));
    sim.run_for(Duration::from_secs(2));
    let c = sim.core(0).unwrap();
    assert_eq!(c.counters().records_bad_signature, 2, "{}", sim.context());
    let seen = c.member_version(&sim.id(victim)).unwrap();
    assert!(seen.revision < real.record.revision + 1000);
    assert!(sim.full_membership());
}

#[test]
fn a_lossy_network_with_real_encoding_still_converges() {
    let config = SimConfig {
        loss_permille: 50,
        wire_roundtrip: true,
        measure_bytes: true,
        ..SimConfig::with_seed(27)
    };
    let mut sim = Sim::cluster(config, 50, MembershipConfig::default());
    sim.start_all().unwrap();
    converge(&mut sim, Duration::from_secs(30)).unwrap();
    sim.run_for(Duration::from_secs(20));
    assert!(
        sim.full_membership(),
        "{} {:?}",
        sim.context(),
        sim.membership_gaps(5)
    );
    assert!(sim.stats().frames_lost > 0 && sim.stats().bytes_total() > 0);
    assert_eq!(sim.deaths_since(Millis::ZERO), 0, "{}", sim.context());
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let run = |seed: u64| {
        let config = SimConfig {
            loss_permille: 20,
            ..SimConfig::with_seed(seed)
        };
        let mut sim = Sim::cluster(config, 30, MembershipConfig::default());
        sim.start_all().unwrap();
        sim.run_for(Duration::from_secs(10));
        sim.crash(7);
        sim.partition(&[(0..10).collect()]);
        sim.run_for(Duration::from_secs(10));
        sim.heal();
        sim.restart(7).unwrap();
        sim.run_for(Duration::from_secs(10));
        (sim.log_digest(), sim.log().len(), sim.stats().clone())
    };
    let a = run(5);
    assert_eq!(a, run(5));
    assert_ne!(a.0, run(6).0);
}
