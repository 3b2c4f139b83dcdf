//! Vector clocks: one counter per origin cluster, bounded in size.
//!
//! Canonical encoding: `count:u16 | (cluster:32 | counter:u64)*`, clusters
//! strictly ascending, zero counters omitted (so equal clocks encode equally).

use std::collections::BTreeMap;

use crate::proto::codec::{DecodeError, Reader, Writer};
use crate::proto::identity::ClusterId;

/// Most non-zero entries a clock may hold (bounds memory and frame size).
pub const MAX_ENTRIES: usize = 256;

/// How two clocks relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Identical.
    Equal,
    /// `self` happened before `other`.
    Before,
    /// `other` happened before `self`.
    After,
    /// Neither happened before the other.
    Concurrent,
}

/// Why a clock operation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The clock would hold more than [`MAX_ENTRIES`] entries.
    #[error("vector clock would exceed {MAX_ENTRIES} entries")]
    TooManyEntries,
    /// A counter would overflow.
    #[error("vector clock counter overflow")]
    Overflow,
}

/// A vector clock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VClock {
    entries: BTreeMap<ClusterId, u64>,
}

impl VClock {
    /// The zero clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter of `id` (zero if absent).
    pub fn get(&self, id: &ClusterId) -> u64 {
        self.entries.get(id).copied().unwrap_or(0)
    }

    /// Sets `id`'s counter (zero removes the entry).
    pub fn set(&mut self, id: ClusterId, counter: u64) -> Result<(), ClockError> {
        if counter == 0 {
            self.entries.remove(&id);
            return Ok(());
        }
        if !self.entries.contains_key(&id) && self.entries.len() >= MAX_ENTRIES {
            return Err(ClockError::TooManyEntries);
        }
        self.entries.insert(id, counter);
        Ok(())
    }

    /// Increments `id`'s counter and returns the new value.
    pub fn increment(&mut self, id: ClusterId) -> Result<u64, ClockError> {
        let next = self.get(&id).checked_add(1).ok_or(ClockError::Overflow)?;
        self.set(id, next)?;
        Ok(next)
    }

    /// The entry-wise maximum of `self` and `other`, in place. Refused (and
    /// `self` left unchanged) if the result would exceed [`MAX_ENTRIES`].
    pub fn merge(&mut self, other: &VClock) -> Result<(), ClockError> {
        let new = other
            .entries
            .keys()
            .filter(|k| !self.entries.contains_key(*k))
            .count();
        if self.entries.len() + new > MAX_ENTRIES {
            return Err(ClockError::TooManyEntries);
        }
        for (id, c) in &other.entries {
            let e = self.entries.entry(*id).or_insert(0);
            *e = (*e).max(*c);
        }
        Ok(())
    }

    /// How `self` relates to `other`.
    pub fn compare(&self, other: &VClock) -> Order {
        let (mut less, mut greater) = (false, false);
        for id in self.entries.keys().chain(other.entries.keys()) {
            let (a, b) = (self.get(id), other.get(id));
            less |= a < b;
            greater |= a > b;
        }
        match (less, greater) {
            (false, false) => Order::Equal,
            (true, false) => Order::Before,
            (false, true) => Order::After,
            (true, true) => Order::Concurrent,
        }
    }

    /// The non-zero entries, ascending by cluster.
    pub fn iter(&self) -> impl Iterator<Item = (&ClusterId, &u64)> {
        self.entries.iter()
    }

    /// Number of non-zero entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether every counter is zero.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the canonical encoding.
    pub fn write(&self, w: &mut Writer) {
        w.u16(self.entries.len() as u16);
        for (id, c) in &self.entries {
            w.raw(&id.0).u64(*c);
        }
    }

    /// Reads a canonical encoding, refusing unsorted, zero or too many entries.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.u16()? as usize;
        if n > MAX_ENTRIES {
            return Err(DecodeError::invalid(
                "vclock entries",
                format!("{n} > {MAX_ENTRIES}"),
            ));
        }
        let mut entries = BTreeMap::new();
        let mut prev: Option<ClusterId> = None;
        for _ in 0..n {
            let id = ClusterId(r.array()?);
            let c = r.u64()?;
            if prev.is_some_and(|p| p >= id) || c == 0 {
                return Err(DecodeError::invalid("vclock", "not canonical"));
            }
            prev = Some(id);
            entries.insert(id, c);
        }
        Ok(VClock { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u8) -> ClusterId {
        ClusterId([n; 32])
    }

    fn clock(v: &[u64]) -> VClock {
        let mut c = VClock::new();
        for (i, x) in v.iter().enumerate() {
            c.set(id(i as u8), *x).unwrap();
        }
        c
    }

    #[test]
    fn compare_merge_and_bounds() {
        assert_eq!(clock(&[1, 2]).compare(&clock(&[1, 2, 0])), Order::Equal);
        assert_eq!(clock(&[1, 2]).compare(&clock(&[1, 3])), Order::Before);
        assert_eq!(clock(&[2, 2]).compare(&clock(&[1, 2])), Order::After);
        assert_eq!(clock(&[2, 1]).compare(&clock(&[1, 2])), Order::Concurrent);
        let mut a = clock(&[2, 1]);
        a.merge(&clock(&[1, 2, 5])).unwrap();
        assert_eq!(a, clock(&[2, 2, 5]));
        assert_eq!(a.increment(id(0)).unwrap(), 3);

        let mut full = VClock::new();
        for i in 0..MAX_ENTRIES {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&(i as u64).to_be_bytes());
            full.set(ClusterId(b), 1).unwrap();
        }
        let before = full.clone();
        assert_eq!(full.set(id(255), 1), Err(ClockError::TooManyEntries));
        assert_eq!(
            full.merge(&clock(&[0, 0, 1])),
            Err(ClockError::TooManyEntries)
        );
        assert_eq!(full, before);
        let mut max = clock(&[u64::MAX]);
        assert_eq!(max.increment(id(0)), Err(ClockError::Overflow));
    }

    #[test]
    fn encoding_is_canonical() {
        let c = clock(&[3, 0, 7]);
        let mut w = Writer::default();
        c.write(&mut w);
        let bytes = w.finish();
        assert_eq!(bytes.len(), 2 + 2 * 40);
        let mut r = Reader::new(&bytes);
        assert_eq!(VClock::read(&mut r).unwrap(), c);
        r.finish().unwrap();
        // Swap the two entries: unsorted is refused.
        let mut swapped = bytes.clone();
        swapped[2..].rotate_left(40);
        assert!(VClock::read(&mut Reader::new(&swapped)).is_err());
        let mut zero = bytes.clone();
        zero[2 + 32..2 + 40].copy_from_slice(&0u64.to_be_bytes());
        assert!(VClock::read(&mut Reader::new(&zero)).is_err());
    }

    proptest! {
        #[test]
        fn compare_is_antisymmetric_and_merge_is_an_upper_bound(
            a in prop::collection::vec(0u64..4, 0..5),
            b in prop::collection::vec(0u64..4, 0..5),
        ) {
            let (ca, cb) = (clock(&a), clock(&b));
            let flipped = match ca.compare(&cb) {
                Order::Before => Order::After,
                Order::After => Order::Before,
                o => o,
            };
            prop_assert_eq!(cb.compare(&ca), flipped);
            let mut m = ca.clone();
            m.merge(&cb).unwrap();
            prop_assert!(matches!(ca.compare(&m), Order::Before | Order::Equal));
            prop_assert!(matches!(cb.compare(&m), Order::Before | Order::Equal));
        }
    }
}
