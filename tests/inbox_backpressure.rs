//! A subscriber slower than its publisher: the smallest inbox, many more
//! messages than it holds, and a consumer that stalls now and then. The
//! receiving node must wait for room (backpressure through its commit
//! pipeline: room is reserved before a commit, the commit thread hands the
//! messages off), never drop or repeat one, and never deadlock.

use std::time::Duration;

use fedmesh::node::{MIN_INBOX_CAPACITY, Node, NodeOptions};
use fedmesh::proto::delivery::Guarantee;

mod support;

const N: u64 = 3_000;
const TOPIC: &str = "slow.x";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_gets_every_message_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let ids = support::write_keys_and_roster(root, 2, "slow");
    let a = support::start_neighbour(root, 0, &[1], vec![], None).await;
    let config = support::neighbour_config(root, 1, &[0], vec![a.local_addr()], 200);
    let b = Node::start_with_inbox(config, NodeOptions::default(), MIN_INBOX_CAPACITY)
        .await
        .expect("node starts");
    let mut inbox = b.take_inbox().expect("inbox");
    assert!(b.subscribe("slow.#").await);
    assert!(
        support::until_status(&a, Duration::from_secs(20), |s| s
            .subscribers_of(TOPIC)
            .contains(&ids[1]))
        .await,
        "A never learned B's subscription"
    );
    // Everything at once: far more than the inbox holds.
    for n in 0..N {
        assert!(
            a.publish(TOPIC, Guarantee::AtLeastOnce, n.to_be_bytes().to_vec())
                .await
        );
    }
    let mut got = Vec::with_capacity(N as usize);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while (got.len() as u64) < N {
        let e = tokio::time::timeout_at(deadline, inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out with {} of {N} received", got.len()))
            .expect("B runs");
        let n = u64::from_be_bytes(e.payload[..8].try_into().expect("8 bytes"));
        got.push(n);
        if got.len() % 500 == 0 {
            // A stalled consumer: the inbox fills and B must wait for it.
            assert!(inbox.len() <= MIN_INBOX_CAPACITY);
            tokio::time::sleep(Duration::from_millis(50)).await; // the stall being tested
        }
    }
    let want: Vec<u64> = (0..N).collect();
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, want, "every message exactly once");
    assert!(
        support::until_status(&a, Duration::from_secs(20), |s| s.delivery.outbox_depth
            == 0)
        .await,
        "A's outbox never drained"
    );
    a.shutdown().await;
    b.shutdown().await;
}
