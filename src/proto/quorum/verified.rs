//! Votes whose signature and membership have been checked against a roster.
//! Tallies take only these, so an unverified vote can never be counted.

use crate::proto::roster::Roster;
use crate::proto::vote::{SignedVote, VoteError};

/// A vote checked against the roster of its epoch: right network and epoch,
/// a member voter, a `verify_strict` signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedVote(SignedVote);

impl VerifiedVote {
    /// The vote.
    pub fn signed(&self) -> &SignedVote {
        &self.0
    }
}

/// Checks everything about `vote` except its signature; the cheap half of
/// [`verify_vote`], run first so that parallel verifiers fail fast.
pub fn check_vote_context(roster: &Roster, vote: &SignedVote) -> Result<(), VoteError> {
    let v = &vote.vote;
    if v.round.network_id != roster.network_id() {
        return Err(VoteError::WrongNetwork {
            expected: roster.network_id(),
            got: v.round.network_id,
        });
    }
    if v.round.epoch != roster.epoch() {
        return Err(VoteError::WrongEpoch {
            expected: roster.epoch(),
            got: v.round.epoch,
        });
    }
    if roster.key(&v.voter).is_none() {
        return Err(VoteError::NotAMember(v.voter));
    }
    Ok(())
}

/// Verifies `vote` against `roster` (the roster of the vote's epoch).
pub fn verify_vote(roster: &Roster, vote: &SignedVote) -> Result<VerifiedVote, VoteError> {
    check_vote_context(roster, vote)?;
    let key = roster
        .key(&vote.vote.voter)
        .ok_or(VoteError::NotAMember(vote.vote.voter))?;
    vote.verify_with(key)?;
    Ok(VerifiedVote(*vote))
}

/// Wraps a vote whose signature the caller has already verified under the
/// roster key (for example in a parallel batch or through the
/// verified-signature cache); the context is still re-checked here.
pub fn assume_signature_checked(
    roster: &Roster,
    vote: &SignedVote,
) -> Result<VerifiedVote, VoteError> {
    check_vote_context(roster, vote)?;
    Ok(VerifiedVote(*vote))
}
