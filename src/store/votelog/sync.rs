//! Group commit: when the writer pays for an fsync. One fsync per record
//! would cap a node at a few hundred votes per second on ordinary disks;
//! batching bounds both the loss window (records and time) and the cost.

use std::time::{Duration, Instant};

/// When buffered records are flushed and `sync_data`'d. Records are also
/// synced at every checkpoint, on [`sync`](super::VoteLogWriter::sync) and
/// on [`close`](super::VoteLogWriter::close).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncPolicy {
    /// Sync once this many records are unsynced (at least 1; 1 = every record).
    pub max_unsynced_records: usize,
    /// Sync once the oldest unsynced record is this old. Checked when a
    /// record is appended or [`sync_if_due`](super::VoteLogWriter::sync_if_due)
    /// is called: the writer has no thread of its own.
    pub max_delay: Duration,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy {
            max_unsynced_records: 256,
            max_delay: Duration::from_millis(50),
        }
    }
}

/// Options of a [`VoteLogWriter`](super::VoteLogWriter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// A signed checkpoint is appended after this many ordinary records
    /// (at least 1), and on close.
    pub checkpoint_every: u64,
    /// Group commit policy.
    pub sync: SyncPolicy,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            checkpoint_every: 1024,
            sync: SyncPolicy::default(),
        }
    }
}

impl WriterOptions {
    /// Refuses values that would disable checkpoints or syncing by accident.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.checkpoint_every == 0 {
            return Err("checkpoint_every must be at least 1");
        }
        if self.sync.max_unsynced_records == 0 {
            return Err("sync.max_unsynced_records must be at least 1");
        }
        Ok(())
    }
}

/// The unsynced records since the last sync. Takes `now` as an argument so
/// the policy is tested with constructed instants rather than sleeps.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    unsynced: usize,
    oldest: Option<Instant>,
}

impl GroupCommit {
    /// A record reached the buffer at `now`.
    pub(crate) fn written(&mut self, now: Instant) {
        self.unsynced += 1;
        self.oldest.get_or_insert(now);
    }

    /// Whether `policy` asks for a sync at `now`.
    pub(crate) fn due(&self, policy: &SyncPolicy, now: Instant) -> bool {
        if self.unsynced == 0 {
            return false;
        }
        self.unsynced >= policy.max_unsynced_records
            || self
                .oldest
                .is_some_and(|t| now.saturating_duration_since(t) >= policy.max_delay)
    }

    /// Everything written so far is durable.
    pub(crate) fn synced(&mut self) {
        self.unsynced = 0;
        self.oldest = None;
    }

    /// Records not yet durable.
    pub(crate) fn unsynced(&self) -> usize {
        self.unsynced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_by_count_or_by_age_of_the_oldest_record() {
        let policy = SyncPolicy {
            max_unsynced_records: 3,
            max_delay: Duration::from_millis(50),
        };
        let t0 = Instant::now();
        let mut gc = GroupCommit::default();
        assert!(
            !gc.due(&policy, t0 + Duration::from_secs(10)),
            "nothing to sync"
        );
        gc.written(t0);
        gc.written(t0 + Duration::from_millis(40));
        assert!(!gc.due(&policy, t0 + Duration::from_millis(49)));
        assert!(
            gc.due(&policy, t0 + Duration::from_millis(50)),
            "oldest is 50 ms old"
        );
        gc.written(t0 + Duration::from_millis(41));
        assert!(gc.due(&policy, t0 + Duration::from_millis(41)), "3 records");
        gc.synced();
        assert_eq!(gc.unsynced(), 0);
        assert!(!gc.due(&policy, t0 + Duration::from_secs(10)));
        gc.written(t0 + Duration::from_secs(10));
        assert!(!gc.due(&policy, t0 + Duration::from_millis(10_049)));
    }

    #[test]
    fn zero_intervals_are_refused() {
        assert!(WriterOptions::default().validate().is_ok());
        let no_checkpoints = WriterOptions {
            checkpoint_every: 0,
            ..Default::default()
        };
        assert!(no_checkpoints.validate().is_err());
        let never_sync = WriterOptions {
            sync: SyncPolicy {
                max_unsynced_records: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(never_sync.validate().is_err());
    }
}
