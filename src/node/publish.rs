//! Publishing through the embedding API, with the node's answer (the
//! message key and destinations, or why it was refused).

use tokio::sync::{mpsc, oneshot};

use super::NodeHandle;
use super::actor::Request;
use crate::proto::core::{Command, Delivery, PublishOptions};
use crate::proto::delivery::{Guarantee, MessageKey};
use crate::proto::identity::ClusterId;

/// A message the node accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Its key (origin and id).
    pub key: MessageKey,
    /// The clusters it is sent to (those subscribed to its topic).
    pub dests: Vec<ClusterId>,
}

/// Why a message was not published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// The node refused it (invalid topic, unavailable guarantee, outbox
    /// full, causal order without acknowledgements, ...).
    #[error("publish refused: {0}")]
    Refused(String),
}

/// Hands a publish command to the actor and waits for its answer.
pub(super) async fn publish_via(
    requests: &mpsc::Sender<Request>,
    command: Command,
) -> Result<Published, PublishError> {
    let (tx, rx) = oneshot::channel();
    requests
        .send(Request::Publish(command, tx))
        .await
        .map_err(|_| PublishError::Stopped)?;
    match rx.await.map_err(|_| PublishError::Stopped)? {
        Delivery::Published { key, dests } => Ok(Published { key, dests }),
        Delivery::PublishRefused { reason, .. } => Err(PublishError::Refused(reason)),
        other => Err(PublishError::Refused(format!(
            "unexpected answer from the node: {other:?}"
        ))),
    }
}

impl NodeHandle {
    /// Publishes `payload` to every cluster subscribed to `topic` with
    /// `options` (e.g. causal order) and waits for the node's answer.
    pub async fn publish_with(
        &self,
        topic: &str,
        guarantee: Guarantee,
        payload: Vec<u8>,
        options: PublishOptions,
    ) -> Result<Published, PublishError> {
        let command = Command::PublishWith {
            topic: topic.to_owned(),
            guarantee,
            payload,
            options,
        };
        publish_via(&self.requests, command).await
    }
}
