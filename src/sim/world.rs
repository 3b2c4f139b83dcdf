//! The simulator: many [`Core`]s on a virtual clock, connected by a
//! simulated transport that follows the core's transport contract.
//!
//! - `Connect` completes after one RTT (two one-way latencies) with `PeerUp`
//!   on both sides, or fails with `ConnectFailed` (nobody at the address,
//!   partitioned, wrong id, already connected).
//! - `Send` arrives after the pair's one-way latency, in order, unless the
//!   connection was cut or the frame is lost.
//! - `Disconnect` closes at once on the initiator's side (frames it already
//!   sent still arrive) and one latency later on the other side.
//! - A crash or a partition cuts connections silently: both ends notice
//!   only after the idle timeout.
//! - Timers fire at their time; a re-armed timer replaces the old one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::{SimConfig, splitmix64};
use super::net::Network;
use super::queue::{Action, Queue};
use super::stats::Stats;
use crate::proto::core::{Core, CoreError, Delivery, Input, Output, Persist, TimerId};
use crate::proto::identity::{ClusterId, Identity};
use crate::proto::membership::config::MembershipConfig;
use crate::proto::membership::event::Event;
use crate::proto::membership::sigcache::SigCache;
use crate::proto::roster::Roster;
use crate::proto::roster_epoch::RosterEpoch;
use crate::proto::time::Millis;
use crate::proto::vote::SignedVote;
use crate::proto::wire::{self, Frame};
use crate::testkit::TestNet;

/// How to build one simulated node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Secret seed of its identity (the same key across restarts).
    pub identity_seed: [u8; 32],
    /// The roster it believes in.
    pub roster: Arc<Roster>,
    /// Its membership settings.
    pub config: MembershipConfig,
    /// Addresses it dials to join.
    pub seeds: Vec<SocketAddr>,
}

/// One line of the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Virtual time of the event.
    pub at: Millis,
    /// The node that reported it.
    pub node: usize,
    /// The event.
    pub event: Event,
}

/// A hook that sees every frame handed to the network (`from`, `to`,
/// frame) and may rewrite it, or drop it by returning false: the place for
/// Byzantine behaviours.
pub type FrameFilter = Box<dyn FnMut(usize, usize, &mut Frame) -> bool>;

struct SimNode {
    spec: NodeSpec,
    identity: Arc<Identity>,
    addr: SocketAddr,
    core: Option<Core>,
    life: u32,
    incarnation: u64,
    timers: BTreeMap<TimerId, Millis>,
    roster_epochs: Vec<RosterEpoch>,
    signed_votes: Vec<SignedVote>,
    /// Quorum votes the node signed (restored at restart, like `signed_votes`).
    quorum_votes: Vec<crate::proto::delivery::AttestedVote>,
}

/// What a frame in flight carries.
#[derive(Debug)]
pub(crate) enum Payload {
    Frame(Frame),
    Garbage(String),
}

/// A deterministic simulation of many nodes.
pub struct Sim {
    config: SimConfig,
    now: Millis,
    rng: StdRng,
    queue: Queue,
    nodes: Vec<SimNode>,
    by_addr: BTreeMap<SocketAddr, usize>,
    by_id: BTreeMap<ClusterId, usize>,
    net: Network,
    graceful: BTreeSet<(u64, usize)>,
    sigcache: Arc<SigCache>,
    log: Vec<LogEntry>,
    stats: Stats,
    filter: Option<FrameFilter>,
    scratch: Vec<Output>,
    deliveries: Vec<(Millis, usize, Delivery)>,
}

/// The address of simulated node `i`: `10.x.y.z:7000` with `x.y.z = i + 1`.
pub fn node_addr(i: usize) -> SocketAddr {
    let n = 0x0a00_0000u32.wrapping_add(u32::try_from(i).unwrap_or(0xff_fffe) + 1);
    SocketAddr::from((Ipv4Addr::from(n), 7000))
}

impl Sim {
    /// An empty simulation.
    pub fn new(config: SimConfig) -> Sim {
        Sim {
            rng: StdRng::seed_from_u64(splitmix64(config.seed)),
            config,
            now: Millis::ZERO,
            queue: Queue::default(),
            nodes: Vec::new(),
            by_addr: BTreeMap::new(),
            by_id: BTreeMap::new(),
            net: Network::default(),
            graceful: BTreeSet::new(),
            sigcache: Arc::new(SigCache::new(1 << 18)),
            log: Vec::new(),
            stats: Stats::default(),
            filter: None,
            scratch: Vec::new(),
            deliveries: Vec::new(),
        }
    }

    /// `n` members of one network (weights 1, keys from the seed), all
    /// using node 0 as their seed. Nothing is started yet.
    pub fn cluster(config: SimConfig, n: usize, membership: MembershipConfig) -> Sim {
        let net = TestNet::new(config.seed, &vec![1; n]);
        let mut sim = Sim::new(config);
        for i in 0..n {
            sim.add_node(NodeSpec {
                identity_seed: net.seed_of(i),
                roster: net.roster.clone(),
                config: membership.clone(),
                seeds: vec![node_addr(0)],
            });
        }
        sim
    }

    /// Adds a node (not started) and returns its index.
    pub fn add_node(&mut self, spec: NodeSpec) -> usize {
        let i = self.nodes.len();
        let identity = Arc::new(Identity::from_seed(spec.identity_seed));
        let addr = node_addr(i);
        self.by_addr.insert(addr, i);
        self.by_id.insert(identity.id(), i);
        self.nodes.push(SimNode {
            spec,
            identity,
            addr,
            core: None,
            life: 0,
            incarnation: 0,
            timers: BTreeMap::new(),
            roster_epochs: Vec::new(),
            signed_votes: Vec::new(),
            quorum_votes: Vec::new(),
        });
        i
    }

    /// Starts node `i` now (a fresh core whose previous incarnation is the
    /// last one it persisted). Does nothing if it is running.
    pub fn start(&mut self, i: usize) -> Result<(), CoreError> {
        let Some(node) = self.nodes.get_mut(i) else {
            return Ok(());
        };
        if node.core.is_some() {
            return Ok(());
        }
        let rng_seed =
            splitmix64(self.config.seed ^ splitmix64(((i as u64) << 20) | u64::from(node.life)));
        let core = Core::new(
            node.identity.clone(),
            node.spec.roster.clone(),
            node.spec.config.clone(),
            node.spec.seeds.clone(),
            vec![node.addr],
            node.incarnation,
            rng_seed,
        )?
        .with_signature_cache(self.sigcache.clone())
        .with_roster_state(node.roster_epochs.clone(), node.signed_votes.clone())
        .with_quorum_votes(node.quorum_votes.clone());
        node.core = Some(core);
        let life = node.life;
        self.queue.push(
            self.now,
            Action::Input {
                node: i,
                life,
                input: Input::Start,
            },
        );
        Ok(())
    }

    /// Starts every node that is not running.
    pub fn start_all(&mut self) -> Result<(), CoreError> {
        for i in 0..self.nodes.len() {
            self.start(i)?;
        }
        Ok(())
    }

    /// Crashes node `i`: its core is dropped without a word; its peers
    /// notice after the idle timeout.
    pub fn crash(&mut self, i: usize) {
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        if node.core.take().is_none() {
            return;
        }
        node.life += 1;
        node.timers.clear();
        let cut = self.net.break_where(|a, b| a == i || b == i);
        let at = self.now + self.config.idle_timeout;
        for (a, b, conn) in cut {
            let other = if a == i { b } else { a };
            self.schedule_down(at, other, i, conn, "idle timeout: peer unreachable");
        }
    }

    /// Crashes node `i` (if running) and starts it again with the same key
    /// and a higher incarnation.
    pub fn restart(&mut self, i: usize) -> Result<(), CoreError> {
        self.crash(i);
        self.start(i)
    }

    /// Splits the network: nodes in different groups cannot reach each
    /// other (unlisted nodes form one more group). Connections across are
    /// cut silently and noticed after the idle timeout.
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        self.net.set_partition(groups);
        let reach: Vec<(usize, usize)> = (0..self.nodes.len())
            .flat_map(|a| (0..self.nodes.len()).map(move |b| (a, b)))
            .filter(|&(a, b)| a < b)
            .collect();
        let unreachable: BTreeSet<(usize, usize)> = reach
            .into_iter()
            .filter(|&(a, b)| !self.net.reachable(a, b))
            .collect();
        let cut = self.net.break_where(|a, b| unreachable.contains(&(a, b)));
        let at = self.now + self.config.idle_timeout;
        for (a, b, conn) in cut {
            self.schedule_down(at, a, b, conn, "idle timeout: partitioned");
            self.schedule_down(at, b, a, conn, "idle timeout: partitioned");
        }
    }

    /// Cuts the link between `a` and `b` alone: their connection breaks
    /// silently (both notice after the idle timeout) and they cannot
    /// reconnect until [`Self::restore_link`].
    pub fn cut_link(&mut self, a: usize, b: usize) {
        self.net.block(a, b, true);
        let (x, y) = (a.min(b), a.max(b));
        let cut = self.net.break_where(|p, q| (p, q) == (x, y));
        let at = self.now + self.config.idle_timeout;
        for (p, q, conn) in cut {
            self.schedule_down(at, p, q, conn, "idle timeout: link cut");
            self.schedule_down(at, q, p, conn, "idle timeout: link cut");
        }
    }

    /// Lets `a` and `b` reach each other again after [`Self::cut_link`].
    pub fn restore_link(&mut self, a: usize, b: usize) {
        self.net.block(a, b, false);
    }

    /// Lifts the partition.
    pub fn heal(&mut self) {
        self.net.heal();
    }

    /// Installs a hook over every frame sent (see [`FrameFilter`]).
    pub fn set_filter(&mut self, filter: FrameFilter) {
        self.filter = Some(filter);
    }

    /// Removes the frame hook.
    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Hands `input` to node `i` now.
    pub fn inject(&mut self, i: usize, input: Input) {
        self.deliver_input(i, input);
    }

    /// Sends `frame` from `from` to `to` over their connection, as if `from`
    /// had sent it (bypassing loss and the filter). False if not connected.
    pub fn inject_frame(&mut self, from: usize, to: usize, frame: Frame) -> bool {
        self.inject_payload(from, to, Payload::Frame(frame))
    }

    /// Sends raw bytes from `from` to `to` as one frame: the receiving side
    /// decodes them as the real transport would, so garbage becomes
    /// `Input::MalformedFrame`. False if not connected.
    pub fn inject_bytes(&mut self, from: usize, to: usize, bytes: &[u8]) -> bool {
        let payload = match wire::decode(bytes) {
            Ok(frame) => Payload::Frame(frame),
            Err(e) => Payload::Garbage(e.to_string()),
        };
        self.inject_payload(from, to, payload)
    }

    fn inject_payload(&mut self, from: usize, to: usize, payload: Payload) -> bool {
        let Some(conn) = self.net.get(from, to).filter(|c| !c.broken) else {
            return false;
        };
        let at = self.now + self.latency(from, to);
        self.queue.push(
            at,
            Action::Deliver {
                from,
                to,
                conn: conn.id,
                payload,
            },
        );
        true
    }

    // ----- running -------------------------------------------------------

    /// Processes everything scheduled up to `t`; the clock ends at `t`.
    pub fn run_until(&mut self, t: Millis) {
        while let Some(at) = self.queue.next_at() {
            if at > t {
                break;
            }
            let Some((at, action)) = self.queue.pop() else {
                break;
            };
            self.now = self.now.max(at);
            self.dispatch(action);
        }
        self.now = self.now.max(t);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs until `done` holds (checked every `step`) or `timeout` elapsed;
    /// returns the time it first held.
    pub fn run_until_true(
        &mut self,
        timeout: Duration,
        step: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Millis> {
        let deadline = self.now + timeout;
        loop {
            if done(self) {
                return Some(self.now);
            }
            if self.now >= deadline {
                return None;
            }
            let next = (self.now + step).min(deadline);
            self.run_until(next);
        }
    }

    fn dispatch(&mut self, action: Action) {
        match action {
            Action::Input { node, life, input } => {
                if self.alive_in(node, life) {
                    self.deliver_input(node, input);
                }
            }
            Action::Timer { node, life, id, at } => {
                if self.alive_in(node, life) && self.nodes[node].timers.get(&id) == Some(&at) {
                    self.nodes[node].timers.remove(&id);
                    self.deliver_input(node, Input::Timer(id));
                }
            }
            Action::Deliver {
                from,
                to,
                conn,
                payload,
            } => {
                let current = self
                    .net
                    .get(from, to)
                    .is_some_and(|c| c.id == conn && !c.broken);
                if !current && !self.graceful.contains(&(conn, from)) || !self.is_up(to) {
                    self.stats.frames_dropped += 1;
                    return;
                }
                self.stats.frames_delivered += 1;
                let peer = self.nodes[from].identity.id();
                let input = match payload {
                    Payload::Frame(frame) => Input::Frame { from: peer, frame },
                    Payload::Garbage(error) => Input::MalformedFrame { peer, error },
                };
                self.deliver_input(to, input);
            }
            Action::Dialed {
                from,
                life,
                to,
                addr,
                expected,
            } => self.dialed(from, life, to, addr, expected),
            Action::Down {
                node,
                life,
                peer,
                conn,
                reason,
            } => {
                if !self.alive_in(node, life) || !self.net.down_applies(node, peer, conn) {
                    return;
                }
                self.net.remove(node, peer, conn);
                let peer = self.nodes[peer].identity.id();
                self.deliver_input(node, Input::PeerDown { peer, reason });
            }
        }
    }

    fn alive_in(&self, node: usize, life: u32) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|n| n.life == life && n.core.is_some())
    }

    fn deliver_input(&mut self, node: usize, input: Input) {
        let now = self.now;
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let Some(core) = self.nodes.get_mut(node).and_then(|n| n.core.as_mut()) else {
            self.scratch = out;
            return;
        };
        self.stats.inputs += 1;
        core.handle_into(now, input, &mut out);
        for o in out.drain(..) {
            self.apply_output(node, o);
        }
        self.scratch = out;
    }

    fn apply_output(&mut self, node: usize, o: Output) {
        match o {
            Output::Send { to, frame } => self.send(node, to, frame),
            Output::Connect { addr, expected } => self.connect(node, addr, expected),
            Output::Disconnect { peer, reason } => self.disconnect(node, peer, &reason),
            Output::SetTimer { id, at } => {
                let n = &mut self.nodes[node];
                n.timers.insert(id, at);
                let life = n.life;
                self.queue
                    .push(at.max(self.now), Action::Timer { node, life, id, at });
            }
            Output::Event(event) => self.log.push(LogEntry {
                at: self.now,
                node,
                event,
            }),
            Output::Persist(Persist::Incarnation(n)) => self.nodes[node].incarnation = n,
            Output::Deliver(d) => self.deliveries.push((self.now, node, d)),
            Output::Persist(Persist::RosterEpoch(e)) => self.nodes[node].roster_epochs.push(*e),
            Output::Persist(Persist::SignedVote(v)) => self.nodes[node].signed_votes.push(v),
            Output::Persist(Persist::QuorumVotes(v)) => self.nodes[node].quorum_votes.extend(v),
            // The simulator keeps no vote logs (core tests check them).
            Output::Persist(Persist::VoteLog { .. }) => {}
            // The simulator's nodes restart without data-path state.
            Output::Persist(
                Persist::OutboxAdd(_)
                | Persist::OutboxAck { .. }
                | Persist::NextMessageId(_)
                | Persist::NextSeq { .. }
                | Persist::DedupWindow { .. }
                | Persist::CausalClock { .. },
            ) => {}
        }
    }

    fn latency(&self, a: usize, b: usize) -> Duration {
        Duration::from_millis(self.config.latency.one_way_ms(self.config.seed, a, b))
    }

    fn send(&mut self, from: usize, to: ClusterId, mut frame: Frame) {
        self.stats.frames_sent.incr(frame.kind());
        if self.config.measure_bytes {
            let len = wire::encoded_len(&frame).unwrap_or(0) as u64 + 4;
            self.stats.bytes_sent[frame.kind().index()] += len;
        }
        let Some(&to) = self.by_id.get(&to) else {
            self.stats.frames_dropped += 1;
            return;
        };
        let Some(conn) = self.net.get(from, to).filter(|c| !c.broken) else {
            self.stats.frames_dropped += 1;
            return;
        };
        if self.config.loss_permille > 0 && self.rng.gen_range(0..1000) < self.config.loss_permille
        {
            self.stats.frames_lost += 1;
            return;
        }
        if let Some(filter) = self.filter.as_mut()
            && !filter(from, to, &mut frame)
        {
            self.stats.frames_dropped += 1;
            return;
        }
        let payload = if self.config.wire_roundtrip {
            match wire::encode(&frame).and_then(|b| wire::decode(&b)) {
                Ok(f) => Payload::Frame(f),
                Err(e) => Payload::Garbage(e.to_string()),
            }
        } else {
            Payload::Frame(frame)
        };
        let at = self.now + self.latency(from, to);
        self.queue.push(
            at,
            Action::Deliver {
                from,
                to,
                conn: conn.id,
                payload,
            },
        );
    }

    fn connect(&mut self, from: usize, addr: SocketAddr, expected: Option<ClusterId>) {
        self.stats.dials += 1;
        let life = self.nodes[from].life;
        match self.by_addr.get(&addr).copied() {
            None => self.connect_failed(from, addr, expected, "no answer", true),
            Some(to) => {
                let at = self.now + self.latency(from, to) * 2;
                self.queue.push(
                    at,
                    Action::Dialed {
                        from,
                        life,
                        to,
                        addr,
                        expected,
                    },
                );
            }
        }
    }

    fn connect_failed(
        &mut self,
        from: usize,
        addr: SocketAddr,
        expected: Option<ClusterId>,
        reason: &str,
        timeout: bool,
    ) {
        self.stats.dials_failed += 1;
        let at = if timeout {
            self.now + self.config.connect_timeout
        } else {
            self.now
        };
        let life = self.nodes[from].life;
        self.queue.push(
            at,
            Action::Input {
                node: from,
                life,
                input: Input::ConnectFailed {
                    addr,
                    expected,
                    reason: reason.to_owned(),
                },
            },
        );
    }

    fn dialed(
        &mut self,
        from: usize,
        life: u32,
        to: usize,
        addr: SocketAddr,
        expected: Option<ClusterId>,
    ) {
        if !self.alive_in(from, life) {
            return;
        }
        let rtt = self.latency(from, to) * 2;
        if from == to {
            let peer = self.nodes[from].identity.id();
            let input = Input::PeerUp {
                peer,
                addr,
                rtt,
                inbound: false,
            };
            self.queue.push(
                self.now,
                Action::Input {
                    node: from,
                    life,
                    input,
                },
            );
            return;
        }
        if !self.is_up(to) {
            return self.connect_failed(from, addr, expected, "no answer", true);
        }
        if !self.net.reachable(from, to) {
            return self.connect_failed(from, addr, expected, "unreachable", true);
        }
        let to_id = self.nodes[to].identity.id();
        if expected.is_some_and(|e| e != to_id) {
            return self.connect_failed(from, addr, expected, "peer id mismatch", false);
        }
        if self.net.get(from, to).is_some_and(|c| !c.broken) {
            return self.connect_failed(from, addr, expected, "already connected", false);
        }
        self.net.open(from, to);
        let (from_id, from_addr, to_life) = (
            self.nodes[from].identity.id(),
            self.nodes[from].addr,
            self.nodes[to].life,
        );
        let up_to = Input::PeerUp {
            peer: from_id,
            addr: from_addr,
            rtt,
            inbound: true,
        };
        self.queue.push(
            self.now,
            Action::Input {
                node: to,
                life: to_life,
                input: up_to,
            },
        );
        let up_from = Input::PeerUp {
            peer: to_id,
            addr,
            rtt,
            inbound: false,
        };
        self.queue.push(
            self.now,
            Action::Input {
                node: from,
                life,
                input: up_from,
            },
        );
    }

    fn disconnect(&mut self, from: usize, peer: ClusterId, reason: &str) {
        let Some(&to) = self.by_id.get(&peer) else {
            return;
        };
        if to == from {
            return;
        }
        let Some(conn) = self.net.get(from, to) else {
            return;
        };
        self.net.remove(from, to, conn.id);
        self.graceful.insert((conn.id, from));
        self.schedule_down(
            self.now,
            from,
            to,
            conn.id,
            &format!("closed locally: {reason}"),
        );
        if !conn.broken {
            let at = self.now + self.latency(from, to);
            self.schedule_down(at, to, from, conn.id, &format!("closed by peer: {reason}"));
        }
    }

    fn schedule_down(&mut self, at: Millis, node: usize, peer: usize, conn: u64, reason: &str) {
        let life = self.nodes[node].life;
        self.queue.push(
            at,
            Action::Down {
                node,
                life,
                peer,
                conn,
                reason: reason.to_owned(),
            },
        );
    }

    // ----- queries -------------------------------------------------------

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// The simulation settings.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Current virtual time.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if there is no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s cluster id.
    pub fn id(&self, i: usize) -> ClusterId {
        self.nodes[i].identity.id()
    }

    /// The node with cluster id `id`.
    pub fn index_of(&self, id: &ClusterId) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Node `i`'s address.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr
    }

    /// Node `i`'s core, if running.
    pub fn core(&self, i: usize) -> Option<&Core> {
        self.nodes.get(i).and_then(|n| n.core.as_ref())
    }

    /// True if node `i` is running.
    pub fn is_up(&self, i: usize) -> bool {
        self.core(i).is_some()
    }

    /// Indices of the running nodes.
    pub fn up_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.is_up(*i)).collect()
    }

    /// The roster epochs node `i` persisted, in order.
    pub fn persisted_epochs(&self, i: usize) -> &[RosterEpoch] {
        self.nodes.get(i).map_or(&[], |n| &n.roster_epochs)
    }

    /// The roster-change votes node `i` persisted.
    pub fn persisted_votes(&self, i: usize) -> &[SignedVote] {
        self.nodes.get(i).map_or(&[], |n| &n.signed_votes)
    }

    /// The last incarnation node `i` persisted.
    pub fn persisted_incarnation(&self, i: usize) -> u64 {
        self.nodes[i].incarnation
    }

    /// Every event reported so far, in order.
    pub fn log(&self) -> &[LogEntry] {
        &self.log
    }

    /// Every routed delivery so far (time, node, delivery), in order.
    pub fn deliveries(&self) -> &[(Millis, usize, Delivery)] {
        &self.deliveries
    }

    /// Traffic statistics so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Open simulated connections, and actions still queued (diagnostics).
    pub fn load(&self) -> (usize, usize) {
        (self.net.conns(), self.queue.len())
    }

    /// "seed S at T": the prefix of every failure message, so any failure
    /// can be replayed.
    pub fn context(&self) -> String {
        format!("[sim seed {} at {}]", self.config.seed, self.now)
    }
}
