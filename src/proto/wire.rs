//! Frames exchanged between two connected clusters. The net layer encodes a
//! [`Frame`] with postcard behind a `u32` big-endian length, and refuses any
//! length above [`MAX_FRAME_LEN`] before allocating. A decoded frame is still
//! untrusted: the core checks every vector against the bounds below
//! ([`Frame::check_bounds`]) and every record against its own bounds and
//! signature before anything is stored.
//!
//! Compatibility rule: `Hello` is variant 0 and its first field is the
//! protocol version, so a node of any version can read at least that much
//! and refuse a peer with a clear reason.
//!
//! Signed content is never postcard bytes: records carry their fields and
//! the verifier rebuilds the canonical sign bytes (see
//! [`crate::proto::membership::record`]).

use crate::proto::bytes32::{Digest, NetworkId};
use crate::proto::identity::ClusterId;
use crate::proto::membership::heartbeat::SignedHeartbeat;
use crate::proto::membership::record::{SignedRecord, Version};
use crate::proto::topology::routed::{Routed, RoutedError};

/// The protocol version spoken by this build (2: heartbeats travel apart
/// from records; 3: acks of a batch travel together,
/// `RoutedPayload::DataAcks`; 4: so do the messages of a batch,
/// `RoutedPayload::DataBatch`). Peers must speak the same version.
pub const PROTOCOL_VERSION: u16 = 4;
/// The largest encoded frame a node sends or accepts (1 MiB).
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Most entries in one digest.
pub const MAX_DIGEST_ENTRIES: usize = 8192;
/// Most records in one frame (frames are also kept under a byte budget).
pub const MAX_RECORDS_PER_FRAME: usize = 8192;
/// Most heartbeats in one frame.
pub const MAX_HEARTBEATS_PER_FRAME: usize = MAX_DIGEST_ENTRIES;
/// Most ids one `SynAck` may request.
pub const MAX_WANT: usize = MAX_DIGEST_ENTRIES;
/// Longest `Goodbye` reason, in bytes; longer reasons are cut when sent.
pub const MAX_REASON_LEN: usize = 512;
/// Most roster epochs in one `RosterEpochs` frame.
pub const MAX_ROSTER_EPOCHS_PER_FRAME: usize = 64;
/// Most proposals in one `RosterPending` frame.
pub const MAX_ROSTER_PROPOSALS_PER_FRAME: usize = 4096;
/// Most votes in one `RosterPending` frame.
pub const MAX_ROSTER_VOTES_PER_FRAME: usize = 8192;

/// Canonical bytes of a signed object (roster epoch, proposal, vote),
/// carried as a postcard byte string and decoded by the core.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl serde::Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A 64-byte ed25519 signature, serialised as a byte string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sig64(pub [u8; 64]);

impl std::fmt::Debug for Sig64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sig64({}…)", hex::encode(&self.0[..4]))
    }
}

impl serde::Serialize for Sig64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Sig64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Sig64;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Sig64, E> {
                <[u8; 64]>::try_from(v)
                    .map(Sig64)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Sig64, A::Error> {
                let mut out = [0u8; 64];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(65, &self));
                }
                Ok(Sig64(out))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// One line of a gossip digest: "I hold this version of this cluster's
/// record, and this heartbeat of its incarnation".
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DigestEntry {
    /// The record's owner.
    pub id: ClusterId,
    /// The record version held.
    pub version: Version,
    /// The heartbeat counter held for `version.incarnation` (0: none).
    pub heartbeat: u64,
}

/// Everything two clusters say to each other about membership.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Frame {
    /// The first frame of the dialing side.
    Hello {
        /// Must equal [`PROTOCOL_VERSION`].
        protocol_version: u16,
        /// The federation the sender belongs to.
        network_id: NetworkId,
        /// The sender (must match the id the transport authenticated).
        sender: ClusterId,
        /// The sender's current incarnation.
        incarnation: u64,
        /// The roster epoch the sender holds.
        roster_epoch: u64,
    },
    /// The accepting side's answer to a valid `Hello`.
    HelloAck {
        /// Must equal [`PROTOCOL_VERSION`].
        protocol_version: u16,
        /// The federation the sender belongs to.
        network_id: NetworkId,
        /// The sender (must match the id the transport authenticated).
        sender: ClusterId,
        /// The sender's current incarnation.
        incarnation: u64,
        /// The roster epoch the sender holds.
        roster_epoch: u64,
    },
    /// The sender is closing the connection (refusal, pruning, departure).
    Goodbye {
        /// Why, for the operator (at most [`MAX_REASON_LEN`] bytes).
        reason: String,
    },
    /// Anti-entropy opening: the sender's digest.
    Syn {
        /// Every record the sender holds, by version.
        digest: Vec<DigestEntry>,
    },
    /// Answer to `Syn`: what the digest's sender lacks, and what we want.
    SynAck {
        /// Records newer than (or absent from) the digest.
        records: Vec<SignedRecord>,
        /// Heartbeats newer than the digest's.
        heartbeats: Vec<SignedHeartbeat>,
        /// What we hold of the clusters whose record or heartbeat in the
        /// digest is newer than ours: send anything newer than that.
        want: Vec<DigestEntry>,
    },
    /// Answer to `SynAck`: what it asked for.
    Ack {
        /// The wanted records.
        records: Vec<SignedRecord>,
        /// The wanted heartbeats.
        heartbeats: Vec<SignedHeartbeat>,
    },
    /// Eager push of fresh records (our own new record, a new member, a
    /// new incarnation, a departure).
    Records {
        /// The records.
        records: Vec<SignedRecord>,
    },
    /// Graceful departure: the sender's final record, with `left` set.
    Leave {
        /// The leaving cluster's signed final record.
        record: SignedRecord,
    },
    /// The sender's own new heartbeat, pushed to each of its live links
    /// every heartbeat interval (never relayed: anti-entropy carries it on).
    Beat {
        /// The sender's signed heartbeat.
        heartbeat: SignedHeartbeat,
    },
    /// A message travelling hop by hop to a cluster that may not be a
    /// direct neighbour (see [`crate::proto::topology`]).
    Routed(Routed),
    /// Roster anti-entropy: the sender's epoch and a digest of the proposals
    /// and votes it holds for the next one (`None`: nothing pending).
    RosterSummary {
        /// The roster epoch the sender holds.
        epoch: u64,
        /// Digest of its pending proposals and votes.
        pending: Option<Digest>,
        /// True when answering a summary (never answered again).
        reply: bool,
    },
    /// Asks for every roster epoch after `after`.
    RosterFetch {
        /// The highest epoch the sender holds.
        after: u64,
    },
    /// Roster epochs (canonical encodings), oldest first.
    RosterEpochs {
        /// The epochs.
        epochs: Vec<Blob>,
    },
    /// Proposals and votes for the next roster epoch (canonical encodings).
    RosterPending {
        /// Signed proposals.
        proposals: Vec<Blob>,
        /// Signed roster-change votes.
        votes: Vec<Blob>,
    },
}

/// The kinds of [`Frame`], for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FrameKind {
    /// [`Frame::Hello`].
    Hello,
    /// [`Frame::HelloAck`].
    HelloAck,
    /// [`Frame::Goodbye`].
    Goodbye,
    /// [`Frame::Syn`].
    Syn,
    /// [`Frame::SynAck`].
    SynAck,
    /// [`Frame::Ack`].
    Ack,
    /// [`Frame::Records`].
    Records,
    /// [`Frame::Leave`].
    Leave,
    /// [`Frame::Beat`].
    Beat,
    /// [`Frame::Routed`].
    Routed,
    /// [`Frame::RosterSummary`].
    RosterSummary,
    /// [`Frame::RosterFetch`].
    RosterFetch,
    /// [`Frame::RosterEpochs`].
    RosterEpochs,
    /// [`Frame::RosterPending`].
    RosterPending,
}

impl FrameKind {
    /// Number of kinds.
    pub const COUNT: usize = 14;
    /// Every kind, in declaration order.
    pub const ALL: [FrameKind; FrameKind::COUNT] = [
        FrameKind::Hello,
        FrameKind::HelloAck,
        FrameKind::Goodbye,
        FrameKind::Syn,
        FrameKind::SynAck,
        FrameKind::Ack,
        FrameKind::Records,
        FrameKind::Leave,
        FrameKind::Beat,
        FrameKind::Routed,
        FrameKind::RosterSummary,
        FrameKind::RosterFetch,
        FrameKind::RosterEpochs,
        FrameKind::RosterPending,
    ];

    /// A stable lowercase name (metrics labels).
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Hello => "hello",
            FrameKind::HelloAck => "hello_ack",
            FrameKind::Goodbye => "goodbye",
            FrameKind::Syn => "syn",
            FrameKind::SynAck => "syn_ack",
            FrameKind::Ack => "ack",
            FrameKind::Records => "records",
            FrameKind::Leave => "leave",
            FrameKind::Beat => "beat",
            FrameKind::Routed => "routed",
            FrameKind::RosterSummary => "roster_summary",
            FrameKind::RosterFetch => "roster_fetch",
            FrameKind::RosterEpochs => "roster_epochs",
            FrameKind::RosterPending => "roster_pending",
        }
    }

    /// Position in [`FrameKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a frame is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The encoded frame is longer than [`MAX_FRAME_LEN`].
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A vector holds more elements than its bound.
    #[error("{field} holds {len} entries, at most {max} are allowed")]
    TooMany {
        /// Which vector.
        field: &'static str,
        /// How many it holds.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The bytes are not a postcard-encoded frame.
    #[error("undecodable frame: {0}")]
    Decode(String),
    /// The frame could not be encoded (a bug: frames are plain data).
    #[error("unencodable frame: {0}")]
    Encode(String),
    /// A routed message breaks a bound (hop budget, path, payload).
    #[error("routed frame: {0}")]
    Routed(RoutedError),
}

fn bound(field: &'static str, len: usize, max: usize) -> Result<(), FrameError> {
    if len > max {
        Err(FrameError::TooMany { field, len, max })
    } else {
        Ok(())
    }
}

impl Frame {
    /// This frame's kind.
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::Hello { .. } => FrameKind::Hello,
            Frame::HelloAck { .. } => FrameKind::HelloAck,
            Frame::Goodbye { .. } => FrameKind::Goodbye,
            Frame::Syn { .. } => FrameKind::Syn,
            Frame::SynAck { .. } => FrameKind::SynAck,
            Frame::Ack { .. } => FrameKind::Ack,
            Frame::Records { .. } => FrameKind::Records,
            Frame::Leave { .. } => FrameKind::Leave,
            Frame::Beat { .. } => FrameKind::Beat,
            Frame::Routed(_) => FrameKind::Routed,
            Frame::RosterSummary { .. } => FrameKind::RosterSummary,
            Frame::RosterFetch { .. } => FrameKind::RosterFetch,
            Frame::RosterEpochs { .. } => FrameKind::RosterEpochs,
            Frame::RosterPending { .. } => FrameKind::RosterPending,
        }
    }

    /// Checks every vector of the frame against its bound. Records are
    /// checked one by one later ([`crate::proto::membership::record::NodeRecord::validate`]).
    pub fn check_bounds(&self) -> Result<(), FrameError> {
        match self {
            Frame::Hello { .. }
            | Frame::HelloAck { .. }
            | Frame::Leave { .. }
            | Frame::Beat { .. } => Ok(()),
            Frame::Goodbye { reason } => bound("goodbye reason", reason.len(), MAX_REASON_LEN),
            Frame::Syn { digest } => bound("digest", digest.len(), MAX_DIGEST_ENTRIES),
            Frame::SynAck {
                records,
                heartbeats,
                want,
            } => {
                bound("records", records.len(), MAX_RECORDS_PER_FRAME)?;
                bound("heartbeats", heartbeats.len(), MAX_HEARTBEATS_PER_FRAME)?;
                bound("want", want.len(), MAX_WANT)
            }
            Frame::Ack {
                records,
                heartbeats,
            } => {
                bound("records", records.len(), MAX_RECORDS_PER_FRAME)?;
                bound("heartbeats", heartbeats.len(), MAX_HEARTBEATS_PER_FRAME)
            }
            Frame::Records { records } => bound("records", records.len(), MAX_RECORDS_PER_FRAME),
            Frame::Routed(r) => r.check_bounds().map_err(FrameError::Routed),
            Frame::RosterSummary { .. } | Frame::RosterFetch { .. } => Ok(()),
            Frame::RosterEpochs { epochs } => {
                bound("roster epochs", epochs.len(), MAX_ROSTER_EPOCHS_PER_FRAME)
            }
            Frame::RosterPending { proposals, votes } => {
                bound(
                    "roster proposals",
                    proposals.len(),
                    MAX_ROSTER_PROPOSALS_PER_FRAME,
                )?;
                bound("roster votes", votes.len(), MAX_ROSTER_VOTES_PER_FRAME)
            }
        }
    }

    /// A `Goodbye` whose reason is cut to [`MAX_REASON_LEN`] bytes on a
    /// character boundary.
    pub fn goodbye(reason: &str) -> Frame {
        let mut end = reason.len().min(MAX_REASON_LEN);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Frame::Goodbye {
            reason: reason[..end].to_owned(),
        }
    }
}

/// The postcard encoding of `frame` (without the length prefix), refused if
/// longer than [`MAX_FRAME_LEN`].
pub fn encode(frame: &Frame) -> Result<Vec<u8>, FrameError> {
    let bytes = postcard::to_stdvec(frame).map_err(|e| FrameError::Encode(e.to_string()))?;
    if bytes.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLong {
            len: bytes.len(),
            max: MAX_FRAME_LEN,
        });
    }
    Ok(bytes)
}

/// The encoded size of `frame` without building it (length prefix excluded).
pub fn encoded_len(frame: &Frame) -> Result<usize, FrameError> {
    postcard::experimental::serialized_size(frame).map_err(|e| FrameError::Encode(e.to_string()))
}

/// Decodes one frame from exactly `bytes` (without the length prefix),
/// refusing oversized input, trailing bytes and out-of-bounds vectors.
pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
    if bytes.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLong {
            len: bytes.len(),
            max: MAX_FRAME_LEN,
        });
    }
    let (frame, rest): (Frame, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| FrameError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Decode(format!(
            "{} trailing bytes after the frame",
            rest.len()
        )));
    }
    frame.check_bounds()?;
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::identity::Identity;
    use crate::proto::membership::record::NodeRecord;

    fn signed() -> SignedRecord {
        let me = Identity::from_seed([1; 32]);
        let record = NodeRecord {
            id: me.id(),
            incarnation: 1,
            revision: 2,
            roster_epoch: 0,
            left: false,
            addrs: vec!["10.0.0.1:7000".parse().unwrap()],
            links: vec![],
            queues: vec![],
            subscriptions: Vec::new(),
        };
        SignedRecord::sign(record, &me, &NetworkId([1; 32])).unwrap()
    }

    fn beat() -> SignedHeartbeat {
        SignedHeartbeat::sign(&Identity::from_seed([1; 32]), &NetworkId([1; 32]), 1, 7)
    }

    #[test]
    fn frames_round_trip_and_hello_is_variant_zero() {
        let hello = Frame::Hello {
            protocol_version: PROTOCOL_VERSION,
            network_id: NetworkId([3; 32]),
            sender: ClusterId([4; 32]),
            incarnation: 9,
            roster_epoch: 0,
        };
        let bytes = encode(&hello).unwrap();
        assert_eq!(bytes[0], 0, "Hello must stay variant 0");
        assert_eq!(bytes[1], PROTOCOL_VERSION as u8, "then the version");
        assert_eq!(decode(&bytes).unwrap(), hello);
        assert_eq!(encoded_len(&hello).unwrap(), bytes.len());
        let frames = [
            Frame::goodbye("bye"),
            Frame::Syn {
                digest: vec![DigestEntry {
                    id: ClusterId([5; 32]),
                    version: Version {
                        incarnation: 1,
                        revision: 300,
                    },
                    heartbeat: 70_000,
                }],
            },
            Frame::SynAck {
                records: vec![signed()],
                heartbeats: vec![beat()],
                want: vec![DigestEntry {
                    id: ClusterId([6; 32]),
                    version: Version::default(),
                    heartbeat: 0,
                }],
            },
            Frame::Ack {
                records: vec![signed()],
                heartbeats: vec![beat(), beat()],
            },
            Frame::Records { records: vec![] },
            Frame::Leave { record: signed() },
            Frame::Beat { heartbeat: beat() },
            Frame::Routed(Routed::new(
                ClusterId([1; 32]),
                ClusterId([2; 32]),
                crate::proto::topology::RoutedPayload::Probe {
                    id: 7,
                    body: vec![1, 2, 3],
                },
            )),
            Frame::RosterSummary {
                epoch: 3,
                pending: Some(Digest([7; 32])),
                reply: true,
            },
            Frame::RosterFetch { after: 2 },
            Frame::RosterEpochs {
                epochs: vec![Blob(vec![0xff, 1, 2])],
            },
            Frame::RosterPending {
                proposals: vec![Blob(vec![])],
                votes: vec![Blob(vec![200; 201])],
            },
        ];
        for f in frames {
            assert_eq!(decode(&encode(&f).unwrap()).unwrap(), f);
        }
    }

    #[test]
    fn garbage_and_oversized_input_is_an_error_not_a_panic() {
        assert!(matches!(decode(&[0xff; 40]), Err(FrameError::Decode(_))));
        assert!(matches!(decode(&[]), Err(FrameError::Decode(_))));
        let mut bytes = encode(&Frame::goodbye("x")).unwrap();
        bytes.push(0);
        assert!(matches!(decode(&bytes), Err(FrameError::Decode(_))));
        assert!(matches!(
            decode(&vec![0u8; MAX_FRAME_LEN + 1]),
            Err(FrameError::TooLong { .. })
        ));
        // A Syn claiming a huge digest length but carrying no entries.
        let forged = [3u8, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode(&forged).is_err());
        let big = Frame::Syn {
            digest: vec![
                DigestEntry {
                    id: ClusterId([0; 32]),
                    version: Version::default(),
                    heartbeat: 0,
                };
                MAX_DIGEST_ENTRIES + 1
            ],
        };
        assert!(matches!(
            big.check_bounds(),
            Err(FrameError::TooMany {
                field: "digest",
                ..
            })
        ));
        assert!(decode(&encode(&big).unwrap()).is_err());
        let votes = Frame::RosterPending {
            proposals: vec![],
            votes: vec![Blob(vec![]); MAX_ROSTER_VOTES_PER_FRAME + 1],
        };
        assert!(decode(&encode(&votes).unwrap()).is_err());
        let epochs = Frame::RosterEpochs {
            epochs: vec![Blob(vec![]); MAX_ROSTER_EPOCHS_PER_FRAME + 1],
        };
        assert!(epochs.check_bounds().is_err());
        // Truncated record signature.
        let mut leave = encode(&Frame::Leave { record: signed() }).unwrap();
        leave.truncate(leave.len() - 1);
        assert!(decode(&leave).is_err());
    }

    #[test]
    fn goodbye_reasons_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_REASON_LEN);
        let Frame::Goodbye { reason } = Frame::goodbye(&long) else {
            unreachable!()
        };
        assert!(reason.len() <= MAX_REASON_LEN);
        assert!(Frame::goodbye(&long).check_bounds().is_ok());
    }
}
