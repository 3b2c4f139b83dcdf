//! The Byzantine step, over the mesh, and the offline verification of every
//! cluster's vote log.
//!
//! The Byzantine clusters are switched to [`Byzantine::EquivocateVotes`]:
//! on every BYZANTINE_QUORUM round they sign ACCEPT for half the members
//! and REJECT for the other half. Honest coordinators catch the two
//! signatures for one slot, send the evidence to every member and flag the
//! signer, which then counts for nothing in positive tallies.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;

use super::{Demo, Observed, Step, StepFuture, progress};
use crate::audit::{Verdict, VerifyOptions, verify_logs};
use crate::node::VOTE_LOG_FILE;
use crate::proto::ClusterId;
use crate::proto::core::{Byzantine, Delivery, QuorumOutcome};
use crate::proto::delivery::{Guarantee, MessageKey};
use crate::proto::membership::event::Event;

/// BYZANTINE_QUORUM messages the origin publishes in the step.
const ROUNDS: usize = 10;
const TOPIC: &str = "demo.byzantine";

/// Byzantine clusters equivocate on live quorum rounds and are flagged.
pub struct Equivocation;

impl Step for Equivocation {
    fn name(&self) -> &'static str {
        "Byzantine equivocation"
    }
    fn narration(&self, d: &Demo) -> String {
        let byz: Vec<&str> = d.byzantine.iter().map(|i| d.names[*i].as_str()).collect();
        format!(
            "{} publishes {ROUNDS} BYZANTINE_QUORUM messages over the mesh; {} sign(s) ACCEPT to half the clusters and REJECT to the others. Every honest coordinator must catch it, pass the evidence on and flag the signer, and every round must still decide.",
            d.names[0],
            if byz.is_empty() {
                "nobody".to_owned()
            } else {
                byz.join(", ")
            }
        )
    }
    fn expected(&self, d: &Demo) -> String {
        let honest = d.names.len() - d.byzantine.len();
        format!(
            "Byzantine weight < 1/3; {ROUNDS}/{ROUNDS} accepted and delivered to every honest cluster; each Byzantine flagged by {honest}/{honest} honest, 0 false flags"
        )
    }
    fn deadline(&self) -> Duration {
        Duration::from_secs(20)
    }
    fn run<'a>(&'a self, d: &'a mut Demo) -> StepFuture<'a> {
        Box::pin(async move {
            let deadline = Instant::now() + self.deadline();
            let honest: Vec<usize> = (0..d.nodes.len())
                .filter(|i| !d.byzantine.contains(i))
                .collect();
            let byz_ids: BTreeSet<ClusterId> = d.byzantine.iter().map(|&i| d.ids[i]).collect();
            let mut events: Vec<_> = honest.iter().map(|&i| d.nodes[i].events()).collect();
            let mut received: Vec<_> = honest.iter().map(|&i| d.nodes[i].deliveries()).collect();
            for &i in &honest {
                d.nodes[i].subscribe("demo.byzantine").await;
            }
            for &i in &d.byzantine {
                d.nodes[i]
                    .set_byzantine_for_demo(Some(Byzantine::EquivocateVotes))
                    .await;
            }
            d.wait_for_subscribers(TOPIC, honest.len(), deadline).await;

            let origin = &d.nodes[0];
            let mut outcomes = origin.deliveries();
            let mut keys = Vec::new();
            for r in 0..ROUNDS {
                origin
                    .publish(
                        TOPIC,
                        Guarantee::ByzantineQuorum,
                        format!("order {r}").into_bytes(),
                    )
                    .await;
            }
            let mut decided: BTreeMap<MessageKey, QuorumOutcome> = BTreeMap::new();
            while decided.len() < ROUNDS {
                let Ok(got) = tokio::time::timeout_at(deadline.into(), outcomes.recv()).await
                else {
                    break;
                };
                match got {
                    Ok(Delivery::Published { key, .. }) => keys.push(key),
                    Ok(Delivery::QuorumDecided { key, outcome, .. }) => {
                        decided.insert(key, outcome);
                    }
                    Ok(Delivery::PublishRefused { reason, .. }) => {
                        progress::note(&format!("publish refused: {reason}"));
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
            let accepted = decided
                .values()
                .filter(|o| **o == QuorumOutcome::Accepted)
                .count();
            progress::note(&format!(
                "{} of {ROUNDS} rounds decided at {}: {accepted} accepted",
                decided.len(),
                d.names[0]
            ));

            // Every honest cluster: the messages it delivered, whom it flagged.
            let mut flagged = vec![BTreeSet::<ClusterId>::new(); honest.len()];
            let mut delivered = vec![BTreeSet::<MessageKey>::new(); honest.len()];
            let done = |f: &[BTreeSet<ClusterId>], dl: &[BTreeSet<MessageKey>]| {
                f.iter().all(|f| byz_ids.is_subset(f)) && dl.iter().all(|dl| dl.len() >= accepted)
            };
            while !done(&flagged, &delivered) && Instant::now() < deadline {
                for h in 0..honest.len() {
                    while let Ok(e) = events[h].try_recv() {
                        if let Event::SignerFlagged { signer, .. } = e {
                            flagged[h].insert(signer);
                        }
                    }
                    while let Ok(m) = received[h].try_recv() {
                        if let Delivery::Message(e) = m
                            && e.topic.as_str() == TOPIC
                        {
                            delivered[h].insert(e.key);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
            }
            let mut flagged_by: BTreeMap<ClusterId, usize> = BTreeMap::new();
            let mut false_flags = 0;
            for (h, f) in flagged.iter().enumerate() {
                false_flags += f.difference(&byz_ids).count();
                for id in f.intersection(&byz_ids) {
                    *flagged_by.entry(*id).or_default() += 1;
                }
                progress::note(&format!(
                    "{} delivered {} message(s), flagged [{}]",
                    d.names[honest[h]],
                    delivered[h].len(),
                    f.iter()
                        .map(|id| d.name_of(id))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let delivered_min = delivered.iter().map(BTreeSet::len).min().unwrap_or(0);
            for &i in &d.byzantine {
                d.nodes[i].set_byzantine_for_demo(None).await;
            }
            let min_flagged = byz_ids
                .iter()
                .map(|id| flagged_by.get(id).copied().unwrap_or(0))
                .min()
                .unwrap_or(honest.len());
            // The guarantees hold only while faulty weight is under a third
            // of the current epoch's total: outside that, whatever was
            // observed, the step does not hold.
            let roster = d.nodes[0].status().roster;
            let byz_weight: u64 = roster
                .members
                .iter()
                .filter(|m| byz_ids.contains(&m.id))
                .map(|m| m.weight)
                .sum();
            let tolerated = u128::from(byz_weight) * 3 < u128::from(roster.total_weight);
            let held = tolerated
                && accepted == ROUNDS
                && delivered_min >= ROUNDS
                && min_flagged == honest.len()
                && false_flags == 0;
            Ok(Observed::new(
                held,
                format!(
                    "Byzantine weight {byz_weight}/{} ({}); {accepted}/{ROUNDS} accepted, ≥ {delivered_min} delivered at every honest cluster; flagged by {min_flagged}/{}, {false_flags} false flags",
                    roster.total_weight,
                    if tolerated { "< 1/3" } else { "NOT < 1/3" },
                    honest.len()
                ),
            ))
        })
    }
}

/// `fedmesh verify` over every cluster's vote log.
pub struct Verify;

impl Step for Verify {
    fn name(&self) -> &'static str {
        "verify all vote logs"
    }
    fn narration(&self, d: &Demo) -> String {
        format!(
            "The clusters stop (sealing their vote logs); every log is checked offline against the genesis roster, as `fedmesh verify {}/data/*/{VOTE_LOG_FILE} --roster {}` does.",
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
            d.shutdown().await;
            let logs: Vec<_> = d
                .names
                .iter()
                .map(|n| d.out.join(format!("data/{n}/{VOTE_LOG_FILE}")))
                .filter(|p| p.exists())
                .collect();
            if logs.len() != d.names.len() {
                return Ok(Observed::new(
                    false,
                    format!("{} of {} vote logs found", logs.len(), d.names.len()),
                ));
            }
            d.vote_logs = logs;
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
