//! Proposals and votes for the successor of the current epoch: validation,
//! tallying in attempts, the deterministic choice, and our own proposal.

use super::*;
use crate::proto::quorum::{Decision, VoteEffect};
use crate::proto::vote::{Vote, VoteKind};

/// Why a local proposal is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// The change does not apply to the current roster.
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// Only members of the current epoch may propose.
    #[error("this cluster is not a member of roster epoch {0}")]
    NotAMember(u64),
    /// One proposal per member per epoch.
    #[error("this cluster already proposed a roster for epoch {0}")]
    AlreadyProposed(u64),
}

fn xor_into(acc: &mut [u8; 32], d: &Digest) {
    for (a, b) in acc.iter_mut().zip(d.0.iter()) {
        *a ^= b;
    }
}

impl RosterSync {
    /// Proposes `change` on top of the current epoch.
    pub fn propose(
        &mut self,
        now: Millis,
        change: RosterChange,
        out: &mut Vec<SyncAction>,
    ) -> Result<Digest, ProposeError> {
        let digest = self.propose_inner(now, &change, out)?;
        self.own = Some(OwnChange {
            change,
            rebases: 0,
            last: None,
        });
        self.report(out);
        Ok(digest)
    }

    fn propose_inner(
        &mut self,
        now: Millis,
        change: &RosterChange,
        out: &mut Vec<SyncAction>,
    ) -> Result<Digest, ProposeError> {
        let me = self.identity.id();
        if self.roster().member(&me).is_none() {
            return Err(ProposeError::NotAMember(self.epoch()));
        }
        if self.pending.proposers.contains(&me) {
            return Err(ProposeError::AlreadyProposed(self.epoch() + 1));
        }
        let roster = change.apply(self.roster())?;
        let p = Proposal::sign(Arc::new(roster), &self.identity);
        let digest = p.value();
        self.insert_proposal(now, p.clone(), out);
        out.push(SyncAction::Proposed(p));
        Ok(digest)
    }

    /// Handles gossiped proposals and votes; forwards the new ones.
    pub fn on_items(
        &mut self,
        now: Millis,
        proposals: Vec<Proposal>,
        votes: Vec<SignedVote>,
        out: &mut Vec<SyncAction>,
    ) {
        let epoch = self.epoch();
        let mut new_proposals = Vec::new();
        for p in proposals {
            if self.epoch() != epoch {
                break;
            }
            if self.on_proposal(now, &p, out) {
                new_proposals.push(p);
            }
        }
        let mut new_votes = Vec::new();
        for v in votes {
            if self.epoch() != epoch {
                break;
            }
            if self.on_vote(now, &v, out) {
                new_votes.push(v);
            }
        }
        if !new_proposals.is_empty() || !new_votes.is_empty() {
            out.push(SyncAction::Forward {
                proposals: new_proposals,
                votes: new_votes,
            });
        }
        self.report(out);
    }

    fn on_proposal(&mut self, now: Millis, p: &Proposal, out: &mut Vec<SyncAction>) -> bool {
        if Some(p.roster.epoch()) != self.epoch().checked_add(1)
            || self.pending.proposers.contains(&p.proposer)
        {
            return false;
        }
        if p.verify(self.roster()).is_err() {
            self.counters.bad_proposals += 1;
            return false;
        }
        self.insert_proposal(now, p.clone(), out);
        true
    }

    fn insert_proposal(&mut self, now: Millis, p: Proposal, out: &mut Vec<SyncAction>) {
        self.pending.proposers.insert(p.proposer);
        let value = p.value();
        if self.pending.proposals.contains_key(&value) {
            return;
        }
        xor_into(&mut self.pending.summary, &value);
        self.pending.proposals.insert(value, p);
        self.pending.opened.get_or_insert(now);
        // Votes may have decided this value before its roster arrived.
        let lo = self.pending.dead.unwrap_or(0);
        for a in lo..=lo.saturating_add(ATTEMPT_WINDOW) {
            let round = RosterEpoch::change_round(self.roster(), a);
            if self.coordinator.decision(&round) == Some(Decision::Accepted(value)) {
                self.try_certify(now, a, value, out);
                return;
            }
        }
    }

    /// Counts one vote; true if it is new and worth forwarding.
    fn on_vote(&mut self, now: Millis, v: &SignedVote, out: &mut Vec<SyncAction>) -> bool {
        let round = v.vote.round;
        if round.kind != VoteKind::RosterChange || round.epoch != self.epoch() {
            return false;
        }
        let Some(attempt) = self.attempt_of(&round.subject) else {
            return false;
        };
        let key = (attempt, v.vote.voter);
        if self.pending.votes.get(&key) == Some(v) {
            return false;
        }
        let Ok(verified) = self.coordinator.verify(v) else {
            self.counters.bad_votes += 1;
            return false;
        };
        let Ok(report) = self.coordinator.add_vote(&verified) else {
            self.counters.bad_votes += 1;
            return false;
        };
        let new = match report.effect {
            VoteEffect::Counted => {
                xor_into(&mut self.pending.summary, &v.cache_key());
                self.pending.votes.insert(key, *v);
                true
            }
            VoteEffect::Equivocation(evidence) => {
                out.push(SyncAction::Evidence(evidence));
                true
            }
            VoteEffect::Duplicate | VoteEffect::FurtherConflict | VoteEffect::SignerFlagged => {
                false
            }
        };
        match report.decided {
            Some(Decision::Accepted(value)) => self.try_certify(now, attempt, value, out),
            Some(Decision::Rejected) => self.mark_dead(now, attempt),
            None => {}
        }
        new
    }

    /// Builds the certificate of a decided attempt and adopts the epoch,
    /// once the roster of the winning value is known.
    fn try_certify(&mut self, now: Millis, attempt: u32, value: Digest, out: &mut Vec<SyncAction>) {
        let Some(p) = self.pending.proposals.get(&value) else {
            return;
        };
        let round = RosterEpoch::change_round(self.roster(), attempt);
        let Some(certificate) = self.coordinator.certificate(&round) else {
            return;
        };
        let e = RosterEpoch {
            roster: p.roster.clone(),
            certificate: Some(certificate),
            attempt,
        };
        // Signatures were verified as the votes arrived.
        if e.verify_successor_tally(self.roster()).is_err() {
            self.counters.bad_epochs += 1;
            return;
        }
        if self.adopt(e, out) {
            self.after_adoption(now, out);
        }
    }

    /// Records that no value can reach quorum in `attempt`: voting moves on.
    fn mark_dead(&mut self, now: Millis, attempt: u32) {
        if self.pending.dead.is_some_and(|d| d >= attempt) {
            return;
        }
        self.pending.dead = Some(attempt);
        self.counters.dead_attempts += 1;
        self.pending.opened = Some(now);
        let stale: Vec<(u32, ClusterId)> = self
            .pending
            .votes
            .range(..(attempt, ClusterId([0; 32])))
            .map(|(k, _)| *k)
            .collect();
        let mut rounds = BTreeSet::new();
        for k in stale {
            if let Some(v) = self.pending.votes.remove(&k) {
                xor_into(&mut self.pending.summary, &v.cache_key());
                rounds.insert(v.vote.round);
            }
        }
        for r in rounds {
            self.coordinator.forget(&r);
        }
    }

    /// Votes when due: in the first attempt not proven dead, for the lowest
    /// digest among the proposals held, once the collection window passed.
    pub fn poll(&mut self, now: Millis, out: &mut Vec<SyncAction>) {
        let me = self.identity.id();
        if self.roster().weight(&me).unwrap_or(0) == 0 {
            return;
        }
        let attempt = self.pending.dead.map_or(0, |d| d.saturating_add(1));
        let round = RosterEpoch::change_round(self.roster(), attempt);
        if let Some(v) = self.signed.get(&round.subject).copied() {
            // Restored after a restart: count and spread it, never re-sign.
            if self.pending.votes.get(&(attempt, me)) != Some(&v) && self.on_vote(now, &v, out) {
                out.push(SyncAction::Forward {
                    proposals: Vec::new(),
                    votes: vec![v],
                });
            }
            return;
        }
        let Some(opened) = self.pending.opened else {
            return;
        };
        if now < opened.saturating_add(COLLECT_WINDOW.as_duration()) {
            return;
        }
        let Some(value) = self.pending.proposals.keys().next().copied() else {
            return;
        };
        let Ok(signed) = (Vote {
            round,
            value,
            voter: me,
        })
        .sign(&self.identity) else {
            return;
        };
        self.signed.insert(round.subject, signed);
        self.counters.signed += 1;
        out.push(SyncAction::Signed(signed));
        self.on_vote(now, &signed, out);
        self.report(out);
    }

    /// Keeps a vote we signed before a restart so its slot is never re-signed.
    pub(super) fn restore_vote(&mut self, v: SignedVote) {
        if v.vote.round.kind == VoteKind::RosterChange && v.vote.round.epoch == self.epoch() {
            self.signed.insert(v.vote.round.subject, v);
        }
    }

    /// After a new epoch: our change is done, or proposed again on top.
    pub(super) fn after_adoption(&mut self, now: Millis, out: &mut Vec<SyncAction>) {
        let Some(mut own) = self.own.take() else {
            return;
        };
        let epoch = self.epoch();
        if own.change.is_in_effect(self.roster()) {
            out.push(SyncAction::Progress(Progress::Done { epoch }));
            return;
        }
        if own.rebases >= MAX_REBASES {
            out.push(SyncAction::Progress(Progress::Failed {
                reason: format!("still not accepted after {MAX_REBASES} newer epochs"),
            }));
            return;
        }
        match self.propose_inner(now, &own.change, out) {
            Ok(_) => {
                own.rebases += 1;
                own.last = None;
                out.push(SyncAction::Progress(Progress::Rebased { lost: epoch }));
                self.own = Some(own);
            }
            Err(e) => out.push(SyncAction::Progress(Progress::Failed {
                reason: e.to_string(),
            })),
        }
    }

    /// Emits our proposal's progress when it changed.
    fn report(&mut self, out: &mut Vec<SyncAction>) {
        let Some(own) = &self.own else {
            return;
        };
        let me = self.identity.id();
        let Some(value) = self
            .pending
            .proposals
            .iter()
            .find(|(_, p)| p.proposer == me)
            .map(|(v, _)| *v)
        else {
            return;
        };
        let attempt = self.pending.dead.map_or(0, |d| d.saturating_add(1));
        let round = RosterEpoch::change_round(self.roster(), attempt);
        let tally = self.coordinator.tally(&round);
        let progress = Progress::Voting {
            epoch: self.epoch() + 1,
            attempt,
            yes: tally.map_or(0, |t| t.weight_for(&value)),
            voted: tally.map_or(0, |t| t.counted_weight()),
            total: self.roster().total_weight(),
        };
        if own.last.as_ref() != Some(&progress) {
            if let Some(own) = &mut self.own {
                own.last = Some(progress.clone());
            }
            out.push(SyncAction::Progress(progress));
        }
    }

    /// Every proposal and vote held for the next epoch (for anti-entropy).
    pub fn pending_items(&self) -> (Vec<Proposal>, Vec<SignedVote>) {
        (
            self.pending.proposals.values().cloned().collect(),
            self.pending.votes.values().copied().collect(),
        )
    }

    /// A digest of the proposals and votes held, or `None` when nothing is
    /// pending: peers with different summaries push their items.
    pub fn summary(&self) -> Option<Digest> {
        if self.pending.proposals.is_empty() && self.pending.votes.is_empty() {
            None
        } else {
            Some(Digest(self.pending.summary))
        }
    }

    /// The vote on the next epoch, for status pages.
    pub fn pending_status(&self) -> Option<PendingStatus> {
        if self.pending.proposals.is_empty() && self.pending.votes.is_empty() {
            return None;
        }
        let attempt = self.pending.dead.map_or(0, |d| d.saturating_add(1));
        let round = RosterEpoch::change_round(self.roster(), attempt);
        let tally = self.coordinator.tally(&round);
        Some(PendingStatus {
            epoch: self.epoch() + 1,
            attempt,
            proposals: self
                .pending
                .proposals
                .iter()
                .map(|(d, p)| PendingProposal {
                    proposer: p.proposer,
                    digest: *d,
                    yes: tally.map_or(0, |t| t.weight_for(d)),
                    members: p
                        .roster
                        .members()
                        .iter()
                        .map(|m| (m.name.clone(), m.weight))
                        .collect(),
                })
                .collect(),
            voted: tally.map_or(0, |t| t.counted_weight()),
            total: self.roster().total_weight(),
        })
    }
}
