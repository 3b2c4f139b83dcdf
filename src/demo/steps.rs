//! The mesh steps (over real QUIC) and the list of every step, in order.

use std::time::{Duration, Instant};

use super::byzantine::{Equivocation, Verify};
use super::guarantees::Guarantees;
use super::{Demo, Observed, Step, StepFuture, progress};
use crate::http::MemberState;
use crate::proto::core::Delivery;
use crate::proto::roster_sync::RosterChange;

/// Every step, in the order the demo runs them.
pub fn all() -> Vec<Box<dyn Step>> {
    vec![
        Box::new(Join),
        Box::new(MultiHop),
        Box::new(Guarantees),
        Box::new(Partition),
        Box::new(WeightChange),
        Box::new(Equivocation),
        Box::new(Verify),
    ]
}

/// Clusters join through one seed and converge.
pub struct Join;

impl Step for Join {
    fn name(&self) -> &'static str {
        "join + converge"
    }
    fn narration(&self, d: &Demo) -> String {
        format!(
            "{} clusters start on 127.0.0.1 over QUIC; all know only the seed {} and learn the rest by gossip.",
            d.names.len(),
            d.names[0]
        )
    }
    fn expected(&self, d: &Demo) -> String {
        let n = d.names.len();
        format!("{n}/{n} alive at every cluster")
    }
    fn deadline(&self) -> Duration {
        Duration::from_secs(15)
    }
    fn run<'a>(&'a self, d: &'a mut Demo) -> StepFuture<'a> {
        Box::pin(async move {
            d.start_node(0, None).await?;
            let seed = d.nodes[0].local_addr();
            for i in 1..d.names.len() {
                d.start_node(i, Some(seed)).await?;
            }
            if let Some(admin) = d.nodes[0].admin_addr() {
                progress::note(&format!(
                    "status page of {}: http://{admin}/ (while the demo runs)",
                    d.names[0]
                ));
            }
            let converged = progress::until(self.deadline(), || d.all_alive()).await;
            let n = d.names.len();
            let worst = (0..d.nodes.len())
                .map(|a| {
                    (0..n)
                        .filter(|&b| d.state(a, b) == Some(MemberState::Alive))
                        .count()
                })
                .min()
                .unwrap_or(0);
            Ok(Observed::new(
                converged,
                format!("{worst}/{n} alive at the least informed cluster"),
            ))
        })
    }
}

/// A probe travels a route of two or more hops.
pub struct MultiHop;

impl MultiHop {
    fn ends(d: &Demo) -> (usize, usize) {
        (1, d.names.len() - 1)
    }
}

impl Step for MultiHop {
    fn name(&self) -> &'static str {
        "multi-hop route"
    }
    fn narration(&self, d: &Demo) -> String {
        let (a, b) = Self::ends(d);
        format!(
            "The link policy (membership.allowed_peers) lets {} link only with its chain neighbours and the seed, so {} and {} have no direct link: a probe must be forwarded.",
            d.names[a], d.names[a], d.names[b]
        )
    }
    fn expected(&self, d: &Demo) -> String {
        let (a, b) = Self::ends(d);
        format!("probe {}→{} delivered over 2+ hops", d.names[a], d.names[b])
    }
    fn deadline(&self) -> Duration {
        Duration::from_secs(10)
    }
    fn run<'a>(&'a self, d: &'a mut Demo) -> StepFuture<'a> {
        Box::pin(async move {
            let (a, b) = Self::ends(d);
            let (src, dst) = (d.nodes.get(a), d.nodes.get(b));
            let (Some(src), Some(dst)) = (src, dst) else {
                return Ok(Observed::new(false, "nodes not running"));
            };
            let dst_id = d.ids[b];
            let t = Instant::now();
            let routed = progress::until(self.deadline() / 2, || {
                src.routes().iter().any(|r| r.dst == dst_id)
            })
            .await;
            if !routed {
                return Ok(Observed::new(false, "no route"));
            }
            let direct = src.links().iter().any(|l| l.peer == dst_id);
            let mut rx = dst.deliveries();
            if !src
                .send_probe(dst_id, 1, b"hello over the mesh".to_vec())
                .await
            {
                return Ok(Observed::new(false, "probe not accepted for sending"));
            }
            let mut path = None;
            progress::until(self.deadline().saturating_sub(t.elapsed()), || {
                while let Ok(delivery) = rx.try_recv() {
                    if let Delivery::Probe { id: 1, path: p, .. } = delivery {
                        path = Some(p);
                    }
                }
                path.is_some()
            })
            .await;
            let Some(path) = path else {
                return Ok(Observed::new(false, "probe not delivered"));
            };
            let shown: Vec<String> = path.iter().map(|id| d.name_of(id)).collect();
            let hops = path.len().saturating_sub(1);
            progress::note(&format!("path taken: {}", shown.join(" → ")));
            Ok(Observed::new(
                hops >= 2 && !direct,
                format!("delivered via {} ({hops} hops)", shown.join("→")),
            ))
        })
    }
}

/// A partition is detected on both sides, then heals.
pub struct Partition;

impl Partition {
    /// The two sides: the first half (with the seed) and the rest.
    fn sides(d: &Demo) -> (Vec<usize>, Vec<usize>) {
        let n = d.names.len();
        ((0..n.div_ceil(2)).collect(), (n.div_ceil(2)..n).collect())
    }
}

impl Step for Partition {
    fn name(&self) -> &'static str {
        "partition + heal"
    }
    fn narration(&self, d: &Demo) -> String {
        let (l, r) = Self::sides(d);
        let side = |v: &[usize]| {
            v.iter()
                .map(|i| d.names[*i].as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "Every packet between {{{}}} and {{{}}} is dropped (fault injection in the UDP socket): each side's failure detector must declare the other dead; then the network heals.",
            side(&l),
            side(&r)
        )
    }
    fn expected(&self, _: &Demo) -> String {
        "each side sees the other dead, then all alive again".into()
    }
    fn deadline(&self) -> Duration {
        Duration::from_secs(25)
    }
    fn run<'a>(&'a self, d: &'a mut Demo) -> StepFuture<'a> {
        Box::pin(async move {
            if d.nodes.len() != d.names.len() {
                return Ok(Observed::new(false, "nodes not running"));
            }
            let (left, right) = Self::sides(d);
            for &a in &left {
                for &b in &right {
                    d.faults[a].block(d.nodes[b].local_addr());
                    d.faults[b].block(d.nodes[a].local_addr());
                }
            }
            let t = Instant::now();
            let split = |d: &Demo| {
                left.iter().all(|&a| {
                    right
                        .iter()
                        .all(|&b| d.state(a, b) == Some(MemberState::Dead))
                }) && right.iter().all(|&b| {
                    left.iter()
                        .all(|&a| d.state(b, a) == Some(MemberState::Dead))
                })
            };
            let detected = progress::until(Duration::from_secs(15), || split(d)).await;
            let detect_time = t.elapsed();
            progress::note(&format!(
                "partition {} on both sides after {:.1} s; healing",
                if detected { "detected" } else { "NOT detected" },
                detect_time.as_secs_f64()
            ));
            for f in &d.faults {
                f.unblock_all();
            }
            let t = Instant::now();
            let healed = progress::until(Duration::from_secs(10), || d.all_alive()).await;
            Ok(Observed::new(
                detected && healed,
                format!(
                    "detected both sides: {} ({:.1} s), healed: {} ({:.1} s)",
                    if detected { "yes" } else { "no" },
                    detect_time.as_secs_f64(),
                    if healed { "yes" } else { "no" },
                    t.elapsed().as_secs_f64()
                ),
            ))
        })
    }
}

/// A weight change decided by quorum over the mesh.
pub struct WeightChange;

impl Step for WeightChange {
    fn name(&self) -> &'static str {
        "weight change by quorum"
    }
    fn narration(&self, d: &Demo) -> String {
        format!(
            "{} proposes raising {}'s weight to 2; the clusters vote over the mesh and, once a quorum signed it, every cluster adopts the new roster epoch.",
            d.names[1], d.names[0]
        )
    }
    fn expected(&self, d: &Demo) -> String {
        format!("next epoch, {} weight 2, at every cluster", d.names[0])
    }
    fn deadline(&self) -> Duration {
        Duration::from_secs(15)
    }
    fn run<'a>(&'a self, d: &'a mut Demo) -> StepFuture<'a> {
        Box::pin(async move {
            let Some(proposer) = d.nodes.get(1) else {
                return Ok(Observed::new(false, "nodes not running"));
            };
            let target = d.ids[0];
            let before = proposer.roster().epoch;
            let proposal = proposer
                .propose_roster_change(RosterChange::SetWeight {
                    id: target,
                    weight: 2,
                })
                .await?;
            let epoch = match proposal.wait(Duration::from_secs(10)).await {
                Ok(epoch) => epoch,
                Err(e) => return Ok(Observed::new(false, format!("{e}"))),
            };
            progress::note(&format!("epoch {epoch} decided; waiting for every cluster"));
            let adopted = |d: &Demo| {
                d.nodes
                    .iter()
                    .filter(|n| {
                        let r = n.roster();
                        r.epoch == epoch
                            && r.members.iter().any(|m| m.id == target && m.weight == 2)
                    })
                    .count()
            };
            let all = progress::until(Duration::from_secs(5), || adopted(d) == d.nodes.len()).await;
            Ok(Observed::new(
                all && epoch > before,
                format!("epoch {epoch} at {}/{} clusters", adopted(d), d.nodes.len()),
            ))
        })
    }
}
