//! Counters of everything the membership protocol received, sent, refused
//! and dropped, for metrics and for tests that assert on them.

use crate::proto::wire::FrameKind;

/// One counter per [`FrameKind`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerKind([u64; FrameKind::COUNT]);

impl PerKind {
    /// The count for `kind`.
    pub fn get(&self, kind: FrameKind) -> u64 {
        self.0[kind.index()]
    }

    /// Adds one for `kind`.
    pub fn incr(&mut self, kind: FrameKind) {
        let c = &mut self.0[kind.index()];
        *c = c.saturating_add(1);
    }

    /// The sum over all kinds.
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// Per-kind `self - earlier`, saturating at zero.
    pub fn saturating_sub(&self, earlier: &PerKind) -> PerKind {
        let mut out = PerKind::default();
        for (i, c) in out.0.iter_mut().enumerate() {
            *c = self.0[i].saturating_sub(earlier.0[i]);
        }
        out
    }

    /// `(kind, count)` pairs in [`FrameKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (FrameKind, u64)> + '_ {
        FrameKind::ALL.iter().map(|k| (*k, self.get(*k)))
    }
}

/// Monotonic counters (saturating).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames received, by kind.
    pub frames_in: PerKind,
    /// Frames sent, by kind.
    pub frames_out: PerKind,
    /// Frames the transport could not decode (`Input::MalformedFrame`).
    pub malformed_frames: u64,
    /// Decoded frames with a vector over its bound.
    pub oversized_frames: u64,
    /// Frames out of protocol order (gossip before the handshake, a second Hello…).
    pub protocol_violations: u64,
    /// Frames from a peer with no connection (transport contract breach).
    pub frames_from_unknown: u64,
    /// Connections refused because the peer is not in the roster.
    pub refused_not_member: u64,
    /// Connections refused for a protocol version, network id or sender mismatch.
    pub refused_hello: u64,
    /// Connections refused for another reason (ourselves, too many links, leaving).
    pub refused_other: u64,
    /// `Goodbye` frames received.
    pub goodbyes_received: u64,
    /// `Syn` frames ignored because the peer sent more than
    /// [`crate::proto::membership::peers::SYNS_PER_ROUND`] in one of our rounds.
    pub syns_rate_limited: u64,
    /// Records accepted (a newer version stored).
    pub records_applied: u64,
    /// Records not newer than what we hold (duplicates; not verified).
    pub records_stale: u64,
    /// Records breaking a bound or canonical-order rule.
    pub records_invalid: u64,
    /// Records whose signature does not verify (forged or corrupted).
    pub records_bad_signature: u64,
    /// Records of clusters outside the roster (closed mode).
    pub records_not_member: u64,
    /// Records of new clusters dropped because the table is full.
    pub records_table_full: u64,
    /// Heartbeats accepted (a newer beat stored).
    pub heartbeats_applied: u64,
    /// Heartbeats not newer than what we hold, or of an incarnation whose
    /// record we do not hold (not verified).
    pub heartbeats_stale: u64,
    /// Heartbeats whose signature does not verify (forged or corrupted), or
    /// whose owner has no valid key here.
    pub heartbeats_bad_signature: u64,
    /// Signatures checked with `verify_strict`.
    pub signatures_verified: u64,
    /// Signature checks answered by the cache.
    pub signature_cache_hits: u64,
    /// Dials started.
    pub dials: u64,
    /// Dials that failed or timed out.
    pub dial_failures: u64,
    /// Handshakes abandoned after `dial_timeout`.
    pub handshake_timeouts: u64,
    /// Links closed by pruning.
    pub links_pruned: u64,
    /// Times this node raised its own incarnation after seeing an earlier life's record.
    pub incarnation_bumps: u64,
}

/// Adds one, saturating.
pub(crate) fn bump(c: &mut u64) {
    *c = c.saturating_add(1);
}
