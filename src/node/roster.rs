//! Roster changes through the embedding API.

use std::time::Duration;

use tokio::sync::{broadcast, oneshot};

use super::NodeHandle;
use super::actor::Request;
use crate::http::RosterStatus;
use crate::proto::membership::event::Event;
use crate::proto::roster_sync::{Progress, RosterChange};

/// Why a roster change could not be proposed or did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterChangeError {
    /// The node is shutting down.
    #[error("the node has stopped")]
    Stopped,
    /// The node refused the change (not a member, invalid change, ...).
    #[error("roster change refused: {0}")]
    Refused(String),
    /// The change was not accepted before the deadline.
    #[error("roster change not accepted after {0:?} (last progress: {1})")]
    Timeout(Duration, String),
}

/// A proposal under way: its progress as the node reports it.
pub struct RosterProposal {
    /// The first progress (the vote has started).
    pub first: Progress,
    events: broadcast::Receiver<Event>,
}

impl RosterProposal {
    /// The next progress report, or `None` once the node stopped.
    pub async fn next(&mut self) -> Option<Progress> {
        loop {
            match self.events.recv().await {
                Ok(Event::RosterProgress(p)) => return Some(p),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Waits until the change is part of an epoch (returned) or failed.
    pub async fn wait(mut self, timeout: Duration) -> Result<u64, RosterChangeError> {
        let mut last = self.first.clone();
        let done = async {
            loop {
                match &last {
                    Progress::Done { epoch } => return Ok(*epoch),
                    Progress::Failed { reason } => {
                        return Err(RosterChangeError::Refused(reason.clone()));
                    }
                    _ => {}
                }
                match self.next().await {
                    Some(p) => last = p,
                    None => return Err(RosterChangeError::Stopped),
                }
            }
        };
        match tokio::time::timeout(timeout, done).await {
            Ok(r) => r,
            Err(_) => Err(RosterChangeError::Timeout(
                timeout,
                crate::http::render_progress(&self.first),
            )),
        }
    }
}

impl NodeHandle {
    /// The roster epoch in use, its members and any change under way.
    pub fn roster(&self) -> RosterStatus {
        self.status().roster
    }

    /// Proposes `change` on top of the current epoch; the returned proposal
    /// reports its progress.
    pub async fn propose_roster_change(
        &self,
        change: RosterChange,
    ) -> Result<RosterProposal, RosterChangeError> {
        let events = self.events.subscribe();
        let first = propose_via(&self.requests, change).await?;
        Ok(RosterProposal { first, events })
    }
}

/// Sends a proposal to the actor and returns its first progress.
pub(super) async fn propose_via(
    requests: &tokio::sync::mpsc::Sender<Request>,
    change: RosterChange,
) -> Result<Progress, RosterChangeError> {
    let (tx, rx) = oneshot::channel();
    requests
        .send(Request::ProposeRoster(change, tx))
        .await
        .map_err(|_| RosterChangeError::Stopped)?;
    match rx.await.map_err(|_| RosterChangeError::Stopped)? {
        Progress::Failed { reason } => Err(RosterChangeError::Refused(reason)),
        p => Ok(p),
    }
}
