//! Shared helpers for the multi-process and in-process mesh tests: key and
//! roster fixtures, `fedmesh` child processes, and polling with deadlines.

#![allow(dead_code)]

pub mod prom;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use fedmesh::http::{MemberState, StatusSnapshot};

/// The built binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fedmesh")
}

/// Runs `fedmesh ARGS` in `dir` and returns stdout, panicking with stderr on failure.
pub fn fedmesh_ok(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run fedmesh");
    assert!(
        out.status.success(),
        "fedmesh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates keys `n0..n{count}` under `dir/certs` and a roster of the first
/// `members` of them in `dir/roster.toml`; returns the cluster ids.
pub fn keys_and_roster(dir: &Path, count: usize, members: usize, network: &str) -> Vec<String> {
    let ids: Vec<String> = (0..count)
        .map(|i| {
            fedmesh_ok(
                dir,
                &["keygen", "--name", &format!("n{i}"), "--out", "certs"],
            )
            .trim()
            .to_owned()
        })
        .collect();
    let mut args = vec![
        "roster".to_owned(),
        "init".into(),
        "--network".into(),
        network.into(),
    ];
    args.extend(["--out".into(), "roster.toml".into(), "--force".into()]);
    args.extend((0..members).map(|i| format!("certs/n{i}.crt")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fedmesh_ok(dir, &args);
    ids
}

/// Polls `f` every 100 ms until it returns `Some` or `within` passes.
pub fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100)); // poll interval, not a wait for an outcome
    }
}

/// A `fedmesh run`/`join` child process; killed when dropped.
pub struct NodeProc {
    pub name: String,
    pub child: Child,
    pub id: String,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

impl NodeProc {
    /// Starts `fedmesh ARGS` in `dir` and waits for its "listening" line.
    pub fn start(dir: &Path, name: &str, args: &[String]) -> NodeProc {
        let mut child = Command::new(bin())
            .current_dir(dir)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fedmesh");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.starts_with("fedmesh node ") {
                    let _ = tx.send(line.clone());
                }
                if let Ok(mut l) = sink.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{name} did not start: {}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                );
            }
        };
        // "fedmesh node ID listening on ADDR, admin http://ADDR"
        let words: Vec<&str> = line.split_whitespace().collect();
        let id = words[2].to_owned();
        let listen = words[5].trim_end_matches(',').parse().expect("listen addr");
        let admin = words[7]
            .trim_start_matches("http://")
            .parse()
            .expect("admin addr");
        NodeProc {
            name: name.to_owned(),
            child,
            id,
            listen,
            admin,
            log,
        }
    }

    /// `fedmesh status --json` against this node.
    pub fn status(&self) -> Option<StatusSnapshot> {
        let admin = self.admin.to_string();
        let out = Command::new(bin())
            .args(["status", "--json", "--admin", &admin])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The logs so far.
    pub fn logs(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Arguments for node `i` of a test mesh in `dir`.
pub fn node_args(i: usize, seed: Option<SocketAddr>) -> Vec<String> {
    let mut args: Vec<String> = match seed {
        Some(s) => vec!["join".into(), s.to_string()],
        None => vec!["run".into()],
    };
    for (k, v) in [
        ("--key", format!("certs/n{i}.key")),
        ("--listen", "127.0.0.1:0".into()),
        ("--roster", "roster.toml".into()),
        ("--data-dir", format!("data/n{i}")),
        ("--admin", "127.0.0.1:0".into()),
    ] {
        args.push(k.into());
        args.push(v);
    }
    args
}

/// The state and incarnation `snap` holds for member `id`.
pub fn member(snap: &StatusSnapshot, id: &str) -> Option<(MemberState, u64)> {
    snap.members
        .iter()
        .find(|m| m.id.to_string() == id)
        .map(|m| (m.state, m.incarnation))
}

/// A temp dir that is kept (and named) when the test fails.
pub fn workdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("fedmesh-test-")
        .tempdir()
        .expect("tempdir")
}

/// Where a test's directory is.
pub fn path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().to_owned()
}

/// Writes keys `n0..n{count}` (weight 1 each) and their genesis roster
/// under `root` (see [`fedmesh::testkit::mesh::write_cluster_files`]).
pub fn write_keys_and_roster(
    root: &Path,
    count: usize,
    network: &str,
) -> Vec<fedmesh::proto::ClusterId> {
    let members: Vec<(String, u64)> = (0..count).map(|i| (format!("n{i}"), 1)).collect();
    fedmesh::testkit::mesh::write_cluster_files(root, &members, network)
        .expect("keys and roster")
        .0
}

/// The config of in-process node `n{i}` written by [`write_keys_and_roster`]:
/// loopback, admin on, allowed to link with `neighbours` only, seeded with
/// `seeds`, gossiping every `gossip_ms`.
pub fn neighbour_config(
    root: &Path,
    i: usize,
    neighbours: &[usize],
    seeds: Vec<SocketAddr>,
    gossip_ms: u64,
) -> fedmesh::config::NodeConfig {
    let allowed = neighbours.iter().map(|j| format!("n{j}")).collect();
    fedmesh::testkit::mesh::local_config(root, &format!("n{i}"), Some(allowed), &seeds, gossip_ms)
}

/// Starts in-process node `n{i}` (see [`neighbour_config`]) with a fixed
/// RNG seed and, optionally, a fault injector.
pub async fn start_neighbour(
    root: &Path,
    i: usize,
    neighbours: &[usize],
    seeds: Vec<SocketAddr>,
    faults: Option<Arc<fedmesh::net::FaultControl>>,
) -> fedmesh::node::NodeHandle {
    let config = neighbour_config(root, i, neighbours, seeds, 200);
    let options = fedmesh::node::NodeOptions {
        faults,
        rng_seed: Some(i as u64),
    };
    fedmesh::node::Node::start_with(config, options)
        .await
        .expect("node starts")
}

/// Moves every delivery already queued on `rx` into `into`.
pub fn drain_deliveries(
    rx: &mut tokio::sync::broadcast::Receiver<fedmesh::proto::core::Delivery>,
    into: &mut Vec<fedmesh::proto::core::Delivery>,
) {
    while let Ok(d) = rx.try_recv() {
        into.push(d);
    }
}

/// Waits until `cond` holds for `node`'s status, woken by each status
/// refresh (no polling); false if `within` passes first.
pub async fn until_status(
    node: &fedmesh::node::NodeHandle,
    within: Duration,
    mut cond: impl FnMut(&StatusSnapshot) -> bool,
) -> bool {
    let mut status = node.watch_status();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond(&status.borrow_and_update()) {
            return true;
        }
        match tokio::time::timeout_at(deadline, status.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return cond(&status.borrow()),
        }
    }
}

/// Every delivery of every node from now on, tagged with the node's index,
/// on one channel (so a test can await the next one from any node).
pub fn merge_deliveries(
    nodes: &[fedmesh::node::NodeHandle],
) -> tokio::sync::mpsc::UnboundedReceiver<(usize, fedmesh::proto::core::Delivery)> {
    use tokio::sync::broadcast::error::RecvError;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, node) in nodes.iter().enumerate() {
        let mut from = node.deliveries();
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                match from.recv().await {
                    Ok(d) => {
                        if tx.send((i, d)).is_err() {
                            return;
                        }
                    }
                    // The test then misses deliveries and fails its checks.
                    Err(RecvError::Lagged(n)) => {
                        eprintln!("node {i}: {n} deliveries lost to lag");
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }
    rx
}
