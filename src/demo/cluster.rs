//! The demo's clusters: key files, the genesis roster, and the in-process
//! nodes on 127.0.0.1 with their link policy and fault injection.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use super::{DemoError, DemoOptions, progress};
use crate::http::MemberState;
use crate::net::FaultControl;
use crate::node::{Node, NodeHandle, NodeOptions};
use crate::proto::ClusterId;
use crate::proto::roster::Roster;
use crate::testkit::mesh::{fast_link_failure, local_config, write_cluster_files};

const NAMES: [&str; 12] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
    "kilo", "lima",
];

/// The fewest clusters the walk-through needs (a pair two links apart).
pub const MIN_CLUSTERS: usize = 4;

/// The demo's state, shared by its steps.
pub struct Demo {
    /// Where everything is written.
    pub out: PathBuf,
    /// The clusters' names, index-aligned with `ids`.
    pub names: Vec<String>,
    /// The clusters' ids.
    pub ids: Vec<ClusterId>,
    /// The genesis roster (equal weights).
    pub roster: Arc<Roster>,
    /// The genesis roster file.
    pub roster_path: PathBuf,
    /// Indices of the clusters that equivocate in the Byzantine step.
    pub byzantine: Vec<usize>,
    /// The running nodes (started by the join step), index-aligned.
    pub nodes: Vec<NodeHandle>,
    /// Each node's fault injector.
    pub faults: Vec<Arc<FaultControl>>,
    /// The vote logs written by the Byzantine step.
    pub vote_logs: Vec<PathBuf>,
}

impl Demo {
    /// Validates `options`, creates the output directory, the key files and
    /// the genesis roster.
    pub async fn setup(options: &DemoOptions) -> Result<Self, DemoError> {
        let n = options.clusters;
        if !(MIN_CLUSTERS..=NAMES.len()).contains(&n) {
            return Err(DemoError::Options(format!(
                "--clusters must be from {MIN_CLUSTERS} to {} (got {n})",
                NAMES.len()
            )));
        }
        if options.byzantine >= n {
            return Err(DemoError::Options(format!(
                "--byzantine must be below --clusters (got {} of {n})",
                options.byzantine
            )));
        }
        let out = match &options.out {
            Some(dir) => dir.clone(),
            None => std::env::temp_dir().join(format!("fedmesh-demo-{}", std::process::id())),
        };
        Self::write_files(out, n, options.byzantine).map_err(DemoError::Setup)
    }

    fn write_files(out: PathBuf, n: usize, byzantine: usize) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        println!(
            "fedmesh demo: {n} clusters ({byzantine} Byzantine), files in {}",
            out.display()
        );
        let names: Vec<String> = NAMES[..n].iter().map(|s| (*s).to_owned()).collect();
        let weighted: Vec<(String, u64)> = names.iter().map(|name| (name.clone(), 1)).collect();
        let (ids, roster) = write_cluster_files(&out, &weighted, "demo")?;
        let roster = Arc::new(roster);
        let roster_path = out.join("roster.toml");
        println!(
            "keys in {}, genesis roster {} (network {}, total weight {})",
            out.join("certs").display(),
            roster_path.display(),
            roster.network_id(),
            roster.total_weight()
        );
        Ok(Self {
            out,
            names,
            ids,
            roster,
            roster_path,
            byzantine: (n - byzantine..n).collect(),
            nodes: Vec::new(),
            faults: Vec::new(),
            vote_logs: Vec::new(),
        })
    }

    /// The clusters `i` may link with: the seed (0) links with everyone;
    /// the others form a chain 1–2–…–(n-1), each also linked with the seed,
    /// so clusters 1 and n-1 are two links apart.
    pub fn neighbours(&self, i: usize) -> Option<Vec<usize>> {
        let n = self.names.len();
        if i == 0 {
            return None;
        }
        let mut v = vec![0];
        if i > 1 {
            v.push(i - 1);
        }
        if i + 1 < n {
            v.push(i + 1);
        }
        Some(v)
    }

    /// Starts node `i`, joining through `seed`.
    pub async fn start_node(&mut self, i: usize, seed: Option<SocketAddr>) -> anyhow::Result<()> {
        let name = &self.names[i];
        let allowed = self
            .neighbours(i)
            .map(|v| v.iter().map(|j| self.names[*j].clone()).collect());
        let seeds: Vec<SocketAddr> = seed.into_iter().collect();
        let mut config = local_config(&self.out, name, allowed, &seeds, 300);
        // A cut link is noticed within about a second.
        fast_link_failure(&mut config);
        let faults = FaultControl::new(i as u64);
        let options = NodeOptions {
            faults: Some(faults.clone()),
            rng_seed: Some(i as u64),
        };
        let node = Node::start_with(config, options)
            .await
            .with_context(|| format!("starting {name}"))?;
        self.nodes.push(node);
        self.faults.push(faults);
        Ok(())
    }

    /// How node `at` sees cluster `of`.
    pub fn state(&self, at: usize, of: usize) -> Option<MemberState> {
        let id = self.ids[of];
        self.nodes
            .get(at)?
            .members()
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.state)
    }

    /// Whether every node sees every cluster alive.
    pub fn all_alive(&self) -> bool {
        self.nodes.len() == self.ids.len()
            && (0..self.nodes.len())
                .all(|a| (0..self.ids.len()).all(|b| self.state(a, b) == Some(MemberState::Alive)))
    }

    /// Waits (until `deadline`) for the seed to know `count` clusters
    /// subscribed to a pattern matching `topic`; returns how many it knows.
    pub async fn wait_for_subscribers(
        &self,
        topic: &str,
        count: usize,
        deadline: std::time::Instant,
    ) -> usize {
        let known = || {
            self.nodes
                .first()
                .map_or(0, |n| n.status().subscribers_of(topic).len())
        };
        let within = deadline.saturating_duration_since(std::time::Instant::now());
        progress::until(within, || known() >= count).await;
        known()
    }

    /// The roster name of `id`, or its short hex.
    pub fn name_of(&self, id: &ClusterId) -> String {
        self.ids
            .iter()
            .position(|x| x == id)
            .map(|i| self.names[i].clone())
            .unwrap_or_else(|| id.to_string().chars().take(8).collect())
    }

    /// Stops every node.
    pub async fn shutdown(&mut self) {
        for node in self.nodes.drain(..) {
            node.shutdown().await;
        }
        progress::note("all nodes stopped");
    }
}
