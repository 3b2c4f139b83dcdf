//! BYZANTINE_QUORUM over real QUIC with five in-process nodes: messages a
//! quorum accepts are certified and reach every subscriber exactly once;
//! messages two of five refuse (60 % < 2/3) are rejected and reach no one.
//! Afterwards every node's vote log passes `verify`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fedmesh::node::{NodeHandle, VOTE_LOG_FILE};
use fedmesh::proto::core::{Delivery, QuorumOutcome};
use fedmesh::proto::delivery::Guarantee;

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byzantine_quorum_delivers_only_certified_messages() {
    const N: usize = 5;
    const GOOD: usize = 20;
    const BAD: usize = 5;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    support::write_keys_and_roster(root, N, "quorum");
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..N {
        let seeds = nodes
            .first()
            .map(NodeHandle::local_addr)
            .into_iter()
            .collect();
        let neighbours: Vec<usize> = (0..N).filter(|j| *j != i).collect();
        nodes.push(support::start_neighbour(root, i, &neighbours, seeds, None).await);
    }
    for n in &nodes {
        assert!(n.subscribe("q.#").await);
    }
    for n in &nodes[3..] {
        assert!(n.refuse_quorum_topic("q.bad").await);
    }
    // Until every node routes to every other and node 0 knows all five
    // subscriptions (gossiped in their records).
    for (i, n) in nodes.iter().enumerate() {
        let ready = support::until_status(n, Duration::from_secs(30), |s| {
            s.routes.len() == N - 1 && (i != 0 || s.subscribers_of("q.x").len() == N)
        })
        .await;
        assert!(ready, "mesh never formed at node {i}");
    }
    let mut rx = support::merge_deliveries(&nodes);

    for k in 0..GOOD {
        let origin = k % 2;
        assert!(
            nodes[origin]
                .publish("q.good", Guarantee::ByzantineQuorum, vec![k as u8])
                .await
        );
    }
    for k in 0..BAD {
        assert!(
            nodes[0]
                .publish("q.bad", Guarantee::ByzantineQuorum, vec![k as u8])
                .await
        );
    }

    let mut decided: BTreeMap<(usize, u64), QuorumOutcome> = BTreeMap::new();
    let mut messages: Vec<BTreeMap<(String, Vec<u8>), u32>> = vec![BTreeMap::new(); N];
    // A last accepted message, published once everything else is decided:
    // once every node delivered it, a stray delivery of a rejected message
    // would have arrived before it on the same links.
    let mut barrier_sent = false;
    let mut barrier_at = [false; N];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all_in = messages.iter().all(|m| m.len() >= GOOD);
        if decided.len() >= GOOD + BAD && all_in && !barrier_sent {
            assert!(
                nodes[0]
                    .publish("q.barrier", Guarantee::ByzantineQuorum, vec![])
                    .await
            );
            barrier_sent = true;
        }
        if barrier_at.iter().all(|b| *b) {
            break;
        }
        let Ok(Some((i, d))) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            break;
        };
        match d {
            Delivery::QuorumDecided { key, outcome, .. } if barrier_sent => {
                assert_eq!(outcome, QuorumOutcome::Accepted, "the barrier {key:?}");
            }
            Delivery::QuorumDecided { key, outcome, .. } => {
                decided.insert((i, key.id), outcome);
            }
            Delivery::Message(e) if e.topic.as_str() == "q.barrier" => barrier_at[i] = true,
            Delivery::Message(e) if e.guarantee == Guarantee::ByzantineQuorum => {
                *messages[i]
                    .entry((e.topic.as_str().to_owned(), e.payload.clone()))
                    .or_default() += 1;
            }
            _ => {}
        }
    }
    let accepted = decided
        .values()
        .filter(|o| **o == QuorumOutcome::Accepted)
        .count();
    let rejected = decided
        .values()
        .filter(|o| **o == QuorumOutcome::Rejected)
        .count();
    assert_eq!((accepted, rejected), (GOOD, BAD), "{decided:?}");
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m.len(), GOOD, "node {i} got {m:?}");
        assert!(m.keys().all(|(t, _)| t == "q.good"), "node {i}: {m:?}");
        assert!(m.values().all(|c| *c == 1), "node {i}: a duplicate");
    }
    for n in nodes {
        n.shutdown().await;
    }
    let roster = Arc::new(
        fedmesh::store::genesis::load_roster_file(&root.join("roster.toml")).expect("roster"),
    );
    let logs: Vec<_> = (0..N)
        .map(|i| root.join(format!("data/n{i}")).join(VOTE_LOG_FILE))
        .collect();
    let report = fedmesh::audit::verify_logs(roster, &logs, Default::default());
    for l in &report.logs {
        assert!(l.is_valid(), "{l:?}");
        assert!(l.counts.certificates > 0, "{l:?}");
    }
    assert!(report.flagged.is_empty(), "{:?}", report.flagged);
}
