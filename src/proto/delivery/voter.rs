//! The member side of a quorum round: check a proposal, decide the value to
//! vote (the message digest, or `REJECT` if the application refuses it),
//! and batch votes until the next flush, when the [`VoteSigner`] signs them
//! under one signature.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::proto::bytes32::Digest;
use crate::proto::roster::Roster;
use crate::proto::vote::{REJECT, Round, VoteKind};

use super::batch::MAX_BATCH;
use super::envelope::Envelope;
use super::signer::{Signed, SignedVoteRecord, SignerError, VoteSigner};

/// A proposal: the origin asks the members to vote on a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The round (subject = `message_subject(origin, id)`).
    pub round: Round,
    /// The message.
    pub envelope: Arc<Envelope>,
}

/// Why a proposal gets no vote at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    /// Another network.
    #[error("proposal is for another network")]
    WrongNetwork,
    /// Not the epoch of the roster it was checked against.
    #[error("proposal is for epoch {got}, the roster is epoch {expected}")]
    WrongEpoch {
        /// The roster's epoch.
        expected: u64,
        /// The proposal's epoch.
        got: u64,
    },
    /// The round kind does not match the message's guarantee.
    #[error("round kind {0:?} does not match the message's guarantee")]
    WrongKind(VoteKind),
    /// The subject is not the digest of the message's origin and id.
    #[error("subject does not match the message's origin and id")]
    WrongSubject,
    /// The origin is not a member.
    #[error("origin is not a member of the roster")]
    NotAMember,
}

/// What the voter decided for a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ballot {
    /// Queued: vote for the message digest.
    Accept(Digest),
    /// Queued: vote `REJECT` (the application refused the message).
    Reject,
}

/// Votes waiting for the next batch, grouped by (epoch, kind).
#[derive(Debug, Default)]
pub struct Voter {
    pending: BTreeMap<(u64, VoteKind), Vec<(Digest, Digest)>>,
    queued: usize,
}

impl Voter {
    /// An empty voter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `proposal` against `roster` (the roster of its epoch); if it is
    /// well-formed, queues a vote for the message digest when `accept` says
    /// the application takes the message, or for `REJECT` otherwise.
    pub fn on_proposal(
        &mut self,
        roster: &Roster,
        proposal: &Proposal,
        accept: impl FnOnce(&Envelope) -> bool,
    ) -> Result<Ballot, ProposalError> {
        let network = roster.network_id();
        let r = &proposal.round;
        let e = &proposal.envelope;
        if r.network_id != network {
            return Err(ProposalError::WrongNetwork);
        }
        if r.epoch != roster.epoch() {
            return Err(ProposalError::WrongEpoch {
                expected: roster.epoch(),
                got: r.epoch,
            });
        }
        if e.guarantee.vote_kind() != Some(r.kind) {
            return Err(ProposalError::WrongKind(r.kind));
        }
        if e.subject(network) != r.subject {
            return Err(ProposalError::WrongSubject);
        }
        if roster.member(&e.key.origin).is_none() {
            return Err(ProposalError::NotAMember);
        }
        let (value, ballot) = if accept(e) {
            let d = e.digest(network);
            (d, Ballot::Accept(d))
        } else {
            (REJECT, Ballot::Reject)
        };
        self.pending
            .entry((r.epoch, r.kind))
            .or_default()
            .push((r.subject, value));
        self.queued += 1;
        Ok(ballot)
    }

    /// Votes queued since the last flush.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Signs every queued vote, at most [`MAX_BATCH`] per batch (a lone vote
    /// gets a single signature: same cost, and the foundation vote log and
    /// certificates can hold it); the signer
    /// refuses (and reports) any second value for a slot. Call on the flush
    /// timer, or when [`Voter::queued`] reaches the batch size wanted. On a
    /// record error the rest of the queue is dropped unsigned; the origins'
    /// proposal retries bring those rounds back.
    pub fn flush<R: SignedVoteRecord>(
        &mut self,
        roster: &Roster,
        signer: &VoteSigner,
        record: &mut R,
    ) -> Result<Vec<Signed>, SignerError<R::Error>> {
        let mut out = Vec::new();
        let network = roster.network_id();
        let pending = std::mem::take(&mut self.pending);
        self.queued = 0;
        for ((epoch, kind), entries) in pending {
            for chunk in entries.chunks(MAX_BATCH) {
                if let [(subject, value)] = chunk {
                    out.push(sign_one(
                        signer, record, network, epoch, kind, *subject, *value,
                    )?);
                    continue;
                }
                out.push(signer.sign_batch(record, network, epoch, kind, chunk)?);
            }
        }
        Ok(out)
    }
}

/// One vote with a single signature, reported like a batch of one.
fn sign_one<R: SignedVoteRecord>(
    signer: &VoteSigner,
    record: &mut R,
    network_id: crate::proto::bytes32::NetworkId,
    epoch: u64,
    kind: VoteKind,
    subject: Digest,
    value: Digest,
) -> Result<Signed, SignerError<R::Error>> {
    let round = Round {
        network_id,
        epoch,
        kind,
        subject,
    };
    let slot = crate::proto::vote::Slot {
        round,
        voter: signer.id(),
    };
    // `sign_single` hands back the earlier vote for a repeat: tell the two apart.
    let earlier = record.previous(&slot).map_err(SignerError::Record)?;
    let mut out = Signed::default();
    match signer.sign_single(record, round, value)? {
        Ok(v) if earlier.is_none() => out.new_votes.push(v),
        Ok(v) => out.repeats.push(v),
        Err(c) => out.refused.push(c),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::delivery::{Guarantee, MemoryVoteRecord, MessageKey};
    use crate::proto::identity::Identity;
    use crate::proto::queue::QueueName;
    use crate::testkit::TestNet;

    fn proposal(net: &TestNet, origin: usize, g: Guarantee) -> Proposal {
        let e = Envelope::new(
            MessageKey {
                origin: net.identities[origin].id(),
                id: 1,
            },
            QueueName::new("q").unwrap(),
            g,
            b"x".to_vec(),
            None,
        )
        .unwrap();
        let network = net.roster.network_id();
        Proposal {
            round: Round {
                network_id: network,
                epoch: 0,
                kind: VoteKind::ByzantineQuorum,
                subject: e.subject(network),
            },
            envelope: Arc::new(e),
        }
    }

    #[test]
    fn checks_proposals_and_batches_votes() {
        let net = TestNet::new(8, &[1, 1, 1]);
        let mut v = Voter::new();
        let good = proposal(&net, 1, Guarantee::ByzantineQuorum);
        let digest = good.envelope.digest(net.roster.network_id());
        assert_eq!(
            v.on_proposal(&net.roster, &good, |_| true),
            Ok(Ballot::Accept(digest))
        );
        let mut other = proposal(&net, 2, Guarantee::ByzantineQuorum);
        assert_eq!(
            v.on_proposal(&net.roster, &other, |_| false),
            Ok(Ballot::Reject)
        );
        other.round.subject = digest;
        assert_eq!(
            v.on_proposal(&net.roster, &other, |_| true),
            Err(ProposalError::WrongSubject)
        );
        let wrong_kind = proposal(&net, 1, Guarantee::GlobalQuorum);
        assert!(matches!(
            v.on_proposal(&net.roster, &wrong_kind, |_| true),
            Err(ProposalError::WrongKind(_))
        ));
        let mut epoch = good.clone();
        epoch.round.epoch = 3;
        assert!(matches!(
            v.on_proposal(&net.roster, &epoch, |_| true),
            Err(ProposalError::WrongEpoch { .. })
        ));
        let stranger = TestNet::new(9, &[1]);
        let mut foreign = proposal(&stranger, 0, Guarantee::ByzantineQuorum);
        assert_eq!(
            v.on_proposal(&net.roster, &foreign, |_| true),
            Err(ProposalError::WrongNetwork)
        );
        foreign.round.network_id = net.roster.network_id();
        foreign.round.subject = foreign.envelope.subject(net.roster.network_id());
        assert_eq!(
            v.on_proposal(&net.roster, &foreign, |_| true),
            Err(ProposalError::NotAMember)
        );
        assert_eq!(v.queued(), 2);
        let signer = VoteSigner::new(Identity::from_seed(net.seed_of(0)));
        let mut rec = MemoryVoteRecord::new();
        let signed = v.flush(&net.roster, &signer, &mut rec).unwrap();
        assert_eq!(signed.len(), 1);
        let batch = signed[0].batch.as_ref().unwrap();
        assert_eq!(batch.entries().len(), 2);
        batch.verify(&net.roster, None).unwrap();
        assert_eq!(v.queued(), 0);
        assert!(v.flush(&net.roster, &signer, &mut rec).unwrap().is_empty());
    }
}
