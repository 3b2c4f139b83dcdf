//! Simulated connections and partitions.

use std::collections::BTreeMap;

/// One simulated connection between two nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conn {
    /// Unique for the run; stale events carry an old id.
    pub(crate) id: u64,
    /// A crash or a partition cut it: frames are dropped until both ends
    /// notice (after the idle timeout).
    pub(crate) broken: bool,
}

/// Connections by unordered node pair, and the current partition.
#[derive(Debug, Default)]
pub(crate) struct Network {
    conns: BTreeMap<(usize, usize), Conn>,
    next_id: u64,
    group: BTreeMap<usize, u32>,
    blocked: std::collections::BTreeSet<(usize, usize)>,
}

fn key(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl Network {
    pub(crate) fn get(&self, a: usize, b: usize) -> Option<Conn> {
        self.conns.get(&key(a, b)).copied()
    }

    /// Opens a connection (replacing any previous one) and returns its id.
    pub(crate) fn open(&mut self, a: usize, b: usize) -> u64 {
        self.next_id += 1;
        self.conns.insert(
            key(a, b),
            Conn {
                id: self.next_id,
                broken: false,
            },
        );
        self.next_id
    }

    /// Removes the connection if it is still `id`.
    pub(crate) fn remove(&mut self, a: usize, b: usize, id: u64) {
        if self.get(a, b).is_some_and(|c| c.id == id) {
            self.conns.remove(&key(a, b));
        }
    }

    /// True if a `Down` for connection `id` still concerns the pair: the
    /// connection is that one, or none at all (never a newer one).
    pub(crate) fn down_applies(&self, a: usize, b: usize, id: u64) -> bool {
        self.get(a, b).is_none_or(|c| c.id == id)
    }

    /// Marks every connection matching `cut` as broken; returns them.
    pub(crate) fn break_where(
        &mut self,
        mut cut: impl FnMut(usize, usize) -> bool,
    ) -> Vec<(usize, usize, u64)> {
        let mut out = Vec::new();
        for (&(a, b), c) in self.conns.iter_mut() {
            if !c.broken && cut(a, b) {
                c.broken = true;
                out.push((a, b, c.id));
            }
        }
        out
    }

    /// Nodes in different groups cannot reach each other. Unlisted nodes
    /// are in group 0.
    pub(crate) fn set_partition(&mut self, groups: &[Vec<usize>]) {
        self.group.clear();
        for (g, nodes) in groups.iter().enumerate() {
            for n in nodes {
                self.group.insert(*n, g as u32 + 1);
            }
        }
    }

    pub(crate) fn heal(&mut self) {
        self.group.clear();
    }

    pub(crate) fn reachable(&self, a: usize, b: usize) -> bool {
        self.group.get(&a).copied().unwrap_or(0) == self.group.get(&b).copied().unwrap_or(0)
            && !self.blocked.contains(&key(a, b))
    }

    /// Makes `a` and `b` unable to reach each other (or able again).
    pub(crate) fn block(&mut self, a: usize, b: usize, blocked: bool) {
        if blocked {
            self.blocked.insert(key(a, b));
        } else {
            self.blocked.remove(&key(a, b));
        }
    }

    pub(crate) fn conns(&self) -> usize {
        self.conns.len()
    }
}
