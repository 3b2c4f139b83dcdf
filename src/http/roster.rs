//! The roster as the admin API shows it: `GET /roster` (and the `roster`
//! field of `GET /status`), and `POST /roster/propose`.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::proto::ClusterId;
use crate::proto::roster_sync::{PendingStatus, Progress, RosterChange};

/// The current roster epoch, the vote on the next one, and this node's own
/// proposal.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RosterStatus {
    /// The epoch held.
    pub epoch: u64,
    /// Its total weight.
    pub total_weight: u64,
    /// Its members.
    pub members: Vec<RosterMember>,
    /// The vote on the next epoch, if one is under way.
    pub pending: Option<PendingStatus>,
    /// The latest progress of this node's own proposal.
    pub own_proposal: Option<Progress>,
}

/// One member of the current epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RosterMember {
    /// Its cluster id.
    pub id: ClusterId,
    /// Its name.
    pub name: String,
    /// Its voting weight.
    pub weight: u64,
}

/// Hands a proposal to the node; answers with its first progress (voting,
/// or why it failed). Used by `POST /roster/propose`.
pub type RosterProposer = Arc<
    dyn Fn(RosterChange) -> Pin<Box<dyn Future<Output = Result<Progress, String>> + Send>>
        + Send
        + Sync,
>;

/// Renders the roster for `fedmesh roster show`.
pub fn render_roster(r: &RosterStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "roster epoch {}  total weight {}  members {}",
        r.epoch,
        r.total_weight,
        r.members.len()
    );
    for m in &r.members {
        let _ = writeln!(
            out,
            "  {}  {:<20} weight {}",
            m.id.short(),
            super::status::clean(&m.name),
            m.weight
        );
    }
    match &r.pending {
        None => out.push_str("no change pending\n"),
        Some(p) => {
            let _ = writeln!(
                out,
                "pending epoch {} attempt {}: {} of {} weight voted",
                p.epoch, p.attempt, p.voted, p.total
            );
            for pr in &p.proposals {
                let _ = writeln!(
                    out,
                    "  proposal {} by {}: {} of {} weight for it",
                    pr.digest.short(),
                    pr.proposer.short(),
                    pr.yes,
                    p.total
                );
            }
        }
    }
    if let Some(own) = &r.own_proposal {
        let _ = writeln!(out, "own proposal: {}", render_progress(own));
    }
    out
}

/// One line describing a proposal's progress.
pub fn render_progress(p: &Progress) -> String {
    match p {
        Progress::Voting {
            epoch,
            attempt,
            yes,
            voted,
            total,
        } => format!(
            "voting on epoch {epoch} (attempt {attempt}): {yes} of {total} weight for it, {voted} voted; more than 2/3 needed"
        ),
        Progress::Rebased { lost } => {
            format!("another change took epoch {lost}; proposed again on top of it")
        }
        Progress::Done { epoch } => format!("accepted as roster epoch {epoch}"),
        Progress::Failed { reason } => format!("failed: {reason}"),
    }
}
