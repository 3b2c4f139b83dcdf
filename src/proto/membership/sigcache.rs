//! A bounded cache of signatures already verified, keyed by
//! BLAKE3(signed bytes ‖ signature), so gossip duplicates cost a hash instead
//! of an ed25519 verification.
//!
//! Only successful checks are stored. Whether a signature verifies is a pure
//! function of the signed bytes (which name the signer and the network) and
//! the signature, so one cache may be shared by several cores, as the
//! simulator does; a hit or a miss never changes a decision, only its cost.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// The default number of entries (32 bytes each, plus bookkeeping).
pub const DEFAULT_SIG_CACHE_CAPACITY: usize = 16_384;

/// A bounded FIFO set of verified (bytes, signature) hashes.
#[derive(Debug)]
pub struct SigCache {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
    capacity: usize,
}

impl SigCache {
    /// An empty cache holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        SigCache {
            inner: Mutex::new(Inner {
                set: HashSet::with_capacity(capacity.min(1 << 16)),
                order: VecDeque::with_capacity(capacity.min(1 << 16)),
                capacity,
            }),
        }
    }

    /// The cache key of `bytes` signed with `signature`.
    pub fn key(bytes: &[u8], signature: &[u8; 64]) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(bytes);
        h.update(signature);
        *h.finalize().as_bytes()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the set inconsistent
        // with anything that matters: at worst an entry is missing.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True if `key` was verified before and is still cached.
    pub fn contains(&self, key: &[u8; 32]) -> bool {
        self.lock().set.contains(key)
    }

    /// Remembers a successful verification, evicting the oldest entry when full.
    pub fn insert(&self, key: [u8; 32]) {
        let mut inner = self.lock();
        if !inner.set.insert(key) {
            return;
        }
        inner.order.push_back(key);
        while inner.order.len() > inner.capacity {
            if let Some(old) = inner.order.pop_front() {
                inner.set.remove(&old);
            }
        }
    }

    /// Entries currently cached.
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for SigCache {
    fn default() -> Self {
        SigCache::new(DEFAULT_SIG_CACHE_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_fifo() {
        let c = SigCache::new(2);
        let k = |i: u8| SigCache::key(&[i], &[0; 64]);
        assert_ne!(k(1), k(2));
        c.insert(k(1));
        c.insert(k(1));
        c.insert(k(2));
        assert_eq!(c.len(), 2);
        c.insert(k(3));
        assert_eq!(c.len(), 2);
        assert!(!c.contains(&k(1)));
        assert!(c.contains(&k(2)) && c.contains(&k(3)));
    }
}
