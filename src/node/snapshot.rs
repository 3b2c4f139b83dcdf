//! Turns the core's view of the federation into the admin API's status
//! snapshot and the membership gauges.

use std::net::SocketAddr;

use crate::http::{
    LinkStatus, MemberState, MemberStatus, NodeStatus, RosterMember, RosterStatus, StatusSnapshot,
};
use crate::proto::core::Core;
use crate::proto::membership::failure::MemberState as CoreState;
use crate::proto::time::Millis;

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
}
