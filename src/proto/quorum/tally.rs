//! The tally of one round: each voter's first value counts once, a second
//! different value is reported as a conflict (never counted), and the round
//! decides as soon as the outcome is certain in either direction.

use ahash::HashMap;

use crate::proto::bytes32::Digest;
use crate::proto::identity::ClusterId;
use crate::proto::quorum::{QuorumError, Threshold};
use crate::proto::vote::{REJECT, Round, SignedVote, Vote};

/// The outcome of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Decision {
    /// Voters holding a quorum of the weight signed this value.
    Accepted(Digest),
    /// No accept value can reach quorum any more.
    Rejected,
}

#[derive(Debug, Clone)]
struct Entry {
    // The round is the tally's (its owner keys tallies by round): not kept
    // per vote, which makes a round's votes a third smaller to copy and scan.
    voter: ClusterId,
    value: Digest,
    signature: [u8; 64],
    counted: bool,
    conflicted: bool,
}

impl Entry {
    fn signed(&self, round: Round) -> SignedVote {
        SignedVote {
            vote: Vote {
                round,
                value: self.value,
                voter: self.voter,
            },
            signature: self.signature,
        }
    }
}

/// What recording one vote did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// First vote of this voter in this round.
    New,
    /// The same value again (retransmission or another path): ignored.
    Duplicate,
    /// A different value from the one recorded: the first conflict in this slot.
    FirstConflict(Box<SignedVote>),
    /// Another different value after the slot already conflicted: ignored.
    FurtherConflict,
}

/// Voters scanned linearly before a round builds a voter index: a round of a
/// few clusters (the common case) pays one small allocation and no hashing,
/// a round of thousands stays O(1) per vote.
const INDEX_FROM: usize = 16;

/// Votes and weights of one round.
#[derive(Debug, Clone, Default)]
pub struct RoundTally {
    /// Each voter's first vote, in arrival order.
    votes: Vec<Entry>,
    /// Voter → position in `votes`, once there are more than [`INDEX_FROM`].
    index: Option<Box<HashMap<ClusterId, usize>>>,
    weight_by_value: Vec<(Digest, u64)>,
    counted_weight: u64,
    decision: Option<Decision>,
}

impl RoundTally {
    /// An empty tally with room for `voters` votes (at most [`INDEX_FROM`]
    /// reserved up front).
    pub(crate) fn with_capacity(voters: usize) -> Self {
        RoundTally {
            votes: Vec::with_capacity(voters.min(INDEX_FROM)),
            ..RoundTally::default()
        }
    }

    fn position(&self, voter: &ClusterId) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(voter).copied(),
            None => self.votes.iter().position(|e| e.voter == *voter),
        }
    }

    fn entry(&self, voter: &ClusterId) -> Option<&Entry> {
        self.position(voter).and_then(|i| self.votes.get(i))
    }

    /// Whether no vote was recorded.
    pub fn is_empty(&self) -> bool {
        self.votes.is_empty()
    }

    /// Records `vote` of weight `weight`; `count` is false for signers already
    /// flagged as equivocators, whose new votes are kept but never counted.
    pub(crate) fn record(
        &mut self,
        vote: &SignedVote,
        weight: u64,
        count: bool,
    ) -> Result<Recorded, QuorumError> {
        let voter = vote.vote.voter;
        if let Some(entry) = self.position(&voter).and_then(|i| self.votes.get_mut(i)) {
            if entry.value == vote.vote.value {
                return Ok(Recorded::Duplicate);
            }
            if entry.conflicted {
                return Ok(Recorded::FurtherConflict);
            }
            entry.conflicted = true;
            return Ok(Recorded::FirstConflict(Box::new(
                entry.signed(vote.vote.round),
            )));
        }
        if count {
            let value = vote.vote.value;
            self.counted_weight = self
                .counted_weight
                .checked_add(weight)
                .ok_or(QuorumError::Overflow)?;
            match self.weight_by_value.iter_mut().find(|(v, _)| *v == value) {
                Some((_, w)) => *w = w.checked_add(weight).ok_or(QuorumError::Overflow)?,
                None => self.weight_by_value.push((value, weight)),
            }
        }
        let position = self.votes.len();
        self.votes.push(Entry {
            voter,
            value: vote.vote.value,
            signature: vote.signature,
            counted: count,
            conflicted: false,
        });
        match &mut self.index {
            Some(index) => {
                index.insert(voter, position);
            }
            None if self.votes.len() > INDEX_FROM => {
                let index = self
                    .votes
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (e.voter, i))
                    .collect();
                self.index = Some(Box::new(index));
            }
            None => {}
        }
        Ok(Recorded::New)
    }

    /// Whether `voter`'s vote in this round is counted.
    pub fn is_counted(&self, voter: &ClusterId) -> bool {
        self.entry(voter).is_some_and(|e| e.counted)
    }

    /// Weight counted so far.
    pub fn counted_weight(&self) -> u64 {
        self.counted_weight
    }

    /// Counted weight for `value`.
    pub fn weight_for(&self, value: &Digest) -> u64 {
        self.weight_by_value
            .iter()
            .find(|(v, _)| v == value)
            .map_or(0, |(_, w)| *w)
    }

    /// The decision, once reached.
    pub fn decision(&self) -> Option<Decision> {
        self.decision
    }

    /// The counted votes for `value` in this tally's `round`.
    pub fn counted_votes_for(
        &self,
        round: Round,
        value: Digest,
    ) -> impl Iterator<Item = SignedVote> + '_ {
        self.votes
            .iter()
            .filter(move |e| e.counted && e.value == value)
            .map(move |e| e.signed(round))
    }

    /// Decides if the outcome is already certain. `excluded` is the weight
    /// that can no longer be counted here (flagged signers without a counted
    /// vote in this round); it stays in `total`, the denominator.
    pub(crate) fn evaluate(
        &mut self,
        threshold: Threshold,
        total: u64,
        excluded: u64,
    ) -> Result<Option<Decision>, QuorumError> {
        if self.decision.is_some() {
            return Ok(None);
        }
        for (value, weight) in &self.weight_by_value {
            if *value != REJECT && threshold.is_met(*weight, total)? {
                self.decision = Some(Decision::Accepted(*value));
                return Ok(self.decision);
            }
        }
        let remaining = total
            .checked_sub(self.counted_weight)
            .and_then(|r| r.checked_sub(excluded))
            .ok_or(QuorumError::CountExceedsTotal {
                counted: self.counted_weight.saturating_add(excluded),
                total,
            })?;
        let best = self
            .weight_by_value
            .iter()
            .filter(|(v, _)| *v != REJECT)
            .map(|(_, w)| *w)
            .max()
            .unwrap_or(0);
        if !threshold.is_met(best + remaining, total)? {
            self.decision = Some(Decision::Rejected);
            return Ok(self.decision);
        }
        Ok(None)
    }
}
