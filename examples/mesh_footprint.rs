//! Footprint of a real mesh on this machine: N `fedmesh` node processes on
//! 127.0.0.1 (default 20) join through one seed; prints time to full
//! membership, resident memory per node, idle UDP traffic per node (QUIC
//! overhead included), the QUIC + mutual-TLS handshake time on loopback, and
//! how long after a `kill -9` of one node every other node declares it dead
//! (most nodes are not linked to the victim: they learn it from the silence
//! of its gossiped heartbeats).
//!
//! Run: `cargo run --release --example mesh_footprint` (`NODES=N`, `IDLE_SECS=S`).
//! The example re-executes itself as each node (`--node run|join ...`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use fedmesh::http::{MemberState, fetch_status};
use fedmesh::net::{Transport, TransportOptions};
use fedmesh::proto::roster::{Member, Roster};
use fedmesh::store::genesis::write_roster_file;
use fedmesh::store::keys::{generate_key_files, load_tls_material};
use fedmesh::testkit::figures::{print_header, print_row};

struct Proc {
    child: Child,
    listen: SocketAddr,
    admin: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[String]) -> anyhow::Result<Proc> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("--node")
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let line = loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("fedmesh node ") => break l,
            Some(Ok(_)) => continue,
            _ => bail!("node exited before listening"),
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let words: Vec<&str> = line.split_whitespace().collect();
    let listen = words
        .get(5)
        .context("listen")?
        .trim_end_matches(',')
        .parse()?;
    let admin = words
        .get(7)
        .context("admin")?
        .trim_start_matches("http://")
        .parse()?;
    Ok(Proc {
        child,
        listen,
        admin,
    })
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn udp_bytes(admin: SocketAddr) -> Option<(f64, f64)> {
    let body = ureq::get(&format!("http://{admin}/metrics"))
        .call()
        .ok()?
        .into_body()
        .read_to_string()
        .ok()?;
    let value = |dir: &str| {
        body.lines()
            .find(|l| {
                l.starts_with("fedmesh_udp_bytes{") && l.contains(&format!("direction=\"{dir}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((value("out")?, value("in")?))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--node") {
        let cli = fedmesh::cli::Cli::parse_from(
            std::iter::once("fedmesh".to_owned()).chain(args[2..].iter().cloned()),
        );
        fedmesh::cli::run(&cli)?;
        return Ok(());
    }
    let n: usize = std::env::var("NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let idle: u64 = std::env::var("IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let mut members = Vec::new();
    for i in 0..n {
        let files = generate_key_files(&format!("n{i}"), &root.join("certs"), false)?;
        members.push(Member {
            id: files.cluster_id,
            name: format!("n{i}"),
            weight: 1,
        });
    }
    write_roster_file(
        &root.join("roster.toml"),
        &Roster::genesis("footprint", members)?,
        true,
    )?;
    let node_args = |i: usize, seed: Option<SocketAddr>| -> Vec<String> {
        let mut a: Vec<String> = match seed {
            Some(s) => vec!["join".into(), s.to_string()],
            None => vec!["run".into()],
        };
        let r = |p: &str| root.join(p).display().to_string();
        for (k, v) in [
            ("--key", r(&format!("certs/n{i}.key"))),
            ("--listen", "127.0.0.1:0".into()),
            ("--roster", r("roster.toml")),
            ("--data-dir", r(&format!("data/n{i}"))),
            ("--admin", "127.0.0.1:0".into()),
        ] {
            a.push(k.into());
            a.push(v);
        }
        a
    };

    println!("fedmesh mesh footprint: {n} node processes on 127.0.0.1");
    let t = Instant::now();
    let first = spawn(&node_args(0, None))?;
    let seed = first.listen;
    let mut procs = vec![first];
    for i in 1..n {
        procs.push(spawn(&node_args(i, Some(seed)))?);
    }
    let started = t.elapsed();
    let converged = loop {
        let all = procs.iter().all(|p| {
            fetch_status(p.admin, Duration::from_secs(2)).is_ok_and(|s| {
                s.members
                    .iter()
                    .filter(|m| m.state == MemberState::Alive)
                    .count()
                    == n
            })
        });
        if all {
            break t.elapsed();
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("no full membership after 60 s");
        }
        std::thread::sleep(Duration::from_millis(100)); // poll interval
    };

    // Idle traffic: let joins settle, then measure every node's UDP bytes over the window.
    std::thread::sleep(Duration::from_secs(3)); // settle: not a test, a measurement
    let before: Vec<_> = procs.iter().map(|p| udp_bytes(p.admin)).collect();
    std::thread::sleep(Duration::from_secs(idle)); // the measurement window
    let after: Vec<_> = procs.iter().map(|p| udp_bytes(p.admin)).collect();
    let mut rates: Vec<f64> = before
        .iter()
        .zip(&after)
        .filter_map(|(b, a)| Some((a.as_ref()?.0 - b.as_ref()?.0) / idle as f64))
        .collect();
    rates.sort_by(f64::total_cmp);
    let mut rss: Vec<u64> = procs.iter().filter_map(|p| rss_kib(p.child.id())).collect();
    rss.sort_unstable();

    // Handshake time: a fresh transport dials node 0 with a member's key.
    let material = load_tls_material(&root.join("certs/n1.crt"), &root.join("certs/n1.key"))?;
    let rt = tokio::runtime::Runtime::new()?;
    let mut hs: Vec<f64> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..20 {
            let t = Transport::bind(
                "127.0.0.1:0".parse()?,
                &material,
                TransportOptions::default(),
            )?;
            let s = Instant::now();
            let link = t.connect(procs[0].listen, None).await?;
            v.push(s.elapsed().as_secs_f64() * 1e3);
            link.close("measured");
            t.close();
        }
        anyhow::Ok(v)
    })?;
    hs.sort_by(f64::total_cmp);

    // Failure detection: kill -9 the last node, poll everyone else.
    let mut victim = procs.pop().context("no node")?;
    let victim_id = fetch_status(victim.admin, Duration::from_secs(2))?.node.id;
    victim.child.kill()?; // SIGKILL
    let killed = Instant::now();
    let mut dead_after: Vec<Option<f64>> = vec![None; procs.len()];
    while dead_after.iter().any(Option::is_none) && killed.elapsed() < Duration::from_secs(30) {
        for (p, d) in procs.iter().zip(dead_after.iter_mut()) {
            if d.is_some() {
                continue;
            }
            let dead = fetch_status(p.admin, Duration::from_secs(2)).is_ok_and(|s| {
                s.members
                    .iter()
                    .any(|m| m.id == victim_id && m.state == MemberState::Dead)
            });
            if dead {
                *d = Some(killed.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(100)); // poll interval
    }
    let undetected = dead_after.iter().filter(|d| d.is_none()).count();
    let mut detect: Vec<f64> = dead_after.into_iter().flatten().collect();
    detect.sort_by(f64::total_cmp);

    let pct = |v: &[f64], p: f64| {
        v.get(((v.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    print_header();
    print_row(
        "processes started",
        &format!("{n} in {:.2} s", started.as_secs_f64()),
        "",
        "",
        "",
    );
    print_row(
        "full membership everywhere",
        &format!("{:.2} s after the first start", converged.as_secs_f64()),
        "",
        "",
        "",
    );
    print_row(
        "resident memory per node",
        &format!(
            "median {:.1} MB, max {:.1} MB",
            rss.get(rss.len() / 2).copied().unwrap_or(0) as f64 / 1024.0,
            rss.last().copied().unwrap_or(0) as f64 / 1024.0
        ),
        "",
        "",
        "≤ 30 MB",
    );
    print_row(
        "idle UDP traffic sent per node",
        &format!(
            "median {:.0} B/s, max {:.0} B/s",
            pct(&rates, 0.5),
            pct(&rates, 1.0)
        ),
        "",
        "",
        "≤ 10 KB/s",
    );
    print_row(
        "QUIC + mutual TLS handshake, loopback",
        &format!("p50 {:.2} ms, p90 {:.2} ms", pct(&hs, 0.5), pct(&hs, 0.9)),
        "",
        "",
        "",
    );
    print_row(
        "kill -9 of one node: dead everywhere",
        &format!(
            "min {:.1} s, median {:.1} s, max {:.1} s{}",
            pct(&detect, 0.0),
            pct(&detect, 0.5),
            pct(&detect, 1.0),
            if undetected > 0 {
                format!(" ({undetected} nodes never within 30 s)")
            } else {
                String::new()
            }
        ),
        "",
        "",
        "≤ 10 s",
    );
    Ok(())
}
