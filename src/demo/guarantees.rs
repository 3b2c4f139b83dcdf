//! The delivery step: one message under each of the five guarantees, over
//! the mesh, to every other cluster's subscription.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::{Demo, Observed, Step, StepFuture, progress};
use crate::proto::core::{Delivery, PublishOptions, QuorumOutcome};
use crate::proto::delivery::{DestStatus, Guarantee, MessageKey};

const PATTERN: &str = "demo.orders.#";

/// Each guarantee delivers, once, to every subscribed cluster.
pub struct Guarantees;

impl Step for Guarantees {
    fn name(&self) -> &'static str {
        "five guarantees"
    }
    fn narration(&self, d: &Demo) -> String {
        format!(
            "Every cluster but {} subscribes to {PATTERN}; {} publishes one order under each guarantee. FIRE_AND_FORGET is sent once; AT_LEAST_ONCE and BROADCAST are retried until every destination acknowledges; GLOBAL_QUORUM and BYZANTINE_QUORUM are decided by signed votes and delivered with their certificate.",
            d.names[0], d.names[0]
        )
    }
    fn expected(&self, d: &Demo) -> String {
        let n = d.names.len() - 1;
        format!(
            "5/5 delivered once at each of {n} subscribers; BROADCAST acked by {n}/{n}; both quorum rounds accepted"
        )
    }
    fn deadline(&self) -> Duration {
        Duration::from_secs(15)
    }
    fn run<'a>(&'a self, d: &'a mut Demo) -> StepFuture<'a> {
        Box::pin(async move {
            let deadline = Instant::now() + self.deadline();
            let subscribers: Vec<usize> = (1..d.nodes.len()).collect();
            let mut received: Vec<_> = subscribers
                .iter()
                .map(|&i| d.nodes[i].deliveries())
                .collect();
            for &i in &subscribers {
                d.nodes[i].subscribe(PATTERN).await;
            }
            let known = d
                .wait_for_subscribers("demo.orders.x", subscribers.len(), deadline)
                .await;
            progress::note(&format!(
                "{} knows {known} subscriber(s) of {PATTERN}",
                d.names[0]
            ));
            let origin = &d.nodes[0];
            let mut outcomes = origin.deliveries();
            let mut keys: BTreeMap<MessageKey, Guarantee> = BTreeMap::new();
            for g in Guarantee::ALL {
                let topic = format!("demo.orders.{}", g.name().to_lowercase());
                let payload = format!("one order, {}", g.name()).into_bytes();
                match origin
                    .publish_with(&topic, g, payload, PublishOptions::default())
                    .await
                {
                    Ok(p) => {
                        keys.insert(p.key, g);
                    }
                    Err(e) => progress::note(&format!("{} refused: {e}", g.name())),
                }
            }
            let broadcast = keys
                .iter()
                .find(|(_, g)| **g == Guarantee::Broadcast)
                .map(|(k, _)| *k);
            if let Some(key) = broadcast
                && let Some(status) = origin.message_status(key).await
            {
                let pending = status
                    .iter()
                    .filter(|(_, s)| matches!(s, DestStatus::Pending { .. }))
                    .count();
                progress::note(&format!(
                    "BROADCAST per-destination status just after publishing: {pending} pending, {} acked",
                    status.len() - pending
                ));
            }
            // Deliveries per subscriber and guarantee; quorum outcomes at the origin.
            let mut got: Vec<BTreeMap<Guarantee, u32>> = vec![BTreeMap::new(); subscribers.len()];
            let mut decided: BTreeMap<Guarantee, QuorumOutcome> = BTreeMap::new();
            let quorum_rounds = keys.values().filter(|g| g.vote_kind().is_some()).count();
            let all_in = |got: &[BTreeMap<Guarantee, u32>], decided: &BTreeMap<_, _>| {
                decided.len() == quorum_rounds
                    && got.iter().all(|m| keys.values().all(|g| m.contains_key(g)))
            };
            while !all_in(&got, &decided) && Instant::now() < deadline {
                for (s, rx) in received.iter_mut().enumerate() {
                    while let Ok(m) = rx.try_recv() {
                        if let Delivery::Message(e) = m
                            && let Some(g) = keys.get(&e.key)
                        {
                            *got[s].entry(*g).or_default() += 1;
                        }
                    }
                }
                while let Ok(o) = outcomes.try_recv() {
                    if let Delivery::QuorumDecided { key, outcome, .. } = o
                        && let Some(g) = keys.get(&key)
                    {
                        decided.insert(*g, outcome);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
            }
            // Every BROADCAST destination acknowledged once its status is gone.
            let acked = match broadcast {
                Some(key) => {
                    let mut status = origin.message_status(key).await;
                    while status.is_some() && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
                        status = origin.message_status(key).await;
                    }
                    match status {
                        None => subscribers.len(),
                        Some(s) => s.iter().filter(|(_, st)| *st == DestStatus::Acked).count(),
                    }
                }
                None => 0,
            };
            let mut lines = Vec::new();
            let mut held = keys.len() == Guarantee::ALL.len() && acked == subscribers.len();
            for g in Guarantee::ALL {
                let once = got.iter().filter(|m| m.get(&g).copied() == Some(1)).count();
                let extra = got
                    .iter()
                    .filter(|m| m.get(&g).copied().unwrap_or(0) > 1)
                    .count();
                held &= once == subscribers.len() && extra == 0;
                let quorum = match decided.get(&g) {
                    Some(o) => format!(", round {o:?}"),
                    None if g.vote_kind().is_some() => {
                        held = false;
                        ", round undecided".to_owned()
                    }
                    None => String::new(),
                };
                if g.vote_kind().is_some() && decided.get(&g) != Some(&QuorumOutcome::Accepted) {
                    held = false;
                }
                progress::note(&format!(
                    "{:<16} delivered once at {once}/{} subscribers{quorum}",
                    g.name(),
                    subscribers.len()
                ));
                lines.push(format!("{} {once}", short(g)));
            }
            let n = subscribers.len();
            Ok(Observed::new(
                held,
                format!(
                    "once at [{}] of {n}; BROADCAST acked by {acked}/{n}; quorum: {}",
                    lines.join(", "),
                    decided
                        .values()
                        .map(|o| format!("{o:?}"))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
                        .join("/")
                ),
            ))
        })
    }
}

/// A short label for the summary table.
fn short(g: Guarantee) -> &'static str {
    match g {
        Guarantee::FireAndForget => "FF",
        Guarantee::AtLeastOnce => "ALO",
        Guarantee::Broadcast => "BC",
        Guarantee::GlobalQuorum => "GQ",
        Guarantee::ByzantineQuorum => "BQ",
    }
}
