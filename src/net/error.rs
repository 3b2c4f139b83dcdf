//! Transport errors.

use std::net::SocketAddr;
use std::time::Duration;

use super::queue::Priority;
use super::tls::{PeerCertError, TlsError};
use crate::proto::ClusterId;

/// Why a transport could not be created, or a link could not be established.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// quinn spawns its endpoint driver on the current tokio runtime.
    #[error("the transport must be created inside a tokio runtime")]
    NoRuntime,
    /// An option is out of range.
    #[error("invalid transport options: {0}")]
    Options(String),
    /// Our own certificate would be refused by every peer.
    #[error("the local certificate is unusable")]
    Material(#[source] PeerCertError),
    /// Our certificate carries another id than the material claims.
    #[error("the local certificate is for cluster {found}, but the material claims {claimed}")]
    MaterialMismatch {
        /// The id the material claims.
        claimed: ClusterId,
        /// The id in its certificate.
        found: ClusterId,
    },
    /// rustls or quinn refused the crypto configuration.
    #[error("cannot build the TLS configuration")]
    Tls(#[from] TlsError),
    /// The UDP socket could not be bound or set up.
    #[error("cannot bind UDP socket {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// quinn refused to start the dial (e.g. an unroutable address).
    #[error("cannot dial {addr}")]
    Connect {
        /// The address dialed.
        addr: SocketAddr,
        /// quinn's reason.
        #[source]
        source: quinn::ConnectError,
    },
    /// The handshake did not finish in time.
    #[error("handshake with {addr} timed out after {after:?}")]
    HandshakeTimeout {
        /// The peer's address.
        addr: SocketAddr,
        /// The timeout that expired.
        after: Duration,
    },
    /// The handshake failed (refused certificate, TLS alert, connection
    /// closed by the peer...).
    #[error("handshake with {addr} failed")]
    Handshake {
        /// The peer's address.
        addr: SocketAddr,
        /// quinn's description, including the TLS reason.
        #[source]
        source: quinn::ConnectionError,
    },
    /// The dialed address answered with another cluster than the pinned one.
    #[error("{addr} is cluster {found}, not the expected cluster {expected}")]
    PeerMismatch {
        /// The address dialed.
        addr: SocketAddr,
        /// The pinned id.
        expected: ClusterId,
        /// The id the peer proved.
        found: ClusterId,
    },
    /// The handshake completed without a usable peer certificate (should be
    /// impossible with our verifiers; checked rather than assumed).
    #[error("peer {addr} completed the handshake without a usable identity")]
    NoPeerIdentity {
        /// The peer's address.
        addr: SocketAddr,
    },
}

/// Why [`Link::send`](super::Link::send) refused a frame. The frame is not
/// sent; nothing is dropped without one of these being returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The priority class is full (or the link is over its byte budget): the
    /// peer is not keeping up. Counted in `queue_full`.
    #[error("{priority:?} send queue is full ({capacity} frames per class)")]
    QueueFull {
        /// The class that was full.
        priority: Priority,
        /// Its capacity in frames.
        capacity: usize,
    },
    /// The frame exceeds the frame cap; the peer would refuse it and close
    /// the link, so it is refused here instead.
    #[error("frame of {len} bytes exceeds the {cap}-byte cap")]
    TooLarge {
        /// The payload length.
        len: usize,
        /// The cap.
        cap: usize,
    },
    /// The link is closed.
    #[error("link is closed")]
    Closed,
}
