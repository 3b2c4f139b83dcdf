//! Hand-written canonical byte layouts: big-endian, fixed width, every
//! variable-length field prefixed by its length. Signed objects are encoded
//! with these helpers, never with postcard, so that any implementation can
//! rebuild the exact bytes that were signed.

/// Domain tags that start every signed layout, so that a signature made for
/// one object type can never verify as another.
pub mod tags {
    /// A vote.
    pub const VOTE: &[u8] = b"fedmesh/vote/v1";
    /// A roster (membership and weights of one epoch).
    pub const ROSTER: &[u8] = b"fedmesh/roster/v1";
    /// A vote-log checkpoint.
    pub const CHECKPOINT: &[u8] = b"fedmesh/checkpoint/v1";
    /// A gossiped node record.
    pub const RECORD: &[u8] = b"fedmesh/record/v1";
    /// The subject of a roster change vote (v2: with the voting attempt).
    pub const ROSTER_SUBJECT: &[u8] = b"fedmesh/roster-subject/v2";
    /// A member's proposal of the next roster epoch.
    pub const ROSTER_PROPOSAL: &[u8] = b"fedmesh/roster-proposal/v1";
    /// A gossiped heartbeat (liveness only, apart from the node record).
    pub const HEARTBEAT: &[u8] = b"fedmesh/heartbeat/v1";
    /// A delivery message digest (the value voted on in quorum rounds).
    pub const MESSAGE: &[u8] = b"fedmesh/message/v1";
    /// The subject of a message's quorum round: origin and message id.
    pub const MESSAGE_SUBJECT: &[u8] = b"fedmesh/message-subject/v1";
    /// A batch of votes under one signature (over a Merkle root of its entries).
    pub const VOTE_BATCH: &[u8] = b"fedmesh/votebatch/v1";
}

/// Why bytes do not decode to the expected canonical layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the field was complete.
    #[error("truncated: needed {needed} more bytes, {remaining} left")]
    Truncated {
        /// Bytes the field needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// Bytes were left after the last field.
    #[error("{0} trailing bytes after the last field")]
    Trailing(usize),
    /// A field holds a value outside its domain.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl DecodeError {
    /// An out-of-domain field value.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        DecodeError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Appends canonical fields to a byte buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer with room for `cap` bytes.
    pub fn with_capacity(cap: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(cap),
        }
    }

    /// A writer appending to `buf` (reuses its allocation).
    pub fn from_vec(buf: Vec<u8>) -> Self {
        Writer { buf }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Nothing written yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A domain tag: one length byte then the tag.
    pub fn tag(&mut self, tag: &[u8]) -> &mut Self {
        debug_assert!(tag.len() <= u8::MAX as usize);
        self.buf.push(tag.len() as u8);
        self.buf.extend_from_slice(tag);
        self
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// A big-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A big-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A big-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Fixed-width raw bytes (no length prefix).
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// A UTF-8 string with a u16 length prefix. Callers validate lengths
    /// before encoding; longer strings are a programming error.
    pub fn str16(&mut self, s: &str) -> &mut Self {
        debug_assert!(s.len() <= u16::MAX as usize);
        self.u16(s.len() as u16);
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    /// The bytes written so far.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads canonical fields from a byte slice, never panicking and never
/// allocating more than the input holds.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated {
                needed: n,
                remaining: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// A fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Checks that the next bytes are exactly the domain tag `tag`.
    pub fn expect_tag(&mut self, tag: &[u8]) -> Result<(), DecodeError> {
        let len = self.u8()? as usize;
        let got = self.take(len)?;
        if got != tag {
            return Err(DecodeError::invalid(
                "domain tag",
                format!(
                    "expected {:?}, got {:?}",
                    String::from_utf8_lossy(tag),
                    String::from_utf8_lossy(got)
                ),
            ));
        }
        Ok(())
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// A big-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A big-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A big-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A UTF-8 string with a u16 length prefix.
    pub fn str16(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = self.u16()? as usize;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::invalid(field, "not UTF-8"))
    }

    /// A u32 element count, refused if `count * min_element_size` exceeds
    /// what is left, so that a forged count never drives an allocation.
    pub fn count(&mut self, min_element_size: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        let needed = n.saturating_mul(min_element_size.max(1));
        if needed > self.buf.len() {
            return Err(DecodeError::Truncated {
                needed,
                remaining: self.buf.len(),
            });
        }
        Ok(n)
    }

    /// Checks that every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing(self.buf.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let mut w = Writer::default();
        w.tag(b"t")
            .u8(1)
            .u16(2)
            .u32(3)
            .u64(4)
            .str16("hé")
            .raw(&[9; 3]);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        r.expect_tag(b"t").unwrap();
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u16().unwrap(), 2);
        assert_eq!(r.u32().unwrap(), 3);
        assert_eq!(r.u64().unwrap(), 4);
        assert_eq!(r.str16("s").unwrap(), "hé");
        assert_eq!(r.array::<3>().unwrap(), [9; 3]);
        r.finish().unwrap();

        let mut r = Reader::new(&bytes);
        assert!(r.expect_tag(b"u").is_err());
        let mut r = Reader::new(&bytes[..bytes.len() - 1]);
        r.take(bytes.len() - 2).unwrap();
        assert!(matches!(r.u16(), Err(DecodeError::Truncated { .. })));
        let r = Reader::new(&bytes);
        assert_eq!(r.finish(), Err(DecodeError::Trailing(bytes.len())));
    }

    #[test]
    fn forged_count_is_refused_before_allocation() {
        let mut w = Writer::default();
        w.u32(u32::MAX).raw(&[0; 10]);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        assert!(matches!(r.count(96), Err(DecodeError::Truncated { .. })));
    }
}
