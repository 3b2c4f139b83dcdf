//! fedmesh: a QUIC peer-to-peer overlay for federating clusters, with
//! ed25519-signed weighted votes, equivocation evidence and a verifiable vote log.
//!
//! Layers: [`proto`] is the IO-free protocol core; [`store`] holds durable
//! state and the vote log; [`cli`] is the `fedmesh` binary's front end.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod cli;
pub mod config;
pub mod demo;
pub mod http;
pub mod net;
pub mod node;
pub mod proto;
pub mod sim;
pub mod store;
pub mod testkit;
