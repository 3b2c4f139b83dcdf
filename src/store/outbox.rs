//! The stored form of an outbox entry, and the outbox table of earlier
//! versions (read once at startup and moved into the outbox log,
//! [`super::outbox_log`]).
//!
//! Entry encoding: `dest_count:u16 | (dest:32 | seq:u64 | acked:u8)* |
//! envelope` (the envelope's canonical encoding; `seq` is the message's
//! sequence number towards that destination).
//!
//! Legacy table `delivery_outbox`: key `origin:32 | id:u64` (big-endian),
//! value the entry encoding above.

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

/// Bytes of one destination in a stored entry.
const DEST_LEN: usize = 32 + 8 + 1;

/// Appends the destinations part of an entry.
pub(super) fn write_dests(w: &mut Writer, dests: &[PendingDest]) {
    // At most MAX_MEMBERS destinations: the roster bounds subscribers.
    w.u16(dests.len().min(usize::from(u16::MAX)) as u16);
    for d in dests.iter().take(usize::from(u16::MAX)) {
        w.raw(&d.to.0).u64(d.seq).u8(u8::from(d.acked));
    }
}

/// Appends an entry's encoding.
pub(super) fn write_entry(w: &mut Writer, m: &OutboxEntry) {
    write_dests(w, &m.dests);
    m.envelope.write(w);
}

fn corrupt(table: &'static str, reason: String) -> DeliveryStoreError {
    DeliveryStoreError::Corrupt { table, reason }
}

/// Splits an entry's encoding into its destinations and the envelope bytes.
pub(super) fn split_entry<'a>(
    bytes: &'a [u8],
    table: &'static str,
) -> Result<(Vec<PendingDest>, &'a [u8]), DeliveryStoreError> {
    let bad = |e: crate::proto::codec::DecodeError| corrupt(table, e.to_string());
    let mut r = Reader::new(bytes);
    let n = r.u16().map_err(bad)? as usize;
    let mut dests = Vec::with_capacity(n.min(r.remaining() / DEST_LEN));
    for _ in 0..n {
        let to = ClusterId(r.array().map_err(bad)?);
        let seq = r.u64().map_err(bad)?;
        let acked = r.u8().map_err(bad)? != 0;
        dests.push(PendingDest { to, seq, acked });
    }
    let rest = r.take(r.remaining()).map_err(bad)?;
    Ok((dests, rest))
}

/// The message key of an envelope's canonical encoding (it starts with
/// it), without decoding the rest.
pub(super) fn envelope_key(
    envelope: &[u8],
    table: &'static str,
) -> Result<MessageKey, DeliveryStoreError> {
    let mut r = Reader::new(envelope);
    let bad = |e: crate::proto::codec::DecodeError| corrupt(table, e.to_string());
    let origin = ClusterId(r.array().map_err(bad)?);
    let id = r.u64().map_err(bad)?;
    Ok(MessageKey { origin, id })
}

/// Decodes an entry's encoding.
pub(super) fn decode_entry(
    bytes: &[u8],
    table: &'static str,
) -> Result<OutboxEntry, DeliveryStoreError> {
    let (dests, envelope) = split_entry(bytes, table)?;
    let envelope = Envelope::decode(envelope).map_err(|e| corrupt(table, e.to_string()))?;
    Ok(OutboxEntry {
        envelope: Arc::new(envelope),
        dests,
    })
}

/// Every entry of the legacy table, in (origin, id) order.
pub fn load_legacy(db: &Database) -> Result<Vec<OutboxEntry>, DeliveryStoreError> {
    let txn = db.begin_read()?;
    let t = match txn.open_table(TABLE) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::with_capacity(usize::try_from(t.len()?).unwrap_or(0).min(1 << 16));
    for entry in t.iter()? {
        let (_, v) = entry?;
        out.push(decode_entry(v.value(), "delivery_outbox")?);
    }
    Ok(out)
}

/// Drops the legacy table inside the caller's transaction (once its
/// entries are in the outbox log).
pub(super) fn drop_legacy_in(txn: &WriteTransaction) -> Result<(), DeliveryStoreError> {
    txn.delete_table(TABLE)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proto::delivery::Guarantee;
    use crate::proto::queue::QueueName;

    /// A message with `id` and 100 bytes of payload.
    pub(crate) fn msg(id: u64) -> Arc<Envelope> {
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

    /// An entry for `id` towards `dests`, none acked (seq = id + 10).
    pub(crate) fn entry(id: u64, dests: &[ClusterId]) -> OutboxEntry {
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

    /// Writes `entries` into the legacy table, as an earlier version did.
    pub(crate) fn put_legacy(db: &Database, entries: &[OutboxEntry]) {
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(TABLE).unwrap();
            for m in entries {
                let mut k = [0u8; 40];
                k[..32].copy_from_slice(&m.envelope.key.origin.0);
                k[32..].copy_from_slice(&m.envelope.key.id.to_be_bytes());
                let mut w = Writer::default();
                write_entry(&mut w, m);
                t.insert(k.as_slice(), w.finish().as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    #[test]
    fn legacy_entries_read_back_then_the_table_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("x.redb")).unwrap();
        assert!(load_legacy(&db).unwrap().is_empty());
        let (a, b) = (ClusterId([2; 32]), ClusterId([3; 32]));
        let mut half = entry(1, &[a, b]);
        half.dests[0].acked = true;
        put_legacy(&db, &[half.clone(), entry(3, &[b])]);
        assert_eq!(load_legacy(&db).unwrap(), [half, entry(3, &[b])]);
        let txn = db.begin_write().unwrap();
        drop_legacy_in(&txn).unwrap();
        txn.commit().unwrap();
        assert!(load_legacy(&db).unwrap().is_empty());
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
        assert!(matches!(
            load_legacy(&db),
            Err(DeliveryStoreError::Corrupt { .. })
        ));
    }
}
