//! Read-only views of the membership state, for the admin API and tests.

use std::net::SocketAddr;
use std::time::Duration;

use super::failure::MemberState;
use super::peers::LinkState;
use crate::proto::identity::ClusterId;
use crate::proto::time::Millis;

/// One known cluster, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberStatus {
    /// The cluster.
    pub id: ClusterId,
    /// Its name in the roster, if it is a member.
    pub name: Option<String>,
    /// True for this node itself.
    pub local: bool,
    /// True if it has no voting weight (not in the roster, or weight 0).
    pub observer: bool,
    /// Its liveness.
    pub state: MemberState,
    /// When it entered that state (on this node's clock).
    pub since: Millis,
    /// Addresses it advertises.
    pub addrs: Vec<SocketAddr>,
    /// Its incarnation.
    pub incarnation: u64,
    /// Its latest heartbeat.
    pub heartbeat: u64,
    /// The roster epoch it holds.
    pub roster_epoch: u64,
    /// RTT of our direct link to it, if any.
    pub rtt: Option<Duration>,
    /// Number of links its record advertises.
    pub links: usize,
    /// Current phi of its heartbeat arrivals (0..=20; 0 for this node).
    pub phi: u32,
    /// Queues it hosts.
    pub queues: Vec<String>,
}

/// One connection of this node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LinkStatus {
    /// The peer.
    pub peer: ClusterId,
    /// Its name in the roster, if it is a member.
    pub name: Option<String>,
    /// Its address as the transport sees it.
    pub addr: SocketAddr,
    /// Latest RTT sample.
    pub rtt: Duration,
    /// True if it dialed us.
    pub inbound: bool,
    /// Handshake progress.
    pub state: LinkState,
    /// When the connection came up.
    pub since: Millis,
    /// True while we are closing it.
    pub closing: bool,
}
