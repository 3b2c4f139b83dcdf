//! Traffic counters, kept per link and summed per transport.
//!
//! Every frame the transport refuses or loses is counted somewhere here, so
//! nothing is dropped silently: for a link,
//! `frames_queued = frames_out + frames_unsent + frames still queued`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of one link's counters (or of the sum over all links).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames received and handed to the event channel.
    pub frames_in: u64,
    /// Payload bytes of those frames (prefixes excluded).
    pub bytes_in: u64,
    /// Frames accepted by `send` into the queue.
    pub frames_queued: u64,
    /// Frames written to the QUIC stream.
    pub frames_out: u64,
    /// Payload bytes of those frames (prefixes excluded).
    pub bytes_out: u64,
    /// `send` calls refused because the queue was full.
    pub queue_full: u64,
    /// Queued frames discarded because the link closed before sending them.
    pub frames_unsent: u64,
    /// Malformed inbound streams (each one closed its link).
    pub malformed: u64,
}

/// A snapshot of a transport's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// The sum of every link's counters, including closed links.
    pub links: LinkStats,
    /// Handshakes that produced a link (both directions).
    pub handshakes: u64,
    /// Dials and inbound connections that failed before producing a link.
    pub handshake_failures: u64,
    /// Inbound connections refused because too many handshakes were running.
    pub handshakes_refused: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
    frames_queued: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    queue_full: AtomicU64,
    frames_unsent: AtomicU64,
    malformed: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> LinkStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LinkStats {
            frames_in: get(&self.frames_in),
            bytes_in: get(&self.bytes_in),
            frames_queued: get(&self.frames_queued),
            frames_out: get(&self.frames_out),
            bytes_out: get(&self.bytes_out),
            queue_full: get(&self.queue_full),
            frames_unsent: get(&self.frames_unsent),
            malformed: get(&self.malformed),
        }
    }
}

/// The transport-wide counters.
#[derive(Debug, Default)]
pub(crate) struct TransportCounters {
    pub(crate) links: Arc<Counters>,
    pub(crate) handshakes: AtomicU64,
    pub(crate) handshake_failures: AtomicU64,
    pub(crate) handshakes_refused: AtomicU64,
}

impl TransportCounters {
    pub(crate) fn snapshot(&self) -> TransportStats {
        TransportStats {
            links: self.links.snapshot(),
            handshakes: self.handshakes.load(Ordering::Relaxed),
            handshake_failures: self.handshake_failures.load(Ordering::Relaxed),
            handshakes_refused: self.handshakes_refused.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        add(counter, 1);
    }
}

/// One link's counters plus the transport totals, bumped together.
#[derive(Debug)]
pub(crate) struct LinkCounters {
    link: Counters,
    total: Arc<Counters>,
}

macro_rules! bump_both {
    ($self:ident, $field:ident, $n:expr) => {{
        let n = $n;
        add(&$self.link.$field, n);
        add(&$self.total.$field, n);
    }};
}

impl LinkCounters {
    pub(crate) fn new(total: Arc<Counters>) -> Self {
        LinkCounters {
            link: Counters::default(),
            total,
        }
    }

    pub(crate) fn snapshot(&self) -> LinkStats {
        self.link.snapshot()
    }

    pub(crate) fn frame_in(&self, len: usize) {
        bump_both!(self, frames_in, 1);
        bump_both!(self, bytes_in, len as u64);
    }

    pub(crate) fn frame_queued(&self) {
        bump_both!(self, frames_queued, 1);
    }

    pub(crate) fn frame_out(&self, len: usize) {
        bump_both!(self, frames_out, 1);
        bump_both!(self, bytes_out, len as u64);
    }

    pub(crate) fn queue_full(&self) {
        bump_both!(self, queue_full, 1);
    }

    pub(crate) fn unsent(&self, n: usize) {
        bump_both!(self, frames_unsent, n as u64);
    }

    pub(crate) fn malformed(&self) {
        bump_both!(self, malformed, 1);
    }
}
