//! Delivery certificates: the attested votes (single or batched) that prove
//! a quorum accepted a message, verifiable by anyone with the roster of the
//! round's epoch. A certificate whose votes are all single signatures
//! converts to the foundation [`Certificate`] (what the vote log stores today).
//!
//! Encoding: `network_id:32 | epoch:u64 | kind:u8 | subject:32 | value:32 |
//! count:u32 | (voter:32 | attestation)*`, voters strictly ascending,
//! attestation as in [`Attestation::write`].

use crate::proto::bytes32::{Digest, NetworkId};
use crate::proto::certificate::{Certificate, CertificateError};
use crate::proto::codec::{DecodeError, Reader, Writer};
use crate::proto::identity::ClusterId;
use crate::proto::membership::sigcache::SigCache;
use crate::proto::quorum::{QuorumError, assume_signature_checked};
use crate::proto::roster::{MAX_MEMBERS, Roster};
use crate::proto::vote::{Round, Vote, VoteKind};

use super::batch::{Attestation, AttestedVote};

/// A quorum certificate whose votes may be batch-attested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumCertificate {
    round: Round,
    value: Digest,
    votes: Vec<(ClusterId, Attestation)>,
}

impl QuorumCertificate {
    /// A canonical certificate from `votes` for `round` and `value` (others ignored).
    pub fn from_votes<'a>(
        round: Round,
        value: Digest,
        votes: impl IntoIterator<Item = &'a AttestedVote>,
    ) -> Self {
        let v = votes
            .into_iter()
            .filter(|a| a.vote.round == round && a.vote.value == value)
            .map(|a| (a.vote.voter, a.attestation.clone()))
            .collect();
        Self::from_attestations(round, value, v)
    }

    /// A canonical certificate from voters' attestations of `value` in
    /// `round` (sorted by voter, one per voter); the caller vouches that each
    /// attests a vote for exactly that round and value.
    pub(crate) fn from_attestations(
        round: Round,
        value: Digest,
        mut votes: Vec<(ClusterId, Attestation)>,
    ) -> Self {
        votes.sort_unstable_by_key(|(id, _)| *id);
        votes.dedup_by(|a, b| a.0 == b.0);
        QuorumCertificate {
            round,
            value,
            votes,
        }
    }

    /// The round decided.
    pub fn round(&self) -> Round {
        self.round
    }

    /// The certified value (the message digest).
    pub fn value(&self) -> Digest {
        self.value
    }

    /// Number of votes.
    pub fn len(&self) -> usize {
        self.votes.len()
    }

    /// Whether there are no votes.
    pub fn is_empty(&self) -> bool {
        self.votes.is_empty()
    }

    /// The attested votes, rebuilt from the certificate's fields.
    pub fn votes(&self) -> impl Iterator<Item = AttestedVote> + '_ {
        self.votes.iter().map(|(voter, a)| AttestedVote {
            vote: Vote {
                round: self.round,
                value: self.value,
                voter: *voter,
            },
            attestation: a.clone(),
        })
    }

    /// Verifies shape, every vote (signatures through `cache`) and the weighted
    /// tally against the roster of the round's epoch; returns the certified weight.
    pub fn verify(
        &self,
        roster: &Roster,
        cache: Option<&SigCache>,
    ) -> Result<u64, CertificateError> {
        if self.votes.is_empty() {
            return Err(CertificateError::Empty);
        }
        let mut yes: u64 = 0;
        let mut prev: Option<ClusterId> = None;
        for vote in self.votes() {
            let voter = vote.vote.voter;
            if prev.is_some_and(|p| p >= voter) {
                return Err(CertificateError::NotCanonical(voter));
            }
            prev = Some(voter);
            vote.verify(roster, cache)
                .map_err(|error| CertificateError::Vote { voter, error })?;
            let w = roster.weight(&voter).unwrap_or(0);
            yes = yes.checked_add(w).ok_or(QuorumError::Overflow)?;
        }
        let total = roster.total_weight();
        let kind = self.round.kind;
        if !kind.threshold().is_met(yes, total)? {
            return Err(CertificateError::NoQuorum { kind, yes, total });
        }
        Ok(yes)
    }

    /// The foundation certificate, if every vote is a single signature.
    pub fn to_single(&self, roster: &Roster) -> Option<Certificate> {
        let votes = self
            .votes()
            .map(|a| {
                a.as_single()
                    .and_then(|sv| assume_signature_checked(roster, &sv).ok())
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Certificate::from_votes(self.round, self.value, &votes))
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(110 + 200 * self.votes.len());
        w.raw(&self.round.network_id.0)
            .u64(self.round.epoch)
            .u8(self.round.kind as u8)
            .raw(&self.round.subject.0)
            .raw(&self.value.0)
            .u32(self.votes.len() as u32);
        for (voter, a) in &self.votes {
            w.raw(&voter.0);
            a.write(&mut w);
        }
        w.finish()
    }

    /// Decodes exactly one encoding (order is checked by verification).
    pub fn decode(bytes: &[u8]) -> Result<Self, CertificateError> {
        let mut r = Reader::new(bytes);
        let round = Round {
            network_id: NetworkId(r.array()?),
            epoch: r.u64()?,
            kind: VoteKind::from_u8(r.u8()?)?,
            subject: Digest(r.array()?),
        };
        let value = Digest(r.array()?);
        let n = r.count(32 + 65)?;
        if n > MAX_MEMBERS {
            return Err(DecodeError::invalid("vote count", format!("{n} > {MAX_MEMBERS}")).into());
        }
        let mut votes = Vec::with_capacity(n);
        for _ in 0..n {
            let voter = ClusterId(r.array()?);
            votes.push((voter, Attestation::read(&mut r)?));
        }
        r.finish()?;
        Ok(QuorumCertificate {
            round,
            value,
            votes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::delivery::VoteBatch;
    use crate::testkit::{TestNet, value};

    fn batched(net: &TestNet, voters: &[usize], round: Round, v: Digest) -> Vec<AttestedVote> {
        voters
            .iter()
            .map(|i| {
                let entries = vec![(value(900), value(901)), (round.subject, v)];
                let b = VoteBatch::sign(
                    &net.identities[*i],
                    round.network_id,
                    round.epoch,
                    round.kind,
                    entries,
                )
                .unwrap();
                b.votes()[1].clone()
            })
            .collect()
    }

    #[test]
    fn batched_and_single_votes_certify_and_round_trip() {
        let net = TestNet::new(4, &[33, 33, 34]);
        let round = net.round(VoteKind::ByzantineQuorum, 1);
        let mut votes = batched(&net, &[0, 2], round, value(1));
        votes.push(net.vote(1, round, value(1)).into());
        votes.push(net.vote(1, round, value(2)).into()); // another value: ignored
        let cert = QuorumCertificate::from_votes(round, value(1), &votes);
        assert_eq!(cert.len(), 3);
        let cache = SigCache::new(8);
        assert_eq!(cert.verify(&net.roster, Some(&cache)).unwrap(), 100);
        assert_eq!(QuorumCertificate::decode(&cert.encode()).unwrap(), cert);
        assert!(cert.to_single(&net.roster).is_none());
        // 67 of 100 is a Byzantine quorum, 66 is not.
        let strong = QuorumCertificate::from_votes(round, value(1), &votes[..2]);
        assert_eq!(strong.verify(&net.roster, None).unwrap(), 67);
        let weak =
            QuorumCertificate::from_votes(round, value(1), &[votes[0].clone(), votes[2].clone()]);
        assert!(matches!(
            weak.verify(&net.roster, None),
            Err(CertificateError::NoQuorum { yes: 66, .. })
        ));
        // All single: converts to the foundation certificate, which verifies.
        let singles: Vec<AttestedVote> = (0..3)
            .map(|i| net.vote(i, round, value(1)).into())
            .collect();
        let c = QuorumCertificate::from_votes(round, value(1), &singles);
        c.to_single(&net.roster)
            .unwrap()
            .verify(&net.roster)
            .unwrap();
    }

    #[test]
    fn tampering_is_refused() {
        let net = TestNet::new(4, &[1, 1, 1]);
        let round = net.round(VoteKind::GlobalQuorum, 1);
        let votes = batched(&net, &[0, 1, 2], round, value(1));
        let cert = QuorumCertificate::from_votes(round, value(1), &votes);
        let mut bytes = cert.encode();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(
            QuorumCertificate::decode(&bytes)
                .unwrap()
                .verify(&net.roster, None),
            Err(CertificateError::Vote { .. })
        ));
        let mut other = cert.encode();
        other[32 + 8 + 1 + 32] ^= 1; // the value
        assert!(
            QuorumCertificate::decode(&other)
                .unwrap()
                .verify(&net.roster, None)
                .is_err()
        );
        let mut dup = cert.clone();
        dup.votes[1] = dup.votes[0].clone();
        assert!(matches!(
            dup.verify(&net.roster, None),
            Err(CertificateError::NotCanonical(_))
        ));
        let mut huge = cert.encode();
        huge[32 + 8 + 1 + 64..32 + 8 + 1 + 64 + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(QuorumCertificate::decode(&huge).is_err());
        let empty = QuorumCertificate::from_votes(round, value(1), &[]);
        assert_eq!(
            empty.verify(&net.roster, None),
            Err(CertificateError::Empty)
        );
    }
}
