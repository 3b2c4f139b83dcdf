//! The route table a node keeps, and when it is recomputed.
//!
//! Rebuilding the [`LinkGraph`] is linear in the number of gossiped links;
//! Dijkstra runs only when the rebuilt graph differs from the last one.
//! The core rebuilds once per gossip round (records change at most that
//! often in effect) and at once when one of its own links comes up or goes
//! down, so a local failure reroutes without waiting for gossip.

use std::time::Duration;

use super::dijkstra::{RouteTable, shortest_paths};
use super::graph::LinkGraph;
use crate::proto::identity::ClusterId;
use crate::proto::membership::table::MemberTable;

/// Counters of routed traffic at this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingCounters {
    /// Routed messages this node originated (retries included).
    pub originated: u64,
    /// Routed messages forwarded to a next hop on behalf of others.
    pub forwarded: u64,
    /// Routed messages delivered here.
    pub delivered: u64,
    /// Routed messages dropped, by [`super::DropReason::index`].
    pub dropped: [u64; super::DropReason::ALL.len()],
    /// Route table recomputations (Dijkstra runs).
    pub recomputations: u64,
    /// Probes retried because no ack came in time.
    pub probe_retries: u64,
    /// Probes abandoned after their deadline.
    pub probes_expired: u64,
}

/// The graph and routes of one node.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    graph: LinkGraph,
    routes: RouteTable,
    links_changed: bool,
    link_failed: bool,
    records_changed: bool,
    /// When the routes were last refreshed.
    pub last_refresh: crate::proto::time::Millis,
    /// Counters of routed traffic.
    pub counters: RoutingCounters,
}

impl Routing {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the graph from `table` and `own_links`; recomputes the
    /// routes if it changed. True if it did.
    pub fn refresh(&mut self, table: &MemberTable, own_links: &[(ClusterId, Duration)]) -> bool {
        self.records_changed = false;
        let graph = LinkGraph::from_table(table, own_links);
        if graph == self.graph && self.counters.recomputations > 0 {
            return false;
        }
        self.routes = shortest_paths(&graph, table.local());
        self.graph = graph;
        self.counters.recomputations = self.counters.recomputations.saturating_add(1);
        true
    }

    /// One of this node's own links came up or went down: refresh now,
    /// not at the next gossip round.
    pub fn mark_links_changed(&mut self) {
        self.links_changed = true;
    }

    /// A gossiped record changed its links, or a member came or went:
    /// refresh soon (see [`crate::proto::core::RECORD_REFRESH_GAP`]).
    pub fn mark_records_changed(&mut self) {
        self.records_changed = true;
    }

    /// True if [`Self::mark_records_changed`] was called since the last refresh.
    pub fn records_changed(&self) -> bool {
        self.records_changed
    }

    /// True once after [`Self::mark_links_changed`].
    pub fn take_links_changed(&mut self) -> bool {
        std::mem::take(&mut self.links_changed)
    }

    /// One of this node's links failed (it did not close it on purpose):
    /// the others must learn soon, or they keep routing into the hole.
    pub fn mark_link_failed(&mut self) {
        self.link_failed = true;
        self.links_changed = true;
    }

    /// True once after [`Self::mark_link_failed`].
    pub fn take_link_failed(&mut self) -> bool {
        std::mem::take(&mut self.link_failed)
    }

    /// The current routes, by destination.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// The graph the routes were computed on.
    pub fn graph(&self) -> &LinkGraph {
        &self.graph
    }

    /// Counts a drop.
    pub fn dropped(&mut self, reason: super::DropReason) {
        let c = &mut self.counters.dropped[reason.index()];
        *c = c.saturating_add(1);
    }
}
