use std::collections::BTreeMap;
use std::io::Write;

use proptest::prelude::*;

use super::*;
use crate::store::outbox::tests::entry;

const A: ClusterId = ClusterId([2; 32]);
const B: ClusterId = ClusterId([3; 32]);

fn key(id: u64) -> MessageKey {
    entry(id, &[]).envelope.key
}

fn small() -> LogOptions {
    LogOptions {
        segment_bytes: 2048,
        max_sealed: 2,
    }
}

fn none() -> BTreeMap<ClusterId, u64> {
    BTreeMap::new()
}

/// Appends a batch without causal clocks.
fn put(
    log: &mut OutboxLog,
    adds: &[OutboxEntry],
    acks: &[(MessageKey, ClusterId)],
    next_seq: &BTreeMap<ClusterId, u64>,
    dedup: &BTreeMap<ClusterId, OriginWindow>,
) -> Result<(), DeliveryStoreError> {
    log.append(&LogBatch {
        adds,
        acks,
        next_seq,
        dedup,
        ..LogBatch::default()
    })
}

/// Message `id` to A, acknowledged in the same append.
fn add_and_ack(log: &mut OutboxLog, id: u64) {
    put(
        log,
        &[entry(id, &[A])],
        &[(key(id), A)],
        &none(),
        &BTreeMap::new(),
    )
    .unwrap();
}

fn newest_segment(dir: &Path) -> PathBuf {
    let ids = replay_list(dir);
    segment_path(dir, *ids.last().unwrap())
}

fn replay_list(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            u64::from_str_radix(name.strip_suffix(".seg")?, 16).ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn pending_messages_and_their_acks_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = OutboxLog::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(log.depth(), 0);
        put(
            &mut log,
            &[entry(1, &[A, B]), entry(2, &[A, B])],
            &[],
            &none(),
            &BTreeMap::new(),
        )
        .unwrap();
        put(
            &mut log,
            &[entry(3, &[A, B])],
            &[(key(1), A), (key(2), A), (key(2), B)],
            &none(),
            &BTreeMap::new(),
        )
        .unwrap();
        // A late duplicate ack, and one of an unknown message: nothing.
        put(
            &mut log,
            &[],
            &[(key(2), A), (key(9), A)],
            &none(),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(log.depth(), 2);
    }
    let log = OutboxLog::open(dir.path(), LogOptions::default()).unwrap();
    let mut one = entry(1, &[A, B]);
    one.dests[0].acked = true;
    assert_eq!(log.entries().unwrap(), [one, entry(3, &[A, B])]);
    // Message 3 went out with seq 13 to both.
    assert_eq!(log.next_seq(), [(A, 14), (B, 14)]);
}

#[test]
fn sequence_numbers_outlive_the_segments_that_used_them() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = OutboxLog::open(dir.path(), small()).unwrap();
        for id in 1..=40 {
            add_and_ack(&mut log, id);
        }
        // A sequence number no add shows (a local self-delivery).
        put(
            &mut log,
            &[],
            &[],
            &BTreeMap::from([(B, 7)]),
            &BTreeMap::new(),
        )
        .unwrap();
        put(
            &mut log,
            &[],
            &[],
            &BTreeMap::from([(B, 5)]),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(log.depth(), 0);
        assert_eq!(log.segments(), 1, "every older segment deleted");
    }
    let log = OutboxLog::open(dir.path(), small()).unwrap();
    assert_eq!(log.next_seq(), [(A, 51), (B, 7)]);
}

#[test]
fn the_latest_dedup_windows_outlive_the_segments_that_held_them() {
    use crate::proto::delivery::OriginWindow;
    let dir = tempfile::tempdir().unwrap();
    let window = |floor: u64| OriginWindow {
        floor,
        above: [floor + 2, floor + 5].into(),
    };
    {
        let mut log = OutboxLog::open(dir.path(), small()).unwrap();
        put(
            &mut log,
            &[],
            &[],
            &none(),
            &BTreeMap::from([(B, window(3))]),
        )
        .unwrap();
        for floor in 10..200 {
            put(
                &mut log,
                &[],
                &[],
                &none(),
                &BTreeMap::from([(A, window(floor))]),
            )
            .unwrap();
        }
        assert!(log.segments() <= 2, "{}", log.segments());
    }
    assert!(replay_list(dir.path()).first() > Some(&1), "segment 1 went");
    let log = OutboxLog::open(dir.path(), small()).unwrap();
    assert_eq!(log.dedup(), [(A, window(199)), (B, window(3))]);
}

#[test]
fn the_latest_causal_clocks_outlive_the_segments_that_held_them() {
    use crate::proto::queue::QueueName;
    use crate::proto::vclock::VClock;
    let dir = tempfile::tempdir().unwrap();
    let topic = |t: &str| QueueName::new(t).unwrap();
    let clock = |a: u64, b: u64| {
        let mut c = VClock::new();
        c.set(A, a).unwrap();
        c.set(B, b).unwrap();
        c
    };
    {
        let mut log = OutboxLog::open(dir.path(), small()).unwrap();
        let once = BTreeMap::from([(topic("t.y"), clock(1, 2))]);
        log.append(&LogBatch {
            causal: &once,
            ..LogBatch::default()
        })
        .unwrap();
        for n in 1..200 {
            let latest = BTreeMap::from([(topic("t.x"), clock(n, 1))]);
            log.append(&LogBatch {
                causal: &latest,
                ..LogBatch::default()
            })
            .unwrap();
        }
        assert!(log.segments() <= 2, "{}", log.segments());
    }
    assert!(replay_list(dir.path()).first() > Some(&1), "segment 1 went");
    let log = OutboxLog::open(dir.path(), small()).unwrap();
    assert_eq!(
        log.causal(),
        [(topic("t.x"), clock(199, 1)), (topic("t.y"), clock(1, 2))]
    );
}

#[test]
fn a_damaged_causal_record_is_refused_not_guessed() {
    use crate::proto::queue::QueueName;
    use crate::proto::vclock::VClock;
    let mut buf = Vec::new();
    let mut c = VClock::new();
    c.set(A, 3).unwrap();
    record::append(&mut buf, record::Kind::Causal, |w| {
        record::causal_body(w, &QueueName::new("t.x").unwrap(), &c)
    });
    let body = &buf[record::HEAD_LEN + 1..];
    assert_eq!(
        record::read_causal(body),
        Some((QueueName::new("t.x").unwrap(), c))
    );
    // Cut short, or with a topic that is not a queue name: no record.
    for cut in 0..body.len() {
        assert_eq!(record::read_causal(&body[..cut]), None, "{cut}");
    }
    let mut bad = body.to_vec();
    bad[2] = b'#';
    assert_eq!(record::read_causal(&bad), None);
}

#[test]
fn a_long_pending_message_is_copied_forward_with_its_acks() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = OutboxLog::open(dir.path(), small()).unwrap();
        put(
            &mut log,
            &[entry(1, &[A, B])],
            &[],
            &none(),
            &BTreeMap::new(),
        )
        .unwrap();
        put(&mut log, &[], &[(key(1), A)], &none(), &BTreeMap::new()).unwrap();
        for id in 2..=200 {
            add_and_ack(&mut log, id);
            assert!(
                log.segments() <= small().max_sealed + 2,
                "{}",
                log.segments()
            );
        }
        assert_eq!(log.depth(), 1);
    }
    assert!(replay_list(dir.path()).first() > Some(&1), "segment 1 went");
    let mut log = OutboxLog::open(dir.path(), small()).unwrap();
    let mut one = entry(1, &[A, B]);
    one.dests[0].acked = true;
    assert_eq!(log.entries().unwrap(), [one]);
    put(&mut log, &[], &[(key(1), B)], &none(), &BTreeMap::new()).unwrap();
    assert_eq!(log.depth(), 0);
}

#[test]
fn a_torn_write_at_the_end_is_cut_off_and_appending_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = OutboxLog::open(dir.path(), LogOptions::default()).unwrap();
        put(&mut log, &[entry(1, &[A])], &[], &none(), &BTreeMap::new()).unwrap();
    }
    let path = newest_segment(dir.path());
    let whole = std::fs::metadata(&path).unwrap().len();
    // Half of the next record's bytes, as a crash mid-write leaves them.
    let mut torn = Vec::new();
    record::append(&mut torn, Kind::Add, |w| {
        crate::store::outbox::write_entry(w, &entry(2, &[A]))
    });
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&torn[..torn.len() / 2])
        .unwrap();
    {
        let mut log = OutboxLog::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        assert_eq!(log.entries().unwrap(), [entry(1, &[A])]);
        put(&mut log, &[entry(3, &[A])], &[], &none(), &BTreeMap::new()).unwrap();
    }
    let log = OutboxLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.entries().unwrap(), [entry(1, &[A]), entry(3, &[A])]);
}

#[test]
fn a_segment_cut_before_its_header_is_started_again() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = OutboxLog::open(dir.path(), LogOptions::default()).unwrap();
        put(&mut log, &[entry(1, &[A])], &[], &none(), &BTreeMap::new()).unwrap();
    }
    std::fs::write(segment_path(dir.path(), 2), b"FMO").unwrap();
    let mut log = OutboxLog::open(dir.path(), LogOptions::default()).unwrap();
    put(&mut log, &[entry(2, &[A])], &[], &none(), &BTreeMap::new()).unwrap();
    drop(log);
    let log = OutboxLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.entries().unwrap(), [entry(1, &[A]), entry(2, &[A])]);
}

#[test]
fn damage_before_the_end_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = OutboxLog::open(dir.path(), small()).unwrap();
        for id in 1..=30 {
            put(&mut log, &[entry(id, &[A])], &[], &none(), &BTreeMap::new()).unwrap();
        }
    }
    let first = segment_path(dir.path(), replay_list(dir.path())[0]);
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[MAGIC.len() + 20] ^= 0x40;
    std::fs::write(&first, &bytes).unwrap();
    let err = OutboxLog::open(dir.path(), small()).unwrap_err();
    assert!(
        matches!(&err, DeliveryStoreError::Corrupt { reason, .. } if reason.contains("checksum")),
        "{err}"
    );
    // Not a segment at all.
    std::fs::write(&first, b"something else entirely").unwrap();
    let err = OutboxLog::open(dir.path(), small()).unwrap_err();
    assert!(err.to_string().contains("bad magic"), "{err}");
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Add { to_a: bool, to_b: bool },
    Ack { pick: usize, to_b: bool },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), any::<bool>()).prop_map(|(to_a, to_b)| Op::Add { to_a, to_b: to_b || !to_a }),
        5 => (any::<usize>(), any::<bool>()).prop_map(|(pick, to_b)| Op::Ack { pick, to_b }),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the adds, acks and reopens, with segments small enough to
    /// rotate, delete and copy forward all the time, the log reads back
    /// exactly the pending messages and their acks.
    #[test]
    fn the_log_reads_back_what_a_model_outbox_holds(ops in prop::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = OutboxLog::open(dir.path(), small()).unwrap();
        let mut model: BTreeMap<u64, OutboxEntry> = BTreeMap::new();
        let mut next = 1;
        for op in ops {
            match op {
                Op::Add { to_a, to_b } => {
                    let dests: Vec<ClusterId> =
                        [(to_a, A), (to_b, B)].iter().filter(|d| d.0).map(|d| d.1).collect();
                    let e = entry(next, &dests);
                    put(&mut log, std::slice::from_ref(&e), &[], &none(), &BTreeMap::new()).unwrap();
                    model.insert(next, e);
                    next += 1;
                }
                Op::Ack { pick, to_b } => {
                    let Some(&id) = model.keys().nth(pick % model.len().max(1)) else { continue };
                    let dest = if to_b { B } else { A };
                    put(&mut log, &[], &[(key(id), dest)], &none(), &BTreeMap::new()).unwrap();
                    let e = model.get_mut(&id).unwrap();
                    e.dests.iter_mut().filter(|d| d.to == dest).for_each(|d| d.acked = true);
                    if e.dests.iter().all(|d| d.acked) {
                        model.remove(&id);
                    }
                }
                Op::Reopen => {
                    drop(log);
                    log = OutboxLog::open(dir.path(), small()).unwrap();
                }
            }
            prop_assert_eq!(log.depth(), model.len());
            prop_assert!(log.segments() <= small().max_sealed + 2);
        }
        drop(log);
        let log = OutboxLog::open(dir.path(), small()).unwrap();
        let want: Vec<OutboxEntry> = model.into_values().collect();
        prop_assert_eq!(log.entries().unwrap(), want);
    }
}
