//! The typed contents of vote-log records (votes, certificates, evidence,
//! roster epochs), decoded from and encoded to record bodies.

use crate::proto::certificate::{Certificate, CertificateError};
use crate::proto::codec::DecodeError;
use crate::proto::evidence::{Evidence, EvidenceError};
use crate::proto::roster_epoch::{RosterEpoch, RosterEpochError};
use crate::proto::vote::SignedVote;

/// Record kind codes shared with the log container.
pub mod kind {
    /// A signed vote.
    pub const VOTE: u8 = 1;
    /// A quorum certificate.
    pub const CERTIFICATE: u8 = 2;
    /// Equivocation evidence.
    pub const EVIDENCE: u8 = 3;
    /// A roster epoch.
    pub const ROSTER: u8 = 4;
}

/// One typed log entry.
#[derive(Debug, Clone)]
pub enum LogEntry {
    /// A vote this node signed or accepted.
    Vote(SignedVote),
    /// A certificate this node formed or accepted.
    Certificate(Certificate),
    /// Evidence this node produced or accepted.
    Evidence(Box<Evidence>),
    /// A roster epoch this node adopted.
    Roster(RosterEpoch),
}

/// Why a record body does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The kind code is not one of the typed entries.
    #[error("kind {0} is not a vote, certificate, evidence or roster record")]
    UnknownKind(u8),
    /// A vote body does not decode.
    #[error("malformed vote: {0}")]
    Vote(DecodeError),
    /// A certificate body does not decode.
    #[error(transparent)]
    Certificate(CertificateError),
    /// An evidence body does not decode.
    #[error(transparent)]
    Evidence(EvidenceError),
    /// A roster body does not decode.
    #[error(transparent)]
    Roster(RosterEpochError),
}

impl LogEntry {
    /// The record kind code.
    pub fn kind(&self) -> u8 {
        match self {
            LogEntry::Vote(_) => kind::VOTE,
            LogEntry::Certificate(_) => kind::CERTIFICATE,
            LogEntry::Evidence(_) => kind::EVIDENCE,
            LogEntry::Roster(_) => kind::ROSTER,
        }
    }

    /// The record body.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            LogEntry::Vote(v) => v.encode().to_vec(),
            LogEntry::Certificate(c) => c.encode(),
            LogEntry::Evidence(e) => e.encode(),
            LogEntry::Roster(r) => r.encode(),
        }
    }

    /// Decodes a body of kind `kind`, strictly (exact length, no trailing bytes).
    pub fn decode(kind: u8, body: &[u8]) -> Result<Self, EntryError> {
        match kind {
            kind::VOTE => SignedVote::decode(body)
                .map(LogEntry::Vote)
                .map_err(EntryError::Vote),
            kind::CERTIFICATE => Certificate::decode(body)
                .map(LogEntry::Certificate)
                .map_err(EntryError::Certificate),
            kind::EVIDENCE => Evidence::decode(body)
                .map(|e| LogEntry::Evidence(Box::new(e)))
                .map_err(EntryError::Evidence),
            kind::ROSTER => RosterEpoch::decode(body)
                .map(LogEntry::Roster)
                .map_err(EntryError::Roster),
            other => Err(EntryError::UnknownKind(other)),
        }
    }
}
