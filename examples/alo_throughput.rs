//! AT_LEAST_ONCE throughput of 1 KiB messages between two clusters over
//! QUIC on loopback, beside the raw baseline measured in the same run.
//!
//! - raw: two `fedmesh::net::Transport`s (the same QUIC, TLS and
//!   length-prefixed framing the nodes use), one link, N frames of the same
//!   size as an encoded 1 KiB message, counted at the receiver; no
//!   protocol, no storage;
//! - fedmesh: node A publishes N AT_LEAST_ONCE messages to node B's
//!   subscription; the clock stops when B's subscriber has received all N
//!   from its reliable inbox (`Node::start_with_inbox`) and A's outbox is
//!   empty (every ack in, every outbox entry acknowledged). Both sides
//!   group commit (outbox log and dedup windows: one fdatasync per batch).
//!   The consumer also measures publish-to-subscriber latency, which at a
//!   window of W messages is about W / rate.
//!
//! - group commit: the cost per message of persisting outbox entries (the
//!   outbox log's append and fdatasync, ids reserved in redb 1,024 at a
//!   time) with one commit per message against one per batch of 256 (what
//!   the node's actor does with the inputs queued behind one another).
//!
//! Run: `cargo run --release --example alo_throughput` (`MSGS=N`, default
//! 20000; `WINDOW=W` unacknowledged messages at most, default 600;
//! `ALO_ONLY=1` runs the fedmesh side alone, for profiling; `RAW_ONLY=1`
//! the raw side alone).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fedmesh::config::SeedAddr;
use fedmesh::net::{LinkEvent, Priority, Transport, TransportOptions};
use fedmesh::node::{Node, NodeHandle, NodeOptions};
use fedmesh::proto::ClusterId;
use fedmesh::proto::core::Delivery;
use fedmesh::proto::delivery::Guarantee;
use fedmesh::store::keys::load_tls_material;
use fedmesh::testkit::figures::{print_header, print_row};
use fedmesh::testkit::mesh::{local_config, write_cluster_files};

const PAYLOAD: usize = 1024;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn setup(root: &Path) -> anyhow::Result<Vec<ClusterId>> {
    let members: Vec<(String, u64)> = (0..2).map(|i| (format!("n{i}"), 1)).collect();
    Ok(write_cluster_files(root, &members, "alo-bench")?.0)
}

/// Raw frames of `len` bytes from one transport to the other; msgs/s.
async fn raw(root: &Path, n: u64, len: usize) -> anyhow::Result<f64> {
    let material = |i: usize| {
        load_tls_material(
            &root.join(format!("certs/n{i}.crt")),
            &root.join(format!("certs/n{i}.key")),
        )
    };
    let a = Transport::bind(
        "127.0.0.1:0".parse()?,
        &material(0)?,
        TransportOptions::default(),
    )?;
    let b = Arc::new(Transport::bind(
        "127.0.0.1:0".parse()?,
        &material(1)?,
        TransportOptions::default(),
    )?);
    let b_addr = b.local_addr();
    let accept = {
        let b = b.clone();
        tokio::spawn(async move { b.accept().await })
    };
    let link = a.connect(b_addr, None).await?;
    let inbound = accept.await?.context("no inbound link")??;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    inbound.start(tx);
    let received = Arc::new(AtomicU64::new(0));
    let counter = {
        let received = received.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if let LinkEvent::Frame { .. } = ev
                    && received.fetch_add(1, Ordering::Relaxed) + 1 == n
                {
                    return;
                }
            }
        })
    };
    let t = Instant::now();
    let mut sent = 0;
    while sent < n {
        // The link's queue is bounded and never waits: back off while full.
        match link.send(Priority::Data, vec![7u8; len]) {
            Ok(()) => sent += 1,
            Err(_) => tokio::task::yield_now().await,
        }
    }
    tokio::time::timeout(Duration::from_secs(120), counter)
        .await
        .context("raw receiver timed out")??;
    let rate = n as f64 / t.elapsed().as_secs_f64();
    a.close();
    b.close();
    Ok(rate)
}

async fn start(root: &Path, i: usize, seed: Option<SeedAddr>) -> anyhow::Result<NodeHandle> {
    let seeds: Vec<std::net::SocketAddr> = seed.map(|s| s.addr).into_iter().collect();
    let mut config = local_config(root, &format!("n{i}"), None, &seeds, 100);
    config.admin = None;
    let options = NodeOptions {
        faults: None,
        rng_seed: Some(i as u64),
    };
    Ok(if i == 1 {
        Node::start_with_inbox(config, options, 4096).await?
    } else {
        Node::start_with(config, options).await?
    })
}

fn micros_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The `q`-quantile of sorted `v` (0 when empty).
fn quantile(v: &[u64], q: f64) -> u64 {
    let i = ((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1));
    v.get(i).copied().unwrap_or(0)
}

/// What one AT_LEAST_ONCE run measured.
struct AloRun {
    /// Messages per second, until the outbox is empty.
    rate: f64,
    /// Publish-to-subscriber latency, sorted, in µs.
    latencies: Vec<u64>,
}

/// AT_LEAST_ONCE messages from A to B.
async fn alo(root: &Path, n: u64, window: u64) -> anyhow::Result<AloRun> {
    let a = start(root, 0, None).await?;
    let b = start(
        root,
        1,
        Some(SeedAddr {
            addr: a.local_addr(),
            id: None,
        }),
    )
    .await?;
    let mut inbox = b.take_inbox().context("inbox")?;
    if !b.subscribe("bench.#").await {
        bail!("B stopped");
    }
    let mut outcomes = a.deliveries();
    // Wait until A routes to B's subscription.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if Instant::now() > deadline {
            bail!("A never learned B's subscription");
        }
        a.publish("bench.warmup", Guarantee::FireAndForget, vec![])
            .await;
        if let Ok(Ok(Delivery::Published { dests, .. })) =
            tokio::time::timeout(Duration::from_millis(100), outcomes.recv()).await
            && dests.len() == 1
        {
            break;
        }
    }
    while inbox.try_recv().is_ok() {}
    let received = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let consumer = {
        let received = received.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(n as usize);
            while let Some(e) = inbox.recv().await {
                // Late warm-up messages carry no timestamp.
                let Some(stamp) = e.payload.first_chunk::<8>() else {
                    continue;
                };
                let sent = u64::from_be_bytes(*stamp);
                latencies.push(micros_since(t).saturating_sub(sent));
                if e.guarantee == Guarantee::AtLeastOnce
                    && received.fetch_add(1, Ordering::Relaxed) + 1 == n
                {
                    latencies.sort_unstable();
                    return latencies;
                }
            }
            latencies
        })
    };
    let mut payload = vec![7u8; PAYLOAD];
    for sent in 0..n {
        // Application-level flow control: at most `window` unacknowledged.
        while sent.saturating_sub(received.load(Ordering::Relaxed)) >= window {
            tokio::time::sleep(Duration::from_micros(200)).await; // poll interval
        }
        // Each message carries its publish time (taken after any wait for
        // the window): the consumer measures publish-to-subscriber latency.
        payload[..8].copy_from_slice(&micros_since(t).to_be_bytes());
        if !a
            .publish("bench.data", Guarantee::AtLeastOnce, payload.clone())
            .await
        {
            bail!("A stopped");
        }
    }
    let latencies = tokio::time::timeout(Duration::from_secs(300), consumer)
        .await
        .context("fedmesh receiver timed out")??;
    while a.outbox_depth() > 0 {
        if t.elapsed() > Duration::from_secs(300) {
            bail!("outbox never drained");
        }
        tokio::time::sleep(Duration::from_micros(200)).await; // poll interval
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    a.shutdown().await;
    b.shutdown().await;
    Ok(AloRun { rate, latencies })
}

/// Microseconds per message persisting `n` outbox entries in commits of `batch`.
fn commit_cost(root: &Path, n: u64, batch: u64) -> anyhow::Result<f64> {
    use fedmesh::proto::core::{OutboxEntry, PendingDest, Persist};
    use fedmesh::proto::delivery::{Envelope, MessageKey};
    use fedmesh::proto::queue::QueueName;
    use fedmesh::store::delivery_state::DeliveryWrites;
    let db = fedmesh::store::db::Db::open(&root.join(format!("commit-{batch}")))?;
    let topic = QueueName::new("bench.data")?;
    let mut writes = DeliveryWrites::default();
    let t = Instant::now();
    for id in 1..=n {
        let key = MessageKey {
            origin: ClusterId([1; 32]),
            id,
        };
        let envelope = Envelope::new(
            key,
            topic.clone(),
            Guarantee::AtLeastOnce,
            vec![7; PAYLOAD],
            None,
        )?;
        writes.take(Persist::OutboxAdd(OutboxEntry {
            envelope: Arc::new(envelope),
            dests: vec![PendingDest {
                to: ClusterId([2; 32]),
                seq: id,
                acked: false,
            }],
        }));
        if id % 1024 == 1 {
            // The node reserves message ids 1,024 at a time.
            writes.take(Persist::NextMessageId(id + 1024));
        }
        if id % batch == 0 || id == n {
            db.commit_delivery(&mut writes)?;
        }
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = env("MSGS", 20_000);
    let window = env("WINDOW", 600);
    let dir = tempfile::tempdir()?;
    setup(dir.path())?;
    // An encoded 1 KiB AT_LEAST_ONCE message is about this long on the wire
    // (envelope + routed header); the raw side sends frames of that size.
    let frame_len = PAYLOAD + 120;
    if std::env::var_os("ALO_ONLY").is_some() {
        // For profiling the node's data path alone.
        let run = alo(dir.path(), n, window).await?;
        println!(
            "AT_LEAST_ONCE: {:.0} msgs/s, latency p50 {} us, p99 {} us",
            run.rate,
            quantile(&run.latencies, 0.5),
            quantile(&run.latencies, 0.99)
        );
        return Ok(());
    }
    if std::env::var_os("RAW_ONLY").is_some() {
        println!("raw: {:.0} msgs/s", raw(dir.path(), n, frame_len).await?);
        return Ok(());
    }
    let raw_rate = raw(dir.path(), n, frame_len).await?;
    let run = alo(dir.path(), n, window).await?;
    let alo_rate = run.rate;
    let mb = |r: f64| r * PAYLOAD as f64 / 1e6;
    println!("messages: {n} x {PAYLOAD} B payload, window {window}");
    println!(
        "raw quinn stream (fedmesh::net, {frame_len} B frames): {raw_rate:>9.0} msgs/s {:>7.1} MB/s",
        mb(raw_rate)
    );
    println!(
        "AT_LEAST_ONCE (durable, acked):          {alo_rate:>9.0} msgs/s {:>7.1} MB/s",
        mb(alo_rate)
    );
    println!(
        "ratio AT_LEAST_ONCE / raw: {:.1} %",
        100.0 * alo_rate / raw_rate
    );
    println!(
        "publish-to-subscriber latency at this load: p50 {} us, p99 {} us (window {window} / rate)",
        quantile(&run.latencies, 0.5),
        quantile(&run.latencies, 0.99)
    );
    let single = commit_cost(dir.path(), 2_000, 1)?;
    let grouped = commit_cost(dir.path(), 2_000, 256)?;
    println!(
        "persisting an outbox entry: {single:.1} us/msg with a commit each, {grouped:.1} us/msg in group commits of 256 ({:.0}x)",
        single / grouped
    );
    print_header();
    print_row(
        &format!("AT_LEAST_ONCE throughput, 1 KiB, 2 clusters, window {window}"),
        &format!("{alo_rate:.0} msgs/s ({:.1} MB/s)", mb(alo_rate)),
        &format!(
            "{raw_rate:.0} msgs/s raw quinn stream, {frame_len} B frames ({:.1} MB/s)",
            mb(raw_rate)
        ),
        &format!("{:.1} %", 100.0 * alo_rate / raw_rate),
        "≥ 50 %",
    );
    print_row(
        "durable outbox entry, group commit of 256",
        &format!("{grouped:.1} µs/msg"),
        &format!("{single:.1} µs/msg with one commit each"),
        &format!("{:.0}x cheaper", single / grouped),
        "",
    );
    Ok(())
}
