//! The data path over real QUIC with in-process nodes on a chain A–B–C and
//! 5% injected packet loss: AT_LEAST_ONCE and BROADCAST messages published
//! on A reach both subscribers B and C, each exactly once, and every
//! destination acknowledges. (Crashes and restarts: `delivery_durable.rs`.)

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use fedmesh::net::FaultControl;
use fedmesh::node::NodeHandle;
use fedmesh::proto::ClusterId;
use fedmesh::proto::core::Delivery;
use fedmesh::proto::delivery::Guarantee;

mod support;

fn mesh(root: &Path, n: usize) -> Vec<ClusterId> {
    support::write_keys_and_roster(root, n, "data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_and_broadcast_reach_every_subscriber_exactly_once_under_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let ids = mesh(root, 3);
    let mut nodes: Vec<NodeHandle> = Vec::new();
    let mut faults = Vec::new();
    for i in 0..3usize {
        let neighbours: Vec<usize> = [i.checked_sub(1), Some(i + 1).filter(|&j| j < 3)]
            .into_iter()
            .flatten()
            .collect();
        let seeds = nodes
            .last()
            .map(NodeHandle::local_addr)
            .into_iter()
            .collect();
        let f = FaultControl::new(i as u64);
        faults.push(f.clone());
        nodes.push(support::start_neighbour(root, i, &neighbours, seeds, Some(f)).await);
    }
    for n in &nodes[1..] {
        assert!(n.subscribe("orders.#").await);
    }
    let mut rx = support::merge_deliveries(&nodes);

    // Wait until A knows both subscriptions (gossiped in their records).
    assert!(
        support::until_status(&nodes[0], Duration::from_secs(20), |s| {
            s.subscribers_of("orders.x").len() == 2
        })
        .await,
        "A never saw both subscribers"
    );
    for f in &faults {
        f.set_loss(0.05);
    }

    const N: u64 = 500;
    let mut published = BTreeMap::new();
    for n in 0..N {
        let g = if n % 2 == 0 {
            Guarantee::AtLeastOnce
        } else {
            Guarantee::Broadcast
        };
        assert!(
            nodes[0]
                .publish("orders.eu", g, n.to_be_bytes().to_vec())
                .await
        );
    }
    let mut counts: [BTreeMap<u64, u32>; 2] = Default::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !counts.iter().all(|c| c.len() as u64 >= N) {
        let Ok(Some((at, d))) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            break;
        };
        match d {
            Delivery::Message(e) if at > 0 && e.guarantee != Guarantee::FireAndForget => {
                *counts[at - 1].entry(e.key.id).or_default() += 1;
            }
            Delivery::Published { key, dests } if at == 0 && dests.len() == 2 => {
                published.insert(key.id, dests);
            }
            _ => {}
        }
    }
    for (k, c) in counts.iter().enumerate() {
        assert_eq!(
            c.len() as u64,
            N,
            "subscriber {} got {} of {N}",
            k + 1,
            c.len()
        );
        assert!(c.values().all(|&n| n == 1), "a message was processed twice");
    }
    assert_eq!(
        published.len() as u64,
        N,
        "every publish named both destinations"
    );
    let dropped: u64 = faults.iter().map(|f| f.stats().lost).sum();
    assert!(dropped > 0, "loss was injected");
    for n in nodes {
        n.shutdown().await;
    }
    assert!(
        published
            .values()
            .all(|d| d.contains(&ids[1]) && d.contains(&ids[2]))
    );
}
