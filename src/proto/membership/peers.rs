//! Which peers to talk to: admission (roster membership, the `Hello`
//! checks) and the shape of the mesh.
//!
//! Mesh rules, applied once per gossip round:
//! - below `degree` live links, dial alive members (preferring those whose
//!   record shows fewer than `degree` links, never those at `max_degree`
//!   unless we are isolated), at most `max_dials_per_round` at a time;
//! - with no link at all, re-dial the seeds every `seed_retry_interval`;
//! - every `reconnect_interval`, probe one dead member (or one whose
//!   tombstone expired less than `reconnect_ttl` ago), so a healed
//!   partition reconnects by itself;
//! - every `explore_interval`, dial one more random member to discover
//!   better links;
//! - above `max_degree` links, prune: keep the `degree - far_links`
//!   lowest-RTT links and `far_links` random others (long-range shortcuts,
//!   corrosion's RTT rings idea), close the worst of the rest that are older
//!   than `min_link_age`; above `max_links`, links only need to be older
//!   than `join_grace` (a seed flooded by joiners sheds them once they synced).
//!
//! All choices iterate ordered maps and draw from the injected RNG.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;
use rand::seq::SliceRandom;

use super::config::MembershipConfig;
use super::failure::MemberState;
use super::table::MemberTable;
use crate::proto::bytes32::NetworkId;
use crate::proto::identity::ClusterId;
use crate::proto::roster::Roster;
use crate::proto::time::Millis;
use crate::proto::wire::{FrameError, PROTOCOL_VERSION};

/// Why a peer is refused or a connection closed; its text is the `Goodbye` reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The peer's key is not in the roster and the node is not in open mode.
    #[error("cluster {peer} is not a member of network {network:?} (roster epoch {epoch})")]
    NotAMember {
        /// The refused peer.
        peer: ClusterId,
        /// The network's name.
        network: String,
        /// The roster epoch consulted.
        epoch: u64,
    },
    /// The peer's key is not a usable ed25519 key (open mode).
    #[error("cluster id is not a usable key: {0}")]
    BadKey(String),
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: we speak {ours}, peer speaks {theirs}")]
    ProtocolVersion {
        /// Our version.
        ours: u16,
        /// The peer's version.
        theirs: u16,
    },
    /// The peer belongs to another federation.
    #[error("network id mismatch: ours is {ours}, peer's is {theirs}")]
    WrongNetwork {
        /// Our network id.
        ours: NetworkId,
        /// The peer's network id.
        theirs: NetworkId,
    },
    /// The `Hello` names another sender than the authenticated one.
    #[error("hello names sender {claimed} but the connection authenticated {authenticated}")]
    SenderMismatch {
        /// The id the transport authenticated.
        authenticated: ClusterId,
        /// The id the `Hello` claims.
        claimed: ClusterId,
    },
    /// We connected to ourselves (our own address among the seeds).
    #[error("connected to ourselves")]
    Myself,
    /// We hold too many links to accept another.
    #[error("too many links ({0}), try another member")]
    TooManyLinks(usize),
    /// We are leaving the federation.
    #[error("leaving the federation")]
    Leaving,
    /// The transport could not decode a frame from the peer.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A decoded frame breaks a bound.
    #[error("oversized frame: {0}")]
    Oversized(FrameError),
    /// A frame arrived out of protocol order.
    #[error("protocol violation: {0}")]
    Violation(&'static str),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The link was pruned to keep the mesh degree bounded.
    #[error("pruned: keeping the mesh degree bounded")]
    Pruned,
    /// The peer was declared dead (heartbeats stopped).
    #[error("declared dead: no heartbeat for too long")]
    Dead,
    /// The link policy does not allow a link with the peer.
    #[error("link policy: cluster {peer} is not in this node's allowed_peers")]
    NotAllowed {
        /// The refused peer.
        peer: ClusterId,
    },
}

/// Whether `peer` may connect: a roster member, or any valid key in open mode.
pub fn admit(roster: &Roster, open: bool, peer: &ClusterId) -> Result<(), Refusal> {
    if roster.member(peer).is_some() {
        return Ok(());
    }
    if open {
        return peer
            .verifying_key()
            .map(|_| ())
            .map_err(|e| Refusal::BadKey(e.to_string()));
    }
    Err(Refusal::NotAMember {
        peer: *peer,
        network: roster.network_name().to_owned(),
        epoch: roster.epoch(),
    })
}

/// The `Hello`/`HelloAck` checks: protocol version first (other fields may
/// mean something else in another version), then network, then sender.
pub fn check_hello(
    ours: &NetworkId,
    authenticated: &ClusterId,
    protocol_version: u16,
    network_id: &NetworkId,
    sender: &ClusterId,
) -> Result<(), Refusal> {
    if protocol_version != PROTOCOL_VERSION {
        return Err(Refusal::ProtocolVersion {
            ours: PROTOCOL_VERSION,
            theirs: protocol_version,
        });
    }
    if network_id != ours {
        return Err(Refusal::WrongNetwork {
            ours: *ours,
            theirs: *network_id,
        });
    }
    if sender != authenticated {
        return Err(Refusal::SenderMismatch {
            authenticated: *authenticated,
            claimed: *sender,
        });
    }
    Ok(())
}

/// Handshake progress of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LinkState {
    /// Inbound: waiting for the peer's `Hello`.
    AwaitingHello,
    /// Outbound: `Hello` sent, waiting for `HelloAck`.
    AwaitingHelloAck,
    /// Handshake done; gossip flows.
    Established,
}

/// `Syn` frames answered per peer and gossip round. An honest peer sends
/// one per round of its own (plus one when the link comes up); answering a
/// digest can cost up to `max_gossip_bytes`, so a peer may not ask more often.
pub const SYNS_PER_ROUND: u8 = 4;

/// One connection, as reported by the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The peer's address as the transport sees it.
    pub addr: SocketAddr,
    /// Latest RTT sample.
    pub rtt: Duration,
    /// True if the peer dialed us.
    pub inbound: bool,
    /// Handshake progress.
    pub state: LinkState,
    /// When the connection came up.
    pub since: Millis,
    /// When we started closing it (`Goodbye` sent or received); the
    /// transport's `PeerDown` that follows is expected, not a failure.
    pub closing: Option<Millis>,
    /// `Syn` frames the peer may still send this round.
    pub syn_budget: u8,
}

impl Link {
    /// Established and not closing.
    pub fn is_live(&self) -> bool {
        self.state == LinkState::Established && self.closing.is_none()
    }
}

/// A dial in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// The id we expect at that address (`None` for a seed).
    pub expected: Option<ClusterId>,
    /// When the dial started.
    pub at: Millis,
}

/// What the mesh rules decided this round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Addresses to dial, with the id expected there.
    pub dials: Vec<(SocketAddr, Option<ClusterId>)>,
    /// Links to close.
    pub prunes: Vec<ClusterId>,
}

/// What timed out this round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expired {
    /// Dials abandoned.
    pub dials: usize,
    /// Connections whose handshake did not finish.
    pub handshakes: Vec<ClusterId>,
}

/// Links, dials in flight and the mesh-shaping timers.
#[derive(Debug, Clone)]
pub struct Peers {
    links: BTreeMap<ClusterId, Link>,
    pending: BTreeMap<SocketAddr, Pending>,
    backoff: BTreeMap<ClusterId, Millis>,
    seeds: Vec<SocketAddr>,
    own_addrs: BTreeSet<SocketAddr>,
    next_seed_dial: Millis,
    next_probe: Millis,
    next_explore: Millis,
    forgotten: BTreeMap<ClusterId, (SocketAddr, Millis)>,
}

impl Peers {
    /// No links yet; `seeds` are dialed on the first round.
    pub fn new(seeds: Vec<SocketAddr>, own_addrs: &[SocketAddr]) -> Self {
        Peers {
            links: BTreeMap::new(),
            pending: BTreeMap::new(),
            backoff: BTreeMap::new(),
            seeds,
            own_addrs: own_addrs.iter().copied().collect(),
            next_seed_dial: Millis::ZERO,
            next_probe: Millis::ZERO,
            next_explore: Millis::ZERO,
            forgotten: BTreeMap::new(),
        }
    }

    /// Keeps probing the address of a dead member whose tombstone expired,
    /// until `until` (Serf's reconnect timeout): without it, a partition
    /// longer than the tombstone TTL would never heal unless a seed sat on
    /// the other side. At most `max` such addresses are kept.
    pub fn remember(&mut self, id: ClusterId, addr: SocketAddr, until: Millis, max: usize) {
        if self.forgotten.len() >= max && !self.forgotten.contains_key(&id) {
            let oldest = self
                .forgotten
                .iter()
                .min_by_key(|(id, (_, until))| (*until, **id))
                .map(|(id, _)| *id);
            if let Some(old) = oldest {
                self.forgotten.remove(&old);
            }
        }
        self.forgotten.insert(id, (addr, until));
    }

    /// Addresses of forgotten dead members still probed.
    pub fn forgotten(&self) -> usize {
        self.forgotten.len()
    }

    /// Every connection, in id order.
    pub fn links(&self) -> impl Iterator<Item = (&ClusterId, &Link)> {
        self.links.iter()
    }

    /// The connection to `peer`.
    pub fn link(&self, peer: &ClusterId) -> Option<&Link> {
        self.links.get(peer)
    }

    /// The connection to `peer`, mutably.
    pub fn link_mut(&mut self, peer: &ClusterId) -> Option<&mut Link> {
        self.links.get_mut(peer)
    }

    /// Peers with an established, non-closing link, in id order.
    pub fn live(&self) -> Vec<ClusterId> {
        self.links
            .iter()
            .filter(|(_, l)| l.is_live())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Dials in flight.
    pub fn pending(&self) -> impl Iterator<Item = (&SocketAddr, &Pending)> {
        self.pending.iter()
    }

    /// Records a dial we are starting.
    pub fn dialing(&mut self, addr: SocketAddr, expected: Option<ClusterId>, now: Millis) {
        self.pending.insert(addr, Pending { expected, at: now });
    }

    /// Remembers that `addr` reaches this very node.
    pub fn own_addr(&mut self, addr: SocketAddr) {
        self.own_addrs.insert(addr);
    }

    /// A connection came up (it replaces any previous one to `peer`).
    pub fn up(
        &mut self,
        peer: ClusterId,
        addr: SocketAddr,
        rtt: Duration,
        inbound: bool,
        now: Millis,
    ) {
        self.pending
            .retain(|a, p| *a != addr && p.expected != Some(peer));
        self.backoff.remove(&peer);
        let state = if inbound {
            LinkState::AwaitingHello
        } else {
            LinkState::AwaitingHelloAck
        };
        self.links.insert(
            peer,
            Link {
                addr,
                rtt,
                inbound,
                state,
                since: now,
                closing: None,
                syn_budget: SYNS_PER_ROUND,
            },
        );
    }

    /// Consumes one `Syn` of `peer`'s budget; false if it is spent.
    pub fn take_syn(&mut self, peer: &ClusterId) -> bool {
        match self.links.get_mut(peer) {
            Some(l) if l.syn_budget > 0 => {
                l.syn_budget -= 1;
                true
            }
            _ => false,
        }
    }

    /// Starts a new round of `Syn` budgets.
    pub fn refill_syn_budgets(&mut self) {
        for l in self.links.values_mut() {
            l.syn_budget = SYNS_PER_ROUND;
        }
    }

    /// A connection ended; returns the link it was.
    pub fn down(&mut self, peer: &ClusterId) -> Option<Link> {
        self.pending.retain(|_, p| p.expected != Some(*peer));
        self.links.remove(peer)
    }

    /// A dial failed; the expected cluster is not dialed again for `backoff`.
    pub fn dial_failed(
        &mut self,
        addr: &SocketAddr,
        expected: Option<ClusterId>,
        now: Millis,
        backoff: Duration,
    ) {
        let removed = self.pending.remove(addr);
        if let Some(id) = expected.or(removed.and_then(|p| p.expected)) {
            self.backoff.insert(id, now + backoff);
        }
    }

    /// Starts closing the link to `peer` (if any).
    pub fn close(&mut self, peer: &ClusterId, now: Millis) {
        if let Some(l) = self.links.get_mut(peer) {
            l.closing.get_or_insert(now);
        }
    }

    /// Abandons dials and handshakes older than `dial_timeout`, and forgets
    /// closing links the transport never confirmed.
    pub fn expire(&mut self, now: Millis, cfg: &MembershipConfig) -> Expired {
        let mut out = Expired::default();
        let timeout = cfg.dial_timeout;
        let mut failed = Vec::new();
        self.pending.retain(|_, p| {
            let keep = now.since(p.at) < timeout;
            if !keep {
                out.dials += 1;
                failed.extend(p.expected);
            }
            keep
        });
        for id in failed {
            self.backoff.insert(id, now + cfg.dial_backoff);
        }
        self.links
            .retain(|_, l| l.closing.is_none_or(|t| now.since(t) < timeout));
        out.handshakes = self
            .links
            .iter()
            .filter(|(_, l)| {
                l.closing.is_none()
                    && l.state != LinkState::Established
                    && now.since(l.since) >= timeout
            })
            .map(|(id, _)| *id)
            .collect();
        self.backoff.retain(|_, until| *until > now);
        out
    }

    /// Applies the mesh rules of the module docs.
    pub fn plan<R: Rng>(
        &mut self,
        now: Millis,
        cfg: &MembershipConfig,
        table: &MemberTable,
        rng: &mut R,
    ) -> Plan {
        let mut plan = Plan::default();
        let live_links = self.links.values().filter(|l| l.closing.is_none()).count();
        let active = live_links.saturating_add(self.pending.len());

        if live_links == 0 && now >= self.next_seed_dial {
            self.next_seed_dial = now + cfg.seed_retry_interval;
            for s in &self.seeds {
                if !self.pending.contains_key(s) && !self.own_addrs.contains(s) {
                    plan.dials.push((*s, None));
                }
            }
        }

        let pending_ids: BTreeSet<ClusterId> =
            self.pending.values().filter_map(|p| p.expected).collect();
        // Clusters the link policy excludes are never dialed.
        let busy = |id: &ClusterId| {
            *id == table.local()
                || self.links.contains_key(id)
                || pending_ids.contains(id)
                || !cfg.link_policy.allows(id)
        };
        let dialable = |state: MemberState, id: &ClusterId| -> Option<SocketAddr> {
            let e = table.get(id)?;
            if e.state() != state || busy(id) || self.backoff.contains_key(id) {
                return None;
            }
            let addr = *e.record().record.addrs.first()?;
            (!self.pending.contains_key(&addr) && !self.own_addrs.contains(&addr)).then_some(addr)
        };

        // Alive candidates by how many links their record advertises
        // (computed only when a dial may follow).
        let explore_due = now >= self.next_explore;
        if explore_due {
            self.next_explore = now + cfg.explore_interval;
        }
        let explore = explore_due && live_links >= cfg.degree && active < cfg.max_links;
        let mut classes: [Vec<(ClusterId, SocketAddr)>; 3] = Default::default();
        let wanted = active < cfg.degree || explore;
        for (id, e) in table.iter().filter(|_| wanted) {
            if let Some(addr) = dialable(MemberState::Alive, id) {
                let n = e.record().record.links.len();
                let class = if n < cfg.degree {
                    0
                } else if n < cfg.max_degree {
                    1
                } else {
                    2
                };
                classes[class].push((*id, addr));
            }
        }
        for c in classes.iter_mut() {
            c.shuffle(rng);
        }
        let [wanting, open, full] = classes;
        let mut ordered: Vec<(ClusterId, SocketAddr)> = wanting.into_iter().chain(open).collect();
        if live_links == 0 {
            ordered.extend(full);
        }
        let mut next = ordered.into_iter();
        if active < cfg.degree {
            let n = (cfg.degree - active).min(cfg.max_dials_per_round);
            for (id, addr) in next.by_ref().take(n) {
                plan.dials.push((addr, Some(id)));
            }
        }
        if explore && let Some((id, addr)) = next.next() {
            plan.dials.push((addr, Some(id)));
        }

        if now >= self.next_probe {
            self.next_probe = now + cfg.reconnect_interval;
            self.forgotten
                .retain(|id, (_, until)| *until > now && table.get(id).is_none());
            let mut dead: Vec<(ClusterId, SocketAddr)> = table
                .iter()
                .filter_map(|(id, _)| dialable(MemberState::Dead, id).map(|a| (*id, a)))
                .collect();
            dead.extend(
                self.forgotten
                    .iter()
                    .filter(|(id, (addr, _))| {
                        !busy(id)
                            && !self.pending.contains_key(addr)
                            && !self.own_addrs.contains(addr)
                    })
                    .map(|(id, (addr, _))| (*id, *addr)),
            );
            if let Some((id, addr)) = dead.choose(rng) {
                plan.dials.push((*addr, Some(*id)));
            }
        }

        plan.prunes = self.prune(now, cfg, rng);
        for (addr, expected) in &plan.dials {
            self.dialing(*addr, *expected, now);
        }
        plan
    }

    fn prune<R: Rng>(&self, now: Millis, cfg: &MembershipConfig, rng: &mut R) -> Vec<ClusterId> {
        let mut live: Vec<(ClusterId, &Link)> = self
            .links
            .iter()
            .filter(|(_, l)| l.is_live())
            .map(|(id, l)| (*id, l))
            .collect();
        if live.len() <= cfg.max_degree {
            return Vec::new();
        }
        let total = live.len();
        live.sort_by_key(|(id, l)| (l.rtt, *id));
        let near = cfg.degree - cfg.far_links;
        let mut rest = live.split_off(near.min(live.len()));
        rest.shuffle(rng);
        let far = cfg.far_links.min(rest.len());
        let mut droppable: Vec<(ClusterId, &Link)> = rest.split_off(far);
        droppable.sort_by_key(|(id, l)| (std::cmp::Reverse(l.rtt), *id));
        let old = |l: &Link, age: Duration| now.since(l.since) >= age;
        // Over the hard limit: shed the excess once it had time to sync.
        let mut out: Vec<ClusterId> = droppable
            .iter()
            .filter(|(_, l)| old(l, cfg.join_grace))
            .take(total.saturating_sub(cfg.max_links))
            .map(|(id, _)| *id)
            .collect();
        // Over the degree bound: drop the worst links that are old enough.
        let excess = total - cfg.max_degree;
        for (id, l) in &droppable {
            if out.len() >= excess {
                break;
            }
            if old(l, cfg.min_link_age) && !out.contains(id) {
                out.push(*id);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::identity::Identity;
    use crate::proto::membership::record::{NodeRecord, SignedRecord};
    use crate::testkit::TestNet;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn admission_and_hello_checks() {
        let net = TestNet::new(1, &[1, 1]);
        let member = net.identities[0].id();
        let stranger = Identity::from_seed([42; 32]).id();
        assert!(admit(&net.roster, false, &member).is_ok());
        let err = admit(&net.roster, false, &stranger).unwrap_err();
        assert!(err.to_string().contains("is not a member of network"));
        assert!(admit(&net.roster, true, &stranger).is_ok());
        let mut weak = [0u8; 32];
        weak[0] = 1;
        assert!(matches!(
            admit(&net.roster, true, &ClusterId(weak)),
            Err(Refusal::BadKey(_))
        ));
        let nid = net.roster.network_id();
        assert!(check_hello(&nid, &member, PROTOCOL_VERSION, &nid, &member).is_ok());
        let e = check_hello(&nid, &member, 99, &NetworkId([0; 32]), &stranger).unwrap_err();
        assert!(matches!(e, Refusal::ProtocolVersion { theirs: 99, .. }));
        let e = check_hello(
            &nid,
            &member,
            PROTOCOL_VERSION,
            &NetworkId([0; 32]),
            &member,
        );
        assert!(e.unwrap_err().to_string().contains("network id mismatch"));
        let e = check_hello(&nid, &member, PROTOCOL_VERSION, &nid, &stranger);
        assert!(matches!(e, Err(Refusal::SenderMismatch { .. })));
    }

    fn table_of(net: &TestNet, links: usize) -> MemberTable {
        let sign = |i: usize| {
            let who = &net.identities[i];
            let record = NodeRecord {
                id: who.id(),
                incarnation: 1,
                revision: 1,
                roster_epoch: 0,
                left: false,
                addrs: vec![SocketAddr::from(([10, 0, 0, i as u8 + 1], 7000))],
                links: vec![],
                queues: vec![],
                subscriptions: Vec::new(),
            };
            let mut r = SignedRecord::sign(record, who, &net.roster.network_id()).unwrap();
            // Advertised link counts only steer dialing; signatures are not checked here.
            std::sync::Arc::make_mut(&mut r.record).links = (0..links)
                .map(|k| crate::proto::membership::record::LinkInfo {
                    peer: ClusterId([k as u8 + 100; 32]),
                    rtt_micros: 1,
                })
                .collect();
            r
        };
        let mut t = MemberTable::new(sign(0), Millis(0), 10);
        for i in 1..net.identities.len() {
            t.apply(sign(i), Millis(0));
        }
        t
    }

    #[test]
    fn dials_seeds_when_alone_then_members_up_to_degree() {
        let net = TestNet::new(2, &[1; 12]);
        let cfg = MembershipConfig::default();
        let seed: SocketAddr = "10.9.9.9:7000".parse().unwrap();
        let me: SocketAddr = "10.0.0.1:7000".parse().unwrap();
        let mut p = Peers::new(vec![seed, me], &[me]);
        let mut rng = StdRng::seed_from_u64(3);
        let t = MemberTable::new(
            table_of(&net, 0)
                .get(&net.identities[0].id())
                .unwrap()
                .record()
                .clone(),
            Millis(0),
            10,
        );
        let plan = p.plan(Millis(0), &cfg, &t, &mut rng);
        assert_eq!(plan.dials, vec![(seed, None)]);
        // Not again while the dial is pending or before the retry interval.
        assert!(p.plan(Millis(100), &cfg, &t, &mut rng).dials.is_empty());
        let t = table_of(&net, 0);
        let plan = p.plan(Millis(200), &cfg, &t, &mut rng);
        assert_eq!(plan.dials.len(), cfg.max_dials_per_round);
        assert!(plan.dials.iter().all(|(_, id)| id.is_some()));
        // Failed dials back off, expired ones too.
        let (addr, id) = plan.dials[0];
        p.dial_failed(&addr, id, Millis(300), cfg.dial_backoff);
        let exp = p.expire(Millis(200) + cfg.dial_timeout, &cfg);
        assert_eq!(exp.dials, 3, "the seed and two members");
    }

    #[test]
    fn prunes_worst_rtt_but_keeps_near_and_far_links() {
        let net = TestNet::new(3, &[1; 2]);
        let cfg = MembershipConfig::default();
        let t = table_of(&net, 0);
        let mut p = Peers::new(vec![], &[]);
        let mut rng = StdRng::seed_from_u64(4);
        let n = cfg.max_degree + 3;
        for i in 0..n {
            let id = ClusterId([i as u8 + 1; 32]);
            p.up(
                id,
                SocketAddr::from(([10, 1, 0, i as u8], 7000)),
                Duration::from_millis(10 * (i as u64 + 1)),
                true,
                Millis(0),
            );
            p.link_mut(&id).unwrap().state = LinkState::Established;
        }
        // Too young to prune.
        assert!(p.plan(Millis(1000), &cfg, &t, &mut rng).prunes.is_empty());
        let prunes = p
            .plan(Millis(0) + cfg.min_link_age, &cfg, &t, &mut rng)
            .prunes;
        assert_eq!(prunes.len(), 3);
        let near = cfg.degree - cfg.far_links;
        for id in &prunes {
            assert!(id.0[0] as usize > near, "near links are kept");
        }
    }
}
