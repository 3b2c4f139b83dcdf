//! Membership: who is in the federation, alive, and how well connected.
//!
//! Every cluster owns one signed, versioned [`record::NodeRecord`], re-signed
//! only when its content changes, and signs a small [`heartbeat`] every
//! heartbeat interval; both spread by scuttlebutt anti-entropy
//! ([`antientropy`]), records also by eager pushes;
//! a phi-accrual detector plus the transport's connection state drive each
//! member through Alive → Suspect → Dead ([`failure`]); dead members stay as
//! tombstones until a TTL ([`table`]); [`peers`] decides admission and the
//! shape of the mesh. Everything here is IO-free and deterministic given the
//! RNG seed; [`crate::proto::core::Core`] glues it to inputs and outputs.

pub mod antientropy;
pub mod config;
pub mod counters;
pub mod event;
pub mod failure;
pub mod heartbeat;
pub mod own;
pub mod peers;
pub mod record;
pub mod sigcache;
pub mod status;
pub mod table;

pub use config::MembershipConfig;
pub use counters::{Counters, PerKind};
pub use event::Event;
pub use failure::MemberState;
pub use heartbeat::SignedHeartbeat;
pub use peers::{LinkState, Refusal};
pub use record::{LinkInfo, NodeRecord, SignedRecord, Version};
pub use sigcache::SigCache;
pub use status::{LinkStatus, MemberStatus};
