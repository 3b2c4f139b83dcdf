//! Connections coming up and going down, closing and refusing.

use crate::proto::identity::ClusterId;
use crate::proto::membership::counters::bump;
use crate::proto::membership::event::Event;
use crate::proto::membership::peers::{LinkState, Refusal, admit};
use crate::proto::time::Millis;
use crate::proto::wire::{Frame, PROTOCOL_VERSION};
use std::net::SocketAddr;
use std::time::Duration;

use super::*;

impl Core {
    pub(super) fn on_peer_up(
        &mut self,
        now: Millis,
        peer: ClusterId,
        addr: SocketAddr,
        rtt: Duration,
        inbound: bool,
        out: &mut Vec<Output>,
    ) {
        if peer == self.own.id() {
            if !inbound {
                self.peers.own_addr(addr);
            }
            bump(&mut self.counters.refused_other);
            out.push(Output::Disconnect {
                peer,
                reason: Refusal::Myself.to_string(),
            });
            return;
        }
        if self.peers.link(&peer).is_some_and(|l| l.is_live()) {
            out.push(Output::Event(Event::LinkDown {
                peer,
                reason: "replaced by a new connection".into(),
            }));
        }
        let live = self.peers.live().len();
        self.peers.up(peer, addr, rtt, inbound, now);
        let refusal = if self.own.has_left() {
            Some(Refusal::Leaving)
        } else if let Err(r) = admit(&self.roster, self.config.open, &peer) {
            bump(&mut self.counters.refused_not_member);
            Some(r)
        } else if !self.config.link_policy.allows(&peer) {
            Some(Refusal::NotAllowed { peer })
        } else if inbound && live >= self.config.max_connections {
            Some(Refusal::TooManyLinks(live))
        } else {
            None
        };
        if let Some(r) = refusal {
            if !matches!(r, Refusal::NotAMember { .. }) {
                bump(&mut self.counters.refused_other);
            }
            self.refuse(now, peer, r, out);
            return;
        }
        if !inbound {
            let hello = Frame::Hello {
                protocol_version: PROTOCOL_VERSION,
                network_id: self.network_id,
                sender: self.own.id(),
                incarnation: self.own.incarnation(),
                roster_epoch: self.roster.epoch(),
            };
            self.send(peer, hello, out);
        }
    }

    pub(super) fn on_peer_down(&mut self, peer: ClusterId, reason: String, out: &mut Vec<Output>) {
        let Some(link) = self.peers.down(&peer) else {
            return;
        };
        if link.state == LinkState::Established {
            self.routing.mark_links_changed();
            if link.closing.is_none() {
                self.table.link_lost(&peer);
                self.routing.mark_link_failed();
            }
            out.push(Output::Event(Event::LinkDown { peer, reason }));
        }
    }

    pub(super) fn established(&mut self, peer: ClusterId, inbound: bool, out: &mut Vec<Output>) {
        if let Some(l) = self.peers.link_mut(&peer) {
            l.state = LinkState::Established;
        }
        self.table.link_restored(&peer);
        self.routing.mark_links_changed();
        out.push(Output::Event(Event::LinkUp { peer, inbound }));
        if !inbound {
            let digest = self.table.digest();
            self.send(peer, Frame::Syn { digest }, out);
        }
        self.roster_link_up(peer, out);
    }

    /// Sends `Goodbye` (if the link is not already closing), then asks the
    /// transport to close.
    pub(super) fn close(
        &mut self,
        now: Millis,
        peer: ClusterId,
        why: &Refusal,
        out: &mut Vec<Output>,
    ) {
        let reason = why.to_string();
        if self.peers.link(&peer).is_some_and(|l| l.closing.is_none()) {
            self.send(peer, Frame::goodbye(&reason), out);
        }
        self.peers.close(&peer, now);
        self.routing.mark_links_changed();
        out.push(Output::Disconnect { peer, reason });
    }

    /// [`Self::close`] plus a [`Event::Refused`].
    pub(super) fn refuse(
        &mut self,
        now: Millis,
        peer: ClusterId,
        why: Refusal,
        out: &mut Vec<Output>,
    ) {
        self.close(now, peer, &why, out);
        out.push(Output::Event(Event::Refused {
            peer,
            reason: why.to_string(),
        }));
    }

    pub(super) fn violation(
        &mut self,
        now: Millis,
        peer: ClusterId,
        what: &'static str,
        out: &mut Vec<Output>,
    ) {
        bump(&mut self.counters.protocol_violations);
        self.refuse(now, peer, Refusal::Violation(what), out);
    }

    pub(super) fn send(&mut self, to: ClusterId, frame: Frame, out: &mut Vec<Output>) {
        self.counters.frames_out.incr(frame.kind());
        out.push(Output::Send { to, frame });
    }
}
