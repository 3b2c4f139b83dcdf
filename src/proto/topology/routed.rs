//! The routed envelope and the forwarding decision.
//!
//! `path` lists the clusters that handled the message so far: the origin
//! first, then every relay; each relay appends itself before forwarding, so
//! on arrival the last entry is the authenticated sender and `path.len()`
//! is the number of links travelled. `hop_budget` is the most links the
//! message may travel; it is set by the origin and never changes.
//!
//! The envelope is not signed: a relay can lie about the origin. Payloads
//! that need end-to-end authenticity sign themselves (the delivery layer).

use super::dijkstra::RouteTable;
use super::payload::{PayloadError, RoutedPayload};
use crate::proto::identity::ClusterId;

/// Largest accepted hop budget, and so the longest path.
pub const MAX_HOP_BUDGET: u8 = 32;
/// The hop budget of messages this node originates.
pub const DEFAULT_HOP_BUDGET: u8 = 16;

/// A message travelling hop by hop to `dst`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Routed {
    /// The final destination.
    pub dst: ClusterId,
    /// Most links the message may travel (at most [`MAX_HOP_BUDGET`]).
    pub hop_budget: u8,
    /// The origin, then every relay so far.
    pub path: Vec<ClusterId>,
    /// What it carries.
    pub payload: RoutedPayload,
}

/// Why a routed frame is refused outright (a bound, not a routing decision).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutedError {
    /// `hop_budget` is above [`MAX_HOP_BUDGET`].
    #[error("hop budget {0} exceeds the cap of {MAX_HOP_BUDGET}")]
    BudgetTooLarge(u8),
    /// `path` is longer than [`MAX_HOP_BUDGET`].
    #[error("routed path of {0} entries exceeds the cap of {MAX_HOP_BUDGET}")]
    PathTooLong(usize),
    /// The payload breaks a bound.
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

impl Routed {
    /// A new message from `origin` to `dst`.
    pub fn new(origin: ClusterId, dst: ClusterId, payload: RoutedPayload) -> Self {
        Routed {
            dst,
            hop_budget: DEFAULT_HOP_BUDGET,
            path: vec![origin],
            payload,
        }
    }

    /// The cluster that sent it first (as claimed).
    pub fn origin(&self) -> Option<ClusterId> {
        self.path.first().copied()
    }

    /// Checks the budget, the path and the payload against their caps.
    pub fn check_bounds(&self) -> Result<(), RoutedError> {
        if self.hop_budget > MAX_HOP_BUDGET {
            return Err(RoutedError::BudgetTooLarge(self.hop_budget));
        }
        if self.path.len() > MAX_HOP_BUDGET as usize {
            return Err(RoutedError::PathTooLong(self.path.len()));
        }
        Ok(self.payload.check_bounds()?)
    }
}

/// Why a routed message is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum DropReason {
    /// It travelled, or would travel, more links than its budget.
    OverBudget,
    /// This node is already on its path.
    Loop,
    /// The destination is known but unreachable from here.
    NoRoute,
    /// The destination is not a live member.
    DstUnknown,
    /// The path is empty or does not end with the sender.
    BadPath,
}

impl DropReason {
    /// Every reason, in declaration order.
    pub const ALL: [DropReason; 5] = [
        DropReason::OverBudget,
        DropReason::Loop,
        DropReason::NoRoute,
        DropReason::DstUnknown,
        DropReason::BadPath,
    ];

    /// A stable lowercase name (metrics labels).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::OverBudget => "over_budget",
            DropReason::Loop => "loop",
            DropReason::NoRoute => "no_route",
            DropReason::DstUnknown => "dst_unknown",
            DropReason::BadPath => "bad_path",
        }
    }

    /// Position in [`DropReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What to do with a routed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// This node is the destination.
    Deliver,
    /// Append this node to the path and send it to `next_hop`.
    Forward {
        /// The neighbour on the best route.
        next_hop: ClusterId,
    },
    /// Drop it and count why.
    Drop(DropReason),
}

/// Decides what `me` does with `msg` received from `from` (`None` when
/// `me` originates it). `live_member` says whether a cluster is a live
/// (alive or suspect) member; `routes` is `me`'s current route table.
pub fn decide(
    me: &ClusterId,
    from: Option<&ClusterId>,
    msg: &Routed,
    routes: &RouteTable,
    live_member: impl Fn(&ClusterId) -> bool,
) -> Decision {
    let sent_by_sender = match from {
        Some(f) => msg.path.last() == Some(f),
        None => msg.path.last() == Some(me) && msg.path.len() == 1,
    };
    if !sent_by_sender {
        return Decision::Drop(DropReason::BadPath);
    }
    if from.is_some() && msg.path.contains(me) {
        return Decision::Drop(DropReason::Loop);
    }
    let travelled = msg.path.len() - usize::from(from.is_none());
    if travelled > usize::from(msg.hop_budget) {
        return Decision::Drop(DropReason::OverBudget);
    }
    if msg.dst == *me {
        return Decision::Deliver;
    }
    if travelled + 1 > usize::from(msg.hop_budget) {
        return Decision::Drop(DropReason::OverBudget);
    }
    if !live_member(&msg.dst) {
        return Decision::Drop(DropReason::DstUnknown);
    }
    match routes.get(&msg.dst) {
        Some(r) if msg.path.contains(&r.next_hop) => Decision::Drop(DropReason::Loop),
        Some(r) => Decision::Forward {
            next_hop: r.next_hop,
        },
        None => Decision::Drop(DropReason::NoRoute),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::topology::dijkstra::Route;

    fn id(n: u8) -> ClusterId {
        ClusterId([n; 32])
    }

    fn probe(dst: u8, path: &[u8], budget: u8) -> Routed {
        Routed {
            dst: id(dst),
            hop_budget: budget,
            path: path.iter().map(|n| id(*n)).collect(),
            payload: RoutedPayload::Probe {
                id: 1,
                body: vec![],
            },
        }
    }

    fn routes(to: &[(u8, u8)]) -> RouteTable {
        to.iter()
            .map(|&(dst, hop)| {
                (
                    id(dst),
                    Route {
                        next_hop: id(hop),
                        cost_micros: 1,
                        path: vec![id(2), id(hop), id(dst)],
                    },
                )
            })
            .collect()
    }

    fn any(_: &ClusterId) -> bool {
        true
    }

    #[test]
    fn delivers_here_and_forwards_on_the_route() {
        let me = id(2);
        let r = routes(&[(4, 3)]);
        assert_eq!(
            decide(&me, Some(&id(1)), &probe(2, &[1], 4), &r, any),
            Decision::Deliver
        );
        assert_eq!(
            decide(&me, Some(&id(1)), &probe(4, &[1], 4), &r, any),
            Decision::Forward { next_hop: id(3) }
        );
        // Originating: the path is just this node.
        assert_eq!(
            decide(&me, None, &probe(4, &[2], 4), &r, any),
            Decision::Forward { next_hop: id(3) }
        );
    }

    #[test]
    fn drops_over_budget() {
        let me = id(2);
        let r = routes(&[(4, 3)]);
        // Two links travelled with a budget of two: delivering is fine,
        // forwarding would be a third.
        assert_eq!(
            decide(&me, Some(&id(1)), &probe(2, &[5, 1], 2), &r, any),
            Decision::Deliver
        );
        assert_eq!(
            decide(&me, Some(&id(1)), &probe(4, &[5, 1], 2), &r, any),
            Decision::Drop(DropReason::OverBudget)
        );
        assert_eq!(
            decide(&me, Some(&id(1)), &probe(2, &[6, 5, 1], 2), &r, any),
            Decision::Drop(DropReason::OverBudget)
        );
        assert_eq!(
            decide(&me, None, &probe(4, &[2], 0), &r, any),
            Decision::Drop(DropReason::OverBudget)
        );
    }

    #[test]
    fn drops_loops() {
        let me = id(2);
        // Already been here.
        let r = routes(&[(4, 3)]);
        assert_eq!(
            decide(&me, Some(&id(1)), &probe(4, &[2, 1], 8), &r, any),
            Decision::Drop(DropReason::Loop)
        );
        // The next hop already handled it: it would bounce back.
        let back = routes(&[(4, 1)]);
        assert_eq!(
            decide(&me, Some(&id(1)), &probe(4, &[1], 8), &back, any),
            Decision::Drop(DropReason::Loop)
        );
    }

    #[test]
    fn drops_unknown_and_unreachable_destinations_and_bad_paths() {
        let me = id(2);
        let r = routes(&[(4, 3)]);
        assert_eq!(
            decide(&me, Some(&id(1)), &probe(9, &[1], 8), &r, |c| *c != id(9)),
            Decision::Drop(DropReason::DstUnknown)
        );
        assert_eq!(
            decide(&me, Some(&id(1)), &probe(9, &[1], 8), &r, any),
            Decision::Drop(DropReason::NoRoute)
        );
        // The path must end with the authenticated sender.
        assert_eq!(
            decide(&me, Some(&id(1)), &probe(4, &[5], 8), &r, any),
            Decision::Drop(DropReason::BadPath)
        );
        assert_eq!(
            decide(&me, Some(&id(1)), &probe(4, &[], 8), &r, any),
            Decision::Drop(DropReason::BadPath)
        );
    }

    #[test]
    fn bounds() {
        let mut m = probe(4, &[1], MAX_HOP_BUDGET);
        assert!(m.check_bounds().is_ok());
        m.hop_budget = MAX_HOP_BUDGET + 1;
        assert!(matches!(
            m.check_bounds(),
            Err(RoutedError::BudgetTooLarge(_))
        ));
        let mut m = probe(4, &[1; MAX_HOP_BUDGET as usize + 1], 4);
        assert!(matches!(m.check_bounds(), Err(RoutedError::PathTooLong(_))));
        m.path.truncate(1);
        m.payload = RoutedPayload::Probe {
            id: 0,
            body: vec![0; crate::proto::topology::payload::MAX_PROBE_BODY + 1],
        };
        assert!(matches!(m.check_bounds(), Err(RoutedError::Payload(_))));
    }
}
