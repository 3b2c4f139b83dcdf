//! Parallel signature verification with de-duplication: each distinct
//! (sign bytes, signature) pair is checked once, on all cores, and only
//! successes enter the cache, so a forged vote in one log can never be
//! waved through when it reappears in another.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::VerifyingKey;
use rayon::prelude::*;

use crate::proto::vote::SignedVote;

/// Most verified pairs remembered; past it the cache starts afresh (it is an
/// optimisation, never a correctness input).
const CACHE_CAP: usize = 4_000_000;

struct Job {
    index: u64,
    vote: SignedVote,
    key: VerifyingKey,
    digest: [u8; 32],
}

/// A queue of signatures to check, flushed in parallel batches.
pub struct SigBatch {
    jobs: Vec<Job>,
    pending: HashMap<[u8; 32], usize>,
    aliases: Vec<(u64, usize)>,
    verified: HashSet<[u8; 32]>,
    batch_size: usize,
    checked: u64,
    skipped: u64,
}

/// A signature that did not verify: the record that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSignature {
    /// Index of the record.
    pub index: u64,
    /// The vote whose signature failed.
    pub vote: SignedVote,
    /// Its cache digest (as returned by [`SigBatch::push`]).
    pub digest: [u8; 32],
}

impl SigBatch {
    /// A queue that verifies once `batch_size` signatures are pending.
    pub fn new(batch_size: usize) -> Self {
        SigBatch {
            jobs: Vec::new(),
            pending: HashMap::new(),
            aliases: Vec::new(),
            verified: HashSet::new(),
            batch_size: batch_size.max(1),
            checked: 0,
            skipped: 0,
        }
    }

    /// Queues `vote` (carried by record `index`) for checking under `key`.
    /// Returns its cache digest, by which [`SigBatch::flush`] reports failures.
    pub fn push(&mut self, index: u64, vote: &SignedVote, key: &VerifyingKey) -> [u8; 32] {
        let digest = *vote.cache_key().as_bytes();
        if self.verified.contains(&digest) {
            self.skipped += 1;
        } else if let Some(&job) = self.pending.get(&digest) {
            self.skipped += 1;
            self.aliases.push((index, job));
        } else {
            self.pending.insert(digest, self.jobs.len());
            self.jobs.push(Job {
                index,
                vote: *vote,
                key: *key,
                digest,
            });
        }
        digest
    }

    /// Whether enough signatures are queued to be worth a parallel batch.
    pub fn is_full(&self) -> bool {
        self.jobs.len() >= self.batch_size
    }

    /// Verifies everything queued; returns every failure (one per record that
    /// carried a bad signature), lowest record index first.
    pub fn flush(&mut self) -> Vec<BadSignature> {
        let results: Vec<bool> = self
            .jobs
            .par_iter()
            .map(|j| j.vote.verify_with(&j.key).is_ok())
            .collect();
        self.checked += self.jobs.len() as u64;
        if self.verified.len() + self.jobs.len() > CACHE_CAP {
            self.verified.clear();
        }
        let mut bad = Vec::new();
        for (job, ok) in self.jobs.iter().zip(&results) {
            if *ok {
                self.verified.insert(job.digest);
            } else {
                bad.push(BadSignature {
                    index: job.index,
                    vote: job.vote,
                    digest: job.digest,
                });
            }
        }
        for (index, job) in &self.aliases {
            if !results[*job] {
                let j = &self.jobs[*job];
                bad.push(BadSignature {
                    index: *index,
                    vote: j.vote,
                    digest: j.digest,
                });
            }
        }
        bad.sort_by_key(|b| b.index);
        self.jobs.clear();
        self.pending.clear();
        self.aliases.clear();
        bad
    }

    /// Signatures actually verified.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// Signatures skipped because the same (bytes, signature) pair was already checked or queued.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::vote::VoteKind;
    use crate::testkit::{TestNet, value};

    #[test]
    fn duplicates_are_checked_once_and_forgeries_are_found_wherever_they_repeat() {
        let net = TestNet::new(1, &[1, 1]);
        let key = *net.roster.key(&net.identities[0].id()).unwrap();
        let round = net.round(VoteKind::GlobalQuorum, 1);
        let good = net.vote(0, round, value(1));
        let mut forged = net.vote(0, round, value(2));
        forged.signature[0] ^= 1;

        let mut batch = SigBatch::new(100);
        for (i, v) in [good, good, forged, forged].iter().enumerate() {
            batch.push(i as u64, v, &key);
        }
        let bad: Vec<u64> = batch.flush().iter().map(|b| b.index).collect();
        assert_eq!(bad, vec![2, 3]);
        assert_eq!(batch.checked(), 2);
        assert_eq!(batch.skipped(), 2);
        // The good vote is cached; the forged one is not and fails again.
        batch.push(4, &good, &key);
        batch.push(5, &forged, &key);
        let bad: Vec<u64> = batch.flush().iter().map(|b| b.index).collect();
        assert_eq!(bad, vec![5]);
        assert_eq!(batch.skipped(), 3);
    }
}
