//! The durable at-least-once outbox: every unacknowledged message with its
//! destinations and which of them acked, in one redb table.
//!
//! Table `delivery_outbox`: key `origin:32 | id:u64` (big-endian, so keys
//! sort by origin then id), value `dest_count:u16 | (dest:32 | seq:u64 |
//! acked:u8)* | envelope` (the envelope's canonical encoding; `seq` is the
//! message's sequence number towards that destination).
//!
//! Crash safety: each call is one redb write transaction, committed with
//! redb's default durability (fsync before `commit` returns), so after a
//! crash a message is either wholly present or wholly absent, and an ack is
//! either recorded or not. The sender persists a message *before* its first
//! transmission and deletes it only after the last ack; a crash in between
//! means a resend after restart, which the receiver's dedup absorbs — never a
//! loss. Use the `_many` forms to amortise the commit over many messages.

use std::sync::Arc;

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use super::delivery_error::DeliveryStoreError;
use crate::proto::codec::{Reader, Writer};
use crate::proto::core::{OutboxEntry, PendingDest};
use crate::proto::delivery::{Envelope, MessageKey};
use crate::proto::identity::ClusterId;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("delivery_outbox");

/// Bytes of one destination in a stored value.
const DEST_LEN: usize = 32 + 8 + 1;

fn key(k: &MessageKey) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..32].copy_from_slice(&k.origin.0);
    out[32..].copy_from_slice(&k.id.to_be_bytes());
    out
}

fn encode(m: &OutboxEntry) -> Vec<u8> {
    let env = m.envelope.encode();
    let mut w = Writer::with_capacity(2 + DEST_LEN * m.dests.len() + env.len());
    // At most MAX_MEMBERS destinations: the roster bounds subscribers.
    w.u16(m.dests.len().min(usize::from(u16::MAX)) as u16);
    for d in m.dests.iter().take(usize::from(u16::MAX)) {
        w.raw(&d.to.0).u64(d.seq).u8(u8::from(d.acked));
    }
    w.raw(&env);
    w.finish()
}

fn corrupt(reason: String) -> DeliveryStoreError {
    DeliveryStoreError::Corrupt {
        table: "delivery_outbox",
        reason,
    }
}

fn decode(bytes: &[u8]) -> Result<OutboxEntry, DeliveryStoreError> {
    let mut r = Reader::new(bytes);
    let n = r.u16().map_err(|e| corrupt(e.to_string()))? as usize;
    let mut dests = Vec::with_capacity(n.min(r.remaining() / DEST_LEN));
    for _ in 0..n {
        let to = ClusterId(r.array().map_err(|e| corrupt(e.to_string()))?);
        let seq = r.u64().map_err(|e| corrupt(e.to_string()))?;
        let acked = r.u8().map_err(|e| corrupt(e.to_string()))? != 0;
        dests.push(PendingDest { to, seq, acked });
    }
    let rest = r.take(r.remaining()).map_err(|e| corrupt(e.to_string()))?;
    let envelope = Arc::new(Envelope::decode(rest).map_err(|e| corrupt(e.to_string()))?);
    Ok(OutboxEntry { envelope, dests })
}

/// Marks `dest` acked in a stored value, in place (the envelope is not
/// decoded); returns whether every destination has now acked.
fn mark_acked(value: &mut [u8], dest: &ClusterId) -> Result<bool, DeliveryStoreError> {
    let len = value.len();
    let short = || corrupt(format!("value of {len} bytes"));
    let n = usize::from(u16::from_be_bytes(
        value
            .get(..2)
            .ok_or_else(short)?
            .try_into()
            .map_err(|_| short())?,
    ));
    let header = value.get_mut(2..2 + n * DEST_LEN).ok_or_else(short)?;
    let mut all = true;
    for d in header.chunks_exact_mut(DEST_LEN) {
        if &d[..32] == dest.0.as_slice() {
            d[DEST_LEN - 1] = 1;
        }
        all &= d[DEST_LEN - 1] != 0;
    }
    Ok(all)
}

/// Creates the table if needed (call once at startup).
pub fn init(db: &Database) -> Result<(), DeliveryStoreError> {
    let txn = db.begin_write()?;
    txn.open_table(TABLE)?;
    txn.commit()?;
    Ok(())
}

/// Adds messages inside the caller's transaction.
pub fn put_in(txn: &WriteTransaction, messages: &[OutboxEntry]) -> Result<(), DeliveryStoreError> {
    let mut t = txn.open_table(TABLE)?;
    for m in messages {
        t.insert(key(&m.envelope.key).as_slice(), encode(m).as_slice())?;
    }
    Ok(())
}

/// Persists messages (one durable commit for all of them).
pub fn put_many(db: &Database, messages: &[OutboxEntry]) -> Result<(), DeliveryStoreError> {
    let txn = db.begin_write()?;
    put_in(&txn, messages)?;
    txn.commit()?;
    Ok(())
}

/// Records acks inside the caller's transaction; a message whose
/// destinations have all acked is deleted. Returns the keys deleted.
/// Unknown keys are ignored (a late duplicate ack).
pub fn ack_in(
    txn: &WriteTransaction,
    acks: &[(MessageKey, ClusterId)],
) -> Result<Vec<MessageKey>, DeliveryStoreError> {
    let mut done = Vec::new();
    let mut t = txn.open_table(TABLE)?;
    for (k, dest) in acks {
        let kb = key(k);
        let Some(mut value) = t.get(kb.as_slice())?.map(|v| v.value().to_vec()) else {
            continue;
        };
        if mark_acked(&mut value, dest)? {
            t.remove(kb.as_slice())?;
            done.push(*k);
        } else {
            t.insert(kb.as_slice(), value.as_slice())?;
        }
    }
    Ok(done)
}

/// Records acks (one durable commit); see [`ack_in`].
pub fn ack_many(
    db: &Database,
    acks: &[(MessageKey, ClusterId)],
) -> Result<Vec<MessageKey>, DeliveryStoreError> {
    let txn = db.begin_write()?;
    let done = ack_in(&txn, acks)?;
    txn.commit()?;
    Ok(done)
}

/// Every pending message, in (origin, id) order (read at startup, then
/// handed to `Core::with_data_state`).
pub fn load(db: &Database) -> Result<Vec<OutboxEntry>, DeliveryStoreError> {
    let txn = db.begin_read()?;
    let t = match txn.open_table(TABLE) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in t.iter()? {
        let (_, v) = entry?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

/// Number of pending messages.
pub fn depth(db: &Database) -> Result<u64, DeliveryStoreError> {
    let txn = db.begin_read()?;
    match txn.open_table(TABLE) {
        Ok(t) => Ok(t.len()?),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::delivery::Guarantee;
    use crate::proto::queue::QueueName;

    fn msg(id: u64) -> Arc<Envelope> {
        Arc::new(
            Envelope::new(
                MessageKey {
                    origin: ClusterId([1; 32]),
                    id,
                },
                QueueName::new("orders").unwrap(),
                Guarantee::Broadcast,
                vec![id as u8; 100],
                None,
            )
            .unwrap(),
        )
    }

    fn entry(id: u64, dests: &[ClusterId]) -> OutboxEntry {
        OutboxEntry {
            envelope: msg(id),
            dests: dests
                .iter()
                .map(|d| PendingDest {
                    to: *d,
                    seq: id + 10,
                    acked: false,
                })
                .collect(),
        }
    }

    #[test]
    fn survives_reopen_and_deletes_after_the_last_ack() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let (a, b) = (ClusterId([2; 32]), ClusterId([3; 32]));
        {
            let db = Database::create(&path).unwrap();
            assert!(load(&db).unwrap().is_empty());
            init(&db).unwrap();
            put_many(&db, &[entry(1, &[a, b]), entry(2, &[a, b])]).unwrap();
            put_many(&db, &[entry(3, &[a, b])]).unwrap();
            assert_eq!(
                ack_many(&db, &[(msg(1).key, a), (msg(2).key, a), (msg(2).key, b)]).unwrap(),
                [msg(2).key]
            );
        }
        let db = Database::create(&path).unwrap();
        let back = load(&db).unwrap();
        assert_eq!(back.len(), 2);
        let mut want = entry(1, &[a, b]);
        want.dests[0].acked = true;
        assert_eq!(back[0], want);
        assert_eq!(back[1], entry(3, &[a, b]));
        assert_eq!(depth(&db).unwrap(), 2);
        // A late ack of a deleted message is ignored.
        assert!(ack_many(&db, &[(msg(2).key, a)]).unwrap().is_empty());
        assert_eq!(ack_many(&db, &[(msg(1).key, b)]).unwrap(), [msg(1).key]);
        assert_eq!(depth(&db).unwrap(), 1);
    }

    #[test]
    fn corrupt_values_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("x.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TABLE)
            .unwrap()
            .insert([0u8; 40].as_slice(), [0u8, 1].as_slice())
            .unwrap();
        txn.commit().unwrap();
        assert!(matches!(load(&db), Err(DeliveryStoreError::Corrupt { .. })));
        let k = MessageKey {
            origin: ClusterId([0; 32]),
            id: 0,
        };
        assert!(matches!(
            ack_many(&db, &[(k, ClusterId([1; 32]))]),
            Err(DeliveryStoreError::Corrupt { .. })
        ));
    }
}
