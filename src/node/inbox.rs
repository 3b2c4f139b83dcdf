//! The reliable hand-off of messages to one subscriber.
//!
//! [`NodeHandle::deliveries`](super::NodeHandle::deliveries) is a broadcast
//! stream for observers: a consumer that falls more than its capacity
//! behind misses messages, including acknowledged ones. An [`Inbox`] is the
//! hand-off AT_LEAST_ONCE relies on instead: a bounded queue with a single
//! consumer, and the node waits for room in it before it goes on.
//!
//! Semantics (with a node started by
//! [`Node::start_with_inbox`](super::Node::start_with_inbox)):
//! - every [`Delivery::Message`](crate::proto::core::Delivery::Message) is
//!   put in the inbox (and also sent to the broadcast stream);
//! - backpressure: when the inbox is full, the node stops taking input
//!   (frames, commands, timers) until the subscriber makes room. A
//!   subscriber that stops reading for longer than the suspect timeout
//!   therefore gets its node suspected by its peers (no heartbeats go out);
//! - the ack of an AT_LEAST_ONCE or BROADCAST message is sent only after the
//!   message is in the inbox and the dedup window that marks it processed is
//!   durable; room is reserved before the window is written, and the
//!   thread that commits the window queues the message right after the
//!   commit, with no wait in between;
//! - so a node stopped at any point where it waits (a crash of the node's
//!   task, the subscriber living on) hands each message to the inbox exactly
//!   once across restarts, and messages already queued are still received
//!   after the node stopped. A crash of the whole process loses what sat in
//!   the inbox unread (it was acknowledged): keep the inbox small or process
//!   messages idempotently by their key if that matters;
//! - dropping the [`Inbox`] turns the hand-off off: messages then go to the
//!   broadcast stream only.

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

use crate::proto::delivery::Envelope;

/// The default number of messages an inbox holds.
pub const DEFAULT_INBOX_CAPACITY: usize = 1024;

/// The smallest inbox: the actor's largest batch of inputs, so that room
/// for every message of a batch is reserved before its commit (a smaller
/// inbox would hand messages off one by one after the commit, and a crash
/// in between would lose them). The commit thread hands them off.
pub const MIN_INBOX_CAPACITY: usize = super::actor::MAX_BATCH;

/// Messages for this node's subscriber, in delivery order (see the module docs).
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Envelope>,
}

impl Inbox {
    /// The next message; `None` once the node stopped and every queued
    /// message was received.
    pub async fn recv(&mut self) -> Option<Envelope> {
        self.rx.recv().await
    }

    /// The next message if one is queued; `Err(true)` if the node stopped
    /// and the inbox is drained, `Err(false)` if it is just empty.
    pub fn try_recv(&mut self) -> Result<Envelope, bool> {
        self.rx
            .try_recv()
            .map_err(|e| e == TryRecvError::Disconnected)
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// No message waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

/// The node's end of an inbox.
#[derive(Debug)]
pub(crate) struct InboxSender {
    tx: mpsc::Sender<Envelope>,
}

impl InboxSender {
    /// Waits for room for one message; `None` if the inbox is gone.
    pub(crate) async fn reserve(&self) -> Option<mpsc::OwnedPermit<Envelope>> {
        self.tx.clone().reserve_owned().await.ok()
    }

    /// The most messages the inbox holds.
    pub(crate) fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Room free now.
    pub(crate) fn available(&self) -> usize {
        self.tx.capacity()
    }

    /// Hands off one message, waiting for room; false if the inbox is gone.
    pub(crate) async fn send(&self, e: Envelope) -> bool {
        self.tx.send(e).await.is_ok()
    }
}

/// A connected pair holding at most `capacity` (at least
/// [`MIN_INBOX_CAPACITY`]) messages.
pub(crate) fn channel(capacity: usize) -> (InboxSender, Inbox) {
    let (tx, rx) = mpsc::channel(capacity.max(MIN_INBOX_CAPACITY));
    (InboxSender { tx }, Inbox { rx })
}
