//! Heartbeats: the small signed statement "cluster `id`, incarnation `i`, is
//! alive at beat `n`", kept apart from the node record so that liveness can
//! be gossiped every second without re-signing and re-sending the whole
//! record (addresses, links, queues), which only moves when it changes.
//!
//! A heartbeat is signed by its owner like a record, so a relay cannot keep
//! a dead cluster alive by inventing beats for it; a verified heartbeat is
//! cached in the [`SigCache`] like any signature.
//!
//! Sign bytes (big-endian):
//! `tag_len:u8=20 | "fedmesh/heartbeat/v1" | network_id:32 | id:32 | incarnation:u64 | counter:u64`.
//! As for records, the network id is signed but not sent.

use ed25519_dalek::VerifyingKey;

use super::record::Verified;
use super::sigcache::SigCache;
use crate::proto::bytes32::NetworkId;
use crate::proto::codec::{DecodeError, Reader, Writer, tags};
use crate::proto::identity::{ClusterId, Identity, verify_strict};
use crate::proto::wire::Sig64;

/// A heartbeat with its owner's signature. Not trusted until verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedHeartbeat {
    /// The owner.
    pub id: ClusterId,
    /// The owner's incarnation; a beat only counts for the record of the same incarnation.
    pub incarnation: u64,
    /// Beats within the incarnation, starting at 1 (0 means "none yet").
    pub counter: u64,
    /// ed25519 signature by `id` over the sign bytes.
    pub signature: Sig64,
}

/// Why a heartbeat is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    /// The signature does not verify under the owner's key.
    #[error("bad heartbeat signature for {0}")]
    BadSignature(ClusterId),
    /// The sign bytes do not parse.
    #[error("malformed heartbeat encoding: {0}")]
    Decode(#[from] DecodeError),
}

/// The exact bytes the owner of a heartbeat signs (see the module docs).
pub fn sign_bytes(
    network_id: &NetworkId,
    id: &ClusterId,
    incarnation: u64,
    counter: u64,
) -> Vec<u8> {
    let mut w = Writer::with_capacity(1 + tags::HEARTBEAT.len() + 32 + 32 + 16);
    w.tag(tags::HEARTBEAT)
        .raw(&network_id.0)
        .raw(&id.0)
        .u64(incarnation)
        .u64(counter);
    w.finish()
}

/// Parses sign bytes back into `(network_id, id, incarnation, counter)`.
pub fn decode_sign_bytes(bytes: &[u8]) -> Result<(NetworkId, ClusterId, u64, u64), DecodeError> {
    let mut r = Reader::new(bytes);
    r.expect_tag(tags::HEARTBEAT)?;
    let network_id = NetworkId(r.array()?);
    let id = ClusterId(r.array()?);
    let incarnation = r.u64()?;
    let counter = r.u64()?;
    r.finish()?;
    Ok((network_id, id, incarnation, counter))
}

impl SignedHeartbeat {
    /// Signs beat `counter` of `incarnation` for `identity`.
    pub fn sign(
        identity: &Identity,
        network_id: &NetworkId,
        incarnation: u64,
        counter: u64,
    ) -> SignedHeartbeat {
        let id = identity.id();
        let signature = Sig64(identity.sign(&sign_bytes(network_id, &id, incarnation, counter)));
        SignedHeartbeat {
            id,
            incarnation,
            counter,
            signature,
        }
    }

    /// Checks the owner's signature (`key` must be the owner's validated
    /// key), remembering a success in `cache`.
    pub fn verify(
        &self,
        network_id: &NetworkId,
        key: &VerifyingKey,
        cache: Option<&SigCache>,
    ) -> Result<Verified, HeartbeatError> {
        let bytes = sign_bytes(network_id, &self.id, self.incarnation, self.counter);
        let cache_key = SigCache::key(&bytes, &self.signature.0);
        if cache.is_some_and(|c| c.contains(&cache_key)) {
            return Ok(Verified::Cached);
        }
        if key.as_bytes() != self.id.as_bytes() || !verify_strict(key, &bytes, &self.signature.0) {
            return Err(HeartbeatError::BadSignature(self.id));
        }
        if let Some(c) = cache {
            c.insert(cache_key);
        }
        Ok(Verified::Checked)
    }

    /// An upper bound of its postcard size inside a frame.
    pub const WIRE_LEN_BOUND: usize = 32 + 10 + 10 + 1 + 64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_tamper_and_layout() {
        let net = NetworkId([7; 32]);
        let me = Identity::from_seed([1; 32]);
        let key = me.id().verifying_key().unwrap();
        let hb = SignedHeartbeat::sign(&me, &net, 3, 41);
        let cache = SigCache::new(8);
        assert_eq!(hb.verify(&net, &key, Some(&cache)), Ok(Verified::Checked));
        assert_eq!(hb.verify(&net, &key, Some(&cache)), Ok(Verified::Cached));
        let wire = postcard::to_stdvec(&hb).unwrap();
        assert!(wire.len() <= SignedHeartbeat::WIRE_LEN_BOUND);
        let relayed: SignedHeartbeat = postcard::from_bytes(&wire).unwrap();
        assert_eq!(relayed.verify(&net, &key, None), Ok(Verified::Checked));

        // A relay bumping the counter, another network, another signer.
        let bumped = SignedHeartbeat { counter: 42, ..hb };
        assert!(bumped.verify(&net, &key, Some(&cache)).is_err());
        assert!(hb.verify(&NetworkId([8; 32]), &key, None).is_err());
        let mallory = Identity::from_seed([9; 32]);
        let forged = SignedHeartbeat {
            signature: Sig64(mallory.sign(&sign_bytes(&net, &me.id(), 3, 99))),
            counter: 99,
            ..hb
        };
        assert!(forged.verify(&net, &key, None).is_err());
        let mkey = mallory.id().verifying_key().unwrap();
        assert!(
            forged.verify(&net, &mkey, None).is_err(),
            "key is not the owner's"
        );

        let bytes = sign_bytes(&net, &me.id(), 3, 41);
        assert_eq!(&bytes[1..21], b"fedmesh/heartbeat/v1");
        assert_eq!(decode_sign_bytes(&bytes).unwrap(), (net, me.id(), 3, 41));
        assert!(decode_sign_bytes(&bytes[..bytes.len() - 1]).is_err());
        // A record's sign bytes never parse as a heartbeat's.
        let mut other = bytes.clone();
        other[1] = b'x';
        assert!(decode_sign_bytes(&other).is_err());
    }
}
