//! Traffic statistics of a simulation run.

use crate::proto::membership::counters::PerKind;
use crate::proto::wire::FrameKind;

/// What the simulated network carried. Byte counts are filled only with
/// [`super::SimConfig::measure_bytes`]; they include the 4-byte length prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to the network, by kind.
    pub frames_sent: PerKind,
    /// Encoded bytes handed to the network, by kind (index: [`FrameKind::index`]).
    pub bytes_sent: [u64; FrameKind::COUNT],
    /// Frames delivered to a core.
    pub frames_delivered: u64,
    /// Frames dropped: no connection, cut connection, receiver down, filter.
    pub frames_dropped: u64,
    /// Frames lost at random ([`super::SimConfig::loss_permille`]).
    pub frames_lost: u64,
    /// Dials started.
    pub dials: u64,
    /// Dials that failed.
    pub dials_failed: u64,
    /// Inputs handled by cores.
    pub inputs: u64,
}

impl Stats {
    /// Total encoded bytes sent.
    pub fn bytes_total(&self) -> u64 {
        self.bytes_sent.iter().sum()
    }

    /// Bytes sent of one kind.
    pub fn bytes_of(&self, kind: FrameKind) -> u64 {
        self.bytes_sent[kind.index()]
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Stats) -> Stats {
        let frames_sent = self.frames_sent.saturating_sub(&earlier.frames_sent);
        let mut bytes_sent = [0u64; FrameKind::COUNT];
        for (i, b) in bytes_sent.iter_mut().enumerate() {
            *b = self.bytes_sent[i].saturating_sub(earlier.bytes_sent[i]);
        }
        Stats {
            frames_sent,
            bytes_sent,
            frames_delivered: self
                .frames_delivered
                .saturating_sub(earlier.frames_delivered),
            frames_dropped: self.frames_dropped.saturating_sub(earlier.frames_dropped),
            frames_lost: self.frames_lost.saturating_sub(earlier.frames_lost),
            dials: self.dials.saturating_sub(earlier.dials),
            dials_failed: self.dials_failed.saturating_sub(earlier.dials_failed),
            inputs: self.inputs.saturating_sub(earlier.inputs),
        }
    }
}
