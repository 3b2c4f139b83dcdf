//! Frames from peers: the handshake and membership gossip.

use crate::proto::identity::ClusterId;
use crate::proto::membership::antientropy::{answer_syn, answer_want, choose_peers};
use crate::proto::membership::counters::bump;
use crate::proto::membership::event::Event;
use crate::proto::membership::peers::{LinkState, Refusal, check_hello};
use crate::proto::membership::record::{RecordError, SignedRecord, Verified};
use crate::proto::time::Millis;
use crate::proto::wire::{Frame, PROTOCOL_VERSION};

use super::heartbeats::KeyMiss;
use super::*;

impl Core {
    pub(super) fn on_frame(
        &mut self,
        now: Millis,
        from: ClusterId,
        frame: Frame,
        out: &mut Vec<Output>,
    ) {
        self.counters.frames_in.incr(frame.kind());
        let Some(link) = self.peers.link(&from) else {
            bump(&mut self.counters.frames_from_unknown);
            out.push(Output::Disconnect {
                peer: from,
                reason: "frame on a connection the core does not know".into(),
            });
            return;
        };
        if link.closing.is_some() {
            return;
        }
        let (state, inbound) = (link.state, link.inbound);
        if let Err(e) = frame.check_bounds() {
            bump(&mut self.counters.oversized_frames);
            self.refuse(now, from, Refusal::Oversized(e), out);
            return;
        }
        match frame {
            Frame::Hello {
                protocol_version,
                network_id,
                sender,
                ..
            } => {
                if state != LinkState::AwaitingHello {
                    return self.violation(now, from, "unexpected Hello", out);
                }
                if let Err(r) = check_hello(
                    &self.network_id,
                    &from,
                    protocol_version,
                    &network_id,
                    &sender,
                ) {
                    bump(&mut self.counters.refused_hello);
                    return self.refuse(now, from, r, out);
                }
                let ack = Frame::HelloAck {
                    protocol_version: PROTOCOL_VERSION,
                    network_id: self.network_id,
                    sender: self.own.id(),
                    incarnation: self.own.incarnation(),
                    roster_epoch: self.roster.epoch(),
                };
                self.send(from, ack, out);
                self.established(from, inbound, out);
            }
            Frame::HelloAck {
                protocol_version,
                network_id,
                sender,
                ..
            } => {
                if state != LinkState::AwaitingHelloAck {
                    return self.violation(now, from, "unexpected HelloAck", out);
                }
                if let Err(r) = check_hello(
                    &self.network_id,
                    &from,
                    protocol_version,
                    &network_id,
                    &sender,
                ) {
                    bump(&mut self.counters.refused_hello);
                    return self.refuse(now, from, r, out);
                }
                self.established(from, inbound, out);
            }
            Frame::Goodbye { reason } => {
                bump(&mut self.counters.goodbyes_received);
                self.peers.close(&from, now);
                out.push(Output::Disconnect {
                    peer: from,
                    reason: format!("peer said goodbye: {reason}"),
                });
                out.push(Output::Event(Event::Goodbye { peer: from, reason }));
            }
            _ if state != LinkState::Established => {
                self.violation(now, from, "gossip before the handshake", out)
            }
            Frame::Syn { digest } => {
                if !self.peers.take_syn(&from) {
                    bump(&mut self.counters.syns_rate_limited);
                    return;
                }
                let roster = &self.roster;
                let open = self.config.open;
                let reply = answer_syn(
                    &self.table,
                    &digest,
                    |id| open || roster.member(id).is_some(),
                    self.config.max_gossip_bytes,
                    &mut self.rng,
                );
                if !reply.is_empty() {
                    let frame = Frame::SynAck {
                        records: reply.delta.records,
                        heartbeats: reply.delta.heartbeats,
                        want: reply.want,
                    };
                    self.send(from, frame, out);
                }
            }
            Frame::SynAck {
                records,
                heartbeats,
                want,
            } => {
                self.apply_records(now, from, records, false, out);
                self.apply_beats(now, heartbeats, out);
                if !want.is_empty() {
                    let delta = answer_want(
                        &self.table,
                        &want,
                        self.config.max_gossip_bytes,
                        &mut self.rng,
                    );
                    if !delta.is_empty() {
                        let frame = Frame::Ack {
                            records: delta.records,
                            heartbeats: delta.heartbeats,
                        };
                        self.send(from, frame, out);
                    }
                }
            }
            Frame::Ack {
                records,
                heartbeats,
            } => {
                self.apply_records(now, from, records, false, out);
                self.apply_beats(now, heartbeats, out);
            }
            Frame::Records { records } => self.apply_records(now, from, records, true, out),
            Frame::Beat { heartbeat } => {
                if heartbeat.id != from {
                    return self.violation(now, from, "Beat for another cluster", out);
                }
                self.apply_beats(now, vec![heartbeat], out);
            }
            Frame::Leave { record } => {
                if record.id() != from || !record.record.left {
                    return self.violation(now, from, "Leave for another cluster", out);
                }
                self.peers.close(&from, now);
                self.apply_records(now, from, vec![record], true, out);
            }
            Frame::Routed(msg) => self.on_routed(now, from, msg, out),
            f @ (Frame::RosterSummary { .. }
            | Frame::RosterFetch { .. }
            | Frame::RosterEpochs { .. }
            | Frame::RosterPending { .. }) => self.on_roster_frame(now, from, f, out),
        }
    }

    /// Verifies and stores `records`; with `relay`, pushes the fresh ones
    /// on to `fanout` other peers (each node relays a given piece of news once).
    pub(super) fn apply_records(
        &mut self,
        now: Millis,
        from: ClusterId,
        records: Vec<SignedRecord>,
        relay: bool,
        out: &mut Vec<Output>,
    ) {
        let mut fresh = Vec::new();
        let mut fresh_bytes = 0usize;
        for rec in records {
            let id = rec.id();
            if self.accept(now, rec, out)
                && relay
                && let Some(e) = self.table.gossipable(&id)
            {
                let next = fresh_bytes.saturating_add(e.wire_len());
                if next <= self.config.max_gossip_bytes {
                    fresh_bytes = next;
                    fresh.push(e.record().clone());
                }
            }
        }
        if fresh.is_empty() {
            return;
        }
        let live = self.peers.live();
        let targets = choose_peers(&live, self.config.fanout, Some(&from), &mut self.rng);
        for to in targets {
            self.send(
                to,
                Frame::Records {
                    records: fresh.clone(),
                },
                out,
            );
        }
    }

    /// Verifies one record and stores it if newer; true if it was fresh news.
    pub(super) fn accept(&mut self, now: Millis, rec: SignedRecord, out: &mut Vec<Output>) -> bool {
        let id = rec.id();
        if id == self.own.id() {
            self.own_echo(now, rec, out);
            return false;
        }
        let known = match self.table.get(&id) {
            Some(e) if rec.version() <= e.version() => {
                bump(&mut self.counters.records_stale);
                return false;
            }
            Some(_) => true,
            None => false,
        };
        let key = match self.gossip_key(&id) {
            Ok(k) => k,
            Err(KeyMiss::Invalid) => {
                bump(&mut self.counters.records_invalid);
                return false;
            }
            Err(KeyMiss::NotMember) => {
                bump(&mut self.counters.records_not_member);
                return false;
            }
        };
        if !known && self.table.len() >= self.config.max_members {
            bump(&mut self.counters.records_table_full);
            return false;
        }
        match rec.verify(&self.network_id, &key, Some(&self.sigcache)) {
            Ok(Verified::Cached) => bump(&mut self.counters.signature_cache_hits),
            Ok(Verified::Checked) => bump(&mut self.counters.signatures_verified),
            Err(RecordError::BadSignature(_)) => {
                bump(&mut self.counters.records_bad_signature);
                return false;
            }
            Err(_) => {
                bump(&mut self.counters.records_invalid);
                return false;
            }
        }
        bump(&mut self.counters.records_applied);
        let left = rec.record.left;
        let links_changed = self
            .table
            .get(&id)
            .is_none_or(|e| e.record().record.links != rec.record.links);
        let applied = self.table.apply(rec, now);
        if links_changed || applied.event.is_some() {
            self.routing.mark_records_changed();
        }
        if left {
            self.peers.close(&id, now);
        }
        if let Some(ev) = applied.event {
            out.push(Output::Event(ev));
        }
        applied.fresh
    }
}
