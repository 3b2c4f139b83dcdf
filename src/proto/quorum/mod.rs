//! Weighted quorum: thresholds, the per-round tally and the coordinator that
//! checks quorum and flags equivocating signers.

mod threshold;

pub use threshold::{QuorumError, Threshold, checked_sum};
