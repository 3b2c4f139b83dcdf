//! What the membership protocol tells the application and the operator.

use crate::proto::identity::ClusterId;

/// A membership or connection event, emitted as [`crate::proto::core::Output::Event`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Event {
    /// A member became known, came back from the dead, or restarted with a
    /// higher incarnation.
    MemberUp {
        /// The member.
        id: ClusterId,
        /// Its incarnation.
        incarnation: u64,
    },
    /// A member's heartbeats are late or our connection to it dropped.
    MemberSuspect {
        /// The member.
        id: ClusterId,
    },
    /// A suspect member's heartbeat advanced again.
    MemberRecovered {
        /// The member.
        id: ClusterId,
    },
    /// A member was declared dead.
    MemberDead {
        /// The member.
        id: ClusterId,
        /// The incarnation that died.
        incarnation: u64,
    },
    /// A member announced a graceful departure.
    MemberLeft {
        /// The member.
        id: ClusterId,
    },
    /// A dead or departed member's tombstone expired and it was forgotten.
    MemberRemoved {
        /// The member.
        id: ClusterId,
    },
    /// A connection finished its handshake.
    LinkUp {
        /// The peer.
        peer: ClusterId,
        /// True if the peer dialed us.
        inbound: bool,
    },
    /// An established connection ended.
    LinkDown {
        /// The peer.
        peer: ClusterId,
        /// Why, as reported by the transport.
        reason: String,
    },
    /// We refused or dropped a peer (sent it `Goodbye` and disconnected).
    Refused {
        /// The peer.
        peer: ClusterId,
        /// The reason sent to it.
        reason: String,
    },
    /// A peer sent us `Goodbye` (a refusal, pruning or its departure).
    Goodbye {
        /// The peer.
        peer: ClusterId,
        /// The reason it gave.
        reason: String,
    },
    /// This node raised its own incarnation (at start, or because it saw a
    /// record of itself from an earlier life that was not older than its own).
    IncarnationChanged {
        /// The new incarnation.
        incarnation: u64,
    },
    /// A new roster epoch was adopted.
    RosterEpoch {
        /// The epoch.
        epoch: u64,
        /// Its members as (name, weight).
        members: Vec<(String, u64)>,
    },
    /// Progress of a roster change this node proposed.
    RosterProgress(crate::proto::roster_sync::Progress),
    /// A valid certificate for a different roster of an epoch already held
    /// (a fork: kept as evidence, never adopted).
    RosterConflict {
        /// The epoch.
        epoch: u64,
    },
    /// A member signed two values for one roster-change slot.
    RosterEquivocation {
        /// The signer.
        signer: ClusterId,
        /// The epoch whose vote it was.
        epoch: u64,
    },
    /// A quorum-round voter signed two values for one slot: flagged here
    /// (excluded from positive tallies for the epoch), evidence logged and
    /// sent to every member.
    SignerFlagged {
        /// The signer.
        signer: ClusterId,
        /// The epoch of the slot.
        epoch: u64,
    },
}
