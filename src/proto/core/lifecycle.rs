//! Lifecycle and the periodic gossip round.

use crate::proto::identity::ClusterId;
use crate::proto::membership::antientropy::choose_peers;
use crate::proto::membership::counters::bump;
use crate::proto::membership::event::Event;
use crate::proto::membership::peers::Refusal;
use crate::proto::time::{Millis, duration_ms};
use crate::proto::wire::Frame;
use rand::Rng;
use std::time::Duration;

use super::*;

impl Core {
    pub(super) fn start(&mut self, now: Millis, out: &mut Vec<Output>) {
        self.started = true;
        let incarnation = self.own.incarnation();
        out.push(Output::Persist(Persist::Incarnation(incarnation)));
        out.push(Output::Event(Event::IncarnationChanged { incarnation }));
        self.next_heartbeat = now;
        self.tick(now, out);
    }

    /// One gossip round.
    pub(super) fn tick(&mut self, now: Millis, out: &mut Vec<Output>) {
        if self.own.has_left() {
            return;
        }
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.config.heartbeat_interval;
            let links: Vec<(ClusterId, Duration)> = self
                .peers
                .links()
                .filter(|(_, l)| l.is_live())
                .map(|(id, l)| (*id, l.rtt))
                .collect();
            let (record, beat) = self.own.heartbeat(links);
            self.table.set_own_beat(beat);
            if let Some(signed) = record {
                self.set_own(signed);
                self.push_own(out);
            }
            // Every neighbour hears each beat first-hand, at a steady pace
            // its detector can be tight about; everyone else through
            // anti-entropy, which the neighbours feed from the first round.
            for peer in self.peers.live() {
                self.send(peer, Frame::Beat { heartbeat: beat }, out);
            }
        }
        self.detect_failures(now, out);
        self.gossip(out);
        self.maintain_mesh(now, out);
        self.roster_tick(now, out);
        let interval = duration_ms(self.config.gossip_interval);
        let jitter = interval / 10;
        let delay = interval
            .saturating_sub(jitter)
            .saturating_add(self.rng.gen_range(0..=jitter.saturating_mul(2)));
        out.push(Output::SetTimer {
            id: TimerId::Tick,
            at: Millis(now.0.saturating_add(delay)),
        });
    }

    /// Liveness transitions, tombstone expiry, and closing links to the dead.
    pub(super) fn detect_failures(&mut self, now: Millis, out: &mut Vec<Output>) {
        let mut died = Vec::new();
        let mut events = std::mem::take(&mut self.scratch_events);
        self.table.check(now, &self.config, &mut events, &mut died);
        let forgotten = self.table.expire(now, self.config.dead_ttl, &mut events);
        for (id, addr) in forgotten {
            if let Some(addr) = addr {
                let until = now + self.config.reconnect_ttl;
                self.peers
                    .remember(id, addr, until, self.config.max_members);
            }
        }
        out.extend(events.drain(..).map(Output::Event));
        self.scratch_events = events;
        for id in died {
            if self.peers.link(&id).is_some() {
                self.close(now, id, &Refusal::Dead, out);
            }
        }
    }

    /// Sends our digest to `sync_fanout` random live peers.
    pub(super) fn gossip(&mut self, out: &mut Vec<Output>) {
        self.peers.refill_syn_budgets();
        let live = self.peers.live();
        let targets = choose_peers(&live, self.config.sync_fanout, None, &mut self.rng);
        if targets.is_empty() {
            return;
        }
        let digest = self.table.digest();
        for to in targets {
            let frame = Frame::Syn {
                digest: digest.clone(),
            };
            self.send(to, frame, out);
        }
    }

    /// Timeouts, dials and pruning (see [`crate::proto::membership::peers`]).
    pub(super) fn maintain_mesh(&mut self, now: Millis, out: &mut Vec<Output>) {
        let expired = self.peers.expire(now, &self.config);
        self.counters.dial_failures = self
            .counters
            .dial_failures
            .saturating_add(expired.dials as u64);
        for id in expired.handshakes {
            bump(&mut self.counters.handshake_timeouts);
            self.close(now, id, &Refusal::HandshakeTimeout, out);
        }
        let plan = self
            .peers
            .plan(now, &self.config, &self.table, &mut self.rng);
        for (addr, expected) in plan.dials {
            bump(&mut self.counters.dials);
            out.push(Output::Connect { addr, expected });
        }
        for id in plan.prunes {
            bump(&mut self.counters.links_pruned);
            self.close(now, id, &Refusal::Pruned, out);
        }
    }

    pub(super) fn leave(&mut self, now: Millis, out: &mut Vec<Output>) {
        if self.own.has_left() {
            return;
        }
        let signed = self.own.leave();
        self.set_own(signed);
        let own = self.own().clone();
        let peers: Vec<(ClusterId, bool)> = self
            .peers
            .links()
            .map(|(id, l)| (*id, l.is_live()))
            .collect();
        for (peer, live) in peers {
            if live {
                self.send(
                    peer,
                    Frame::Leave {
                        record: own.clone(),
                    },
                    out,
                );
                self.peers.close(&peer, now);
                out.push(Output::Disconnect {
                    peer,
                    reason: Refusal::Leaving.to_string(),
                });
            } else {
                self.close(now, peer, &Refusal::Leaving, out);
            }
        }
    }
}
