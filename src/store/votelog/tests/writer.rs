//! Writer behaviour: refusals, checkpoint cadence, group commit, locking.

use std::time::Duration;

use super::*;
use crate::store::votelog::format::MAX_BODY_LEN;
use crate::store::votelog::{SyncPolicy, WriterError};

#[test]
fn create_refuses_to_clobber_a_non_empty_file() {
    let fx = fixture();
    std::fs::write(&fx.path, b"precious").unwrap();
    let err =
        VoteLogWriter::create(&fx.path, fx.network, fx.identity.clone(), every(8)).unwrap_err();
    assert!(matches!(err, WriterError::AlreadyExists { .. }), "{err}");
    assert_eq!(fx.bytes(), b"precious");

    // An existing empty file is fine (e.g. made by an installer).
    std::fs::write(&fx.path, b"").unwrap();
    fx.create(every(8)).close().unwrap();
    let complete = fx.bytes();
    assert_eq!(verify_log(&complete[..]).unwrap().records, 1);

    // So is the torn header an interrupted `create` of the same log leaves,
    let header = &complete[..82];
    std::fs::write(&fx.path, &header[..40]).unwrap();
    fx.create(every(8)).close().unwrap();
    assert_eq!(fx.bytes(), complete);
    // but not a complete header, nor another node's torn header.
    std::fs::write(&fx.path, header).unwrap();
    let err =
        VoteLogWriter::create(&fx.path, fx.network, fx.identity.clone(), every(8)).unwrap_err();
    assert!(matches!(err, WriterError::AlreadyExists { .. }), "{err}");
    let mut other = header[..60].to_vec();
    other[55] ^= 1;
    std::fs::write(&fx.path, &other).unwrap();
    let err =
        VoteLogWriter::create(&fx.path, fx.network, fx.identity.clone(), every(8)).unwrap_err();
    assert!(matches!(err, WriterError::AlreadyExists { .. }), "{err}");
    assert_eq!(fx.bytes(), other);
}

#[test]
fn callers_cannot_append_checkpoints_or_oversized_bodies() {
    let fx = fixture();
    let mut w = fx.create(every(8));
    assert!(matches!(
        w.append(RecordKind::Checkpoint, &[0; 72]),
        Err(WriterError::CheckpointKind)
    ));
    let too_big = vec![0u8; MAX_BODY_LEN + 1];
    assert!(matches!(
        w.append(RecordKind::Vote, &too_big),
        Err(WriterError::BodyTooLarge { .. })
    ));
    // The refusals wrote nothing; the largest legal body round-trips.
    assert_eq!(w.next_seq(), 0);
    let largest = vec![0x5a; MAX_BODY_LEN];
    assert_eq!(w.append(RecordKind::Evidence, &largest).unwrap(), 0);
    w.close().unwrap();
    let (records, _) = read_all(&fx.bytes());
    assert_eq!(records[0].body, largest);
    assert_eq!(records[0].encoded_len(), 4 + 4 * 1024 * 1024);
}

#[test]
fn invalid_options_are_refused() {
    let fx = fixture();
    let err =
        VoteLogWriter::create(&fx.path, fx.network, fx.identity.clone(), every(0)).unwrap_err();
    assert!(matches!(err, WriterError::InvalidOptions(_)));
}

#[test]
fn checkpoints_follow_every_n_records_and_close() {
    let fx = fixture();
    let mut w = fx.create(every(3));
    let seqs = append_items(&mut w, 0, 7);
    assert_eq!(seqs, [0, 1, 2, 4, 5, 6, 8]);
    assert!(!w.is_sealed());
    w.close().unwrap();
    let (records, summary) = read_all(&fx.bytes());
    let kinds: Vec<bool> = records
        .iter()
        .map(|r| r.kind == RecordKind::Checkpoint)
        .collect();
    assert_eq!(
        kinds,
        [
            false, false, false, true, false, false, false, true, false, true
        ]
    );
    assert!(summary.sealed);
}

#[test]
fn explicit_checkpoint_seals_and_syncs() {
    let fx = fixture();
    let mut w = fx.create(every(100));
    append_items(&mut w, 0, 5);
    assert_eq!(w.unsynced(), 5);
    let before = w.syncs();
    assert_eq!(w.checkpoint().unwrap(), 5);
    assert!(w.is_sealed());
    assert_eq!(w.unsynced(), 0);
    assert_eq!(w.syncs(), before + 1);
    // A sync with nothing pending costs nothing.
    w.sync().unwrap();
    assert_eq!(w.syncs(), before + 1);
    drop(w);
    assert!(verify_log(&fx.bytes()[..]).unwrap().sealed);
}

#[test]
fn group_commit_batches_fsyncs() {
    let fx = fixture();
    let mut w = fx.create(WriterOptions::default());
    let at_create = w.syncs();
    append_items(&mut w, 0, 10_000);
    let syncs = w.syncs() - at_create;
    // 10,000 / 256 count-triggered syncs, checkpoints (every 1024) sharing
    // theirs; time-triggered ones only add up when appends are slow.
    assert!(syncs >= 10, "{syncs} syncs");
    assert!(syncs <= 64, "{syncs} syncs for 10,000 appends");
    w.close().unwrap();
    let (records, summary) = read_all(&fx.bytes());
    assert_eq!(
        items_of(&records),
        (0..10_000).map(item).collect::<Vec<_>>()
    );
    assert_eq!(summary.checkpoints, 10_000 / 1024 + 1);
    assert!(summary.sealed);
}

#[test]
fn sync_policy_is_honoured_by_count_and_by_delay() {
    let fx = fixture();
    let mut w = fx.create(WriterOptions {
        checkpoint_every: 1_000,
        sync: SyncPolicy {
            max_unsynced_records: 4,
            max_delay: Duration::MAX,
        },
    });
    let s0 = w.syncs();
    append_items(&mut w, 0, 3);
    assert_eq!((w.syncs() - s0, w.unsynced()), (0, 3));
    append_items(&mut w, 3, 4);
    assert_eq!((w.syncs() - s0, w.unsynced()), (1, 0));
    drop(w);

    // A zero delay means every record is already overdue when it is appended.
    let fx = fixture();
    let mut w = fx.create(WriterOptions {
        checkpoint_every: 1_000,
        sync: SyncPolicy {
            max_unsynced_records: 1_000,
            max_delay: Duration::ZERO,
        },
    });
    let s0 = w.syncs();
    append_items(&mut w, 0, 5);
    assert_eq!((w.syncs() - s0, w.unsynced()), (5, 0));
}

#[test]
fn a_second_writer_is_locked_out() {
    let fx = fixture();
    let w = fx.create(every(8));
    let err = VoteLogWriter::open(&fx.path, fx.network, fx.identity.clone(), every(8)).unwrap_err();
    assert!(matches!(err, WriterError::Locked { .. }), "{err}");
    w.close().unwrap();
    fx.open(every(8)).close().unwrap();
}
