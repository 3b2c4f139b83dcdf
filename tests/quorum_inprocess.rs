//! BYZANTINE_QUORUM over real QUIC with five in-process nodes: messages a
//! quorum accepts are certified and reach every subscriber exactly once;
//! messages two of five refuse (60 % < 2/3) are rejected and reach no one.
//! Afterwards every node's vote log passes `verify`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    let mut rx: Vec<_> = nodes.iter().map(NodeHandle::deliveries).collect();
    let mut got: Vec<Vec<Delivery>> = vec![Vec::new(); N];

    // Until every node routes to every other and node 0 sees all five
    // subscriptions (a fire-and-forget publish names its destinations).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "mesh never formed");
        assert!(
            nodes[0]
                .publish("q.warmup", Guarantee::FireAndForget, vec![])
                .await
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // poll interval
        support::drain_deliveries(&mut rx[0], &mut got[0]);
        let routed = nodes.iter().all(|n| n.routes().len() == N - 1);
        if routed
            && got[0]
                .iter()
                .any(|d| matches!(d, Delivery::Published { dests, .. } if dests.len() == N))
        {
            break;
        }
    }
    for g in &mut got {
        g.clear();
    }
    for (i, r) in rx.iter_mut().enumerate() {
        support::drain_deliveries(r, &mut got[i]);
        got[i].clear();
    }

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
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for i in 0..N {
            support::drain_deliveries(&mut rx[i], &mut got[i]);
            for d in got[i].drain(..) {
                match d {
                    Delivery::QuorumDecided { key, outcome, .. } => {
                        decided.insert((i, key.id), outcome);
                    }
                    Delivery::Message(e) if e.guarantee == Guarantee::ByzantineQuorum => {
                        *messages[i]
                            .entry((e.topic.as_str().to_owned(), e.payload.clone()))
                            .or_default() += 1;
                    }
                    _ => {}
                }
            }
        }
        let all_in = messages.iter().all(|m| m.len() >= GOOD);
        if (decided.len() >= GOOD + BAD && all_in) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
    // Let any stray delivery of a rejected message show up.
    tokio::time::sleep(Duration::from_millis(300)).await; // grace for a wrong delivery
    for i in 0..N {
        support::drain_deliveries(&mut rx[i], &mut got[i]);
        for d in got[i].drain(..) {
            if let Delivery::Message(e) = d
                && e.guarantee == Guarantee::ByzantineQuorum
            {
                *messages[i]
                    .entry((e.topic.as_str().to_owned(), e.payload.clone()))
                    .or_default() += 1;
            }
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
