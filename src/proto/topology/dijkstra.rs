//! Shortest paths from one cluster to every other, by Dijkstra over the
//! [`LinkGraph`].
//!
//! Paths are compared by `(cost, hops)` and, among equal ones, by the
//! smallest predecessor id at each step. Every predecessor on an optimal
//! path has a strictly smaller `(cost, hops)` than the node it leads to, so
//! it is settled first and the rule sees all candidates: the result depends
//! only on the graph, never on iteration or insertion order. Two nodes
//! holding the same graph therefore pick the same paths.
//!
//! Hop-by-hop forwarding along these routes cannot loop once views agree:
//! each next hop is strictly closer to the destination (costs are at least
//! 1). While views disagree, the hop budget and the path check of
//! [`super::routed::decide`] catch loops.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use super::graph::LinkGraph;
use crate::proto::identity::ClusterId;

/// The best known way to one destination.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Route {
    /// The neighbour to hand the message to.
    pub next_hop: ClusterId,
    /// The path's total cost in microseconds of RTT (penalties included).
    pub cost_micros: u64,
    /// The whole path, this node first and the destination last.
    pub path: Vec<ClusterId>,
}

/// Routes to every reachable cluster, by destination.
pub type RouteTable = BTreeMap<ClusterId, Route>;

/// Dijkstra from `source` over `graph` (see the module docs).
pub fn shortest_paths(graph: &LinkGraph, source: ClusterId) -> RouteTable {
    // id -> (cost, hops, predecessor), and whether it is settled.
    let mut best: BTreeMap<ClusterId, (u64, u32, Option<ClusterId>)> = BTreeMap::new();
    let mut settled: BTreeSet<ClusterId> = BTreeSet::new();
    let mut heap = BinaryHeap::new();
    best.insert(source, (0, 0, None));
    heap.push(Reverse((0u64, 0u32, source)));
    while let Some(Reverse((cost, hops, u))) = heap.pop() {
        if !settled.insert(u) {
            continue;
        }
        for (v, w) in graph.neighbours(&u) {
            if settled.contains(v) {
                continue;
            }
            let cand = (cost.saturating_add(w), hops.saturating_add(1), Some(u));
            let better = match best.get(v) {
                None => true,
                Some(&(c, h, p)) => (cand.0, cand.1, cand.2) < (c, h, p),
            };
            if better {
                best.insert(*v, cand);
                heap.push(Reverse((cand.0, cand.1, *v)));
            }
        }
    }
    let mut routes = RouteTable::new();
    for (dst, &(cost, hops, _)) in &best {
        if *dst == source {
            continue;
        }
        let mut path = Vec::with_capacity(hops as usize + 1);
        let mut at = *dst;
        path.push(at);
        while let Some(&(_, _, Some(prev))) = best.get(&at) {
            path.push(prev);
            at = prev;
        }
        path.reverse();
        let next_hop = path.get(1).copied().unwrap_or(*dst);
        routes.insert(
            *dst,
            Route {
                next_hop,
                cost_micros: cost,
                path,
            },
        );
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ClusterId {
        ClusterId([n; 32])
    }

    #[test]
    fn picks_the_cheapest_path_not_the_shortest() {
        let mut g = LinkGraph::new();
        g.insert(id(1), id(2), 10);
        g.insert(id(2), id(3), 10);
        g.insert(id(1), id(3), 50);
        g.insert(id(3), id(4), 5);
        let r = shortest_paths(&g, id(1));
        assert_eq!(r[&id(3)].path, vec![id(1), id(2), id(3)]);
        assert_eq!(r[&id(3)].cost_micros, 20);
        assert_eq!(r[&id(4)].next_hop, id(2));
        assert_eq!(r[&id(4)].cost_micros, 25);
        assert_eq!(r[&id(2)].path, vec![id(1), id(2)]);
        assert!(!r.contains_key(&id(1)));
        // Unreachable nodes have no route.
        g.insert(id(8), id(9), 1);
        assert!(!shortest_paths(&g, id(1)).contains_key(&id(9)));
    }

    #[test]
    fn ties_prefer_fewer_hops_then_smaller_ids_whatever_the_insertion_order() {
        // 1 -> 4 costs 20 three ways: via 3 (2 hops), via 2 (2 hops), and
        // via 5 -> 6 (3 hops).
        let edges = [
            (1, 3, 10),
            (3, 4, 10),
            (1, 2, 10),
            (2, 4, 10),
            (1, 5, 5),
            (5, 6, 5),
            (6, 4, 10),
        ];
        let mut forward = LinkGraph::new();
        let mut backward = LinkGraph::new();
        for &(a, b, c) in &edges {
            forward.insert(id(a), id(b), c);
        }
        for &(a, b, c) in edges.iter().rev() {
            backward.insert(id(b), id(a), c);
        }
        let f = shortest_paths(&forward, id(1));
        assert_eq!(f, shortest_paths(&backward, id(1)));
        assert_eq!(f[&id(4)].path, vec![id(1), id(2), id(4)]);
    }
}
