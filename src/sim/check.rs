//! Predicates over a whole simulation, for tests and examples. Failure
//! descriptions start with [`Sim::context`], which names the seed.

use super::world::Sim;
use crate::proto::identity::ClusterId;
use crate::proto::membership::event::Event;
use crate::proto::membership::failure::MemberState;
use crate::proto::time::Millis;

impl Sim {
    /// `(index, id, incarnation)` of the running nodes among `nodes`.
    fn expected(&self, nodes: &[usize]) -> Vec<(usize, ClusterId, u64)> {
        nodes
            .iter()
            .filter_map(|i| self.core(*i).map(|c| (*i, c.id(), c.incarnation())))
            .collect()
    }

    /// True if every running node sees every other running node alive, at
    /// its current incarnation.
    pub fn full_membership(&self) -> bool {
        self.membership_among(&self.up_nodes())
    }

    /// [`Self::full_membership`] restricted to `nodes` (observers and
    /// targets alike); nodes that are down are skipped.
    pub fn membership_among(&self, nodes: &[usize]) -> bool {
        let expected = self.expected(nodes);
        expected.iter().all(|(i, _, _)| {
            let Some(core) = self.core(*i) else {
                return false;
            };
            expected.iter().all(|(_, id, inc)| {
                core.member_version(id)
                    .is_some_and(|v| v.incarnation == *inc)
                    && core.member_state(id) == Some(MemberState::Alive)
            })
        })
    }

    /// Up to `limit` descriptions of what keeps [`Self::full_membership`] false.
    pub fn membership_gaps(&self, limit: usize) -> Vec<String> {
        let expected = self.expected(&self.up_nodes());
        let mut gaps = Vec::new();
        for (i, _, _) in &expected {
            let Some(core) = self.core(*i) else { continue };
            for (j, id, inc) in &expected {
                let seen = core.member_version(id);
                let state = core.member_state(id);
                let ok = seen.is_some_and(|v| v.incarnation == *inc)
                    && state == Some(MemberState::Alive);
                if !ok && gaps.len() < limit {
                    gaps.push(format!(
                        "node {i} sees node {j} as {state:?} at {seen:?}, it runs incarnation {inc}"
                    ));
                }
            }
        }
        gaps
    }

    /// True if every running node other than `target` sees it in `state`.
    pub fn all_see(&self, target: usize, state: MemberState) -> bool {
        let id = self.id(target);
        self.up_nodes()
            .into_iter()
            .filter(|i| *i != target)
            .all(|i| self.core(i).and_then(|c| c.member_state(&id)) == Some(state))
    }

    /// True if every node in `observers` sees every node in `targets` in `state`.
    pub fn group_sees(&self, observers: &[usize], targets: &[usize], state: MemberState) -> bool {
        observers.iter().all(|o| {
            self.core(*o).is_some_and(|c| {
                targets
                    .iter()
                    .filter(|t| *t != o)
                    .all(|t| c.member_state(&self.id(*t)) == Some(state))
            })
        })
    }

    /// When node `observer` logged `MemberDead` for `target` (the last time).
    pub fn dead_at(&self, observer: usize, target: usize) -> Option<Millis> {
        let id = self.id(target);
        self.log()
            .iter()
            .rev()
            .find(|e| {
                e.node == observer
                    && matches!(&e.event, Event::MemberDead { id: d, .. } if *d == id)
            })
            .map(|e| e.at)
    }

    /// Number of `MemberDead` events logged at or after `since`.
    pub fn deaths_since(&self, since: Millis) -> usize {
        self.log()
            .iter()
            .filter(|e| e.at >= since && matches!(e.event, Event::MemberDead { .. }))
            .count()
    }

    /// A digest of the event log: equal logs give equal digests, so two runs
    /// of one seed can be compared cheaply.
    pub fn log_digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        for e in self.log() {
            h.update(format!("{}|{}|{:?}\n", e.at.0, e.node, e.event).as_bytes());
        }
        h.finalize().to_hex().to_string()
    }
}
