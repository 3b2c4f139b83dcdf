//! The bounded ring of recent notable events shown by the status page and
//! `fedmesh status`: roster epochs adopted, members up/down/dead, refusals,
//! evidence. Anything else worth showing an operator (message decisions,
//! say) goes in through [`RecentLog::push`].

use std::collections::VecDeque;

pub use crate::http::status::unix_ms_now;
use crate::http::{RecentEvent, RecentKind};
use crate::proto::ClusterId;
use crate::proto::membership::event::Event;
use crate::proto::roster::Roster;
use crate::proto::roster_sync::Progress;

/// How many events the ring keeps; older ones are dropped.
pub const RECENT_CAPACITY: usize = 64;

/// Longest summary kept, in characters (reasons come from peers).
pub const MAX_SUMMARY_CHARS: usize = 200;

/// The newest [`RECENT_CAPACITY`] notable events, oldest first.
#[derive(Debug, Clone, Default)]
pub struct RecentLog {
    entries: VecDeque<RecentEvent>,
}

impl RecentLog {
    /// Appends an event, dropping the oldest when full and cutting the
    /// summary to [`MAX_SUMMARY_CHARS`].
    pub fn push(&mut self, unix_ms: u64, kind: RecentKind, summary: impl Into<String>) {
        let mut summary: String = summary.into();
        if let Some((cut, _)) = summary.char_indices().nth(MAX_SUMMARY_CHARS) {
            summary.truncate(cut);
            summary.push('…');
        }
        if self.entries.len() == RECENT_CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(RecentEvent {
            unix_ms,
            kind,
            summary,
        });
    }

    /// Records `ev` if it is notable; `roster` names the clusters.
    pub fn record(&mut self, unix_ms: u64, ev: &Event, roster: &Roster) {
        if let Some((kind, summary)) = describe(ev, roster) {
            self.push(unix_ms, kind, summary);
        }
    }

    /// The events, oldest first.
    pub fn to_vec(&self) -> Vec<RecentEvent> {
        self.entries.iter().cloned().collect()
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no event was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A notable event's kind and one-line summary; `None` for routine ones
/// (link churn, progress of a vote under way).
fn describe(ev: &Event, roster: &Roster) -> Option<(RecentKind, String)> {
    let name = |id: &ClusterId| {
        roster
            .member(id)
            .map_or_else(|| id.short(), |m| m.name.clone())
    };
    use RecentKind::*;
    Some(match ev {
        Event::MemberUp { id, incarnation } => (
            Member,
            format!("{} up (incarnation {incarnation})", name(id)),
        ),
        Event::MemberSuspect { id } => (Member, format!("{} suspect", name(id))),
        Event::MemberRecovered { id } => (Member, format!("{} recovered", name(id))),
        Event::MemberDead { id, incarnation } => (
            Member,
            format!("{} dead (incarnation {incarnation})", name(id)),
        ),
        Event::MemberLeft { id } => (Member, format!("{} left", name(id))),
        Event::MemberRemoved { id } => (Member, format!("{} forgotten", name(id))),
        Event::IncarnationChanged { incarnation } => (
            Member,
            format!("this node now at incarnation {incarnation}"),
        ),
        Event::Refused { peer, reason } => (Refusal, format!("refused {}: {reason}", name(peer))),
        Event::Goodbye { peer, reason } => {
            (Refusal, format!("goodbye from {}: {reason}", name(peer)))
        }
        Event::RosterEpoch { epoch, members } => {
            let weights: Vec<String> = members.iter().map(|(n, w)| format!("{n}={w}")).collect();
            (
                Decision,
                format!("roster epoch {epoch} adopted: {}", weights.join(" ")),
            )
        }
        Event::RosterProgress(Progress::Failed { reason }) => {
            (Decision, format!("roster proposal failed: {reason}"))
        }
        Event::RosterConflict { epoch } => (
            Evidence,
            format!("conflicting certificate for roster epoch {epoch} (fork kept as evidence)"),
        ),
        Event::RosterEquivocation { signer, epoch } => (
            Evidence,
            format!(
                "{} equivocated on the roster change to epoch {epoch}",
                name(signer)
            ),
        ),
        Event::SignerFlagged { signer, epoch } => (
            Evidence,
            format!(
                "{} flagged: signed two values for one quorum slot in epoch {epoch}",
                name(signer)
            ),
        ),
        Event::RosterProgress(_) | Event::LinkUp { .. } | Event::LinkDown { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Identity;
    use crate::proto::roster::Member;

    fn roster() -> (Roster, ClusterId, ClusterId) {
        let a = Identity::from_seed([1; 32]).id();
        let stranger = Identity::from_seed([2; 32]).id();
        let members = vec![Member {
            id: a,
            name: "alpha".into(),
            weight: 3,
        }];
        (Roster::genesis("t", members).unwrap(), a, stranger)
    }

    #[test]
    fn notable_events_are_named_and_routine_ones_skipped() {
        let (r, a, stranger) = roster();
        let mut log = RecentLog::default();
        log.record(
            5,
            &Event::MemberDead {
                id: a,
                incarnation: 2,
            },
            &r,
        );
        log.record(
            6,
            &Event::LinkUp {
                peer: a,
                inbound: true,
            },
            &r,
        );
        log.record(
            7,
            &Event::Refused {
                peer: stranger,
                reason: "not in roster".into(),
            },
            &r,
        );
        let v = log.to_vec();
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].unix_ms, v[0].kind), (5, RecentKind::Member));
        assert_eq!(v[0].summary, "alpha dead (incarnation 2)");
        assert_eq!(v[1].kind, RecentKind::Refusal);
        assert_eq!(
            v[1].summary,
            format!("refused {}: not in roster", stranger.short())
        );
    }

    #[test]
    fn the_ring_is_bounded_and_summaries_are_cut() {
        let mut log = RecentLog::default();
        for i in 0..(RECENT_CAPACITY as u64 + 10) {
            log.push(i, RecentKind::Decision, "x".repeat(1000));
        }
        let v = log.to_vec();
        assert_eq!(v.len(), RECENT_CAPACITY);
        assert_eq!(v[0].unix_ms, 10, "the oldest were dropped");
        assert_eq!(v[0].summary.chars().count(), MAX_SUMMARY_CHARS + 1);
    }
}
