//! Deterministic fixtures for tests, benchmarks and simulations: a network of
//! clusters with seeded keys, a genesis roster and helpers to sign votes.

use std::sync::Arc;

use crate::proto::bytes32::Digest;
use crate::proto::identity::Identity;
use crate::proto::roster::{Member, Roster};
use crate::proto::vote::{Round, SignedVote, Vote, VoteKind};

/// A test network: identities `0..n` with the given weights and its genesis roster.
pub struct TestNet {
    seed: u64,
    /// One identity per member, in creation order.
    pub identities: Vec<Identity>,
    /// The genesis roster.
    pub roster: Arc<Roster>,
}

impl TestNet {
    /// A network whose member `i` has weight `weights[i]` and a key derived from `seed` and `i`.
    pub fn new(seed: u64, weights: &[u64]) -> Self {
        let identities: Vec<Identity> = (0..weights.len())
            .map(|i| Identity::from_seed(seed_for(seed, i)))
            .collect();
        let members = identities
            .iter()
            .zip(weights)
            .enumerate()
            .map(|(i, (id, w))| Member {
                id: id.id(),
                name: format!("c{i}"),
                weight: *w,
            })
            .collect();
        let roster = match Roster::genesis("testnet", members) {
            Ok(r) => Arc::new(r),
            Err(e) => panic!("test roster is invalid: {e}"),
        };
        TestNet {
            seed,
            identities,
            roster,
        }
    }

    /// The secret seed of member `i` (to rebuild its identity elsewhere).
    pub fn seed_of(&self, i: usize) -> [u8; 32] {
        seed_for(self.seed, i)
    }

    /// A round of `kind` about `subject` in the genesis epoch.
    pub fn round(&self, kind: VoteKind, subject: u64) -> Round {
        Round {
            network_id: self.roster.network_id(),
            epoch: self.roster.epoch(),
            kind,
            subject: Digest::of(&subject.to_be_bytes()),
        }
    }

    /// Member `i`'s signed vote for `value` in `round`.
    pub fn vote(&self, i: usize, round: Round, value: Digest) -> SignedVote {
        let identity = &self.identities[i];
        let vote = Vote {
            round,
            value,
            voter: identity.id(),
        };
        match vote.sign(identity) {
            Ok(v) => v,
            Err(e) => panic!("signing with the voter's own key failed: {e}"),
        }
    }
}

fn seed_for(seed: u64, i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_be_bytes());
    s[8..16].copy_from_slice(&(i as u64).to_be_bytes());
    *blake3::hash(&s).as_bytes()
}

/// An accept value distinct for each `n`.
pub fn value(n: u64) -> Digest {
    Digest::of(&[b"value".as_slice(), &n.to_be_bytes()].concat())
}

pub mod figures;
mod logs;
pub mod mesh;
pub use logs::{SampleLog, append_entry, write_sample_log};
