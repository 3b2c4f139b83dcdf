//! The link graph: which clusters are linked, and what each link costs.
//!
//! Built from the member table. A remote edge `a–b` is usable when both
//! `a` and `b` are alive or suspect and **both** records list the other:
//! a link one side no longer reports is either going away or not yet
//! confirmed, and routing over it would send traffic into a hole. This
//! node's own edges come from its live connections instead (first-hand
//! knowledge, fresher than its last signed record).
//!
//! Edge cost, in microseconds: the **larger** of the two sides' RTT reports
//! (they are sampled at different times; the larger one is the
//! conservative choice and makes the cost symmetric, so every node computes
//! the same cost for the same edge), at least 1, plus
//! [`SUSPECT_PENALTY_MICROS`] for each suspect end. Own edges use the RTT
//! measured on the connection, also maxed with the peer's report when it
//! has one.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::proto::identity::ClusterId;
use crate::proto::membership::failure::MemberState;
use crate::proto::membership::table::MemberTable;

/// Added to an edge's cost for each suspect end (1 s): a suspect is still
/// used when it is the only way, never when a healthy detour exists that is
/// less than a second slower.
pub const SUSPECT_PENALTY_MICROS: u64 = 1_000_000;

/// An undirected weighted graph of clusters, in id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkGraph {
    adjacency: BTreeMap<ClusterId, BTreeMap<ClusterId, u64>>,
}

/// RTT as whole microseconds, saturating, at least 1.
pub fn micros(rtt: Duration) -> u64 {
    u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn usable(state: MemberState) -> bool {
    matches!(state, MemberState::Alive | MemberState::Suspect)
}

impl LinkGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// The graph as `table` and this node's live links (`own_links`, with
    /// their measured RTT) describe it.
    pub fn from_table(table: &MemberTable, own_links: &[(ClusterId, Duration)]) -> Self {
        let local = table.local();
        let mut g = LinkGraph::new();
        let state = |id: &ClusterId| table.get(id).map(|e| e.state());
        let report = |from: &ClusterId, to: &ClusterId| -> Option<u64> {
            let links = &table.get(from)?.record().record.links;
            links
                .binary_search_by(|l| l.peer.cmp(to))
                .ok()
                .map(|i| u64::from(links[i].rtt_micros).max(1))
        };
        let penalty = |id: &ClusterId| match state(id) {
            Some(MemberState::Suspect) => SUSPECT_PENALTY_MICROS,
            _ => 0,
        };
        for (peer, rtt) in own_links {
            if *peer == local || !state(peer).is_some_and(usable) {
                continue;
            }
            let theirs = report(peer, &local).unwrap_or(0);
            let cost = micros(*rtt).max(theirs).saturating_add(penalty(peer));
            g.insert(local, *peer, cost);
        }
        for (a, e) in table.iter() {
            if *a == local || !usable(e.state()) {
                continue;
            }
            for l in &e.record().record.links {
                let b = l.peer;
                // Each undirected edge once, from its smaller end; our own
                // edges came from the live links above.
                if b <= *a || b == local || !state(&b).is_some_and(usable) {
                    continue;
                }
                let Some(back) = report(&b, a) else {
                    continue;
                };
                let cost = u64::from(l.rtt_micros)
                    .max(back)
                    .max(1)
                    .saturating_add(penalty(a))
                    .saturating_add(penalty(&b));
                g.insert(*a, b, cost);
            }
        }
        g
    }

    /// Adds (or replaces) the undirected edge `a–b`.
    pub fn insert(&mut self, a: ClusterId, b: ClusterId, cost: u64) {
        if a == b {
            return;
        }
        self.adjacency.entry(a).or_default().insert(b, cost);
        self.adjacency.entry(b).or_default().insert(a, cost);
    }

    /// Removes the edge `a–b` if present.
    pub fn remove(&mut self, a: &ClusterId, b: &ClusterId) {
        for (x, y) in [(a, b), (b, a)] {
            if let Some(n) = self.adjacency.get_mut(x) {
                n.remove(y);
                if n.is_empty() {
                    self.adjacency.remove(x);
                }
            }
        }
    }

    /// The neighbours of `id` with each edge's cost, in id order.
    pub fn neighbours(&self, id: &ClusterId) -> impl Iterator<Item = (&ClusterId, u64)> {
        self.adjacency
            .get(id)
            .into_iter()
            .flat_map(|n| n.iter().map(|(p, c)| (p, *c)))
    }

    /// The cost of the edge `a–b`.
    pub fn cost(&self, a: &ClusterId, b: &ClusterId) -> Option<u64> {
        self.adjacency.get(a)?.get(b).copied()
    }

    /// Number of undirected edges.
    pub fn edge_count(&self) -> usize {
        self.adjacency.values().map(BTreeMap::len).sum::<usize>() / 2
    }

    /// Every undirected edge once, as `(a, b, cost)` with `a < b`, in id
    /// order.
    pub fn edges(&self) -> impl Iterator<Item = (ClusterId, ClusterId, u64)> + '_ {
        self.adjacency.iter().flat_map(|(a, n)| {
            n.iter()
                .filter(move |(b, _)| *b > a)
                .map(move |(b, c)| (*a, *b, *c))
        })
    }

    /// Every node with at least one edge, in id order.
    pub fn nodes(&self) -> impl Iterator<Item = &ClusterId> {
        self.adjacency.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::bytes32::NetworkId;
    use crate::proto::identity::Identity;
    use crate::proto::membership::record::{LinkInfo, NodeRecord, SignedRecord};
    use crate::proto::time::Millis;

    fn signed(who: &Identity, links: &[(ClusterId, u32)]) -> SignedRecord {
        signed_at(who, 1, links)
    }

    fn signed_at(who: &Identity, revision: u64, links: &[(ClusterId, u32)]) -> SignedRecord {
        let mut links: Vec<LinkInfo> = links
            .iter()
            .map(|(peer, rtt_micros)| LinkInfo {
                peer: *peer,
                rtt_micros: *rtt_micros,
            })
            .collect();
        links.sort_by_key(|l| l.peer);
        let record = NodeRecord {
            id: who.id(),
            incarnation: 1,
            revision,
            roster_epoch: 0,
            left: false,
            addrs: vec![],
            links,
            queues: vec![],
            subscriptions: Vec::new(),
        };
        SignedRecord::sign(record, who, &NetworkId([1; 32])).unwrap()
    }

    #[test]
    fn edges_need_both_reports_and_cost_the_larger_rtt() {
        let ids: Vec<Identity> = (1..=4).map(|i| Identity::from_seed([i; 32])).collect();
        let [me, b, c, d] = [ids[0].id(), ids[1].id(), ids[2].id(), ids[3].id()];
        let mut t = MemberTable::new(signed(&ids[0], &[]), Millis(0), 10);
        t.apply(signed(&ids[1], &[(c, 300), (me, 90)]), Millis(0));
        t.apply(signed(&ids[2], &[(b, 500), (d, 100)]), Millis(0));
        // d does not (yet) report c: the c–d edge is not usable.
        t.apply(signed(&ids[3], &[]), Millis(0));
        let g = LinkGraph::from_table(&t, &[(b, Duration::from_micros(80))]);
        assert_eq!(g.cost(&b, &c), Some(500));
        assert_eq!(g.cost(&c, &b), Some(500));
        assert_eq!(g.cost(&c, &d), None);
        // Own edge: our measurement, maxed with the peer's report.
        assert_eq!(g.cost(&me, &b), Some(90));
        assert_eq!(g.edge_count(), 2);
        let mut expected = vec![(b.min(c), b.max(c), 500), (me.min(b), me.max(b), 90)];
        expected.sort();
        assert_eq!(g.edges().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn suspects_cost_a_penalty_and_the_dead_no_edge() {
        use crate::proto::membership::config::MembershipConfig;
        use crate::proto::membership::heartbeat::SignedHeartbeat;
        let cfg = MembershipConfig::default();
        let ids: Vec<Identity> = (1..=3).map(|i| Identity::from_seed([i; 32])).collect();
        let [me, b, c] = [ids[0].id(), ids[1].id(), ids[2].id()];
        let mut t = MemberTable::new(signed(&ids[0], &[]), Millis(0), 10);
        t.apply(signed_at(&ids[1], 1, &[(c, 100), (me, 100)]), Millis(0));
        t.apply(signed_at(&ids[2], 1, &[(b, 100)]), Millis(0));
        let own = [(b, Duration::from_micros(100))];
        let g = LinkGraph::from_table(&t, &own);
        assert_eq!(g.cost(&b, &c), Some(100));
        // b keeps beating, c falls silent: c becomes suspect, then dead.
        let (mut events, mut died) = (vec![], vec![]);
        let mut hb = 1;
        let mut at = |t: &mut MemberTable, ms: u64| {
            while hb * 1000 <= ms {
                hb += 1;
                let beat = SignedHeartbeat::sign(&ids[1], &NetworkId([1; 32]), 1, hb);
                t.apply_beat(beat, Millis(hb * 1000));
            }
            t.check(Millis(ms), &cfg, &mut events, &mut died);
        };
        let mut ms = 0;
        while t.get(&c).map(|e| e.state()) != Some(MemberState::Suspect) {
            ms += 100;
            at(&mut t, ms);
            assert!(ms < 10_000, "c never became suspect");
        }
        let g = LinkGraph::from_table(&t, &own);
        assert_eq!(g.cost(&b, &c), Some(100 + SUSPECT_PENALTY_MICROS));
        assert_eq!(g.cost(&me, &b), Some(100));
        while t.get(&c).map(|e| e.state()) != Some(MemberState::Dead) {
            ms += 100;
            at(&mut t, ms);
            assert!(ms < 20_000, "c never died");
        }
        assert_eq!(LinkGraph::from_table(&t, &own).cost(&b, &c), None);
    }
}
