//! Durable receiver dedup: each origin's floor and the ids processed above
//! it (`proto::delivery::OriginWindow`). Stored as records of the outbox
//! log ([`super::outbox_log`]); earlier versions kept one redb row per
//! origin, read here once at startup and moved into the log.
//!
//! Encoding: `floor:u64 | count:u32 | id:u64*`; legacy table
//! `delivery_dedup`: key `origin:32`, value that encoding.
//!
//! Crash safety: for exactly-once processing the window is durable before
//! the hand-off to the subscriber and the ack (both wait for the group
//! commit that holds it). A crash before the commit loses both the hand-off and
//! the mark, so the sender's retry is processed once; a crash after it keeps
//! both, so the retry is recognised as a duplicate and only acked.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::delivery_error::DeliveryStoreError;
use crate::proto::codec::{Reader, Writer};
use crate::proto::delivery::OriginWindow;
use crate::proto::identity::ClusterId;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("delivery_dedup");

#[cfg(test)]
fn encode(w: &OriginWindow) -> Vec<u8> {
    let mut out = Writer::with_capacity(12 + 8 * w.above.len());
    write_window(&mut out, w);
    out.finish()
}

/// Appends a window's encoding (`floor:u64 | count:u32 | id:u64*`).
pub(super) fn write_window(out: &mut Writer, w: &OriginWindow) {
    // The dedup window bounds `above` (4096 by default), far below u32::MAX.
    out.u64(w.floor).u32(w.above.len() as u32);
    for id in &w.above {
        out.u64(*id);
    }
}

/// Decodes a window's encoding.
pub(super) fn decode(bytes: &[u8]) -> Result<OriginWindow, DeliveryStoreError> {
    let corrupt = |e: crate::proto::codec::DecodeError| DeliveryStoreError::Corrupt {
        table: "delivery_dedup",
        reason: e.to_string(),
    };
    let mut r = Reader::new(bytes);
    let floor = r.u64().map_err(corrupt)?;
    let n = r.count(8).map_err(corrupt)?;
    let mut w = OriginWindow {
        floor,
        above: Default::default(),
    };
    for _ in 0..n {
        w.above.insert(r.u64().map_err(corrupt)?);
    }
    r.finish().map_err(corrupt)?;
    Ok(w)
}

/// Every origin's state in the legacy table (moved into the outbox log at
/// startup).
pub fn load_legacy(db: &Database) -> Result<Vec<(ClusterId, OriginWindow)>, DeliveryStoreError> {
    let txn = db.begin_read()?;
    let t = match txn.open_table(TABLE) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in t.iter()? {
        let (k, v) = entry?;
        let id: [u8; 32] = k
            .value()
            .try_into()
            .map_err(|_| DeliveryStoreError::Corrupt {
                table: "delivery_dedup",
                reason: format!("key of {} bytes", k.value().len()),
            })?;
        out.push((ClusterId(id), decode(v.value())?));
    }
    Ok(out)
}

/// Drops the legacy table inside the caller's transaction.
pub(super) fn drop_legacy_in(txn: &WriteTransaction) -> Result<(), DeliveryStoreError> {
    txn.delete_table(TABLE)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proto::delivery::{Dedup, Verdict};

    /// Writes windows the way earlier versions did.
    pub(crate) fn save(db: &Database, states: &[(ClusterId, &OriginWindow)]) {
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(TABLE).unwrap();
            for (origin, w) in states {
                t.insert(origin.0.as_slice(), encode(w).as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    #[test]
    fn survives_reopen_and_keeps_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let a = ClusterId([1; 32]);
        {
            let db = Database::create(&path).unwrap();
            assert!(load_legacy(&db).unwrap().is_empty());
            let mut d = Dedup::new(64, 8);
            for id in [1, 2, 3, 5, 9] {
                assert_eq!(d.observe(a, id), Verdict::Fresh);
            }
            save(&db, &[(a, d.origin(&a).unwrap())]);
        }
        let db = Database::create(&path).unwrap();
        let loaded = load_legacy(&db).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].1.floor, 3);
        let mut d = Dedup::new(64, 8);
        for (o, w) in loaded {
            d.restore(o, w);
        }
        for id in [1, 2, 3, 5, 9] {
            assert_eq!(d.observe(a, id), Verdict::Duplicate);
        }
        assert_eq!(d.observe(a, 4), Verdict::Fresh);
        assert_eq!(d.origin(&a).unwrap().floor, 5);
    }
}
