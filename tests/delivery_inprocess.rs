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

/// Publishes awaiting their answers, sent at once from many tasks, are fed
/// to the node together (one flush, one commit, one data batch): each task
/// still gets the answer of its own message (a refusal only for its own
/// bad topic), and each message arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_answered_publishes_gets_each_its_own_answer() {
    use fedmesh::node::PublishError;
    use fedmesh::proto::core::PublishOptions;
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    mesh(root, 2);
    let a = support::start_neighbour(root, 0, &[1], vec![], None).await;
    let b = support::start_neighbour(root, 1, &[0], vec![a.local_addr()], None).await;
    assert!(b.subscribe("burst.#").await);
    assert!(
        support::until_status(&a, Duration::from_secs(20), |s| {
            s.subscribers_of("burst.x").len() == 1
        })
        .await,
        "A never saw B's subscription"
    );
    let mut arrived = b.deliveries();
    let a = Arc::new(a);
    const N: u64 = 300;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let a = a.clone();
        // Every tenth one names a topic with an empty segment.
        let topic = if i % 10 == 3 { "burst..x" } else { "burst.x" };
        tasks.spawn(async move {
            let answer = a
                .publish_with(
                    topic,
                    Guarantee::AtLeastOnce,
                    i.to_be_bytes().to_vec(),
                    PublishOptions::default(),
                )
                .await;
            (i, answer)
        });
    }
    // The answer each task got: message id → the payload it published.
    let mut answered = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, answer) = joined.expect("task");
        if i % 10 == 3 {
            assert!(
                matches!(answer, Err(PublishError::Refused(_))),
                "publish {i} to a bad topic: {answer:?}"
            );
            continue;
        }
        let published = answer.unwrap_or_else(|e| panic!("publish {i}: {e}"));
        assert_eq!(published.dests, [b.id()], "sent to B");
        assert!(
            answered.insert(published.key.id, i).is_none(),
            "two answers named message {}",
            published.key.id
        );
    }
    assert_eq!(answered.len() as u64, N - N / 10);
    let mut seen = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < answered.len() {
        let Ok(Ok(d)) = tokio::time::timeout_at(deadline, arrived.recv()).await else {
            break;
        };
        if let Delivery::Message(e) = d {
            let payload = <[u8; 8]>::try_from(e.payload.as_slice()).expect("8-byte payload");
            assert!(
                seen.insert(e.key.id, u64::from_be_bytes(payload)).is_none(),
                "message {} arrived twice",
                e.key.id
            );
        }
    }
    assert_eq!(
        seen, answered,
        "each answer names the message its task sent"
    );
    let a = Arc::into_inner(a).expect("no task holds A");
    a.shutdown().await;
    b.shutdown().await;
}
