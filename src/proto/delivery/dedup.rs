//! Receiver dedup for AT_LEAST_ONCE and BROADCAST, keyed by (origin, message id).
//!
//! Per origin: a floor (every id up to it was processed) and the set of ids
//! processed above it, at most `window` ids above the floor. Origins number
//! their messages 1, 2, 3, … so the floor advances as the stream fills in and
//! memory stays at most `window` ids per origin, while a duplicate is still
//! recognised however late it arrives (it is at or below the floor, or in the set).
//!
//! An id beyond `floor + window` is [`Verdict::Ahead`]: not processed and not
//! acked, so the sender retries it after the gap below it has filled. That
//! keeps exactly-once processing without unbounded memory; it only slows a
//! sender that runs more than `window` messages ahead of a lost one.

use std::collections::BTreeSet;

use ahash::HashMap;

use crate::proto::identity::ClusterId;

/// The default window: ids processed above the floor, per origin.
pub const DEFAULT_DEDUP_WINDOW: u64 = 4096;
/// The default number of origins tracked (the largest roster).
pub const DEFAULT_MAX_ORIGINS: usize = crate::proto::roster::MAX_MEMBERS;

/// Whether a message should be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not seen before: process it (then ack).
    Fresh,
    /// Already processed: do not process again, but ack (the earlier ack may be lost).
    Duplicate,
    /// Too far ahead of the floor (or too many origins): neither process nor ack.
    Ahead,
}

/// The dedup state of one origin (what `store::dedup` persists).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginWindow {
    /// Every id in `1..=floor` was processed.
    pub floor: u64,
    /// Ids processed above the floor (all in `floor+2..=floor+window`).
    pub above: BTreeSet<u64>,
}

impl OriginWindow {
    fn verdict(&self, id: u64, window: u64) -> Verdict {
        if id <= self.floor || self.above.contains(&id) {
            Verdict::Duplicate
        } else if id - self.floor > window {
            Verdict::Ahead
        } else {
            Verdict::Fresh
        }
    }

    fn insert(&mut self, id: u64) {
        self.above.insert(id);
        while self.above.remove(&(self.floor + 1)) {
            self.floor += 1;
        }
    }
}

/// Dedup state for every origin.
#[derive(Debug)]
pub struct Dedup {
    window: u64,
    max_origins: usize,
    origins: HashMap<ClusterId, OriginWindow>,
}

impl Dedup {
    /// Empty state with the given bounds (`window` at least 1).
    pub fn new(window: u64, max_origins: usize) -> Self {
        Dedup {
            window: window.max(1),
            max_origins,
            origins: HashMap::default(),
        }
    }

    /// The verdict for `(origin, id)` without recording anything.
    pub fn check(&self, origin: &ClusterId, id: u64) -> Verdict {
        match self.origins.get(origin) {
            Some(w) => w.verdict(id, self.window),
            None if self.origins.len() >= self.max_origins => Verdict::Ahead,
            None => OriginWindow::default().verdict(id, self.window),
        }
    }

    /// Checks and, if fresh, records `(origin, id)` as processed.
    pub fn observe(&mut self, origin: ClusterId, id: u64) -> Verdict {
        let v = self.check(&origin, id);
        if v == Verdict::Fresh {
            self.origins.entry(origin).or_default().insert(id);
        }
        v
    }

    /// The state of `origin` (to persist after [`Dedup::observe`]).
    pub fn origin(&self, origin: &ClusterId) -> Option<&OriginWindow> {
        self.origins.get(origin)
    }

    /// Restores an origin's persisted state after a restart.
    pub fn restore(&mut self, origin: ClusterId, mut state: OriginWindow) {
        let floor = state.floor;
        let window = self.window;
        state
            .above
            .retain(|id| *id > floor && *id - floor <= window);
        let above = std::mem::take(&mut state.above);
        for id in above {
            state.insert(id);
        }
        self.origins.insert(origin, state);
    }

    /// Ids held above floors, over all origins (memory use).
    pub fn held(&self) -> usize {
        self.origins.values().map(|w| w.above.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    const A: ClusterId = ClusterId([1; 32]);

    #[test]
    fn floor_window_and_bounds() {
        let mut d = Dedup::new(4, 1);
        assert_eq!(d.observe(A, 2), Verdict::Fresh);
        assert_eq!(d.observe(A, 2), Verdict::Duplicate);
        assert_eq!(d.observe(A, 5), Verdict::Ahead);
        assert_eq!(d.observe(A, 1), Verdict::Fresh);
        assert_eq!(d.origin(&A).unwrap().floor, 2);
        assert_eq!(d.observe(A, 6), Verdict::Fresh);
        assert_eq!(d.observe(A, 7), Verdict::Ahead);
        assert_eq!(d.observe(ClusterId([2; 32]), 1), Verdict::Ahead);
        let saved = d.origin(&A).unwrap().clone();
        let mut back = Dedup::new(4, 1);
        back.restore(A, saved);
        assert_eq!(back.observe(A, 6), Verdict::Duplicate);
        assert_eq!(back.observe(A, 1), Verdict::Duplicate);
        assert_eq!(back.observe(A, 3), Verdict::Fresh);
    }

    /// A sender that retries every unacked message, over a channel that
    /// duplicates and reorders: each id is processed exactly once, all are
    /// processed, and memory never exceeds the window.
    fn run(seed: u64, n: u64, window: u64) -> Result<(), String> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut d = Dedup::new(window, 4);
        let mut processed = vec![0u32; n as usize + 1];
        let mut unacked: Vec<u64> = (1..=n).collect();
        let mut rounds = 0;
        while !unacked.is_empty() {
            rounds += 1;
            if rounds > 10_000 {
                return Err("did not finish".into());
            }
            // One retry round: a random subset arrives, some twice, shuffled.
            let mut wire: Vec<u64> = Vec::new();
            for id in &unacked {
                if rng.gen_bool(0.6) {
                    let copies = rng.gen_range(1..=2);
                    wire.extend(std::iter::repeat_n(*id, copies));
                }
            }
            wire.shuffle(&mut rng);
            for id in wire {
                match d.observe(A, id) {
                    Verdict::Fresh => {
                        processed[id as usize] += 1;
                        unacked.retain(|x| *x != id);
                    }
                    Verdict::Duplicate => unacked.retain(|x| *x != id),
                    Verdict::Ahead => {}
                }
                if d.held() as u64 > window {
                    return Err(format!("held {} > window {window}", d.held()));
                }
            }
        }
        match processed[1..].iter().position(|c| *c != 1) {
            Some(i) => Err(format!("id {} processed {} times", i + 1, processed[i + 1])),
            None => Ok(()),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn exactly_once_with_bounded_memory(seed in any::<u64>(), n in 1u64..400, window in 1u64..64) {
            if let Err(e) = run(seed, n, window) {
                return Err(TestCaseError::fail(format!("seed {seed}: {e}")));
            }
        }
    }
}
