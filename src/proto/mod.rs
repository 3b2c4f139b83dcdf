//! The IO-free protocol core: no tokio, no sockets, no clock, no filesystem.

pub mod bytes32;
pub mod codec;
pub mod identity;
pub mod quorum;
pub mod roster;
pub mod vote;

pub use bytes32::{Digest, NetworkId};
pub use identity::{ClusterId, Identity};
