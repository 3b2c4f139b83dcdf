//! The chain of valid epochs: adopting certified successors, and keeping
//! (never adopting) valid certificates that conflict with an epoch held.

use super::*;
use crate::proto::roster_epoch::change_subject;

impl RosterSync {
    /// Handles gossiped epochs, oldest first: adopts each certified
    /// successor, records conflicts, and asks for missing epochs.
    pub fn on_epochs(
        &mut self,
        now: Millis,
        epochs: impl IntoIterator<Item = RosterEpoch>,
        out: &mut Vec<SyncAction>,
    ) {
        let mut gap = false;
        for e in epochs {
            let n = e.roster.epoch();
            if n <= self.epoch() {
                self.check_held(e, out);
            } else if n == self.epoch() + 1 {
                if self.accept_epoch(e, out) {
                    self.after_adoption(now, out);
                }
            } else {
                gap = true;
            }
        }
        if gap {
            out.push(SyncAction::Fetch);
        }
    }

    /// Compares an epoch we already hold: a valid certificate for another
    /// roster is a fork, kept as evidence; anything else invalid is counted.
    fn check_held(&mut self, e: RosterEpoch, out: &mut Vec<SyncAction>) {
        let Ok(n) = usize::try_from(e.roster.epoch()) else {
            return;
        };
        let held = &self.chain[n];
        if RosterEpoch::change_value(&held.roster) == RosterEpoch::change_value(&e.roster) {
            return;
        }
        let valid = n > 0 && e.verify_successor(&self.chain[n - 1].roster).is_ok();
        if !valid {
            self.counters.bad_epochs += 1;
            return;
        }
        self.counters.conflicts += 1;
        let known = self
            .conflicts
            .iter()
            .any(|c| c.roster.epoch() == e.roster.epoch() && c.encode() == e.encode());
        if !known && self.conflicts.len() < MAX_CONFLICTS_KEPT {
            self.conflicts.push(e.clone());
        }
        out.push(SyncAction::Conflict(Box::new(e)));
    }

    /// Verifies `e` as the successor of the current epoch and adopts it.
    pub(super) fn accept_epoch(&mut self, e: RosterEpoch, out: &mut Vec<SyncAction>) -> bool {
        if e.verify_successor(self.roster()).is_err() {
            self.counters.bad_epochs += 1;
            return false;
        }
        self.adopt(e, out)
    }

    /// Adopts an already verified successor and resets the vote state.
    pub(super) fn adopt(&mut self, e: RosterEpoch, out: &mut Vec<SyncAction>) -> bool {
        if self.coordinator.add_roster(e.roster.clone()).is_err() {
            self.counters.bad_epochs += 1;
            return false;
        }
        let previous = self.roster().clone();
        let lo = self.pending.dead.unwrap_or(0);
        for a in lo..=lo.saturating_add(ATTEMPT_WINDOW) {
            self.coordinator
                .forget(&RosterEpoch::change_round(&previous, a));
        }
        self.chain.push(e.clone());
        self.pending = Pending::default();
        self.signed.clear();
        self.counters.adopted += 1;
        out.push(SyncAction::Adopted(e));
        true
    }

    /// The attempt whose subject is `subject`, among those we keep votes for.
    pub(super) fn attempt_of(&self, subject: &Digest) -> Option<u32> {
        let next = self.epoch().checked_add(1)?;
        let nid = self.roster().network_id();
        let lo = self.pending.dead.unwrap_or(0);
        (lo..=lo.saturating_add(ATTEMPT_WINDOW)).find(|a| change_subject(nid, next, *a) == *subject)
    }
}
