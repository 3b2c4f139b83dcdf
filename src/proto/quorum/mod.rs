//! Weighted quorum: thresholds, the per-round tally and the coordinator that
//! checks quorum and flags equivocating signers.

mod coordinator;
mod tally;
mod threshold;
mod verified;

pub use coordinator::{Coordinator, CoordinatorError, VoteEffect, VoteReport};
pub use tally::{Decision, RoundTally};
pub use threshold::{QuorumError, Threshold, checked_sum};
pub use verified::{VerifiedVote, assume_signature_checked, check_vote_context, verify_vote};

#[cfg(test)]
mod tests;
