//! The durable at-least-once outbox: every unacknowledged message with its
//! destinations and which of them acked, in one redb table.
//!
//! Table `delivery_outbox`: key `origin:32 | id:u64` (big-endian, so keys
//! sort by origin then id), value `dest_count:u16 | (dest:32 | acked:u8)* |
//! envelope` (the envelope's canonical encoding).
//!
//! Crash safety: each call is one redb write transaction, committed with
//! redb's default durability (fsync before `commit` returns), so after a
//! crash a message is either wholly present or wholly absent, and an ack is
//! either recorded or not. The sender persists a message *before* its first
//! transmission and deletes it only after the last ack; a crash in between
//! means a resend after restart, which the receiver's dedup absorbs — never a
//! loss. Use the `_many` forms to amortise the commit over many messages.

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use super::delivery_error::DeliveryStoreError;
use crate::proto::codec::{Reader, Writer};
use crate::proto::delivery::{Envelope, MessageKey};
use crate::proto::identity::ClusterId;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("delivery_outbox");

/// A message read back from the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The message.
    pub envelope: Envelope,
    /// Every destination and whether it acked.
    pub dests: Vec<(ClusterId, bool)>,
}

fn key(k: &MessageKey) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..32].copy_from_slice(&k.origin.0);
    out[32..].copy_from_slice(&k.id.to_be_bytes());
    out
}

fn encode(m: &StoredMessage) -> Vec<u8> {
    let env = m.envelope.encode();
    let mut w = Writer::with_capacity(2 + 33 * m.dests.len() + env.len());
    w.u16(m.dests.len() as u16);
    for (d, acked) in &m.dests {
        w.raw(&d.0).u8(u8::from(*acked));
    }
    w.raw(&env);
    w.finish()
}

fn decode(bytes: &[u8]) -> Result<StoredMessage, DeliveryStoreError> {
    let corrupt = |reason: String| DeliveryStoreError::Corrupt {
        table: "delivery_outbox",
        reason,
    };
    let mut r = Reader::new(bytes);
    let n = r.u16().map_err(|e| corrupt(e.to_string()))? as usize;
    let mut dests = Vec::with_capacity(n.min(r.remaining() / 33));
    for _ in 0..n {
        let id = ClusterId(r.array().map_err(|e| corrupt(e.to_string()))?);
        let acked = r.u8().map_err(|e| corrupt(e.to_string()))? != 0;
        dests.push((id, acked));
    }
    let rest = r.take(r.remaining()).map_err(|e| corrupt(e.to_string()))?;
    let envelope = Envelope::decode(rest).map_err(|e| corrupt(e.to_string()))?;
    Ok(StoredMessage { envelope, dests })
}

/// Creates the table if needed (call once at startup).
pub fn init(db: &Database) -> Result<(), DeliveryStoreError> {
    let txn = db.begin_write()?;
    txn.open_table(TABLE)?;
    txn.commit()?;
    Ok(())
}

/// Adds messages inside the caller's transaction.
pub fn put_in(
    txn: &WriteTransaction,
    messages: &[StoredMessage],
) -> Result<(), DeliveryStoreError> {
    let mut t = txn.open_table(TABLE)?;
    for m in messages {
        t.insert(key(&m.envelope.key).as_slice(), encode(m).as_slice())?;
    }
    Ok(())
}

/// Persists messages (one durable commit for all of them).
pub fn put_many(db: &Database, messages: &[StoredMessage]) -> Result<(), DeliveryStoreError> {
    let txn = db.begin_write()?;
    put_in(&txn, messages)?;
    txn.commit()?;
    Ok(())
}

/// Persists one message with all destinations pending.
pub fn put(
    db: &Database,
    envelope: &Envelope,
    dests: &[ClusterId],
) -> Result<(), DeliveryStoreError> {
    put_many(
        db,
        &[StoredMessage {
            envelope: envelope.clone(),
            dests: dests.iter().map(|d| (*d, false)).collect(),
        }],
    )
}

/// Records acks (one durable commit); a message whose destinations have all
/// acked is deleted. Returns the keys deleted. Unknown keys are ignored (a
/// late duplicate ack).
pub fn ack_many(
    db: &Database,
    acks: &[(MessageKey, ClusterId)],
) -> Result<Vec<MessageKey>, DeliveryStoreError> {
    let txn = db.begin_write()?;
    let mut done = Vec::new();
    {
        let mut t = txn.open_table(TABLE)?;
        for (k, dest) in acks {
            let kb = key(k);
            let Some(mut m) = t
                .get(kb.as_slice())?
                .map(|v| decode(v.value()))
                .transpose()?
            else {
                continue;
            };
            for (d, acked) in &mut m.dests {
                if d == dest {
                    *acked = true;
                }
            }
            if m.dests.iter().all(|(_, a)| *a) {
                t.remove(kb.as_slice())?;
                done.push(*k);
            } else {
                t.insert(kb.as_slice(), encode(&m).as_slice())?;
            }
        }
    }
    txn.commit()?;
    Ok(done)
}

/// Every pending message, in (origin, id) order (read at startup, then
/// handed to `proto::delivery::Outbox::restore`).
pub fn load(db: &Database) -> Result<Vec<StoredMessage>, DeliveryStoreError> {
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

    fn msg(id: u64) -> Envelope {
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
        .unwrap()
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
            for id in 1..=3 {
                put(&db, &msg(id), &[a, b]).unwrap();
            }
            assert_eq!(
                ack_many(&db, &[(msg(1).key, a), (msg(2).key, a), (msg(2).key, b)]).unwrap(),
                [msg(2).key]
            );
        }
        let db = Database::create(&path).unwrap();
        let back = load(&db).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(
            back[0],
            StoredMessage {
                envelope: msg(1),
                dests: vec![(a, true), (b, false)]
            }
        );
        assert_eq!(back[1].dests, [(a, false), (b, false)]);
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
    }
}
