//! The transport half of the mesh: QUIC (quinn + rustls) between clusters.
//!
//! This layer makes **no protocol decisions**. It knows nothing of rosters,
//! `Hello` frames or votes; it only
//!
//! - authenticates peers by their self-signed ed25519 certificates, mutually,
//!   and derives each peer's [`ClusterId`](crate::proto::ClusterId) from the
//!   key it proved possession of ([`tls`]);
//! - moves length-prefixed frames whose payload it never looks into
//!   ([`framing`]);
//! - owns one [`Link`] per live connection, with a prioritised, bounded send
//!   queue and a reader that reports [`LinkEvent`]s ([`link`]);
//! - counts everything it refuses or drops ([`LinkStats`], [`TransportStats`]);
//! - and, for tests, can run over a lossy, partitionable UDP socket
//!   ([`faulty`]).
//!
//! Whoever owns a [`Transport`] (the node actor) decides who may stay
//! connected and closes the others with [`Link::close`], whose reason the
//! peer sees in its own [`LinkEvent::Closed`].

pub mod error;
pub mod faulty;
pub mod framing;
pub mod link;
mod queue;
pub mod stats;
pub mod tls;
pub mod transport;

pub use error::{NetError, SendError};
pub use faulty::{FaultControl, FaultStats};
pub use framing::{DEFAULT_MAX_FRAME_LEN, FrameError, read_frame, write_frame};
pub use link::{CloseReason, Link, LinkEvent, LinkId, Priority, close_code};
pub use stats::{LinkStats, TransportStats};
pub use tls::{ALPN, SERVER_NAME, peer_cluster_id};
pub use transport::{Transport, TransportOptions};
