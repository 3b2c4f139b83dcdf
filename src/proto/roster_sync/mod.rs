//! Roster synchronisation: the chain of valid roster epochs and the voting
//! that produces the next one. IO-free; the core feeds it frames and time
//! and carries out the [`SyncAction`]s it returns.
//!
//! Safety: an epoch is adopted only as the certified successor of the epoch
//! held (`RosterEpoch::verify_successor`), so a node never holds two rosters
//! for one epoch number; a valid certificate for a different roster of an
//! epoch already held is kept as evidence of a fork and counted, never
//! adopted. Honest members sign at most one value per slot (their votes are
//! persisted before they are sent, and handed back after a restart).
//!
//! Liveness: concurrent proposals can split the vote so that no proposal
//! reaches more than 2/3 (e.g. 50/50 after a partition heals). Votes are
//! therefore cast in numbered *attempts*, each its own slot: a member votes
//! in attempt `a+1` only once the signed votes of attempt `a` it holds prove
//! that no value can reach quorum there any more (for every value, its
//! weight plus the unvoted weight is at most 2/3 — the coordinator's
//! `Rejected` decision). Every member votes for the lowest digest among the
//! proposals it holds, after a short collection window, so once proposals
//! and votes have spread, one attempt decides. With non-equivocating voters
//! at most one attempt can ever be certified: if attempt `c` reached quorum,
//! attempt `c` is never provably dead, so no honest member votes in `c+1`.
//!
//! Byzantine caveat: the dead-attempt proof assumes the votes a node sees
//! are the only ones their signers made. A member that equivocates (signs
//! two values for one slot) and shows each half of the network a different
//! vote can make one side conclude an attempt is dead while the other side
//! certifies it, and then a second roster could be certified for the same
//! epoch in a later attempt. Equivocation produces evidence (through the
//! coordinator) wherever both votes meet, and flagged signers' votes stop
//! counting, and a fork is detected and reported as a conflicting
//! certificate, but it is not prevented: roster changes are safe against
//! crashes and partitions, and against equivocators only if the honest
//! members see the equivocation before they move to the next attempt.

mod chain;
mod change;
mod proposal;
mod voting;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::proto::bytes32::Digest;
use crate::proto::evidence::Evidence;
use crate::proto::identity::{ClusterId, Identity};
use crate::proto::quorum::Coordinator;
use crate::proto::roster::Roster;
use crate::proto::roster_epoch::RosterEpoch;
use crate::proto::time::Millis;
use crate::proto::vote::SignedVote;

pub use change::{ChangeError, RosterChange};
pub use proposal::{MAX_PROPOSAL_LEN, Proposal, ProposalError};
pub use voting::ProposeError;

/// How long a member collects proposals before it votes in an attempt, so
/// that concurrent proposals meet and every member picks the same one.
pub const COLLECT_WINDOW: Millis = Millis::from_millis(1500);
/// Attempts above the highest provably dead one for which votes are kept.
pub const ATTEMPT_WINDOW: u32 = 4;
/// How many times a proposer re-bases its change on a newer epoch.
pub const MAX_REBASES: u32 = 16;
/// Conflicting certificates kept as evidence (more are only counted).
pub const MAX_CONFLICTS_KEPT: usize = 16;

/// What the caller must do.
#[derive(Debug, Clone)]
pub enum SyncAction {
    /// Persist our vote durably, then send it to every link.
    Signed(SignedVote),
    /// Send our new proposal to every link.
    Proposed(Proposal),
    /// Forward newly accepted items to every link but their source.
    Forward {
        /// New proposals.
        proposals: Vec<Proposal>,
        /// New votes.
        votes: Vec<SignedVote>,
    },
    /// A new epoch was adopted: persist it, tell the links.
    Adopted(RosterEpoch),
    /// A valid certificate for a different roster of an epoch already held.
    Conflict(Box<RosterEpoch>),
    /// A voter signed two values for one roster-change slot.
    Evidence(Box<Evidence>),
    /// An epoch arrived that does not follow ours: ask for the ones between.
    Fetch,
    /// Progress of our own proposal.
    Progress(Progress),
}

/// Where our own proposal stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Progress {
    /// Proposed for `epoch`, with this much weight voting for it so far.
    Voting {
        /// The epoch proposed.
        epoch: u64,
        /// The voting attempt.
        attempt: u32,
        /// Weight of the votes for it in that attempt.
        yes: u64,
        /// Weight of all votes seen in that attempt.
        voted: u64,
        /// The epoch's total weight.
        total: u64,
    },
    /// Another roster won `epoch`; the change was proposed again on top of it.
    Rebased {
        /// The epoch another proposal took.
        lost: u64,
    },
    /// The change is part of the roster of `epoch`.
    Done {
        /// The epoch holding the change.
        epoch: u64,
    },
    /// The change can no longer be made.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Counters of roster activity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncCounters {
    /// Epochs adopted after start.
    pub adopted: u64,
    /// Valid certificates for a different roster of a held epoch.
    pub conflicts: u64,
    /// Epochs refused (bad certificate, wrong network, ...).
    pub bad_epochs: u64,
    /// Proposals refused.
    pub bad_proposals: u64,
    /// Votes refused.
    pub bad_votes: u64,
    /// Votes we signed.
    pub signed: u64,
    /// Attempts proven dead.
    pub dead_attempts: u64,
    /// Epochs, proposals or votes whose encoding did not parse.
    pub malformed: u64,
}

/// A summary of the pending vote for the next epoch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingStatus {
    /// The epoch being voted on (current + 1).
    pub epoch: u64,
    /// The attempt in which members vote now.
    pub attempt: u32,
    /// Each proposal: proposer, roster digest, weight of its votes in `attempt`.
    pub proposals: Vec<PendingProposal>,
    /// Weight of all votes seen in `attempt`.
    pub voted: u64,
    /// The current epoch's total weight.
    pub total: u64,
}

/// One proposal in [`PendingStatus`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingProposal {
    /// Who proposed it.
    pub proposer: ClusterId,
    /// BLAKE3 of the proposed roster.
    pub digest: Digest,
    /// Weight voting for it in the current attempt.
    pub yes: u64,
    /// The proposed members, as (name, weight).
    pub members: Vec<(String, u64)>,
}

#[derive(Debug, Clone)]
struct OwnChange {
    change: RosterChange,
    rebases: u32,
    last: Option<Progress>,
}

/// Vote state for the successor of the current epoch.
#[derive(Debug, Default)]
struct Pending {
    /// Valid proposals by value digest; one per proposer.
    proposals: BTreeMap<Digest, Proposal>,
    proposers: BTreeSet<ClusterId>,
    /// Counted votes held, by (attempt, voter), for anti-entropy.
    votes: BTreeMap<(u32, ClusterId), SignedVote>,
    /// The highest attempt proven dead.
    dead: Option<u32>,
    /// When the current attempt opened for voting (first proposal, or the
    /// previous attempt proven dead).
    opened: Option<Millis>,
    /// XOR of the digests of every proposal and vote held: equal sets give
    /// equal summaries, so peers push only when they differ.
    summary: [u8; 32],
}

/// One node's roster chain and vote state.
#[derive(Debug)]
pub struct RosterSync {
    identity: Arc<Identity>,
    chain: Vec<RosterEpoch>,
    coordinator: Coordinator,
    /// Our signed roster-change votes for the current epoch, by subject
    /// (restored ones included: their attempt may not be known yet).
    signed: BTreeMap<Digest, SignedVote>,
    pending: Pending,
    own: Option<OwnChange>,
    conflicts: Vec<RosterEpoch>,
    counters: SyncCounters,
}

impl RosterSync {
    /// A roster sync starting from the genesis roster, extended with the
    /// stored `epochs` (each verified; the chain stops at the first that
    /// does not follow) and our previously signed `votes` (kept so that no
    /// slot is ever signed twice).
    pub fn new(
        identity: Arc<Identity>,
        genesis: Arc<Roster>,
        epochs: impl IntoIterator<Item = RosterEpoch>,
        votes: impl IntoIterator<Item = SignedVote>,
    ) -> RosterSync {
        let mut sync = RosterSync {
            identity,
            coordinator: Coordinator::new(genesis.clone()),
            chain: vec![RosterEpoch {
                roster: genesis,
                certificate: None,
                attempt: 0,
            }],
            signed: BTreeMap::new(),
            pending: Pending::default(),
            own: None,
            conflicts: Vec::new(),
            counters: SyncCounters::default(),
        };
        let mut sink = Vec::new();
        for e in epochs {
            if e.roster.epoch() == sync.epoch() + 1 {
                sync.accept_epoch(e, &mut sink);
            }
        }
        let me = sync.identity.id();
        let votes: Vec<SignedVote> = votes.into_iter().filter(|v| v.vote.voter == me).collect();
        for v in votes {
            sync.restore_vote(v);
        }
        sync.counters.adopted = 0;
        sync
    }

    /// The current (highest valid) roster.
    pub fn roster(&self) -> &Arc<Roster> {
        &self.current().roster
    }

    /// The current epoch number.
    pub fn epoch(&self) -> u64 {
        self.current().roster.epoch()
    }

    /// The current epoch with its certificate.
    pub fn current(&self) -> &RosterEpoch {
        // The chain always holds at least genesis.
        &self.chain[self.chain.len() - 1]
    }

    /// Epochs after `epoch`, oldest first.
    pub fn epochs_after(&self, epoch: u64) -> &[RosterEpoch] {
        let from = usize::try_from(epoch.saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(self.chain.len());
        &self.chain[from..]
    }

    /// The genesis roster.
    pub fn genesis(&self) -> &Arc<Roster> {
        &self.chain[0].roster
    }

    /// The identity that signs our votes and proposals.
    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    /// Counts an undecodable epoch, proposal or vote.
    pub fn note_malformed(&mut self) {
        self.counters.malformed += 1;
    }

    /// Counters.
    pub fn counters(&self) -> &SyncCounters {
        &self.counters
    }

    /// Conflicting certificates kept as evidence of a fork.
    pub fn conflicts(&self) -> &[RosterEpoch] {
        &self.conflicts
    }

    /// The coordinator holding roster-change tallies and flagged signers.
    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    /// Our own signed votes for the current epoch.
    pub fn own_votes(&self) -> impl Iterator<Item = &SignedVote> {
        self.signed.values()
    }
}
