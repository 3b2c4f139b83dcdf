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

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::proto::bytes32::NetworkId;
use crate::proto::identity::{ClusterId, Identity};
use crate::proto::membership::config::{ConfigError, MembershipConfig};
use crate::proto::membership::counters::{Counters, bump};
use crate::proto::membership::event::Event;
use crate::proto::membership::own::OwnRecord;
use crate::proto::membership::peers::{Peers, Refusal};
use crate::proto::membership::record::RecordError;
use crate::proto::membership::sigcache::SigCache;
use crate::proto::membership::table::MemberTable;
use crate::proto::queue::QueueRegistry;
use crate::proto::roster::Roster;
use crate::proto::roster_epoch::RosterEpoch;
use crate::proto::roster_sync::{RosterChange, RosterSync};
use crate::proto::time::Millis;
use crate::proto::topology::Routing;
use crate::proto::topology::probes::Probes;
use crate::proto::vote::SignedVote;
use crate::proto::wire::Frame;

pub use causal::{CausalStats, MAX_CAUSAL_HELD, MAX_CAUSAL_TOPICS, PublishOptions};
pub use delivery::DataCounters;
pub use durable::{DataState, OutboxEntry, PendingDest};
pub use latency::MAX_LATENCY_SAMPLES;
pub use quorum::{Byzantine, QuorumOutcome, QuorumPathCounters};
pub use routing::{Delivery, PROBE_GIVE_UP, RECORD_REFRESH_GAP, RouteStatus};

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
    /// Send a test probe to `dst` over the best route, at least once: it is
    /// resent on the current route until [`Delivery::ProbeAcked`] (or
    /// [`Delivery::ProbeExpired`]).
    SendProbe {
        /// The destination cluster.
        dst: ClusterId,
        /// Chosen by the caller; must not be pending already.
        id: u64,
        /// Opaque bytes (at most [`crate::proto::topology::payload::MAX_PROBE_BODY`]).
        body: Vec<u8>,
    },
    /// Propose a change of the roster on top of the current epoch; progress
    /// is reported with [`Event::RosterProgress`].
    ProposeRoster(RosterChange),
    /// Host the queue `0` here (published in this node's record).
    CreateQueue(String),
    /// Subscribe this node to the pattern `0` (published in its record).
    Subscribe(String),
    /// Drop the subscription pattern `0`.
    Unsubscribe(String),
    /// Publish a message to every cluster subscribed to `topic`; answered
    /// with [`Delivery::Published`] or [`Delivery::PublishRefused`].
    Publish {
        /// The topic (a queue name).
        topic: String,
        /// How it is delivered.
        guarantee: crate::proto::delivery::Guarantee,
        /// The application's bytes.
        payload: Vec<u8>,
    },
    /// Vote REJECT on quorum messages published to this topic (the
    /// application's validation of proposals).
    RefuseQuorumTopic(String),
    /// Test and demo only: make this node Byzantine (see [`Byzantine`]),
    /// or honest again with `None`.
    SetByzantine(Option<Byzantine>),
    /// [`Command::Publish`] with options (causal order).
    PublishWith {
        /// The topic (a queue name).
        topic: String,
        /// How it is delivered.
        guarantee: crate::proto::delivery::Guarantee,
        /// The application's bytes.
        payload: Vec<u8>,
        /// Options beyond the guarantee.
        options: PublishOptions,
    },
}

/// State the caller must store durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// The incarnation now in use; pass it back as `previous_incarnation`
    /// after a restart.
    Incarnation(u64),
    /// A roster epoch adopted; pass the stored chain back with
    /// [`Core::with_roster_state`] after a restart.
    RosterEpoch(Box<RosterEpoch>),
    /// A roster-change vote this node signed. It must be durable before it
    /// is sent, and handed back after a restart, so that the node never
    /// signs two values for one slot.
    SignedVote(SignedVote),
    /// Quorum votes this node signed: durable (in the signed-vote store)
    /// before anything after it is sent, and handed back after a restart
    /// with [`Core::with_quorum_votes`].
    QuorumVotes(Vec<crate::proto::delivery::AttestedVote>),
    /// A record for this node's vote log (votes, certificates, evidence).
    VoteLog {
        /// The record kind (`proto::log_entry::kind`).
        kind: u8,
        /// The record body (`LogEntry::encode`).
        body: Vec<u8>,
    },
    /// An AT_LEAST_ONCE or BROADCAST message entered the outbox. It must be
    /// durable before the message is first sent (and before it is reported
    /// published); hand it back with [`Core::with_data_state`].
    OutboxAdd(OutboxEntry),
    /// `dest` acknowledged the outbox message `key`; the stored message is
    /// deleted once every destination has.
    OutboxAck {
        /// The message.
        key: crate::proto::delivery::MessageKey,
        /// The destination that acknowledged it.
        dest: ClusterId,
    },
    /// Message ids below this may have been used: after a restart the node
    /// publishes from here (ids are reserved in blocks and never reused).
    NextMessageId(u64),
    /// The next sequence number towards `dest` (never reused).
    NextSeq {
        /// The destination.
        dest: ClusterId,
        /// Its next sequence number.
        next: u64,
    },
    /// An origin's receiver dedup window after a fresh message. It must be
    /// durable, together with the hand-off to the subscriber, before the
    /// message is acknowledged; only the latest per origin matters.
    DedupWindow {
        /// The origin.
        origin: ClusterId,
        /// Its window.
        window: crate::proto::delivery::OriginWindow,
    },
    /// A topic's causal clock after it advanced: what this node delivered
    /// of it, its own entry counting the causal messages it published. It
    /// must be durable before anything that follows, like the dedup window
    /// it goes with: a counter stamped again after a restart would be
    /// taken for a duplicate, a delivered one forgotten would hold every
    /// later message back. Only the latest per topic matters.
    CausalClock {
        /// The topic.
        topic: crate::proto::queue::QueueName,
        /// Its clock.
        clock: crate::proto::vclock::VClock,
    },
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
    /// Hand a routed message (or its outcome) to the application.
    Deliver(Delivery),
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
    routing: Routing,
    probes: Probes,
    roster_sync: RosterSync,
    roster_ticks: u64,
    queues: QueueRegistry,
    data: delivery::DataPath,
    quorum: quorum::QuorumPath,
    causal: causal::CausalState,
    latency: latency::Latency,
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
        // A cluster missing from the roster it knows may still join through
        // seeds: a later epoch may have added it, and it learns that epoch
        // from them (until then members refuse it).
        if !config.open && roster.member(&id).is_none() && seeds.is_empty() {
            return Err(CoreError::NotAMember {
                id,
                network: roster.network_name().to_owned(),
            });
        }
        let network_id = roster.network_id();
        let roster_sync = RosterSync::new(identity.clone(), roster.clone(), [], []);
        let sigcache = Arc::new(SigCache::new(config.sig_cache_capacity));
        let quorum = quorum::QuorumPath::new(identity.clone(), roster.clone(), sigcache.clone());
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
            routing: Routing::new(),
            probes: Probes::default(),
            roster_sync,
            roster_ticks: 0,
            queues: QueueRegistry::new(),
            data: delivery::DataPath::default(),
            quorum,
            causal: causal::CausalState::default(),
            latency: latency::Latency::default(),
        })
    }

    /// Shares a verified-signature cache with other cores (the simulator
    /// does, so each record version is verified once for the whole run).
    pub fn with_signature_cache(mut self, cache: Arc<SigCache>) -> Self {
        self.quorum = self.quorum.rebuilt(self.roster.clone(), cache.clone());
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
        self.handle_batched(now, input, out);
        self.end_batch(out);
    }

    /// Like [`Self::handle_into`], for one input of a batch: the acks it
    /// owes wait for [`Self::end_batch`] and leave together, one frame per
    /// origin (the event loop calls it before carrying out the batch).
    pub fn handle_batched(&mut self, now: Millis, input: Input, out: &mut Vec<Output>) {
        if !self.started {
            self.start(now, out);
        }
        self.quorum.now = now;
        self.latency_clock(now);
        match input {
            Input::Start => {}
            Input::Timer(TimerId::Tick) => {
                self.tick(now, out);
                self.routing_tick(now, out);
                self.sync_queues();
                self.data_tick(now, out);
            }
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
            Input::Command(Command::SendProbe { dst, id, body }) => {
                self.send_probe(now, dst, id, body, out)
            }
            Input::Command(Command::ProposeRoster(change)) => self.propose_roster(now, change, out),
            Input::Command(Command::CreateQueue(name)) => self.create_queue(name, out),
            Input::Command(Command::Subscribe(pattern)) => self.subscribe(pattern, out),
            Input::Command(Command::Unsubscribe(pattern)) => self.unsubscribe(&pattern, out),
            Input::Command(Command::Publish {
                topic,
                guarantee,
                payload,
            }) => self.publish(
                now,
                topic,
                guarantee,
                payload,
                PublishOptions::default(),
                out,
            ),
            Input::Command(Command::PublishWith {
                topic,
                guarantee,
                payload,
                options,
            }) => self.publish(now, topic, guarantee, payload, options, out),
            Input::Command(Command::RefuseQuorumTopic(topic)) => self.refuse_quorum_topic(&topic),
            Input::Command(Command::SetByzantine(b)) => self.set_byzantine(b),
        }
        self.quorum_after_input(now, out);
        self.after_input(now);
    }
}

mod causal;
mod connections;
mod delivery;
mod durable;
mod frames;
mod heartbeats;
mod latency;
mod lifecycle;
mod own_record;
mod queries;
mod queues;
mod quorum;
#[cfg(test)]
mod quorum_tests;
mod roster;
mod routing;
#[cfg(test)]
mod tests;
