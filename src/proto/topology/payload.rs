//! What a [`super::Routed`] message carries. The delivery layer adds its
//! own variants later; new variants go at the end (postcard encodes the
//! variant index). Byte fields are serialised as byte strings
//! (`serde_bytes`): the same bytes on the wire as a sequence of `u8` in
//! postcard, copied in one go instead of one element at a time.

/// Largest probe body, in bytes.
pub const MAX_PROBE_BODY: usize = 64 * 1024;

/// The body of a routed message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RoutedPayload {
    /// A test message: delivered to the destination, which answers with
    /// [`RoutedPayload::ProbeAck`]. Retried by the origin until acked.
    Probe {
        /// Chosen by the origin; names the probe in its ack.
        id: u64,
        /// Opaque bytes (at most [`MAX_PROBE_BODY`]).
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    /// The destination of a probe received it.
    ProbeAck {
        /// The probe's id.
        id: u64,
        /// The path the probe took, origin first, destination last.
        path: Vec<crate::proto::identity::ClusterId>,
    },
    /// A published message for the destination's subscribers. `seq`
    /// numbers the origin's acknowledged messages to this destination
    /// (from 1, dense; 0 for fire-and-forget, which is neither deduplicated
    /// nor acknowledged).
    Data {
        /// Per (origin, destination) sequence number, or 0.
        seq: u64,
        /// The canonical envelope (`Envelope::encode`).
        #[serde(with = "serde_bytes")]
        envelope: Vec<u8>,
    },
    /// The destination handed the message with this id to its subscribers
    /// (or had already done so).
    DataAck {
        /// The message id (its origin is the ack's destination).
        id: u64,
    },
    /// A quorum proposal: vote on this message in `epoch` (the round's kind
    /// and subject follow from the envelope).
    QuorumProposal {
        /// The roster epoch of the round.
        epoch: u64,
        /// The canonical envelope.
        #[serde(with = "serde_bytes")]
        envelope: Vec<u8>,
    },
    /// Attested quorum votes (`AttestedVote::encode` each), at most
    /// [`MAX_QUORUM_VOTES`].
    QuorumVotes {
        /// The votes.
        votes: Vec<Vec<u8>>,
    },
    /// A batch of quorum votes under one signature (`VoteBatch::encode`).
    QuorumBatch {
        /// The batch.
        #[serde(with = "serde_bytes")]
        batch: Vec<u8>,
    },
    /// A quorum certificate with the message it certifies, so a receiver
    /// that never saw (or saw another) proposal can still verify and deliver.
    QuorumCertificate {
        /// `QuorumCertificate::encode`.
        #[serde(with = "serde_bytes")]
        cert: Vec<u8>,
        /// The canonical envelope.
        #[serde(with = "serde_bytes")]
        envelope: Vec<u8>,
    },
    /// Equivocation evidence (`VoteEvidence::encode`), gossiped to every member.
    QuorumEvidence {
        /// The evidence.
        #[serde(with = "serde_bytes")]
        evidence: Vec<u8>,
    },
    /// Several [`RoutedPayload::DataAck`]s in one frame (at most
    /// [`MAX_DATA_ACKS`]): the acks of one batch of input, so a busy
    /// stream costs one ack frame per batch rather than per message.
    DataAcks {
        /// The acknowledged message ids.
        ids: Vec<u64>,
    },
    /// Several [`RoutedPayload::Data`] for one destination in one frame
    /// (at most [`MAX_DATA_BATCH`]): the acknowledged messages one input
    /// batch sends there, so a busy stream costs one routed frame (one
    /// header, one queue slot, one decode) per batch rather than per message.
    DataBatch {
        /// The messages, in the order they were sent.
        items: Vec<DataItem>,
    },
}

/// One message of a [`RoutedPayload::DataBatch`], as in [`RoutedPayload::Data`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataItem {
    /// Per (origin, destination) sequence number (never 0 here).
    pub seq: u64,
    /// The canonical envelope (`Envelope::encode`).
    #[serde(with = "serde_bytes")]
    pub envelope: Vec<u8>,
}

/// Most messages in one [`RoutedPayload::DataBatch`].
pub const MAX_DATA_BATCH: usize = 1024;

/// Envelope bytes a sender puts in one [`RoutedPayload::DataBatch`] at
/// most (a larger message travels alone, as [`RoutedPayload::Data`]): far
/// below the smallest frame cap a link accepts, and small enough that a
/// batch does not hold a link's queue for long.
pub const DATA_BATCH_BYTES: usize = 48 * 1024;

/// Most ids in one [`RoutedPayload::DataAcks`].
pub const MAX_DATA_ACKS: usize = 4096;

/// Most attested votes in one [`RoutedPayload::QuorumVotes`].
pub const MAX_QUORUM_VOTES: usize = 1024;
/// Largest encoded attested vote, certificate or evidence blob accepted
/// (a certificate of up to 1,024 batch-attested votes fits).
pub const MAX_QUORUM_BLOB: usize = 1024 * 1024;

/// Largest encoded envelope in a [`RoutedPayload::Data`]: the payload cap
/// plus room for the topic and a vector clock.
pub const MAX_DATA_ENVELOPE: usize = crate::proto::delivery::MAX_PAYLOAD + 64 * 1024;

/// Why a payload is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// A probe body is over [`MAX_PROBE_BODY`].
    #[error("probe body of {0} bytes exceeds the {MAX_PROBE_BODY}-byte limit")]
    BodyTooLong(usize),
    /// A data envelope is over [`MAX_DATA_ENVELOPE`].
    #[error("data envelope of {0} bytes exceeds the {MAX_DATA_ENVELOPE}-byte limit")]
    EnvelopeTooLong(usize),
    /// A quorum payload has too many votes or a blob over [`MAX_QUORUM_BLOB`].
    #[error("quorum payload over its bounds ({0} votes or bytes)")]
    QuorumTooLarge(usize),
    /// A [`RoutedPayload::DataAcks`] lists more than [`MAX_DATA_ACKS`] ids.
    #[error("{0} acks in one frame exceed the {MAX_DATA_ACKS} limit")]
    TooManyAcks(usize),
    /// A [`RoutedPayload::DataBatch`] holds more than [`MAX_DATA_BATCH`] messages.
    #[error("{0} messages in one frame exceed the {MAX_DATA_BATCH} limit")]
    TooManyItems(usize),
    /// An ack lists a path longer than the hop budget cap.
    #[error("ack path of {0} hops exceeds the hop budget cap")]
    PathTooLong(usize),
}

impl RoutedPayload {
    /// Checks every length against its bound.
    pub fn check_bounds(&self) -> Result<(), PayloadError> {
        match self {
            RoutedPayload::Probe { body, .. } if body.len() > MAX_PROBE_BODY => {
                Err(PayloadError::BodyTooLong(body.len()))
            }
            RoutedPayload::ProbeAck { path, .. }
                if path.len() > super::routed::MAX_HOP_BUDGET as usize + 1 =>
            {
                Err(PayloadError::PathTooLong(path.len()))
            }
            RoutedPayload::DataAcks { ids } if ids.len() > MAX_DATA_ACKS => {
                Err(PayloadError::TooManyAcks(ids.len()))
            }
            RoutedPayload::Data { envelope, .. } if envelope.len() > MAX_DATA_ENVELOPE => {
                Err(PayloadError::EnvelopeTooLong(envelope.len()))
            }
            RoutedPayload::DataBatch { items } if items.len() > MAX_DATA_BATCH => {
                Err(PayloadError::TooManyItems(items.len()))
            }
            RoutedPayload::DataBatch { items } => {
                match items.iter().find(|i| i.envelope.len() > MAX_DATA_ENVELOPE) {
                    Some(i) => Err(PayloadError::EnvelopeTooLong(i.envelope.len())),
                    None => Ok(()),
                }
            }
            RoutedPayload::QuorumProposal { envelope, .. }
                if envelope.len() > MAX_DATA_ENVELOPE =>
            {
                Err(PayloadError::EnvelopeTooLong(envelope.len()))
            }
            RoutedPayload::QuorumVotes { votes } if votes.len() > MAX_QUORUM_VOTES => {
                Err(PayloadError::QuorumTooLarge(votes.len()))
            }
            RoutedPayload::QuorumVotes { votes } => {
                match votes.iter().find(|v| v.len() > MAX_QUORUM_BLOB) {
                    Some(v) => Err(PayloadError::QuorumTooLarge(v.len())),
                    None => Ok(()),
                }
            }
            RoutedPayload::QuorumBatch { batch: b }
            | RoutedPayload::QuorumEvidence { evidence: b }
                if b.len() > MAX_QUORUM_BLOB =>
            {
                Err(PayloadError::QuorumTooLarge(b.len()))
            }
            RoutedPayload::QuorumCertificate { cert, envelope }
                if cert.len() > MAX_QUORUM_BLOB || envelope.len() > MAX_DATA_ENVELOPE =>
            {
                Err(PayloadError::QuorumTooLarge(cert.len().max(envelope.len())))
            }
            _ => Ok(()),
        }
    }

    /// Whether this is the data path's bulk traffic (messages and their
    /// acks), which queues behind membership traffic.
    pub fn is_data_path(&self) -> bool {
        matches!(
            self,
            RoutedPayload::Data { .. }
                | RoutedPayload::DataBatch { .. }
                | RoutedPayload::DataAck { .. }
                | RoutedPayload::DataAcks { .. }
        )
    }

    /// A stable lowercase name (metrics labels, logs).
    pub fn name(&self) -> &'static str {
        match self {
            RoutedPayload::Probe { .. } => "probe",
            RoutedPayload::ProbeAck { .. } => "probe_ack",
            RoutedPayload::Data { .. } => "data",
            RoutedPayload::DataAck { .. } => "data_ack",
            RoutedPayload::DataAcks { .. } => "data_acks",
            RoutedPayload::DataBatch { .. } => "data_batch",
            RoutedPayload::QuorumProposal { .. } => "quorum_proposal",
            RoutedPayload::QuorumVotes { .. } => "quorum_votes",
            RoutedPayload::QuorumBatch { .. } => "quorum_batch",
            RoutedPayload::QuorumCertificate { .. } => "quorum_certificate",
            RoutedPayload::QuorumEvidence { .. } => "quorum_evidence",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload as it was encoded before `serde_bytes`: a plain `Vec<u8>`.
    #[derive(serde::Serialize)]
    enum Plain {
        _Probe,
        _ProbeAck,
        Data { seq: u64, envelope: Vec<u8> },
    }

    #[test]
    fn data_batches_are_bounded_in_count_and_envelope_size() {
        let item = |len: usize| DataItem {
            seq: 1,
            envelope: vec![0; len],
        };
        let ok = RoutedPayload::DataBatch {
            items: vec![item(10); MAX_DATA_BATCH],
        };
        assert_eq!(ok.check_bounds(), Ok(()));
        let back: RoutedPayload =
            postcard::from_bytes(&postcard::to_allocvec(&ok).unwrap()).unwrap();
        assert_eq!(back, ok);
        let many = RoutedPayload::DataBatch {
            items: vec![item(1); MAX_DATA_BATCH + 1],
        };
        assert_eq!(
            many.check_bounds(),
            Err(PayloadError::TooManyItems(MAX_DATA_BATCH + 1))
        );
        let big = RoutedPayload::DataBatch {
            items: vec![item(1), item(MAX_DATA_ENVELOPE + 1)],
        };
        assert_eq!(
            big.check_bounds(),
            Err(PayloadError::EnvelopeTooLong(MAX_DATA_ENVELOPE + 1))
        );
    }

    #[test]
    fn byte_strings_encode_as_the_plain_byte_sequences_did() {
        let envelope: Vec<u8> = (0..=255u8).cycle().take(1100).collect();
        let now = postcard::to_allocvec(&RoutedPayload::Data {
            seq: 300,
            envelope: envelope.clone(),
        })
        .unwrap();
        let before = postcard::to_allocvec(&Plain::Data { seq: 300, envelope }).unwrap();
        assert_eq!(now, before);
        let back: RoutedPayload = postcard::from_bytes(&before).unwrap();
        assert!(
            matches!(back, RoutedPayload::Data { seq: 300, envelope } if envelope.len() == 1100)
        );
    }
}
