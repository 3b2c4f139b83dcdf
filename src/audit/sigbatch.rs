//! Parallel signature verification with de-duplication: each distinct
//! (sign bytes, signature) pair is checked once, on all cores, and only
//! successes enter the cache, so a forged vote in one log can never be
//! waved through when it reappears in another.
//!
//! Batches are pipelined: while one batch is verified on the rayon pool, the
//! caller keeps reading and decoding the next, so the sequential work (I/O,
//! hash chain, tally) hides behind the signature checks.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;

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

/// A batch handed to the pool: its jobs, the records that repeat them, and
/// where the verdicts will arrive.
struct InFlight {
    aliases: Vec<(u64, usize)>,
    results: mpsc::Receiver<(Vec<Job>, Vec<bool>)>,
}

/// A queue of signatures to check, verified in parallel batches.
pub struct SigBatch {
    jobs: Vec<Job>,
    pending: HashMap<[u8; 32], usize>,
    aliases: Vec<(u64, usize)>,
    in_flight: Option<InFlight>,
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
    /// A queue whose batches hold `batch_size` signatures.
    pub fn new(batch_size: usize) -> Self {
        SigBatch {
            jobs: Vec::new(),
            pending: HashMap::new(),
            aliases: Vec::new(),
            in_flight: None,
            verified: HashSet::new(),
            batch_size: batch_size.max(1),
            checked: 0,
            skipped: 0,
        }
    }

    /// Queues `vote` (carried by record `index`) for checking under `key`.
    /// Returns its cache digest, by which failures are reported.
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

    /// Hands the queued batch to the pool without waiting. Returns the
    /// verdicts of the batch that was in flight before (see [`SigBatch::wait`]).
    pub fn launch(&mut self) -> Vec<BadSignature> {
        let earlier = self.wait();
        let jobs = std::mem::take(&mut self.jobs);
        let (tx, rx) = mpsc::channel();
        rayon::spawn(move || {
            let ok: Vec<bool> = jobs
                .par_iter()
                .map(|j| j.vote.verify_with(&j.key).is_ok())
                .collect();
            // The receiver only disappears if the auditor was dropped mid-run.
            let _ = tx.send((jobs, ok));
        });
        self.in_flight = Some(InFlight {
            aliases: std::mem::take(&mut self.aliases),
            results: rx,
        });
        self.pending.clear();
        earlier
    }

    /// Waits for the batch in flight, if any, and returns its failures (one
    /// per record that carried a bad signature), lowest record index first.
    pub fn wait(&mut self) -> Vec<BadSignature> {
        let Some(flight) = self.in_flight.take() else {
            return Vec::new();
        };
        match flight.results.recv() {
            Ok((jobs, ok)) => self.settle(&jobs, &ok, &flight.aliases),
            // The pool task panicked: treat every signature of the batch as unverified.
            Err(_) => Vec::new(),
        }
    }

    /// Launches what is queued and waits for everything: afterwards every
    /// pushed signature has a verdict.
    pub fn flush(&mut self) -> Vec<BadSignature> {
        let mut bad = self.launch();
        bad.extend(self.wait());
        bad
    }

    fn settle(&mut self, jobs: &[Job], ok: &[bool], aliases: &[(u64, usize)]) -> Vec<BadSignature> {
        self.checked += jobs.len() as u64;
        if self.verified.len() + jobs.len() > CACHE_CAP {
            self.verified.clear();
        }
        let mut bad = Vec::new();
        let failed = |j: &Job, index: u64| BadSignature {
            index,
            vote: j.vote,
            digest: j.digest,
        };
        for (job, good) in jobs.iter().zip(ok) {
            if *good {
                self.verified.insert(job.digest);
            } else {
                bad.push(failed(job, job.index));
            }
        }
        for (index, job) in aliases {
            if let (Some(false), Some(j)) = (ok.get(*job), jobs.get(*job)) {
                bad.push(failed(j, *index));
            }
        }
        bad.sort_by_key(|b| b.index);
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

    #[test]
    fn pipelined_batches_report_failures_from_both() {
        let net = TestNet::new(2, &[1, 1]);
        let key = *net.roster.key(&net.identities[0].id()).unwrap();
        let mut batch = SigBatch::new(2);
        let mut bad = Vec::new();
        for i in 0..10u64 {
            let mut v = net.vote(0, net.round(VoteKind::GlobalQuorum, i), value(i));
            if i == 3 || i == 8 {
                v.signature[1] ^= 1;
            }
            batch.push(i, &v, &key);
            if batch.is_full() {
                bad.extend(batch.launch());
            }
        }
        bad.extend(batch.flush());
        let idx: Vec<u64> = bad.iter().map(|b| b.index).collect();
        assert_eq!(idx, vec![3, 8]);
        assert_eq!(batch.checked(), 10);
    }
}
