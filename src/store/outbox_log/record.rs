//! One segment file's layout: an 8-byte magic, then records
//! `len:u32 | crc32:u32 | kind:u8 | body`, where `len` counts the kind byte
//! and the body, and the CRC-32 covers them (big-endian integers).
//!
//! Record kinds:
//! - `Add`: an outbox entry (the entry encoding of [`crate::store::outbox`]);
//! - `Ack`: `origin:32 | id:u64 | dest:32`, one destination acknowledged;
//! - `Counters`: `count:u16 | (dest:32 | next_seq:u64)*`, the next sequence
//!   number per destination, for sequence numbers no `Add` shows;
//! - `Dedup`: `origin:32 | floor:u64 | count:u32 | id:u64*`, the receiver's
//!   dedup window for one origin (the latest record wins);
//! - `Causal`: `topic_len:u16 | topic | clock` (the clock as
//!   `VClock::write` lays it out), the causal clock of one topic (the
//!   latest record wins).

use std::io::{ErrorKind, Read};

use crate::proto::codec::{Reader, Writer};
use crate::proto::delivery::{MessageKey, OriginWindow};
use crate::proto::identity::ClusterId;
use crate::proto::queue::QueueName;
use crate::proto::vclock::VClock;

/// First bytes of every segment file.
pub(super) const MAGIC: &[u8; 8] = b"FMOBXL01";

/// Bytes before a record's kind: length and checksum.
pub(super) const HEAD_LEN: usize = 8;

/// The largest record accepted: an envelope at its payload limit with a
/// destination list at the roster's limit fits with room to spare.
pub(super) const MAX_RECORD: usize = 4 << 20;

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// An outbox entry.
    Add = 1,
    /// One destination acknowledged.
    Ack = 2,
    /// Next sequence numbers.
    Counters = 3,
    /// A receiver dedup window.
    Dedup = 4,
    /// A topic's causal clock.
    Causal = 5,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Add),
            2 => Some(Kind::Ack),
            3 => Some(Kind::Counters),
            4 => Some(Kind::Dedup),
            5 => Some(Kind::Causal),
            _ => None,
        }
    }
}

/// Appends one record whose body `body` writes; returns its total length.
pub(super) fn append(buf: &mut Vec<u8>, kind: Kind, body: impl FnOnce(&mut Writer)) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEAD_LEN]);
    let mut w = Writer::from_vec(std::mem::take(buf));
    w.u8(kind as u8);
    body(&mut w);
    *buf = w.finish();
    let len = buf.len() - start - HEAD_LEN;
    let crc = crc32fast::hash(&buf[start + HEAD_LEN..]);
    // Bodies are bounded by the envelope and roster limits, far below 4 GiB.
    buf[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    buf[start + 4..start + HEAD_LEN].copy_from_slice(&crc.to_be_bytes());
    buf.len() - start
}

/// Writes an `Ack` body.
pub(super) fn ack_body(w: &mut Writer, key: &MessageKey, dest: &ClusterId) {
    w.raw(&key.origin.0).u64(key.id).raw(&dest.0);
}

/// Reads an `Ack` body.
pub(super) fn read_ack(body: &[u8]) -> Option<(MessageKey, ClusterId)> {
    let mut r = Reader::new(body);
    let origin = ClusterId(r.array().ok()?);
    let id = r.u64().ok()?;
    let dest = ClusterId(r.array().ok()?);
    r.finish().ok()?;
    Some((MessageKey { origin, id }, dest))
}

/// Writes a `Counters` body.
pub(super) fn counters_body(w: &mut Writer, next: &[(ClusterId, u64)]) {
    let n = next.len().min(usize::from(u16::MAX));
    w.u16(n as u16);
    for (dest, seq) in &next[..n] {
        w.raw(&dest.0).u64(*seq);
    }
}

/// Reads a `Counters` body.
pub(super) fn read_counters(body: &[u8]) -> Option<Vec<(ClusterId, u64)>> {
    let mut r = Reader::new(body);
    let n = usize::from(r.u16().ok()?);
    let mut out = Vec::with_capacity(n.min(r.remaining() / 40));
    for _ in 0..n {
        out.push((ClusterId(r.array().ok()?), r.u64().ok()?));
    }
    r.finish().ok()?;
    Some(out)
}

/// Writes a `Dedup` body.
pub(super) fn dedup_body(w: &mut Writer, origin: &ClusterId, window: &OriginWindow) {
    w.raw(&origin.0);
    crate::store::dedup::write_window(w, window);
}

/// Reads a `Dedup` body.
pub(super) fn read_dedup(body: &[u8]) -> Option<(ClusterId, OriginWindow)> {
    let origin = ClusterId(body.get(..32)?.try_into().ok()?);
    let window = crate::store::dedup::decode(&body[32..]).ok()?;
    Some((origin, window))
}

/// Writes a `Causal` body.
pub(super) fn causal_body(w: &mut Writer, topic: &QueueName, clock: &VClock) {
    // Topic names are at most 64 bytes (`queue::name`).
    w.str16(topic.as_str());
    clock.write(w);
}

/// Reads a `Causal` body.
pub(super) fn read_causal(body: &[u8]) -> Option<(QueueName, VClock)> {
    let mut r = Reader::new(body);
    let topic = QueueName::new(&r.str16("topic").ok()?).ok()?;
    let clock = VClock::read(&mut r).ok()?;
    r.finish().ok()?;
    Some((topic, clock))
}

/// The next record of a segment, as read.
#[derive(Debug)]
pub(super) enum Next {
    /// A whole record whose checksum matches.
    Record(Kind, Vec<u8>),
    /// The segment ends cleanly here.
    End,
    /// What follows is not a whole, intact record (a write cut short, or
    /// damage): the reason.
    Broken(String),
}

/// Reads the record at the reader's position.
pub(super) fn read_next(r: &mut impl Read) -> std::io::Result<Next> {
    let mut head = [0u8; HEAD_LEN];
    match read_full(r, &mut head)? {
        0 => return Ok(Next::End),
        n if n < HEAD_LEN => return Ok(Next::Broken(format!("{n}-byte record head"))),
        _ => {}
    }
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if len == 0 || len > MAX_RECORD {
        return Ok(Next::Broken(format!("record length {len}")));
    }
    // The kind byte is read apart so that the body needs no second copy.
    let mut kind = [0u8; 1];
    let mut body = vec![0u8; len - 1];
    let got = read_full(r, &mut kind)? + read_full(r, &mut body)?;
    if got < len {
        return Ok(Next::Broken(format!("record of {len} bytes cut at {got}")));
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&kind);
    hasher.update(&body);
    if hasher.finalize() != crc {
        return Ok(Next::Broken("checksum mismatch".into()));
    }
    let Some(kind) = Kind::from_u8(kind[0]) else {
        return Ok(Next::Broken(format!("unknown record kind {}", kind[0])));
    };
    Ok(Next::Record(kind, body))
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(super) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_damage_is_seen() {
        let key = MessageKey {
            origin: ClusterId([1; 32]),
            id: 9,
        };
        let mut buf = Vec::new();
        let a = append(&mut buf, Kind::Ack, |w| {
            ack_body(w, &key, &ClusterId([2; 32]))
        });
        append(&mut buf, Kind::Counters, |w| {
            counters_body(w, &[(ClusterId([3; 32]), 5)])
        });
        let mut r = buf.as_slice();
        let Next::Record(Kind::Ack, body) = read_next(&mut r).unwrap() else {
            panic!("ack")
        };
        assert_eq!(read_ack(&body), Some((key, ClusterId([2; 32]))));
        let Next::Record(Kind::Counters, body) = read_next(&mut r).unwrap() else {
            panic!("counters")
        };
        assert_eq!(read_counters(&body), Some(vec![(ClusterId([3; 32]), 5)]));
        assert!(matches!(read_next(&mut r).unwrap(), Next::End));

        // Cut anywhere inside a record: broken, never a panic.
        for cut in 1..a {
            let mut r = &buf[..cut];
            assert!(
                matches!(read_next(&mut r).unwrap(), Next::Broken(_)),
                "{cut}"
            );
        }
        // One flipped bit fails the checksum.
        let mut bad = buf.clone();
        bad[HEAD_LEN + 3] ^= 1;
        assert!(matches!(
            read_next(&mut bad.as_slice()).unwrap(),
            Next::Broken(_)
        ));
        // A huge length is refused before anything is allocated.
        let mut huge = buf.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            read_next(&mut huge.as_slice()).unwrap(),
            Next::Broken(_)
        ));
    }
}
