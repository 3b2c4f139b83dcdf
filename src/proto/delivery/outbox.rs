//! The sender side of AT_LEAST_ONCE and BROADCAST: every (message,
//! destination) pair is resent with exponential backoff and jitter until the
//! destination acks it; the first timeout adapts to that destination's RTT.
//! BROADCAST is the same machine with several destinations per message and
//! per-destination status.
//!
//! Flow control: at most [`SEND_WINDOW`] transmissions are unacknowledged
//! per destination. Messages beyond it wait in the outbox (already durable)
//! and go out as acks free the window ([`Outbox::released`]), so a
//! publisher faster than the path fills the outbox, not the link's send
//! queue (which would drop the frames and leave them to retry timeouts).
//!
//! This is the in-memory state machine. Durability is the caller's: persist
//! the message (`store::outbox`) before [`Outbox::enqueue`] returns its sends
//! to the network, delete it when [`AckOutcome::Complete`] is reported, and
//! call [`Outbox::restore`] for every stored message after a restart.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::envelope::{Envelope, MessageKey};
use super::timing::{Backoff, RttEstimator};
use crate::proto::identity::ClusterId;
use crate::proto::time::Millis;

/// The default number of unacknowledged messages held.
pub const DEFAULT_OUTBOX_CAPACITY: usize = 65_536;

/// Most transmissions unacknowledged per destination: below a link's send
/// queue of 1,024 frames per class, with room for the acks going the
/// other way.
pub const SEND_WINDOW: usize = 768;

/// Why a message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// The outbox holds its capacity of unacknowledged messages (backpressure).
    #[error("outbox full ({0} unacknowledged messages)")]
    Full(usize),
    /// A message with this origin and id is already pending.
    #[error("message {0:?} is already in the outbox")]
    Duplicate(MessageKey),
    /// No destination was given.
    #[error("message has no destination")]
    NoDestinations,
}

/// One transmission to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// The destination cluster.
    pub to: ClusterId,
    /// The message.
    pub envelope: Arc<Envelope>,
    /// 1 for the first transmission, then 2, 3, … for retries.
    pub attempt: u32,
}

/// Delivery state of one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestStatus {
    /// Not yet acked; `attempts` transmissions so far.
    Pending {
        /// Transmissions so far.
        attempts: u32,
    },
    /// Acked.
    Acked,
}

/// What an ack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// This destination is done; others are still pending.
    Acked,
    /// Every destination has acked: the message left the outbox (delete it from the store).
    Complete,
    /// Already acked (a duplicate ack).
    AlreadyAcked,
    /// No such message or destination (a late ack after completion, or forged).
    Unknown,
}

/// Counters an operator sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounters {
    /// Messages accepted.
    pub enqueued: u64,
    /// First transmissions.
    pub sends: u64,
    /// Retransmissions after a timeout (failed federation attempts).
    pub retries: u64,
    /// Destinations acked.
    pub acked: u64,
    /// Messages completed (every destination acked).
    pub completed: u64,
    /// Messages refused because the outbox was full.
    pub refused_full: u64,
}

#[derive(Debug, Clone)]
struct Dest {
    acked: bool,
    /// 0 while waiting for room in the destination's window.
    attempts: u32,
    timeout: Duration,
    due: Millis,
    /// When the first transmission was handed out (for the ack delay).
    sent: Millis,
}

#[derive(Debug)]
struct Pending {
    envelope: Arc<Envelope>,
    dests: BTreeMap<ClusterId, Dest>,
}

/// Unacknowledged messages and their retry schedule.
#[derive(Debug)]
pub struct Outbox {
    backoff: Backoff,
    capacity: usize,
    messages: BTreeMap<MessageKey, Pending>,
    due: BTreeSet<(Millis, MessageKey, ClusterId)>,
    counters: OutboxCounters,
    /// Send-to-ack delays of first transmissions. Under load the ack waits
    /// behind queued frames and the receiver's group commit, far longer
    /// than the link's RTT: a first timeout below this delay resends
    /// messages that are not lost, which adds load and delays them more.
    ack_delay: RttEstimator,
    /// Per destination: transmitted and not acknowledged.
    in_flight: BTreeMap<ClusterId, usize>,
    /// Per destination: messages waiting for room in its window, in order.
    waiting: BTreeMap<ClusterId, VecDeque<MessageKey>>,
    window: usize,
}

impl Outbox {
    /// An empty outbox.
    pub fn new(backoff: Backoff, capacity: usize) -> Self {
        Outbox {
            backoff,
            capacity,
            messages: BTreeMap::new(),
            due: BTreeSet::new(),
            counters: OutboxCounters::default(),
            ack_delay: RttEstimator::default(),
            in_flight: BTreeMap::new(),
            waiting: BTreeMap::new(),
            window: SEND_WINDOW,
        }
    }

    /// The same with another send window (at least 1).
    pub fn with_window(mut self, window: usize) -> Self {
        self.window = window.max(1);
        self
    }

    /// Adds a message for `dests` (each with its measured RTT, if any) and
    /// returns the first transmissions.
    pub fn enqueue<R: Rng>(
        &mut self,
        now: Millis,
        envelope: Arc<Envelope>,
        dests: impl IntoIterator<Item = (ClusterId, Option<Duration>)>,
        rng: &mut R,
    ) -> Result<Vec<Send>, OutboxError> {
        self.insert(
            now,
            envelope,
            dests.into_iter().map(|(d, rtt)| (d, rtt, false)),
            rng,
        )
    }

    /// Re-adds a message read back from the store after a restart; `acked`
    /// destinations are kept for status but never resent. Pending ones are
    /// sent again at once (the receiver's dedup absorbs the repeat).
    pub fn restore<R: Rng>(
        &mut self,
        now: Millis,
        envelope: Arc<Envelope>,
        dests: impl IntoIterator<Item = (ClusterId, bool)>,
        rng: &mut R,
    ) -> Result<Vec<Send>, OutboxError> {
        self.insert(
            now,
            envelope,
            dests.into_iter().map(|(d, a)| (d, None, a)),
            rng,
        )
    }

    fn insert<R: Rng>(
        &mut self,
        now: Millis,
        envelope: Arc<Envelope>,
        dests: impl Iterator<Item = (ClusterId, Option<Duration>, bool)>,
        rng: &mut R,
    ) -> Result<Vec<Send>, OutboxError> {
        let key = envelope.key;
        if self.messages.contains_key(&key) {
            return Err(OutboxError::Duplicate(key));
        }
        if self.messages.len() >= self.capacity {
            self.counters.refused_full += 1;
            return Err(OutboxError::Full(self.messages.len()));
        }
        let mut pending = Pending {
            envelope: envelope.clone(),
            dests: BTreeMap::new(),
        };
        let mut sends = Vec::new();
        for (to, rtt, acked) in dests {
            let timeout = self.initial_timeout(rtt);
            let due = now + self.backoff.jittered(timeout, rng);
            let room = !acked && self.in_flight.get(&to).copied().unwrap_or(0) < self.window;
            pending.dests.insert(
                to,
                Dest {
                    acked,
                    attempts: u32::from(room),
                    timeout,
                    due,
                    sent: now,
                },
            );
            if room {
                self.due.insert((due, key, to));
                *self.in_flight.entry(to).or_default() += 1;
                sends.push(Send {
                    to,
                    envelope: envelope.clone(),
                    attempt: 1,
                });
            } else if !acked {
                self.waiting.entry(to).or_default().push_back(key);
            }
        }
        if pending.dests.is_empty() {
            return Err(OutboxError::NoDestinations);
        }
        self.counters.enqueued += 1;
        self.counters.sends += sends.len() as u64;
        self.messages.insert(key, pending);
        Ok(sends)
    }

    /// The first timeout towards a destination whose link RTT is `rtt`:
    /// never shorter than the acks observed lately take (within `max`).
    fn initial_timeout(&self, rtt: Option<Duration>) -> Duration {
        let base = self.backoff.initial(rtt);
        match self.ack_delay.estimate() {
            Some(d) => base.max(d.min(self.backoff.max)),
            None => base,
        }
    }

    /// Records `from`'s ack of `key` received at `now`; an ack of a first
    /// transmission also measures the ack delay (Karn: a retransmitted
    /// one's ack cannot say which transmission it answers).
    pub fn ack_at(&mut self, now: Millis, key: &MessageKey, from: &ClusterId) -> AckOutcome {
        if let Some(d) = self.messages.get(key).and_then(|m| m.dests.get(from))
            && !d.acked
            && d.attempts == 1
        {
            self.ack_delay.sample(now.since(d.sent));
        }
        self.ack(key, from)
    }

    /// Records `from`'s ack of `key`.
    pub fn ack(&mut self, key: &MessageKey, from: &ClusterId) -> AckOutcome {
        let Some(msg) = self.messages.get_mut(key) else {
            return AckOutcome::Unknown;
        };
        let Some(dest) = msg.dests.get_mut(from) else {
            return AckOutcome::Unknown;
        };
        if dest.acked {
            return AckOutcome::AlreadyAcked;
        }
        dest.acked = true;
        if dest.attempts > 0 {
            self.due.remove(&(dest.due, *key, *from));
            if let Some(n) = self.in_flight.get_mut(from) {
                *n = n.saturating_sub(1);
            }
        }
        self.counters.acked += 1;
        if msg.dests.values().all(|d| d.acked) {
            self.messages.remove(key);
            self.counters.completed += 1;
            AckOutcome::Complete
        } else {
            AckOutcome::Acked
        }
    }

    /// First transmissions of waiting messages that now fit in their
    /// destination's window (call after acks).
    pub fn released<R: Rng>(&mut self, now: Millis, rng: &mut R) -> Vec<Send> {
        let mut out = Vec::new();
        for (to, queue) in self.waiting.iter_mut() {
            let flying = self.in_flight.entry(*to).or_default();
            while *flying < self.window {
                let Some(key) = queue.pop_front() else { break };
                // Acked meanwhile (or gone): nothing to send.
                let Some(msg) = self.messages.get_mut(&key) else {
                    continue;
                };
                let Some(dest) = msg.dests.get_mut(to).filter(|d| !d.acked) else {
                    continue;
                };
                let timeout = match self.ack_delay.estimate() {
                    Some(d) => dest.timeout.max(d.min(self.backoff.max)),
                    None => dest.timeout,
                };
                dest.timeout = timeout;
                dest.attempts = 1;
                dest.sent = now;
                dest.due = now + self.backoff.jittered(timeout, rng);
                self.due.insert((dest.due, key, *to));
                *flying += 1;
                self.counters.sends += 1;
                out.push(Send {
                    to: *to,
                    envelope: msg.envelope.clone(),
                    attempt: 1,
                });
            }
        }
        self.waiting.retain(|_, q| !q.is_empty());
        out
    }

    /// The retransmissions due at `now`, each rescheduled with a doubled timeout.
    pub fn poll<R: Rng>(&mut self, now: Millis, rng: &mut R) -> Vec<Send> {
        let mut out = Vec::new();
        while let Some(&(due, key, to)) = self.due.first() {
            if due > now {
                break;
            }
            self.due.pop_first();
            let Some(msg) = self.messages.get_mut(&key) else {
                continue;
            };
            let Some(dest) = msg.dests.get_mut(&to) else {
                continue;
            };
            dest.timeout = self.backoff.next(dest.timeout);
            dest.due = now + self.backoff.jittered(dest.timeout, rng);
            dest.attempts = dest.attempts.saturating_add(1);
            self.due.insert((dest.due, key, to));
            self.counters.retries += 1;
            out.push(Send {
                to,
                envelope: msg.envelope.clone(),
                attempt: dest.attempts,
            });
        }
        out
    }

    /// When [`Outbox::poll`] next has work (for the caller's timer).
    pub fn next_due(&self) -> Option<Millis> {
        self.due.first().map(|(t, _, _)| *t)
    }

    /// Per-destination status of a pending message (BROADCAST reporting).
    pub fn status(&self, key: &MessageKey) -> Option<Vec<(ClusterId, DestStatus)>> {
        self.messages.get(key).map(|m| {
            m.dests
                .iter()
                .map(|(id, d)| {
                    let s = if d.acked {
                        DestStatus::Acked
                    } else {
                        DestStatus::Pending {
                            attempts: d.attempts,
                        }
                    };
                    (*id, s)
                })
                .collect()
        })
    }

    /// Unacknowledged messages (the outbox depth metric).
    pub fn depth(&self) -> usize {
        self.messages.len()
    }

    /// The counters.
    pub fn counters(&self) -> OutboxCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::delivery::Guarantee;
    use crate::proto::queue::QueueName;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn id(n: u8) -> ClusterId {
        ClusterId([n; 32])
    }

    fn msg(n: u64) -> Arc<Envelope> {
        Arc::new(
            Envelope::new(
                MessageKey {
                    origin: id(0),
                    id: n,
                },
                QueueName::new("q").unwrap(),
                Guarantee::Broadcast,
                vec![n as u8],
                None,
            )
            .unwrap(),
        )
    }

    #[test]
    fn at_most_a_window_of_transmissions_is_unacknowledged_per_destination() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut o = Outbox::new(Backoff::default(), 64).with_window(4);
        let mut first = Vec::new();
        for n in 1..=10 {
            let sends = o
                .enqueue(Millis(0), msg(n), [(id(1), None), (id(2), None)], &mut rng)
                .unwrap();
            first.extend(sends.into_iter().map(|s| (s.to, s.envelope.key.id)));
        }
        // Four per destination go out; the rest wait, durable, in order.
        for d in [id(1), id(2)] {
            let ids: Vec<u64> = first.iter().filter(|s| s.0 == d).map(|s| s.1).collect();
            assert_eq!(ids, [1, 2, 3, 4]);
        }
        assert_eq!(
            o.status(&msg(9).key).unwrap(),
            vec![
                (id(1), DestStatus::Pending { attempts: 0 }),
                (id(2), DestStatus::Pending { attempts: 0 })
            ]
        );
        // Retries resend only what was transmitted.
        let retries = o.poll(Millis(60_000), &mut rng);
        assert_eq!(retries.len(), 8);
        assert!(retries.iter().all(|s| s.envelope.key.id <= 4));
        assert!(
            o.released(Millis(60_000), &mut rng).is_empty(),
            "window full"
        );
        // Two acks from id(1): two more to id(1), none to id(2).
        for n in [1, 2] {
            assert_eq!(o.ack(&msg(n).key, &id(1)), AckOutcome::Acked);
        }
        let next: Vec<(ClusterId, u64)> = o
            .released(Millis(60_001), &mut rng)
            .into_iter()
            .map(|s| (s.to, s.envelope.key.id))
            .collect();
        assert_eq!(next, [(id(1), 5), (id(1), 6)]);
        // A waiting destination that acks anyway (a copy it got before a
        // restart) is never sent and frees nothing.
        assert_eq!(o.ack(&msg(10).key, &id(2)), AckOutcome::Acked);
        for n in 1..=4 {
            o.ack(&msg(n).key, &id(2));
        }
        let next: Vec<u64> = o
            .released(Millis(60_002), &mut rng)
            .into_iter()
            .filter(|s| s.to == id(2))
            .map(|s| s.envelope.key.id)
            .collect();
        assert_eq!(next, [5, 6, 7, 8]);
    }

    #[test]
    fn retries_with_backoff_until_each_destination_acks() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut o = Outbox::new(Backoff::default(), 8);
        let m = msg(1);
        let rtt = Some(Duration::from_millis(10));
        let sends = o
            .enqueue(
                Millis(0),
                m.clone(),
                [(id(1), rtt), (id(2), None)],
                &mut rng,
            )
            .unwrap();
        assert_eq!(sends.len(), 2);
        // id(1)'s first timeout is 4 RTTs (40 ms, +20 % jitter at most).
        assert!(o.poll(Millis(39), &mut rng).is_empty());
        let first = o.next_due().unwrap();
        assert!(first >= Millis(40) && first <= Millis(48));
        let retry = o.poll(Millis(48), &mut rng);
        assert_eq!(retry.len(), 1);
        assert_eq!((retry[0].to, retry[0].attempt), (id(1), 2));
        // Doubled: the next retry of id(1) is 80..=96 ms later.
        let next = o.next_due().unwrap();
        assert!(next >= Millis(128) && next <= Millis(144), "{next:?}");
        assert_eq!(o.ack(&m.key, &id(1)), AckOutcome::Acked);
        assert_eq!(o.ack(&m.key, &id(1)), AckOutcome::AlreadyAcked);
        assert_eq!(
            o.status(&m.key).unwrap(),
            [
                (id(1), DestStatus::Acked),
                (id(2), DestStatus::Pending { attempts: 1 })
            ]
        );
        // id(2) had no RTT: 500 ms.
        assert!(o.poll(Millis(499), &mut rng).is_empty());
        assert_eq!(o.poll(Millis(600), &mut rng).len(), 1);
        assert_eq!(o.ack(&m.key, &id(2)), AckOutcome::Complete);
        assert_eq!(o.ack(&m.key, &id(2)), AckOutcome::Unknown);
        assert_eq!(o.depth(), 0);
        assert_eq!(o.next_due(), None);
        let c = o.counters();
        assert_eq!((c.sends, c.retries, c.acked, c.completed), (2, 2, 2, 1));
    }

    #[test]
    fn first_timeout_covers_the_measured_ack_delay() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut o = Outbox::new(Backoff::default(), 8);
        let rtt = Some(Duration::from_millis(1));
        o.enqueue(Millis(0), msg(1), [(id(1), rtt)], &mut rng)
            .unwrap();
        // Acked after 300 ms (queued behind a busy link), never retransmitted.
        assert_eq!(
            o.ack_at(Millis(300), &msg(1).key, &id(1)),
            AckOutcome::Complete
        );
        o.enqueue(Millis(1000), msg(2), [(id(1), rtt)], &mut rng)
            .unwrap();
        // Without the sample the timeout would be the 20 ms minimum; with it
        // the message is not resent before 300 ms (+ deviations).
        assert!(o.poll(Millis(1000 + 300), &mut rng).is_empty());
        assert!(o.next_due().unwrap() > Millis(1300));
        // A retransmitted message's ack is not a sample (Karn).
        let due = o.next_due().unwrap();
        assert_eq!(o.poll(due, &mut rng).len(), 1);
        assert_eq!(
            o.ack_at(Millis(9000), &msg(2).key, &id(1)),
            AckOutcome::Complete
        );
        o.enqueue(Millis(9000), msg(3), [(id(1), rtt)], &mut rng)
            .unwrap();
        assert!(o.next_due().unwrap() < Millis(9000 + 2000));
    }

    #[test]
    fn bounded_and_restorable() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut o = Outbox::new(Backoff::default(), 1);
        o.enqueue(Millis(0), msg(1), [(id(1), None)], &mut rng)
            .unwrap();
        assert_eq!(
            o.enqueue(Millis(0), msg(1), [(id(1), None)], &mut rng),
            Err(OutboxError::Duplicate(msg(1).key))
        );
        assert_eq!(
            o.enqueue(Millis(0), msg(2), [(id(1), None)], &mut rng),
            Err(OutboxError::Full(1))
        );
        assert_eq!(o.counters().refused_full, 1);
        let mut fresh = Outbox::new(Backoff::default(), 4);
        let none: [(ClusterId, Option<Duration>); 0] = [];
        assert_eq!(
            fresh.enqueue(Millis(0), msg(3), none, &mut rng),
            Err(OutboxError::NoDestinations)
        );
        // After a restart: acked destinations are not resent.
        let sends = fresh
            .restore(Millis(5), msg(2), [(id(1), true), (id(2), false)], &mut rng)
            .unwrap();
        assert_eq!(sends.iter().map(|s| s.to).collect::<Vec<_>>(), [id(2)]);
        assert_eq!(fresh.ack(&msg(2).key, &id(2)), AckOutcome::Complete);
    }
}
