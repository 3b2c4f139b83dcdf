//! Gossip convergence and cost of the membership protocol, measured in the
//! deterministic simulator.
//!
//! For each cluster count N it reports, in gossip rounds (500 ms each with
//! the default configuration), beside the target 2·⌈log2 N⌉ + 4:
//! - join: N clusters start at once, all through one seed, until every
//!   cluster sees every other alive;
//! - late join: one more cluster joins the converged mesh, until everyone
//!   sees it (and it sees everyone);
//!
//! and the steady-state gossip traffic per cluster (postcard-encoded frames
//! plus their 4-byte length prefix, sent per second, over 10 s), and the
//! failure detection time: one cluster crashes, until each other cluster
//! declares it dead (fastest and slowest observer).
//!
//! ```text
//! cargo run --release --example sim_convergence            # N = 10, 100, 1000
//! cargo run --release --example sim_convergence -- 50 200  # other sizes
//! FEDMESH_SIM_SEED=7 cargo run --release --example sim_convergence
//! ```
//! (N = 1000 takes minutes in a debug build.)

use std::time::{Duration, Instant};

use fedmesh::proto::membership::{MemberState, MembershipConfig};
use fedmesh::proto::time::Millis;
use fedmesh::proto::wire::FrameKind;
use fedmesh::sim::{Sim, SimConfig};
use fedmesh::testkit::figures::{print_header, print_row};

const STEP: Duration = Duration::from_millis(100);

struct Row {
    n: usize,
    target: u64,
    join_rounds: Option<u64>,
    late_rounds: Option<u64>,
    bytes_per_node_s: u64,
    frames_per_node_s: u64,
    syn_share: u64,
    detection: Option<(Duration, Duration)>,
    wall: Duration,
}

fn rounds(d: Duration, interval: Duration) -> u64 {
    let (d, i) = (d.as_millis(), interval.as_millis().max(1));
    u64::try_from(d.div_ceil(i)).unwrap_or(u64::MAX)
}

fn measure(n: usize, seed: u64) -> Row {
    let wall = Instant::now();
    let cfg = MembershipConfig::default();
    let target = 2 * u64::from(usize::BITS - n.saturating_sub(1).leading_zeros()) + 4;
    let sim_config = SimConfig {
        measure_bytes: true,
        ..SimConfig::with_seed(seed)
    };
    // Node n is the late joiner; it is not started with the others.
    let mut sim = Sim::cluster(sim_config, n + 1, cfg.clone());
    for i in 0..n {
        if let Err(e) = sim.start(i) {
            panic!("{} cannot start node {i}: {e}", sim.context());
        }
    }
    let timeout = Duration::from_secs(120);
    let joined = sim.run_until_true(timeout, STEP, Sim::full_membership);
    let join_rounds = joined.map(|t| rounds(t.as_duration(), cfg.gossip_interval));
    if joined.is_none() {
        eprintln!(
            "{} N={n}: no convergence: {:?}",
            sim.context(),
            sim.membership_gaps(3)
        );
    }

    sim.run_for(Duration::from_secs(5));
    let before = sim.stats().clone();
    let window = Duration::from_secs(10);
    sim.run_for(window);
    let steady = sim.stats().since(&before);
    let secs = window.as_secs().max(1);
    let nodes = n as u64;
    let bytes_per_node_s = steady.bytes_total() / nodes / secs;
    let frames_per_node_s = steady.frames_sent.total() / nodes / secs;
    let syn_share = steady.bytes_of(FrameKind::Syn) * 100 / steady.bytes_total().max(1);

    let start: Millis = sim.now();
    if let Err(e) = sim.start(n) {
        panic!("{} cannot start the late joiner: {e}", sim.context());
    }
    let late = sim.run_until_true(timeout, STEP, Sim::full_membership);
    let late_rounds = late.map(|t| rounds(t.since(start), cfg.gossip_interval));

    sim.run_for(Duration::from_secs(10));
    let victim = n / 2;
    sim.crash(victim);
    let killed = sim.now();
    let seen = sim.run_until_true(timeout, STEP, |s| s.all_see(victim, MemberState::Dead));
    let detection = seen.and_then(|_| {
        let times: Vec<Duration> = sim
            .up_nodes()
            .into_iter()
            .filter_map(|o| sim.dead_at(o, victim).map(|t| t.since(killed)))
            .collect();
        Some((*times.iter().min()?, *times.iter().max()?))
    });
    Row {
        n,
        target,
        join_rounds,
        late_rounds,
        bytes_per_node_s,
        frames_per_node_s,
        syn_share,
        detection,
        wall: wall.elapsed(),
    }
}

fn show(r: Option<u64>) -> String {
    r.map_or_else(|| "none".to_owned(), |r| r.to_string())
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 100, 1000]
    } else {
        sizes
    };
    let seed = std::env::var("FEDMESH_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let cfg = MembershipConfig::default();
    println!(
        "membership convergence (seed {seed}, gossip every {:?} with {} peer(s), heartbeat every {:?}, push fanout {}, degree {}..{})",
        cfg.gossip_interval,
        cfg.sync_fanout,
        cfg.heartbeat_interval,
        cfg.fanout,
        cfg.degree,
        cfg.max_degree
    );
    println!();
    println!(
        "{:>6} | {:>13} | {:>11} | {:>16} | {:>16} | {:>14} | {:>13} | {:>9}",
        "N",
        "target rounds",
        "join rounds",
        "late-join rounds",
        "bytes/node/s",
        "frames/node/s",
        "detection s",
        "wall"
    );
    println!("{}", "-".repeat(119));
    let mut figures = Vec::new();
    for n in sizes {
        let r = measure(n, seed);
        figures.push((
            format!("simulated join through one seed, N = {}", r.n),
            format!("{} rounds to full membership", show(r.join_rounds)),
            format!("≤ {} rounds", r.target),
        ));
        println!(
            "{:>6} | {:>13} | {:>11} | {:>16} | {:>16} | {:>14} | {:>13} | {:>8.1}s",
            r.n,
            r.target,
            show(r.join_rounds),
            show(r.late_rounds),
            format!("{} ({}% syn)", r.bytes_per_node_s, r.syn_share),
            r.frames_per_node_s,
            r.detection.map_or_else(
                || "none".to_owned(),
                |(lo, hi)| format!("{:.1}–{:.1}", lo.as_secs_f64(), hi.as_secs_f64())
            ),
            r.wall.as_secs_f64()
        );
    }
    print_header();
    for (figure, value, target) in figures {
        print_row(&figure, &value, "", "", &target);
    }
}
