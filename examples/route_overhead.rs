//! Routing figures over real QUIC on loopback, in one process:
//!
//! 1. forwarding overhead per hop: on a chain A–B–C (link policy: neighbours
//!    only), the round-trip time of a probe A→B (a direct link) against a
//!    probe A→C (relayed by B), measured in the same run, interleaved; the
//!    probe and its ack each cross B once, so the one-way cost of a relay
//!    is half the difference;
//! 2. route convergence after a link failure: on a ring of five, one link is
//!    blocked; time from the QUIC connection's end (idle timeout) to the
//!    source's route switching to the other way round.
//!
//! Run: `cargo run --release --example route_overhead` (`PROBES=N`, default 2000).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fedmesh::net::FaultControl;
use fedmesh::node::{Node, NodeHandle, NodeOptions};
use fedmesh::proto::ClusterId;
use fedmesh::proto::core::Delivery;
use fedmesh::proto::membership::event::Event;
use fedmesh::testkit::figures::{print_header, print_row};
use fedmesh::testkit::mesh::{fast_link_failure, local_config, percentile, write_cluster_files};

const GOSSIP_MS: u64 = 500;

fn setup(root: &Path, n: usize, network: &str) -> anyhow::Result<Vec<ClusterId>> {
    let members: Vec<(String, u64)> = (0..n).map(|i| (format!("n{i}"), 1)).collect();
    Ok(write_cluster_files(root, &members, network)?.0)
}

async fn start(
    root: &Path,
    i: usize,
    neighbours: &[usize],
    seed: Option<SocketAddr>,
    faults: Option<Arc<FaultControl>>,
) -> anyhow::Result<NodeHandle> {
    let allowed = neighbours.iter().map(|j| format!("n{j}")).collect();
    let seeds: Vec<SocketAddr> = seed.into_iter().collect();
    let mut config = local_config(root, &format!("n{i}"), Some(allowed), &seeds, GOSSIP_MS);
    config.admin = None;
    fast_link_failure(&mut config);
    let options = NodeOptions {
        faults,
        rng_seed: Some(i as u64),
    };
    Ok(Node::start_with(config, options).await?)
}

async fn wait(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await; // poll interval
    }
    false
}

fn path_of(node: &NodeHandle, dst: &ClusterId) -> Option<Vec<ClusterId>> {
    node.routes()
        .into_iter()
        .find(|r| r.dst == *dst)
        .map(|r| r.path)
}

/// Round-trip time of one probe (send to ack) from `node` to `dst`.
async fn probe_rtt(node: &NodeHandle, dst: ClusterId, id: u64) -> anyhow::Result<Duration> {
    let mut acks = node.deliveries();
    let t = Instant::now();
    if !node.send_probe(dst, id, vec![0; 64]).await {
        bail!("node stopped");
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(5), acks.recv()).await {
            Ok(Ok(Delivery::ProbeAcked { id: got, .. })) if got == id => return Ok(t.elapsed()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("deliveries: {e}"),
            Err(_) => bail!("probe {id} not acked within 5 s"),
        }
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn overhead(probes: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ids = setup(dir.path(), 3, "overhead")?;
    let a = start(dir.path(), 0, &[1], None, None).await?;
    let b = start(dir.path(), 1, &[0, 2], Some(a.local_addr()), None).await?;
    let c = start(dir.path(), 2, &[1], Some(b.local_addr()), None).await?;
    let relayed = vec![ids[0], ids[1], ids[2]];
    if !wait(Duration::from_secs(20), || {
        path_of(&a, &ids[2]) == Some(relayed.clone())
    })
    .await
    {
        bail!("no route A→B→C");
    }
    // Warm up both paths.
    for i in 0..100 {
        probe_rtt(&a, ids[1], i).await?;
        probe_rtt(&a, ids[2], 1_000_000 + i).await?;
    }
    let (mut direct, mut relay) = (Vec::new(), Vec::new());
    for i in 0..probes {
        direct.push(probe_rtt(&a, ids[1], 2_000_000 + i).await?);
        relay.push(probe_rtt(&a, ids[2], 3_000_000 + i).await?);
    }
    direct.sort();
    relay.sort();
    println!("forwarding overhead, {probes} probes each way, interleaved, loopback QUIC:");
    for (name, v) in [("A→B direct  ", &direct), ("A→B→C relay ", &relay)] {
        println!(
            "  {name} round trip: p50 {:>7.1} µs  p90 {:>7.1} µs  p99 {:>7.1} µs",
            us(percentile(v, 0.5)),
            us(percentile(v, 0.9)),
            us(percentile(v, 0.99))
        );
    }
    let added = (us(percentile(&relay, 0.5)) - us(percentile(&direct, 0.5))) / 2.0;
    println!(
        "  one relay hop adds {added:.1} µs one way (p50; half the round-trip difference: one more \
         link crossing plus B's decode, route lookup and re-encode)"
    );
    print_header();
    print_row(
        "probe round trip over one relay (A→B→C), p50",
        &format!("{:.1} µs", us(percentile(&relay, 0.5))),
        &format!(
            "{:.1} µs direct A→B over QUIC",
            us(percentile(&direct, 0.5))
        ),
        &format!(
            "{:.2}",
            us(percentile(&relay, 0.5)) / us(percentile(&direct, 0.5))
        ),
        "",
    );
    print_row(
        "added one-way latency per relay hop, p50",
        &format!("{added:.1} µs"),
        "",
        "",
        "",
    );
    for n in [a, b, c] {
        n.shutdown().await;
    }
    Ok(())
}

async fn convergence() -> anyhow::Result<()> {
    const N: usize = 5;
    let dir = tempfile::tempdir()?;
    let ids = setup(dir.path(), N, "ring")?;
    let mut nodes: Vec<NodeHandle> = Vec::new();
    let mut faults = Vec::new();
    for i in 0..N {
        let f = FaultControl::new(i as u64);
        let seed = nodes.last().map(NodeHandle::local_addr);
        nodes.push(
            start(
                dir.path(),
                i,
                &[(i + N - 1) % N, (i + 1) % N],
                seed,
                Some(f.clone()),
            )
            .await?,
        );
        faults.push(f);
    }
    let long = vec![ids[0], ids[4], ids[3], ids[2]];
    let formed = wait(Duration::from_secs(30), || {
        nodes.iter().all(|n| n.routes().len() == N - 1)
            && path_of(&nodes[0], &ids[2]) == Some(vec![ids[0], ids[1], ids[2]])
    })
    .await;
    if !formed {
        bail!("ring not formed");
    }
    // Whichever end's QUIC idle timer fires first notices the cut.
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    for (node, other) in [(1, ids[2]), (2, ids[1])] {
        let mut events = nodes[node].events();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                if matches!(ev, Event::LinkDown { peer, .. } if peer == other) {
                    let _ = tx.send(Instant::now()).await;
                    return;
                }
            }
        });
    }
    faults[1].block(nodes[2].local_addr());
    faults[2].block(nodes[1].local_addr());
    let cut = Instant::now();
    let detected = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten()
        .context("link cut not detected")?;
    let at_source = wait(Duration::from_secs(10), || {
        path_of(&nodes[0], &ids[2]) == Some(long.clone())
    })
    .await
    .then(Instant::now)
    .context("source never rerouted")?;
    let everywhere = wait(Duration::from_secs(10), || {
        nodes.iter().enumerate().all(|(i, n)| {
            n.routes().iter().all(|r| {
                !r.path
                    .windows(2)
                    .any(|w| (w[0], w[1]) == (ids[1], ids[2]) || (w[0], w[1]) == (ids[2], ids[1]))
                    && r.path.first() == Some(&ids[i])
            }) && n.routes().len() == N - 1
        })
    })
    .await
    .then(Instant::now)
    .context("routes never converged")?;
    println!("route convergence after a link failure (ring of 5, gossip every {GOSSIP_MS} ms):");
    println!(
        "  link end noticed {:?} after the cut (QUIC idle timeout 1 s)",
        detected - cut
    );
    println!(
        "  source 2 hops away rerouted {:?} after that; every node off the cut link {:?} after that",
        at_source - detected,
        everywhere - detected
    );
    print_header();
    print_row(
        "reroute after a link failure (ring of 5), after the link end is noticed",
        &format!(
            "source {:.0} ms, everywhere {:.0} ms",
            (at_source - detected).as_secs_f64() * 1e3,
            (everywhere - detected).as_secs_f64() * 1e3
        ),
        "",
        "",
        "",
    );
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let probes = std::env::var("PROBES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    overhead(probes).await?;
    convergence().await
}
