//! Votes: one signer's value for one slot, signed over a fixed big-endian
//! layout that starts with the `fedmesh/vote/v1` domain tag.
//!
//! Sign bytes (153 bytes):
//! `tag_len:u8=15 | "fedmesh/vote/v1" | network_id:32 | epoch:u64 | kind:u8 |
//! subject:32 | value:32 | voter:32`.
//! Encoded vote (201 bytes): the same fields without the tag, then the 64-byte signature.

use super::bytes32::{Digest, NetworkId};
use super::codec::{DecodeError, Reader, Writer, tags};
use super::identity::{ClusterId, Identity, verify_strict};
use super::quorum::Threshold;

/// What a vote decides; each kind has its own quorum threshold.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum VoteKind {
    /// Delivery of a GLOBAL_QUORUM message (more than 1/2 of the weight).
    GlobalQuorum = 1,
    /// Delivery of a BYZANTINE_QUORUM message (more than 2/3 of the weight).
    ByzantineQuorum = 2,
    /// A roster change to the next epoch (more than 2/3 of the weight).
    RosterChange = 3,
}

impl VoteKind {
    /// The quorum this kind of vote needs.
    pub fn threshold(self) -> Threshold {
        match self {
            VoteKind::GlobalQuorum => Threshold::Global,
            VoteKind::ByzantineQuorum | VoteKind::RosterChange => Threshold::Byzantine,
        }
    }

    /// The kind encoded as `b`.
    pub fn from_u8(b: u8) -> Result<Self, DecodeError> {
        match b {
            1 => Ok(VoteKind::GlobalQuorum),
            2 => Ok(VoteKind::ByzantineQuorum),
            3 => Ok(VoteKind::RosterChange),
            other => Err(DecodeError::invalid(
                "vote kind",
                format!("unknown kind {other}"),
            )),
        }
    }
}

/// The value a voter signs to refuse a subject; accept values are message
/// digests, which are never all zero.
pub const REJECT: Digest = Digest([0u8; 32]);

/// A decision round: every voter's slot in it shares these fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Round {
    /// The federation.
    pub network_id: NetworkId,
    /// The roster epoch whose weights count the votes.
    pub epoch: u64,
    /// What is being decided.
    pub kind: VoteKind,
    /// What the round is about (for messages: a digest of origin and sequence).
    pub subject: Digest,
}

/// A vote slot: one voter in one round. A voter may sign only one value per slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    /// The round.
    pub round: Round,
    /// The signer.
    pub voter: ClusterId,
}

/// An unsigned vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    /// The round voted in.
    pub round: Round,
    /// The value voted for (an accept digest or [`REJECT`]).
    pub value: Digest,
    /// The signer.
    pub voter: ClusterId,
}

/// Length of [`Vote::sign_bytes`].
pub const VOTE_SIGN_BYTES_LEN: usize = 1 + 15 + 32 + 8 + 1 + 32 + 32 + 32;
/// Length of [`SignedVote::encode`].
pub const SIGNED_VOTE_LEN: usize = 32 + 8 + 1 + 32 + 32 + 32 + 64;

impl Vote {
    /// This vote's slot.
    pub fn slot(&self) -> Slot {
        Slot {
            round: self.round,
            voter: self.voter,
        }
    }

    /// The exact bytes that are signed.
    pub fn sign_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(VOTE_SIGN_BYTES_LEN);
        w.tag(tags::VOTE);
        self.write_fields(&mut w);
        w.finish()
    }

    fn write_fields(&self, w: &mut Writer) {
        w.raw(&self.round.network_id.0)
            .u64(self.round.epoch)
            .u8(self.round.kind as u8)
            .raw(&self.round.subject.0)
            .raw(&self.value.0)
            .raw(&self.voter.0);
    }

    /// Signs this vote. The identity must be the voter.
    pub fn sign(self, identity: &Identity) -> Result<SignedVote, VoteError> {
        if identity.id() != self.voter {
            return Err(VoteError::WrongSigner {
                voter: self.voter,
                signer: identity.id(),
            });
        }
        let signature = identity.sign(&self.sign_bytes());
        Ok(SignedVote {
            vote: self,
            signature,
        })
    }
}

/// A vote and the voter's signature over its sign bytes. Not yet verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignedVote {
    /// The vote.
    pub vote: Vote,
    /// ed25519 signature over `vote.sign_bytes()`.
    pub signature: [u8; 64],
}

/// Why a vote is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    /// The identity asked to sign is not the vote's voter.
    #[error("vote names voter {voter} but would be signed by {signer}")]
    WrongSigner {
        /// The voter the vote names.
        voter: ClusterId,
        /// The key that was asked to sign.
        signer: ClusterId,
    },
    /// The signature does not verify under the voter's key.
    #[error("bad signature from {0}")]
    BadSignature(ClusterId),
    /// The voter is not a member of the roster of the vote's epoch.
    #[error("voter {0} is not a member of the roster")]
    NotAMember(ClusterId),
    /// The vote is for another network.
    #[error("vote is for network {got}, expected {expected}")]
    WrongNetwork {
        /// This roster's network.
        expected: NetworkId,
        /// The vote's network.
        got: NetworkId,
    },
    /// The vote is for another epoch than the roster it is checked against.
    #[error("vote is for epoch {got}, the roster is epoch {expected}")]
    WrongEpoch {
        /// The roster's epoch.
        expected: u64,
        /// The vote's epoch.
        got: u64,
    },
}

impl SignedVote {
    /// The canonical 201-byte encoding (fields, then signature).
    pub fn encode(&self) -> [u8; SIGNED_VOTE_LEN] {
        let mut w = Writer::with_capacity(SIGNED_VOTE_LEN);
        self.write(&mut w);
        let mut out = [0u8; SIGNED_VOTE_LEN];
        out.copy_from_slice(&w.finish());
        out
    }

    /// Appends the canonical encoding to `w`.
    pub fn write(&self, w: &mut Writer) {
        self.vote.write_fields(w);
        w.raw(&self.signature);
    }

    /// Reads one canonical encoding from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let network_id = NetworkId(r.array()?);
        let epoch = r.u64()?;
        let kind = VoteKind::from_u8(r.u8()?)?;
        let subject = Digest(r.array()?);
        let value = Digest(r.array()?);
        let voter = ClusterId(r.array()?);
        let signature = r.array()?;
        Ok(SignedVote {
            vote: Vote {
                round: Round {
                    network_id,
                    epoch,
                    kind,
                    subject,
                },
                value,
                voter,
            },
            signature,
        })
    }

    /// Decodes exactly one encoded vote, refusing trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::read(&mut r)?;
        r.finish()?;
        Ok(v)
    }

    /// Checks the signature with `verify_strict` under `key`, which the
    /// caller took from the roster for `self.vote.voter`.
    pub fn verify_with(&self, key: &ed25519_dalek::VerifyingKey) -> Result<(), VoteError> {
        if verify_strict(key, &self.vote.sign_bytes(), &self.signature) {
            Ok(())
        } else {
            Err(VoteError::BadSignature(self.vote.voter))
        }
    }

    /// A digest of (sign bytes, signature): the key of the verified-signature cache.
    pub fn cache_key(&self) -> Digest {
        Digest::of(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(identity: &Identity) -> Vote {
        Vote {
            round: Round {
                network_id: NetworkId([7; 32]),
                epoch: 3,
                kind: VoteKind::ByzantineQuorum,
                subject: Digest([1; 32]),
            },
            value: Digest([2; 32]),
            voter: identity.id(),
        }
    }

    #[test]
    fn layout_is_fixed_and_round_trips() {
        let id = Identity::from_seed([9; 32]);
        let v = sample(&id);
        let bytes = v.sign_bytes();
        assert_eq!(bytes.len(), VOTE_SIGN_BYTES_LEN);
        assert_eq!(&bytes[..16], b"\x0ffedmesh/vote/v1");
        assert_eq!(&bytes[48..56], &3u64.to_be_bytes());
        let sv = v.sign(&id).unwrap();
        let enc = sv.encode();
        assert_eq!(SignedVote::decode(&enc).unwrap(), sv);
        assert!(SignedVote::decode(&enc[..200]).is_err());
        let mut long = enc.to_vec();
        long.push(0);
        assert_eq!(SignedVote::decode(&long), Err(DecodeError::Trailing(1)));
        let mut bad_kind = enc;
        bad_kind[40] = 9;
        assert!(SignedVote::decode(&bad_kind).is_err());
    }

    #[test]
    fn signature_binds_every_field_and_the_domain() {
        let id = Identity::from_seed([9; 32]);
        let key = id.id().verifying_key().unwrap();
        let sv = sample(&id).sign(&id).unwrap();
        sv.verify_with(&key).unwrap();
        type Mutation = Box<dyn Fn(&mut Vote)>;
        let mutations: Vec<Mutation> = vec![
            Box::new(|v| v.round.network_id.0[0] ^= 1),
            Box::new(|v| v.round.epoch += 1),
            Box::new(|v| v.round.kind = VoteKind::GlobalQuorum),
            Box::new(|v| v.round.subject.0[5] ^= 1),
            Box::new(|v| v.value.0[31] ^= 1),
        ];
        for m in mutations {
            let mut other = sv;
            m(&mut other.vote);
            assert_eq!(
                other.verify_with(&key),
                Err(VoteError::BadSignature(id.id()))
            );
        }
        // A signature over the same fields under another domain tag never verifies as a vote.
        let mut w = Writer::default();
        w.tag(tags::CHECKPOINT);
        w.raw(&sv.vote.sign_bytes()[16..]);
        let foreign = SignedVote {
            vote: sv.vote,
            signature: id.sign(&w.finish()),
        };
        assert!(foreign.verify_with(&key).is_err());
        // Someone else cannot sign for the voter.
        let mallory = Identity::from_seed([8; 32]);
        assert!(matches!(
            sample(&id).sign(&mallory),
            Err(VoteError::WrongSigner { .. })
        ));
    }
}
