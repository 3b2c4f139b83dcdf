//! A [`Link`]: one authenticated QUIC connection to a peer cluster, with a
//! writer task fed by a prioritised, bounded queue and a reader task that
//! reports [`LinkEvent`]s.
//!
//! # Stream layout
//!
//! Each direction uses **one unidirectional stream**, opened lazily by the
//! writer on its first frame and accepted by the peer's reader. Unidirectional
//! because each side's writer then owns its stream outright: no rule is
//! needed for which side opens a shared bidirectional stream (quinn only
//! announces a bi stream once its opener writes to it, and both sides dial
//! each other in a mesh), and a failure on one direction does not entangle
//! the other. One stream rather than one per priority, because a single
//! stream keeps frames of a class in order and priority is already applied
//! in the queue, before bytes reach QUIC; the price is that a lost packet
//! briefly delays everything behind it, which the queue ordering bounds.
//! Peers may open at most one uni stream at a time and no bi streams (see
//! the transport config), so a peer cannot pile up streams.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use quinn::{ConnectionError, VarInt};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::error::SendError;
use super::framing::{FrameError, append_frame, read_frame};
use super::queue::{PushError, SendQueue};
use super::stats::{LinkCounters, LinkStats, TransportCounters};
use crate::proto::ClusterId;

pub use super::queue::Priority;

/// The QUIC application error codes this transport closes connections with,
/// so that both logs can tell a refusal from a fault.
pub mod close_code {
    /// [`Link::close`](super::Link::close): the owner decided to close (a
    /// refused peer, a protocol mismatch, shutting a link down).
    pub const REQUESTED: u32 = 0;
    /// The peer sent a malformed frame stream (oversized prefix, truncation).
    pub const MALFORMED: u32 = 1;
    /// Writing to the peer failed; the link is not left half-alive.
    pub const SEND_FAILED: u32 = 2;
    /// The local transport was closed.
    pub const SHUTDOWN: u32 = 3;
    /// The [`Link`](super::Link) was dropped without being closed.
    pub const DROPPED: u32 = 4;
    /// The handshake left no usable peer identity.
    pub const NO_IDENTITY: u32 = 5;
    /// Nobody receives this link's events any more.
    pub const RECEIVER_GONE: u32 = 6;
}

/// Longest close reason sent; the reason must fit in one packet.
const MAX_REASON_LEN: usize = 256;

/// Most payload bytes the writer takes from the queue for one stream
/// write (a frame larger than this goes alone). One write per frame took
/// the connection's lock and woke its driver for every frame, and left
/// QUIC to packetize frames one by one.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// The reader's buffer over the stream.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Identifies one link for the life of its transport. Two links to the same
/// peer (both sides dialed at once) have different ids, so events can be
/// told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

impl std::fmt::Display for LinkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "link#{}", self.0)
    }
}

/// Why a link closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed it, with this application code and reason.
    Remote {
        /// One of [`close_code`] if the peer is fedmesh.
        code: u64,
        /// The peer's reason, as text.
        reason: String,
    },
    /// This side closed it (owner request, malformed input, failed send,
    /// transport shutdown, dropped link).
    Local {
        /// One of [`close_code`].
        code: u64,
        /// The reason sent to the peer.
        reason: String,
    },
    /// Nothing was heard from the peer within the idle timeout.
    TimedOut,
    /// A transport-level failure (reset, protocol violation, TLS alert).
    Transport(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Remote { code, reason } => {
                write!(f, "closed by peer (code {code}): {reason}")
            }
            CloseReason::Local { code, reason } => {
                write!(f, "closed locally (code {code}): {reason}")
            }
            CloseReason::TimedOut => f.write_str("timed out: nothing heard from the peer"),
            CloseReason::Transport(e) => write!(f, "transport failure: {e}"),
        }
    }
}

/// What a link's reader reports.
#[derive(Debug)]
pub enum LinkEvent {
    /// One frame's payload (not yet decoded: that is the caller's job).
    Frame {
        /// The link it came on.
        link: LinkId,
        /// The authenticated sender.
        peer: ClusterId,
        /// The payload.
        bytes: Vec<u8>,
    },
    /// The peer's stream was malformed; the link is being closed and a
    /// `Closed` event follows.
    Malformed {
        /// The link.
        link: LinkId,
        /// The peer.
        peer: ClusterId,
        /// What was wrong.
        error: FrameError,
    },
    /// The link is closed; it is the last event of its link.
    Closed {
        /// The link.
        link: LinkId,
        /// The peer.
        peer: ClusterId,
        /// Why.
        reason: CloseReason,
    },
}

/// What every link of a transport shares with it.
#[derive(Debug)]
pub(crate) struct LinkContext {
    pub(crate) counters: TransportCounters,
    /// Set by `Transport::close`, so links closed by it can say so.
    pub(crate) shutdown: OnceLock<(u64, String)>,
    pub(crate) next_id: AtomicU64,
    pub(crate) frame_cap: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) queue_bytes: usize,
}

#[derive(Debug)]
struct Shared {
    id: LinkId,
    peer: ClusterId,
    conn: quinn::Connection,
    queue: SendQueue,
    counters: LinkCounters,
    /// The first reason this side closed the connection with: quinn only
    /// reports `LocallyClosed`, and our own `Closed` event should say why.
    local_close: OnceLock<(u64, String)>,
    ctx: Arc<LinkContext>,
}

impl Shared {
    fn close(&self, code: u32, reason: &str) {
        let mut end = reason.len().min(MAX_REASON_LEN);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let reason = &reason[..end];
        let _ = self.local_close.set((code.into(), reason.to_owned()));
        self.conn.close(VarInt::from_u32(code), reason.as_bytes());
    }

    fn reason(&self, error: &ConnectionError) -> CloseReason {
        match error {
            ConnectionError::ApplicationClosed(close) => CloseReason::Remote {
                code: close.error_code.into_inner(),
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            },
            ConnectionError::LocallyClosed => {
                let (code, reason) = self
                    .local_close
                    .get()
                    .or(self.ctx.shutdown.get())
                    .cloned()
                    .unwrap_or_else(|| (0, "closed locally".to_owned()));
                CloseReason::Local { code, reason }
            }
            ConnectionError::TimedOut => CloseReason::TimedOut,
            other => CloseReason::Transport(other.to_string()),
        }
    }

    /// Why the connection closed, waiting for it if needed.
    async fn closed(&self) -> CloseReason {
        self.reason(&self.conn.closed().await)
    }
}

/// An authenticated connection to one peer cluster.
///
/// Sending works as soon as the link exists; inbound frames are only read
/// once [`Link::start`] hands over an event channel, so the owner can decide
/// about the peer (and close it with a reason) before any frame is delivered.
/// Dropping a link closes its connection ([`close_code::DROPPED`]).
#[derive(Debug)]
pub struct Link {
    shared: Arc<Shared>,
    started: AtomicBool,
}

impl Link {
    /// Wraps an established connection and starts its writer.
    pub(crate) fn new(ctx: Arc<LinkContext>, conn: quinn::Connection, peer: ClusterId) -> Link {
        let id = LinkId(ctx.next_id.fetch_add(1, Ordering::Relaxed));
        let shared = Arc::new(Shared {
            id,
            peer,
            queue: SendQueue::new(ctx.queue_capacity, ctx.queue_bytes),
            counters: LinkCounters::new(ctx.counters.links.clone()),
            local_close: OnceLock::new(),
            conn,
            ctx,
        });
        tracing::debug!(%id, peer = %peer.short(), remote = %shared.conn.remote_address(), "link up");
        tokio::spawn(write_loop(shared.clone()).instrument(shared.span()));
        Link {
            shared,
            started: AtomicBool::new(false),
        }
    }

    /// This link's id.
    pub fn id(&self) -> LinkId {
        self.shared.id
    }

    /// The peer's authenticated cluster id.
    pub fn peer(&self) -> ClusterId {
        self.shared.peer
    }

    /// The peer's UDP address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.shared.conn.remote_address()
    }

    /// quinn's current estimate of the path's round-trip time.
    pub fn rtt(&self) -> Duration {
        self.shared.conn.rtt()
    }

    /// Queues `bytes` (one frame's payload) for the peer without waiting.
    ///
    /// A full queue is refused with [`SendError::QueueFull`] and counted:
    /// the caller never blocks behind a slow peer, and no frame is dropped
    /// without an error.
    pub fn send(&self, priority: Priority, bytes: Vec<u8>) -> Result<(), SendError> {
        let cap = self.shared.ctx.frame_cap;
        if bytes.len() > cap {
            return Err(SendError::TooLarge {
                len: bytes.len(),
                cap,
            });
        }
        match self.shared.queue.push(priority, bytes) {
            Ok(()) => {
                self.shared.counters.frame_queued();
                Ok(())
            }
            Err(PushError::Full) => {
                self.shared.counters.queue_full();
                Err(SendError::QueueFull {
                    priority,
                    capacity: self.shared.queue.capacity(),
                })
            }
            Err(PushError::Closed) => Err(SendError::Closed),
        }
    }

    /// Frames waiting in `priority`'s queue.
    pub fn queued(&self, priority: Priority) -> usize {
        self.shared.queue.len(priority)
    }

    /// Starts reading: every inbound frame, a malformed stream, and finally
    /// the close are sent to `events` (bounded: when it is full, the reader
    /// waits and QUIC flow control slows the peer down).
    ///
    /// Returns `false`, and does nothing, if the link was already started.
    pub fn start(&self, events: mpsc::Sender<LinkEvent>) -> bool {
        if self.started.swap(true, Ordering::AcqRel) {
            return false;
        }
        let shared = self.shared.clone();
        tokio::spawn(read_loop(shared, events).instrument(self.shared.span()));
        true
    }

    /// Closes the connection with [`close_code::REQUESTED`] and `reason`
    /// (truncated to 256 bytes), which the peer's `Closed` event carries.
    ///
    /// QUIC closes at once: queued frames are discarded (and counted as
    /// unsent) and frames in flight may be lost, so anything the peer must
    /// learn about the refusal belongs in `reason`.
    pub fn close(&self, reason: &str) {
        tracing::debug!(id = %self.shared.id, peer = %self.shared.peer.short(), reason, "closing link");
        self.shared.close(close_code::REQUESTED, reason);
    }

    /// Closes the connection with `reason` once every queued frame has been
    /// written and has had about two round trips to reach the peer, or
    /// after `within` at most. For goodbyes that must arrive (a node leaving
    /// announces it before it closes): [`Link::close`] discards what is queued.
    pub async fn close_after_flush(&self, reason: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        let pending = |link: &Link| {
            let s = link.stats();
            s.frames_out + s.frames_unsent < s.frames_queued
        };
        while pending(self) && !self.is_closed() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await; // poll: the writer drains the queue
        }
        let grace = (self.rtt() * 2 + Duration::from_millis(20))
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        // The peer usually closes first once it has read the goodbye.
        let _ = tokio::time::timeout(grace, self.shared.conn.closed()).await;
        self.close(reason);
    }

    /// UDP bytes sent and received on this connection so far, QUIC
    /// headers, acknowledgements and keep-alives included.
    pub fn udp_bytes(&self) -> (u64, u64) {
        let s = self.shared.conn.stats();
        (s.udp_tx.bytes, s.udp_rx.bytes)
    }

    /// Whether the connection is closed (for any reason).
    pub fn is_closed(&self) -> bool {
        self.shared.conn.close_reason().is_some()
    }

    /// Waits until the link is closed, and says why.
    pub async fn closed(&self) -> CloseReason {
        self.shared.closed().await
    }

    /// This link's counters.
    pub fn stats(&self) -> LinkStats {
        self.shared.counters.snapshot()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // No zombie connections: the tasks hold the connection, not the owner.
        self.shared.close(close_code::DROPPED, "link dropped");
    }
}

impl Shared {
    fn span(&self) -> tracing::Span {
        tracing::debug_span!("link", id = %self.id, peer = %self.peer.short())
    }
}

/// Drains the queue into the link's uni stream, the frames waiting at
/// that moment in one write, until the connection closes or a write
/// fails; a failed write closes the connection.
async fn write_loop(shared: Arc<Shared>) {
    let mut stream: Option<quinn::SendStream> = None;
    let mut frames = Vec::new();
    let mut buf = Vec::with_capacity(WRITE_BATCH_BYTES + 1024);
    loop {
        frames.clear();
        tokio::select! {
            biased;
            _ = shared.conn.closed() => break,
            () = shared.queue.pop_batch(WRITE_BATCH_BYTES, &mut frames) => {}
        }
        let out = match &mut stream {
            Some(s) => s,
            None => match shared.conn.open_uni().await {
                Ok(s) => stream.insert(s),
                Err(e) => {
                    shared.close(close_code::SEND_FAILED, &format!("cannot open stream: {e}"));
                    // The frames in hand were queued but will never leave.
                    shared.counters.unsent(frames.len());
                    break;
                }
            },
        };
        buf.clear();
        frames.retain(|f| match append_frame(&mut buf, f) {
            Ok(()) => true,
            // `send` refuses frames over the cap, which is far below this.
            Err(e) => {
                tracing::error!(error = %e, "frame too large for its prefix, not sent");
                shared.counters.unsent(1);
                false
            }
        });
        if let Err(e) = out.write_all(&buf).await {
            tracing::debug!(error = %e, "send failed, closing link");
            shared.close(close_code::SEND_FAILED, &format!("send failed: {e}"));
            shared.counters.unsent(frames.len());
            break;
        }
        for f in &frames {
            shared.counters.frame_out(f.len());
        }
    }
    let unsent = shared.queue.close();
    shared.counters.unsent(unsent);
}

/// Reads frames into `events` until the connection closes; a malformed
/// stream is reported, then the connection is closed. Always ends with one
/// `Closed` event (unless nobody listens any more).
async fn read_loop(shared: Arc<Shared>, events: mpsc::Sender<LinkEvent>) {
    let (link, peer, cap) = (shared.id, shared.peer, shared.ctx.frame_cap);
    let reason = 'streams: loop {
        let mut stream = match shared.conn.accept_uni().await {
            // Buffered: a frame's prefix and payload are no longer two
            // reads of the stream, each taking the connection's lock.
            Ok(stream) => tokio::io::BufReader::with_capacity(READ_BUFFER_BYTES, stream),
            Err(e) => break shared.reason(&e),
        };
        loop {
            let error = match read_frame(&mut stream, cap).await {
                Ok(Some(bytes)) => {
                    shared.counters.frame_in(bytes.len());
                    let event = LinkEvent::Frame { link, peer, bytes };
                    if events.send(event).await.is_err() {
                        shared.close(close_code::RECEIVER_GONE, "link events are not read");
                        return;
                    }
                    continue;
                }
                // The peer finished its stream; it may open another one.
                Ok(None) => continue 'streams,
                Err(e) => e,
            };
            // A read that failed because the connection went away is a close,
            // not a malformed stream.
            if shared.conn.close_reason().is_some() {
                break 'streams shared.closed().await;
            }
            tracing::warn!(error = %error, "malformed frame stream, closing link");
            shared.counters.malformed();
            shared.close(close_code::MALFORMED, &format!("malformed frame: {error}"));
            let _ = events
                .send(LinkEvent::Malformed { link, peer, error })
                .await;
            break 'streams shared.closed().await;
        }
    };
    tracing::debug!(%reason, "link closed");
    let _ = events.send(LinkEvent::Closed { link, peer, reason }).await;
}
