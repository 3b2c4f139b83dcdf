//! Roster epochs in the core: carrying out what [`RosterSync`] decides,
//! flooding proposals and votes over direct links, and roster anti-entropy
//! (summaries on every new link and every gossip round while a change is
//! pending, fetches of missing epochs).

use crate::proto::identity::ClusterId;
use crate::proto::membership::event::Event;
use crate::proto::membership::peers::{LinkState, admit};
use crate::proto::roster_sync::{
    PendingStatus, Progress, Proposal, RosterChange, SyncAction, SyncCounters,
};
use crate::proto::time::Millis;
use crate::proto::vote::SignedVote;
use crate::proto::wire::{
    Blob, Frame, MAX_FRAME_LEN, MAX_ROSTER_EPOCHS_PER_FRAME, MAX_ROSTER_PROPOSALS_PER_FRAME,
    MAX_ROSTER_VOTES_PER_FRAME,
};

use super::*;

/// Byte budget of one roster frame's payload (well under [`MAX_FRAME_LEN`]).
const ROSTER_FRAME_BUDGET: usize = MAX_FRAME_LEN / 2;
/// Idle roster summaries go to one link every this many rounds.
const IDLE_SUMMARY_EVERY: u64 = 5;

/// Splits blobs into groups under the byte budget and the count bound.
fn chunks(blobs: Vec<Blob>, max: usize) -> Vec<Vec<Blob>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut bytes = 0usize;
    for b in blobs {
        if !cur.is_empty() && (bytes + b.0.len() > ROSTER_FRAME_BUDGET || cur.len() >= max) {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += b.0.len();
        cur.push(b);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn pending_frames(proposals: &[Proposal], votes: &[SignedVote]) -> Vec<Frame> {
    let p = proposals.iter().map(|p| Blob(p.encode())).collect();
    let v = votes.iter().map(|v| Blob(v.encode().to_vec())).collect();
    let mut frames: Vec<Frame> = chunks(p, MAX_ROSTER_PROPOSALS_PER_FRAME)
        .into_iter()
        .map(|proposals| Frame::RosterPending {
            proposals,
            votes: Vec::new(),
        })
        .collect();
    frames.extend(
        chunks(v, MAX_ROSTER_VOTES_PER_FRAME)
            .into_iter()
            .map(|votes| Frame::RosterPending {
                proposals: Vec::new(),
                votes,
            }),
    );
    frames
}

impl Core {
    /// Restores the roster chain and our signed votes from storage (see
    /// [`Persist::RosterEpoch`] and [`Persist::SignedVote`]); call before
    /// the first input.
    pub fn with_roster_state(
        mut self,
        epochs: impl IntoIterator<Item = RosterEpoch>,
        votes: impl IntoIterator<Item = SignedVote>,
    ) -> Self {
        let genesis = self.roster_sync.genesis().clone();
        let identity = self.roster_sync.identity().clone();
        self.roster_sync = RosterSync::new(identity, genesis, epochs, votes);
        self.roster = self.roster_sync.roster().clone();
        self.own.set_roster_epoch(self.roster.epoch());
        self.quorum = self
            .quorum
            .rebuilt(self.roster.clone(), self.sigcache.clone());
        self
    }

    /// The current roster epoch with its certificate.
    pub fn roster_epoch(&self) -> &RosterEpoch {
        self.roster_sync.current()
    }

    /// Every epoch after `epoch` held.
    pub fn roster_epochs_after(&self, epoch: u64) -> &[RosterEpoch] {
        self.roster_sync.epochs_after(epoch)
    }

    /// The vote on the next epoch, if any.
    pub fn roster_pending(&self) -> Option<PendingStatus> {
        self.roster_sync.pending_status()
    }

    /// Roster counters.
    pub fn roster_counters(&self) -> &SyncCounters {
        self.roster_sync.counters()
    }

    pub(super) fn propose_roster(
        &mut self,
        now: Millis,
        change: RosterChange,
        out: &mut Vec<Output>,
    ) {
        let mut acts = Vec::new();
        if let Err(e) = self.roster_sync.propose(now, change, &mut acts) {
            out.push(Output::Event(Event::RosterProgress(Progress::Failed {
                reason: e.to_string(),
            })));
        }
        self.roster_actions(now, None, acts, out);
    }

    /// Summary to a freshly established link, so either side learns what
    /// the other holds.
    pub(super) fn roster_link_up(&mut self, peer: ClusterId, out: &mut Vec<Output>) {
        self.send_summary(peer, false, out);
    }

    /// Each gossip round: vote when due, and spread summaries (to every link
    /// while a change is pending, otherwise to one link now and then).
    pub(super) fn roster_tick(&mut self, now: Millis, out: &mut Vec<Output>) {
        let mut acts = Vec::new();
        self.roster_sync.poll(now, &mut acts);
        self.roster_actions(now, None, acts, out);
        self.roster_ticks = self.roster_ticks.wrapping_add(1);
        let live = self.established_links();
        if self.roster_sync.summary().is_some() {
            for peer in live {
                self.send_summary(peer, false, out);
            }
        } else if self.roster_ticks.is_multiple_of(IDLE_SUMMARY_EVERY) && !live.is_empty() {
            let i = (self.roster_ticks / IDLE_SUMMARY_EVERY) as usize % live.len();
            self.send_summary(live[i], false, out);
        }
    }

    fn established_links(&self) -> Vec<ClusterId> {
        self.peers
            .links()
            .filter(|(_, l)| l.state == LinkState::Established && l.closing.is_none())
            .map(|(id, _)| *id)
            .collect()
    }

    fn send_summary(&mut self, peer: ClusterId, reply: bool, out: &mut Vec<Output>) {
        let frame = Frame::RosterSummary {
            epoch: self.roster_sync.epoch(),
            pending: self.roster_sync.summary(),
            reply,
        };
        self.send(peer, frame, out);
    }

    fn send_epochs_after(&mut self, peer: ClusterId, after: u64, out: &mut Vec<Output>) {
        let blobs: Vec<Blob> = self
            .roster_sync
            .epochs_after(after)
            .iter()
            .take(MAX_ROSTER_EPOCHS_PER_FRAME)
            .map(|e| Blob(e.encode()))
            .collect();
        for epochs in chunks(blobs, MAX_ROSTER_EPOCHS_PER_FRAME) {
            self.send(peer, Frame::RosterEpochs { epochs }, out);
        }
    }

    /// Handles the roster frames of an established link.
    pub(super) fn on_roster_frame(
        &mut self,
        now: Millis,
        from: ClusterId,
        frame: Frame,
        out: &mut Vec<Output>,
    ) {
        let mut acts = Vec::new();
        match frame {
            Frame::RosterSummary {
                epoch,
                pending,
                reply,
            } => {
                let mine = self.roster_sync.epoch();
                if epoch < mine {
                    self.send_epochs_after(from, epoch, out);
                } else if epoch > mine {
                    self.send(from, Frame::RosterFetch { after: mine }, out);
                } else if pending != self.roster_sync.summary() {
                    let (p, v) = self.roster_sync.pending_items();
                    for f in pending_frames(&p, &v) {
                        self.send(from, f, out);
                    }
                    if !reply {
                        self.send_summary(from, true, out);
                    }
                }
            }
            Frame::RosterFetch { after } => self.send_epochs_after(from, after, out),
            Frame::RosterEpochs { epochs } => {
                let mut decoded = Vec::with_capacity(epochs.len());
                for b in epochs {
                    match RosterEpoch::decode(&b.0) {
                        Ok(e) => decoded.push(e),
                        Err(_) => self.roster_sync.note_malformed(),
                    }
                }
                self.roster_sync.on_epochs(now, decoded, &mut acts);
            }
            Frame::RosterPending { proposals, votes } => {
                let proposals = proposals
                    .iter()
                    .filter_map(|b| {
                        Proposal::decode(&b.0)
                            .map_err(|_| self.roster_sync.note_malformed())
                            .ok()
                    })
                    .collect();
                let votes = votes
                    .iter()
                    .filter_map(|b| {
                        SignedVote::decode(&b.0)
                            .map_err(|_| self.roster_sync.note_malformed())
                            .ok()
                    })
                    .collect();
                self.roster_sync.on_items(now, proposals, votes, &mut acts);
            }
            _ => {}
        }
        self.roster_actions(now, Some(from), acts, out);
    }

    /// Carries out what the roster sync decided; `from` is the link the
    /// triggering items came from (not sent back there).
    fn roster_actions(
        &mut self,
        now: Millis,
        from: Option<ClusterId>,
        acts: Vec<SyncAction>,
        out: &mut Vec<Output>,
    ) {
        for a in acts {
            match a {
                SyncAction::Signed(v) => {
                    out.push(Output::Persist(Persist::SignedVote(v)));
                    self.flood(None, pending_frames(&[], &[v]), out);
                }
                SyncAction::Proposed(p) => self.flood(None, pending_frames(&[p], &[]), out),
                SyncAction::Forward { proposals, votes } => {
                    self.flood(from, pending_frames(&proposals, &votes), out)
                }
                SyncAction::Adopted(e) => self.adopted(now, from, e, out),
                SyncAction::Conflict(e) => out.push(Output::Event(Event::RosterConflict {
                    epoch: e.roster.epoch(),
                })),
                SyncAction::Evidence(ev) => out.push(Output::Event(Event::RosterEquivocation {
                    signer: ev.signer(),
                    epoch: ev.slot().round.epoch,
                })),
                SyncAction::Fetch => {
                    if let Some(peer) = from {
                        let after = self.roster_sync.epoch();
                        self.send(peer, Frame::RosterFetch { after }, out);
                    }
                }
                SyncAction::Progress(p) => out.push(Output::Event(Event::RosterProgress(p))),
            }
        }
    }

    fn flood(&mut self, except: Option<ClusterId>, frames: Vec<Frame>, out: &mut Vec<Output>) {
        for peer in self.established_links() {
            if Some(peer) == except {
                continue;
            }
            for f in &frames {
                self.send(peer, f.clone(), out);
            }
        }
    }

    /// A new epoch: persist it, use its roster, tell links and the operator,
    /// and close links to clusters it no longer lists.
    fn adopted(
        &mut self,
        now: Millis,
        from: Option<ClusterId>,
        e: RosterEpoch,
        out: &mut Vec<Output>,
    ) {
        self.roster = e.roster.clone();
        self.own.set_roster_epoch(e.roster.epoch());
        self.quorum_roster(e.roster.clone());
        out.push(Output::Persist(Persist::RosterEpoch(Box::new(e.clone()))));
        // The vote log carries every epoch so that `fedmesh verify` can check
        // later votes with the weights they were cast under.
        out.push(super::quorum::log_record(
            crate::proto::log_entry::LogEntry::Roster(e.clone()),
        ));
        out.push(Output::Event(Event::RosterEpoch {
            epoch: e.roster.epoch(),
            members: e
                .roster
                .members()
                .iter()
                .map(|m| (m.name.clone(), m.weight))
                .collect(),
        }));
        let frame = Frame::RosterEpochs {
            epochs: vec![Blob(e.encode())],
        };
        self.flood(from, vec![frame], out);
        for peer in self.established_links() {
            if let Err(r) = admit(&self.roster, self.config.open, &peer) {
                self.refuse(now, peer, r, out);
            }
        }
    }
}
