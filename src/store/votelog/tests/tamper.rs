//! Every kind of tampering is caught, as the right error, at the earliest
//! record where it can be seen.

use super::*;
use crate::store::votelog::checkpoint::{Checkpoint, CheckpointFault};
use crate::store::votelog::format::{LogHeader, encode_record_head, record_hash};

const ITEMS: u64 = 300;
const EVERY: u64 = 64;
/// Where checkpoints land: after every 64 items, and the seal on close.
const CHECKPOINTS: [u64; 5] = [64, 129, 194, 259, 304];

/// A closed log of 300 items with a checkpoint every 64, and its records.
fn standard() -> (Fixture, Vec<u8>, Vec<LogRecord>) {
    let fx = fixture();
    let mut w = fx.create(every(EVERY));
    append_items(&mut w, 0, ITEMS);
    w.close().unwrap();
    let bytes = fx.bytes();
    let (records, _) = read_all(&bytes);
    (fx, bytes, records)
}

fn span(r: &LogRecord) -> std::ops::Range<usize> {
    r.offset as usize..(r.offset + r.encoded_len()) as usize
}

fn body_at(r: &LogRecord) -> usize {
    r.offset as usize + 45
}

fn prev_at(r: &LogRecord) -> usize {
    r.offset as usize + 13
}

#[test]
fn a_written_log_reads_back_whole() {
    let (fx, bytes, records) = standard();
    let (_, summary) = read_all(&bytes);
    assert_eq!(records.len(), 305);
    let cps: Vec<u64> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Checkpoint)
        .map(|r| r.index)
        .collect();
    assert_eq!(cps, CHECKPOINTS);
    let expected: Vec<_> = (0..ITEMS).map(item).collect();
    assert_eq!(items_of(&records), expected);
    let mut prev = summary.header.chain_seed();
    for (i, r) in records.iter().enumerate() {
        assert_eq!((r.index, r.seq), (i as u64, i as u64));
        assert_eq!(r.prev, prev);
        prev = r.hash;
    }
    assert_eq!(summary.header.node_id, fx.identity.id());
    assert_eq!(summary.header.network_id, fx.network);
    assert_eq!(summary.records, 305);
    assert_eq!(summary.checkpoints, 5);
    assert_eq!(summary.last_checkpoint, Some(304));
    assert!(summary.sealed);
    assert_eq!(summary.unsealed, 0);
    assert_eq!(summary.head, prev);
    assert_eq!(summary.end_offset, bytes.len() as u64);
    assert_eq!(
        super::super::verify_log_file(&fx.path).unwrap(),
        summary,
        "file and in-memory reads agree"
    );
}

#[test]
fn flipped_body_bit_breaks_the_chain_at_the_next_record() {
    let (_, mut bytes, records) = standard();
    assert!(records[12].body.len() > 3);
    bytes[body_at(&records[12]) + 3] ^= 0x10;
    let e = fault(&bytes);
    assert!(
        matches!(e, LogError::ChainMismatch { index: 13, offset, .. } if offset == records[13].offset),
        "{e}"
    );
}

#[test]
fn flipped_body_bit_before_a_checkpoint_is_caught_by_the_checkpoint_chain_field() {
    // The checkpoint's prev is checked before its signature, so the fault is
    // a chain mismatch at the checkpoint, not a bad signature.
    let (_, mut bytes, records) = standard();
    assert_eq!(records[64].kind, RecordKind::Checkpoint);
    assert!(!records[63].body.is_empty());
    bytes[body_at(&records[63])] ^= 1;
    let e = fault(&bytes);
    assert!(
        matches!(e, LogError::ChainMismatch { index: 64, .. }),
        "{e}"
    );
}

#[test]
fn flipped_bit_in_a_chain_field_is_caught_at_that_record() {
    let (_, mut bytes, records) = standard();
    bytes[prev_at(&records[20]) + 31] ^= 0x80;
    let e = fault(&bytes);
    match e {
        LogError::ChainMismatch {
            index: 20,
            expected,
            found,
            ..
        } => {
            assert_eq!(expected, records[19].hash);
            assert_ne!(found, expected);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn flipped_bit_in_a_checkpoint_signature_is_a_bad_checkpoint() {
    let (_, mut bytes, records) = standard();
    let cp = &records[129];
    bytes[body_at(cp) + 8 + 5] ^= 4;
    let e = fault(&bytes);
    assert!(
        matches!(
            e,
            LogError::BadCheckpoint {
                index: 129,
                fault: CheckpointFault::BadSignature,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn checkpoint_size_field_must_equal_its_seq() {
    let (_, mut bytes, records) = standard();
    bytes[body_at(&records[64]) + 7] ^= 1;
    let e = fault(&bytes);
    assert!(
        matches!(
            e,
            LogError::BadCheckpoint {
                index: 64,
                fault: CheckpointFault::SizeMismatch { size: 65, seq: 64 },
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn checkpoint_signed_by_another_key_is_refused() {
    let (_, mut bytes, records) = standard();
    let header = read_all(&bytes).1.header;
    let forger = Identity::from_seed([7; 32]);
    let cp = &records[194];
    let forged = Checkpoint::sign(&forger, &header, 194, &cp.prev).encode();
    let at = body_at(cp);
    bytes[at..at + forged.len()].copy_from_slice(&forged);
    let e = fault(&bytes);
    assert!(
        matches!(
            e,
            LogError::BadCheckpoint {
                index: 194,
                fault: CheckpointFault::BadSignature,
                ..
            }
        ),
        "{e}"
    );
}

/// Re-encodes `records` as a log with a consistent chain, re-signing the
/// checkpoints from index `forge_from` on with `signer`: what a forger who
/// rewrites history without the node's key can do at best.
fn rechain(
    header: &LogHeader,
    records: &[LogRecord],
    signer: &Identity,
    forge_from: u64,
) -> Vec<u8> {
    let mut out = header.encode().to_vec();
    let mut prev = header.chain_seed();
    for (seq, r) in records.iter().enumerate() {
        let seq = seq as u64;
        let body = if r.kind == RecordKind::Checkpoint && seq >= forge_from {
            Checkpoint::sign(signer, header, seq, &prev)
                .encode()
                .to_vec()
        } else {
            r.body.clone()
        };
        out.extend(encode_record_head(seq, r.kind, &prev, body.len()));
        out.extend(&body);
        prev = record_hash(seq, r.kind, &prev, &body);
    }
    out
}

#[test]
fn rewritten_history_is_caught_by_the_next_checkpoint() {
    let (fx, bytes, mut records) = standard();
    let header = read_all(&bytes).1.header;
    // Sanity: re-chaining with the real key reproduces the log exactly.
    assert_eq!(rechain(&header, &records, &fx.identity, 0), bytes);
    let forger = Identity::from_seed([7; 32]);
    records[70].body = b"a different vote".to_vec();
    // The chain is consistent again after the change; only the signature of
    // the first checkpoint after it (129) can tell.
    let e = fault(&rechain(&header, &records, &forger, 70));
    assert!(
        matches!(
            e,
            LogError::BadCheckpoint {
                index: 129,
                fault: CheckpointFault::BadSignature,
                ..
            }
        ),
        "{e}"
    );
    // Re-signing earlier checkpoints too only moves the fault earlier.
    let e = fault(&rechain(&header, &records, &forger, 0));
    assert!(
        matches!(
            e,
            LogError::BadCheckpoint {
                index: 64,
                fault: CheckpointFault::BadSignature,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn deleted_record_shows_as_seq_mismatch_at_its_position() {
    let (_, mut bytes, records) = standard();
    bytes.drain(span(&records[100]));
    let e = fault(&bytes);
    assert!(
        matches!(e, LogError::SeqMismatch { index: 100, found: 101, offset } if offset == records[100].offset),
        "{e}"
    );
}

#[test]
fn duplicated_record_shows_as_seq_mismatch_at_the_copy() {
    let (_, mut bytes, records) = standard();
    let copy = bytes[span(&records[100])].to_vec();
    let at = span(&records[100]).end;
    bytes.splice(at..at, copy);
    let e = fault(&bytes);
    assert!(
        matches!(e, LogError::SeqMismatch { index: 101, found: 100, offset } if offset == records[101].offset),
        "{e}"
    );
}

#[test]
fn swapped_records_show_as_seq_mismatch_at_the_first() {
    let (_, mut bytes, records) = standard();
    let a = bytes[span(&records[100])].to_vec();
    let b = bytes[span(&records[101])].to_vec();
    let start = records[100].offset as usize;
    bytes.splice(start..span(&records[101]).end, b.into_iter().chain(a));
    let e = fault(&bytes);
    assert!(
        matches!(
            e,
            LogError::SeqMismatch {
                index: 100,
                found: 101,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn unknown_kind_is_refused() {
    let (_, mut bytes, records) = standard();
    bytes[records[33].offset as usize + 12] = 9;
    let e = fault(&bytes);
    assert!(
        matches!(
            e,
            LogError::UnknownKind {
                index: 33,
                kind: 9,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn truncation_inside_a_record_is_a_torn_tail() {
    let (_, bytes, records) = standard();
    let r = &records[150];
    for cut in [2u64, 4, 30, 45, r.encoded_len() - 1] {
        let e = fault(&bytes[..(r.offset + cut) as usize]);
        match e {
            LogError::TornTail {
                index: 150,
                offset,
                needed,
                available,
            } => {
                assert_eq!(offset, r.offset);
                assert_eq!(available, cut);
                let expect_needed = if cut < 4 { 4 } else { r.encoded_len() };
                assert_eq!(needed, expect_needed);
            }
            other => panic!("cut {cut}: {other}"),
        }
    }
}

#[test]
fn truncation_at_a_record_boundary_leaves_a_valid_unsealed_prefix() {
    let (_, bytes, records) = standard();
    let summary = verify_log(&bytes[..records[150].offset as usize]).unwrap();
    assert_eq!(summary.records, 150);
    assert!(!summary.sealed);
    assert_eq!(summary.last_checkpoint, Some(129));
    assert_eq!(summary.unsealed, 20);
    assert_eq!(summary.head, records[149].hash);
}

#[test]
fn empty_and_header_only_files() {
    let (_, bytes, _) = standard();
    assert!(matches!(fault(&[]), LogError::EmptyFile));
    assert_eq!(fault(&[]).to_string(), "empty file, no header");
    let summary = verify_log(&bytes[..82]).unwrap();
    assert_eq!(summary.records, 0);
    assert_eq!(summary.checkpoints, 0);
    assert!(!summary.sealed);
    assert_eq!(summary.unsealed, 0);
    assert_eq!(summary.head, summary.header.chain_seed());
    assert_eq!(summary.end_offset, 82);
    assert!(matches!(
        fault(&bytes[..50]),
        LogError::TruncatedHeader { len: 50 }
    ));
}

#[test]
fn absurd_lengths_are_refused_before_reading_the_record() {
    let (_, bytes, records) = standard();
    let at = records[5].offset as usize;
    let mut huge = bytes.clone();
    huge[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let e = fault(&huge);
    assert!(
        matches!(
            e,
            LogError::RecordTooLong {
                index: 5,
                len: u32::MAX,
                ..
            }
        ),
        "{e}"
    );

    // At the cap the length is legal; a file that ends soon after is a torn
    // tail, and the reader only held what the file actually had.
    let mut capped = bytes[..at].to_vec();
    capped.extend((4u32 * 1024 * 1024).to_be_bytes());
    capped.extend([0u8; 100]);
    let e = fault(&capped);
    assert!(
        matches!(
            e,
            LogError::TornTail {
                index: 5,
                available: 104,
                ..
            }
        ),
        "{e}"
    );

    let mut short = bytes.clone();
    short[at..at + 4].copy_from_slice(&40u32.to_be_bytes());
    let e = fault(&short);
    assert!(
        matches!(
            e,
            LogError::RecordTooShort {
                index: 5,
                len: 40,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn wrong_magic_version_or_node_key_in_the_header() {
    let (_, bytes, _) = standard();
    let mut magic = bytes.clone();
    magic[3] = b'X';
    assert!(matches!(fault(&magic), LogError::BadMagic { found } if found == b"fedXesh-votelog\n"));
    assert!(matches!(fault(b"PK\x03\x04"), LogError::BadMagic { .. }));

    let mut version = bytes.clone();
    version[17] = 2;
    assert!(matches!(
        fault(&version),
        LogError::UnsupportedVersion { version: 2 }
    ));

    let mut weak = bytes.clone();
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    weak[50..82].copy_from_slice(&identity_point);
    assert!(matches!(fault(&weak), LogError::BadNodeId { .. }));
}

#[test]
fn records_cannot_move_between_networks() {
    // Another network id in the header changes h_0, so record 0 no longer chains.
    let (_, mut bytes, _) = standard();
    bytes[18] ^= 1;
    let e = fault(&bytes);
    assert!(
        matches!(
            e,
            LogError::ChainMismatch {
                index: 0,
                offset: 82,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn error_accessors_report_position() {
    let (_, mut bytes, records) = standard();
    bytes[prev_at(&records[42])] ^= 1;
    let e = fault(&bytes);
    assert_eq!(e.index(), Some(42));
    assert_eq!(e.offset(), records[42].offset);
    assert_eq!(LogError::EmptyFile.index(), None);
}
