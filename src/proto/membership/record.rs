//! Node records: the one signed, versioned statement each cluster makes about
//! itself (addresses, links with RTT, hosted queues, roster epoch). A record
//! is re-signed only when its content changes (its `revision` then grows);
//! liveness travels separately in small signed heartbeats
//! ([`super::heartbeat`]). Only the
//! owner can produce a valid record; relays forward records unchanged and
//! cannot forge them, because verifiers rebuild the signed bytes from the
//! decoded fields and check the owner's signature with `verify_strict`.
//!
//! Sign bytes (big-endian, every count a `u32`):
//! `tag_len:u8=17 | "fedmesh/record/v1" | network_id:32 | id:32 | incarnation:u64 |
//! revision:u64 | roster_epoch:u64 | status:u8 (0 alive, 1 left) |
//! addr_count | addr* | link_count | link* | queue_count | queue* |
//! subscription_count | subscription*`
//! where `addr = family:u8 (4 or 6) | ip:4 or 16 | port:u16`,
//! `link = peer:32 | rtt_micros:u32`, `queue = name:str16` and
//! `subscription = pattern:str16` (AMQP-style, `*` one segment, `#` any).
//! Links are sorted by peer id, queues and subscriptions by their text, all
//! without duplicates;
//! addresses keep the owner's preference order, without duplicates.
//!
//! The network id is part of the signed bytes but not of the wire form: a
//! verifier always uses its own network id, so a record signed for another
//! federation never verifies.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;

use super::sigcache::SigCache;
use crate::proto::bytes32::NetworkId;
use crate::proto::codec::{DecodeError, Reader, Writer, tags};
use crate::proto::identity::{ClusterId, Identity, verify_strict};
use crate::proto::queue::Pattern;
use crate::proto::roster::validate_name;
use crate::proto::wire::Sig64;

/// Most listen addresses a record may advertise.
pub const MAX_ADDRS: usize = 8;
/// Most links a record may list.
pub const MAX_LINKS: usize = 64;
/// Most hosted queue names a record may list.
pub const MAX_QUEUES: usize = 32;
/// Most subscription patterns a record may list (the queue registry keeps
/// the same bound per cluster).
pub const MAX_SUBSCRIPTIONS: usize = MAX_QUEUES;

/// A record's version: records of one cluster are ordered by incarnation,
/// then revision. The field order makes the derived `Ord` exactly that.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Version {
    /// Bumped every time the cluster restarts.
    pub incarnation: u64,
    /// Bumped every time the content changes within one incarnation.
    pub revision: u64,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.incarnation, self.revision)
    }
}

/// One live link of the record's owner, with its measured round-trip time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkInfo {
    /// The cluster at the other end.
    pub peer: ClusterId,
    /// Smoothed RTT in microseconds (saturating at `u32::MAX`, about 71 minutes).
    pub rtt_micros: u32,
}

/// What a cluster says about itself. Not yet signed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeRecord {
    /// The owner.
    pub id: ClusterId,
    /// The owner's incarnation (bumped on every restart).
    pub incarnation: u64,
    /// The owner's content revision within this incarnation (starts at 0).
    pub revision: u64,
    /// The roster epoch the owner holds.
    pub roster_epoch: u64,
    /// The owner announced a graceful departure; this is its final record
    /// for this incarnation.
    pub left: bool,
    /// Addresses the owner listens on, in preference order.
    pub addrs: Vec<SocketAddr>,
    /// The owner's live links, sorted by peer id.
    pub links: Vec<LinkInfo>,
    /// Names of the queues the owner hosts, sorted.
    pub queues: Vec<String>,
    /// Subscription patterns of the owner's local subscribers, sorted.
    pub subscriptions: Vec<String>,
}

/// Why a record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// More than [`MAX_ADDRS`] addresses.
    #[error("record lists {0} addresses, at most {MAX_ADDRS} are allowed")]
    TooManyAddrs(usize),
    /// An address is listed twice, is unspecified (`0.0.0.0`, `::`) or has port 0.
    #[error("record address {0} is duplicated or not dialable")]
    BadAddr(SocketAddr),
    /// More than [`MAX_LINKS`] links.
    #[error("record lists {0} links, at most {MAX_LINKS} are allowed")]
    TooManyLinks(usize),
    /// Links are not strictly ascending by peer id, or one points at the owner.
    #[error("record links are not canonical (unsorted, duplicated or a self-link)")]
    LinksNotCanonical,
    /// More than [`MAX_QUEUES`] queue names.
    #[error("record lists {0} queues, at most {MAX_QUEUES} are allowed")]
    TooManyQueues(usize),
    /// A queue name is empty, too long or uses forbidden characters.
    #[error("invalid queue name {0:?}")]
    BadQueueName(String),
    /// Queue names are not strictly ascending.
    #[error("record queues are not canonical (unsorted or duplicated)")]
    QueuesNotCanonical,
    /// More than [`MAX_SUBSCRIPTIONS`] subscription patterns.
    #[error("record lists {0} subscriptions, at most {MAX_SUBSCRIPTIONS} are allowed")]
    TooManySubscriptions(usize),
    /// A subscription pattern does not parse.
    #[error("invalid subscription pattern {0:?}")]
    BadPattern(String),
    /// Subscription patterns are not strictly ascending.
    #[error("record subscriptions are not canonical (unsorted or duplicated)")]
    SubscriptionsNotCanonical,
    /// The identity asked to sign is not the record's owner.
    #[error("record of {owner} cannot be signed by {signer}")]
    WrongSigner {
        /// The record's owner.
        owner: ClusterId,
        /// The key that was asked to sign.
        signer: ClusterId,
    },
    /// The signature does not verify under the owner's key.
    #[error("bad record signature for {0}")]
    BadSignature(ClusterId),
    /// The sign bytes do not parse.
    #[error("malformed record encoding: {0}")]
    Decode(#[from] DecodeError),
}

impl NodeRecord {
    /// This record's version.
    pub fn version(&self) -> Version {
        Version {
            incarnation: self.incarnation,
            revision: self.revision,
        }
    }

    /// Checks every bound and canonical-order rule. A record that fails here
    /// is never signed, never stored and never forwarded.
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.addrs.len() > MAX_ADDRS {
            return Err(RecordError::TooManyAddrs(self.addrs.len()));
        }
        for (i, a) in self.addrs.iter().enumerate() {
            let dup = self.addrs[..i]
                .iter()
                .any(|b| b.ip() == a.ip() && b.port() == a.port());
            if dup || a.port() == 0 || a.ip().is_unspecified() {
                return Err(RecordError::BadAddr(*a));
            }
        }
        if self.links.len() > MAX_LINKS {
            return Err(RecordError::TooManyLinks(self.links.len()));
        }
        let sorted = self.links.windows(2).all(|w| w[0].peer < w[1].peer);
        if !sorted || self.links.iter().any(|l| l.peer == self.id) {
            return Err(RecordError::LinksNotCanonical);
        }
        if self.queues.len() > MAX_QUEUES {
            return Err(RecordError::TooManyQueues(self.queues.len()));
        }
        for q in &self.queues {
            validate_name(q).map_err(|_| RecordError::BadQueueName(q.clone()))?;
        }
        if !self.queues.windows(2).all(|w| w[0] < w[1]) {
            return Err(RecordError::QueuesNotCanonical);
        }
        if self.subscriptions.len() > MAX_SUBSCRIPTIONS {
            return Err(RecordError::TooManySubscriptions(self.subscriptions.len()));
        }
        for p in &self.subscriptions {
            Pattern::new(p).map_err(|_| RecordError::BadPattern(p.clone()))?;
        }
        if !self.subscriptions.windows(2).all(|w| w[0] < w[1]) {
            return Err(RecordError::SubscriptionsNotCanonical);
        }
        Ok(())
    }

    /// True if both records say the same thing apart from the revision.
    pub fn same_content(&self, other: &NodeRecord) -> bool {
        self.id == other.id
            && self.incarnation == other.incarnation
            && self.roster_epoch == other.roster_epoch
            && self.left == other.left
            && self.addrs == other.addrs
            && self.links == other.links
            && self.queues == other.queues
            && self.subscriptions == other.subscriptions
    }

    /// The exact bytes the owner signs (see the module docs). Callers
    /// validate first; lengths beyond the bounds are a programming error.
    pub fn sign_bytes(&self, network_id: &NetworkId) -> Vec<u8> {
        let mut w = Writer::with_capacity(
            164 + self.addrs.len() * 19
                + self.links.len() * 36
                + (self.queues.len() + self.subscriptions.len()) * 24,
        );
        w.tag(tags::RECORD)
            .raw(&network_id.0)
            .raw(&self.id.0)
            .u64(self.incarnation)
            .u64(self.revision)
            .u64(self.roster_epoch)
            .u8(u8::from(self.left))
            .u32(count(self.addrs.len()));
        for a in &self.addrs {
            match a.ip() {
                IpAddr::V4(ip) => w.u8(4).raw(&ip.octets()),
                IpAddr::V6(ip) => w.u8(6).raw(&ip.octets()),
            };
            w.u16(a.port());
        }
        w.u32(count(self.links.len()));
        for l in &self.links {
            w.raw(&l.peer.0).u32(l.rtt_micros);
        }
        w.u32(count(self.queues.len()));
        for q in &self.queues {
            w.str16(q);
        }
        w.u32(count(self.subscriptions.len()));
        for p in &self.subscriptions {
            w.str16(p);
        }
        w.finish()
    }

    /// Parses sign bytes back into the network id and the record, checking
    /// the domain tag, every bound and the canonical order. Used by tests,
    /// tools and independent implementations; verification itself always
    /// rebuilds the bytes from the record's fields.
    pub fn decode_sign_bytes(bytes: &[u8]) -> Result<(NetworkId, NodeRecord), RecordError> {
        let mut r = Reader::new(bytes);
        r.expect_tag(tags::RECORD)?;
        let network_id = NetworkId(r.array()?);
        let id = ClusterId(r.array()?);
        let incarnation = r.u64()?;
        let revision = r.u64()?;
        let roster_epoch = r.u64()?;
        let left = match r.u8()? {
            0 => false,
            1 => true,
            other => {
                return Err(
                    DecodeError::invalid("status", format!("unknown status {other}")).into(),
                );
            }
        };
        let n = r.count(7)?;
        if n > MAX_ADDRS {
            return Err(RecordError::TooManyAddrs(n));
        }
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            let ip = match r.u8()? {
                4 => IpAddr::from(r.array::<4>()?),
                6 => IpAddr::from(r.array::<16>()?),
                other => {
                    return Err(DecodeError::invalid(
                        "address family",
                        format!("unknown family {other}"),
                    )
                    .into());
                }
            };
            addrs.push(SocketAddr::new(ip, r.u16()?));
        }
        let n = r.count(36)?;
        if n > MAX_LINKS {
            return Err(RecordError::TooManyLinks(n));
        }
        let mut links = Vec::with_capacity(n);
        for _ in 0..n {
            let peer = ClusterId(r.array()?);
            links.push(LinkInfo {
                peer,
                rtt_micros: r.u32()?,
            });
        }
        let n = r.count(2)?;
        if n > MAX_QUEUES {
            return Err(RecordError::TooManyQueues(n));
        }
        let mut queues = Vec::with_capacity(n);
        for _ in 0..n {
            queues.push(r.str16("queue name")?);
        }
        let n = r.count(2)?;
        if n > MAX_SUBSCRIPTIONS {
            return Err(RecordError::TooManySubscriptions(n));
        }
        let mut subscriptions = Vec::with_capacity(n);
        for _ in 0..n {
            subscriptions.push(r.str16("subscription pattern")?);
        }
        r.finish()?;
        let record = NodeRecord {
            id,
            incarnation,
            revision,
            roster_epoch,
            left,
            addrs,
            links,
            queues,
            subscriptions,
        };
        record.validate()?;
        Ok((network_id, record))
    }

    /// An upper bound on this record's postcard size inside a frame, with its
    /// signature; used to keep gossip frames under their byte budget without
    /// serialising them twice.
    pub fn wire_len_bound(&self) -> usize {
        // id + 3 u64 varints + bool + 4 length varints + signature with its length.
        let fixed: usize = 32 + 3 * 10 + 1 + 4 * 5 + 66;
        let addrs = self.addrs.len().saturating_mul(1 + 16 + 3);
        let links = self.links.len().saturating_mul(32 + 5);
        let queues: usize = self
            .queues
            .iter()
            .chain(&self.subscriptions)
            .map(|q| q.len().saturating_add(3))
            .sum();
        fixed
            .saturating_add(addrs)
            .saturating_add(links)
            .saturating_add(queues)
    }
}

/// Counts are bounded by validation far below `u32::MAX`.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A record with its owner's signature over [`NodeRecord::sign_bytes`].
/// Not trusted until verified. The record is shared (`Arc`): relaying a
/// record to many peers copies a pointer, not its lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedRecord {
    /// The record.
    #[serde(with = "shared")]
    pub record: Arc<NodeRecord>,
    /// ed25519 signature by `record.id` over the sign bytes.
    pub signature: Sig64,
}

/// Serde for `Arc<NodeRecord>` as a plain `NodeRecord` (serde's own impl
/// needs the `rc` feature).
mod shared {
    use std::sync::Arc;

    use super::NodeRecord;

    pub(super) fn serialize<S: serde::Serializer>(
        r: &Arc<NodeRecord>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(r.as_ref(), s)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Arc<NodeRecord>, D::Error> {
        <NodeRecord as serde::Deserialize>::deserialize(d).map(Arc::new)
    }
}

/// How a signature check was satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The (bytes, signature) pair was already in the cache.
    Cached,
    /// The signature was checked with `verify_strict` just now.
    Checked,
}

impl SignedRecord {
    /// Validates and signs `record` for `network_id`. The identity must be the owner.
    pub fn sign(
        record: NodeRecord,
        identity: &Identity,
        network_id: &NetworkId,
    ) -> Result<SignedRecord, RecordError> {
        if identity.id() != record.id {
            return Err(RecordError::WrongSigner {
                owner: record.id,
                signer: identity.id(),
            });
        }
        record.validate()?;
        let signature = Sig64(identity.sign(&record.sign_bytes(network_id)));
        Ok(SignedRecord {
            record: Arc::new(record),
            signature,
        })
    }

    /// The owner.
    pub fn id(&self) -> ClusterId {
        self.record.id
    }

    /// The record's version.
    pub fn version(&self) -> Version {
        self.record.version()
    }

    /// Checks the bounds and the owner's signature. `key` must be the owner's
    /// validated key (from the roster, or from [`ClusterId::verifying_key`]).
    /// A successful check is remembered in `cache`, keyed by
    /// BLAKE3(sign bytes ‖ signature), so a gossip duplicate costs a hash.
    pub fn verify(
        &self,
        network_id: &NetworkId,
        key: &VerifyingKey,
        cache: Option<&SigCache>,
    ) -> Result<Verified, RecordError> {
        self.record.validate()?;
        let bytes = self.record.sign_bytes(network_id);
        let cache_key = SigCache::key(&bytes, &self.signature.0);
        if cache.is_some_and(|c| c.contains(&cache_key)) {
            return Ok(Verified::Cached);
        }
        if key.as_bytes() != self.record.id.as_bytes()
            || !verify_strict(key, &bytes, &self.signature.0)
        {
            return Err(RecordError::BadSignature(self.record.id));
        }
        if let Some(c) = cache {
            c.insert(cache_key);
        }
        Ok(Verified::Checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> NetworkId {
        NetworkId([7; 32])
    }

    fn record(identity: &Identity) -> NodeRecord {
        let mut links = vec![
            LinkInfo {
                peer: Identity::from_seed([2; 32]).id(),
                rtt_micros: 1500,
            },
            LinkInfo {
                peer: Identity::from_seed([3; 32]).id(),
                rtt_micros: 90_000,
            },
        ];
        links.sort_by_key(|l| l.peer);
        NodeRecord {
            id: identity.id(),
            incarnation: 3,
            revision: 41,
            roster_epoch: 0,
            left: false,
            addrs: vec![
                "10.0.0.1:7000".parse().unwrap(),
                "[fd00::1]:7000".parse().unwrap(),
            ],
            links,
            queues: vec!["jobs".into(), "jobs.eu".into()],
            subscriptions: vec!["#".into(), "jobs.*".into()],
        }
    }

    #[test]
    fn sign_verify_and_sign_bytes_round_trip() {
        let me = Identity::from_seed([1; 32]);
        let key = me.id().verifying_key().unwrap();
        let signed = SignedRecord::sign(record(&me), &me, &net()).unwrap();
        let cache = SigCache::new(8);
        assert_eq!(
            signed.verify(&net(), &key, Some(&cache)),
            Ok(Verified::Checked)
        );
        assert_eq!(
            signed.verify(&net(), &key, Some(&cache)),
            Ok(Verified::Cached)
        );
        let bytes = signed.record.sign_bytes(&net());
        assert_eq!(&bytes[1..18], b"fedmesh/record/v1");
        let (n, back) = NodeRecord::decode_sign_bytes(&bytes).unwrap();
        assert_eq!(n, net());
        assert_eq!(back, *signed.record);
        // Through postcard, as relays forward it.
        let wire = postcard::to_stdvec(&signed).unwrap();
        assert!(wire.len() <= signed.record.wire_len_bound());
        let relayed: SignedRecord = postcard::from_bytes(&wire).unwrap();
        assert_eq!(relayed.verify(&net(), &key, None), Ok(Verified::Checked));
    }

    #[test]
    fn tampering_another_network_or_another_signer_is_refused() {
        let me = Identity::from_seed([1; 32]);
        let key = me.id().verifying_key().unwrap();
        let signed = SignedRecord::sign(record(&me), &me, &net()).unwrap();
        let mut bumped = signed.clone();
        Arc::make_mut(&mut bumped.record).revision += 1;
        assert_eq!(
            bumped.verify(&net(), &key, None),
            Err(RecordError::BadSignature(me.id()))
        );
        assert!(signed.verify(&NetworkId([8; 32]), &key, None).is_err());
        // Someone else signs a record claiming to be `me`.
        let mallory = Identity::from_seed([9; 32]);
        let forged = SignedRecord {
            record: signed.record.clone(),
            signature: Sig64(mallory.sign(&signed.record.sign_bytes(&net()))),
        };
        assert!(forged.verify(&net(), &key, None).is_err());
        // A key that is not the owner's is refused even with a valid signature by it.
        let mkey = mallory.id().verifying_key().unwrap();
        let mut theirs = signed.record.clone();
        Arc::make_mut(&mut theirs).id = me.id();
        assert!(
            SignedRecord {
                record: theirs.clone(),
                signature: Sig64(mallory.sign(&theirs.sign_bytes(&net())))
            }
            .verify(&net(), &mkey, None)
            .is_err()
        );
        assert!(matches!(
            SignedRecord::sign(record(&me), &mallory, &net()),
            Err(RecordError::WrongSigner { .. })
        ));
    }

    #[test]
    fn bounds_and_canonical_order_are_enforced() {
        let me = Identity::from_seed([1; 32]);
        let mut r = record(&me);
        r.addrs = (0..=MAX_ADDRS as u16)
            .map(|p| SocketAddr::from(([10, 0, 0, 1], 1000 + p)))
            .collect();
        assert_eq!(r.validate(), Err(RecordError::TooManyAddrs(MAX_ADDRS + 1)));
        let mut r = record(&me);
        r.addrs.push(r.addrs[0]);
        assert!(matches!(r.validate(), Err(RecordError::BadAddr(_))));
        let mut r = record(&me);
        r.addrs = vec!["0.0.0.0:7000".parse().unwrap()];
        assert!(matches!(r.validate(), Err(RecordError::BadAddr(_))));
        let mut r = record(&me);
        r.links.reverse();
        assert_eq!(r.validate(), Err(RecordError::LinksNotCanonical));
        let mut r = record(&me);
        r.links[0].peer = me.id();
        r.links.sort_by_key(|l| l.peer);
        assert_eq!(r.validate(), Err(RecordError::LinksNotCanonical));
        let mut r = record(&me);
        r.queues.reverse();
        assert_eq!(r.validate(), Err(RecordError::QueuesNotCanonical));
        let mut r = record(&me);
        r.queues.push("bad name".into());
        assert!(matches!(r.validate(), Err(RecordError::BadQueueName(_))));
        let mut r = record(&me);
        r.queues = (0..=MAX_QUEUES).map(|i| format!("q{i:03}")).collect();
        assert!(matches!(r.validate(), Err(RecordError::TooManyQueues(_))));
        let mut r = record(&me);
        r.subscriptions.reverse();
        assert_eq!(r.validate(), Err(RecordError::SubscriptionsNotCanonical));
        let mut r = record(&me);
        r.subscriptions.push("jobs..x".into());
        assert!(matches!(r.validate(), Err(RecordError::BadPattern(_))));
        let mut r = record(&me);
        r.subscriptions = (0..=MAX_SUBSCRIPTIONS)
            .map(|i| format!("s{i:03}"))
            .collect();
        assert!(matches!(
            r.validate(),
            Err(RecordError::TooManySubscriptions(_))
        ));
        // Truncated or padded sign bytes never decode.
        let bytes = record(&me).sign_bytes(&net());
        assert!(NodeRecord::decode_sign_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(NodeRecord::decode_sign_bytes(&long).is_err());
    }

    #[test]
    fn version_orders_by_incarnation_then_revision() {
        let v = |incarnation, revision| Version {
            incarnation,
            revision,
        };
        assert!(v(2, 0) > v(1, 999));
        assert!(v(1, 5) > v(1, 4));
        let me = Identity::from_seed([1; 32]);
        let a = record(&me);
        let mut b = a.clone();
        b.revision += 10;
        assert!(a.same_content(&b));
        b.links.pop();
        assert!(!a.same_content(&b));
    }
}
