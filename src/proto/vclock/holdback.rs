//! The causal hold-back buffer: a message from `origin` stamped with clock
//! `V` is delivered once `V[origin]` is the next counter expected from that
//! origin and every other entry of `V` is already delivered here; until then
//! it waits. The buffer is bounded: a message that would exceed the capacity
//! is refused and counted (the sender's retry brings it back later), never
//! dropped silently.

use std::collections::BTreeMap;

use super::clock::{ClockError, VClock};
use crate::proto::identity::ClusterId;

/// A message released in causal order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered<T> {
    /// Who sent it.
    pub origin: ClusterId,
    /// Its clock.
    pub clock: VClock,
    /// The message.
    pub item: T,
}

/// What offering a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer<T> {
    /// The message and every held message it unblocked, in causal order.
    Delivered(Vec<Delivered<T>>),
    /// Held back until its predecessors arrive.
    Held,
    /// Already delivered or already held (a retransmission): ignored.
    Duplicate,
    /// Refused: the buffer is full. Counted in [`CausalCounters::overflow`].
    Overflow,
    /// Refused: the clock has no entry for its own origin, or delivering it
    /// would exceed the clock's entry bound.
    Invalid,
}

/// Counters an operator sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CausalCounters {
    /// Messages delivered.
    pub delivered: u64,
    /// Messages that had to wait at least once.
    pub held_back: u64,
    /// Retransmissions ignored.
    pub duplicates: u64,
    /// Messages refused because the buffer was full.
    pub overflow: u64,
    /// Messages refused as malformed.
    pub invalid: u64,
}

/// Per-receiver causal delivery state.
#[derive(Debug)]
pub struct CausalBuffer<T> {
    delivered: VClock,
    pending: BTreeMap<ClusterId, BTreeMap<u64, (VClock, T)>>,
    held: usize,
    capacity: usize,
    counters: CausalCounters,
}

impl<T> CausalBuffer<T> {
    /// An empty buffer holding at most `capacity` messages back.
    pub fn new(capacity: usize) -> Self {
        CausalBuffer {
            delivered: VClock::new(),
            pending: BTreeMap::new(),
            held: 0,
            capacity,
            counters: CausalCounters::default(),
        }
    }

    /// Stamps a message this node sends: its own entry advances and the
    /// message counts as delivered locally. The returned clock goes on the message.
    pub fn stamp_own(&mut self, me: ClusterId) -> Result<VClock, ClockError> {
        self.delivered.increment(me)?;
        Ok(self.delivered.clone())
    }

    /// Raises what counts as delivered to at least `clock`, entry by entry
    /// (a stored clock handed back at start); entries over the clock's
    /// bound are left out.
    pub fn restore(&mut self, clock: &VClock) {
        for (id, counter) in clock.iter() {
            if *counter > self.delivered.get(id) {
                let _ = self.delivered.set(*id, *counter);
            }
        }
    }

    /// What this receiver has delivered, per origin.
    pub fn delivered_clock(&self) -> &VClock {
        &self.delivered
    }

    /// Messages currently held back.
    pub fn held(&self) -> usize {
        self.held
    }

    /// The counters.
    pub fn counters(&self) -> CausalCounters {
        self.counters
    }

    fn deliverable(&self, origin: &ClusterId, clock: &VClock) -> bool {
        clock.get(origin) == self.delivered.get(origin).saturating_add(1)
            && clock
                .iter()
                .all(|(id, c)| id == origin || *c <= self.delivered.get(id))
    }

    /// Whether [`Self::offer`] would hold this message back (not a
    /// duplicate, not malformed, predecessors missing). Lets a caller that
    /// bounds several buffers together refuse it before accepting it.
    pub fn would_hold(&self, origin: &ClusterId, clock: &VClock) -> bool {
        let seq = clock.get(origin);
        seq > self.delivered.get(origin)
            && !self
                .pending
                .get(origin)
                .is_some_and(|p| p.contains_key(&seq))
            && !self.deliverable(origin, clock)
    }

    /// Offers a message received from `origin` with `clock`.
    pub fn offer(&mut self, origin: ClusterId, clock: VClock, item: T) -> Offer<T> {
        let seq = clock.get(&origin);
        if seq == 0 {
            self.counters.invalid += 1;
            return Offer::Invalid;
        }
        if seq <= self.delivered.get(&origin)
            || self
                .pending
                .get(&origin)
                .is_some_and(|p| p.contains_key(&seq))
        {
            self.counters.duplicates += 1;
            return Offer::Duplicate;
        }
        if !self.deliverable(&origin, &clock) {
            if self.held >= self.capacity {
                self.counters.overflow += 1;
                return Offer::Overflow;
            }
            self.pending
                .entry(origin)
                .or_default()
                .insert(seq, (clock, item));
            self.held += 1;
            self.counters.held_back += 1;
            return Offer::Held;
        }
        if self.delivered.merge(&clock).is_err() {
            self.counters.invalid += 1;
            return Offer::Invalid;
        }
        self.counters.delivered += 1;
        let mut out = vec![Delivered {
            origin,
            clock,
            item,
        }];
        self.release(&mut out);
        Offer::Delivered(out)
    }

    /// Delivers every held message that has become deliverable, repeatedly:
    /// only the next counter of each origin can be a candidate.
    fn release(&mut self, out: &mut Vec<Delivered<T>>) {
        loop {
            let candidate = self.pending.iter().find_map(|(origin, queue)| {
                let next = self.delivered.get(origin).saturating_add(1);
                queue
                    .get(&next)
                    .filter(|(clock, _)| self.deliverable(origin, clock))
                    .map(|_| (*origin, next))
            });
            let Some((origin, seq)) = candidate else {
                return;
            };
            let Some(queue) = self.pending.get_mut(&origin) else {
                return;
            };
            let Some((clock, item)) = queue.remove(&seq) else {
                return;
            };
            if queue.is_empty() {
                self.pending.remove(&origin);
            }
            self.held -= 1;
            if self.delivered.merge(&clock).is_err() {
                self.counters.invalid += 1;
                continue;
            }
            self.counters.delivered += 1;
            out.push(Delivered {
                origin,
                clock,
                item,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeSet;

    fn id(n: usize) -> ClusterId {
        ClusterId([n as u8 + 1; 32])
    }

    fn items<T: Clone>(o: &Offer<T>) -> Vec<T> {
        match o {
            Offer::Delivered(v) => v.iter().map(|d| d.item.clone()).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn holds_back_until_predecessors_and_dependencies() {
        let (a, b) = (id(0), id(1));
        let mut sender_a = CausalBuffer::<()>::new(8);
        let a1 = sender_a.stamp_own(a).unwrap();
        let a2 = sender_a.stamp_own(a).unwrap();
        // b saw a1 then sends b1, which depends on a1.
        let mut sender_b = CausalBuffer::new(8);
        assert_eq!(items(&sender_b.offer(a, a1.clone(), "a1")), ["a1"]);
        let b1 = sender_b.stamp_own(b).unwrap();

        let mut rx = CausalBuffer::new(8);
        assert_eq!(rx.offer(b, b1.clone(), "b1"), Offer::Held);
        assert_eq!(rx.offer(a, a2.clone(), "a2"), Offer::Held);
        assert_eq!(rx.held(), 2);
        let out = items(&rx.offer(a, a1.clone(), "a1"));
        assert_eq!(out[0], "a1");
        assert_eq!(out.len(), 3);
        assert_eq!(rx.held(), 0);
        assert_eq!(rx.offer(a, a1, "a1"), Offer::Duplicate);
        assert_eq!(rx.offer(b, VClock::new(), "bad"), Offer::Invalid);
        let c = rx.counters();
        assert_eq!(
            (c.delivered, c.held_back, c.duplicates, c.invalid),
            (3, 2, 1, 1)
        );
    }

    #[test]
    fn overflow_is_refused_and_counted() {
        let a = id(0);
        let mut sender = CausalBuffer::<()>::new(0);
        let clocks: Vec<VClock> = (0..4).map(|_| sender.stamp_own(a).unwrap()).collect();
        let mut rx = CausalBuffer::new(2);
        assert_eq!(rx.offer(a, clocks[1].clone(), 1), Offer::Held);
        assert_eq!(rx.offer(a, clocks[2].clone(), 2), Offer::Held);
        assert_eq!(rx.offer(a, clocks[3].clone(), 3), Offer::Overflow);
        assert_eq!(rx.counters().overflow, 1);
        assert_eq!(items(&rx.offer(a, clocks[0].clone(), 0)), [0, 1, 2]);
        // The refused message comes back (sender retry) and is delivered.
        assert_eq!(items(&rx.offer(a, clocks[3].clone(), 3)), [3]);
    }

    /// A random execution of causal broadcast among `n` processes: each step
    /// either lets a process broadcast or delivers one random in-flight copy
    /// (random delay and reordering). The ground truth of happens-before is an
    /// explicit dependency set, independent of the clocks under test.
    fn run(seed: u64, n: usize, sends: usize) -> Result<(), String> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut procs: Vec<CausalBuffer<usize>> =
            (0..n).map(|_| CausalBuffer::new(usize::MAX)).collect();
        // deps[m] = every message that happened before m.
        let mut deps: Vec<BTreeSet<usize>> = Vec::new();
        // seen[p] = messages delivered at p (its own included), in order.
        let mut seen: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut in_flight: Vec<(usize, usize, VClock, usize)> = Vec::new();
        let mut sent = 0;
        while sent < sends || !in_flight.is_empty() {
            if sent < sends && (in_flight.is_empty() || rng.gen_bool(0.3)) {
                let p = rng.gen_range(0..n);
                let clock = procs[p].stamp_own(id(p)).map_err(|e| e.to_string())?;
                let m = deps.len();
                deps.push(seen[p].iter().copied().collect());
                seen[p].push(m);
                for q in (0..n).filter(|q| *q != p) {
                    in_flight.push((q, p, clock.clone(), m));
                }
                sent += 1;
            } else {
                let i = rng.gen_range(0..in_flight.len());
                let (q, p, clock, m) = in_flight.swap_remove(i);
                if let Offer::Delivered(out) = procs[q].offer(id(p), clock, m) {
                    for d in out {
                        let missing: Vec<_> = deps[d.item]
                            .iter()
                            .filter(|x| !seen[q].contains(x))
                            .collect();
                        if !missing.is_empty() {
                            return Err(format!(
                                "receiver {q} delivered {} before its predecessors {missing:?}",
                                d.item
                            ));
                        }
                        seen[q].push(d.item);
                    }
                }
            }
        }
        for (q, s) in seen.iter().enumerate() {
            if s.len() != sends || procs[q].held() != 0 {
                return Err(format!("receiver {q} delivered {} of {sends}", s.len()));
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn delivery_respects_happens_before_and_completes(
            seed in any::<u64>(), n in 2usize..6, sends in 1usize..60,
        ) {
            if let Err(e) = run(seed, n, sends) {
                return Err(TestCaseError::fail(format!("seed {seed}: {e}")));
            }
        }
    }
}
