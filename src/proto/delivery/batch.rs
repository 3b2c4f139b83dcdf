//! Vote batching: one ed25519 signature over many votes of one voter.
//!
//! # Design choice
//!
//! A [`VoteBatch`] signs the Merkle root of its entries, not the entries
//! themselves. Each entry then becomes an [`AttestedVote`]: the vote plus a
//! [`BatchProof`] (its index, the batch size, the sibling hashes up to the
//! root, and the batch signature). An attested vote is verifiable on its
//! own, with nothing but the roster of its epoch, exactly like a single
//! signed vote, so certificates and equivocation evidence stay per vote
//! (`QuorumCertificate`, `VoteEvidence`) and a certificate for one round
//! never has to carry the other rounds' entries. The alternative, keeping
//! single signatures inside certificates and batching only on the wire,
//! saves no signing or verifying at all; signing every batch entry's bytes
//! whole would make every certificate carry every other round's votes.
//!
//! Cost: the signer signs once per batch; a verifier checks the batch
//! signature once per batch (the verified-signature cache is keyed by the
//! signed header, which every entry of one batch shares) and a few BLAKE3
//! hashes per entry. A proof is `log2(count)` hashes (at most 12).
//!
//! Signed header (`fedmesh/votebatch/v1`):
//! `tag_len:u8 | "fedmesh/votebatch/v1" | network_id:32 | epoch:u64 | kind:u8 |
//! voter:32 | count:u32 | root:32`.
//! Merkle tree: leaf = BLAKE3(`0x00 | subject:32 | value:32`), inner node =
//! BLAKE3(`0x01 | left:32 | right:32`); an odd last node is promoted unchanged
//! to the next level (never duplicated, so no two entry lists share a root
//! with the same count).

use crate::proto::bytes32::{Digest, NetworkId};
use crate::proto::codec::{DecodeError, Reader, Writer, tags};
use crate::proto::identity::{ClusterId, Identity, verify_strict};
use crate::proto::membership::sigcache::SigCache;
use crate::proto::quorum::check_vote_context;
use crate::proto::roster::Roster;
use crate::proto::vote::{Round, SignedVote, Vote, VoteError, VoteKind};

/// Most entries in one batch.
pub const MAX_BATCH: usize = 4096;
/// Longest Merkle path (`ceil(log2(MAX_BATCH))`).
pub const MAX_PATH: usize = 12;

fn leaf(subject: &Digest, value: &Digest) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(&[0]).update(&subject.0).update(&value.0);
    Digest(*h.finalize().as_bytes())
}

fn node(l: &Digest, r: &Digest) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(&[1]).update(&l.0).update(&r.0);
    Digest(*h.finalize().as_bytes())
}

/// A batch's Merkle tree, built once per batch: every level in one flat
/// vector (leaves first, root last), so a verifier pays two allocations per
/// batch, not one per level or per entry, and produces an entry's path only
/// when a certificate or evidence needs it.
#[derive(Debug, Clone, Default)]
struct Tree {
    nodes: Vec<Digest>,
    /// `nodes[starts[l]..starts[l + 1]]` is level `l`; `levels` levels.
    starts: [usize; MAX_PATH + 2],
    levels: usize,
}

impl Tree {
    fn build(entries: &[(Digest, Digest)]) -> Self {
        let mut t = Tree {
            nodes: Vec::with_capacity(2 * entries.len()),
            ..Tree::default()
        };
        t.nodes.extend(entries.iter().map(|(s, v)| leaf(s, v)));
        t.levels = 1;
        t.starts[1] = t.nodes.len();
        let (mut lo, mut hi) = (0, t.nodes.len());
        // At most MAX_BATCH leaves, so at most MAX_PATH + 1 levels; the bound
        // on `starts` only stops a longer list from panicking (its root is
        // then wrong and nothing verifies).
        while hi - lo > 1 && t.levels <= MAX_PATH {
            let mut i = lo;
            while i < hi {
                let h = if i + 1 < hi {
                    node(&t.nodes[i], &t.nodes[i + 1])
                } else {
                    t.nodes[i]
                };
                t.nodes.push(h);
                i += 2;
            }
            (lo, hi) = (hi, t.nodes.len());
            t.levels += 1;
            t.starts[t.levels] = hi;
        }
        t
    }

    fn root(&self) -> Digest {
        self.nodes.last().copied().unwrap_or_default()
    }

    /// The sibling hashes of leaf `index` from the leaf up.
    fn path(&self, index: usize) -> MerklePath {
        let mut path = MerklePath::default();
        let mut idx = index;
        for l in 0..self.levels.saturating_sub(1) {
            let sibling = self.starts[l] + (idx ^ 1);
            if sibling < self.starts[l + 1]
                && let Some(s) = self.nodes.get(sibling)
            {
                path.push(*s);
            }
            idx /= 2;
        }
        path
    }
}

/// The root implied by `leaf` at `index` of `count` leaves and `path`, or
/// `None` if the path has the wrong length for that position.
fn root_from_path(
    mut h: Digest,
    mut index: usize,
    mut count: usize,
    path: &[Digest],
) -> Option<Digest> {
    if index >= count {
        return None;
    }
    let mut siblings = path.iter();
    while count > 1 {
        let promoted = index == count - 1 && count % 2 == 1;
        if !promoted {
            let s = siblings.next()?;
            h = if index.is_multiple_of(2) {
                node(&h, s)
            } else {
                node(s, &h)
            };
        }
        index /= 2;
        count = count.div_ceil(2);
    }
    siblings.next().is_none().then_some(h)
}

fn header_bytes(
    network: NetworkId,
    epoch: u64,
    kind: VoteKind,
    voter: ClusterId,
    count: u32,
    root: &Digest,
) -> Vec<u8> {
    let mut w = Writer::with_capacity(128);
    w.tag(tags::VOTE_BATCH)
        .raw(&network.0)
        .u64(epoch)
        .u8(kind as u8)
        .raw(&voter.0)
        .u32(count)
        .raw(&root.0);
    w.finish()
}

/// Why a batch cannot be formed or is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// No entries, or more than [`MAX_BATCH`].
    #[error("a batch holds 1..={MAX_BATCH} entries, got {0}")]
    Size(usize),
    /// Two entries for one subject (a signer never does this).
    #[error("two entries for subject {0}")]
    DuplicateSubject(Digest),
    /// The vote is refused.
    #[error(transparent)]
    Vote(#[from] VoteError),
    /// The encoding does not parse.
    #[error("malformed batch: {0}")]
    Decode(#[from] DecodeError),
}

/// Many votes of one voter (one network, epoch and kind) under one signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteBatch {
    network_id: NetworkId,
    epoch: u64,
    kind: VoteKind,
    voter: ClusterId,
    entries: Vec<(Digest, Digest)>,
    signature: [u8; 64],
}

impl VoteBatch {
    /// Signs `entries` (subject, value) as `identity` (tests; the
    /// `VoteSigner` signs with [`VoteBatch::sign_attested`]).
    #[cfg(test)]
    pub(crate) fn sign(
        identity: &Identity,
        network_id: NetworkId,
        epoch: u64,
        kind: VoteKind,
        entries: Vec<(Digest, Digest)>,
    ) -> Result<Self, BatchError> {
        Self::sign_attested(identity, network_id, epoch, kind, entries).map(|(b, _)| b)
    }

    /// Signs like [`VoteBatch::sign`] and returns every entry as an attested
    /// vote too, from the one tree built for the root.
    pub(crate) fn sign_attested(
        identity: &Identity,
        network_id: NetworkId,
        epoch: u64,
        kind: VoteKind,
        entries: Vec<(Digest, Digest)>,
    ) -> Result<(Self, Vec<AttestedVote>), BatchError> {
        if entries.is_empty() || entries.len() > MAX_BATCH {
            return Err(BatchError::Size(entries.len()));
        }
        let mut subjects: Vec<&Digest> = entries.iter().map(|(s, _)| s).collect();
        subjects.sort_unstable();
        if let Some(w) = subjects.windows(2).find(|w| w[0] == w[1]) {
            return Err(BatchError::DuplicateSubject(*w[0]));
        }
        let tree = Tree::build(&entries);
        let voter = identity.id();
        let bytes = header_bytes(
            network_id,
            epoch,
            kind,
            voter,
            entries.len() as u32,
            &tree.root(),
        );
        let batch = VoteBatch {
            network_id,
            epoch,
            kind,
            voter,
            signature: identity.sign(&bytes),
            entries,
        };
        let votes = batch.votes_from(&tree);
        Ok((batch, votes))
    }

    /// The signer.
    pub fn voter(&self) -> ClusterId {
        self.voter
    }

    /// Entries (subject, value).
    pub fn entries(&self) -> &[(Digest, Digest)] {
        &self.entries
    }

    /// The round of a subject in this batch's network, epoch and kind.
    pub fn round(&self, subject: Digest) -> Round {
        Round {
            network_id: self.network_id,
            epoch: self.epoch,
            kind: self.kind,
            subject,
        }
    }

    /// The signed header bytes.
    pub fn sign_bytes(&self) -> Vec<u8> {
        self.header(&Tree::build(&self.entries).root())
    }

    fn header(&self, root: &Digest) -> Vec<u8> {
        header_bytes(
            self.network_id,
            self.epoch,
            self.kind,
            self.voter,
            self.entries.len() as u32,
            root,
        )
    }

    /// Verifies the batch against the roster of its epoch (one signature check,
    /// skipped on a `cache` hit; successes are cached).
    pub fn verify(&self, roster: &Roster, cache: Option<&SigCache>) -> Result<(), VoteError> {
        self.verified(roster, cache).map(|_| ())
    }

    /// Verifies the batch like [`VoteBatch::verify`] and keeps its Merkle
    /// tree, from which each entry's proof is produced on demand: a verifier
    /// that tallies thousands of entries builds the few paths that go into
    /// certificates and evidence, not one per entry.
    pub fn verified(
        &self,
        roster: &Roster,
        cache: Option<&SigCache>,
    ) -> Result<VerifiedBatch, VoteError> {
        let first = self
            .entries
            .first()
            .map(|(s, v)| (*s, *v))
            .unwrap_or_default();
        let probe = SignedVote {
            vote: Vote {
                round: self.round(first.0),
                value: first.1,
                voter: self.voter,
            },
            signature: self.signature,
        };
        check_vote_context(roster, &probe)?;
        let key = roster
            .key(&self.voter)
            .ok_or(VoteError::NotAMember(self.voter))?;
        let tree = Tree::build(&self.entries);
        let bytes = self.header(&tree.root());
        check_signature(key, &bytes, &self.signature, self.voter, cache)?;
        Ok(VerifiedBatch {
            voter: self.voter,
            count: self.entries.len() as u32,
            signature: self.signature,
            tree,
        })
    }

    /// Verifies the batch like [`VoteBatch::verify`] and returns its entries as
    /// attested votes, building the Merkle tree once for both.
    pub fn verified_votes(
        &self,
        roster: &Roster,
        cache: Option<&SigCache>,
    ) -> Result<Vec<AttestedVote>, VoteError> {
        let verified = self.verified(roster, cache)?;
        Ok(self.votes_from(&verified.tree))
    }

    /// Every entry as a self-contained attested vote (the batch need not be
    /// verified first; each attested vote verifies on its own).
    pub fn votes(&self) -> Vec<AttestedVote> {
        self.votes_from(&Tree::build(&self.entries))
    }

    fn votes_from(&self, tree: &Tree) -> Vec<AttestedVote> {
        let count = self.entries.len() as u32;
        self.entries
            .iter()
            .enumerate()
            .map(|(i, (subject, value))| AttestedVote {
                vote: Vote {
                    round: self.round(*subject),
                    value: *value,
                    voter: self.voter,
                },
                attestation: Attestation::Batch(BatchProof {
                    index: i as u32,
                    count,
                    path: tree.path(i),
                    signature: self.signature,
                }),
            })
            .collect()
    }

    /// The canonical encoding: `network_id | epoch | kind | voter | count:u32 |
    /// (subject | value)* | signature`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(150 + 64 * self.entries.len());
        w.raw(&self.network_id.0)
            .u64(self.epoch)
            .u8(self.kind as u8)
            .raw(&self.voter.0)
            .u32(self.entries.len() as u32);
        for (s, v) in &self.entries {
            w.raw(&s.0).raw(&v.0);
        }
        w.raw(&self.signature);
        w.finish()
    }

    /// Decodes exactly one encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, BatchError> {
        let mut r = Reader::new(bytes);
        let network_id = NetworkId(r.array()?);
        let epoch = r.u64()?;
        let kind = VoteKind::from_u8(r.u8()?)?;
        let voter = ClusterId(r.array()?);
        let n = r.count(64)?;
        if n == 0 || n > MAX_BATCH {
            return Err(BatchError::Size(n));
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push((Digest(r.array()?), Digest(r.array()?)));
        }
        let signature = r.array()?;
        r.finish()?;
        Ok(VoteBatch {
            network_id,
            epoch,
            kind,
            voter,
            entries,
            signature,
        })
    }
}

fn check_signature(
    key: &ed25519_dalek::VerifyingKey,
    bytes: &[u8],
    sig: &[u8; 64],
    voter: ClusterId,
    cache: Option<&SigCache>,
) -> Result<(), VoteError> {
    let cache_key = cache.map(|_| SigCache::key(bytes, sig));
    if let (Some(c), Some(k)) = (cache, &cache_key)
        && c.contains(k)
    {
        return Ok(());
    }
    if !verify_strict(key, bytes, sig) {
        return Err(VoteError::BadSignature(voter));
    }
    if let (Some(c), Some(k)) = (cache, cache_key) {
        c.insert(k);
    }
    Ok(())
}

/// A batch whose signature verified against the roster of its epoch, with
/// its Merkle tree: [`VerifiedBatch::proof`] produces an entry's proof when
/// a certificate or evidence needs it.
#[derive(Debug, Clone)]
pub struct VerifiedBatch {
    voter: ClusterId,
    count: u32,
    signature: [u8; 64],
    tree: Tree,
}

impl VerifiedBatch {
    /// The signer.
    pub fn voter(&self) -> ClusterId {
        self.voter
    }

    /// The batch signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Entries in the batch.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the batch has no entries (never, for a verified batch).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The proof of entry `index` (a proof for an index out of range
    /// verifies for nothing).
    pub fn proof(&self, index: u32) -> BatchProof {
        BatchProof {
            index,
            count: self.count,
            path: self.tree.path(index as usize),
            signature: self.signature,
        }
    }
}

/// Sibling hashes from a leaf up, stored inline (at most [`MAX_PATH`]): a
/// proof is copied into every certificate and tally, and an inline array
/// keeps that free of allocations.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MerklePath {
    len: u8,
    hashes: [Digest; MAX_PATH],
}

impl MerklePath {
    /// Appends a sibling; ignored beyond [`MAX_PATH`] (callers check lengths first).
    pub fn push(&mut self, h: Digest) {
        if let Some(slot) = self.hashes.get_mut(self.len as usize) {
            *slot = h;
            self.len += 1;
        }
    }

    /// The siblings.
    pub fn as_slice(&self) -> &[Digest] {
        &self.hashes[..self.len as usize]
    }

    /// Number of siblings.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are none (a batch of one).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for MerklePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// The Merkle proof that a vote is entry `index` of a signed batch of `count`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchProof {
    /// The entry's position.
    pub index: u32,
    /// Entries in the batch.
    pub count: u32,
    /// Sibling hashes from the leaf up (promoted levels have none).
    pub path: MerklePath,
    /// The batch signature over the header.
    pub signature: [u8; 64],
}

/// How a vote is signed.
// The batch variant is inline on purpose: attested votes are copied into
// every tally and certificate, and boxing the proof costs an allocation and a
// free per vote on the hot path (measured with `benches/delivery.rs`).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attestation {
    /// A single `fedmesh/vote/v1` signature.
    Single([u8; 64]),
    /// An entry of a `fedmesh/votebatch/v1` batch.
    Batch(BatchProof),
}

impl Attestation {
    /// Appends `0 | signature:64` or
    /// `1 | index:u32 | count:u32 | path_len:u8 | path* | signature:64`.
    pub fn write(&self, w: &mut Writer) {
        match self {
            Attestation::Single(sig) => {
                w.u8(0).raw(sig);
            }
            Attestation::Batch(p) => {
                w.u8(1).u32(p.index).u32(p.count).u8(p.path.len() as u8);
                for h in p.path.as_slice() {
                    w.raw(&h.0);
                }
                w.raw(&p.signature);
            }
        }
    }

    /// Reads one encoding (path length bounded by [`MAX_PATH`]).
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8()? {
            0 => Attestation::Single(r.array()?),
            1 => {
                let index = r.u32()?;
                let count = r.u32()?;
                let n = r.u8()? as usize;
                if n > MAX_PATH {
                    return Err(DecodeError::invalid(
                        "batch path",
                        format!("{n} > {MAX_PATH}"),
                    ));
                }
                let mut path = MerklePath::default();
                for _ in 0..n {
                    path.push(Digest(r.array()?));
                }
                Attestation::Batch(BatchProof {
                    index,
                    count,
                    path,
                    signature: r.array()?,
                })
            }
            other => return Err(DecodeError::invalid("attestation", format!("kind {other}"))),
        })
    }
}

/// A vote with what proves its voter signed it; verifiable on its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttestedVote {
    /// The vote.
    pub vote: Vote,
    /// Its proof.
    pub attestation: Attestation,
}

impl From<SignedVote> for AttestedVote {
    fn from(sv: SignedVote) -> Self {
        AttestedVote {
            vote: sv.vote,
            attestation: Attestation::Single(sv.signature),
        }
    }
}

impl AttestedVote {
    /// The single signed vote, if this is one.
    pub fn as_single(&self) -> Option<SignedVote> {
        match &self.attestation {
            Attestation::Single(signature) => Some(SignedVote {
                vote: self.vote,
                signature: *signature,
            }),
            Attestation::Batch(_) => None,
        }
    }

    /// The bytes the voter's signature covers and the signature.
    fn signed(&self) -> Result<(Vec<u8>, &[u8; 64]), VoteError> {
        match &self.attestation {
            Attestation::Single(sig) => Ok((self.vote.sign_bytes(), sig)),
            Attestation::Batch(p) => {
                if p.path.len() > MAX_PATH || p.count as usize > MAX_BATCH {
                    return Err(VoteError::BadSignature(self.vote.voter));
                }
                let l = leaf(&self.vote.round.subject, &self.vote.value);
                let root = root_from_path(l, p.index as usize, p.count as usize, p.path.as_slice())
                    .ok_or(VoteError::BadSignature(self.vote.voter))?;
                let r = &self.vote.round;
                Ok((
                    header_bytes(
                        r.network_id,
                        r.epoch,
                        r.kind,
                        self.vote.voter,
                        p.count,
                        &root,
                    ),
                    &p.signature,
                ))
            }
        }
    }

    /// Verifies network, epoch, membership and the signature (`verify_strict`;
    /// skipped on a `cache` hit, successes cached).
    pub fn verify(&self, roster: &Roster, cache: Option<&SigCache>) -> Result<(), VoteError> {
        let probe = SignedVote {
            vote: self.vote,
            signature: [0; 64],
        };
        check_vote_context(roster, &probe)?;
        let key = roster
            .key(&self.vote.voter)
            .ok_or(VoteError::NotAMember(self.vote.voter))?;
        let (bytes, sig) = self.signed()?;
        check_signature(key, &bytes, sig, self.vote.voter, cache)
    }

    /// Appends the canonical encoding: the vote's fields (as in
    /// `SignedVote::encode` without the signature), then `0 | signature:64`
    /// or `1 | index:u32 | count:u32 | path_len:u8 | path* | signature:64`.
    pub fn write(&self, w: &mut Writer) {
        let v = &self.vote;
        w.raw(&v.round.network_id.0)
            .u64(v.round.epoch)
            .u8(v.round.kind as u8)
            .raw(&v.round.subject.0)
            .raw(&v.value.0)
            .raw(&v.voter.0);
        self.attestation.write(w);
    }

    /// Reads one canonical encoding.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let vote = Vote {
            round: Round {
                network_id: NetworkId(r.array()?),
                epoch: r.u64()?,
                kind: VoteKind::from_u8(r.u8()?)?,
                subject: Digest(r.array()?),
            },
            value: Digest(r.array()?),
            voter: ClusterId(r.array()?),
        };
        let attestation = Attestation::read(r)?;
        Ok(AttestedVote { vote, attestation })
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(300);
        self.write(&mut w);
        w.finish()
    }

    /// Decodes exactly one encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::read(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{TestNet, value};

    fn entries(n: u64) -> Vec<(Digest, Digest)> {
        (0..n)
            .map(|i| (Digest::of(&i.to_be_bytes()), value(i)))
            .collect()
    }

    fn batch(net: &TestNet, i: usize, n: u64) -> VoteBatch {
        let r = net.round(VoteKind::ByzantineQuorum, 0);
        VoteBatch::sign(
            &net.identities[i],
            r.network_id,
            r.epoch,
            r.kind,
            entries(n),
        )
        .unwrap()
    }

    #[test]
    fn every_entry_verifies_alone_for_every_batch_size() {
        let net = TestNet::new(3, &[1, 1, 1]);
        for n in [1, 2, 3, 5, 7, 8, 13, 64] {
            let b = batch(&net, 1, n);
            b.verify(&net.roster, None).unwrap();
            assert_eq!(VoteBatch::decode(&b.encode()).unwrap(), b);
            for v in b.votes() {
                v.verify(&net.roster, None).unwrap();
                assert_eq!(AttestedVote::decode(&v.encode()).unwrap(), v);
            }
        }
    }

    #[test]
    fn verified_batches_give_the_same_proofs_as_attested_votes() {
        let net = TestNet::new(3, &[1, 1, 1]);
        for n in [1, 2, 3, 6, 255, 256, 257, MAX_BATCH as u64] {
            let b = batch(&net, 2, n);
            let verified = b.verified(&net.roster, None).unwrap();
            assert_eq!(verified.len(), n as usize);
            assert_eq!(verified.voter(), net.identities[2].id());
            let votes = b.votes();
            for i in [0, n / 2, n - 1] {
                let v = &votes[i as usize];
                let proof = verified.proof(i as u32);
                assert!(proof.path.len() <= MAX_PATH);
                assert_eq!(v.attestation, Attestation::Batch(proof), "n {n} i {i}");
                v.verify(&net.roster, None).unwrap();
            }
            // An index past the end proves nothing.
            let outside = AttestedVote {
                vote: votes[0].vote,
                attestation: Attestation::Batch(verified.proof(n as u32)),
            };
            assert!(outside.verify(&net.roster, None).is_err());
        }
        let mut forged = batch(&net, 2, 7);
        forged.entries[3].1 = value(99);
        assert_eq!(
            forged.verified(&net.roster, None).err(),
            Some(VoteError::BadSignature(net.identities[2].id()))
        );
    }

    #[test]
    fn tampered_entries_and_proofs_are_refused() {
        let net = TestNet::new(3, &[1, 1, 1]);
        let b = batch(&net, 1, 5);
        let votes = b.votes();
        let key = net.identities[1].id();
        for v in &votes {
            let mut other = v.clone();
            other.vote.value.0[0] ^= 1;
            assert_eq!(
                other.verify(&net.roster, None),
                Err(VoteError::BadSignature(key))
            );
            let mut moved = v.clone();
            if let Attestation::Batch(p) = &mut moved.attestation {
                p.index = (p.index + 1) % p.count;
            }
            assert!(moved.verify(&net.roster, None).is_err());
            let mut shorter = v.clone();
            if let Attestation::Batch(p) = &mut shorter.attestation {
                p.count -= 1;
            }
            assert!(shorter.verify(&net.roster, None).is_err());
            let mut wrong_epoch = v.clone();
            wrong_epoch.vote.round.epoch += 1;
            assert!(matches!(
                wrong_epoch.verify(&net.roster, None),
                Err(VoteError::WrongEpoch { .. })
            ));
        }
        // Another member cannot claim the batch.
        let mut stolen = votes[0].clone();
        stolen.vote.voter = net.identities[2].id();
        assert!(stolen.verify(&net.roster, None).is_err());
        // A batch vote never verifies as a single vote and vice versa.
        let single = AttestedVote {
            vote: votes[0].vote,
            attestation: match &votes[0].attestation {
                Attestation::Batch(p) => Attestation::Single(p.signature),
                a => a.clone(),
            },
        };
        assert!(single.verify(&net.roster, None).is_err());
        let mut bad = b.encode();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(
            VoteBatch::decode(&bad)
                .unwrap()
                .verify(&net.roster, None)
                .is_err()
        );
    }

    #[test]
    fn signing_refuses_bad_shapes_and_the_cache_skips_reverification() {
        let net = TestNet::new(3, &[1, 1, 1]);
        let r = net.round(VoteKind::GlobalQuorum, 0);
        let id = &net.identities[0];
        assert_eq!(
            VoteBatch::sign(id, r.network_id, r.epoch, r.kind, vec![]),
            Err(BatchError::Size(0))
        );
        let dup = vec![(value(1), value(2)), (value(1), value(3))];
        assert_eq!(
            VoteBatch::sign(id, r.network_id, r.epoch, r.kind, dup),
            Err(BatchError::DuplicateSubject(value(1)))
        );
        let cache = SigCache::new(16);
        let b = batch(&net, 0, 9);
        for v in b.votes() {
            v.verify(&net.roster, Some(&cache)).unwrap();
        }
        assert_eq!(cache.len(), 1, "one batch, one cached signature");
    }
}
