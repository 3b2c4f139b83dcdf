//! At-least-once probes: the origin keeps every probe until its ack comes
//! back, and resends unacked ones on whatever route is current, so a probe
//! lost while routes change is sent again on the new path.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::proto::identity::ClusterId;
use crate::proto::time::Millis;

/// Most probes awaiting an ack; new probes are refused beyond it.
pub const MAX_PENDING_PROBES: usize = 4096;

/// A probe awaiting its ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingProbe {
    /// Its destination.
    pub dst: ClusterId,
    /// Its body.
    pub body: Vec<u8>,
    /// When it was first sent.
    pub first_sent: Millis,
    /// When it was last sent.
    pub last_sent: Millis,
    /// Sends so far.
    pub attempts: u32,
}

/// Why a probe cannot be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// [`MAX_PENDING_PROBES`] probes already await an ack.
    #[error("{MAX_PENDING_PROBES} probes already await an ack")]
    TooManyPending,
    /// A probe with this id already awaits an ack.
    #[error("probe {0} is already pending")]
    Duplicate(u64),
}

/// What [`Probes::due`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Due {
    /// Probes to send again: `(id, dst, body)`.
    pub resend: Vec<(u64, ClusterId, Vec<u8>)>,
    /// Probes given up, removed.
    pub expired: Vec<(u64, PendingProbe)>,
}

/// Probes awaiting acks, by id.
#[derive(Debug, Clone, Default)]
pub struct Probes {
    pending: BTreeMap<u64, PendingProbe>,
}

impl Probes {
    /// Records a probe sent (or about to be) at `now`.
    pub fn add(
        &mut self,
        id: u64,
        dst: ClusterId,
        body: Vec<u8>,
        now: Millis,
    ) -> Result<(), ProbeError> {
        if self.pending.contains_key(&id) {
            return Err(ProbeError::Duplicate(id));
        }
        if self.pending.len() >= MAX_PENDING_PROBES {
            return Err(ProbeError::TooManyPending);
        }
        self.pending.insert(
            id,
            PendingProbe {
                dst,
                body,
                first_sent: now,
                last_sent: now,
                attempts: 1,
            },
        );
        Ok(())
    }

    /// The ack for `id` arrived; returns the probe if it was pending.
    pub fn ack(&mut self, id: u64) -> Option<PendingProbe> {
        self.pending.remove(&id)
    }

    /// Probes unacked for `retry` since their last send, marked as resent
    /// at `now`, and probes older than `give_up`, removed.
    pub fn due(&mut self, now: Millis, retry: Duration, give_up: Duration) -> Due {
        let mut resend = Vec::new();
        let mut expired = Vec::new();
        self.pending.retain(|id, p| {
            if now.since(p.first_sent) >= give_up {
                expired.push((*id, p.clone()));
                return false;
            }
            if now.since(p.last_sent) >= retry {
                p.last_sent = now;
                p.attempts = p.attempts.saturating_add(1);
                resend.push((*id, p.dst, p.body.clone()));
            }
            true
        });
        Due { resend, expired }
    }

    /// The destination of pending probe `id`.
    pub fn dst_of(&self, id: u64) -> Option<ClusterId> {
        self.pending.get(&id).map(|p| p.dst)
    }

    /// Number of probes awaiting an ack.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True if no probe awaits an ack.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unacked_probes_are_resent_then_given_up() {
        let mut p = Probes::default();
        let d = ClusterId([4; 32]);
        p.add(1, d, vec![1], Millis(0)).unwrap();
        p.add(2, d, vec![2], Millis(0)).unwrap();
        assert_eq!(
            p.add(1, d, vec![], Millis(0)),
            Err(ProbeError::Duplicate(1))
        );
        let (retry, give_up) = (Duration::from_millis(500), Duration::from_secs(5));
        assert_eq!(p.due(Millis(100), retry, give_up), Due::default());
        assert!(p.ack(2).is_some());
        assert!(p.ack(2).is_none(), "a duplicate ack is ignored");
        let r = p.due(Millis(500), retry, give_up);
        assert_eq!(r.resend, vec![(1, d, vec![1])]);
        let e = p.due(Millis(5000), retry, give_up);
        assert_eq!(e.expired.len(), 1);
        assert_eq!(e.expired[0].1.attempts, 2);
        assert!(p.is_empty());
    }
}
