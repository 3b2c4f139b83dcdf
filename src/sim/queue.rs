//! The event queue: actions ordered by (virtual time, insertion order), so
//! ties are broken the same way on every run.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::SocketAddr;

use super::world::Payload;
use crate::proto::core::{Input, TimerId};
use crate::proto::identity::ClusterId;
use crate::proto::time::Millis;

/// Something scheduled to happen.
#[derive(Debug)]
pub(crate) enum Action {
    /// Hand `input` to `node` if it is still in life `life`.
    Input {
        node: usize,
        life: u32,
        input: Input,
    },
    /// Fire a timer if it was not re-armed since.
    Timer {
        node: usize,
        life: u32,
        id: TimerId,
        at: Millis,
    },
    /// A frame (or undecodable bytes) arrives over connection `conn`.
    Deliver {
        from: usize,
        to: usize,
        conn: u64,
        payload: Payload,
    },
    /// A dial's handshake completes (or fails) now.
    Dialed {
        from: usize,
        life: u32,
        to: usize,
        addr: SocketAddr,
        expected: Option<ClusterId>,
    },
    /// `node` learns that connection `conn` to `peer` ended.
    Down {
        node: usize,
        life: u32,
        peer: usize,
        conn: u64,
        reason: String,
    },
}

struct Scheduled {
    at: Millis,
    seq: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, we want the earliest first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A min-queue of actions by (time, sequence).
#[derive(Default)]
pub(crate) struct Queue {
    heap: BinaryHeap<Scheduled>,
    seq: u64,
}

impl Queue {
    pub(crate) fn push(&mut self, at: Millis, action: Action) {
        self.seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.seq,
            action,
        });
    }

    pub(crate) fn next_at(&self) -> Option<Millis> {
        self.heap.peek().map(|s| s.at)
    }

    pub(crate) fn pop(&mut self) -> Option<(Millis, Action)> {
        self.heap.pop().map(|s| (s.at, s.action))
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}
