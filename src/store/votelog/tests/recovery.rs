//! Reopening a log after a crash: torn tails are discarded, synced records
//! survive, the sequence and the chain continue; other damage is refused.

use std::io::Write;

use super::*;
use crate::store::votelog::{WriterError, verify_log_file};

/// Writes `n` items, syncs, and drops the writer without closing it: the
/// state a crash leaves right after a sync.
fn crashed_log(n: u64) -> Fixture {
    let fx = fixture();
    let mut w = fx.create(every(64));
    append_items(&mut w, 0, n);
    w.sync().unwrap();
    drop(w);
    fx
}

fn append_raw(fx: &Fixture, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&fx.path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn torn_tail_is_discarded_and_the_log_continues() {
    let fx = crashed_log(500);
    let before = verify_log_file(&fx.path).unwrap();
    assert!(!before.sealed, "a crashed log is not sealed");
    let synced_len = fx.bytes().len();

    // Half a record: a plausible length prefix, then fewer bytes than it claims.
    let mut garbage = 200u32.to_be_bytes().to_vec();
    garbage.extend((0..50u8).map(|b| b.wrapping_mul(37)));
    append_raw(&fx, &garbage);
    assert!(matches!(
        crate::store::votelog::verify_log(&fx.bytes()[..]),
        Err(LogError::TornTail { offset, .. }) if offset == synced_len as u64
    ));

    let mut w = fx.open(every(64));
    assert_eq!(
        fx.bytes().len(),
        synced_len,
        "torn bytes are gone before appending"
    );
    assert_eq!(w.next_seq(), before.records);
    assert_eq!(w.head(), before.head);
    let seqs = append_items(&mut w, 500, 600);
    assert_eq!(seqs[0], before.records, "the sequence continues");
    w.close().unwrap();

    let (records, summary) = read_all(&fx.bytes());
    assert!(summary.sealed);
    let expected: Vec<_> = (0..600).map(item).collect();
    assert_eq!(
        items_of(&records),
        expected,
        "nothing synced was lost, nothing torn kept"
    );
    // Checkpoints kept their cadence across the crash: one after every 64 items.
    let cps = records
        .iter()
        .filter(|r| r.kind == RecordKind::Checkpoint)
        .count();
    assert_eq!(cps, 600 / 64 + 1);
}

#[test]
fn a_tail_cut_inside_the_length_prefix_is_discarded() {
    let fx = crashed_log(10);
    let len = fx.bytes().len();
    append_raw(&fx, &[0, 0]);
    let mut w = fx.open(every(64));
    assert_eq!(fx.bytes().len(), len);
    append_items(&mut w, 10, 11);
    w.close().unwrap();
    assert_eq!(items_of(&read_all(&fx.bytes()).0).len(), 11);
}

#[test]
fn a_zero_filled_tail_is_discarded() {
    // What a file system can leave when it extended the file but never
    // wrote the data.
    let fx = crashed_log(100);
    let len = fx.bytes().len();
    append_raw(&fx, &[0u8; 4096]);
    let w = fx.open(every(64));
    assert_eq!(fx.bytes().len(), len);
    w.close().unwrap();
    assert!(verify_log_file(&fx.path).unwrap().sealed);
}

#[test]
fn damage_a_crash_cannot_explain_is_refused_and_left_alone() {
    let fx = crashed_log(100);
    let (records, _) = read_all(&fx.bytes());
    let mut bytes = fx.bytes();
    bytes[records[12].offset as usize + 50] ^= 1;
    std::fs::write(&fx.path, &bytes).unwrap();
    let err =
        VoteLogWriter::open(&fx.path, fx.network, fx.identity.clone(), every(64)).unwrap_err();
    assert!(
        matches!(
            err,
            WriterError::Corrupt {
                source: LogError::ChainMismatch { index: 13, .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fx.bytes(), bytes, "a refused log is not modified");

    // Trailing garbage that is neither torn nor zero is refused too.
    let fx = crashed_log(5);
    append_raw(&fx, &[0xff; 64]);
    let err =
        VoteLogWriter::open(&fx.path, fx.network, fx.identity.clone(), every(64)).unwrap_err();
    assert!(
        matches!(
            err,
            WriterError::Corrupt {
                source: LogError::RecordTooLong { index: 5, .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn records_flushed_before_the_crash_survive_even_if_unsynced() {
    // Dropping flushes the buffer to the OS; only a power loss could lose
    // those records, and a process crash does not.
    let fx = fixture();
    let mut w = fx.create(every(1000));
    append_items(&mut w, 0, 7);
    assert_eq!(w.unsynced(), 7);
    drop(w);
    let w = fx.open(every(1000));
    assert_eq!(w.next_seq(), 7);
    w.close().unwrap();
    let (records, summary) = read_all(&fx.bytes());
    assert_eq!(items_of(&records), (0..7).map(item).collect::<Vec<_>>());
    assert_eq!(summary.records, 8);
}

#[test]
fn reopening_a_sealed_log_and_closing_adds_no_checkpoint() {
    let fx = fixture();
    let mut w = fx.create(every(64));
    append_items(&mut w, 0, 3);
    w.close().unwrap();
    let len = fx.bytes().len();
    let w = fx.open(every(64));
    assert!(w.is_sealed());
    w.close().unwrap();
    assert_eq!(fx.bytes().len(), len);
}

#[test]
fn open_checks_network_node_and_emptiness() {
    let fx = crashed_log(3);
    let other_net = VoteLogWriter::open(
        &fx.path,
        crate::proto::NetworkId([1; 32]),
        fx.identity.clone(),
        every(64),
    );
    assert!(matches!(
        other_net,
        Err(WriterError::NetworkMismatch { .. })
    ));
    let other_node = VoteLogWriter::open(
        &fx.path,
        fx.network,
        Arc::new(Identity::from_seed([1; 32])),
        every(64),
    );
    assert!(matches!(other_node, Err(WriterError::NodeMismatch { .. })));

    std::fs::write(&fx.path, b"").unwrap();
    let empty = VoteLogWriter::open(&fx.path, fx.network, fx.identity.clone(), every(64));
    assert!(matches!(
        empty,
        Err(WriterError::Corrupt {
            source: LogError::EmptyFile,
            ..
        })
    ));
    let missing = VoteLogWriter::open(
        &fx.path.with_extension("nope"),
        fx.network,
        fx.identity.clone(),
        every(64),
    );
    assert!(matches!(missing, Err(WriterError::Io { .. })));
}
