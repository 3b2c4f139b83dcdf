//! The five delivery guarantees, with the names operators type.

use std::fmt;
use std::str::FromStr;

use crate::proto::vote::VoteKind;

/// How a message is delivered (DESIGN.md, "Delivery guarantees").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum Guarantee {
    /// Best effort: no ack, no retry.
    FireAndForget = 1,
    /// Persisted outbox, retried until acked, deduplicated by the receiver.
    AtLeastOnce = 2,
    /// At-least-once to every cluster with a matching subscription, per-destination acks.
    Broadcast = 3,
    /// Delivered after clusters holding more than 1/2 of the weight accept.
    GlobalQuorum = 4,
    /// Delivered with a certificate of more than 2/3 of the weight.
    ByzantineQuorum = 5,
}

/// A guarantee name that is not one of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown guarantee {0:?} (expected fire-and-forget, at-least-once, broadcast, global-quorum or byzantine-quorum)"
)]
pub struct UnknownGuarantee(pub String);

impl Guarantee {
    /// All five, in wire order.
    pub const ALL: [Guarantee; 5] = [
        Guarantee::FireAndForget,
        Guarantee::AtLeastOnce,
        Guarantee::Broadcast,
        Guarantee::GlobalQuorum,
        Guarantee::ByzantineQuorum,
    ];

    /// The canonical (kebab-case) name.
    pub fn name(self) -> &'static str {
        match self {
            Guarantee::FireAndForget => "fire-and-forget",
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::Broadcast => "broadcast",
            Guarantee::GlobalQuorum => "global-quorum",
            Guarantee::ByzantineQuorum => "byzantine-quorum",
        }
    }

    /// The vote kind of a quorum guarantee.
    pub fn vote_kind(self) -> Option<VoteKind> {
        match self {
            Guarantee::GlobalQuorum => Some(VoteKind::GlobalQuorum),
            Guarantee::ByzantineQuorum => Some(VoteKind::ByzantineQuorum),
            _ => None,
        }
    }

    /// Whether the sender keeps the message in its outbox until acked.
    pub fn needs_ack(self) -> bool {
        matches!(self, Guarantee::AtLeastOnce | Guarantee::Broadcast)
    }

    /// The guarantee encoded as `b`.
    pub fn from_u8(b: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|g| *g as u8 == b)
    }
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Guarantee {
    type Err = UnknownGuarantee;
    /// Accepts the kebab-case name or the MPREG-style upper-case name
    /// (`AT_LEAST_ONCE`), case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|g| g.name() == norm)
            .ok_or_else(|| UnknownGuarantee(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_round_trip() {
        for g in Guarantee::ALL {
            assert_eq!(g.to_string().parse::<Guarantee>().unwrap(), g);
            assert_eq!(Guarantee::from_u8(g as u8), Some(g));
        }
        assert_eq!("AT_LEAST_ONCE".parse(), Ok(Guarantee::AtLeastOnce));
        assert_eq!("Byzantine_Quorum".parse(), Ok(Guarantee::ByzantineQuorum));
        assert!("exactly-once".parse::<Guarantee>().is_err());
        assert_eq!(Guarantee::from_u8(0), None);
        assert_eq!(
            Guarantee::GlobalQuorum.vote_kind(),
            Some(VoteKind::GlobalQuorum)
        );
        assert_eq!(Guarantee::Broadcast.vote_kind(), None);
        assert!(Guarantee::Broadcast.needs_ack() && !Guarantee::FireAndForget.needs_ack());
    }
}
