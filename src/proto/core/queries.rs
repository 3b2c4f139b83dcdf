//! Read-only views of the core for status pages and tests.

use crate::proto::bytes32::NetworkId;
use crate::proto::identity::ClusterId;
use crate::proto::membership::config::MembershipConfig;
use crate::proto::membership::counters::Counters;
use crate::proto::membership::failure::MemberState;
use crate::proto::membership::record::{SignedRecord, Version};
use crate::proto::membership::status::{LinkStatus, MemberStatus};
use crate::proto::membership::table::MemberTable;
use crate::proto::roster::Roster;
use crate::proto::time::Millis;
use std::sync::Arc;

use super::*;

impl Core {
    /// This node's id.
    pub fn id(&self) -> ClusterId {
        self.own.id()
    }

    /// The federation's id.
    pub fn network_id(&self) -> NetworkId {
        self.network_id
    }

    /// The roster in use.
    pub fn roster(&self) -> &Arc<Roster> {
        &self.roster
    }

    /// The configuration in use.
    pub fn config(&self) -> &MembershipConfig {
        &self.config
    }

    /// The incarnation in use.
    pub fn incarnation(&self) -> u64 {
        self.own.incarnation()
    }

    /// This node's current signed record.
    pub fn own_record(&self) -> &SignedRecord {
        self.own()
    }

    /// True once [`Command::Leave`] was handled.
    pub fn has_left(&self) -> bool {
        self.own.has_left()
    }

    /// Counters of frames, refusals and records.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The member table (read-only), e.g. to build the link graph.
    pub fn table(&self) -> &MemberTable {
        &self.table
    }

    /// The state of `id` (`None` if unknown).
    pub fn member_state(&self, id: &ClusterId) -> Option<MemberState> {
        self.table.get(id).map(|e| e.state())
    }

    /// The version held for `id`.
    pub fn member_version(&self, id: &ClusterId) -> Option<Version> {
        self.table.get(id).map(|e| e.version())
    }

    /// Status of one member at `now` (for phi).
    pub fn member(&self, id: &ClusterId, now: Millis) -> Option<MemberStatus> {
        let e = self.table.get(id)?;
        let r = &e.record().record;
        let local = *id == self.own.id();
        let member = self.roster.member(id);
        Some(MemberStatus {
            id: *id,
            name: member.map(|m| m.name.clone()),
            local,
            observer: member.is_none_or(|m| m.weight == 0),
            state: e.state(),
            since: e.liveness().since(),
            addrs: r.addrs.clone(),
            incarnation: r.incarnation,
            heartbeat: e.beats(),
            roster_epoch: r.roster_epoch,
            rtt: self.peers.link(id).filter(|l| l.is_live()).map(|l| l.rtt),
            links: r.links.len(),
            phi: if local {
                0
            } else {
                e.liveness().phi(now, &self.config)
            },
            queues: r.queues.clone(),
        })
    }

    /// Status of every known member (this node included), in id order.
    pub fn members(&self, now: Millis) -> Vec<MemberStatus> {
        self.table
            .iter()
            .filter_map(|(id, _)| self.member(id, now))
            .collect()
    }

    /// Every connection, in id order.
    pub fn links(&self) -> Vec<LinkStatus> {
        self.peers
            .links()
            .map(|(id, l)| LinkStatus {
                peer: *id,
                name: self.roster.member(id).map(|m| m.name.clone()),
                addr: l.addr,
                rtt: l.rtt,
                inbound: l.inbound,
                state: l.state,
                since: l.since,
                closing: l.closing.is_some(),
            })
            .collect()
    }

    /// Peers with an established, open link, in id order.
    pub fn live_peers(&self) -> Vec<ClusterId> {
        self.peers.live()
    }
}
