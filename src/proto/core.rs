//! The protocol core: one deterministic state machine per node, driven
//! through a single entry point, [`Core::handle`], in the style of
//! iroh-gossip's `proto/state.rs` and foca's runtime.
//!
//! The caller (the net layer, or the simulator) feeds [`Input`]s with the
//! current time and carries out the [`Output`]s in order: frames to send,
//! connections to open or close, the next timer, events and state to
//! persist. The core has no clock, no sockets and no threads; its only
//! randomness is a `StdRng` seeded by the caller, and it iterates only
//! ordered maps, so the same inputs always give the same outputs.
//!
//! Transport contract:
//! - at most one connection per peer; `PeerUp` for a peer that already has
//!   one means the new connection replaced the old, and the end of a
//!   replaced connection is never reported;
//! - every connection the core asked for ends with `ConnectFailed` or
//!   `PeerUp`, every `PeerUp` eventually with `PeerDown`;
//! - outputs are carried out in order: a `Send` before a `Disconnect` to the
//!   same peer is flushed first, and `Persist` is durable before anything
//!   after it is sent;
//! - a later `SetTimer` with the same id replaces the earlier one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::proto::bytes32::NetworkId;
use crate::proto::identity::{ClusterId, Identity};
use crate::proto::membership::antientropy::{answer_syn, answer_want, choose_peers};
use crate::proto::membership::config::{ConfigError, MembershipConfig};
use crate::proto::membership::counters::{Counters, bump};
use crate::proto::membership::event::Event;
use crate::proto::membership::failure::MemberState;
use crate::proto::membership::own::OwnRecord;
use crate::proto::membership::peers::{LinkState, Peers, Refusal, admit, check_hello};
use crate::proto::membership::record::{RecordError, SignedRecord, Verified, Version};
use crate::proto::membership::sigcache::SigCache;
use crate::proto::membership::status::{LinkStatus, MemberStatus};
use crate::proto::membership::table::MemberTable;
use crate::proto::roster::Roster;
use crate::proto::time::{Millis, duration_ms};
use crate::proto::wire::{Frame, PROTOCOL_VERSION};

/// The core's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerId {
    /// One gossip round: heartbeat, failure detection, anti-entropy, mesh upkeep.
    Tick,
}

/// A local request from the application or operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Leave the federation gracefully: announce a final signed record and
    /// close every connection. The core stops gossiping afterwards.
    Leave,
}

/// State the caller must store durably.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// The incarnation now in use; pass it back as `previous_incarnation`
    /// after a restart.
    Incarnation(u64),
}

/// Something that happened, for the core to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The first input: persist the incarnation, dial the seeds, arm the
    /// timer. Any other first input starts the core implicitly.
    Start,
    /// A decoded frame from an authenticated peer.
    Frame {
        /// The peer the transport authenticated.
        from: ClusterId,
        /// The frame.
        frame: Frame,
    },
    /// A timer set with [`Output::SetTimer`] fired.
    Timer(TimerId),
    /// A connection finished its transport handshake.
    PeerUp {
        /// The authenticated peer.
        peer: ClusterId,
        /// Its address.
        addr: SocketAddr,
        /// The handshake's RTT.
        rtt: Duration,
        /// True if the peer dialed us.
        inbound: bool,
    },
    /// A connection ended.
    PeerDown {
        /// The peer.
        peer: ClusterId,
        /// Why, as the transport saw it.
        reason: String,
    },
    /// A dial asked for with [`Output::Connect`] failed.
    ConnectFailed {
        /// The address dialed.
        addr: SocketAddr,
        /// The id that was expected there.
        expected: Option<ClusterId>,
        /// Why.
        reason: String,
    },
    /// A fresh RTT sample for a connection.
    Rtt {
        /// The peer.
        peer: ClusterId,
        /// The smoothed RTT.
        rtt: Duration,
    },
    /// The transport could not decode (or had to refuse) a frame from a peer.
    MalformedFrame {
        /// The peer.
        peer: ClusterId,
        /// What was wrong.
        error: String,
    },
    /// A local command.
    Command(Command),
}

/// Something the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a frame on the connection to `to`.
    Send {
        /// The peer.
        to: ClusterId,
        /// The frame.
        frame: Frame,
    },
    /// Open a connection to `addr`, pinning the peer id if `expected` is set.
    Connect {
        /// Where to dial.
        addr: SocketAddr,
        /// The id that must answer there, if known.
        expected: Option<ClusterId>,
    },
    /// Close the connection to `peer` (after flushing earlier sends).
    Disconnect {
        /// The peer.
        peer: ClusterId,
        /// Why (usable as the QUIC close reason).
        reason: String,
    },
    /// Fire [`Input::Timer`] with `id` at `at` (replacing any earlier one).
    SetTimer {
        /// Which timer.
        id: TimerId,
        /// When.
        at: Millis,
    },
    /// Tell the application or operator.
    Event(Event),
    /// Store durably before carrying out the outputs that follow.
    Persist(Persist),
}

/// Why a core cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// The configuration is inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// This node is not in the roster and the node is not in open mode.
    #[error(
        "cluster {id} is not a member of network {network:?}; add it to the roster or run in open mode as an observer"
    )]
    NotAMember {
        /// This node.
        id: ClusterId,
        /// The network's name.
        network: String,
    },
    /// The initial record is invalid (bad or too many listen addresses).
    #[error("cannot build this node's record: {0}")]
    Record(#[from] RecordError),
    /// `previous_incarnation` is `u64::MAX`.
    #[error("incarnation counter exhausted")]
    IncarnationExhausted,
}

/// One node's membership protocol state machine.
#[derive(Debug)]
pub struct Core {
    own: OwnRecord,
    roster: Arc<Roster>,
    config: MembershipConfig,
    network_id: NetworkId,
    table: MemberTable,
    peers: Peers,
    sigcache: Arc<SigCache>,
    rng: StdRng,
    counters: Counters,
    started: bool,
    next_heartbeat: Millis,
    scratch_events: Vec<Event>,
}

impl Core {
    /// A core for `identity` in the federation of `roster`.
    ///
    /// `seeds` are dialed at start and whenever the node has no link;
    /// `listen_addrs` are advertised in the record (dialable addresses, not
    /// `0.0.0.0`); `previous_incarnation` is the last value persisted with
    /// [`Persist::Incarnation`] (0 on first start), and the new incarnation
    /// is one more; `rng_seed` seeds every random choice.
    pub fn new(
        identity: Arc<Identity>,
        roster: Arc<Roster>,
        config: MembershipConfig,
        seeds: Vec<SocketAddr>,
        listen_addrs: Vec<SocketAddr>,
        previous_incarnation: u64,
        rng_seed: u64,
    ) -> Result<Core, CoreError> {
        config.validate()?;
        let id = identity.id();
        if !config.open && roster.member(&id).is_none() {
            return Err(CoreError::NotAMember {
                id,
                network: roster.network_name().to_owned(),
            });
        }
        let network_id = roster.network_id();
        let (own, signed) = OwnRecord::new(
            identity,
            network_id,
            roster.epoch(),
            listen_addrs,
            previous_incarnation,
        )
        .ok_or(CoreError::IncarnationExhausted)??;
        let table = MemberTable::new(signed, Millis::ZERO, config.phi_window);
        let peers = Peers::new(seeds, &table.own().record.addrs);
        let sigcache = Arc::new(SigCache::new(config.sig_cache_capacity));
        Ok(Core {
            own,
            roster,
            config,
            network_id,
            table,
            peers,
            sigcache,
            rng: StdRng::seed_from_u64(rng_seed),
            counters: Counters::default(),
            started: false,
            next_heartbeat: Millis::ZERO,
            scratch_events: Vec::new(),
        })
    }

    /// Shares a verified-signature cache with other cores (the simulator
    /// does, so each record version is verified once for the whole run).
    pub fn with_signature_cache(mut self, cache: Arc<SigCache>) -> Self {
        self.sigcache = cache;
        self
    }

    /// Handles one input at `now` and returns what to do.
    pub fn handle(&mut self, now: Millis, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        self.handle_into(now, input, &mut out);
        out
    }

    /// Handles one input at `now`, appending what to do to `out`.
    pub fn handle_into(&mut self, now: Millis, input: Input, out: &mut Vec<Output>) {
        if !self.started {
            self.start(now, out);
        }
        match input {
            Input::Start => {}
            Input::Timer(TimerId::Tick) => self.tick(now, out),
            Input::Frame { from, frame } => self.on_frame(now, from, frame, out),
            Input::PeerUp {
                peer,
                addr,
                rtt,
                inbound,
            } => self.on_peer_up(now, peer, addr, rtt, inbound, out),
            Input::PeerDown { peer, reason } => self.on_peer_down(peer, reason, out),
            Input::ConnectFailed { addr, expected, .. } => {
                bump(&mut self.counters.dial_failures);
                self.peers
                    .dial_failed(&addr, expected, now, self.config.dial_backoff);
            }
            Input::Rtt { peer, rtt } => {
                if let Some(l) = self.peers.link_mut(&peer) {
                    l.rtt = rtt;
                }
            }
            Input::MalformedFrame { peer, error } => {
                bump(&mut self.counters.malformed_frames);
                self.refuse(now, peer, Refusal::Malformed(error), out);
            }
            Input::Command(Command::Leave) => self.leave(now, out),
        }
    }

    // ----- lifecycle -------------------------------------------------------

    fn start(&mut self, now: Millis, out: &mut Vec<Output>) {
        self.started = true;
        let incarnation = self.own.incarnation();
        out.push(Output::Persist(Persist::Incarnation(incarnation)));
        out.push(Output::Event(Event::IncarnationChanged { incarnation }));
        self.next_heartbeat = now;
        self.tick(now, out);
    }

    /// One gossip round.
    fn tick(&mut self, now: Millis, out: &mut Vec<Output>) {
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
            let signed = self.own.heartbeat(links);
            self.set_own(signed);
            self.push_own(out);
        }
        self.detect_failures(now, out);
        self.gossip(out);
        self.maintain_mesh(now, out);
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
    fn detect_failures(&mut self, now: Millis, out: &mut Vec<Output>) {
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

    /// Sends our digest to `fanout` random live peers.
    fn gossip(&mut self, out: &mut Vec<Output>) {
        self.peers.refill_syn_budgets();
        let live = self.peers.live();
        let targets = choose_peers(&live, self.config.fanout, None, &mut self.rng);
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
    fn maintain_mesh(&mut self, now: Millis, out: &mut Vec<Output>) {
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

    fn leave(&mut self, now: Millis, out: &mut Vec<Output>) {
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

    // ----- own record ----------------------------------------------------

    fn own(&self) -> &SignedRecord {
        self.table.own()
    }

    /// Stores a freshly signed own record (signing only fails on a bound
    /// violation, which our own record never has; keep the old one then).
    fn set_own(&mut self, signed: Result<SignedRecord, RecordError>) {
        match signed {
            Ok(signed) => self.table.set_own(signed),
            Err(e) => tracing::error!(error = %e, "cannot sign our own record"),
        }
    }

    fn push_own(&mut self, out: &mut Vec<Output>) {
        let live = self.peers.live();
        let targets = choose_peers(&live, self.config.fanout, None, &mut self.rng);
        if targets.is_empty() {
            return;
        }
        let own = self.own().clone();
        for to in targets {
            self.send(
                to,
                Frame::Records {
                    records: vec![own.clone()],
                },
                out,
            );
        }
    }

    /// A record of ourselves arrived through gossip. If it is at least as new
    /// as ours and not ours, it is from an earlier life whose incarnation we
    /// did not persist: jump past it so our record supersedes it everywhere.
    fn own_echo(&mut self, now: Millis, rec: SignedRecord, out: &mut Vec<Output>) {
        let ours = self.own.version();
        if self.own.has_left()
            || rec.version() < ours
            || (rec.version() == ours && rec == *self.own())
        {
            bump(&mut self.counters.records_stale);
            return;
        }
        let Ok(key) = self.own.id().verifying_key() else {
            return;
        };
        if rec
            .verify(&self.network_id, &key, Some(&self.sigcache))
            .is_err()
        {
            bump(&mut self.counters.records_bad_signature);
            return;
        }
        let Some(signed) = self.own.supersede(rec.version()) else {
            return;
        };
        tracing::warn!(
            seen = %rec.version(),
            ours = %ours,
            "saw a record of ourselves from an earlier life; raising the incarnation"
        );
        bump(&mut self.counters.incarnation_bumps);
        self.set_own(signed);
        let incarnation = self.own.incarnation();
        out.push(Output::Persist(Persist::Incarnation(incarnation)));
        out.push(Output::Event(Event::IncarnationChanged { incarnation }));
        self.next_heartbeat = now + self.config.heartbeat_interval;
        self.push_own(out);
    }

    // ----- connections ---------------------------------------------------

    fn on_peer_up(
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

    fn on_peer_down(&mut self, peer: ClusterId, reason: String, out: &mut Vec<Output>) {
        let Some(link) = self.peers.down(&peer) else {
            return;
        };
        if link.state == LinkState::Established {
            if link.closing.is_none() {
                self.table.link_lost(&peer);
            }
            out.push(Output::Event(Event::LinkDown { peer, reason }));
        }
    }

    fn established(&mut self, peer: ClusterId, inbound: bool, out: &mut Vec<Output>) {
        if let Some(l) = self.peers.link_mut(&peer) {
            l.state = LinkState::Established;
        }
        self.table.link_restored(&peer);
        out.push(Output::Event(Event::LinkUp { peer, inbound }));
        if !inbound {
            let digest = self.table.digest();
            self.send(peer, Frame::Syn { digest }, out);
        }
    }

    /// Sends `Goodbye` (if the link is not already closing), then asks the
    /// transport to close.
    fn close(&mut self, now: Millis, peer: ClusterId, why: &Refusal, out: &mut Vec<Output>) {
        let reason = why.to_string();
        if self.peers.link(&peer).is_some_and(|l| l.closing.is_none()) {
            self.send(peer, Frame::goodbye(&reason), out);
        }
        self.peers.close(&peer, now);
        out.push(Output::Disconnect { peer, reason });
    }

    /// [`Self::close`] plus a [`Event::Refused`].
    fn refuse(&mut self, now: Millis, peer: ClusterId, why: Refusal, out: &mut Vec<Output>) {
        self.close(now, peer, &why, out);
        out.push(Output::Event(Event::Refused {
            peer,
            reason: why.to_string(),
        }));
    }

    fn violation(
        &mut self,
        now: Millis,
        peer: ClusterId,
        what: &'static str,
        out: &mut Vec<Output>,
    ) {
        bump(&mut self.counters.protocol_violations);
        self.refuse(now, peer, Refusal::Violation(what), out);
    }

    fn send(&mut self, to: ClusterId, frame: Frame, out: &mut Vec<Output>) {
        self.counters.frames_out.incr(frame.kind());
        out.push(Output::Send { to, frame });
    }

    // ----- frames ----------------------------------------------------------

    fn on_frame(&mut self, now: Millis, from: ClusterId, frame: Frame, out: &mut Vec<Output>) {
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
                        records: reply.records,
                        want: reply.want,
                    };
                    self.send(from, frame, out);
                }
            }
            Frame::SynAck { records, want } => {
                self.apply_records(now, from, records, false, out);
                if !want.is_empty() {
                    let records = answer_want(
                        &self.table,
                        &want,
                        self.config.max_gossip_bytes,
                        &mut self.rng,
                    );
                    if !records.is_empty() {
                        self.send(from, Frame::Ack { records }, out);
                    }
                }
            }
            Frame::Ack { records } => self.apply_records(now, from, records, false, out),
            Frame::Records { records } => self.apply_records(now, from, records, true, out),
            Frame::Leave { record } => {
                if record.id() != from || !record.record.left {
                    return self.violation(now, from, "Leave for another cluster", out);
                }
                self.peers.close(&from, now);
                self.apply_records(now, from, vec![record], true, out);
            }
        }
    }

    /// Verifies and stores `records`; with `relay`, pushes the fresh ones
    /// on to `fanout` other peers (each node relays a given piece of news once).
    fn apply_records(
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
    fn accept(&mut self, now: Millis, rec: SignedRecord, out: &mut Vec<Output>) -> bool {
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
        let key = match self.roster.key(&id) {
            Some(k) => *k,
            None if self.config.open => match id.verifying_key() {
                Ok(k) => k,
                Err(_) => {
                    bump(&mut self.counters.records_invalid);
                    return false;
                }
            },
            None => {
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
        let applied = self.table.apply(rec, now);
        if left {
            self.peers.close(&id, now);
        }
        if let Some(ev) = applied.event {
            out.push(Output::Event(ev));
        }
        applied.fresh
    }

    // ----- queries -------------------------------------------------------

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
            heartbeat: r.heartbeat,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::membership::record::{MAX_ADDRS, NodeRecord};
    use crate::proto::wire::{DigestEntry, MAX_DIGEST_ENTRIES, Sig64};
    use crate::testkit::TestNet;
    use std::collections::VecDeque;

    fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i as u8 + 1], 7000))
    }

    fn core(net: &TestNet, i: usize, seeds: Vec<SocketAddr>) -> Core {
        let identity = Arc::new(Identity::from_seed(net.seed_of(i)));
        Core::new(
            identity,
            net.roster.clone(),
            MembershipConfig::default(),
            seeds,
            vec![addr(i)],
            0,
            i as u64,
        )
        .unwrap()
    }

    /// Routes `Send`s between cores until quiet; returns everything else.
    fn pump(
        cores: &mut [Core],
        now: Millis,
        from: usize,
        outs: Vec<Output>,
    ) -> Vec<(usize, Output)> {
        let mut rest = Vec::new();
        let mut queue: VecDeque<(usize, Output)> = outs.into_iter().map(|o| (from, o)).collect();
        while let Some((src, o)) = queue.pop_front() {
            match o {
                Output::Send { to, frame } => {
                    let Some(dst) = cores.iter().position(|c| c.id() == to) else {
                        continue;
                    };
                    let from_id = cores[src].id();
                    let outs = cores[dst].handle(
                        now,
                        Input::Frame {
                            from: from_id,
                            frame,
                        },
                    );
                    queue.extend(outs.into_iter().map(|o| (dst, o)));
                }
                other => rest.push((src, other)),
            }
        }
        rest
    }

    fn connect(cores: &mut [Core], now: Millis, a: usize, b: usize) -> Vec<(usize, Output)> {
        let (ida, idb) = (cores[a].id(), cores[b].id());
        let up = |peer, addr, inbound| Input::PeerUp {
            peer,
            addr,
            rtt: Duration::from_millis(10),
            inbound,
        };
        let mut rest = Vec::new();
        let outs = cores[b].handle(now, up(ida, addr(a), true));
        rest.extend(pump(cores, now, b, outs));
        let outs = cores[a].handle(now, up(idb, addr(b), false));
        rest.extend(pump(cores, now, a, outs));
        rest
    }

    fn goodbye_to(outs: &[Output], peer: ClusterId) -> Option<String> {
        outs.iter().find_map(|o| match o {
            Output::Send {
                to,
                frame: Frame::Goodbye { reason },
            } if *to == peer => Some(reason.clone()),
            _ => None,
        })
    }

    fn disconnects(outs: &[Output], peer: ClusterId) -> bool {
        outs.iter()
            .any(|o| matches!(o, Output::Disconnect { peer: p, .. } if *p == peer))
    }

    #[test]
    fn start_persists_the_incarnation_dials_seeds_and_arms_the_timer() {
        let net = TestNet::new(1, &[1, 1]);
        let identity = Arc::new(Identity::from_seed(net.seed_of(0)));
        let mut c = Core::new(
            identity,
            net.roster.clone(),
            MembershipConfig::default(),
            vec![addr(1), addr(0)],
            vec![addr(0)],
            41,
            0,
        )
        .unwrap();
        let outs = c.handle(Millis(5), Input::Start);
        assert_eq!(outs[0], Output::Persist(Persist::Incarnation(42)));
        assert!(outs.contains(&Output::Connect {
            addr: addr(1),
            expected: None
        }));
        assert!(
            !outs
                .iter()
                .any(|o| matches!(o, Output::Connect { addr: a, .. } if *a == addr(0))),
            "never dials its own address"
        );
        assert!(
            outs.iter().any(
                |o| matches!(o, Output::SetTimer { id: TimerId::Tick, at } if *at > Millis(5))
            )
        );
        assert!(c.handle(Millis(6), Input::Start).is_empty());
        assert_eq!(c.incarnation(), 42);
    }

    #[test]
    fn construction_refuses_bad_inputs() {
        let net = TestNet::new(1, &[1]);
        let stranger = Arc::new(Identity::from_seed([77; 32]));
        let mk = |id: Arc<Identity>, config: MembershipConfig, addrs: Vec<SocketAddr>, prev| {
            Core::new(id, net.roster.clone(), config, vec![], addrs, prev, 0)
        };
        let cfg = MembershipConfig::default();
        assert!(matches!(
            mk(stranger.clone(), cfg.clone(), vec![addr(0)], 0),
            Err(CoreError::NotAMember { .. })
        ));
        let open = MembershipConfig {
            open: true,
            ..cfg.clone()
        };
        assert!(mk(stranger.clone(), open, vec![addr(0)], 0).is_ok());
        let me = Arc::new(Identity::from_seed(net.seed_of(0)));
        assert!(matches!(
            mk(
                me.clone(),
                cfg.clone(),
                vec!["0.0.0.0:7000".parse().unwrap()],
                0
            ),
            Err(CoreError::Record(RecordError::BadAddr(_)))
        ));
        let many: Vec<SocketAddr> = (0..=MAX_ADDRS).map(addr).collect();
        assert!(matches!(
            mk(me.clone(), cfg.clone(), many, 0),
            Err(CoreError::Record(RecordError::TooManyAddrs(_)))
        ));
        assert_eq!(
            mk(me, cfg, vec![addr(0)], u64::MAX).unwrap_err(),
            CoreError::IncarnationExhausted
        );
    }

    #[test]
    fn handshake_then_anti_entropy_makes_both_sides_know_each_other() {
        let net = TestNet::new(2, &[1, 1, 1]);
        let mut cores: Vec<Core> = (0..3).map(|i| core(&net, i, vec![])).collect();
        for (i, c) in cores.iter_mut().enumerate() {
            c.handle(Millis(0), Input::Start);
            let _ = i;
        }
        let rest = connect(&mut cores, Millis(10), 0, 1);
        assert!(
            rest.iter().any(|(i, o)| *i == 0
                && matches!(o, Output::Event(Event::LinkUp { inbound: false, .. })))
        );
        assert!(rest.iter().any(
            |(i, o)| *i == 1 && matches!(o, Output::Event(Event::LinkUp { inbound: true, .. }))
        ));
        connect(&mut cores, Millis(20), 1, 2);
        // One more exchange through node 1 spreads node 2 to node 0 and back.
        let outs = cores[0].handle(Millis(600), Input::Timer(TimerId::Tick));
        pump(&mut cores, Millis(600), 0, outs);
        let outs = cores[2].handle(Millis(600), Input::Timer(TimerId::Tick));
        pump(&mut cores, Millis(600), 2, outs);
        for c in &cores {
            for other in &cores {
                assert_eq!(
                    c.member_state(&other.id()),
                    Some(MemberState::Alive),
                    "{:?} knows {:?}",
                    c.id(),
                    other.id()
                );
            }
        }
        let m = cores[0].member(&cores[1].id(), Millis(600)).unwrap();
        assert_eq!(m.name.as_deref(), Some("c1"));
        assert_eq!(m.rtt, Some(Duration::from_millis(10)));
        assert_eq!(m.addrs, vec![addr(1)]);
        assert!(cores[0].counters().signatures_verified > 0);
        assert!(
            cores[0]
                .counters()
                .frames_in
                .get(crate::proto::wire::FrameKind::SynAck)
                > 0
        );
        assert_eq!(cores[0].links().len(), 1);
        assert_eq!(cores[0].members(Millis(600)).len(), 3);
    }

    #[test]
    fn non_members_are_refused_with_a_reason() {
        let net = TestNet::new(3, &[1]);
        let mut a = core(&net, 0, vec![]);
        a.handle(Millis(0), Input::Start);
        let stranger = Identity::from_seed([99; 32]).id();
        let outs = a.handle(
            Millis(1),
            Input::PeerUp {
                peer: stranger,
                addr: addr(9),
                rtt: Duration::from_millis(1),
                inbound: true,
            },
        );
        let reason = goodbye_to(&outs, stranger).unwrap();
        assert!(reason.contains("is not a member of network"), "{reason}");
        assert!(disconnects(&outs, stranger));
        assert_eq!(a.counters().refused_not_member, 1);
        // Whatever it sends next is ignored while the connection closes.
        let outs = a.handle(
            Millis(2),
            Input::Frame {
                from: stranger,
                frame: Frame::Records { records: vec![] },
            },
        );
        assert!(outs.is_empty());
        a.handle(
            Millis(3),
            Input::PeerDown {
                peer: stranger,
                reason: "closed".into(),
            },
        );
        assert!(a.links().is_empty());
        assert_eq!(a.member_state(&stranger), None);
    }

    fn inbound(a: &mut Core, peer: ClusterId) {
        a.handle(
            Millis(1),
            Input::PeerUp {
                peer,
                addr: addr(5),
                rtt: Duration::from_millis(1),
                inbound: true,
            },
        );
    }

    #[test]
    fn hello_with_wrong_version_network_or_sender_is_refused() {
        let net = TestNet::new(4, &[1, 1]);
        let b = net.identities[1].id();
        let cases = [
            (99, net.roster.network_id(), b, "protocol version mismatch"),
            (
                PROTOCOL_VERSION,
                NetworkId([5; 32]),
                b,
                "network id mismatch",
            ),
            (
                PROTOCOL_VERSION,
                net.roster.network_id(),
                net.identities[0].id(),
                "hello names sender",
            ),
        ];
        for (version, network_id, sender, expect) in cases {
            let mut a = core(&net, 0, vec![]);
            inbound(&mut a, b);
            let outs = a.handle(
                Millis(2),
                Input::Frame {
                    from: b,
                    frame: Frame::Hello {
                        protocol_version: version,
                        network_id,
                        sender,
                        incarnation: 1,
                        roster_epoch: 0,
                    },
                },
            );
            let reason = goodbye_to(&outs, b).unwrap();
            assert!(reason.contains(expect), "{reason}");
            assert!(disconnects(&outs, b));
            assert_eq!(a.counters().refused_hello, 1);
            assert!(a.live_peers().is_empty());
        }
    }

    #[test]
    fn gossip_before_hello_malformed_and_oversized_frames_close_only_that_link() {
        let net = TestNet::new(5, &[1, 1, 1]);
        let mut cores: Vec<Core> = (0..3).map(|i| core(&net, i, vec![])).collect();
        connect(&mut cores, Millis(1), 0, 1);
        let (b, c) = (cores[1].id(), cores[2].id());

        // c is connected but has not said Hello yet.
        inbound(&mut cores[0], c);
        let outs = cores[0].handle(
            Millis(2),
            Input::Frame {
                from: c,
                frame: Frame::Syn { digest: vec![] },
            },
        );
        assert!(goodbye_to(&outs, c).unwrap().contains("protocol violation"));
        assert_eq!(cores[0].counters().protocol_violations, 1);

        let outs = cores[0].handle(
            Millis(3),
            Input::MalformedFrame {
                peer: b,
                error: "postcard: unexpected end".into(),
            },
        );
        assert!(goodbye_to(&outs, b).unwrap().contains("malformed frame"));
        assert!(disconnects(&outs, b));
        assert_eq!(cores[0].counters().malformed_frames, 1);

        let mut cores: Vec<Core> = (0..3).map(|i| core(&net, i, vec![])).collect();
        connect(&mut cores, Millis(1), 0, 1);
        connect(&mut cores, Millis(1), 0, 2);
        let huge = vec![
            DigestEntry {
                id: b,
                version: Version::default(),
            };
            MAX_DIGEST_ENTRIES + 1
        ];
        let outs = cores[0].handle(
            Millis(4),
            Input::Frame {
                from: b,
                frame: Frame::Syn { digest: huge },
            },
        );
        assert!(goodbye_to(&outs, b).unwrap().contains("oversized"));
        assert_eq!(cores[0].counters().oversized_frames, 1);
        assert_eq!(
            cores[0].live_peers(),
            vec![c],
            "the other link is untouched"
        );
    }

    #[test]
    fn a_peer_cannot_ask_for_digests_faster_than_the_budget() {
        let net = TestNet::new(10, &[1, 1]);
        let mut cores: Vec<Core> = (0..2).map(|i| core(&net, i, vec![])).collect();
        // Node 0 dials node 1 and opens with one Syn (budget 4 - 1).
        connect(&mut cores, Millis(1), 0, 1);
        let a = cores[0].id();
        let syn = || Input::Frame {
            from: a,
            frame: Frame::Syn { digest: vec![] },
        };
        let answered = (0..6)
            .filter(|_| !cores[1].handle(Millis(2), syn()).is_empty())
            .count();
        assert_eq!(answered, 3);
        assert_eq!(cores[1].counters().syns_rate_limited, 3);
        cores[1].handle(Millis(600), Input::Timer(TimerId::Tick));
        assert!(!cores[1].handle(Millis(601), syn()).is_empty());
    }

    #[test]
    fn forged_records_are_dropped_and_counted() {
        let net = TestNet::new(6, &[1, 1, 1]);
        let mut cores: Vec<Core> = (0..2).map(|i| core(&net, i, vec![])).collect();
        connect(&mut cores, Millis(1), 0, 1);
        let b = cores[1].id();
        let victim = Identity::from_seed(net.seed_of(2));
        let record = NodeRecord {
            id: victim.id(),
            incarnation: 1,
            heartbeat: 1,
            roster_epoch: 0,
            left: false,
            addrs: vec![addr(2)],
            links: vec![],
            queues: vec![],
        };
        // Signed by b, claiming to be the victim.
        let mallory = Identity::from_seed(net.seed_of(1));
        let forged = SignedRecord {
            signature: Sig64(mallory.sign(&record.sign_bytes(&net.roster.network_id()))),
            record: Arc::new(record.clone()),
        };
        // A valid record, then tampered with.
        let mut tampered = SignedRecord::sign(record, &victim, &net.roster.network_id()).unwrap();
        Arc::make_mut(&mut tampered.record).heartbeat = 7;
        for rec in [forged, tampered] {
            cores[0].handle(
                Millis(2),
                Input::Frame {
                    from: b,
                    frame: Frame::Records { records: vec![rec] },
                },
            );
        }
        assert_eq!(cores[0].counters().records_bad_signature, 2);
        assert_eq!(cores[0].member_state(&victim.id()), None);
        assert_eq!(cores[0].live_peers(), vec![b]);
        // A record of a non-member is dropped too.
        let stranger = Identity::from_seed([123; 32]);
        let rec = SignedRecord::sign(
            NodeRecord {
                id: stranger.id(),
                incarnation: 1,
                heartbeat: 1,
                roster_epoch: 0,
                left: false,
                addrs: vec![],
                links: vec![],
                queues: vec![],
            },
            &stranger,
            &net.roster.network_id(),
        )
        .unwrap();
        cores[0].handle(
            Millis(3),
            Input::Frame {
                from: b,
                frame: Frame::Records { records: vec![rec] },
            },
        );
        assert_eq!(cores[0].counters().records_not_member, 1);
    }

    #[test]
    fn a_record_from_an_earlier_life_raises_the_incarnation() {
        let net = TestNet::new(7, &[1, 1]);
        let mut cores: Vec<Core> = (0..2).map(|i| core(&net, i, vec![])).collect();
        connect(&mut cores, Millis(1), 0, 1);
        let me = Identity::from_seed(net.seed_of(0));
        let old = SignedRecord::sign(
            NodeRecord {
                id: me.id(),
                incarnation: 9,
                heartbeat: 500,
                roster_epoch: 0,
                left: false,
                addrs: vec![addr(0)],
                links: vec![],
                queues: vec![],
            },
            &me,
            &net.roster.network_id(),
        )
        .unwrap();
        let b = cores[1].id();
        let outs = cores[0].handle(
            Millis(2),
            Input::Frame {
                from: b,
                frame: Frame::Records { records: vec![old] },
            },
        );
        assert!(outs.contains(&Output::Persist(Persist::Incarnation(10))));
        assert_eq!(cores[0].incarnation(), 10);
        assert_eq!(cores[0].counters().incarnation_bumps, 1);
        // Its own echo is not news.
        let own = cores[0].own_record().clone();
        let outs = cores[0].handle(
            Millis(3),
            Input::Frame {
                from: b,
                frame: Frame::Records { records: vec![own] },
            },
        );
        assert!(!outs.iter().any(|o| matches!(o, Output::Persist(_))));
    }

    #[test]
    fn leave_announces_a_signed_departure_and_closes_links() {
        let net = TestNet::new(8, &[1, 1, 1]);
        let mut cores: Vec<Core> = (0..3).map(|i| core(&net, i, vec![])).collect();
        connect(&mut cores, Millis(1), 0, 1);
        connect(&mut cores, Millis(1), 1, 2);
        let outs = cores[0].handle(Millis(2), Input::Command(Command::Leave));
        let b = cores[1].id();
        assert!(
            outs.iter()
                .any(|o| matches!(o, Output::Send { to, frame: Frame::Leave { .. } } if *to == b))
        );
        assert!(disconnects(&outs, b));
        assert!(cores[0].has_left());
        let rest = pump(&mut cores, Millis(2), 0, outs);
        let a = cores[0].id();
        assert_eq!(cores[1].member_state(&a), Some(MemberState::Left));
        assert!(
            rest.iter()
                .any(|(i, o)| *i == 1 && *o == Output::Event(Event::MemberLeft { id: a }))
        );
        assert_eq!(
            cores[2].member_state(&a),
            Some(MemberState::Left),
            "relayed eagerly"
        );
        // A Leave naming someone else is a violation.
        let c = cores[2].id();
        let other = cores[2].own_record().clone();
        let outs = cores[1].handle(
            Millis(3),
            Input::Frame {
                from: c,
                frame: Frame::Leave { record: other },
            },
        );
        assert!(
            goodbye_to(&outs, c)
                .unwrap()
                .contains("Leave for another cluster")
        );
        // After leaving, timers do nothing.
        assert!(
            cores[0]
                .handle(Millis(9), Input::Timer(TimerId::Tick))
                .is_empty()
        );
    }

    #[test]
    fn same_seed_same_outputs() {
        let net = TestNet::new(9, &[1, 1, 1, 1]);
        let run = || {
            let mut cores: Vec<Core> = (0..4).map(|i| core(&net, i, vec![])).collect();
            connect(&mut cores, Millis(1), 0, 1);
            connect(&mut cores, Millis(1), 0, 2);
            connect(&mut cores, Millis(1), 0, 3);
            let mut log = Vec::new();
            for t in 1..20u64 {
                let outs = cores[0].handle(Millis(t * 500), Input::Timer(TimerId::Tick));
                log.push(format!("{outs:?}"));
                pump(&mut cores, Millis(t * 500), 0, outs);
            }
            log
        };
        assert_eq!(run(), run());
    }
}
