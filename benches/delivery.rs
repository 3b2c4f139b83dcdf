//! Delivery figures, each beside its raw baseline measured in the same run:
//!
//! * quorum decisions per second, 5 clusters, BYZANTINE_QUORUM, IO-free:
//!   every origin proposes, every member validates and signs one vote batch
//!   per wave, every member's driver verifies every batch and tallies every
//!   round, every driver builds the certificate — signing and verifying
//!   included. Only rounds the origin itself decided as accepted count, and
//!   after each wave (outside the timed part) every such certificate is
//!   checked with `verify_delivery` against the message proposed (every vote
//!   checked: Merkle path to a batch signature checked with `verify_strict`);
//! * raw ed25519 `sign` and `verify_strict` on a vote-sized message, and the
//!   decision rate that single (unbatched) votes would allow at that cost.
//!
//! Run: `cargo bench --bench delivery` (`ROUNDS=N`, `WAVE=N` rounds per origin
//! per wave, at most 800 so one wave fits one batch).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::HashMap;
use ed25519_dalek::{Signature, Signer, SigningKey};
use fedmesh::proto::delivery::{
    Envelope, Guarantee, MemoryVoteRecord, MessageKey, Outcome, QuorumCertificate, QuorumConfig,
    QuorumDriver, QuorumOutput, VoteBatch, VoteSigner, Voter, verify_delivery,
};
use fedmesh::proto::identity::Identity;
use fedmesh::proto::membership::sigcache::SigCache;
use fedmesh::proto::queue::QueueName;
use fedmesh::proto::time::Millis;
use fedmesh::proto::vote::VoteKind;
use fedmesh::testkit::figures::{print_header, print_row};
use fedmesh::testkit::{TestNet, value};
use rayon::prelude::*;

const CLUSTERS: usize = 5;

struct Cluster {
    driver: QuorumDriver,
    voter: Voter,
    signer: VoteSigner,
    record: MemoryVoteRecord,
    /// Own rounds accepted in the current wave, checked after it.
    certified: Vec<Arc<QuorumCertificate>>,
}

/// What one run measured.
struct Run {
    /// Seconds spent proposing, signing, verifying and tallying.
    secs: f64,
    /// Own rounds accepted by their origin, each with a certificate that verifies.
    decided: u64,
    /// Vote batches signed.
    batches: u64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `rounds` rounds in waves.
fn run(net: &TestNet, rounds: u64, wave: u64, parallel: bool) -> Run {
    let config = QuorumConfig {
        retention: Duration::ZERO,
        ..QuorumConfig::default()
    };
    let mut clusters: Vec<Cluster> = (0..CLUSTERS)
        .map(|i| Cluster {
            driver: QuorumDriver::new(
                net.identities[i].id(),
                net.roster.clone(),
                config,
                Arc::new(SigCache::new(1024)),
            ),
            voter: Voter::new(),
            signer: VoteSigner::new(Identity::from_seed(net.seed_of(i))),
            record: MemoryVoteRecord::new(),
            certified: Vec::new(),
        })
        .collect();
    let topic = QueueName::new("bench").expect("valid topic");
    let roster = net.roster.clone();
    let per_origin = rounds / CLUSTERS as u64;
    let mut next_id = 1u64;
    let mut now = Millis(0);
    let mut timed = Duration::ZERO;
    let mut decided = 0u64;
    let mut signed = 0u64;
    // A fresh cache: each batch signature is checked with verify_strict once
    // here, then every certificate vote's Merkle path is checked against it.
    let check_cache = SigCache::new(1024);
    while next_id <= per_origin {
        let t = Instant::now();
        let ids = next_id..(next_id + wave).min(per_origin + 1);
        next_id = ids.end;
        now = Millis(now.0 + 1);
        // Propose.
        let mut proposals = Vec::new();
        for (i, c) in clusters.iter_mut().enumerate() {
            for id in ids.clone() {
                let key = MessageKey {
                    origin: net.identities[i].id(),
                    id,
                };
                let e = Envelope::new(
                    key,
                    topic.clone(),
                    Guarantee::ByzantineQuorum,
                    id.to_be_bytes().to_vec(),
                    None,
                )
                .expect("valid envelope");
                for o in c.driver.propose(now, Arc::new(e), None).expect("propose") {
                    if let QuorumOutput::Propose { proposal, .. } = o {
                        proposals.push(proposal);
                    }
                }
            }
        }
        // Validate and sign: one batch per member per wave.
        let sign = |c: &mut Cluster| -> Vec<VoteBatch> {
            for p in &proposals {
                c.voter
                    .on_proposal(&roster, p, |_| true)
                    .expect("valid proposal");
            }
            let signed = c
                .voter
                .flush(&roster, &c.signer, &mut c.record)
                .expect("sign");
            c.record.retain(|_| false);
            signed.into_iter().filter_map(|s| s.batch).collect()
        };
        let batches: Vec<VoteBatch> = if parallel {
            clusters.par_iter_mut().flat_map(sign).collect()
        } else {
            clusters.iter_mut().flat_map(sign).collect()
        };
        // Every member verifies every batch and tallies every round.
        let tally = |c: &mut Cluster| {
            for b in &batches {
                for o in c.driver.on_batch(now, b).expect("batch") {
                    if let QuorumOutput::Decided {
                        outcome: Outcome::Accepted(cert),
                        own: true,
                        ..
                    } = o
                    {
                        c.certified.push(cert);
                    }
                }
            }
            c.driver.gc(Millis(now.0 + 1));
        };
        if parallel {
            clusters.par_iter_mut().for_each(tally);
        } else {
            clusters.iter_mut().for_each(tally);
        }
        timed += t.elapsed();
        signed += batches.len() as u64;
        // Untimed: every certificate an origin got is for the message it
        // proposed, from its own round, and verifies.
        let proposed: HashMap<_, _> = proposals.iter().map(|p| (p.round, p)).collect();
        for (i, c) in clusters.iter_mut().enumerate() {
            for cert in c.certified.drain(..) {
                let p = proposed[&cert.round()];
                assert_eq!(p.envelope.key.origin, net.identities[i].id());
                verify_delivery(&roster, Some(&check_cache), &p.envelope, &cert)
                    .expect("certificate verifies");
                decided += 1;
            }
        }
    }
    assert_eq!(
        decided,
        per_origin * CLUSTERS as u64,
        "every round accepted"
    );
    Run {
        secs: timed.as_secs_f64(),
        decided,
        batches: signed,
    }
}

fn main() {
    let rounds = env_u64("ROUNDS", 100_000);
    let wave = env_u64("WAVE", 800).clamp(1, 800);
    let net = TestNet::new(42, &[1; CLUSTERS]);
    let cores = rayon::current_num_threads();
    println!(
        "fedmesh delivery benchmark: {rounds} BYZANTINE_QUORUM rounds, {CLUSTERS} clusters, waves of {wave} rounds per origin, {cores} cores"
    );

    // Raw ed25519 on a vote-sized message (153 bytes).
    let key = SigningKey::from_bytes(&net.seed_of(0));
    let vk = key.verifying_key();
    let round = net.round(VoteKind::ByzantineQuorum, 1);
    let msg = fedmesh::proto::vote::Vote {
        round,
        value: value(1),
        voter: net.identities[0].id(),
    }
    .sign_bytes();
    let n = 20_000u32;
    let t = Instant::now();
    let mut sig = Signature::from_bytes(&[0; 64]);
    for _ in 0..n {
        sig = black_box(key.sign(black_box(&msg)));
    }
    let sign_ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    let t = Instant::now();
    for _ in 0..n {
        assert!(black_box(vk.verify_strict(black_box(&msg), &sig)).is_ok());
    }
    let verify_ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    // Unbatched, one core simulating all five: 5 signatures and 5 × 5
    // verifications (every member verifies every vote) per decision.
    let single_bound = 1e9 / (CLUSTERS as f64 * sign_ns + (CLUSTERS * CLUSTERS) as f64 * verify_ns);

    let one_core = run(&net, rounds, wave, false);
    let all_cores = run(&net, rounds, wave, true);
    let one = one_core.decided as f64 / one_core.secs;
    let par = all_cores.decided as f64 / all_cores.secs;
    // Each batch is signed once and verified by every member's driver.
    let signs = all_cores.batches as f64 / all_cores.decided as f64;

    print_header();
    print_row(
        "raw ed25519 sign (153-byte vote)",
        &format!("{sign_ns:.0} ns"),
        "",
        "",
        "",
    );
    print_row(
        "raw verify_strict (153-byte vote)",
        &format!("{verify_ns:.0} ns"),
        "",
        "",
        "",
    );
    print_row(
        "quorum decisions/s, 5 clusters in 1 thread, batched",
        &format!("{one:.0} /s"),
        &format!("{single_bound:.0} /s = unbatched bound from raw sign/verify"),
        &format!("{:.1}x", one / single_bound),
        "",
    );
    print_row(
        &format!("quorum decisions/s, 5 clusters on {cores} cores (rayon), batched"),
        &format!("{par:.0} /s"),
        &format!(
            "{:.0} /s = unbatched bound × {cores}",
            single_bound * cores as f64
        ),
        &format!("{:.1}x", par / (single_bound * cores as f64)),
        "≥ 10,000/s",
    );
    print_row(
        "signatures per decision, batched",
        &format!("{signs:.4} sign + {:.4} verify", signs * CLUSTERS as f64),
        &format!("{CLUSTERS} sign + {} verify unbatched", CLUSTERS * CLUSTERS),
        "",
        "",
    );
}
