//! The per-link send queue: one bounded FIFO per priority class, drained by
//! the link's writer task in strict priority order.
//!
//! Pushing never waits: a full class (or a link over its byte budget) is
//! refused at once, so a slow peer pushes back on its own queue and never on
//! the node actor that feeds every link.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

/// How urgent a frame is. The writer always sends the most urgent frame
/// queued; within a class, frames leave in the order they were queued.
///
/// Strict priority cannot starve anything that matters: evidence and votes
/// are small and rare next to data, and must never wait behind bulk traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Equivocation evidence: safety depends on it spreading first.
    Evidence,
    /// Votes and certificates: quorum rounds are latency-bound.
    Votes,
    /// Membership and roster gossip.
    Gossip,
    /// Application messages.
    Data,
}

impl Priority {
    /// Every class, most urgent first.
    pub const ALL: [Priority; 4] = [
        Priority::Evidence,
        Priority::Votes,
        Priority::Gossip,
        Priority::Data,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The class is at capacity or the link is over its byte budget.
    Full,
    /// The writer has stopped; nothing will be sent any more.
    Closed,
}

#[derive(Debug, Default)]
struct State {
    classes: [VecDeque<Vec<u8>>; 4],
    bytes: usize,
    closed: bool,
}

/// Bounded, prioritised frames waiting for the writer.
#[derive(Debug)]
pub(crate) struct SendQueue {
    state: Mutex<State>,
    ready: Notify,
    capacity: usize,
    max_bytes: usize,
}

impl SendQueue {
    /// A queue holding at most `capacity` frames per class and `max_bytes`
    /// payload bytes in total.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        SendQueue {
            state: Mutex::default(),
            ready: Notify::new(),
            capacity,
            max_bytes,
        }
    }

    /// The frames' capacity of one class.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock; if one ever did, the
        // queue's contents are still consistent, so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `bytes` without waiting.
    pub(crate) fn push(&self, priority: Priority, bytes: Vec<u8>) -> Result<(), PushError> {
        let mut state = self.lock();
        if state.closed {
            return Err(PushError::Closed);
        }
        let class = &state.classes[priority.index()];
        if class.len() >= self.capacity || state.bytes + bytes.len() > self.max_bytes {
            return Err(PushError::Full);
        }
        state.bytes += bytes.len();
        state.classes[priority.index()].push_back(bytes);
        drop(state);
        // notify_one stores a permit when the writer is not waiting yet, so
        // a push between its check and its wait is never lost.
        self.ready.notify_one();
        Ok(())
    }

    fn try_pop(&self) -> Option<Vec<u8>> {
        let mut state = self.lock();
        let bytes = state.classes.iter_mut().find_map(VecDeque::pop_front)?;
        state.bytes -= bytes.len();
        Some(bytes)
    }

    /// The most urgent queued frame, waiting for one if needed.
    pub(crate) async fn pop(&self) -> Vec<u8> {
        loop {
            if let Some(bytes) = self.try_pop() {
                return bytes;
            }
            self.ready.notified().await;
        }
    }

    /// The most urgent queued frames, waiting for one if needed: the first
    /// always, then more in priority order while their payloads total at
    /// most `max_bytes`. Appended to `out`.
    pub(crate) async fn pop_batch(&self, max_bytes: usize, out: &mut Vec<Vec<u8>>) {
        let first = self.pop().await;
        let mut total = first.len();
        out.push(first);
        let mut state = self.lock();
        while let Some(class) = state.classes.iter_mut().find(|c| !c.is_empty()) {
            let next_len = class.front().map_or(0, Vec::len);
            if total + next_len > max_bytes {
                break;
            }
            let Some(bytes) = class.pop_front() else {
                break;
            };
            state.bytes -= bytes.len();
            total += bytes.len();
            out.push(bytes);
        }
    }

    /// Refuses further pushes and discards what is queued, returning how many
    /// frames were discarded (so the caller can count them).
    pub(crate) fn close(&self) -> usize {
        let mut state = self.lock();
        state.closed = true;
        state.bytes = 0;
        state.classes.iter_mut().map(|c| c.drain(..).count()).sum()
    }

    /// Frames currently waiting in `priority`'s class.
    pub(crate) fn len(&self, priority: Priority) -> usize {
        self.lock().classes[priority.index()].len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pops_in_priority_order_then_fifo() {
        let q = SendQueue::new(4, 1 << 20);
        q.push(Priority::Data, b"d1".to_vec()).unwrap();
        q.push(Priority::Gossip, b"g1".to_vec()).unwrap();
        q.push(Priority::Data, b"d2".to_vec()).unwrap();
        q.push(Priority::Evidence, b"e1".to_vec()).unwrap();
        q.push(Priority::Votes, b"v1".to_vec()).unwrap();
        let mut order = Vec::new();
        for _ in 0..5 {
            order.push(String::from_utf8(q.pop().await).unwrap());
        }
        assert_eq!(order, ["e1", "v1", "g1", "d1", "d2"]);
    }

    #[tokio::test]
    async fn batches_take_frames_in_priority_order_up_to_the_byte_budget() {
        let q = SendQueue::new(8, 1 << 20);
        q.push(Priority::Data, vec![1; 40]).unwrap();
        q.push(Priority::Data, vec![2; 40]).unwrap();
        q.push(Priority::Votes, vec![3; 40]).unwrap();
        q.push(Priority::Data, vec![4; 40]).unwrap();
        let mut out = Vec::new();
        q.pop_batch(100, &mut out).await;
        let firsts: Vec<u8> = out.iter().map(|f| f[0]).collect();
        assert_eq!(firsts, [3, 1], "the next frame would pass 100 bytes");
        out.clear();
        // The first frame goes even when it alone is over the budget.
        q.pop_batch(10, &mut out).await;
        assert_eq!(out.iter().map(|f| f[0]).collect::<Vec<_>>(), [2]);
        out.clear();
        q.pop_batch(1000, &mut out).await;
        assert_eq!(out.iter().map(|f| f[0]).collect::<Vec<_>>(), [4]);
        assert_eq!(q.close(), 0);
    }

    #[test]
    fn full_classes_and_byte_budget_refuse_without_blocking() {
        let q = SendQueue::new(2, 10);
        q.push(Priority::Data, vec![0; 1]).unwrap();
        q.push(Priority::Data, vec![0; 1]).unwrap();
        assert_eq!(q.push(Priority::Data, vec![0; 1]), Err(PushError::Full));
        // Another class still has room, until the byte budget runs out.
        q.push(Priority::Votes, vec![0; 8]).unwrap();
        assert_eq!(q.push(Priority::Votes, vec![0; 1]), Err(PushError::Full));
        assert_eq!(q.len(Priority::Data), 2);
        assert_eq!(q.close(), 3);
        assert_eq!(q.push(Priority::Data, vec![]), Err(PushError::Closed));
    }
}
