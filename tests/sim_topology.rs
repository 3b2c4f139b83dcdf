//! Deterministic simulations of topology-aware routing: 100 clusters on a
//! random geometric graph whose link policy allows only neighbours within a
//! radius; after convergence every node's routes must equal an offline
//! Dijkstra over the true graph. Then one link is cut and the routes must
//! converge again; at-least-once probes must all arrive across the cut.
//!
//! Every failure names its seed. `FEDMESH_SIM_SEEDS=N` runs seeds `0..N`;
//! `FEDMESH_SIM_SEEDS=3,17` replays exactly those.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fedmesh::proto::core::{Command, Delivery, Input};
use fedmesh::proto::identity::ClusterId;
use fedmesh::proto::membership::MembershipConfig;
use fedmesh::proto::time::Millis;
use fedmesh::proto::topology::{LinkGraph, LinkPolicy, shortest_paths};
use fedmesh::sim::{Latency, NodeSpec, Sim, SimConfig, node_addr};
use fedmesh::testkit::TestNet;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[path = "support/seeds.rs"]
mod seeds;
use seeds::{for_seeds, seeds};

const N: usize = 100;
const STEP: Duration = Duration::from_millis(250);

/// A random geometric graph: positions in the unit square, an edge between
/// nodes closer than the radius (grown until the graph is connected), and
/// one-way latencies proportional to distance.
struct Geometric {
    one_way_ms: Vec<Vec<u64>>,
    neighbours: Vec<BTreeSet<usize>>,
}

impl Geometric {
    fn new(seed: u64, n: usize) -> Geometric {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6e0_6e0);
        let pos: Vec<(f64, f64)> = (0..n).map(|_| (rng.r#gen(), rng.r#gen())).collect();
        let dist = |a: usize, b: usize| {
            let (dx, dy) = (pos[a].0 - pos[b].0, pos[a].1 - pos[b].1);
            (dx * dx + dy * dy).sqrt()
        };
        let one_way_ms: Vec<Vec<u64>> = (0..n)
            .map(|a| (0..n).map(|b| 1 + (dist(a, b) * 200.0) as u64).collect())
            .collect();
        let mut radius = 0.16;
        loop {
            let neighbours: Vec<BTreeSet<usize>> = (0..n)
                .map(|a| (0..n).filter(|&b| b != a && dist(a, b) < radius).collect())
                .collect();
            let g = Geometric {
                one_way_ms: one_way_ms.clone(),
                neighbours,
            };
            if g.connected() {
                return g;
            }
            radius += 0.01;
        }
    }

    fn connected(&self) -> bool {
        let mut seen = BTreeSet::from([0]);
        let mut stack = vec![0];
        while let Some(a) = stack.pop() {
            for &b in &self.neighbours[a] {
                if seen.insert(b) {
                    stack.push(b);
                }
            }
        }
        seen.len() == self.neighbours.len()
    }

    /// The link cost every node should compute: the RTT in microseconds.
    fn cost(&self, a: usize, b: usize) -> u64 {
        2 * self.one_way_ms[a][b] * 1000
    }

    fn max_degree(&self) -> usize {
        self.neighbours.iter().map(BTreeSet::len).max().unwrap_or(1)
    }

    fn edges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.neighbours.len())
            .flat_map(move |a| self.neighbours[a].iter().map(move |&b| (a, b)))
            .filter(|(a, b)| a < b)
    }
}

/// Plain O(n²) Dijkstra over the true graph: the cost from `src` to every node.
fn true_costs(g: &Geometric, src: usize) -> Vec<u64> {
    let n = g.neighbours.len();
    let mut d = vec![u64::MAX; n];
    let mut done = vec![false; n];
    d[src] = 0;
    for _ in 0..n {
        let Some(u) = (0..n)
            .filter(|&i| !done[i] && d[i] < u64::MAX)
            .min_by_key(|&i| d[i])
        else {
            break;
        };
        done[u] = true;
        for &v in &g.neighbours[u] {
            d[v] = d[v].min(d[u] + g.cost(u, v));
        }
    }
    d
}

fn build(seed: u64, g: &Geometric) -> Sim {
    let net = TestNet::new(seed, &vec![1; N]);
    let config = SimConfig {
        latency: Latency::Matrix(g.one_way_ms.clone()),
        ..SimConfig::with_seed(seed)
    };
    let mut sim = Sim::new(config);
    let degree = g.max_degree().max(3);
    for i in 0..N {
        let allowed: Vec<ClusterId> = g.neighbours[i]
            .iter()
            .map(|&j| net.identities[j].id())
            .collect();
        let membership = MembershipConfig {
            degree,
            max_degree: degree,
            link_policy: LinkPolicy::only(allowed),
            ..MembershipConfig::default()
        };
        sim.add_node(NodeSpec {
            identity_seed: net.seed_of(i),
            roster: net.roster.clone(),
            config: membership,
            seeds: g.neighbours[i].iter().map(|&j| node_addr(j)).collect(),
        });
    }
    sim
}

/// Every mismatch between the nodes' routes and the true graph (at most a few).
fn route_errors(sim: &Sim, g: &Geometric, limit: usize) -> Vec<String> {
    let mut truth = LinkGraph::new();
    for (a, b) in g.edges() {
        truth.insert(sim.id(a), sim.id(b), g.cost(a, b));
    }
    let all: Vec<Vec<u64>> = (0..N).map(|s| true_costs(g, s)).collect();
    let mut errors = Vec::new();
    for src in 0..N {
        let Some(core) = sim.core(src) else { continue };
        let routes = core.route_table();
        let costs = &all[src];
        for dst in (0..N).filter(|&d| d != src) {
            let Some(r) = routes.get(&sim.id(dst)) else {
                errors.push(format!("{src} has no route to {dst}"));
                continue;
            };
            let nh = sim.index_of(&r.next_hop).unwrap_or(usize::MAX);
            let on_a_shortest_path =
                g.neighbours[src].contains(&nh) && g.cost(src, nh) + all[nh][dst] == costs[dst];
            if r.cost_micros != costs[dst] || !on_a_shortest_path {
                errors.push(format!(
                    "{src}->{dst}: next hop {nh} cost {} (true cost {})",
                    r.cost_micros, costs[dst]
                ));
            }
        }
        // With ties broken the same way, the routes are exactly those of
        // Dijkstra over the true graph.
        if errors.is_empty() && *routes != shortest_paths(&truth, sim.id(src)) {
            errors.push(format!(
                "{src}: tie-breaking differs from the offline table"
            ));
        }
        if errors.len() >= limit {
            break;
        }
    }
    errors
}

fn converge(sim: &mut Sim, g: &Geometric, timeout: Duration) -> Result<Millis, String> {
    // Checking every node's routes is the costly part: only once all agree
    // on the membership.
    sim.run_until_true(timeout, STEP, |s| route_errors(s, g, 1).is_empty())
        .ok_or_else(|| {
            format!(
                "{} routes did not converge: {:?}",
                sim.context(),
                route_errors(sim, g, 5)
            )
        })
}

#[test]
fn routes_on_a_random_geometric_graph_equal_offline_dijkstra() {
    for_seeds(seeds(3), |seed| {
        let g = Geometric::new(seed, N);
        let mut sim = build(seed, &g);
        sim.start_all().map_err(|e| format!("seed {seed}: {e}"))?;
        let t = converge(&mut sim, &g, Duration::from_secs(120))?;
        eprintln!(
            "seed {seed}: {} links, max degree {}, routes converged at {t}",
            g.edges().count(),
            g.max_degree()
        );
        Ok(())
    });
}

#[test]
fn a_cut_link_reroutes_and_no_probe_is_lost() {
    for_seeds(seeds(2), |seed| {
        let mut g = Geometric::new(seed, N);
        let mut sim = build(seed, &g);
        sim.start_all().map_err(|e| format!("seed {seed}: {e}"))?;
        converge(&mut sim, &g, Duration::from_secs(120))?;

        // The longest route from node 0, and the first link on it whose
        // removal keeps the graph connected.
        let src = 0;
        let routes = sim
            .core(src)
            .map(|c| c.route_table().clone())
            .unwrap_or_default();
        let (dst, route) = routes
            .iter()
            .max_by_key(|(_, r)| (r.path.len(), r.cost_micros))
            .ok_or("no route at all")?;
        let dst = sim.index_of(dst).ok_or("unknown dst")?;
        let path: Vec<usize> = route
            .path
            .iter()
            .filter_map(|id| sim.index_of(id))
            .collect();
        let (a, b) = path
            .windows(2)
            .map(|w| (w[0], w[1]))
            .find(|&(a, b)| {
                let mut h = Geometric {
                    one_way_ms: g.one_way_ms.clone(),
                    neighbours: g.neighbours.clone(),
                };
                h.neighbours[a].remove(&b);
                h.neighbours[b].remove(&a);
                h.connected()
            })
            .ok_or_else(|| format!("seed {seed}: every link of the path is a bridge"))?;

        // A steady probe stream from src to dst, at least once.
        let mut sent = 0u64;
        let mut send = |sim: &mut Sim, n: u64| {
            for _ in 0..n {
                let dst_id = sim.id(dst);
                sim.inject(
                    src,
                    Input::Command(Command::SendProbe {
                        dst: dst_id,
                        id: sent,
                        body: sent.to_be_bytes().to_vec(),
                    }),
                );
                sent += 1;
            }
        };
        for _ in 0..8 {
            send(&mut sim, 5);
            sim.run_for(Duration::from_millis(100));
        }
        let cut_at = sim.now();
        sim.cut_link(a, b);
        g.neighbours[a].remove(&b);
        g.neighbours[b].remove(&a);
        let detected = cut_at + sim.config().idle_timeout;
        let mut converged = None;
        let deadline = cut_at + Duration::from_secs(60);
        while sim.now() < deadline {
            send(&mut sim, 5);
            sim.run_for(Duration::from_millis(100));
            if converged.is_none() && sim.now() > detected && route_errors(&sim, &g, 1).is_empty() {
                converged = Some(sim.now());
                break;
            }
        }
        let converged = converged.ok_or_else(|| {
            format!(
                "{} cut {a}-{b}: routes did not converge: {:?}",
                sim.context(),
                route_errors(&sim, &g, 5)
            )
        })?;
        // Let every retry finish.
        sim.run_until_true(Duration::from_secs(30), STEP, |s| {
            s.core(src).is_some_and(|c| c.pending_probes() == 0)
        })
        .ok_or_else(|| format!("{} probes still pending", sim.context()))?;
        let received: BTreeSet<u64> = sim
            .deliveries()
            .iter()
            .filter_map(|(_, node, d)| match d {
                Delivery::Probe { id, .. } if *node == dst => Some(*id),
                _ => None,
            })
            .collect();
        let acked: BTreeMap<u64, u32> = sim
            .deliveries()
            .iter()
            .filter_map(|(_, node, d)| match d {
                Delivery::ProbeAcked { id, attempts, .. } if *node == src => Some((*id, *attempts)),
                _ => None,
            })
            .collect();
        let lost: Vec<u64> = (0..sent).filter(|i| !received.contains(i)).collect();
        if !lost.is_empty() || acked.len() as u64 != sent {
            return Err(format!(
                "{} cut {a}-{b}: {} of {sent} probes never arrived ({lost:?}), {} acked",
                sim.context(),
                lost.len(),
                acked.len()
            ));
        }
        let retried = acked.values().filter(|&&n| n > 1).count();
        eprintln!(
            "seed {seed}: cut {a}-{b} on the {src}->{dst} path ({} hops); detected after {:?}, \
             routes converged {} ms after detection; {sent} probes all delivered, {retried} needed a retry",
            path.len() - 1,
            sim.config().idle_timeout,
            converged.millis_since(detected),
        );
        Ok(())
    });
}
