//! Vote safety: a node never signs two values for one slot, across batches,
//! single votes and restarts.
//!
//! The [`VoteSigner`] consults a [`SignedVoteRecord`] before signing: a slot
//! already signed with the same value returns the earlier attested vote (a
//! retransmission, nothing new is signed); a slot signed with another value is
//! refused. New votes are handed to [`SignedVoteRecord::remember`] *before*
//! the signed batch is returned, so a caller can only send what the record
//! accepted. For crash safety the record must be durable when `remember`
//! returns (`store::signed_votes` is), or — in the IO-free Core, which keeps
//! a [`MemoryVoteRecord`] — the Core must emit the new votes to be persisted
//! ahead of the frames that carry them, and the node must carry out the
//! persist before the send.

// Slots and subjects are keyed with ahash (keyed per process): faster than
// SipHash on these 32- to 113-byte keys, and collisions cannot be forced.
use ahash::HashMap;
use std::convert::Infallible;

use crate::proto::bytes32::{Digest, NetworkId};
use crate::proto::identity::Identity;
use crate::proto::vote::{Round, Slot, Vote, VoteKind};

use super::batch::{AttestedVote, BatchError, VoteBatch};

/// What this node has signed, per slot.
pub trait SignedVoteRecord {
    /// Why the record cannot be read or written.
    type Error: std::error::Error + 'static;
    /// The vote previously signed for `slot`, if any.
    fn previous(&self, slot: &Slot) -> Result<Option<AttestedVote>, Self::Error>;
    /// Records newly signed votes; must be durable on return for crash safety.
    fn remember(&mut self, votes: &[AttestedVote]) -> Result<(), Self::Error>;
}

/// An in-memory record (tests, simulations, and the Core's working copy).
#[derive(Debug, Default)]
pub struct MemoryVoteRecord {
    votes: HashMap<Slot, AttestedVote>,
}

impl MemoryVoteRecord {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Slots recorded.
    pub fn len(&self) -> usize {
        self.votes.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.votes.is_empty()
    }

    /// Drops the slots of rounds for which `keep` is false (rounds of retired
    /// epochs); the durable record keeps them.
    pub fn retain(&mut self, mut keep: impl FnMut(&Round) -> bool) {
        self.votes.retain(|slot, _| keep(&slot.round));
    }
}

impl SignedVoteRecord for MemoryVoteRecord {
    type Error = Infallible;
    fn previous(&self, slot: &Slot) -> Result<Option<AttestedVote>, Infallible> {
        Ok(self.votes.get(slot).cloned())
    }
    fn remember(&mut self, votes: &[AttestedVote]) -> Result<(), Infallible> {
        for v in votes {
            self.votes.entry(v.vote.slot()).or_insert_with(|| v.clone());
        }
        Ok(())
    }
}

/// A request to sign a value for a slot that already holds another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The slot.
    pub slot: Slot,
    /// The value signed earlier.
    pub signed: Digest,
    /// The value asked for now (refused).
    pub asked: Digest,
}

/// Why signing failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum SignerError<E: std::error::Error + 'static> {
    /// The record could not be read or written: nothing was sent.
    #[error("signed-vote record: {0}")]
    Record(#[source] E),
    /// The batch could not be formed.
    #[error(transparent)]
    Batch(#[from] BatchError),
}

/// The result of [`VoteSigner::sign_batch`].
#[derive(Debug, Default)]
pub struct Signed {
    /// The new batch (already remembered), if any entry was new.
    pub batch: Option<VoteBatch>,
    /// The batch's entries as attested votes (already remembered).
    pub new_votes: Vec<AttestedVote>,
    /// Entries signed earlier with the same value: the earlier votes, to resend.
    pub repeats: Vec<AttestedVote>,
    /// Entries refused because their slot holds another value.
    pub refused: Vec<Conflict>,
}

/// Signs votes for one identity, never two values for one slot.
#[derive(Debug)]
pub struct VoteSigner {
    identity: std::sync::Arc<Identity>,
}

impl VoteSigner {
    /// A signer for `identity` (owned, or shared with the rest of the node).
    pub fn new(identity: impl Into<std::sync::Arc<Identity>>) -> Self {
        VoteSigner {
            identity: identity.into(),
        }
    }

    /// The identity's id.
    pub fn id(&self) -> crate::proto::identity::ClusterId {
        self.identity.id()
    }

    /// Signs `(subject, value)` entries of one network, epoch and kind as
    /// one batch, after consulting and updating `record`.
    pub fn sign_batch<R: SignedVoteRecord>(
        &self,
        record: &mut R,
        network_id: NetworkId,
        epoch: u64,
        kind: VoteKind,
        entries: &[(Digest, Digest)],
    ) -> Result<Signed, SignerError<R::Error>> {
        let mut out = Signed::default();
        let mut fresh: Vec<(Digest, Digest)> = Vec::with_capacity(entries.len());
        let mut fresh_values: HashMap<Digest, Digest> = HashMap::default();
        for (subject, value) in entries {
            let slot = Slot {
                round: Round {
                    network_id,
                    epoch,
                    kind,
                    subject: *subject,
                },
                voter: self.identity.id(),
            };
            let earlier = record.previous(&slot).map_err(SignerError::Record)?;
            let earlier_value = earlier
                .as_ref()
                .map(|v| v.vote.value)
                .or_else(|| fresh_values.get(subject).copied());
            match (earlier, earlier_value) {
                (_, Some(v)) if v != *value => out.refused.push(Conflict {
                    slot,
                    signed: v,
                    asked: *value,
                }),
                (Some(vote), Some(_)) => out.repeats.push(vote),
                (None, Some(_)) => {} // the same entry twice in this request
                (_, None) => {
                    fresh_values.insert(*subject, *value);
                    fresh.push((*subject, *value));
                }
            }
        }
        if fresh.is_empty() {
            return Ok(out);
        }
        let (batch, votes) =
            VoteBatch::sign_attested(&self.identity, network_id, epoch, kind, fresh)?;
        record.remember(&votes).map_err(SignerError::Record)?;
        out.batch = Some(batch);
        out.new_votes = votes;
        Ok(out)
    }

    /// Signs one vote with a single signature (no batching), under the same rule.
    /// `Ok(Err(conflict))` is a refusal.
    pub fn sign_single<R: SignedVoteRecord>(
        &self,
        record: &mut R,
        round: Round,
        value: Digest,
    ) -> Result<Result<AttestedVote, Conflict>, SignerError<R::Error>> {
        let slot = Slot {
            round,
            voter: self.identity.id(),
        };
        if let Some(earlier) = record.previous(&slot).map_err(SignerError::Record)? {
            if earlier.vote.value == value {
                return Ok(Ok(earlier));
            }
            return Ok(Err(Conflict {
                slot,
                signed: earlier.vote.value,
                asked: value,
            }));
        }
        let vote = Vote {
            round,
            value,
            voter: self.identity.id(),
        };
        let signed: AttestedVote = vote
            .sign(&self.identity)
            .map_err(|e| SignerError::Batch(BatchError::Vote(e)))?
            .into();
        record
            .remember(std::slice::from_ref(&signed))
            .map_err(SignerError::Record)?;
        Ok(Ok(signed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{TestNet, value};

    #[test]
    fn never_signs_two_values_for_one_slot() {
        let net = TestNet::new(5, &[1, 1, 1]);
        let signer = VoteSigner::new(Identity::from_seed(net.seed_of(0)));
        let mut rec = MemoryVoteRecord::new();
        let r = net.round(VoteKind::ByzantineQuorum, 0);
        let (s1, s2) = (value(100), value(101));
        let first = signer
            .sign_batch(
                &mut rec,
                r.network_id,
                r.epoch,
                r.kind,
                &[(s1, value(1)), (s2, value(2))],
            )
            .unwrap();
        assert_eq!(first.new_votes.len(), 2);
        for v in &first.new_votes {
            v.verify(&net.roster, None).unwrap();
        }
        // Same values again: the earlier votes, nothing new signed.
        let again = signer
            .sign_batch(&mut rec, r.network_id, r.epoch, r.kind, &[(s1, value(1))])
            .unwrap();
        assert!(again.batch.is_none());
        assert_eq!(again.repeats, [first.new_votes[0].clone()]);
        // A different value for a signed slot is refused; a new slot in the same call is signed.
        let s3 = value(102);
        let mixed = signer
            .sign_batch(
                &mut rec,
                r.network_id,
                r.epoch,
                r.kind,
                &[(s2, value(9)), (s3, value(3))],
            )
            .unwrap();
        assert_eq!(mixed.refused.len(), 1);
        assert_eq!(
            (mixed.refused[0].signed, mixed.refused[0].asked),
            (value(2), value(9))
        );
        assert_eq!(mixed.new_votes.len(), 1);
        // Two values for one new slot in one request: the second is refused.
        let s4 = value(103);
        let dup = signer
            .sign_batch(
                &mut rec,
                r.network_id,
                r.epoch,
                r.kind,
                &[(s4, value(4)), (s4, value(5)), (s4, value(4))],
            )
            .unwrap();
        assert_eq!(dup.new_votes.len(), 1);
        assert_eq!(dup.refused.len(), 1);
        // Single votes share the record.
        let round4 = Round { subject: s4, ..r };
        assert!(
            signer
                .sign_single(&mut rec, round4, value(5))
                .unwrap()
                .is_err()
        );
        let round5 = Round {
            subject: value(104),
            ..r
        };
        let single = signer
            .sign_single(&mut rec, round5, value(6))
            .unwrap()
            .unwrap();
        single.verify(&net.roster, None).unwrap();
        assert_eq!(
            signer
                .sign_single(&mut rec, round5, value(6))
                .unwrap()
                .unwrap(),
            single
        );
        assert_eq!(rec.len(), 5);
    }
}
