//! The message envelope and its digest.
//!
//! Canonical encoding (also what the outbox persists):
//! `origin:32 | id:u64 | guarantee:u8 | topic:str16 | payload_len:u32 | payload |
//! has_clock:u8 | vclock?` (vclock as in [`VClock::write`]).
//!
//! Digest (the accept value of a quorum round): BLAKE3 of
//! `tag_len | "fedmesh/message/v1" | network_id:32 | encoding`.
//! Round subject: BLAKE3 of `tag_len | "fedmesh/message-subject/v1" |
//! network_id:32 | origin:32 | id:u64`, so one (origin, id) is one slot and an
//! origin proposing two payloads for one id proposes two values for one slot.

use crate::proto::bytes32::{Digest, NetworkId};
use crate::proto::codec::{DecodeError, Reader, Writer, tags};
use crate::proto::identity::ClusterId;
use crate::proto::queue::QueueName;
use crate::proto::vclock::VClock;

use super::guarantee::Guarantee;

/// Largest payload, in bytes (well under the 1 MiB frame cap, leaving room
/// for a certificate and routing headers).
pub const MAX_PAYLOAD: usize = 512 * 1024;

/// Why an envelope is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The payload is larger than [`MAX_PAYLOAD`].
    #[error("payload is {0} bytes, at most {MAX_PAYLOAD} are allowed")]
    PayloadTooLarge(usize),
    /// Message ids start at 1 (0 means "nothing seen" in receiver dedup).
    #[error("message id 0 is reserved")]
    ZeroId,
    /// The encoding does not parse.
    #[error("malformed envelope: {0}")]
    Decode(#[from] DecodeError),
}

/// Identifies a message: its origin and the origin's message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageKey {
    /// The cluster that published it.
    pub origin: ClusterId,
    /// The origin's id for it (monotonic per origin, from 1).
    pub id: u64,
}

/// A message in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Origin and id.
    pub key: MessageKey,
    /// The queue or topic it is published to.
    pub topic: QueueName,
    /// How it is delivered.
    pub guarantee: Guarantee,
    /// The application's bytes (at most [`MAX_PAYLOAD`]).
    pub payload: Vec<u8>,
    /// The causal clock, for messages that ask for causal order.
    pub clock: Option<VClock>,
}

impl Envelope {
    /// A checked envelope.
    pub fn new(
        key: MessageKey,
        topic: QueueName,
        guarantee: Guarantee,
        payload: Vec<u8>,
        clock: Option<VClock>,
    ) -> Result<Self, EnvelopeError> {
        let e = Envelope {
            key,
            topic,
            guarantee,
            payload,
            clock,
        };
        e.check()?;
        Ok(e)
    }

    fn check(&self) -> Result<(), EnvelopeError> {
        if self.payload.len() > MAX_PAYLOAD {
            return Err(EnvelopeError::PayloadTooLarge(self.payload.len()));
        }
        if self.key.id == 0 {
            return Err(EnvelopeError::ZeroId);
        }
        Ok(())
    }

    /// Appends the canonical encoding to `w`.
    pub(crate) fn write(&self, w: &mut Writer) {
        w.raw(&self.key.origin.0)
            .u64(self.key.id)
            .u8(self.guarantee as u8)
            .str16(self.topic.as_str())
            .u32(self.payload.len() as u32)
            .raw(&self.payload);
        match &self.clock {
            None => {
                w.u8(0);
            }
            Some(c) => {
                w.u8(1);
                c.write(w);
            }
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128 + self.payload.len());
        self.write(&mut w);
        w.finish()
    }

    /// Decodes exactly one canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let mut r = Reader::new(bytes);
        let origin = ClusterId(r.array()?);
        let id = r.u64()?;
        let g = r.u8()?;
        let guarantee = Guarantee::from_u8(g)
            .ok_or_else(|| DecodeError::invalid("guarantee", format!("unknown {g}")))?;
        let topic = r.str16("topic")?;
        let topic =
            QueueName::new(&topic).map_err(|e| DecodeError::invalid("topic", e.to_string()))?;
        let len = r.u32()? as usize;
        if len > MAX_PAYLOAD {
            return Err(EnvelopeError::PayloadTooLarge(len));
        }
        let payload = r.take(len)?.to_vec();
        let clock = match r.u8()? {
            0 => None,
            1 => Some(VClock::read(&mut r)?),
            other => {
                return Err(DecodeError::invalid("clock flag", format!("{other}")).into());
            }
        };
        r.finish()?;
        Envelope::new(MessageKey { origin, id }, topic, guarantee, payload, clock)
    }

    /// The message digest in `network` (a quorum round's accept value).
    pub fn digest(&self, network: NetworkId) -> Digest {
        let mut w = Writer::with_capacity(160 + self.payload.len());
        w.tag(tags::MESSAGE).raw(&network.0);
        self.write(&mut w);
        Digest::of(&w.finish())
    }

    /// The subject of this message's quorum round.
    pub fn subject(&self, network: NetworkId) -> Digest {
        message_subject(network, self.key)
    }
}

/// The subject of the quorum round for message `key` in `network`.
pub fn message_subject(network: NetworkId, key: MessageKey) -> Digest {
    let mut w = Writer::with_capacity(96);
    w.tag(tags::MESSAGE_SUBJECT)
        .raw(&network.0)
        .raw(&key.origin.0)
        .u64(key.id);
    Digest::of(&w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(clock: bool) -> Envelope {
        let mut c = VClock::new();
        c.set(ClusterId([1; 32]), 4).unwrap();
        Envelope::new(
            MessageKey {
                origin: ClusterId([1; 32]),
                id: 7,
            },
            QueueName::new("orders.eu").unwrap(),
            Guarantee::ByzantineQuorum,
            b"hello".to_vec(),
            clock.then_some(c),
        )
        .unwrap()
    }

    #[test]
    fn round_trips_and_digest_binds_every_field() {
        let net = NetworkId([9; 32]);
        for clock in [false, true] {
            let e = sample(clock);
            assert_eq!(Envelope::decode(&e.encode()).unwrap(), e);
        }
        let base = sample(true);
        let d = base.digest(net);
        assert_ne!(d, base.digest(NetworkId([8; 32])));
        assert_ne!(d, crate::proto::vote::REJECT);
        type Mutation = Box<dyn Fn(&mut Envelope)>;
        let mutations: Vec<Mutation> = vec![
            Box::new(|e| e.key.origin.0[0] ^= 1),
            Box::new(|e| e.key.id += 1),
            Box::new(|e| e.guarantee = Guarantee::GlobalQuorum),
            Box::new(|e| e.topic = QueueName::new("orders.us").unwrap()),
            Box::new(|e| e.payload.push(0)),
            Box::new(|e| e.clock = None),
        ];
        for m in mutations {
            let mut e = base.clone();
            m(&mut e);
            assert_ne!(e.digest(net), d);
        }
        // The subject depends on origin and id only: two payloads, one slot.
        let mut other = base.clone();
        other.payload = b"evil".to_vec();
        assert_eq!(other.subject(net), base.subject(net));
        assert_ne!(other.digest(net), base.digest(net));
    }

    #[test]
    fn malformed_encodings_are_refused() {
        let e = sample(true);
        let bytes = e.encode();
        assert!(Envelope::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(Envelope::decode(&long).is_err());
        let mut bad_g = bytes.clone();
        bad_g[40] = 0;
        assert!(Envelope::decode(&bad_g).is_err());
        let big = Envelope::new(
            e.key,
            e.topic.clone(),
            e.guarantee,
            vec![0; MAX_PAYLOAD + 1],
            None,
        );
        assert_eq!(big, Err(EnvelopeError::PayloadTooLarge(MAX_PAYLOAD + 1)));
        let zero = MessageKey {
            origin: e.key.origin,
            id: 0,
        };
        assert_eq!(
            Envelope::new(zero, e.topic.clone(), e.guarantee, vec![], None),
            Err(EnvelopeError::ZeroId)
        );
    }
}
