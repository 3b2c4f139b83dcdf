//! Delivery guarantees as IO-free state machines (DESIGN.md, "Delivery
//! guarantees"): the envelope and its digest, the at-least-once/broadcast
//! outbox, receiver dedup, vote batching with per-vote proofs, the vote
//! signer that never signs two values for one slot, and the quorum round
//! driver for GLOBAL_QUORUM and BYZANTINE_QUORUM.
//!
//! Every machine takes `now` (and an injected RNG where it jitters) and
//! returns what to do; none reads a clock or does IO.

mod batch;
mod certificate;
mod dedup;
mod envelope;
mod evidence;
mod guarantee;
mod outbox;
mod signer;
mod timing;

pub use batch::{
    Attestation, AttestedVote, BatchError, BatchProof, MAX_BATCH, MAX_PATH, MerklePath,
    VerifiedBatch, VoteBatch,
};
pub use certificate::QuorumCertificate;
pub use dedup::{DEFAULT_DEDUP_WINDOW, DEFAULT_MAX_ORIGINS, Dedup, OriginWindow, Verdict};
pub use envelope::{Envelope, EnvelopeError, MAX_PAYLOAD, MessageKey, message_subject};
pub use evidence::VoteEvidence;
pub use guarantee::{Guarantee, UnknownGuarantee};
pub use outbox::{
    AckOutcome, DEFAULT_OUTBOX_CAPACITY, DestStatus, Outbox, OutboxCounters, OutboxError,
    SEND_WINDOW, Send,
};
pub use signer::{Conflict, MemoryVoteRecord, Signed, SignedVoteRecord, SignerError, VoteSigner};
pub use timing::{Backoff, RttEstimator};
mod round;
mod voter;

pub use round::{
    DeliveryError, Outcome, QuorumConfig, QuorumCounters, QuorumDriver, QuorumError, QuorumOutput,
    verify_delivery,
};
pub use voter::{Ballot, Proposal, ProposalError, Voter};

#[cfg(test)]
mod sim;
