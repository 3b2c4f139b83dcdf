//! A deterministic simulator for the protocol core (test support, public so
//! tests, examples and benchmarks can use it).
//!
//! It drives many [`crate::proto::core::Core`]s with a virtual clock, a
//! seeded RNG, a per-pair latency model, random loss, partitions, crashes
//! and restarts (same key, higher incarnation), and a frame hook for
//! Byzantine behaviours. Every event the cores report is logged with its
//! virtual time. The run is a pure function of the seed: the queue breaks
//! ties by insertion order, every map is ordered, and each core's RNG is
//! derived from the seed, so a failing seed replays exactly. Failure
//! messages start with [`Sim::context`], which names the seed.
//!
//! ```no_run
//! use std::time::Duration;
//! use fedmesh::proto::membership::MembershipConfig;
//! use fedmesh::sim::{Sim, SimConfig};
//!
//! let mut sim = Sim::cluster(SimConfig::with_seed(7), 50, MembershipConfig::default());
//! sim.start_all().unwrap();
//! let t = sim.run_until_true(Duration::from_secs(30), Duration::from_millis(100), |s| {
//!     s.full_membership()
//! });
//! assert!(t.is_some(), "{} no convergence: {:?}", sim.context(), sim.membership_gaps(5));
//! ```

mod check;
mod config;
mod net;
mod queue;
mod stats;
mod world;

pub use config::{Latency, SimConfig, splitmix64};
pub use stats::Stats;
pub use world::{FrameFilter, LogEntry, NodeSpec, Sim, node_addr};
