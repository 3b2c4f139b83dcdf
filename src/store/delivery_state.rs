//! The data path's durable state as one unit: the outbox log
//! ([`super::outbox_log`], which also records the sequence numbers per
//! destination, the receivers' dedup windows and the causal clocks per
//! topic), and in redb the message id counter (table `delivery_counters`
//! here) and the quorum votes signed here ([`super::signed_votes`]),
//! written by group commit.
//!
//! Table `delivery_counters`: key `"next_id"` → the next message id not
//! reserved. Earlier versions also kept `"seq/" | dest:32` → the next
//! sequence number towards `dest` here; those are still read.
//!
//! [`DeliveryWrites`] collects the core's data-path `Persist` outputs of
//! one or more `Core::handle` calls and makes them durable together: at
//! most one redb transaction, then one append to the outbox log, instead of
//! a sync per message. Counters and dedup windows are coalesced (only the
//! latest value per key is written); an outbox message added and fully
//! acknowledged within the same batch (a local subscriber) is never written.
//!
//! Order: redb first. A crash between the two leaves ids reserved and
//! windows advanced with the batch's outbox records missing, which is
//! safe: those messages were never sent nor reported (outputs wait for
//! both), and their sequence numbers, recorded only in the log, are free
//! again. The reverse could reuse a message id.

use std::collections::BTreeMap;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::delivery_error::DeliveryStoreError;
use super::outbox_log::{LogBatch, OutboxLog};
use crate::proto::core::{DataState, OutboxEntry, Persist};
use crate::proto::delivery::{AttestedVote, MessageKey, OriginWindow};
use crate::proto::identity::ClusterId;
use crate::proto::queue::QueueName;
use crate::proto::vclock::VClock;

const COUNTERS: TableDefinition<&[u8], u64> = TableDefinition::new("delivery_counters");
const NEXT_ID: &[u8] = b"next_id";
const SEQ_PREFIX: &[u8] = b"seq/";

/// Creates the data path's tables if needed (call once at startup).
pub fn init(db: &Database) -> Result<(), DeliveryStoreError> {
    let txn = db.begin_write()?;
    txn.open_table(COUNTERS)?;
    txn.commit()?;
    Ok(())
}

/// Moves what earlier versions kept in redb (the outbox, the sequence
/// numbers, the dedup windows) into the log; call once at startup, before
/// anything else is appended. In the log first: a crash before the redb
/// side is cleared only repeats this at the next start.
pub fn migrate_to_log(db: &Database, log: &mut OutboxLog) -> Result<(), DeliveryStoreError> {
    let outbox = super::outbox::load_legacy(db)?;
    let dedup: BTreeMap<ClusterId, OriginWindow> =
        super::dedup::load_legacy(db)?.into_iter().collect();
    let mut next_seq = BTreeMap::new();
    let mut seq_keys = Vec::new();
    let txn = db.begin_read()?;
    match txn.open_table(COUNTERS) {
        Ok(t) => {
            for entry in t.range(SEQ_PREFIX..)? {
                let (k, v) = entry?;
                let Some(dest) = k.value().strip_prefix(SEQ_PREFIX) else {
                    break;
                };
                let dest = <[u8; 32]>::try_from(dest).map_err(|_| DeliveryStoreError::Corrupt {
                    table: "delivery_counters",
                    reason: format!("sequence key of {} bytes", k.value().len()),
                })?;
                next_seq.insert(ClusterId(dest), v.value());
                seq_keys.push(k.value().to_vec());
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(e.into()),
    }
    drop(txn);
    if outbox.is_empty() && dedup.is_empty() && next_seq.is_empty() {
        return Ok(());
    }
    log.append(&LogBatch {
        adds: &outbox,
        next_seq: &next_seq,
        dedup: &dedup,
        ..LogBatch::default()
    })?;
    let txn = db.begin_write()?;
    super::outbox::drop_legacy_in(&txn)?;
    super::dedup::drop_legacy_in(&txn)?;
    {
        let mut t = txn.open_table(COUNTERS)?;
        for k in &seq_keys {
            t.remove(k.as_slice())?;
        }
    }
    txn.commit()?;
    tracing::info!(
        messages = outbox.len(),
        origins = dedup.len(),
        destinations = next_seq.len(),
        "moved the outbox, dedup windows and sequence numbers into the outbox log"
    );
    Ok(())
}

/// Reads everything back (at startup, for `Core::with_data_state`).
pub fn load(db: &Database, log: &OutboxLog) -> Result<DataState, DeliveryStoreError> {
    let mut state = DataState {
        outbox: log.entries()?,
        next_seq: log.next_seq(),
        dedup: log.dedup(),
        causal: log.causal(),
        ..DataState::default()
    };
    let txn = db.begin_read()?;
    let t = match txn.open_table(COUNTERS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(state),
        Err(e) => return Err(e.into()),
    };
    for entry in t.iter()? {
        let (k, v) = entry?;
        if k.value() != NEXT_ID {
            return Err(DeliveryStoreError::Corrupt {
                table: "delivery_counters",
                reason: format!("unknown key of {} bytes", k.value().len()),
            });
        }
        state.next_id = v.value();
    }
    Ok(state)
}

/// Data-path writes (and quorum votes) waiting for one group commit.
#[derive(Debug, Default)]
pub struct DeliveryWrites {
    adds: Vec<OutboxEntry>,
    acks: Vec<(MessageKey, ClusterId)>,
    next_id: Option<u64>,
    next_seq: BTreeMap<ClusterId, u64>,
    dedup: BTreeMap<ClusterId, OriginWindow>,
    /// Quorum votes signed here ([`Persist::QuorumVotes`]).
    votes: Vec<AttestedVote>,
    /// Causal clocks per topic, the latest of each.
    causal: BTreeMap<QueueName, VClock>,
}

impl DeliveryWrites {
    /// Takes a data-path `Persist` into the batch; any other is handed back.
    pub fn take(&mut self, p: Persist) -> Option<Persist> {
        match p {
            Persist::OutboxAdd(e) => self.adds.push(e),
            Persist::OutboxAck { key, dest } => self.acks.push((key, dest)),
            Persist::NextMessageId(n) => self.next_id = Some(self.next_id.unwrap_or(0).max(n)),
            Persist::NextSeq { dest, next } => {
                let n = self.next_seq.entry(dest).or_insert(next);
                *n = (*n).max(next);
            }
            Persist::DedupWindow { origin, window } => {
                self.dedup.insert(origin, window);
            }
            Persist::QuorumVotes(votes) => self.votes.extend(votes),
            Persist::CausalClock { topic, clock } => {
                self.causal.insert(topic, clock);
            }
            other => return Some(other),
        }
        None
    }

    /// Whether outputs staged after these writes must wait for their
    /// commit: any write but an ack. Nothing waits for an ack: one lost in
    /// a crash only brings a retransmission, which the receiver
    /// acknowledges again as a duplicate.
    pub fn holds_outputs(&self) -> bool {
        !self.adds.is_empty()
            || self.next_id.is_some()
            || !self.next_seq.is_empty()
            || !self.dedup.is_empty()
            || !self.votes.is_empty()
            || !self.causal.is_empty()
    }

    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty()
            && self.acks.is_empty()
            && self.next_id.is_none()
            && self.next_seq.is_empty()
            && self.dedup.is_empty()
            && self.votes.is_empty()
            && self.causal.is_empty()
    }

    /// Makes the batch durable and empties it. On an error the batch is
    /// dropped and the node must stop: part of it may be stored.
    pub fn commit(&mut self, db: &Database, log: &mut OutboxLog) -> Result<(), DeliveryStoreError> {
        let mut batch = std::mem::take(self);
        // Acks of messages added in this batch are applied before writing.
        let mut acks = Vec::with_capacity(batch.acks.len());
        let added: std::collections::HashMap<MessageKey, usize> = if batch.acks.is_empty() {
            Default::default()
        } else {
            (batch.adds.iter().enumerate())
                .map(|(i, e)| (e.envelope.key, i))
                .collect()
        };
        for (key, dest) in batch.acks.drain(..) {
            match added.get(&key).and_then(|i| batch.adds.get_mut(*i)) {
                Some(e) => e
                    .dests
                    .iter_mut()
                    .filter(|d| d.to == dest)
                    .for_each(|d| d.acked = true),
                None => acks.push((key, dest)),
            }
        }
        batch.adds.retain(|e| e.dests.iter().any(|d| !d.acked));
        if batch.next_id.is_some() || !batch.votes.is_empty() {
            let txn = db.begin_write()?;
            if let Some(n) = batch.next_id {
                txn.open_table(COUNTERS)?.insert(NEXT_ID, n)?;
            }
            super::signed_votes::remember_in(&txn, &batch.votes)?;
            txn.commit()?;
        }
        log.append(&LogBatch {
            adds: &batch.adds,
            acks: &acks,
            next_seq: &batch.next_seq,
            causal: &batch.causal,
            dedup: &batch.dedup,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::proto::core::PendingDest;
    use crate::proto::delivery::{Envelope, Guarantee};

    fn entry(id: u64, dests: &[ClusterId]) -> OutboxEntry {
        let key = MessageKey {
            origin: ClusterId([1; 32]),
            id,
        };
        let q = QueueName::new("q").unwrap();
        OutboxEntry {
            envelope: Arc::new(
                Envelope::new(key, q, Guarantee::AtLeastOnce, vec![], None).unwrap(),
            ),
            dests: dests
                .iter()
                .map(|d| PendingDest {
                    to: *d,
                    seq: id,
                    acked: false,
                })
                .collect(),
        }
    }

    #[test]
    fn one_commit_coalesces_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let logdir = dir.path().join("outbox");
        let open_log = || OutboxLog::open(&logdir, Default::default()).unwrap();
        let (a, b) = (ClusterId([2; 32]), ClusterId([3; 32]));
        let window = OriginWindow {
            floor: 7,
            above: [9].into(),
        };
        let q = || QueueName::new("t.x").unwrap();
        let clock = |n: u64| {
            let mut c = VClock::new();
            c.set(a, n).unwrap();
            c
        };
        {
            let db = Database::create(&path).unwrap();
            init(&db).unwrap();
            let mut log = open_log();
            let mut w = DeliveryWrites::default();
            assert!(w.is_empty());
            for p in [
                Persist::NextMessageId(2),
                Persist::NextMessageId(4),
                Persist::NextSeq { dest: a, next: 3 },
                Persist::OutboxAdd(entry(1, &[a])),
                Persist::OutboxAdd(entry(2, &[a, b])),
                Persist::OutboxAdd(entry(3, &[b])),
                // Message 1 completes inside the batch; 2 half; 3 later.
                Persist::OutboxAck {
                    key: entry(1, &[]).envelope.key,
                    dest: a,
                },
                Persist::OutboxAck {
                    key: entry(2, &[]).envelope.key,
                    dest: b,
                },
                Persist::DedupWindow {
                    origin: b,
                    window: OriginWindow::default(),
                },
                Persist::DedupWindow {
                    origin: b,
                    window: window.clone(),
                },
                Persist::CausalClock {
                    topic: q(),
                    clock: clock(1),
                },
                Persist::CausalClock {
                    topic: q(),
                    clock: clock(2),
                },
            ] {
                assert!(w.take(p).is_none());
            }
            assert!(w.take(Persist::Incarnation(1)).is_some());
            w.commit(&db, &mut log).unwrap();
            assert!(w.is_empty());
            w.take(Persist::OutboxAck {
                key: entry(3, &[]).envelope.key,
                dest: b,
            });
            w.commit(&db, &mut log).unwrap();
        }
        let db = Database::create(&path).unwrap();
        let s = load(&db, &open_log()).unwrap();
        assert_eq!(s.next_id, 4);
        // a: the NextSeq output; b: past message 3, which used seq 3.
        assert_eq!(s.next_seq, [(a, 3), (b, 4)]);
        assert_eq!(s.dedup, [(b, window)]);
        assert_eq!(s.causal, [(q(), clock(2))], "the latest clock per topic");
        let mut want = entry(2, &[a, b]);
        want.dests[1].acked = true;
        assert_eq!(s.outbox, [want]);
    }

    #[test]
    fn what_earlier_versions_kept_in_redb_moves_into_the_log_once() {
        use crate::store::outbox::tests::{entry as legacy_entry, put_legacy};
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("node.redb")).unwrap();
        init(&db).unwrap();
        let (a, b) = (ClusterId([2; 32]), ClusterId([3; 32]));
        let mut half = legacy_entry(1, &[a, b]);
        half.dests[1].acked = true;
        put_legacy(&db, &[half.clone(), legacy_entry(2, &[a])]);
        // Counters of the earlier layout are still read.
        let txn = db.begin_write().unwrap();
        let mut k = SEQ_PREFIX.to_vec();
        k.extend_from_slice(&a.0);
        txn.open_table(COUNTERS)
            .unwrap()
            .insert(k.as_slice(), 40)
            .unwrap();
        txn.commit().unwrap();
        let window = OriginWindow {
            floor: 4,
            above: [6].into(),
        };
        crate::store::dedup::tests::save(&db, &[(b, &window)]);
        let logdir = dir.path().join("outbox");
        {
            let mut log = OutboxLog::open(&logdir, Default::default()).unwrap();
            migrate_to_log(&db, &mut log).unwrap();
        }
        let mut log = OutboxLog::open(&logdir, Default::default()).unwrap();
        migrate_to_log(&db, &mut log).unwrap();
        let s = load(&db, &log).unwrap();
        assert_eq!(s.outbox, [half, legacy_entry(2, &[a])]);
        assert_eq!(s.next_seq, [(a, 40), (b, 12)]);
        assert_eq!(s.dedup, [(b, window)]);
        // Nothing is left behind in redb (an unknown counter would fail the load).
        assert!(crate::store::outbox::load_legacy(&db).unwrap().is_empty());
        assert!(crate::store::dedup::load_legacy(&db).unwrap().is_empty());
    }
}
