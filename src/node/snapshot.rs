//! Turns the core's view of the federation into the admin API's status
//! snapshot and the membership gauges.

use std::net::SocketAddr;

use crate::http::{
    CausalStatus, ClusterQueues, DeliveryStats, GraphEdge, LinkStatus, MemberState, MemberStatus,
    NodeStatus, QuorumStats, RosterMember, RosterStatus, RouteStatus, RoutingStats, StatusSnapshot,
};
use crate::proto::core::Core;
use crate::proto::membership::failure::MemberState as CoreState;
use crate::proto::time::Millis;
use crate::proto::topology::DropReason;

fn state(s: CoreState) -> MemberState {
    match s {
        CoreState::Alive => MemberState::Alive,
        CoreState::Suspect => MemberState::Suspect,
        CoreState::Dead => MemberState::Dead,
        CoreState::Left => MemberState::Left,
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Every cluster's advertised queues and subscriptions.
fn queues(core: &Core) -> Vec<ClusterQueues> {
    let registry = core.queue_registry();
    let roster = core.roster();
    registry
        .clusters()
        .map(|cluster| ClusterQueues {
            cluster,
            name: roster.member(&cluster).map(|m| m.name.clone()),
            hosts: registry
                .hosted_by(&cluster)
                .map(|q| q.as_str().to_owned())
                .collect(),
            subscriptions: registry
                .subscriptions_of(&cluster)
                .map(|p| p.as_str().to_owned())
                .collect(),
        })
        .collect()
}

/// The snapshot of `core` at `now`.
pub fn snapshot(core: &Core, now: Millis, listen: SocketAddr, uptime_s: u64) -> StatusSnapshot {
    let roster = core.roster();
    let members = core
        .members(now)
        .into_iter()
        .map(|m| MemberStatus {
            id: m.id,
            weight: roster.weight(&m.id).unwrap_or(0),
            name: m.name,
            state: state(m.state),
            addr: m.addrs.first().copied(),
            incarnation: m.incarnation,
            rtt_ms: m.rtt.map(ms),
        })
        .collect();
    let links = core
        .links()
        .into_iter()
        .map(|l| LinkStatus {
            peer: l.peer,
            name: l.name,
            addr: l.addr,
            rtt_ms: ms(l.rtt),
            inbound: l.inbound,
        })
        .collect();
    StatusSnapshot {
        node: NodeStatus {
            id: core.id(),
            name: roster.member(&core.id()).map(|m| m.name.clone()),
            network: roster.network_name().to_owned(),
            network_id: roster.network_id(),
            listen,
            incarnation: core.incarnation(),
            uptime_s,
        },
        members,
        links,
        roster: RosterStatus {
            epoch: roster.epoch(),
            total_weight: roster.total_weight(),
            members: roster
                .members()
                .iter()
                .map(|m| RosterMember {
                    id: m.id,
                    name: m.name.clone(),
                    weight: m.weight,
                })
                .collect(),
            pending: core.roster_pending(),
            own_proposal: None,
        },
        routes: routes(core),
        routing: routing_stats(core),
        graph: core
            .graph_edges()
            .into_iter()
            .map(|(a, b, cost_us)| GraphEdge { a, b, cost_us })
            .collect(),
        // Kept by the node, not the core: filled in by the caller.
        recent: Vec::new(),
        queues: queues(core),
        delivery: delivery_stats(core),
    }
}

fn delivery_stats(core: &Core) -> DeliveryStats {
    let d = core.data_counters();
    let o = core.outbox_counters();
    let c = core.causal_stats();
    let q = core.quorum_counters();
    DeliveryStats {
        published: d.published,
        delivered: d.delivered,
        delivered_remote: d.delivered_remote,
        duplicates: d.duplicates,
        refused: d.refused,
        outbox_depth: core.outbox_depth() as u64,
        retries: o.retries,
        outbox_full: o.refused_full,
        causal: CausalStatus {
            stamped: c.stamped,
            delivered: c.delivered,
            held_back: c.held_back,
            held: c.held,
            overflow: c.overflow,
            invalid: c.invalid,
        },
        quorum: QuorumStats {
            started: q.started,
            succeeded: q.accepted,
            failed: q.rejected.saturating_add(q.timed_out),
            byzantine_faults: q.equivocations.saturating_add(q.flagged_from_evidence),
        },
    }
}

fn routes(core: &Core) -> Vec<RouteStatus> {
    let roster = core.roster();
    let name = |id: &crate::proto::ClusterId| roster.member(id).map(|m| m.name.clone());
    core.routes()
        .into_iter()
        .map(|r| RouteStatus {
            name: name(&r.dst),
            path_names: r
                .path
                .iter()
                .map(|id| name(id).unwrap_or_else(|| "-".to_owned()))
                .collect(),
            dst: r.dst,
            next_hop: r.next_hop,
            cost_us: r.cost_micros,
            path: r.path,
        })
        .collect()
}

fn routing_stats(core: &Core) -> RoutingStats {
    let c = core.routing_counters();
    RoutingStats {
        originated: c.originated,
        forwarded: c.forwarded,
        delivered: c.delivered,
        dropped: DropReason::ALL
            .iter()
            .map(|r| (r.name().to_owned(), c.dropped[r.index()]))
            .collect(),
        recomputations: c.recomputations,
        pending_probes: core.pending_probes() as u64,
    }
}

/// Publishes the membership gauges of `snap`.
pub fn record_gauges(snap: &StatusSnapshot) {
    use crate::http::metrics::{LINK_RTT_SECONDS, LINKS, MEMBERS};
    for s in MemberState::ALL {
        let n = snap.members.iter().filter(|m| m.state == s).count();
        metrics::gauge!(MEMBERS, "state" => s.as_str()).set(n as f64);
    }
    metrics::gauge!(LINKS).set(snap.links.len() as f64);
    use crate::http::metrics::{LABEL_MEMBER, ROSTER_EPOCH, ROSTER_TOTAL_WEIGHT, ROSTER_WEIGHT};
    metrics::gauge!(ROSTER_EPOCH).set(snap.roster.epoch as f64);
    metrics::gauge!(ROSTER_TOTAL_WEIGHT).set(snap.roster.total_weight as f64);
    for m in &snap.roster.members {
        metrics::gauge!(ROSTER_WEIGHT, LABEL_MEMBER => m.name.clone()).set(m.weight as f64);
    }
    for l in &snap.links {
        metrics::gauge!(LINK_RTT_SECONDS, "peer" => l.peer.short()).set(l.rtt_ms / 1e3);
    }
    record_route_gauges(snap);
    crate::http::metrics::record_delivery(&snap.delivery);
}

/// Publishes the routing gauges and counters of `snap`.
fn record_route_gauges(snap: &StatusSnapshot) {
    use crate::http::metrics::{
        ROUTE_COST_SECONDS, ROUTE_HOPS, ROUTED_DELIVERED_TOTAL, ROUTED_DROPPED_TOTAL,
        ROUTED_FORWARDED_TOTAL, ROUTES,
    };
    metrics::gauge!(ROUTES).set(snap.routes.len() as f64);
    for r in &snap.routes {
        let dst = r.dst.short();
        metrics::gauge!(ROUTE_COST_SECONDS, "dst" => dst.clone()).set(r.cost_us as f64 / 1e6);
        metrics::gauge!(ROUTE_HOPS, "dst" => dst).set(r.path.len().saturating_sub(1) as f64);
    }
    let s = &snap.routing;
    metrics::counter!(ROUTED_FORWARDED_TOTAL).absolute(s.forwarded);
    metrics::counter!(ROUTED_DELIVERED_TOTAL).absolute(s.delivered);
    for (reason, n) in &s.dropped {
        metrics::counter!(ROUTED_DROPPED_TOTAL, "reason" => reason.clone()).absolute(*n);
    }
}
