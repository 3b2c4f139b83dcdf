//! Topology-aware routing, IO-free.
//!
//! - [`graph`]: the link graph built from the gossiped records (and this
//!   node's own live links), with an RTT cost per edge;
//! - [`dijkstra`]: shortest paths from this node to every cluster, with
//!   deterministic tie-breaking;
//! - [`routed`]: the [`routed::Routed`] envelope carried hop by hop, its
//!   bounds, and [`routed::decide`], the pure forwarding decision;
//! - [`payload`]: what a routed message carries;
//! - [`policy`]: which peers a node may link to at all;
//! - [`probes`]: at-least-once test probes awaiting their acks;
//! - [`state`]: the cached route table and when to recompute it.
//!
//! [`crate::proto::core::Core`] glues these to frames, timers and commands
//! (`core/routing.rs`).

pub mod dijkstra;
pub mod graph;
pub mod payload;
pub mod policy;
pub mod probes;
pub mod routed;
pub mod state;

pub use dijkstra::{Route, RouteTable, shortest_paths};
pub use graph::{LinkGraph, SUSPECT_PENALTY_MICROS};
pub use payload::{DataItem, RoutedPayload};
pub use policy::LinkPolicy;
pub use routed::{Decision, DropReason, Routed, decide};
pub use state::Routing;
