//! The Byzantine step and the offline verification of every vote log.
//!
//! Quorum rounds do not run over the mesh yet, so the Byzantine step
//! exchanges signed votes in-process between one production [`Coordinator`]
//! and vote log per cluster (the path `fedmesh run` will take once votes
//! travel the mesh); the narration says so.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Demo, Observed, Step, StepFuture, progress};
use crate::audit::{Verdict, VerifyOptions, verify_logs};
use crate::proto::evidence::Evidence;
use crate::proto::log_entry::LogEntry;
use crate::proto::quorum::{Coordinator, Decision, VoteEffect};
use crate::proto::roster::Roster;
use crate::proto::roster_epoch::RosterEpoch;
use crate::proto::vote::{Round, SignedVote, Vote, VoteKind};
use crate::proto::{Digest, Identity};
use crate::store::keys::load_identity;
use crate::store::votelog::{VoteLogWriter, WriterOptions};
use crate::testkit::append_entry;

const ROUNDS: u64 = 20;
const SPLIT_ROUND: u64 = 3;

/// One cluster's voting state.
struct Voter {
    identity: Identity,
    coordinator: Coordinator,
    log: VoteLogWriter,
}

impl Voter {
    /// Receives a vote: verify, tally, log; returns evidence if it conflicts.
    fn receive(&mut self, vote: &SignedVote) -> anyhow::Result<Option<Evidence>> {
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

/// Byzantine clusters equivocate; every honest cluster flags them.
pub struct Equivocation;

impl Step for Equivocation {
    fn name(&self) -> &'static str {
        "Byzantine equivocation"
    }
    fn narration(&self, d: &Demo) -> String {
        let byz: Vec<&str> = d.byzantine.iter().map(|i| d.names[*i].as_str()).collect();
        format!(
            "{ROUNDS} Byzantine-quorum rounds with signed, weighted votes; in round {SPLIT_ROUND} {} tell(s) half the clusters one value and half another. Votes are exchanged in-process here (quorum rounds do not run over the mesh yet); coordinators, evidence and vote logs are the production code.",
            if byz.is_empty() {
                "nobody".to_owned()
            } else {
                byz.join(", ")
            }
        )
    }
    fn expected(&self, d: &Demo) -> String {
        format!(
            "{ROUNDS}/{ROUNDS} decided at every honest cluster; each Byzantine flagged by {}/{} honest, 0 false flags",
            d.names.len() - d.byzantine.len(),
            d.names.len() - d.byzantine.len()
        )
    }
    fn deadline(&self) -> Duration {
        Duration::from_secs(15)
    }
    fn run<'a>(&'a self, d: &'a mut Demo) -> StepFuture<'a> {
        Box::pin(async move {
            // Signing and logging are CPU and disk work: keep them off the
            // runtime's threads that carry the nodes.
            let (names, byzantine, roster, out) = (
                d.names.clone(),
                d.byzantine.clone(),
                d.roster.clone(),
                d.out.clone(),
            );
            let (observed, logs) =
                tokio::task::spawn_blocking(move || equivocation(&names, &byzantine, roster, &out))
                    .await??;
            d.vote_logs = logs;
            Ok(observed)
        })
    }
}

/// Runs the rounds; returns the outcome and the vote log paths.
fn equivocation(
    names: &[String],
    byzantine: &[usize],
    roster: Arc<Roster>,
    out: &std::path::Path,
) -> anyhow::Result<(Observed, Vec<PathBuf>)> {
    let n = names.len();
    std::fs::create_dir_all(out.join("votes"))?;
    let mut voters = Vec::new();
    for name in names {
        let identity = load_identity(&out.join(format!("certs/{name}.key")))?;
        let path = out.join(format!("votes/{name}.votelog"));
        // A previous run into the same --out leaves its log behind.
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
        voters.push(Voter {
            identity,
            coordinator: Coordinator::new(roster.clone()),
            log,
        });
    }

    let mut evidence = Vec::new();
    for r in 0..ROUNDS {
        let round = round_of(&roster, r);
        let value = Digest::of(format!("payload of message {r}").as_bytes());
        for sender in 0..n {
            let sign = |v: Digest| {
                Vote {
                    round,
                    value: v,
                    voter: voters[sender].identity.id(),
                }
                .sign(&voters[sender].identity)
            };
            let honest = sign(value)?;
            let forked = sign(Digest::of(b"a different payload"))?;
            for (receiver, voter) in voters.iter_mut().enumerate() {
                let lie = byzantine.contains(&sender) && r == SPLIT_ROUND && receiver >= n / 2;
                evidence.extend(voter.receive(if lie { &forked } else { &honest })?);
            }
        }
    }
    // Certificates are exchanged: conflicting votes inside them are caught,
    // and the evidence is passed on so every cluster can flag the signer.
    let certs: Vec<_> = voters
        .iter()
        .filter_map(|v| v.coordinator.certificate(&round_of(&roster, SPLIT_ROUND)))
        .collect();
    for cert in &certs {
        cert.verify(&roster)?;
        for voter in voters.iter_mut() {
            for vote in cert.votes() {
                evidence.extend(voter.receive(&vote)?);
            }
        }
    }
    for e in &evidence {
        for voter in voters.iter_mut() {
            if voter.coordinator.add_evidence(e)? {
                append_entry(&mut voter.log, &LogEntry::Evidence(Box::new(*e)))?;
            }
        }
    }

    let honest: Vec<usize> = (0..n).filter(|i| !byzantine.contains(i)).collect();
    let decided = honest
        .iter()
        .map(|&i| {
            (0..ROUNDS)
                .filter(|r| {
                    matches!(
                        voters[i].coordinator.decision(&round_of(&roster, *r)),
                        Some(Decision::Accepted(_))
                    )
                })
                .count() as u64
        })
        .min()
        .unwrap_or(0);
    let byz_ids: Vec<_> = byzantine.iter().map(|&i| voters[i].identity.id()).collect();
    let flagged_by = byz_ids
        .iter()
        .map(|id| {
            honest
                .iter()
                .filter(|&&i| voters[i].coordinator.is_flagged(0, id))
                .count()
        })
        .min()
        .unwrap_or(honest.len());
    let false_flags = honest
        .iter()
        .flat_map(|&i| {
            voters[i]
                .coordinator
                .flagged()
                .map(|(_, id, _)| *id)
                .collect::<Vec<_>>()
        })
        .filter(|id| !byz_ids.contains(id))
        .count();
    let evidence_ok = evidence.iter().all(|e| e.verify(&roster).is_ok());
    let byz_weight = byzantine.len() as u64;
    let assumption = byz_weight * 3 < roster.total_weight();
    progress::note(&format!(
        "Byzantine weight {byz_weight}/{} ({} the 1/3 the protocol tolerates); {} evidence item(s), all verify: {evidence_ok}",
        roster.total_weight(),
        if assumption { "below" } else { "NOT below" },
        evidence.len()
    ));

    let mut logs = Vec::new();
    for voter in voters {
        logs.push(voter.log.path().to_owned());
        voter.log.close()?;
    }
    let held = decided == ROUNDS
        && flagged_by == honest.len()
        && false_flags == 0
        && evidence_ok
        && (byzantine.is_empty() || !evidence.is_empty());
    Ok((
        Observed::new(
            held,
            format!(
                "{decided}/{ROUNDS} decided at the slowest honest cluster; flagged by {flagged_by}/{}, {false_flags} false flags",
                honest.len()
            ),
        ),
        logs,
    ))
}

/// `fedmesh verify` over every cluster's vote log.
pub struct Verify;

impl Step for Verify {
    fn name(&self) -> &'static str {
        "verify all vote logs"
    }
    fn narration(&self, d: &Demo) -> String {
        format!(
            "Every cluster's vote log is checked offline against the genesis roster, as `fedmesh verify {}/votes/*.votelog --roster {}` does.",
            d.out.display(),
            d.roster_path.display()
        )
    }
    fn expected(&self, d: &Demo) -> String {
        let byz: Vec<&str> = d.byzantine.iter().map(|i| d.names[*i].as_str()).collect();
        format!("valid, flags [{}]", byz.join(", "))
    }
    fn deadline(&self) -> Duration {
        Duration::from_secs(10)
    }
    fn run<'a>(&'a self, d: &'a mut Demo) -> StepFuture<'a> {
        Box::pin(async move {
            if d.vote_logs.len() != d.names.len() {
                return Ok(Observed::new(false, "vote logs missing"));
            }
            let (roster, logs) = (d.roster.clone(), d.vote_logs.clone());
            let report = tokio::task::spawn_blocking(move || {
                verify_logs(roster, &logs, VerifyOptions::default())
            })
            .await?;
            let mut flags: Vec<String> = report.flagged.iter().map(|f| f.name.clone()).collect();
            flags.sort();
            flags.dedup();
            let mut want: Vec<String> = d.byzantine.iter().map(|i| d.names[*i].clone()).collect();
            want.sort();
            let verdict = report.verdict();
            Ok(Observed::new(
                verdict == Verdict::Valid && flags == want,
                format!("{verdict:?}, flags [{}]", flags.join(", ")),
            ))
        })
    }
}
