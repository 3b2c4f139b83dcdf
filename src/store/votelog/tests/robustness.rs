//! The reader on hostile or awkward input: arbitrary damage never panics,
//! short reads are fine, I/O errors are typed.

use std::io::Read;
use std::sync::OnceLock;

use proptest::prelude::*;

use super::*;

/// A small closed log, built once: proptest mutates copies of it.
fn small_log() -> &'static [u8] {
    static LOG: OnceLock<Vec<u8>> = OnceLock::new();
    LOG.get_or_init(|| {
        let fx = fixture();
        let mut w = fx.create(every(4));
        append_items(&mut w, 0, 10);
        w.close().unwrap();
        fx.bytes()
    })
}

/// Hands out at most one byte per `read` call.
struct OneByte<'a>(&'a [u8]);

impl Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

/// Fails after `0` bytes.
struct FailAfter<'a>(&'a [u8]);

impl Read for FailAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Err(std::io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn short_reads_give_the_same_result() {
    let bytes = small_log();
    let whole = verify_log(bytes).unwrap();
    assert_eq!(verify_log(OneByte(bytes)).unwrap(), whole);
    let e = verify_log(OneByte(&bytes[..bytes.len() - 3])).unwrap_err();
    assert!(matches!(e, LogError::TornTail { .. }), "{e}");
}

#[test]
fn io_errors_are_reported_with_the_offset() {
    let bytes = small_log();
    let (records, _) = read_all(bytes);
    let cut = records[3].offset as usize + 10;
    let e = verify_log(FailAfter(&bytes[..cut])).unwrap_err();
    assert!(
        matches!(e, LogError::Io { offset, .. } if offset == records[3].offset),
        "{e}"
    );
    assert!(matches!(
        verify_log(FailAfter(&[])),
        Err(LogError::Io { offset: 0, .. })
    ));
}

#[test]
fn the_iterator_stops_after_the_first_fault() {
    let mut bytes = small_log().to_vec();
    let (records, _) = read_all(&bytes);
    bytes[records[2].offset as usize + 4 + 7] ^= 1; // seq of record 2
    let mut reader = VoteLogReader::new(&bytes[..]).unwrap();
    let results: Vec<_> = reader.by_ref().collect();
    assert_eq!(results.len(), 3);
    assert!(results[..2].iter().all(Result::is_ok));
    assert!(matches!(
        results[2],
        Err(LogError::SeqMismatch { index: 2, .. })
    ));
    assert!(reader.next().is_none());
    assert_eq!(reader.summary().records, 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_damage_is_an_error_or_a_valid_prefix_never_a_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = small_log().to_vec();
        for (at, x) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x | 1;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        // Damage can go unnoticed only after the last checkpoint (an
        // unsealed tail, which nothing signs): what a checkpoint vouches
        // for is always the original.
        if let Ok(summary) = verify_log(&bytes[..]) {
            let signed = summary.signed_len as usize;
            prop_assert_eq!(summary.end_offset, bytes.len() as u64);
            prop_assert_eq!(&bytes[..signed], &small_log()[..signed]);
            if summary.sealed {
                prop_assert!(small_log().starts_with(&bytes));
            }
        }
    }

    #[test]
    fn random_bytes_after_a_header_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = small_log()[..82].to_vec();
        bytes.extend(tail);
        let _ = verify_log(&bytes[..]);
    }
}
