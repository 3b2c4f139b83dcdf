//! Checkpoints: the node's signature over the chain head, so that anyone
//! holding only the log can tell that the node vouched for every record
//! before the checkpoint (in the style of C2SP tlog-checkpoint).
//!
//! Body (72 bytes): `size:u64 | signature:64`.
//! Signed bytes (126 bytes): `tag_len:u8=21 | "fedmesh/checkpoint/v1" |
//! network_id:32 | node_id:32 | size:u64 | prev:32`.

use ed25519_dalek::VerifyingKey;

use super::format::LogHeader;
use crate::proto::Digest;
use crate::proto::codec::{DecodeError, Reader, Writer, tags};
use crate::proto::identity::{Identity, verify_strict};

/// Length of a checkpoint record's body.
pub const CHECKPOINT_BODY_LEN: usize = 8 + 64;

/// Why a checkpoint record does not vouch for the records before it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointFault {
    /// The body is not `size:u64 | signature:64`.
    #[error("malformed checkpoint body: {0}")]
    Malformed(#[from] DecodeError),
    /// The size field disagrees with the checkpoint's own sequence number.
    #[error("checkpoint claims {size} records but sits at seq {seq}")]
    SizeMismatch {
        /// The size the checkpoint claims.
        size: u64,
        /// The checkpoint's sequence number (the true number of records before it).
        seq: u64,
    },
    /// The signature does not verify under the header's node id.
    #[error("checkpoint signature does not verify under the log's node id")]
    BadSignature,
}

/// A decoded checkpoint body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Number of records before the checkpoint (equals its own seq).
    pub size: u64,
    /// ed25519 signature by the log's node over [`Checkpoint::sign_bytes`].
    pub signature: [u8; 64],
}

impl Checkpoint {
    /// The exact bytes a checkpoint signs. Network and node id are included
    /// so a signature cannot be replayed into another node's or network's log.
    pub fn sign_bytes(header: &LogHeader, size: u64, prev: &Digest) -> Vec<u8> {
        let mut w = Writer::with_capacity(1 + tags::CHECKPOINT.len() + 32 + 32 + 8 + 32);
        w.tag(tags::CHECKPOINT)
            .raw(header.network_id.as_bytes())
            .raw(header.node_id.as_bytes())
            .u64(size)
            .raw(prev.as_bytes());
        w.finish()
    }

    /// A checkpoint over the `size` records whose last hash is `prev`.
    pub fn sign(identity: &Identity, header: &LogHeader, size: u64, prev: &Digest) -> Self {
        Checkpoint {
            size,
            signature: identity.sign(&Self::sign_bytes(header, size, prev)),
        }
    }

    /// The record body.
    pub fn encode(&self) -> [u8; CHECKPOINT_BODY_LEN] {
        let mut w = Writer::with_capacity(CHECKPOINT_BODY_LEN);
        w.u64(self.size).raw(&self.signature);
        let mut out = [0u8; CHECKPOINT_BODY_LEN];
        out.copy_from_slice(&w.finish());
        out
    }

    /// Parses a record body, refusing any other length.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let cp = Checkpoint {
            size: r.u64()?,
            signature: r.array()?,
        };
        r.finish()?;
        Ok(cp)
    }

    /// Checks a checkpoint record found at `seq` with chain field `prev`.
    /// `key` is the header's node id, already validated as a strong key.
    pub fn verify(
        body: &[u8],
        key: &VerifyingKey,
        header: &LogHeader,
        seq: u64,
        prev: &Digest,
    ) -> Result<Self, CheckpointFault> {
        let cp = Self::decode(body)?;
        if cp.size != seq {
            return Err(CheckpointFault::SizeMismatch { size: cp.size, seq });
        }
        if !verify_strict(key, &Self::sign_bytes(header, cp.size, prev), &cp.signature) {
            return Err(CheckpointFault::BadSignature);
        }
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::NetworkId;

    fn setup() -> (Identity, LogHeader) {
        let id = Identity::from_seed([3; 32]);
        let header = LogHeader {
            network_id: NetworkId([1; 32]),
            node_id: id.id(),
        };
        (id, header)
    }

    #[test]
    fn signed_checkpoint_verifies_and_binds_every_field() {
        let (id, header) = setup();
        let key = id.id().verifying_key().unwrap();
        let prev = Digest([4; 32]);
        let body = Checkpoint::sign(&id, &header, 7, &prev).encode();
        assert_eq!(Checkpoint::sign_bytes(&header, 7, &prev).len(), 126);
        assert_eq!(
            Checkpoint::verify(&body, &key, &header, 7, &prev)
                .unwrap()
                .size,
            7
        );
        assert_eq!(
            Checkpoint::verify(&body, &key, &header, 8, &prev),
            Err(CheckpointFault::SizeMismatch { size: 7, seq: 8 })
        );
        assert_eq!(
            Checkpoint::verify(&body, &key, &header, 7, &Digest([5; 32])),
            Err(CheckpointFault::BadSignature)
        );
        let other_net = LogHeader {
            network_id: NetworkId([2; 32]),
            ..header
        };
        assert_eq!(
            Checkpoint::verify(&body, &key, &other_net, 7, &prev),
            Err(CheckpointFault::BadSignature)
        );
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let (id, header) = setup();
        let key = id.id().verifying_key().unwrap();
        let prev = Digest([4; 32]);
        let body = Checkpoint::sign(&id, &header, 7, &prev).encode();
        for bad in [&body[..71], &[body.as_slice(), &[0]].concat()[..], &[][..]] {
            assert!(matches!(
                Checkpoint::verify(bad, &key, &header, 7, &prev),
                Err(CheckpointFault::Malformed(_))
            ));
        }
    }
}
