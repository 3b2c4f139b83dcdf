//! The foundation walk-through: five clusters with real key files and a
//! genesis roster decide twenty Byzantine-quorum rounds by signed, weighted
//! votes; one cluster equivocates and every honest cluster flags it with
//! evidence; every cluster's vote log then passes `verify`.
//!
//! Votes travel in-process here (the QUIC mesh is a later layer); everything
//! else is the production code path. Exits 0 only if every step held.
//!
//! Run: `cargo run --release --example multi_cluster [-- --out DIR]`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use fedmesh::audit::{Verdict, VerifyOptions, verify_logs};
use fedmesh::proto::certificate::Certificate;
use fedmesh::proto::log_entry::LogEntry;
use fedmesh::proto::quorum::{Coordinator, Decision, VoteEffect};
use fedmesh::proto::roster::{Member, Roster};
use fedmesh::proto::roster_epoch::RosterEpoch;
use fedmesh::proto::vote::{Round, SignedVote, Vote, VoteKind};
use fedmesh::proto::{Digest, Identity};
use fedmesh::store::genesis::write_roster_file;
use fedmesh::store::keys::{generate_key_files, load_identity};
use fedmesh::store::votelog::{VoteLogWriter, WriterOptions};
use fedmesh::testkit::append_entry;

const NAMES: [&str; 5] = ["alpha", "bravo", "charlie", "delta", "echo"];
const BYZANTINE: usize = 4;
const ROUNDS: u64 = 20;
const SPLIT_ROUND: u64 = 3;

struct Cluster {
    name: &'static str,
    identity: Identity,
    coordinator: Coordinator,
    log: VoteLogWriter,
}

impl Cluster {
    /// Receives a vote: verify, tally, log; returns evidence if it conflicts.
    fn receive(
        &mut self,
        vote: &SignedVote,
    ) -> anyhow::Result<Option<fedmesh::proto::evidence::Evidence>> {
        let verified = self.coordinator.verify(vote)?;
        let report = self.coordinator.add_vote(&verified)?;
        match report.effect {
            VoteEffect::Counted | VoteEffect::SignerFlagged => {
                append_entry(&mut self.log, &LogEntry::Vote(*vote))?;
            }
            VoteEffect::Equivocation(e) => {
                append_entry(&mut self.log, &LogEntry::Vote(*vote))?;
                append_entry(&mut self.log, &LogEntry::Evidence(e.clone()))?;
                return Ok(Some(*e));
            }
            VoteEffect::Duplicate | VoteEffect::FurtherConflict => {}
        }
        if let (Some(Decision::Accepted(_)), Some(cert)) = (
            report.decided,
            self.coordinator.certificate(&vote.vote.round),
        ) {
            append_entry(&mut self.log, &LogEntry::Certificate(cert))?;
        }
        Ok(None)
    }
}

/// The round in which message `r` is decided.
fn round_of(roster: &Roster, r: u64) -> Round {
    Round {
        network_id: roster.network_id(),
        epoch: roster.epoch(),
        kind: VoteKind::ByzantineQuorum,
        subject: Digest::of(format!("message {r}").as_bytes()),
    }
}

struct Step {
    name: &'static str,
    expected: String,
    observed: String,
    held: bool,
    millis: u128,
}

fn main() -> anyhow::Result<()> {
    let out: PathBuf = match std::env::args().skip_while(|a| a != "--out").nth(1) {
        Some(dir) => dir.into(),
        None => std::env::temp_dir().join(format!("fedmesh-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut steps = Vec::new();
    println!(
        "fedmesh foundation demo: {} clusters, output in {}",
        NAMES.len(),
        out.display()
    );

    // 1. Keys and roster.
    let t = Instant::now();
    let mut members = Vec::new();
    let mut identities = Vec::new();
    for name in NAMES {
        let files = generate_key_files(name, &out.join("certs"), true)?;
        identities.push(load_identity(&files.key_path)?);
        members.push(Member {
            id: files.cluster_id,
            name: name.to_owned(),
            weight: 1,
        });
        println!("  keygen {name:8} {}", files.cluster_id);
    }
    let roster = Arc::new(Roster::genesis("demo", members)?);
    let roster_path = out.join("roster.toml");
    write_roster_file(&roster_path, &roster, true)?;
    println!(
        "  roster  network {} (total weight {})",
        roster.network_id(),
        roster.total_weight()
    );
    steps.push(Step {
        name: "keys + genesis roster",
        expected: "5 members".into(),
        observed: format!("{} members", roster.members().len()),
        held: roster.members().len() == NAMES.len(),
        millis: t.elapsed().as_millis(),
    });

    let mut clusters = Vec::new();
    for (name, identity) in NAMES.iter().zip(identities) {
        let path = out.join(format!("{name}.votelog"));
        let _ = std::fs::remove_file(&path);
        let signer = Arc::new(Identity::from_pkcs8_pem(&identity.to_pkcs8_pem()?)?);
        let mut log =
            VoteLogWriter::create(&path, roster.network_id(), signer, WriterOptions::default())?;
        let genesis = RosterEpoch {
            roster: roster.clone(),
            certificate: None,
            attempt: 0,
        };
        append_entry(&mut log, &LogEntry::Roster(genesis))?;
        clusters.push(Cluster {
            name,
            identity,
            coordinator: Coordinator::new(roster.clone()),
            log,
        });
    }

    // 2. Rounds: every cluster signs and sends its vote to every cluster;
    //    the Byzantine one tells half the clusters one thing, half another.
    let t = Instant::now();
    let mut evidence = Vec::new();
    for r in 0..ROUNDS {
        let round = round_of(&roster, r);
        let value = Digest::of(format!("payload of message {r}").as_bytes());
        for sender in 0..clusters.len() {
            let sign = |v: Digest| {
                Vote {
                    round,
                    value: v,
                    voter: clusters[sender].identity.id(),
                }
                .sign(&clusters[sender].identity)
            };
            let honest = sign(value)?;
            let forked = sign(Digest::of(b"a different payload"))?;
            for (receiver, cluster) in clusters.iter_mut().enumerate() {
                let vote = if sender == BYZANTINE && r == SPLIT_ROUND && receiver >= 2 {
                    forked
                } else {
                    honest
                };
                evidence.extend(cluster.receive(&vote)?);
            }
        }
    }
    let decided = clusters
        .iter()
        .map(|c| {
            (0..ROUNDS)
                .filter(|r| {
                    matches!(
                        c.coordinator.decision(&round_of(&roster, *r)),
                        Some(Decision::Accepted(_))
                    )
                })
                .count() as u64
        })
        .min()
        .unwrap_or(0);
    steps.push(Step {
        name: "Byzantine-quorum rounds",
        expected: format!("{ROUNDS} accepted everywhere"),
        observed: format!("{decided} accepted at the slowest cluster"),
        held: decided == ROUNDS,
        millis: t.elapsed().as_millis(),
    });

    // 3. Certificates are exchanged; conflicting votes inside them are caught,
    //    and the evidence is passed on so every honest cluster flags the signer.
    let t = Instant::now();
    let certs: Vec<Certificate> = clusters
        .iter()
        .filter_map(|c| c.coordinator.certificate(&round_of(&roster, SPLIT_ROUND)))
        .collect();
    for cert in &certs {
        cert.verify(&roster)?;
        for c in clusters.iter_mut() {
            for vote in cert.votes() {
                evidence.extend(c.receive(&vote)?);
            }
        }
    }
    for e in &evidence {
        for c in clusters.iter_mut() {
            if c.coordinator.add_evidence(e)? {
                append_entry(&mut c.log, &LogEntry::Evidence(Box::new(*e)))?;
            }
        }
    }
    let byz = clusters[BYZANTINE].identity.id();
    let flagged_by = clusters
        .iter()
        .take(BYZANTINE)
        .filter(|c| c.coordinator.is_flagged(0, &byz))
        .count();
    let false_flags = clusters
        .iter()
        .flat_map(|c| {
            c.coordinator
                .flagged()
                .map(|(_, id, _)| *id)
                .collect::<Vec<_>>()
        })
        .filter(|id| *id != byz)
        .count();
    println!(
        "  {} flagged by {flagged_by} of 4 honest clusters; evidence verifies: {}",
        NAMES[BYZANTINE],
        evidence.iter().all(|e| e.verify(&roster).is_ok())
    );
    steps.push(Step {
        name: "equivocation flagged",
        expected: "echo flagged by 4/4 honest, 0 false flags".into(),
        observed: format!("flagged by {flagged_by}/4, {false_flags} false flags"),
        held: flagged_by == 4 && false_flags == 0 && !evidence.is_empty(),
        millis: t.elapsed().as_millis(),
    });

    // 4. Close the logs and verify them all together, offline.
    let t = Instant::now();
    let mut paths = Vec::new();
    for c in clusters {
        paths.push(c.log.path().to_owned());
        println!("  {} wrote {}", c.name, c.log.path().display());
        c.log.close()?;
    }
    let report = verify_logs(roster.clone(), &paths, VerifyOptions::default());
    let verify_flags: Vec<String> = report.flagged.iter().map(|f| f.name.clone()).collect();
    steps.push(Step {
        name: "fedmesh verify (all logs)",
        expected: "valid, flags [echo]".into(),
        observed: format!("{:?}, flags {verify_flags:?}", report.verdict()),
        held: report.verdict() == Verdict::Valid && verify_flags == ["echo"],
        millis: t.elapsed().as_millis(),
    });
    println!(
        "  same check from the shell: fedmesh verify {}/*.votelog --roster {}",
        out.display(),
        roster_path.display()
    );

    println!("\n| step | expected | observed | held | ms |\n|---|---|---|---|---|");
    for s in &steps {
        println!(
            "| {} | {} | {} | {} | {} |",
            s.name,
            s.expected,
            s.observed,
            if s.held { "yes" } else { "NO" },
            s.millis
        );
    }
    if steps.iter().all(|s| s.held) {
        println!("\nall steps held");
        Ok(())
    } else {
        anyhow::bail!("some steps did not hold")
    }
}
