//! A member's signed proposal of the next roster epoch.
//!
//! Sign bytes: `tag("fedmesh/roster-proposal/v1") | proposer[32] |
//! roster_len:u32 | roster`. Encoding: the same fields without the tag, then
//! the 64-byte signature. A proposal is only a candidate: it takes effect
//! when more than 2/3 of the current epoch's weight vote for its digest.

use std::sync::Arc;

use crate::proto::bytes32::Digest;
use crate::proto::codec::{DecodeError, Reader, Writer, tags};
use crate::proto::identity::{ClusterId, Identity, verify_strict};
use crate::proto::roster::{MAX_MEMBERS, Roster, RosterError};
use crate::proto::roster_epoch::RosterEpoch;

/// The largest encoded proposal accepted (a roster of [`MAX_MEMBERS`]
/// members with maximal names, plus the fixed fields).
pub const MAX_PROPOSAL_LEN: usize = 128 + MAX_MEMBERS * (32 + 8 + 2 + 64) + 32 + 4 + 64;

/// Why a proposal is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    /// The encoding does not parse.
    #[error("malformed proposal: {0}")]
    Decode(#[from] DecodeError),
    /// The proposed roster is invalid.
    #[error("invalid proposed roster: {0}")]
    Roster(#[from] RosterError),
    /// The proposer is not a member of the current epoch.
    #[error("proposer {0} is not a member of the current epoch")]
    NotAMember(ClusterId),
    /// The signature does not verify.
    #[error("bad proposal signature from {0}")]
    BadSignature(ClusterId),
    /// The roster is not a successor of the current epoch (other network,
    /// name or epoch number, or identical members).
    #[error("the proposed roster (epoch {got}) is not a successor of epoch {current}")]
    NotASuccessor {
        /// The epoch held.
        current: u64,
        /// The proposed epoch.
        got: u64,
    },
}

/// A signed proposal of the next epoch's roster.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// The proposed roster (epoch N+1).
    pub roster: Arc<Roster>,
    /// The member who proposes it.
    pub proposer: ClusterId,
    /// ed25519 signature over the sign bytes.
    pub signature: [u8; 64],
}

fn write_fields(w: &mut Writer, proposer: &ClusterId, roster: &[u8]) {
    w.raw(&proposer.0).u32(roster.len() as u32).raw(roster);
}

fn sign_bytes(proposer: &ClusterId, roster: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(roster.len() + 64);
    w.tag(tags::ROSTER_PROPOSAL);
    write_fields(&mut w, proposer, roster);
    w.finish()
}

impl Proposal {
    /// Signs `roster` as `identity`'s proposal.
    pub fn sign(roster: Arc<Roster>, identity: &Identity) -> Proposal {
        let proposer = identity.id();
        let signature = identity.sign(&sign_bytes(&proposer, &roster.encode()));
        Proposal {
            roster,
            proposer,
            signature,
        }
    }

    /// The vote value that accepts this proposal.
    pub fn value(&self) -> Digest {
        RosterEpoch::change_value(&self.roster)
    }

    /// Checks that this is a well-formed, signed successor of `current`.
    pub fn verify(&self, current: &Roster) -> Result<(), ProposalError> {
        let r = &self.roster;
        let successor = r.network_id() == current.network_id()
            && r.network_name() == current.network_name()
            && Some(r.epoch()) == current.epoch().checked_add(1)
            && r.members() != current.members();
        if !successor {
            return Err(ProposalError::NotASuccessor {
                current: current.epoch(),
                got: r.epoch(),
            });
        }
        let key = current
            .key(&self.proposer)
            .ok_or(ProposalError::NotAMember(self.proposer))?;
        if !verify_strict(
            key,
            &sign_bytes(&self.proposer, &r.encode()),
            &self.signature,
        ) {
            return Err(ProposalError::BadSignature(self.proposer));
        }
        Ok(())
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let roster = self.roster.encode();
        let mut w = Writer::with_capacity(roster.len() + 100);
        write_fields(&mut w, &self.proposer, &roster);
        w.raw(&self.signature);
        w.finish()
    }

    /// Decodes exactly one encoding (the signature is not checked here).
    pub fn decode(bytes: &[u8]) -> Result<Proposal, ProposalError> {
        if bytes.len() > MAX_PROPOSAL_LEN {
            return Err(DecodeError::invalid("proposal", "too long").into());
        }
        let mut r = Reader::new(bytes);
        let proposer = ClusterId(r.array()?);
        let len = r.count(1)?;
        let roster = Arc::new(Roster::decode(r.take(len)?)?);
        let signature = r.array()?;
        r.finish()?;
        Ok(Proposal {
            roster,
            proposer,
            signature,
        })
    }
}
