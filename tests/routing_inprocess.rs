//! Topology-aware routing over real QUIC, with in-process nodes whose link
//! policy allows only their neighbours: a chain A–B–C–D carries a probe
//! from A to D through B and C (and `fedmesh status` on A shows the path);
//! on a ring of five, cutting one link reroutes traffic the other way and
//! an at-least-once probe stream loses nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedmesh::config::{NodeConfig, TransportConfig};
use fedmesh::net::FaultControl;
use fedmesh::node::{Node, NodeHandle, NodeOptions};
use fedmesh::proto::ClusterId;
use fedmesh::proto::core::Delivery;
use fedmesh::proto::membership::event::Event;
use tokio::sync::broadcast;

mod support;

const GOSSIP_MS: u64 = 500;

struct Mesh {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    ids: Vec<ClusterId>,
}

fn mesh(n: usize, network: &str) -> Mesh {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_owned();
    let ids = support::write_keys_and_roster(&root, n, network);
    Mesh {
        _dir: dir,
        root,
        ids,
    }
}

/// Node `i`, allowed to link with `neighbours` only, seeded with `seeds`.
async fn start(
    root: &Path,
    i: usize,
    neighbours: &[usize],
    seeds: Vec<SocketAddr>,
    faults: Option<Arc<FaultControl>>,
) -> NodeHandle {
    let config = NodeConfig {
        // A cut link is noticed within about a second.
        transport: TransportConfig {
            keep_alive_ms: 200,
            idle_timeout_ms: 1_000,
            ..TransportConfig::default()
        },
        ..support::neighbour_config(root, i, neighbours, seeds, GOSSIP_MS)
    };
    let options = NodeOptions {
        faults,
        rng_seed: Some(i as u64),
    };
    Node::start_with(config, options)
        .await
        .expect("node starts")
}

/// Polls `f` every 20 ms until it holds or `within` passes.
async fn until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    }
    f()
}

fn path_of(node: &NodeHandle, dst: &ClusterId) -> Option<Vec<ClusterId>> {
    node.routes()
        .into_iter()
        .find(|r| r.dst == *dst)
        .map(|r| r.path)
}

/// Drains every delivery received so far.
fn drain(rx: &mut broadcast::Receiver<Delivery>, into: &mut Vec<Delivery>) {
    while let Ok(d) = rx.try_recv() {
        into.push(d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_travels_the_chain_and_status_shows_the_path() {
    let m = mesh(4, "chain");
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..4usize {
        let neighbours: Vec<usize> = [i.checked_sub(1), Some(i + 1).filter(|&j| j < 4)]
            .into_iter()
            .flatten()
            .collect();
        let seeds = nodes
            .last()
            .map(NodeHandle::local_addr)
            .into_iter()
            .collect();
        nodes.push(start(&m.root, i, &neighbours, seeds, None).await);
    }
    let expected = m.ids.clone();
    assert!(
        until(Duration::from_secs(15), || path_of(&nodes[0], &m.ids[3])
            == Some(expected.clone()))
        .await,
        "A has no route A→B→C→D: {:?}",
        nodes[0].routes()
    );
    // The policy held: only neighbours are linked.
    for (i, n) in nodes.iter().enumerate() {
        for l in n.links() {
            let j = m
                .ids
                .iter()
                .position(|id| *id == l.peer)
                .unwrap_or(usize::MAX);
            assert_eq!(i.abs_diff(j), 1, "n{i} is linked with n{j}");
        }
    }

    let mut at_d = nodes[3].deliveries();
    let mut at_a = nodes[0].deliveries();
    assert!(nodes[0].send_probe(m.ids[3], 42, b"hello D".to_vec()).await);
    let (mut got_d, mut got_a) = (Vec::new(), Vec::new());
    let arrived = until(Duration::from_secs(10), || {
        drain(&mut at_d, &mut got_d);
        drain(&mut at_a, &mut got_a);
        !got_d.is_empty() && !got_a.is_empty()
    })
    .await;
    assert!(
        arrived,
        "probe not delivered: at D {got_d:?}, at A {got_a:?}"
    );
    match &got_d[0] {
        Delivery::Probe {
            from,
            id,
            body,
            path,
        } => {
            assert_eq!(
                (*from, *id, body.as_slice()),
                (m.ids[0], 42, &b"hello D"[..])
            );
            assert_eq!(path, &expected, "the probe went A→B→C→D");
        }
        other => panic!("unexpected delivery at D: {other:?}"),
    }
    assert!(
        matches!(&got_a[0], Delivery::ProbeAcked { id: 42, dst, path, .. } if *dst == m.ids[3] && *path == expected),
        "{got_a:?}"
    );
    // B and C forwarded it and its ack (counters are published every round).
    assert!(
        until(Duration::from_secs(5), || {
            nodes[1..3]
                .iter()
                .all(|n| n.status().routing.forwarded >= 2)
        })
        .await,
        "B and C did not count their forwards"
    );

    // `fedmesh status` on A shows the route with its path.
    let admin = nodes[0].admin_addr().expect("admin on");
    let out = Command::new(env!("CARGO_BIN_EXE_fedmesh"))
        .args(["status", "--admin", &admin.to_string()])
        .output()
        .expect("fedmesh status runs");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with(&m.ids[3].short()) && l.contains('→'))
        .unwrap_or_else(|| panic!("no route row for D in\n{table}"));
    assert!(row.contains("n0→n1→n2→n3"), "{row}");
    assert!(row.contains(&m.ids[1].short()), "next hop B: {row}");

    // /metrics carries the route gauges (the recorder is process-wide, so
    // only their presence is checked).
    let metrics = ureq::get(format!("http://{admin}/metrics"))
        .call()
        .expect("GET /metrics")
        .body_mut()
        .read_to_string()
        .expect("metrics body");
    for name in [
        "fedmesh_routes ",
        "fedmesh_route_cost_seconds{dst=",
        "fedmesh_route_hops{dst=",
        "fedmesh_routed_forwarded_total",
        "fedmesh_routed_dropped_total{reason=\"loop\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_a_ring_link_reroutes_and_loses_no_probe() {
    const N: usize = 5;
    let m = mesh(N, "ring");
    let mut nodes: Vec<NodeHandle> = Vec::new();
    let mut faults = Vec::new();
    for i in 0..N {
        let neighbours = [(i + N - 1) % N, (i + 1) % N];
        let seeds = nodes
            .last()
            .map(NodeHandle::local_addr)
            .into_iter()
            .collect();
        let f = FaultControl::new(i as u64);
        nodes.push(start(&m.root, i, &neighbours, seeds, Some(f.clone())).await);
        faults.push(f);
    }
    // Node 4 also needs to find node 0 (its seed is node 3).
    let (src, dst) = (0, 2);
    let short = vec![m.ids[0], m.ids[1], m.ids[2]];
    let long = vec![m.ids[0], m.ids[4], m.ids[3], m.ids[2]];
    let ring_up = until(Duration::from_secs(20), || {
        nodes
            .iter()
            .all(|n| n.links().len() == 2 && n.routes().len() == N - 1)
            && path_of(&nodes[src], &m.ids[dst]) == Some(short.clone())
    })
    .await;
    assert!(
        ring_up,
        "ring not formed: {:?}",
        nodes.iter().map(|n| n.links().len()).collect::<Vec<_>>()
    );

    let mut at_dst = nodes[dst].deliveries();
    let mut at_src = nodes[src].deliveries();
    // The cut is noticed by whichever end's QUIC idle timer fires first.
    let mut events = [(nodes[1].events(), m.ids[2]), (nodes[2].events(), m.ids[1])];
    let (mut got_dst, mut got_src) = (Vec::new(), Vec::new());
    let mut sent = 0u64;
    let interval = Duration::from_millis(20);
    // Steady traffic before the cut.
    for _ in 0..25 {
        assert!(nodes[src].send_probe(m.ids[dst], sent, vec![0; 64]).await);
        sent += 1;
        tokio::time::sleep(interval).await; // the probe stream's pace
    }
    // Cut 1–2 in both directions.
    faults[1].block(nodes[2].local_addr());
    faults[2].block(nodes[1].local_addr());
    let cut = Instant::now();
    let mut detected = None;
    let mut rerouted = None;
    while cut.elapsed() < Duration::from_secs(15) && rerouted.is_none() {
        assert!(nodes[src].send_probe(m.ids[dst], sent, vec![0; 64]).await);
        sent += 1;
        tokio::time::sleep(interval).await; // the probe stream's pace
        for (rx, other) in events.iter_mut() {
            while let Ok(ev) = rx.try_recv() {
                if matches!(&ev, Event::LinkDown { peer, .. } if peer == other) {
                    detected.get_or_insert(Instant::now());
                }
            }
        }
        if detected.is_some() && path_of(&nodes[src], &m.ids[dst]) == Some(long.clone()) {
            rerouted = Some(Instant::now());
        }
    }
    let detected = detected.expect("the cut link was never detected");
    let rerouted = rerouted.expect("the source never switched to the other way round");
    let reroute = rerouted.duration_since(detected);
    // Traffic after the reroute.
    for _ in 0..25 {
        assert!(nodes[src].send_probe(m.ids[dst], sent, vec![0; 64]).await);
        sent += 1;
        tokio::time::sleep(interval).await; // the probe stream's pace
    }
    let all_acked = until(Duration::from_secs(20), || {
        drain(&mut at_dst, &mut got_dst);
        drain(&mut at_src, &mut got_src);
        let acked: BTreeSet<u64> = got_src
            .iter()
            .filter_map(|d| match d {
                Delivery::ProbeAcked { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        acked.len() as u64 == sent
    })
    .await;
    let received: BTreeMap<u64, Vec<ClusterId>> = got_dst
        .iter()
        .filter_map(|d| match d {
            Delivery::Probe { id, path, .. } => Some((*id, path.clone())),
            _ => None,
        })
        .collect();
    let lost: Vec<u64> = (0..sent).filter(|i| !received.contains_key(i)).collect();
    assert!(
        lost.is_empty() && all_acked,
        "{} of {sent} probes lost: {lost:?}",
        lost.len()
    );
    let via_long = received.values().filter(|p| **p == long).count();
    assert!(
        via_long >= 25,
        "only {via_long} probes went the other way round"
    );
    let retried = got_src
        .iter()
        .filter(|d| matches!(d, Delivery::ProbeAcked { attempts, .. } if *attempts > 1))
        .count();
    eprintln!(
        "ring: link cut detected {:?} after the cut; source rerouted {reroute:?} after detection; \
         {sent} probes, none lost, {retried} retried",
        detected.duration_since(cut)
    );
    assert!(
        reroute <= Duration::from_millis(2 * GOSSIP_MS + 250),
        "rerouting took {reroute:?}, more than two gossip intervals"
    );
    for n in nodes {
        n.shutdown().await;
    }
}
