//! In-process meshes through the public embedding API: partitions and
//! healing under a fault-injecting socket, Hello refusals, and garbage from
//! an authenticated peer.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedmesh::config::{NodeConfig, SeedAddr};
use fedmesh::http::MemberState;
use fedmesh::net::{FaultControl, LinkEvent, Priority, Transport, TransportOptions};
use fedmesh::node::{Node, NodeHandle, NodeOptions};
use fedmesh::proto::membership::event::Event;
use fedmesh::proto::roster::{Member, Roster};
use fedmesh::proto::wire::{self, Frame, PROTOCOL_VERSION};
use fedmesh::proto::{ClusterId, Identity};
use fedmesh::store::genesis::write_roster_file;
use fedmesh::store::keys::{generate_key_files, load_tls_material};
use tokio::sync::mpsc;

struct Mesh {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    ids: Vec<ClusterId>,
}

/// `keys` key pairs, the first `members` of them in a roster named `network`.
fn mesh(keys: usize, members: usize, network: &str) -> Mesh {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_owned();
    let ids: Vec<ClusterId> = (0..keys)
        .map(|i| {
            generate_key_files(&format!("n{i}"), &root.join("certs"), false)
                .expect("keygen")
                .cluster_id
        })
        .collect();
    let roster = Roster::genesis(
        network,
        ids.iter()
            .take(members)
            .enumerate()
            .map(|(i, id)| Member {
                id: *id,
                name: format!("n{i}"),
                weight: 1,
            })
            .collect(),
    )
    .expect("roster");
    write_roster_file(&root.join("roster.toml"), &roster, true).expect("write roster");
    Mesh {
        _dir: dir,
        root,
        ids,
    }
}

fn config(root: &Path, i: usize, seed: Option<SocketAddr>) -> NodeConfig {
    NodeConfig {
        key: root.join(format!("certs/n{i}.key")),
        listen: "127.0.0.1:0".parse().expect("addr"),
        seeds: seed
            .map(|addr| SeedAddr { addr, id: None })
            .into_iter()
            .collect(),
        roster: root.join("roster.toml"),
        data_dir: root.join(format!("data/n{i}")),
        admin: None,
        ..NodeConfig::default()
    }
}

async fn start(
    root: &Path,
    i: usize,
    seed: Option<SocketAddr>,
    faults: Option<Arc<FaultControl>>,
) -> NodeHandle {
    let options = NodeOptions {
        faults,
        rng_seed: Some(i as u64),
    };
    Node::start_with(config(root, i, seed), options)
        .await
        .expect("node starts")
}

/// Polls `f` every 50 ms until it holds or `within` passes.
async fn until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
    f()
}

fn state_of(node: &NodeHandle, id: &ClusterId) -> Option<MemberState> {
    node.members().iter().find(|m| m.id == *id).map(|m| m.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_three_partition_is_detected_and_heals() {
    let m = mesh(5, 5, "partition");
    let mut nodes = Vec::new();
    let mut faults = Vec::new();
    for i in 0..5 {
        let f = FaultControl::new(i as u64);
        let seed = nodes.first().map(NodeHandle::local_addr);
        nodes.push(start(&m.root, i, seed, Some(f.clone())).await);
        faults.push(f);
    }
    let all_alive = |nodes: &[NodeHandle]| {
        nodes.iter().all(|n| {
            m.ids
                .iter()
                .all(|id| state_of(n, id) == Some(MemberState::Alive))
        })
    };
    assert!(
        until(Duration::from_secs(5), || all_alive(&nodes)).await,
        "no convergence"
    );

    let (left, right) = (0..2, 2..5);
    for a in left.clone() {
        for b in right.clone() {
            faults[a].block(nodes[b].local_addr());
            faults[b].block(nodes[a].local_addr());
        }
    }
    let t = Instant::now();
    let split = until(Duration::from_secs(15), || {
        left.clone().all(|a| {
            right
                .clone()
                .all(|b| state_of(&nodes[a], &m.ids[b]) == Some(MemberState::Dead))
        }) && right.clone().all(|b| {
            left.clone()
                .all(|a| state_of(&nodes[b], &m.ids[a]) == Some(MemberState::Dead))
        })
    })
    .await;
    assert!(split, "each side should mark the other dead");
    println!("partition detected on both sides in {:?}", t.elapsed());
    // Each side still sees itself alive.
    assert!(right.clone().all(|b| {
        right
            .clone()
            .all(|c| state_of(&nodes[b], &m.ids[c]) == Some(MemberState::Alive))
    }));

    for f in &faults {
        f.unblock_all();
    }
    let t = Instant::now();
    assert!(
        until(Duration::from_secs(10), || all_alive(&nodes)).await,
        "not healed within 10 s: {:#?}",
        nodes[0].members()
    );
    println!("partition healed everywhere in {:?}", t.elapsed());
    for n in nodes {
        n.shutdown().await;
    }
}

async fn wait_event(
    rx: &mut tokio::sync::broadcast::Receiver<Event>,
    within: Duration,
    want: impl Fn(&Event) -> bool,
) -> Option<Event> {
    tokio::time::timeout(within, async {
        loop {
            match rx.recv().await {
                Ok(e) if want(&e) => return Some(e),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_network_is_refused_with_a_reason_on_both_sides() {
    let a = mesh(1, 1, "net-a");
    let b = mesh(1, 1, "net-b");
    let node_a = start(&a.root, 0, None, None).await;
    let mut events_a = node_a.events();
    let node_b = start(&b.root, 0, Some(node_a.local_addr()), None).await;
    let mut events_b = node_b.events();
    let refused = |e: &Event| match e {
        Event::Refused { reason, .. } | Event::Goodbye { reason, .. } => reason.contains("network"),
        _ => false,
    };
    let on_a = wait_event(&mut events_a, Duration::from_secs(5), refused).await;
    let on_b = wait_event(&mut events_b, Duration::from_secs(5), refused).await;
    assert!(on_a.is_some() && on_b.is_some(), "a: {on_a:?}, b: {on_b:?}");
    assert_eq!(node_a.members().len(), 1);
    node_a.shutdown().await;
    node_b.shutdown().await;
}

/// A raw authenticated connection to `addr` with the key of member `i`.
async fn raw_peer(
    root: &Path,
    i: usize,
    addr: SocketAddr,
) -> (Transport, fedmesh::net::Link, mpsc::Receiver<LinkEvent>) {
    let material = load_tls_material(
        &root.join(format!("certs/n{i}.crt")),
        &root.join(format!("certs/n{i}.key")),
    )
    .expect("material");
    let options = TransportOptions {
        queue_capacity: 16_384,
        ..TransportOptions::default()
    };
    let t =
        Transport::bind("127.0.0.1:0".parse().expect("addr"), &material, options).expect("bind");
    let link = t.connect(addr, None).await.expect("connect");
    let (tx, rx) = mpsc::channel(16_384);
    link.start(tx);
    (t, link, rx)
}

async fn closed_reason(rx: &mut mpsc::Receiver<LinkEvent>, within: Duration) -> Option<String> {
    tokio::time::timeout(within, async {
        while let Some(ev) = rx.recv().await {
            if let LinkEvent::Closed { reason, .. } = ev {
                return Some(reason.to_string());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

fn hello(root: &Path, i: usize, network: fedmesh::proto::NetworkId, version: u16) -> Vec<u8> {
    let pem = std::fs::read_to_string(root.join(format!("certs/n{i}.key"))).expect("key");
    let sender = Identity::from_pkcs8_pem(&pem).expect("identity").id();
    wire::encode(&Frame::Hello {
        protocol_version: version,
        network_id: network,
        sender,
        incarnation: 1,
        roster_epoch: 0,
    })
    .expect("encode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_from_an_authenticated_peer_closes_only_that_connection() {
    // n0 and n1 run; n2 is a member whose key the "attacker" uses.
    let m = mesh(3, 3, "garbage");
    let n0 = start(&m.root, 0, None, None).await;
    let n1 = start(&m.root, 1, Some(n0.local_addr()), None).await;
    assert!(
        until(Duration::from_secs(5), || state_of(&n0, &m.ids[1])
            == Some(MemberState::Alive))
        .await
    );
    let network = fedmesh::store::genesis::load_roster_file(&m.root.join("roster.toml"))
        .expect("roster")
        .network_id();

    // Another protocol version: refused with the reason.
    let (_t, link, mut rx) = raw_peer(&m.root, 2, n0.local_addr()).await;
    link.send(
        Priority::Gossip,
        hello(&m.root, 2, network, PROTOCOL_VERSION + 1),
    )
    .expect("send");
    let reason = closed_reason(&mut rx, Duration::from_secs(5)).await;
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("protocol version")),
        "{reason:?}"
    );

    // Random bytes that are no frame at all.
    let (_t, link, mut rx) = raw_peer(&m.root, 2, n0.local_addr()).await;
    link.send(Priority::Gossip, vec![0xff; 300]).expect("send");
    let reason = closed_reason(&mut rx, Duration::from_secs(5)).await;
    assert!(reason.is_some(), "garbage did not close the connection");

    // A valid Hello, then 10,000 frames in a burst, then garbage postcard.
    let (_t, link, mut rx) = raw_peer(&m.root, 2, n0.local_addr()).await;
    link.send(
        Priority::Gossip,
        hello(&m.root, 2, network, PROTOCOL_VERSION),
    )
    .expect("send");
    let syn = wire::encode(&Frame::Syn { digest: Vec::new() }).expect("encode");
    let mut sent = 0;
    for _ in 0..10_000 {
        if link.send(Priority::Gossip, syn.clone()).is_ok() {
            sent += 1;
        }
    }
    let mut bad = wire::encode(&Frame::Syn { digest: Vec::new() }).expect("encode");
    bad.insert(0, 0xee);
    let _ = link.send(Priority::Data, bad);
    let reason = closed_reason(&mut rx, Duration::from_secs(10)).await;
    println!("burst: {sent} frames queued; connection closed: {reason:?}");
    assert_eq!(sent, 10_000);
    assert!(
        reason.is_some(),
        "burst + garbage did not close the connection"
    );

    // The node is still serving its real peer.
    assert_eq!(state_of(&n0, &m.ids[1]), Some(MemberState::Alive));
    assert!(n0.links().iter().any(|l| l.peer == m.ids[1]));
    let hb = |n: &NodeHandle| {
        n.members()
            .iter()
            .find(|x| x.id == m.ids[1])
            .map(|x| x.incarnation)
    };
    assert!(hb(&n0).is_some());
    n1.shutdown().await;
    n0.shutdown().await;
}
