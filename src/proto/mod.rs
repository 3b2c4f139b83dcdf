//! The IO-free protocol core: no tokio, no sockets, no clock, no filesystem.

pub mod bytes32;
pub mod cert;
pub mod certificate;
pub mod codec;
pub mod core;
pub mod delivery;
pub mod evidence;
pub mod identity;
pub mod log_entry;
pub mod membership;
pub mod queue;
pub mod quorum;
pub mod roster;
pub mod roster_epoch;
pub mod roster_sync;
pub mod time;
pub mod topology;
pub mod vclock;
pub mod vote;
pub mod wire;

pub use bytes32::{Digest, NetworkId};
pub use identity::{ClusterId, Identity};
