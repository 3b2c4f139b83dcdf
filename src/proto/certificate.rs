//! Certificates: the signed votes that prove a quorum accepted a value.
//! Verifying one rebuilds every vote from the certificate's fields and
//! recomputes the weighted tally; nothing in it is taken on trust.
//!
//! Encoding: `network_id:32 | epoch:u64 | kind:u8 | subject:32 | value:32 |
//! count:u32 | (voter:32 | signature:64)*`, voters strictly ascending.

use crate::proto::bytes32::{Digest, NetworkId};
use crate::proto::codec::{DecodeError, Reader, Writer};
use crate::proto::identity::ClusterId;
use crate::proto::quorum::{QuorumError, VerifiedVote, check_vote_context, verify_vote};
use crate::proto::roster::{MAX_MEMBERS, Roster};
use crate::proto::vote::{Round, SignedVote, Vote, VoteError, VoteKind};

/// Why a certificate is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// No votes at all.
    #[error("certificate holds no votes")]
    Empty,
    /// Voters are not strictly ascending (a duplicate voter shows here too).
    #[error("voters are not strictly ascending at {0} (duplicate or unsorted)")]
    NotCanonical(ClusterId),
    /// A vote is refused (non-member, wrong network or epoch, bad signature).
    #[error("vote by {voter} refused: {error}")]
    Vote {
        /// The voter whose vote was refused.
        voter: ClusterId,
        /// Why.
        error: VoteError,
    },
    /// The votes do not reach the threshold of the certificate's kind.
    #[error("no quorum: {yes} of {total} weight does not meet the {kind:?} threshold")]
    NoQuorum {
        /// What the round decided.
        kind: VoteKind,
        /// Weight of the votes.
        yes: u64,
        /// The roster's total weight.
        total: u64,
    },
    /// Tally arithmetic failed.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// The encoding does not parse.
    #[error("malformed certificate: {0}")]
    Decode(#[from] DecodeError),
}

/// A quorum certificate for one round and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    round: Round,
    value: Digest,
    signatures: Vec<(ClusterId, [u8; 64])>,
}

impl Certificate {
    /// Builds a certificate from verified votes for `round` and `value`
    /// (votes for anything else are ignored); the result is canonical.
    pub fn from_votes<'a>(
        round: Round,
        value: Digest,
        votes: impl IntoIterator<Item = &'a VerifiedVote>,
    ) -> Self {
        let mut signatures: Vec<_> = votes
            .into_iter()
            .map(VerifiedVote::signed)
            .filter(|sv| sv.vote.round == round && sv.vote.value == value)
            .map(|sv| (sv.vote.voter, sv.signature))
            .collect();
        signatures.sort_by_key(|s| s.0);
        signatures.dedup_by(|a, b| a.0 == b.0);
        Certificate {
            round,
            value,
            signatures,
        }
    }

    /// The round decided.
    pub fn round(&self) -> Round {
        self.round
    }

    /// The value certified.
    pub fn value(&self) -> Digest {
        self.value
    }

    /// Number of votes.
    pub fn len(&self) -> usize {
        self.signatures.len()
    }

    /// Whether the certificate holds no votes.
    pub fn is_empty(&self) -> bool {
        self.signatures.is_empty()
    }

    /// The signed votes, rebuilt from the certificate's fields.
    pub fn votes(&self) -> impl Iterator<Item = SignedVote> + '_ {
        self.signatures.iter().map(|(voter, signature)| SignedVote {
            vote: Vote {
                round: self.round,
                value: self.value,
                voter: *voter,
            },
            signature: *signature,
        })
    }

    /// Checks shape, membership and the weighted tally, but not signatures:
    /// for verifiers that check signatures separately (in parallel, with a
    /// cache). Returns the certified weight.
    pub fn verify_tally(&self, roster: &Roster) -> Result<u64, CertificateError> {
        if self.signatures.is_empty() {
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
            check_vote_context(roster, &vote)
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

    /// Fully verifies the certificate: tally and every signature.
    pub fn verify(&self, roster: &Roster) -> Result<u64, CertificateError> {
        let yes = self.verify_tally(roster)?;
        for vote in self.votes() {
            verify_vote(roster, &vote).map_err(|error| CertificateError::Vote {
                voter: vote.vote.voter,
                error,
            })?;
        }
        Ok(yes)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(32 + 8 + 1 + 64 + 4 + 96 * self.signatures.len());
        w.raw(&self.round.network_id.0)
            .u64(self.round.epoch)
            .u8(self.round.kind as u8)
            .raw(&self.round.subject.0)
            .raw(&self.value.0)
            .u32(self.signatures.len() as u32);
        for (voter, sig) in &self.signatures {
            w.raw(&voter.0).raw(sig);
        }
        w.finish()
    }

    /// Decodes exactly one encoding (order is checked by verification, not here,
    /// so a non-canonical certificate is reported precisely).
    pub fn decode(bytes: &[u8]) -> Result<Self, CertificateError> {
        let mut r = Reader::new(bytes);
        let round = Round {
            network_id: NetworkId(r.array()?),
            epoch: r.u64()?,
            kind: VoteKind::from_u8(r.u8()?)?,
            subject: Digest(r.array()?),
        };
        let value = Digest(r.array()?);
        let n = r.count(96)?;
        if n > MAX_MEMBERS {
            return Err(
                DecodeError::invalid("vote count", format!("{n} exceeds {MAX_MEMBERS}")).into(),
            );
        }
        let mut signatures = Vec::with_capacity(n);
        for _ in 0..n {
            signatures.push((ClusterId(r.array()?), r.array()?));
        }
        r.finish()?;
        Ok(Certificate {
            round,
            value,
            signatures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{TestNet, value};

    fn verified(net: &TestNet, voters: &[usize], round: Round, v: Digest) -> Vec<VerifiedVote> {
        voters
            .iter()
            .map(|i| verify_vote(&net.roster, &net.vote(*i, round, v)).unwrap())
            .collect()
    }

    #[test]
    fn verifies_by_recomputing_the_tally() {
        let net = TestNet::new(1, &[33, 33, 34]);
        let round = net.round(VoteKind::ByzantineQuorum, 1);
        let votes = verified(&net, &[2, 0, 1], round, value(1));
        let cert = Certificate::from_votes(round, value(1), &votes);
        assert_eq!(cert.verify(&net.roster).unwrap(), 100);
        assert_eq!(Certificate::decode(&cert.encode()).unwrap(), cert);

        // 67 of 100 is a Byzantine quorum; 66 is not.
        let two = Certificate::from_votes(round, value(1), &votes[..2]);
        assert_eq!(two.verify(&net.roster).unwrap(), 67);
        let weak =
            Certificate::from_votes(round, value(1), &verified(&net, &[0, 1], round, value(1)));
        assert!(matches!(
            weak.verify(&net.roster),
            Err(CertificateError::NoQuorum {
                yes: 66,
                total: 100,
                ..
            })
        ));
    }

    #[test]
    fn tampering_is_refused() {
        let net = TestNet::new(1, &[1, 1, 1]);
        let round = net.round(VoteKind::GlobalQuorum, 1);
        let cert = Certificate::from_votes(
            round,
            value(1),
            &verified(&net, &[0, 1, 2], round, value(1)),
        );
        let mut bytes = cert.encode();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(
            Certificate::decode(&bytes).unwrap().verify(&net.roster),
            Err(CertificateError::Vote {
                error: VoteError::BadSignature(_),
                ..
            })
        ));
        // Duplicate a voter: not canonical.
        let mut dup = cert.clone();
        dup.signatures[1] = dup.signatures[0];
        assert!(matches!(
            dup.verify(&net.roster),
            Err(CertificateError::NotCanonical(_))
        ));
        // The value changed: every signature fails.
        let mut other_value = cert.encode();
        other_value[32 + 8 + 1 + 32] ^= 1;
        assert!(
            Certificate::decode(&other_value)
                .unwrap()
                .verify(&net.roster)
                .is_err()
        );
        // A forged count cannot allocate.
        let mut huge = cert.encode();
        huge[32 + 8 + 1 + 64..32 + 8 + 1 + 64 + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Certificate::decode(&huge).is_err());
        let empty = Certificate::from_votes(round, value(1), &[]);
        assert_eq!(empty.verify(&net.roster), Err(CertificateError::Empty));
    }
}
