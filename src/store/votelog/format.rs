//! The vote log's byte layout: header, record framing and the hash chain.
//! `docs/vote-log.md` is the normative description; this file is the one
//! place the numbers live, so the reader and the writer cannot drift apart.

use crate::proto::codec::{DecodeError, Reader, Writer};
use crate::proto::{ClusterId, Digest, NetworkId};

/// The first 16 bytes of every vote log.
pub const MAGIC: [u8; 16] = *b"fedmesh-votelog\n";
/// The only format version this code reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Header size: magic, version, network id, node id.
pub const HEADER_LEN: usize = 16 + 2 + 32 + 32;
/// Bytes of a record after its length prefix and before its body:
/// `seq:u64 | kind:u8 | prev:32`.
pub const RECORD_FIXED_LEN: usize = 8 + 1 + 32;
/// Smallest valid value of a record's length prefix (an empty body).
pub const MIN_RECORD_LEN: u32 = RECORD_FIXED_LEN as u32;
/// Largest valid value of a record's length prefix. A parser allocates at
/// most this much for one record, whatever the file claims.
pub const MAX_RECORD_LEN: u32 = 4 * 1024 * 1024;
/// Largest body a record can carry.
pub const MAX_BODY_LEN: usize = MAX_RECORD_LEN as usize - RECORD_FIXED_LEN;

/// Domain tags of the two chain hashes. They live here rather than in
/// `proto::codec::tags` because nothing is signed with them: they only keep
/// a chain hash from ever colliding with another BLAKE3 use in fedmesh.
pub mod chain_tags {
    /// The chain seed `h_0`, computed over the header.
    pub const GENESIS: &[u8] = b"fedmesh/log-genesis/v1";
    /// A record hash `h_{i+1}`.
    pub const RECORD: &[u8] = b"fedmesh/log-record/v1";
}

/// What a record's body holds. The log treats bodies as opaque bytes except
/// for checkpoints, which it writes and verifies itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum RecordKind {
    /// A signed vote.
    Vote = 1,
    /// A quorum certificate.
    Certificate = 2,
    /// Equivocation evidence.
    Evidence = 3,
    /// A roster epoch.
    Roster = 4,
    /// A checkpoint signed by the log's node (see `checkpoint.rs`).
    Checkpoint = 5,
}

impl RecordKind {
    /// The kind encoded as `b`, or `None` for a byte no version-1 log uses.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordKind::Vote),
            2 => Some(RecordKind::Certificate),
            3 => Some(RecordKind::Evidence),
            4 => Some(RecordKind::Roster),
            5 => Some(RecordKind::Checkpoint),
            _ => None,
        }
    }

    /// The byte this kind is encoded as.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// The fixed header every vote log starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogHeader {
    /// The federation the log belongs to.
    pub network_id: NetworkId,
    /// The node that writes (and signs the checkpoints of) the log.
    pub node_id: ClusterId,
}

/// Why bytes are not a version-1 vote log header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderFault {
    /// No bytes at all.
    Empty,
    /// The bytes present (at most 16) are not the magic.
    BadMagic(Vec<u8>),
    /// The magic matches as far as it goes but the header is incomplete.
    Truncated(usize),
    /// A version other than [`FORMAT_VERSION`].
    UnsupportedVersion(u16),
}

impl LogHeader {
    /// The header's exact bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut w = Writer::with_capacity(HEADER_LEN);
        w.raw(&MAGIC)
            .u16(FORMAT_VERSION)
            .raw(self.network_id.as_bytes())
            .raw(self.node_id.as_bytes());
        let mut out = [0u8; HEADER_LEN];
        out.copy_from_slice(&w.finish());
        out
    }

    /// Parses the first [`HEADER_LEN`] bytes of `bytes`. The magic is checked
    /// before the length so that a short file that is not a vote log at all
    /// says so, rather than claiming to be a truncated one.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, HeaderFault> {
        if bytes.is_empty() {
            return Err(HeaderFault::Empty);
        }
        if bytes.iter().zip(MAGIC.iter()).any(|(a, b)| a != b) {
            return Err(HeaderFault::BadMagic(
                bytes.iter().take(MAGIC.len()).copied().collect(),
            ));
        }
        if bytes.len() < HEADER_LEN {
            return Err(HeaderFault::Truncated(bytes.len()));
        }
        let mut r = Reader::new(bytes);
        let fields = (|| -> Result<_, DecodeError> {
            r.take(MAGIC.len())?;
            Ok((r.u16()?, r.array::<32>()?, r.array::<32>()?))
        })();
        // Unreachable after the length check; mapped rather than unwrapped
        // so that this path stays panic-free by construction.
        let (version, network, node) = fields.map_err(|_| HeaderFault::Truncated(bytes.len()))?;
        if version != FORMAT_VERSION {
            return Err(HeaderFault::UnsupportedVersion(version));
        }
        Ok(LogHeader {
            network_id: NetworkId(network),
            node_id: ClusterId(node),
        })
    }

    /// The chain seed `h_0`: binds the whole chain to this network and node,
    /// so records cannot be spliced between logs.
    pub fn chain_seed(&self) -> Digest {
        let mut w = Writer::with_capacity(1 + chain_tags::GENESIS.len() + HEADER_LEN);
        w.tag(chain_tags::GENESIS).raw(&self.encode());
        Digest::of(&w.finish())
    }
}

/// The chain hash of a record, `h_{i+1}`. The body is hashed last and
/// unprefixed: every other field has a fixed width, so the input still
/// parses one way only.
pub fn record_hash(seq: u64, kind: RecordKind, prev: &Digest, body: &[u8]) -> Digest {
    let mut w = Writer::with_capacity(1 + chain_tags::RECORD.len() + RECORD_FIXED_LEN);
    w.tag(chain_tags::RECORD)
        .u64(seq)
        .u8(kind.as_u8())
        .raw(prev.as_bytes());
    let mut hasher = blake3::Hasher::new();
    hasher.update(&w.finish());
    hasher.update(body);
    Digest(*hasher.finalize().as_bytes())
}

/// The bytes of a record up to its body: `len:u32 | seq:u64 | kind:u8 | prev:32`.
/// Callers check `body_len <= MAX_BODY_LEN` first.
pub fn encode_record_head(seq: u64, kind: RecordKind, prev: &Digest, body_len: usize) -> Vec<u8> {
    debug_assert!(body_len <= MAX_BODY_LEN);
    let len = (RECORD_FIXED_LEN + body_len) as u32;
    let mut w = Writer::with_capacity(4 + RECORD_FIXED_LEN);
    w.u32(len).u64(seq).u8(kind.as_u8()).raw(prev.as_bytes());
    w.finish()
}

/// The fields of a record between its length prefix and its body, kind not
/// yet validated (the reader reports unknown kinds with their position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordFixed {
    pub seq: u64,
    pub kind: u8,
    pub prev: Digest,
}

impl RecordFixed {
    /// Splits the [`RECORD_FIXED_LEN`] bytes after a length prefix. A
    /// fixed-size array pattern rather than a fallible reader: with the
    /// size in the type there is no short-input case to handle.
    pub(crate) fn decode(bytes: &[u8; RECORD_FIXED_LEN]) -> Self {
        let [s0, s1, s2, s3, s4, s5, s6, s7, kind, prev @ ..] = *bytes;
        RecordFixed {
            seq: u64::from_be_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
            kind,
            prev: Digest(prev),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> LogHeader {
        LogHeader {
            network_id: NetworkId([7; 32]),
            node_id: ClusterId([9; 32]),
        }
    }

    #[test]
    fn header_round_trips_and_is_82_bytes() {
        let bytes = header().encode();
        assert_eq!(bytes.len(), 82);
        assert_eq!(&bytes[..16], b"fedmesh-votelog\n");
        assert_eq!(&bytes[16..18], &[0, 1]);
        assert_eq!(LogHeader::decode(&bytes), Ok(header()));
    }

    #[test]
    fn header_refuses_wrong_magic_and_version() {
        let mut bytes = header().encode();
        bytes[17] = 2;
        assert_eq!(
            LogHeader::decode(&bytes),
            Err(HeaderFault::UnsupportedVersion(2))
        );
        bytes[0] ^= 1;
        assert!(matches!(
            LogHeader::decode(&bytes),
            Err(HeaderFault::BadMagic(_))
        ));
        assert_eq!(LogHeader::decode(&[]), Err(HeaderFault::Empty));
        assert_eq!(
            LogHeader::decode(&MAGIC[..5]),
            Err(HeaderFault::Truncated(5))
        );
        assert!(matches!(
            LogHeader::decode(b"{\"json\": 1}"),
            Err(HeaderFault::BadMagic(_))
        ));
    }

    #[test]
    fn chain_hashes_depend_on_every_field() {
        let seed = header().chain_seed();
        let other = LogHeader {
            node_id: ClusterId([8; 32]),
            ..header()
        };
        assert_ne!(seed, other.chain_seed());
        let h = record_hash(0, RecordKind::Vote, &seed, b"x");
        assert_ne!(h, record_hash(1, RecordKind::Vote, &seed, b"x"));
        assert_ne!(h, record_hash(0, RecordKind::Roster, &seed, b"x"));
        assert_ne!(
            h,
            record_hash(0, RecordKind::Vote, &other.chain_seed(), b"x")
        );
        assert_ne!(h, record_hash(0, RecordKind::Vote, &seed, b"y"));
    }

    #[test]
    fn kinds_round_trip_and_unknown_bytes_are_refused() {
        for b in 1..=5u8 {
            assert_eq!(RecordKind::from_u8(b).map(RecordKind::as_u8), Some(b));
        }
        assert_eq!(RecordKind::from_u8(0), None);
        assert_eq!(RecordKind::from_u8(6), None);
    }

    #[test]
    fn record_head_layout() {
        let head = encode_record_head(3, RecordKind::Evidence, &Digest([5; 32]), 10);
        assert_eq!(head.len(), 45);
        assert_eq!(&head[..4], &51u32.to_be_bytes());
        let fixed = RecordFixed::decode(head[4..].try_into().unwrap());
        assert_eq!(fixed.seq, 3);
        assert_eq!(fixed.kind, 3);
        assert_eq!(fixed.prev, Digest([5; 32]));
    }
}
