//! BYZANTINE_QUORUM decision latency over real QUIC on loopback, five
//! in-process clusters fully linked, beside two baselines measured in the
//! same run between the same endpoints:
//!
//! - the raw QUIC round trip: quinn's smoothed RTT of the origin's links,
//!   and the round trip of a routed probe over a direct link (a probe and
//!   its ack: what one message exchange costs through the node);
//! - the ed25519 cost: one sign plus one `verify_strict` of a vote-sized message.
//!
//! Rounds are run one at a time (latency, not throughput): publish on n0,
//! wait for n0's `QuorumDecided`.
//!
//! Run: `cargo run --release --example quorum_latency` (`ROUNDS=N`, default 500).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fedmesh::node::{Node, NodeHandle, NodeOptions};
use fedmesh::proto::core::{Delivery, QuorumOutcome};
use fedmesh::proto::delivery::Guarantee;
use fedmesh::testkit::figures::{print_header, print_row};
use fedmesh::testkit::mesh::{local_config, percentile, write_cluster_files};
use tokio::sync::broadcast;

const N: usize = 5;

fn setup(root: &Path) -> anyhow::Result<()> {
    let members: Vec<(String, u64)> = (0..N).map(|i| (format!("n{i}"), 1)).collect();
    write_cluster_files(root, &members, "quorum-latency")?;
    Ok(())
}

async fn start(
    root: &Path,
    i: usize,
    seed: Option<std::net::SocketAddr>,
) -> anyhow::Result<NodeHandle> {
    let seeds: Vec<std::net::SocketAddr> = seed.into_iter().collect();
    let mut config = local_config(root, &format!("n{i}"), None, &seeds, 200);
    config.admin = None;
    let options = NodeOptions {
        faults: None,
        rng_seed: Some(i as u64),
    };
    Ok(Node::start_with(config, options).await?)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Waits for the first delivery `f` picks, up to 5 s.
async fn wait<T>(
    rx: &mut broadcast::Receiver<Delivery>,
    mut f: impl FnMut(&Delivery) -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(d)) => {
                if let Some(t) = f(&d) {
                    return Ok(t);
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => bail!("delivery channel: {e}"),
            Err(_) => bail!("timed out"),
        }
    }
}

/// One ed25519 sign plus one strict verification of a vote-sized message.
fn signature_cost() -> Duration {
    use ed25519_dalek::{Signer, SigningKey};
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public = key.verifying_key();
    let msg = [42u8; 153];
    let n = 2000u32;
    let t = Instant::now();
    for i in 0..n {
        let mut m = msg;
        m[0] = i as u8;
        let sig = key.sign(&m);
        assert!(public.verify_strict(&m, &sig).is_ok());
    }
    t.elapsed() / n
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .map(|s| s.parse())
        .transpose()
        .context("ROUNDS")?
        .unwrap_or(500);
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    setup(root)?;
    let mut nodes = Vec::new();
    for i in 0..N {
        let seed = nodes.first().map(NodeHandle::local_addr);
        nodes.push(start(root, i, seed).await?);
    }
    for n in &nodes {
        n.subscribe("q.#").await;
    }
    let formed = Instant::now() + Duration::from_secs(30);
    while !nodes
        .iter()
        .all(|n| n.routes().len() == N - 1 && n.links().len() == N - 1)
    {
        if Instant::now() > formed {
            bail!("the mesh did not form");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut rx = nodes[0].deliveries();
    // Warm up connections and caches.
    for k in 0..20u8 {
        nodes[0]
            .publish("q.lat", Guarantee::ByzantineQuorum, vec![k])
            .await;
        wait(&mut rx, |d| {
            matches!(d, Delivery::QuorumDecided { .. }).then_some(())
        })
        .await?;
    }

    let sig = signature_cost();
    let mut probe = Vec::with_capacity(rounds);
    let mut quorum = Vec::with_capacity(rounds);
    let mut rejected = 0;
    // Interleaved, so both see the same machine load.
    for k in 0..rounds {
        let dst = nodes[1 + k % (N - 1)].id();
        let t = Instant::now();
        nodes[0].send_probe(dst, k as u64, vec![0; 64]).await;
        wait(&mut rx, |d| {
            matches!(d, Delivery::ProbeAcked { id, .. } if *id == k as u64).then_some(())
        })
        .await?;
        probe.push(t.elapsed());

        let t = Instant::now();
        nodes[0]
            .publish(
                "q.lat",
                Guarantee::ByzantineQuorum,
                (k as u64).to_be_bytes().to_vec(),
            )
            .await;
        let outcome = wait(&mut rx, |d| match d {
            Delivery::QuorumDecided { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .await?;
        quorum.push(t.elapsed());
        if outcome != QuorumOutcome::Accepted {
            rejected += 1;
        }
    }
    let quic_rtt: Vec<f64> = nodes[0].links().iter().map(|l| l.rtt_ms * 1e3).collect();
    let quic_mean = quic_rtt.iter().sum::<f64>() / quic_rtt.len().max(1) as f64;
    probe.sort();
    quorum.sort();
    let (p50, p99) = (percentile(&quorum, 0.5), percentile(&quorum, 0.99));
    let (r50, r99) = (percentile(&probe, 0.5), percentile(&probe, 0.99));
    println!("BYZANTINE_QUORUM decision latency, {N} clusters, QUIC on loopback, {rounds} rounds");
    println!(
        "  quorum decision      p50 {:8.1} us   p99 {:8.1} us",
        us(p50),
        us(p99)
    );
    println!(
        "  probe round trip     p50 {:8.1} us   p99 {:8.1} us",
        us(r50),
        us(r99)
    );
    println!(
        "  quinn smoothed RTT   mean {quic_mean:7.1} us over the origin's {} links",
        quic_rtt.len()
    );
    println!("  ed25519 sign+verify  {:8.1} us", us(sig));
    println!(
        "  ratio p50 / probe RTT p50 = {:.2}; target p50 <= 5 x RTT + signature cost = {:.1} us: {}",
        us(p50) / us(r50),
        5.0 * us(r50) + us(sig),
        if us(p50) <= 5.0 * us(r50) + us(sig) {
            "met"
        } else {
            "NOT met"
        }
    );
    if rejected > 0 {
        println!("  WARNING: {rejected} rounds were not accepted");
    }
    let target = 5.0 * us(r50) + us(sig);
    print_header();
    print_row(
        &format!("BYZANTINE_QUORUM decision, {N} clusters, QUIC loopback, p50"),
        &format!("{:.0} µs", us(p50)),
        &format!(
            "{:.0} µs probe round trip (quinn smoothed RTT {quic_mean:.0} µs); sign+verify {:.0} µs",
            us(r50),
            us(sig)
        ),
        &format!("{:.2}x RTT", us(p50) / us(r50)),
        &format!(
            "≤ 5 × RTT + signature = {target:.0} µs ({})",
            if us(p50) <= target { "met" } else { "NOT met" }
        ),
    );
    print_row(
        &format!("BYZANTINE_QUORUM decision, {N} clusters, QUIC loopback, p99"),
        &format!("{:.0} µs", us(p99)),
        &format!("{:.0} µs probe round trip p99", us(r99)),
        &format!("{:.2}x", us(p99) / us(r99)),
        "",
    );
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}
