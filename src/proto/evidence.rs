//! Equivocation evidence: two votes by one signer for one slot with different
//! values, in canonical order (lower value first). Anyone holding the roster
//! of that epoch can verify it; nothing else is needed.
//!
//! Encoding (402 bytes): the two encoded votes ([`SignedVote::encode`]), first then second.

use crate::proto::codec::{DecodeError, Reader, Writer};
use crate::proto::identity::ClusterId;
use crate::proto::quorum::{check_vote_context, verify_vote};
use crate::proto::roster::Roster;
use crate::proto::vote::{SIGNED_VOTE_LEN, SignedVote, Slot, VoteError};

/// Which of the two votes in a piece of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The vote with the lower value.
    First,
    /// The vote with the higher value.
    Second,
}

/// Why evidence is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// Both votes carry the same value: a retransmission, not a conflict.
    #[error("both votes carry the same value: not an equivocation")]
    EqualValues,
    /// The votes are for different slots (another round or another voter).
    #[error("the votes are for different slots: not an equivocation")]
    DifferentSlots,
    /// The votes are not in canonical order (lower value first).
    #[error("votes are not in canonical order (lower value first)")]
    WrongOrder,
    /// The signer is not a member of the roster.
    #[error("signer {0} is not a member of the roster")]
    NotAMember(ClusterId),
    /// One of the signatures does not verify.
    #[error("the {0:?} vote's signature does not verify")]
    BadSignature(Side),
    /// The votes are for another network or epoch than the roster.
    #[error("the votes do not belong to this roster: {0}")]
    WrongRoster(VoteError),
    /// The encoding does not parse.
    #[error("malformed evidence: {0}")]
    Decode(#[from] DecodeError),
}

/// Two conflicting signed votes for one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    first: SignedVote,
    second: SignedVote,
}

/// Length of [`Evidence::encode`].
pub const EVIDENCE_LEN: usize = 2 * SIGNED_VOTE_LEN;

impl Evidence {
    /// Evidence from two votes in any order; checks that they conflict (same
    /// slot, different values) but not their signatures.
    pub fn from_conflict(a: SignedVote, b: SignedVote) -> Result<Self, EvidenceError> {
        let (first, second) = if a.vote.value <= b.vote.value {
            (a, b)
        } else {
            (b, a)
        };
        let e = Evidence { first, second };
        e.check_shape()?;
        Ok(e)
    }

    /// The vote with the lower value.
    pub fn first(&self) -> &SignedVote {
        &self.first
    }

    /// The vote with the higher value.
    pub fn second(&self) -> &SignedVote {
        &self.second
    }

    /// The slot both votes are for.
    pub fn slot(&self) -> Slot {
        self.first.vote.slot()
    }

    /// The equivocating signer.
    pub fn signer(&self) -> ClusterId {
        self.first.vote.voter
    }

    fn check_shape(&self) -> Result<(), EvidenceError> {
        if self.first.vote.slot() != self.second.vote.slot() {
            return Err(EvidenceError::DifferentSlots);
        }
        if self.first.vote.value == self.second.vote.value {
            return Err(EvidenceError::EqualValues);
        }
        if self.first.vote.value > self.second.vote.value {
            return Err(EvidenceError::WrongOrder);
        }
        Ok(())
    }

    /// Verifies the evidence against the roster of its epoch; returns the signer to flag.
    pub fn verify(&self, roster: &Roster) -> Result<ClusterId, EvidenceError> {
        self.verify_with(|vote| verify_vote(roster, vote).map(|_| ()))
    }

    /// Everything [`Evidence::verify`] checks except the two signatures, for
    /// verifiers that check signatures separately (in parallel, with a cache).
    pub fn verify_without_signatures(&self, roster: &Roster) -> Result<ClusterId, EvidenceError> {
        self.verify_with(|vote| check_vote_context(roster, vote))
    }

    fn verify_with(
        &self,
        check: impl Fn(&SignedVote) -> Result<(), VoteError>,
    ) -> Result<ClusterId, EvidenceError> {
        self.check_shape()?;
        for (side, vote) in [(Side::First, &self.first), (Side::Second, &self.second)] {
            check(vote).map_err(|e| match e {
                VoteError::BadSignature(_) => EvidenceError::BadSignature(side),
                VoteError::NotAMember(id) => EvidenceError::NotAMember(id),
                other => EvidenceError::WrongRoster(other),
            })?;
        }
        Ok(self.signer())
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(EVIDENCE_LEN);
        self.first.write(&mut w);
        self.second.write(&mut w);
        w.finish()
    }

    /// Decodes exactly one encoding. The votes are kept in the order they
    /// appear, so that [`Evidence::verify`] reports a wrong order.
    pub fn decode(bytes: &[u8]) -> Result<Self, EvidenceError> {
        let mut r = Reader::new(bytes);
        let first = SignedVote::read(&mut r)?;
        let second = SignedVote::read(&mut r)?;
        r.finish()?;
        Ok(Evidence { first, second })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::vote::VoteKind;
    use crate::testkit::{TestNet, value};

    fn conflict(net: &TestNet) -> Evidence {
        let round = net.round(VoteKind::ByzantineQuorum, 1);
        Evidence::from_conflict(net.vote(0, round, value(1)), net.vote(0, round, value(2))).unwrap()
    }

    #[test]
    fn real_conflict_verifies_and_round_trips() {
        let net = TestNet::new(1, &[1, 1, 1]);
        let e = conflict(&net);
        assert!(e.first().vote.value < e.second().vote.value);
        assert_eq!(e.verify(&net.roster).unwrap(), net.identities[0].id());
        let back = Evidence::decode(&e.encode()).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.encode().len(), EVIDENCE_LEN);
    }

    #[test]
    fn each_malformation_has_its_own_error() {
        let net = TestNet::new(1, &[1, 1, 1]);
        let round = net.round(VoteKind::ByzantineQuorum, 1);
        let a = net.vote(0, round, value(1));
        let e = conflict(&net);

        assert_eq!(
            Evidence::from_conflict(a, a),
            Err(EvidenceError::EqualValues)
        );
        let other_round = net.vote(0, net.round(VoteKind::ByzantineQuorum, 2), value(2));
        assert_eq!(
            Evidence::from_conflict(a, other_round),
            Err(EvidenceError::DifferentSlots)
        );
        let other_voter = net.vote(1, round, value(2));
        assert_eq!(
            Evidence::from_conflict(a, other_voter),
            Err(EvidenceError::DifferentSlots)
        );

        let mut swapped = e.encode();
        swapped.rotate_left(SIGNED_VOTE_LEN);
        assert_eq!(
            Evidence::decode(&swapped).unwrap().verify(&net.roster),
            Err(EvidenceError::WrongOrder)
        );

        let mut bad_sig = e.encode();
        bad_sig[EVIDENCE_LEN - 1] ^= 1;
        assert_eq!(
            Evidence::decode(&bad_sig).unwrap().verify(&net.roster),
            Err(EvidenceError::BadSignature(Side::Second))
        );
        let mut bad_first = e.encode();
        bad_first[SIGNED_VOTE_LEN - 1] ^= 1;
        assert_eq!(
            Evidence::decode(&bad_first).unwrap().verify(&net.roster),
            Err(EvidenceError::BadSignature(Side::First))
        );

        let outsider = TestNet::new(2, &[1]);
        let r = net.round(VoteKind::ByzantineQuorum, 1);
        let stranger =
            Evidence::from_conflict(outsider.vote(0, r, value(1)), outsider.vote(0, r, value(2)))
                .unwrap();
        assert_eq!(
            stranger.verify(&net.roster),
            Err(EvidenceError::NotAMember(outsider.identities[0].id()))
        );

        let foreign_round = outsider.round(VoteKind::ByzantineQuorum, 1);
        let foreign = Evidence::from_conflict(
            net.vote(0, foreign_round, value(1)),
            net.vote(0, foreign_round, value(2)),
        )
        .unwrap();
        assert!(matches!(
            foreign.verify(&net.roster),
            Err(EvidenceError::WrongRoster(_))
        ));

        assert!(matches!(
            Evidence::decode(&e.encode()[..100]),
            Err(EvidenceError::Decode(_))
        ));
    }
}
