//! Deterministic simulations of roster epochs: concurrent weight changes
//! proposed by different clusters, during a partition and after it heals.
//! Every failure names its seed (`FEDMESH_SIM_SEEDS=3,17` replays seeds).

use std::collections::BTreeMap;
use std::time::Duration;

use fedmesh::proto::Digest;
use fedmesh::proto::core::{Command, Input};
use fedmesh::proto::membership::MembershipConfig;
use fedmesh::proto::roster_epoch::RosterEpoch;
use fedmesh::proto::roster_sync::RosterChange;
use fedmesh::proto::time::Millis;
use fedmesh::sim::{Sim, SimConfig};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[path = "support/seeds.rs"]
mod seeds;
use seeds::{for_seeds, seeds};

const N: usize = 50;
const STEP: Duration = Duration::from_millis(250);

fn started(seed: u64) -> Result<Sim, String> {
    let mut sim = Sim::cluster(SimConfig::with_seed(seed), N, MembershipConfig::default());
    sim.start_all()
        .map_err(|e| format!("seed {seed}: cannot start: {e}"))?;
    sim.run_until_true(Duration::from_secs(30), STEP, Sim::full_membership)
        .ok_or_else(|| format!("{} no full membership", sim.context()))?;
    Ok(sim)
}

/// Every epoch any node ever persisted or holds, by number: one roster each.
#[derive(Default)]
struct Forks(BTreeMap<u64, Digest>);

impl Forks {
    fn check(&mut self, sim: &Sim) -> Result<(), String> {
        for i in 0..sim.len() {
            let held = sim.core(i).map(|c| c.roster_epoch().clone());
            for e in sim.persisted_epochs(i).iter().chain(held.iter()) {
                let value = RosterEpoch::change_value(&e.roster);
                let known = *self.0.entry(e.roster.epoch()).or_insert(value);
                if known != value {
                    return Err(format!(
                        "{} two rosters accepted for epoch {} (node {i})",
                        sim.context(),
                        e.roster.epoch()
                    ));
                }
            }
            if let Some(c) = sim.core(i)
                && c.roster_counters().conflicts > 0
            {
                return Err(format!(
                    "{} node {i} saw a conflicting certificate",
                    sim.context()
                ));
            }
        }
        Ok(())
    }
}

/// All running nodes hold the same epoch, nothing is pending, and every
/// change is in effect.
fn settled(sim: &Sim, changes: &[RosterChange]) -> bool {
    let up = sim.up_nodes();
    let Some(first) = up.first().and_then(|i| sim.core(*i)) else {
        return false;
    };
    // Certificates may differ (any quorum subset certifies); rosters may not.
    let roster = first.roster();
    let value = RosterEpoch::change_value(roster);
    changes.iter().all(|c| c.is_in_effect(roster))
        && up.iter().all(|i| {
            sim.core(*i).is_some_and(|c| {
                RosterEpoch::change_value(c.roster()) == value && c.roster_pending().is_none()
            })
        })
}

fn propose(sim: &mut Sim, node: usize, change: &RosterChange) {
    sim.inject(node, Input::Command(Command::ProposeRoster(change.clone())));
}

fn set_weight(sim: &Sim, node: usize, weight: u64) -> RosterChange {
    RosterChange::SetWeight {
        id: sim.id(node),
        weight,
    }
}

/// Runs until `settled`, checking for forks at every step.
fn run_settled(
    sim: &mut Sim,
    forks: &mut Forks,
    changes: &[RosterChange],
    timeout: Duration,
) -> Result<Millis, String> {
    run_settled_every(sim, forks, changes, timeout, STEP)
}

fn run_settled_every(
    sim: &mut Sim,
    forks: &mut Forks,
    changes: &[RosterChange],
    timeout: Duration,
    step: Duration,
) -> Result<Millis, String> {
    let deadline = sim.now() + timeout;
    loop {
        forks.check(sim)?;
        if settled(sim, changes) {
            return Ok(sim.now());
        }
        if sim.now() >= deadline {
            let epochs: Vec<u64> = (0..sim.len())
                .map(|i| sim.core(i).map_or(0, |c| c.roster_epoch().roster.epoch()))
                .collect();
            let pending = (0..sim.len())
                .filter(|i| sim.core(*i).is_some_and(|c| c.roster_pending().is_some()))
                .count();
            let missing: Vec<&RosterChange> = sim.core(0).map_or(vec![], |c| {
                changes
                    .iter()
                    .filter(|ch| !ch.is_in_effect(c.roster()))
                    .collect()
            });
            return Err(format!(
                "{} not settled after {timeout:?}: epochs {epochs:?}, {pending} nodes with a pending vote, changes not in effect at node 0: {missing:?}",
                sim.context()
            ));
        }
        sim.run_for(step);
    }
}

#[test]
fn concurrent_weight_changes_through_a_partition_end_on_one_roster() {
    for_seeds(seeds(20), |seed| {
        let mut sim = started(seed)?;
        let mut forks = Forks::default();
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0505);
        let mut order: Vec<usize> = (0..N).collect();
        order.shuffle(&mut rng);

        // Three clusters change weights at the same moment (clusters that
        // do not propose again below, so every change stays in effect).
        let first_three = &order[N - 3..];
        let mut changes: Vec<RosterChange> = first_three
            .iter()
            .map(|&i| set_weight(&sim, i, rng.gen_range(2..=5)))
            .collect();
        for (&i, c) in first_three.iter().zip(&changes) {
            propose(&mut sim, i, c);
        }
        let t = run_settled(&mut sim, &mut forks, &changes, Duration::from_secs(60))?;
        eprintln!("seed {seed}: three concurrent changes settled at {t}");

        // A 2-way partition; each side proposes concurrently.
        let cut = rng.gen_range(15..=35);
        let (a, b) = (order[..cut].to_vec(), order[cut..].to_vec());
        sim.partition(&[a.clone(), b.clone()]);
        sim.run_for(Duration::from_secs(2));
        let during = [
            set_weight(&sim, a[0], rng.gen_range(6..=9)),
            set_weight(&sim, b[0], rng.gen_range(6..=9)),
            set_weight(&sim, b[1], rng.gen_range(6..=9)),
        ];
        propose(&mut sim, a[0], &during[0]);
        propose(&mut sim, b[0], &during[1]);
        propose(&mut sim, b[1], &during[2]);
        for _ in 0..40 {
            sim.run_for(STEP);
            forks.check(&sim)?;
        }
        sim.heal();
        changes.extend(during);
        let healed = sim.now();
        let t = run_settled(&mut sim, &mut forks, &changes, Duration::from_secs(120))?;
        eprintln!(
            "seed {seed}: split {cut}/{}: settled {:?} after the heal",
            N - cut,
            t.as_duration().saturating_sub(healed.as_duration())
        );

        // Every honest node ends on the same weights.
        let roster = sim
            .core(0)
            .map(|c| c.roster().clone())
            .ok_or("node 0 down")?;
        for i in 0..N {
            let r = sim.core(i).map(|c| c.roster().clone()).ok_or("node down")?;
            if r.members() != roster.members() {
                return Err(format!("{} node {i} has other weights", sim.context()));
            }
        }
        Ok(())
    });
}

/// The figure: how long one weight change takes to reach all 50 clusters.
#[test]
fn one_weight_change_reaches_all_fifty_clusters() {
    for_seeds(seeds(5), |seed| {
        let mut sim = started(seed)?;
        let mut forks = Forks::default();
        sim.run_for(Duration::from_secs(3));
        let change = set_weight(&sim, 7, 3);
        let t0 = sim.now();
        propose(&mut sim, 7, &change);
        let step = Duration::from_millis(20);
        let t = run_settled_every(
            &mut sim,
            &mut forks,
            &[change],
            Duration::from_secs(30),
            step,
        )?;
        let took = t.as_duration().saturating_sub(t0.as_duration());
        let rounds = took.as_secs_f64() / MembershipConfig::default().gossip_interval.as_secs_f64();
        eprintln!(
            "seed {seed}: weight change adopted by all {N} in {took:?} ({rounds:.1} gossip rounds)"
        );
        if took > Duration::from_secs(6) {
            return Err(format!("{} took {took:?}", sim.context()));
        }
        Ok(())
    });
}

/// A node that voted, crashed and restarted during a split vote never
/// signs a second value for a slot, and the vote still converges.
#[test]
fn a_restarted_voter_never_signs_two_values_for_one_slot() {
    const M: usize = 10;
    for_seeds(seeds(4), |seed| {
        let mut sim = Sim::cluster(SimConfig::with_seed(seed), M, MembershipConfig::default());
        sim.start_all().map_err(|e| format!("seed {seed}: {e}"))?;
        sim.run_until_true(Duration::from_secs(30), STEP, Sim::full_membership)
            .ok_or_else(|| format!("{} no full membership", sim.context()))?;
        let mut forks = Forks::default();
        let (a, b): (Vec<usize>, Vec<usize>) = (0..M).partition(|i| i % 2 == 0);
        sim.partition(&[a.clone(), b.clone()]);
        sim.run_for(Duration::from_secs(1));
        let changes = [set_weight(&sim, a[1], 4), set_weight(&sim, b[1], 5)];
        propose(&mut sim, a[1], &changes[0]);
        propose(&mut sim, b[1], &changes[1]);
        sim.run_for(Duration::from_secs(4));
        let voter = a[2];
        if sim.persisted_votes(voter).is_empty() {
            return Err(format!("{} node {voter} did not vote", sim.context()));
        }
        sim.restart(voter)
            .map_err(|e| format!("{} {e}", sim.context()))?;
        sim.run_for(Duration::from_secs(3));
        sim.heal();
        run_settled(&mut sim, &mut forks, &changes, Duration::from_secs(60))?;
        for i in 0..M {
            let mut slots = BTreeMap::new();
            for v in sim.persisted_votes(i) {
                if *slots.entry(v.vote.slot()).or_insert(v.vote.value) != v.vote.value {
                    return Err(format!(
                        "{} node {i} signed two values for a slot",
                        sim.context()
                    ));
                }
            }
        }
        Ok(())
    });
}

/// A node that was down while two epochs were adopted fetches them after
/// its restart.
#[test]
fn a_node_that_missed_epochs_catches_up_after_a_restart() {
    const M: usize = 10;
    for_seeds(seeds(4), |seed| {
        let mut sim = Sim::cluster(SimConfig::with_seed(seed), M, MembershipConfig::default());
        sim.start_all().map_err(|e| format!("seed {seed}: {e}"))?;
        sim.run_until_true(Duration::from_secs(30), STEP, Sim::full_membership)
            .ok_or_else(|| format!("{} no full membership", sim.context()))?;
        let mut forks = Forks::default();
        sim.crash(3);
        let changes = [set_weight(&sim, 1, 3), set_weight(&sim, 2, 4)];
        propose(&mut sim, 1, &changes[0]);
        propose(&mut sim, 2, &changes[1]);
        run_settled(&mut sim, &mut forks, &changes, Duration::from_secs(30))?;
        let epoch = sim.core(0).map_or(0, |c| c.roster().epoch());
        if epoch != 2 {
            return Err(format!("{} expected epoch 2, got {epoch}", sim.context()));
        }
        sim.start(3).map_err(|e| format!("{} {e}", sim.context()))?;
        run_settled(&mut sim, &mut forks, &changes, Duration::from_secs(30))?;
        if sim.persisted_epochs(3).len() != 2 {
            return Err(format!(
                "{} node 3 did not persist the epochs",
                sim.context()
            ));
        }
        Ok(())
    });
}
