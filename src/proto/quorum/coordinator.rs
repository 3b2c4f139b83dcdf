//! The local coordinator: tallies verified votes per round with the weights
//! of the vote's epoch, decides rounds early in both directions, and flags
//! any signer that signs two values for one slot, with evidence.

use std::collections::BTreeMap;

// Keys are attacker-influenced (subjects, voter ids): ahash is keyed per
// process, so collisions cannot be forced, and it is faster than SipHash.
use ahash::HashMap;
use std::sync::Arc;

use crate::proto::bytes32::NetworkId;
use crate::proto::certificate::Certificate;
use crate::proto::evidence::{Evidence, EvidenceError};
use crate::proto::identity::ClusterId;
use crate::proto::quorum::tally::{Decision, Recorded, RoundTally};
use crate::proto::quorum::{QuorumError, VerifiedVote, verify_vote};
use crate::proto::roster::Roster;
use crate::proto::vote::{Round, SignedVote, VoteError};

/// Why the coordinator refuses an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoordinatorError {
    /// No roster is known for the vote's epoch.
    #[error("no roster known for epoch {0}")]
    UnknownEpoch(u64),
    /// A roster for another network was offered.
    #[error("roster belongs to network {got}, this coordinator to {expected}")]
    WrongNetwork {
        /// This coordinator's network.
        expected: NetworkId,
        /// The offered roster's network.
        got: NetworkId,
    },
    /// A different roster was offered for an epoch that already has one.
    #[error("a different roster is already known for epoch {0}")]
    ConflictingRoster(u64),
    /// The vote is refused.
    #[error(transparent)]
    Vote(#[from] VoteError),
    /// Tally arithmetic failed.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// Evidence could not be formed or verified.
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
}

/// What adding a vote did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteEffect {
    /// The vote was counted.
    Counted,
    /// The same vote (same value) was already recorded: ignored, never flagged.
    Duplicate,
    /// The signer signed a different value for this slot: here is the
    /// evidence (produced once per slot). The new value is not counted.
    Equivocation(Box<Evidence>),
    /// Yet another value for a slot that already produced evidence: ignored.
    FurtherConflict,
    /// The signer is flagged in this epoch: the vote is kept but not counted.
    SignerFlagged,
}

/// The result of [`Coordinator::add_vote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteReport {
    /// What happened to the vote.
    pub effect: VoteEffect,
    /// The round's decision, if this vote made it.
    pub decided: Option<Decision>,
}

/// Tallies, decisions and flagged signers for one network.
///
/// `X` is data its owner keeps beside each round's tally (the delivery
/// driver keeps its vote proofs there), created with the round and dropped
/// with it, so a vote costs one round lookup, not one per map.
#[derive(Debug)]
pub struct Coordinator<X = ()> {
    network_id: NetworkId,
    rosters: BTreeMap<u64, Arc<Roster>>,
    rounds: HashMap<Round, (RoundTally, X)>,
    flagged: BTreeMap<u64, BTreeMap<ClusterId, Evidence>>,
}

impl Coordinator {
    /// A coordinator that knows `roster` (usually the genesis roster).
    pub fn new(roster: Arc<Roster>) -> Self {
        Self::with_round_data(roster)
    }
}

impl<X: Default> Coordinator<X> {
    /// Counts a verified vote. Cost is independent of signature checking.
    pub fn add_vote(&mut self, vote: &VerifiedVote) -> Result<VoteReport, CoordinatorError> {
        self.add_vote_with(vote, X::default)
            .map(|(report, _)| report)
    }
}

impl<X> Coordinator<X> {
    /// A coordinator that knows `roster` and keeps an `X` beside each round.
    pub fn with_round_data(roster: Arc<Roster>) -> Self {
        let mut rosters = BTreeMap::new();
        let network_id = roster.network_id();
        rosters.insert(roster.epoch(), roster);
        Coordinator {
            network_id,
            rosters,
            rounds: HashMap::default(),
            flagged: BTreeMap::new(),
        }
    }

    /// Adds the (already validated) roster of another epoch.
    pub fn add_roster(&mut self, roster: Arc<Roster>) -> Result<(), CoordinatorError> {
        if roster.network_id() != self.network_id {
            return Err(CoordinatorError::WrongNetwork {
                expected: self.network_id,
                got: roster.network_id(),
            });
        }
        match self.rosters.get(&roster.epoch()) {
            Some(known) if known.encode() != roster.encode() => {
                Err(CoordinatorError::ConflictingRoster(roster.epoch()))
            }
            Some(_) => Ok(()),
            None => {
                self.rosters.insert(roster.epoch(), roster);
                Ok(())
            }
        }
    }

    /// The roster of `epoch`.
    pub fn roster(&self, epoch: u64) -> Option<&Arc<Roster>> {
        self.rosters.get(&epoch)
    }

    /// Verifies a signed vote against the roster of its epoch.
    pub fn verify(&self, vote: &SignedVote) -> Result<VerifiedVote, CoordinatorError> {
        let roster = self
            .rosters
            .get(&vote.vote.round.epoch)
            .ok_or(CoordinatorError::UnknownEpoch(vote.vote.round.epoch))?;
        Ok(verify_vote(roster, vote)?)
    }

    /// Counts a verified vote like [`Coordinator::add_vote`]; a new round's
    /// data is made by `init`. Returns the report and the round's data.
    pub fn add_vote_with(
        &mut self,
        vote: &VerifiedVote,
        init: impl FnOnce() -> X,
    ) -> Result<(VoteReport, &mut X), CoordinatorError> {
        let sv = vote.signed();
        let round = sv.vote.round;
        let voter = sv.vote.voter;
        let roster = self
            .rosters
            .get(&round.epoch)
            .ok_or(CoordinatorError::UnknownEpoch(round.epoch))?;
        let weight = roster.weight(&voter).ok_or(VoteError::NotAMember(voter))?;
        let flagged = self.flagged.entry(round.epoch).or_default();
        let is_flagged = flagged.contains_key(&voter);
        let (tally, data) = self
            .rounds
            .entry(round)
            .or_insert_with(|| (RoundTally::with_capacity(roster.members().len()), init()));
        let effect = match tally.record(sv, weight, !is_flagged)? {
            Recorded::New if is_flagged => VoteEffect::SignerFlagged,
            Recorded::New => VoteEffect::Counted,
            Recorded::Duplicate => VoteEffect::Duplicate,
            Recorded::FurtherConflict => VoteEffect::FurtherConflict,
            Recorded::FirstConflict(first) => {
                let evidence = Evidence::from_conflict(*first, *sv)?;
                flagged.entry(voter).or_insert(evidence);
                VoteEffect::Equivocation(Box::new(evidence))
            }
        };
        let decided = evaluate(tally, round, roster, flagged)?;
        Ok((VoteReport { effect, decided }, data))
    }

    /// Re-checks a round's decision; a flag raised elsewhere can make a round
    /// unreachable, so callers may re-evaluate pending rounds after evidence.
    pub fn evaluate(&mut self, round: Round) -> Result<Option<Decision>, CoordinatorError> {
        let roster = self
            .rosters
            .get(&round.epoch)
            .ok_or(CoordinatorError::UnknownEpoch(round.epoch))?;
        let Some((tally, _)) = self.rounds.get_mut(&round) else {
            return Ok(None);
        };
        let none = BTreeMap::new();
        let flagged = self.flagged.get(&round.epoch).unwrap_or(&none);
        evaluate(tally, round, roster, flagged)
    }

    /// Verifies evidence received from elsewhere and flags its signer.
    /// Returns true if the signer was not flagged before.
    pub fn add_evidence(&mut self, evidence: &Evidence) -> Result<bool, EvidenceError> {
        let epoch = evidence.slot().round.epoch;
        let roster =
            self.rosters
                .get(&epoch)
                .ok_or(EvidenceError::WrongRoster(VoteError::WrongEpoch {
                    expected: self.rosters.keys().next_back().copied().unwrap_or(0),
                    got: epoch,
                }))?;
        let signer = evidence.verify(roster)?;
        let set = self.flagged.entry(epoch).or_default();
        if set.contains_key(&signer) {
            return Ok(false);
        }
        set.insert(signer, *evidence);
        Ok(true)
    }

    /// The tally of a round, if any vote for it was seen (or its data was
    /// made with [`Coordinator::round_data`]).
    pub fn tally(&self, round: &Round) -> Option<&RoundTally> {
        self.rounds.get(round).map(|(t, _)| t)
    }

    /// A round's tally and data.
    pub fn round(&self, round: &Round) -> Option<(&RoundTally, &X)> {
        self.rounds.get(round).map(|(t, x)| (t, x))
    }

    /// A round's tally and mutable data.
    pub fn round_mut(&mut self, round: &Round) -> Option<(&RoundTally, &mut X)> {
        self.rounds.get_mut(round).map(|(t, x)| (&*t, x))
    }

    /// A round's data, made by `init` with an empty tally if the round is new.
    pub fn round_data(&mut self, round: Round, init: impl FnOnce() -> X) -> &mut X {
        let members = self
            .rosters
            .get(&round.epoch)
            .map_or(0, |r| r.members().len());
        &mut self
            .rounds
            .entry(round)
            .or_insert_with(|| (RoundTally::with_capacity(members), init()))
            .1
    }

    /// Every round held.
    pub fn rounds(&self) -> impl Iterator<Item = (&Round, &RoundTally, &X)> {
        self.rounds.iter().map(|(r, (t, x))| (r, t, x))
    }

    /// Keeps only the rounds for which `keep` is true (bounded memory).
    pub fn retain(&mut self, mut keep: impl FnMut(&Round, &RoundTally, &mut X) -> bool) {
        self.rounds.retain(|r, (t, x)| keep(r, t, x));
    }

    /// A round's decision, once reached.
    pub fn decision(&self, round: &Round) -> Option<Decision> {
        self.tally(round).and_then(RoundTally::decision)
    }

    /// The certificate of an accepted round: the counted votes for its value.
    pub fn certificate(&self, round: &Round) -> Option<Certificate> {
        let tally = self.tally(round)?;
        let Some(Decision::Accepted(value)) = tally.decision() else {
            return None;
        };
        let roster = self.rosters.get(&round.epoch)?;
        let votes: Vec<VerifiedVote> = tally
            .counted_votes_for(*round, value)
            .filter_map(|sv| crate::proto::quorum::assume_signature_checked(roster, &sv).ok())
            .collect();
        Some(Certificate::from_votes(*round, value, &votes))
    }

    /// Whether `signer` is flagged as an equivocator in `epoch`.
    pub fn is_flagged(&self, epoch: u64, signer: &ClusterId) -> bool {
        self.flagged
            .get(&epoch)
            .is_some_and(|f| f.contains_key(signer))
    }

    /// Every flagged signer with the evidence that flagged it, by epoch.
    pub fn flagged(&self) -> impl Iterator<Item = (u64, &ClusterId, &Evidence)> {
        self.flagged
            .iter()
            .flat_map(|(epoch, set)| set.iter().map(move |(id, e)| (*epoch, id, e)))
    }

    /// Drops a finished round's state (bounded memory for long runs).
    pub fn forget(&mut self, round: &Round) -> Option<RoundTally> {
        self.rounds.remove(round).map(|(t, _)| t)
    }

    /// Rounds currently held.
    pub fn round_count(&self) -> usize {
        self.rounds.len()
    }
}

/// Decides `tally` if its outcome is certain; `flagged` are the signers
/// flagged in the round's epoch (their weight, unless already counted here,
/// can no longer be counted).
fn evaluate(
    tally: &mut RoundTally,
    round: Round,
    roster: &Roster,
    flagged: &BTreeMap<ClusterId, Evidence>,
) -> Result<Option<Decision>, CoordinatorError> {
    let excluded = flagged
        .keys()
        .filter(|id| !tally.is_counted(id))
        .filter_map(|id| roster.weight(id))
        .try_fold(0u64, |acc, w| acc.checked_add(w))
        .ok_or(QuorumError::Overflow)?;
    Ok(tally.evaluate(round.kind.threshold(), roster.total_weight(), excluded)?)
}
