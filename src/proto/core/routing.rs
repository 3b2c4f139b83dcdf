//! Routed messages: forwarding hop by hop, delivering here, and the
//! at-least-once test probes (see [`crate::proto::topology`]).

use std::time::Duration;

use crate::proto::identity::ClusterId;
use crate::proto::membership::failure::MemberState;
use crate::proto::time::Millis;
use crate::proto::topology::payload::{MAX_PROBE_BODY, PayloadError};
use crate::proto::topology::routed::{Decision, Routed, decide};
use crate::proto::topology::state::RoutingCounters;
use crate::proto::topology::{RouteTable, RoutedPayload};
use crate::proto::wire::Frame;

use super::*;

/// Least time between two route refreshes triggered by gossiped records.
pub const RECORD_REFRESH_GAP: Duration = Duration::from_millis(50);

/// Unacked probes older than this are given up ([`Delivery::ProbeExpired`]).
pub const PROBE_GIVE_UP: Duration = Duration::from_secs(60);

/// A routed message, or the outcome of one, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A probe addressed to this node arrived (possibly again: probes are
    /// at-least-once).
    Probe {
        /// The origin (as claimed by the envelope).
        from: ClusterId,
        /// The probe's id.
        id: u64,
        /// Its body.
        body: Vec<u8>,
        /// The path it took, origin first, this node last.
        path: Vec<ClusterId>,
    },
    /// A probe this node sent was acknowledged by its destination.
    ProbeAcked {
        /// The destination.
        dst: ClusterId,
        /// The probe's id.
        id: u64,
        /// How many times it was sent.
        attempts: u32,
        /// When it was first sent.
        sent_at: Millis,
        /// The path the acknowledged copy took, this node first.
        path: Vec<ClusterId>,
    },
    /// A probe was not acknowledged within [`PROBE_GIVE_UP`].
    ProbeExpired {
        /// The destination.
        dst: ClusterId,
        /// The probe's id.
        id: u64,
        /// How many times it was sent.
        attempts: u32,
    },
    /// A published message for this node's subscribers (each message once
    /// for acknowledged guarantees).
    Message(crate::proto::delivery::Envelope),
    /// [`Command::Publish`] was accepted: the message's key and the
    /// clusters it is sent to (those whose subscriptions match its topic).
    Published {
        /// The message's key.
        key: crate::proto::delivery::MessageKey,
        /// Its destinations.
        dests: Vec<ClusterId>,
    },
    /// [`Command::Publish`] was refused.
    PublishRefused {
        /// The topic asked for.
        topic: String,
        /// Why.
        reason: String,
    },
    /// [`Command::SendProbe`] was refused (duplicate id, too many pending).
    ProbeRefused {
        /// The probe's id.
        id: u64,
        /// Why.
        reason: String,
    },
    /// A GLOBAL_QUORUM or BYZANTINE_QUORUM round this node originated ended.
    QuorumDecided {
        /// The message's key (as in [`Delivery::Published`]).
        key: crate::proto::delivery::MessageKey,
        /// The round.
        round: crate::proto::vote::Round,
        /// How it ended.
        outcome: super::QuorumOutcome,
    },
}

/// The route to one cluster, for status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStatus {
    /// The destination.
    pub dst: ClusterId,
    /// The neighbour messages are handed to.
    pub next_hop: ClusterId,
    /// Total RTT cost in microseconds (suspect penalties included).
    pub cost_micros: u64,
    /// The whole path, this node first.
    pub path: Vec<ClusterId>,
}

impl Core {
    /// The current route to every reachable cluster, in id order.
    pub fn routes(&self) -> Vec<RouteStatus> {
        self.routing
            .routes()
            .iter()
            .map(|(dst, r)| RouteStatus {
                dst: *dst,
                next_hop: r.next_hop,
                cost_micros: r.cost_micros,
                path: r.path.clone(),
            })
            .collect()
    }

    /// Every edge of the link graph routes are computed over, as `(a, b,
    /// cost in microseconds)` with `a < b`, in id order.
    pub fn graph_edges(&self) -> Vec<(ClusterId, ClusterId, u64)> {
        self.routing.graph().edges().collect()
    }

    /// The current route table (read-only).
    pub fn route_table(&self) -> &RouteTable {
        self.routing.routes()
    }

    /// Counters of routed traffic.
    pub fn routing_counters(&self) -> &RoutingCounters {
        &self.routing.counters
    }

    /// Probes awaiting an ack.
    pub fn pending_probes(&self) -> usize {
        self.probes.len()
    }

    /// Recomputes the routes if the graph changed. True if they changed.
    pub(super) fn refresh_routes(&mut self) -> bool {
        let own: Vec<(ClusterId, Duration)> = self
            .peers
            .links()
            .filter(|(_, l)| l.is_live())
            .map(|(id, l)| (*id, l.rtt))
            .collect();
        self.routing.refresh(&self.table, &own)
    }

    /// After every input: a change of our own links reroutes at once. When
    /// a link failed (rather than being closed on purpose), our record,
    /// which tells the others, is re-signed at the next gossip round instead
    /// of the next heartbeat: until they learn, they route into the hole.
    /// Gossiped records whose links changed refresh the graph too, at most
    /// every [`RECORD_REFRESH_GAP`], so a burst of gossip costs one rebuild;
    /// heartbeat-only records never do. Liveness changes (suspect, dead)
    /// are picked up by the refresh of every gossip round.
    pub(super) fn after_input(&mut self, now: Millis) {
        if self.routing.take_link_failed() && self.started && !self.own.has_left() {
            self.next_heartbeat = self.next_heartbeat.min(now);
        }
        let records_due = self.routing.records_changed()
            && now >= self.routing.last_refresh.saturating_add(RECORD_REFRESH_GAP);
        if self.routing.take_links_changed() || records_due {
            self.refresh_routes_at(now);
        }
    }

    fn refresh_routes_at(&mut self, now: Millis) {
        self.routing.last_refresh = now;
        self.refresh_routes();
    }

    /// Once per gossip round: refresh the routes, resend unacked probes.
    pub(super) fn routing_tick(&mut self, now: Millis, out: &mut Vec<Output>) {
        if self.own.has_left() {
            return;
        }
        self.refresh_routes_at(now);
        let retry = self.config.gossip_interval.saturating_mul(2);
        let due = self.probes.due(now, retry, PROBE_GIVE_UP);
        for (id, dst, body) in due.resend {
            bump(&mut self.routing.counters.probe_retries);
            self.originate(dst, RoutedPayload::Probe { id, body }, out);
        }
        for (id, p) in due.expired {
            bump(&mut self.routing.counters.probes_expired);
            out.push(Output::Deliver(Delivery::ProbeExpired {
                dst: p.dst,
                id,
                attempts: p.attempts,
            }));
        }
    }

    pub(super) fn send_probe(
        &mut self,
        now: Millis,
        dst: ClusterId,
        id: u64,
        body: Vec<u8>,
        out: &mut Vec<Output>,
    ) {
        if body.len() > MAX_PROBE_BODY {
            out.push(Output::Deliver(Delivery::ProbeRefused {
                id,
                reason: PayloadError::BodyTooLong(body.len()).to_string(),
            }));
            return;
        }
        if let Err(e) = self.probes.add(id, dst, body.clone(), now) {
            out.push(Output::Deliver(Delivery::ProbeRefused {
                id,
                reason: e.to_string(),
            }));
            return;
        }
        // Without a route yet, the drop is counted and the retry path sends
        // it again once one appears.
        self.originate(dst, RoutedPayload::Probe { id, body }, out);
    }

    fn live_member(&self, id: &ClusterId) -> bool {
        self.table
            .get(id)
            .is_some_and(|e| matches!(e.state(), MemberState::Alive | MemberState::Suspect))
    }

    /// Sends a new routed message from this node.
    pub(super) fn originate(
        &mut self,
        dst: ClusterId,
        payload: RoutedPayload,
        out: &mut Vec<Output>,
    ) {
        let me = self.own.id();
        let msg = Routed::new(me, dst, payload);
        bump(&mut self.routing.counters.originated);
        let decision = decide(&me, None, &msg, self.routing.routes(), |c| {
            self.live_member(c)
        });
        match decision {
            Decision::Deliver => self.deliver_routed(msg, out),
            Decision::Forward { next_hop } => self.send(next_hop, Frame::Routed(msg), out),
            Decision::Drop(reason) => self.routing.dropped(reason),
        }
    }

    /// A routed frame from `from`.
    pub(super) fn on_routed(
        &mut self,
        _now: Millis,
        from: ClusterId,
        mut msg: Routed,
        out: &mut Vec<Output>,
    ) {
        let me = self.own.id();
        let decision = decide(&me, Some(&from), &msg, self.routing.routes(), |c| {
            self.live_member(c)
        });
        match decision {
            Decision::Deliver => self.deliver_routed(msg, out),
            Decision::Forward { next_hop } => {
                bump(&mut self.routing.counters.forwarded);
                msg.path.push(me);
                self.send(next_hop, Frame::Routed(msg), out);
            }
            Decision::Drop(reason) => self.routing.dropped(reason),
        }
    }

    fn deliver_routed(&mut self, msg: Routed, out: &mut Vec<Output>) {
        bump(&mut self.routing.counters.delivered);
        let me = self.own.id();
        let Some(origin) = msg.origin() else {
            return;
        };
        let mut path = msg.path;
        if path.last() != Some(&me) {
            path.push(me);
        }
        match msg.payload {
            RoutedPayload::Probe { id, body } => {
                out.push(Output::Deliver(Delivery::Probe {
                    from: origin,
                    id,
                    body,
                    path: path.clone(),
                }));
                self.originate(origin, RoutedPayload::ProbeAck { id, path }, out);
            }
            RoutedPayload::Data { seq, envelope } => self.on_data(origin, seq, envelope, out),
            RoutedPayload::DataBatch { items } => {
                for item in items {
                    self.on_data(origin, item.seq, item.envelope, out);
                }
            }
            p @ (RoutedPayload::QuorumProposal { .. }
            | RoutedPayload::QuorumVotes { .. }
            | RoutedPayload::QuorumBatch { .. }
            | RoutedPayload::QuorumCertificate { .. }
            | RoutedPayload::QuorumEvidence { .. }) => self.on_quorum(origin, p, out),
            RoutedPayload::DataAck { id } => {
                self.on_data_ack(origin, id, out);
                self.data_released(out);
            }
            RoutedPayload::DataAcks { ids } => {
                for id in ids {
                    self.on_data_ack(origin, id, out);
                }
                self.data_released(out);
            }
            RoutedPayload::ProbeAck { id, path } => {
                // Only the probe's destination may acknowledge it.
                let ours = self.probes.dst_of(id) == Some(origin);
                if let Some(p) = ours.then(|| self.probes.ack(id)).flatten() {
                    out.push(Output::Deliver(Delivery::ProbeAcked {
                        dst: p.dst,
                        id,
                        attempts: p.attempts,
                        sent_at: p.first_sent,
                        path,
                    }));
                }
            }
        }
    }
}
