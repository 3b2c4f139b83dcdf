//! The data path over real QUIC with in-process nodes on a chain A–B–C and
//! 5% injected packet loss: AT_LEAST_ONCE and BROADCAST messages published
//! on A reach both subscribers B and C, each exactly once, and every
//! destination acknowledges. (Crashes and restarts: `delivery_durable.rs`.)

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

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
    let mut at_a = nodes[0].deliveries();
    let mut at_b = nodes[1].deliveries();
    let mut at_c = nodes[2].deliveries();

    // Wait until A sees both subscriptions (fire-and-forget probes of the
    // registry: their Published lists the destinations).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "A never saw both subscribers: {seen:?}"
        );
        assert!(
            nodes[0]
                .publish("orders.warmup", Guarantee::FireAndForget, vec![])
                .await
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // poll interval
        support::drain_deliveries(&mut at_a, &mut seen);
        if seen
            .iter()
            .any(|d| matches!(d, Delivery::Published { dests, .. } if dests.len() == 2))
        {
            break;
        }
    }
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
    let (mut got_a, mut got_b, mut got_c) = (Vec::new(), Vec::new(), Vec::new());
    let mut counts: [BTreeMap<u64, u32>; 2] = Default::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        support::drain_deliveries(&mut at_a, &mut got_a);
        support::drain_deliveries(&mut at_b, &mut got_b);
        support::drain_deliveries(&mut at_c, &mut got_c);
        for (k, got) in [&mut got_b, &mut got_c].into_iter().enumerate() {
            for d in got.drain(..) {
                if let Delivery::Message(e) = d
                    && e.guarantee != Guarantee::FireAndForget
                {
                    *counts[k].entry(e.key.id).or_default() += 1;
                }
            }
        }
        for d in got_a.drain(..) {
            if let Delivery::Published { key, dests } = d
                && dests.len() == 2
            {
                published.insert(key.id, dests);
            }
        }
        let done = counts.iter().all(|c| c.len() as u64 >= N);
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
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
