//! Equivocation evidence over attested votes: two votes of one signer for
//! one slot with different values, lower value first, each verifiable on its
//! own (single or batch-attested). Two single votes convert to the
//! foundation [`Evidence`].
//!
//! Encoding: the two attested votes ([`AttestedVote::write`]), first then second.

use crate::proto::codec::{Reader, Writer};
use crate::proto::evidence::{Evidence, EvidenceError, Side};
use crate::proto::identity::ClusterId;
use crate::proto::membership::sigcache::SigCache;
use crate::proto::roster::Roster;
use crate::proto::vote::{Slot, VoteError};

use super::batch::AttestedVote;

/// Two conflicting attested votes for one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteEvidence {
    first: AttestedVote,
    second: AttestedVote,
}

impl VoteEvidence {
    /// Evidence from two votes in any order; checks the shape (same slot,
    /// different values), not the signatures.
    pub fn from_conflict(a: AttestedVote, b: AttestedVote) -> Result<Self, EvidenceError> {
        let (first, second) = if a.vote.value <= b.vote.value {
            (a, b)
        } else {
            (b, a)
        };
        let e = VoteEvidence { first, second };
        e.check_shape()?;
        Ok(e)
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

    /// The slot both votes are for.
    pub fn slot(&self) -> Slot {
        self.first.vote.slot()
    }

    /// The equivocating signer.
    pub fn signer(&self) -> ClusterId {
        self.first.vote.voter
    }

    /// The vote with the lower value.
    pub fn first(&self) -> &AttestedVote {
        &self.first
    }

    /// The vote with the higher value.
    pub fn second(&self) -> &AttestedVote {
        &self.second
    }

    /// Verifies the evidence against the roster of its epoch; returns the signer to flag.
    pub fn verify(
        &self,
        roster: &Roster,
        cache: Option<&SigCache>,
    ) -> Result<ClusterId, EvidenceError> {
        self.check_shape()?;
        for (side, vote) in [(Side::First, &self.first), (Side::Second, &self.second)] {
            vote.verify(roster, cache).map_err(|e| match e {
                VoteError::BadSignature(_) => EvidenceError::BadSignature(side),
                VoteError::NotAMember(id) => EvidenceError::NotAMember(id),
                other => EvidenceError::WrongRoster(other),
            })?;
        }
        Ok(self.signer())
    }

    /// The foundation evidence, if both votes are single signatures.
    pub fn to_single(&self) -> Option<Evidence> {
        Evidence::from_conflict(self.first.as_single()?, self.second.as_single()?).ok()
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(600);
        self.first.write(&mut w);
        self.second.write(&mut w);
        w.finish()
    }

    /// Decodes exactly one encoding (order is checked by verification).
    pub fn decode(bytes: &[u8]) -> Result<Self, EvidenceError> {
        let mut r = Reader::new(bytes);
        let first = AttestedVote::read(&mut r)?;
        let second = AttestedVote::read(&mut r)?;
        r.finish()?;
        Ok(VoteEvidence { first, second })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::delivery::VoteBatch;
    use crate::proto::vote::VoteKind;
    use crate::testkit::{TestNet, value};

    #[test]
    fn batched_conflict_verifies_round_trips_and_tampering_is_refused() {
        let net = TestNet::new(6, &[1, 1, 1]);
        let r = net.round(VoteKind::ByzantineQuorum, 1);
        let id = &net.identities[2];
        let a = VoteBatch::sign(
            id,
            r.network_id,
            r.epoch,
            r.kind,
            vec![(r.subject, value(1))],
        )
        .unwrap();
        let b = VoteBatch::sign(
            id,
            r.network_id,
            r.epoch,
            r.kind,
            vec![(value(7), value(8)), (r.subject, value(2))],
        )
        .unwrap();
        let (va, vb) = (a.votes()[0].clone(), b.votes()[1].clone());
        let e = VoteEvidence::from_conflict(vb.clone(), va.clone()).unwrap();
        assert!(e.first().vote.value < e.second().vote.value);
        assert_eq!(e.verify(&net.roster, None).unwrap(), id.id());
        assert_eq!(VoteEvidence::decode(&e.encode()).unwrap(), e);
        assert!(e.to_single().is_none());
        assert_eq!(
            VoteEvidence::from_conflict(va.clone(), va.clone()),
            Err(EvidenceError::EqualValues)
        );
        let other_voter: AttestedVote = net.vote(0, r, value(2)).into();
        assert_eq!(
            VoteEvidence::from_conflict(va.clone(), other_voter),
            Err(EvidenceError::DifferentSlots)
        );
        let mut bad = e.encode();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            VoteEvidence::decode(&bad)
                .unwrap()
                .verify(&net.roster, None),
            Err(EvidenceError::BadSignature(Side::Second))
        );
        // Mixed single and batched, and all-single converts to foundation evidence.
        let single: AttestedVote = net.vote(2, r, value(3)).into();
        VoteEvidence::from_conflict(va, single.clone())
            .unwrap()
            .verify(&net.roster, None)
            .unwrap();
        let single2: AttestedVote = net.vote(2, r, value(4)).into();
        let s = VoteEvidence::from_conflict(single, single2).unwrap();
        assert_eq!(s.to_single().unwrap().verify(&net.roster).unwrap(), id.id());
    }
}
