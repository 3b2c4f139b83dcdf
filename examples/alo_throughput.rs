//! AT_LEAST_ONCE throughput of 1 KiB messages between two clusters over
//! QUIC on loopback, beside the raw baseline measured in the same run.
//!
//! - raw quinn (the baseline the target is set against): two plain quinn
//!   endpoints with default transport parameters and the nodes' TLS, one
//!   uni stream, one `write_all` per message of the size of an encoded
//!   1 KiB message, read back one by one; no framing, protocol or storage;
//! - fedmesh::net link (a second reference): two `fedmesh::net::Transport`s
//!   (the QUIC, TLS and length-prefixed framing the nodes use, whose writer
//!   gathers queued frames into one stream write), one link, N frames of
//!   that size, counted at the receiver; no protocol, no storage;
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
//! `ANSWERED=1` publishes through `publish_with`, awaiting each answer,
//! up to the window at once; `ALO_ONLY=1` runs the fedmesh side alone, for
//! profiling; `RAW_ONLY=1`
//! the two raw sides alone).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fedmesh::config::SeedAddr;
use fedmesh::net::{LinkEvent, Priority, Transport, TransportOptions};
use fedmesh::node::{Node, NodeHandle, NodeOptions};
use fedmesh::proto::ClusterId;
use fedmesh::proto::core::{Delivery, PublishOptions};
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

/// The process's CPU time (user + system, all threads) in seconds, from
/// `/proc/self/stat` (Linux; `None` elsewhere). Clock ticks are taken as
/// 100 per second, the value on every Linux platform Rust supports.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from `state`.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// A measured rate: messages per second, and the process's CPU time per
/// message over the same interval (both sides together: they share it).
#[derive(Clone, Copy)]
struct Rate {
    per_sec: f64,
    cpu_us: Option<f64>,
}

/// Wall and CPU time since a start.
struct Clock {
    wall: Instant,
    cpu: Option<f64>,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: cpu_seconds(),
        }
    }

    /// The rate of `n` messages since the start.
    fn rate(&self, n: u64) -> Rate {
        let cpu = cpu_seconds().zip(self.cpu).map(|(b, a)| b - a);
        Rate {
            per_sec: n as f64 / self.wall.elapsed().as_secs_f64(),
            cpu_us: cpu.map(|c| c * 1e6 / n as f64),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.0} msgs/s", self.per_sec)?;
        if let Some(c) = self.cpu_us {
            write!(f, ", {c:.1} µs CPU/msg")?;
        }
        Ok(())
    }
}

/// Raw frames of `len` bytes from one transport to the other; msgs/s.
async fn raw(root: &Path, n: u64, len: usize) -> anyhow::Result<Rate> {
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
    let clock = Clock::start();
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
    let rate = clock.rate(n);
    a.close();
    b.close();
    Ok(rate)
}

/// Raw quinn: one uni stream between two plain quinn endpoints (default
/// transport parameters, the same TLS as the nodes), one `write_all` per
/// message of `len` bytes, the receiver reading them back one by one;
/// msgs/s. The baseline the issue names: what a quinn user sending
/// messages of this size gets.
async fn raw_quinn(root: &Path, n: u64, len: usize) -> anyhow::Result<Rate> {
    use fedmesh::net::tls::{SERVER_NAME, client_crypto, server_crypto};
    let material = |i: usize| {
        load_tls_material(
            &root.join(format!("certs/n{i}.crt")),
            &root.join(format!("certs/n{i}.key")),
        )
    };
    let server = quinn::ServerConfig::with_crypto(server_crypto(&material(1)?)?);
    let b = quinn::Endpoint::server(server, "127.0.0.1:0".parse()?)?;
    let mut a = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    a.set_default_client_config(quinn::ClientConfig::new(client_crypto(
        &material(0)?,
        None,
    )?));
    let b_addr = b.local_addr()?;
    let receiver = tokio::spawn({
        let b = b.clone();
        async move {
            let conn = b.accept().await.context("no connection")?.await?;
            let mut stream = conn.accept_uni().await?;
            let mut buf = vec![0u8; len];
            for _ in 0..n {
                stream.read_exact(&mut buf).await?;
            }
            anyhow::Ok(conn)
        }
    });
    let conn = a.connect(b_addr, SERVER_NAME)?.await?;
    let mut stream = conn.open_uni().await?;
    let message = vec![7u8; len];
    let clock = Clock::start();
    for _ in 0..n {
        stream.write_all(&message).await?;
    }
    let inbound = tokio::time::timeout(Duration::from_secs(120), receiver)
        .await
        .context("raw quinn receiver timed out")???;
    let rate = clock.rate(n);
    inbound.close(0u32.into(), b"done");
    conn.close(0u32.into(), b"done");
    a.wait_idle().await;
    b.wait_idle().await;
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
    rate: Rate,
    /// Publish-to-subscriber latency, sorted, in µs.
    latencies: Vec<u64>,
    /// Retransmissions by A (timeouts before an ack came).
    retries: u64,
}

/// AT_LEAST_ONCE messages from A to B, published with `publish` (handed to
/// the node), or with `answered` through `publish_with`, up to `window` of
/// them awaiting the node's answer (given once the message is durable).
async fn alo(root: &Path, n: u64, window: u64, answered: bool) -> anyhow::Result<AloRun> {
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
    let clock = Clock::start();
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
    let a = Arc::new(a);
    // Publishes awaiting the node's answer (`ANSWERED=1`).
    let mut answers = tokio::task::JoinSet::new();
    for sent in 0..n {
        // Application-level flow control: at most `window` unacknowledged.
        while sent.saturating_sub(received.load(Ordering::Relaxed)) >= window {
            tokio::time::sleep(Duration::from_micros(200)).await; // poll interval
        }
        // Each message carries its publish time (taken after any wait for
        // the window): the consumer measures publish-to-subscriber latency.
        payload[..8].copy_from_slice(&micros_since(t).to_be_bytes());
        if answered {
            while answers.len() as u64 >= window {
                answers.join_next().await.context("no publish")???;
            }
            let (a, payload) = (a.clone(), payload.clone());
            answers.spawn(async move {
                a.publish_with(
                    "bench.data",
                    Guarantee::AtLeastOnce,
                    payload,
                    PublishOptions::default(),
                )
                .await
            });
        } else if !a
            .publish("bench.data", Guarantee::AtLeastOnce, payload.clone())
            .await
        {
            bail!("A stopped");
        }
    }
    while let Some(answer) = answers.join_next().await {
        answer??;
    }
    let a = Arc::into_inner(a).context("A is still shared")?;
    let latencies = tokio::time::timeout(Duration::from_secs(300), consumer)
        .await
        .context("fedmesh receiver timed out")??;
    while a.outbox_depth() > 0 {
        if t.elapsed() > Duration::from_secs(300) {
            bail!("outbox never drained");
        }
        tokio::time::sleep(Duration::from_micros(200)).await; // poll interval
    }
    let rate = clock.rate(n);
    // The status is refreshed on the node's tick: wait for one that has
    // seen the outbox drain, for the retry count that goes with it.
    let mut status = a.watch_status();
    let settled = tokio::time::timeout(Duration::from_secs(5), async {
        while status.borrow_and_update().delivery.outbox_depth > 0 {
            if status.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    settled.context("A's status never showed the outbox drained")?;
    let retries = status.borrow().delivery.retries;
    a.shutdown().await;
    b.shutdown().await;
    Ok(AloRun {
        rate,
        latencies,
        retries,
    })
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
    let answered = std::env::var_os("ANSWERED").is_some();
    let dir = tempfile::tempdir()?;
    setup(dir.path())?;
    // An encoded 1 KiB AT_LEAST_ONCE message is about this long on the wire
    // (envelope + routed header); the raw side sends frames of that size.
    let frame_len = PAYLOAD + 120;
    if std::env::var_os("ALO_ONLY").is_some() {
        // For profiling the node's data path alone.
        let run = alo(dir.path(), n, window, answered).await?;
        println!(
            "AT_LEAST_ONCE: {}, latency p50 {} us, p99 {} us, {} retries",
            run.rate,
            quantile(&run.latencies, 0.5),
            quantile(&run.latencies, 0.99),
            run.retries
        );
        return Ok(());
    }
    if std::env::var_os("RAW_ONLY").is_some() {
        println!("raw quinn: {}", raw_quinn(dir.path(), n, frame_len).await?);
        println!("fedmesh::net: {}", raw(dir.path(), n, frame_len).await?);
        return Ok(());
    }
    let quinn = raw_quinn(dir.path(), n, frame_len).await?;
    let net = raw(dir.path(), n, frame_len).await?;
    let run = alo(dir.path(), n, window, answered).await?;
    let alo = run.rate;
    let mb = |r: Rate| r.per_sec * PAYLOAD as f64 / 1e6;
    let pct = |r: Rate| 100.0 * alo.per_sec / r.per_sec;
    println!("messages: {n} x {PAYLOAD} B payload, window {window}");
    println!(
        "raw quinn stream ({frame_len} B writes): {quinn}, {:.1} MB/s",
        mb(quinn)
    );
    println!(
        "fedmesh::net link ({frame_len} B frames): {net}, {:.1} MB/s",
        mb(net)
    );
    println!("AT_LEAST_ONCE (durable, acked): {alo}, {:.1} MB/s", mb(alo));
    println!(
        "ratio AT_LEAST_ONCE / raw quinn: {:.1} %; / fedmesh::net link: {:.1} %",
        pct(quinn),
        pct(net)
    );
    println!(
        "publish-to-subscriber latency at this load: p50 {} us, p99 {} us (window {window} / rate); {} retransmissions",
        quantile(&run.latencies, 0.5),
        quantile(&run.latencies, 0.99),
        run.retries
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
        &format!("{alo} ({:.1} MB/s)", mb(alo)),
        &format!(
            "raw quinn stream, one write per {frame_len} B message: {quinn} ({:.1} MB/s)",
            mb(quinn)
        ),
        &format!("{:.1} %", pct(quinn)),
        "≥ 50 %",
    );
    print_row(
        "AT_LEAST_ONCE beside fedmesh's own link (batched writes)",
        &format!("{alo}"),
        &format!("fedmesh::net link, {frame_len} B frames: {net}"),
        &format!("{:.1} %", pct(net)),
        "",
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
