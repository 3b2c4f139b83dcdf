//! Foundation figures, each beside its raw baseline measured in the same run:
//!
//! * `fedmesh verify` throughput on a 100,000-vote log versus raw
//!   ed25519-dalek `verify_strict` (one core, and all cores);
//! * the coordinator's tally + equivocation check per vote, without signatures.
//!
//! Run: `cargo bench --bench foundation` (set `VOTES=N` for another log size).

use std::hint::black_box;
use std::time::Instant;

use ed25519_dalek::{Signature, VerifyingKey};
use fedmesh::audit::{Verdict, VerifyOptions, verify_logs};
use fedmesh::proto::quorum::{Coordinator, VerifiedVote, assume_signature_checked};
use fedmesh::proto::vote::{SignedVote, VoteKind};
use fedmesh::store::votelog::WriterOptions;
use fedmesh::testkit::figures::{print_header, print_row};
use fedmesh::testkit::{SampleLog, TestNet, value, write_sample_log};
use rayon::prelude::*;

const MEMBERS: usize = 5;

fn main() {
    let votes: u64 = std::env::var("VOTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rounds = votes / MEMBERS as u64;
    let net = TestNet::new(42, &[1; MEMBERS]);
    let cores = rayon::current_num_threads();
    println!("fedmesh foundation benchmark: {votes} votes, {MEMBERS} members, {cores} cores");

    // The log under test: genesis roster, then every member's vote in each round.
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("bench.log");
    let spec = SampleLog {
        rounds,
        certificates: false,
        equivocator: None,
        writer: 0,
    };
    let t = Instant::now();
    let written = write_sample_log(&net, &log, spec, WriterOptions::default()).expect("write log");
    let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {written} votes ({:.1} MB) in {:.2} s (signing included)",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // Raw baseline inputs: the same votes, as (key, message, signature).
    let signed: Vec<SignedVote> = (0..rounds)
        .flat_map(|r| {
            let round = net.round(VoteKind::ByzantineQuorum, r);
            (0..MEMBERS).map(move |i| (round, i))
        })
        .map(|(round, i)| net.vote(i, round, value(0)))
        .collect();
    let raw: Vec<(VerifyingKey, Vec<u8>, Signature)> = signed
        .iter()
        .map(|v| {
            let key = *net.roster.key(&v.vote.voter).expect("member");
            (
                key,
                v.vote.sign_bytes(),
                Signature::from_bytes(&v.signature),
            )
        })
        .collect();

    let t = Instant::now();
    let ok = raw
        .iter()
        .filter(|(k, m, s)| k.verify_strict(m, s).is_ok())
        .count();
    let raw_one = raw.len() as f64 / t.elapsed().as_secs_f64();
    assert_eq!(ok, raw.len());

    let t = Instant::now();
    let ok = raw
        .par_iter()
        .filter(|(k, m, s)| k.verify_strict(m, s).is_ok())
        .count();
    let raw_all = raw.len() as f64 / t.elapsed().as_secs_f64();
    assert_eq!(ok, raw.len());

    let mut best = 0f64;
    for _ in 0..3 {
        let report = verify_logs(
            net.roster.clone(),
            std::slice::from_ref(&log),
            VerifyOptions::default(),
        );
        assert_eq!(report.verdict(), Verdict::Valid);
        assert_eq!(report.logs[0].counts.votes, written);
        best = best.max(written as f64 / report.seconds);
    }

    print_header();
    print_row(
        "raw verify_strict, 1 core",
        &format!("{raw_one:.0} votes/s"),
        "",
        "",
        "",
    );
    print_row(
        &format!("raw verify_strict, {cores} cores (rayon)"),
        &format!("{raw_all:.0} votes/s"),
        &format!("{:.0} = 1 core × {cores}", raw_one * cores as f64),
        &format!("{:.2}", raw_all / (raw_one * cores as f64)),
        "",
    );
    print_row(
        &format!("fedmesh verify, {written}-vote log (best of 3)"),
        &format!("{best:.0} votes/s"),
        &format!("{:.0} = raw × {cores} cores", raw_one * cores as f64),
        &format!("{:.2}", best / (raw_one * cores as f64)),
        "≥ 0.80 of raw",
    );

    // Tally and equivocation check without signatures.
    let verified: Vec<VerifiedVote> = signed
        .iter()
        .map(|v| assume_signature_checked(&net.roster, v).expect("context"))
        .collect();
    let mut per_vote = f64::MAX;
    for _ in 0..5 {
        let mut c = Coordinator::new(net.roster.clone());
        let t = Instant::now();
        for v in &verified {
            black_box(c.add_vote(v).expect("tally"));
        }
        per_vote = per_vote.min(t.elapsed().as_nanos() as f64 / verified.len() as f64);
    }
    // Re-delivery of every vote: the duplicate path of the equivocation check.
    let mut c = Coordinator::new(net.roster.clone());
    for v in &verified {
        c.add_vote(v).expect("tally");
    }
    let t = Instant::now();
    for v in &verified {
        black_box(c.add_vote(v).expect("tally"));
    }
    let dup = t.elapsed().as_nanos() as f64 / verified.len() as f64;
    let sig_ns = 1e9 / raw_one;
    print_row(
        "tally + equivocation check, new vote",
        &format!("{per_vote:.0} ns/vote"),
        &format!("{sig_ns:.0} ns = one verify_strict"),
        &format!("{:.3}", per_vote / sig_ns),
        "< 1 µs",
    );
    print_row(
        "tally + equivocation check, duplicate",
        &format!("{dup:.0} ns/vote"),
        &format!("{sig_ns:.0} ns = one verify_strict"),
        &format!("{:.3}", dup / sig_ns),
        "",
    );
}
