//! The data path: publishing messages to the clusters whose subscriptions
//! match their topic, over the best route, with the guarantee each asks for.
//!
//! - FIRE_AND_FORGET: sent once (`seq` 0), never acknowledged or retried.
//! - AT_LEAST_ONCE and BROADCAST: one outbox entry per message with one
//!   destination per subscribed cluster; each destination is resent with
//!   RTT-adaptive backoff until it acknowledges. BROADCAST differs only in
//!   that callers query its per-destination status ([`Core::message_status`]).
//!
//! Receivers deduplicate by `(origin, seq)`, where `seq` is dense per
//! (origin, destination): a dense sequence is what the dedup window needs,
//! and one message id spans several destinations. A receiver acknowledges a
//! message only after handing it to its subscribers ([`Delivery::Message`]
//! comes before the ack in the outputs, which the actor carries out in order).
//!
//! Everything a restart must keep is asked for with `Persist` outputs
//! placed before the sends and hand-offs that depend on it (see
//! [`super::durable`]). The quorum guarantees are carried out in
//! `quorum.rs`. Causal order (messages published with `causal`) is in
//! `causal.rs`, hooked in where a message is stamped, admitted and
//! delivered; messages held back for causal order are kept in memory only.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::proto::delivery::{
    AckOutcome, Backoff, DEFAULT_DEDUP_WINDOW, DEFAULT_MAX_ORIGINS, DEFAULT_OUTBOX_CAPACITY, Dedup,
    DestStatus, Envelope, Guarantee, MessageKey, Outbox, Send, Verdict,
};
use crate::proto::queue::QueueName;
use crate::proto::topology::DataItem;
use crate::proto::topology::RoutedPayload;
use crate::proto::topology::payload::{DATA_BATCH_BYTES, MAX_DATA_ACKS, MAX_DATA_BATCH};

use super::durable::{DataState, OutboxEntry, PendingDest};
use super::routing::Delivery;
use super::*;

/// How many message ids one durable reservation covers.
const ID_BLOCK: u64 = 1024;

/// The data-path state of one node.
#[derive(Debug)]
pub(super) struct DataPath {
    outbox: Outbox,
    pub(super) dedup: Dedup,
    next_id: u64,
    /// Ids below this are reserved durably ([`Persist::NextMessageId`]):
    /// taking one needs no write.
    reserved_id: u64,
    /// Next sequence number per destination.
    next_seq: BTreeMap<ClusterId, u64>,
    /// The sequence number each pending (message, destination) was given.
    seqs: BTreeMap<(MessageKey, ClusterId), u64>,
    /// Acks owed, by origin, until the end of the input batch.
    acks: BTreeMap<ClusterId, Vec<u64>>,
    /// Transmissions owed, by destination, until the end of the input
    /// batch (or until a destination's batch is full).
    sends: BTreeMap<ClusterId, OwedSends>,
    /// Counters for metrics.
    pub(super) counters: DataCounters,
}

/// Transmissions owed to one destination until the end of an input batch.
#[derive(Debug, Default)]
pub(super) struct OwedSends {
    items: Vec<DataItem>,
    /// Envelope bytes in `items`.
    bytes: usize,
}

/// Counters of the data path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataCounters {
    /// Messages published here.
    pub published: u64,
    /// Messages handed to local subscribers.
    pub delivered: u64,
    /// Of those, messages from another cluster (cross-cluster deliveries).
    pub delivered_remote: u64,
    /// Duplicates received (re-acknowledged, not delivered again).
    pub duplicates: u64,
    /// Messages dropped: undecodable, or too far ahead of the dedup window.
    pub refused: u64,
}

impl Default for DataPath {
    fn default() -> Self {
        DataPath {
            outbox: Outbox::new(Backoff::default(), DEFAULT_OUTBOX_CAPACITY),
            dedup: Dedup::new(DEFAULT_DEDUP_WINDOW, DEFAULT_MAX_ORIGINS),
            next_id: 1,
            reserved_id: 1,
            next_seq: BTreeMap::new(),
            seqs: BTreeMap::new(),
            acks: BTreeMap::new(),
            sends: BTreeMap::new(),
            counters: DataCounters::default(),
        }
    }
}

impl DataPath {
    /// Uses up the next message id. Ids are reserved durably [`ID_BLOCK`]
    /// at a time, so most messages need no write for it (and a quorum
    /// proposal waits for no fsync); a restart skips what was left of the
    /// block and never hands out an id twice.
    fn take_id(&mut self, out: &mut Vec<Output>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if self.next_id > self.reserved_id {
            self.reserved_id = self.next_id.saturating_add(ID_BLOCK);
            out.push(Output::Persist(Persist::NextMessageId(self.reserved_id)));
        }
        id
    }

    /// Takes back the state stored through the `Persist` outputs.
    pub(super) fn restore(&mut self, state: DataState, rng: &mut rand::rngs::StdRng) {
        self.next_id = self.next_id.max(state.next_id);
        for (dest, next) in state.next_seq {
            let n = self.next_seq.entry(dest).or_insert(1);
            *n = (*n).max(next);
        }
        for (origin, window) in state.dedup {
            self.dedup.restore(origin, window);
        }
        for entry in state.outbox {
            let key = entry.envelope.key;
            // Defensive: counters never fall behind what the outbox used.
            self.next_id = self.next_id.max(key.id.saturating_add(1));
            for d in &entry.dests {
                let n = self.next_seq.entry(d.to).or_insert(1);
                *n = (*n).max(d.seq.saturating_add(1));
                if !d.acked {
                    self.seqs.insert((key, d.to), d.seq);
                }
            }
            let dests = entry.dests.iter().map(|d| (d.to, d.acked));
            // The immediate sends are dropped: there are no routes at start,
            // and the first timeout resends them.
            if self
                .outbox
                .restore(Millis::ZERO, entry.envelope, dests, rng)
                .is_err()
            {
                self.counters.refused += 1;
            }
        }
    }
}

impl Core {
    /// Per-destination acknowledgement state of a message still in the
    /// outbox; `None` once every destination acknowledged (or if unknown).
    pub fn message_status(&self, key: &MessageKey) -> Option<Vec<(ClusterId, DestStatus)>> {
        self.data.outbox.status(key)
    }

    /// Messages awaiting an acknowledgement from at least one destination.
    pub fn outbox_depth(&self) -> usize {
        self.data.outbox.depth()
    }

    /// Counters of the outbox (retries, refusals when full).
    pub fn outbox_counters(&self) -> crate::proto::delivery::OutboxCounters {
        self.data.outbox.counters()
    }

    /// Counters of the data path.
    pub fn data_counters(&self) -> DataCounters {
        self.data.counters
    }

    pub(super) fn publish(
        &mut self,
        now: Millis,
        topic: String,
        guarantee: Guarantee,
        payload: Vec<u8>,
        options: super::causal::PublishOptions,
        out: &mut Vec<Output>,
    ) {
        let refuse = |reason: String, out: &mut Vec<Output>| {
            out.push(Output::Deliver(Delivery::PublishRefused {
                topic: topic.clone(),
                reason,
            }));
        };
        let Ok(name) = QueueName::new(&topic) else {
            return refuse("invalid topic name".into(), out);
        };
        let key = MessageKey {
            origin: self.own.id(),
            id: self.data.next_id,
        };
        let clock = match self.causal_clock(&name, guarantee, options) {
            Ok(c) => c,
            Err(reason) => return refuse(reason, out),
        };
        let envelope = match Envelope::new(key, name.clone(), guarantee, payload, clock) {
            Ok(e) => Arc::new(e),
            Err(e) => return refuse(e.to_string(), out),
        };
        if guarantee.vote_kind().is_some() {
            // The id names the quorum slot: never reused after a restart.
            self.data.take_id(out);
            self.data.counters.published += 1;
            return self.publish_quorum(now, envelope, out);
        }
        let dests: Vec<ClusterId> = self.queues.subscribers(&name).collect();
        // Ids are never reused, so a late ack of an old id cannot
        // acknowledge a new message after a restart.
        self.data.take_id(out);
        if guarantee.needs_ack() && !dests.is_empty() {
            return self.publish_acked(now, key, envelope, dests, out);
        }
        self.data.counters.published += 1;
        out.push(Output::Deliver(Delivery::Published {
            key,
            dests: dests.clone(),
        }));
        let bytes = envelope.encode();
        for d in dests {
            self.originate(
                d,
                RoutedPayload::Data {
                    seq: 0,
                    envelope: bytes.clone(),
                },
                out,
            );
        }
    }

    /// AT_LEAST_ONCE and BROADCAST: into the outbox, durably, then sent.
    fn publish_acked(
        &mut self,
        now: Millis,
        key: MessageKey,
        envelope: Arc<Envelope>,
        dests: Vec<ClusterId>,
        out: &mut Vec<Output>,
    ) {
        let with_rtt: Vec<(ClusterId, Option<std::time::Duration>)> = dests
            .iter()
            .map(|d| {
                let rtt = self
                    .routing
                    .routes()
                    .get(d)
                    .map(|r| std::time::Duration::from_micros(r.cost_micros));
                (*d, rtt)
            })
            .collect();
        let sends = match self
            .data
            .outbox
            .enqueue(now, envelope.clone(), with_rtt, &mut self.rng)
        {
            Ok(sends) => sends,
            Err(e) => {
                out.push(Output::Deliver(Delivery::PublishRefused {
                    topic: envelope.topic.as_str().to_owned(),
                    reason: e.to_string(),
                }));
                return;
            }
        };
        self.causal_commit(&envelope, out);
        self.latency_sent(key);
        let mut pending = Vec::with_capacity(dests.len());
        for d in &dests {
            let next = self.data.next_seq.entry(*d).or_insert(1);
            let seq = *next;
            *next += 1;
            self.data.seqs.insert((key, *d), seq);
            pending.push(PendingDest {
                to: *d,
                seq,
                acked: false,
            });
            out.push(Output::Persist(Persist::NextSeq {
                dest: *d,
                next: seq + 1,
            }));
        }
        // Durable before Published and before the first transmission.
        out.push(Output::Persist(Persist::OutboxAdd(OutboxEntry {
            envelope,
            dests: pending,
        })));
        self.data.counters.published += 1;
        out.push(Output::Deliver(Delivery::Published { key, dests }));
        self.send_data(sends, out);
    }

    /// Owes the transmissions `sends`, to leave at the end of the input
    /// batch, one frame per destination ([`Self::end_batch`]); a message
    /// too large for a batch leaves at once, alone.
    fn send_data(&mut self, sends: Vec<Send>, out: &mut Vec<Output>) {
        for s in sends {
            let Some(&seq) = self.data.seqs.get(&(s.envelope.key, s.to)) else {
                continue;
            };
            let envelope = s.envelope.encode();
            if envelope.len() > DATA_BATCH_BYTES {
                self.originate(s.to, RoutedPayload::Data { seq, envelope }, out);
                continue;
            }
            let owed = self.data.sends.entry(s.to).or_default();
            if owed.bytes + envelope.len() > DATA_BATCH_BYTES || owed.items.len() >= MAX_DATA_BATCH
            {
                let full = std::mem::take(owed);
                self.send_batch(s.to, full, out);
            }
            let owed = self.data.sends.entry(s.to).or_default();
            owed.bytes += envelope.len();
            owed.items.push(DataItem { seq, envelope });
        }
    }

    fn send_batch(&mut self, to: ClusterId, mut owed: OwedSends, out: &mut Vec<Output>) {
        let payload = match owed.items.len() {
            0 => return,
            1 => match owed.items.pop() {
                Some(DataItem { seq, envelope }) => RoutedPayload::Data { seq, envelope },
                None => return,
            },
            _ => RoutedPayload::DataBatch { items: owed.items },
        };
        self.originate(to, payload, out);
    }

    /// Once per tick: resend what is due.
    pub(super) fn data_tick(&mut self, now: Millis, out: &mut Vec<Output>) {
        let sends = self.data.outbox.poll(now, &mut self.rng);
        self.send_data(sends, out);
        self.data_released(out);
    }

    /// First transmissions of messages that waited for room in their
    /// destination's send window (after acks freed some).
    pub(super) fn data_released(&mut self, out: &mut Vec<Output>) {
        let sends = self.data.outbox.released(self.quorum.now, &mut self.rng);
        self.send_data(sends, out);
    }

    /// A data message addressed to this node.
    pub(super) fn on_data(
        &mut self,
        origin: ClusterId,
        seq: u64,
        bytes: Vec<u8>,
        out: &mut Vec<Output>,
    ) {
        let envelope = match Envelope::decode(&bytes) {
            // The routed header's origin must match the envelope's.
            Ok(e) if e.key.origin == origin => e,
            _ => {
                self.data.counters.refused += 1;
                return;
            }
        };
        let id = envelope.key.id;
        if seq == 0 {
            if !envelope.guarantee.needs_ack() {
                self.deliver_message(envelope, out);
            } else {
                self.data.counters.refused += 1;
            }
            return;
        }
        if !self.causal_admits(&envelope) {
            return; // Not acknowledged: the sender retries.
        }
        if envelope.clock.is_some() && origin != self.own.id() {
            self.on_causal_data(origin, seq, envelope, out);
            return;
        }
        match self.mark_processed(origin, seq, out) {
            Verdict::Fresh => self.deliver_message(envelope, out),
            Verdict::Duplicate => self.data.counters.duplicates += 1,
            Verdict::Ahead => {
                self.data.counters.refused += 1;
                return;
            }
        }
        self.owe_ack(origin, id, out);
    }

    /// Marks `(origin, seq)` processed in the dedup window if it is fresh;
    /// the window is then persisted with the hand-off, before the ack, so
    /// that after a restart the sender's retry is recognised and only
    /// acknowledged.
    pub(super) fn mark_processed(
        &mut self,
        origin: ClusterId,
        seq: u64,
        out: &mut Vec<Output>,
    ) -> Verdict {
        let verdict = self.data.dedup.observe(origin, seq);
        if verdict == Verdict::Fresh
            && let Some(w) = self.data.dedup.origin(&origin)
        {
            out.push(Output::Persist(Persist::DedupWindow {
                origin,
                window: w.clone(),
            }));
        }
        verdict
    }

    /// Owes `origin` the ack of its message `id`: sent at the end of the
    /// input batch, or at once when a frame's worth is owed.
    pub(super) fn owe_ack(&mut self, origin: ClusterId, id: u64, out: &mut Vec<Output>) {
        let owed = self.data.acks.entry(origin).or_default();
        owed.push(id);
        if owed.len() >= MAX_DATA_ACKS {
            let ids = std::mem::take(owed);
            self.send_acks(origin, ids, out);
        }
    }

    /// Sends the acks owed at the end of an input batch (see
    /// [`Core::handle_batched`]): after every hand-off and dedup write of
    /// the batch, which is always safe.
    pub fn end_batch(&mut self, out: &mut Vec<Output>) {
        for (to, owed) in std::mem::take(&mut self.data.sends) {
            self.send_batch(to, owed, out);
        }
        if self.data.acks.is_empty() {
            return;
        }
        for (origin, ids) in std::mem::take(&mut self.data.acks) {
            self.send_acks(origin, ids, out);
        }
    }

    fn send_acks(&mut self, origin: ClusterId, mut ids: Vec<u64>, out: &mut Vec<Output>) {
        let payload = match ids.len() {
            0 => return,
            1 => RoutedPayload::DataAck { id: ids[0] },
            _ => {
                ids.sort_unstable();
                ids.dedup();
                RoutedPayload::DataAcks { ids }
            }
        };
        self.originate(origin, payload, out);
    }

    /// `from` acknowledged our message `id`.
    pub(super) fn on_data_ack(&mut self, from: ClusterId, id: u64, out: &mut Vec<Output>) {
        let key = MessageKey {
            origin: self.own.id(),
            id,
        };
        // `quorum.now` is the current input's time (set by `handle_into`).
        match self.data.outbox.ack_at(self.quorum.now, &key, &from) {
            AckOutcome::Acked => {
                self.data.seqs.remove(&(key, from));
                out.push(Output::Persist(Persist::OutboxAck { key, dest: from }));
            }
            AckOutcome::Complete => {
                self.data.seqs.remove(&(key, from));
                out.push(Output::Persist(Persist::OutboxAck { key, dest: from }));
                self.latency_acked(&key);
            }
            AckOutcome::AlreadyAcked | AckOutcome::Unknown => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestNet;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn deliveries(out: &[Output]) -> Vec<&Delivery> {
        out.iter()
            .filter_map(|o| match o {
                Output::Deliver(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn at_least_once_to_a_local_subscriber_is_delivered_once_and_acked() {
        let net = TestNet::new(1, &[1, 1]);
        let mut core = crate::proto::core::tests::core(&net, 0, vec![]);
        core.handle(
            Millis(1),
            Input::Command(Command::Subscribe("jobs.#".into())),
        );
        let out = core.handle(
            Millis(2),
            Input::Command(Command::Publish {
                topic: "jobs.eu".into(),
                guarantee: Guarantee::AtLeastOnce,
                payload: b"hello".to_vec(),
            }),
        );
        let d = deliveries(&out);
        let Delivery::Published { key, dests } = d[0] else {
            panic!("expected Published first, got {d:?}");
        };
        assert_eq!(dests, &vec![core.id()]);
        let Delivery::Message(env) = d[1] else {
            panic!("expected the message, got {d:?}");
        };
        assert_eq!(env.key, *key);
        assert_eq!(env.payload, b"hello");
        // Delivered locally and acknowledged at once: nothing pending.
        assert_eq!(core.outbox_depth(), 0);
        assert_eq!(core.data_counters().delivered, 1);
        // A duplicate is acknowledged but not delivered again.
        let bytes = env.encode();
        let mut again = Vec::new();
        core.on_data(core.id(), 1, bytes, &mut again);
        assert!(deliveries(&again).is_empty());
        assert_eq!(core.data_counters().duplicates, 1);
        // A quorum guarantee starts a round (see quorum_tests.rs).
        let out = core.handle(
            Millis(3),
            Input::Command(Command::Publish {
                topic: "jobs.eu".into(),
                guarantee: Guarantee::ByzantineQuorum,
                payload: vec![],
            }),
        );
        assert!(matches!(deliveries(&out)[0], Delivery::Published { .. }));
    }

    /// Runs `outs` to quiescence, dropping each data or ack frame with
    /// probability `loss` (other frames are never dropped); returns the
    /// deliveries by core.
    fn lossy_pump(
        cores: &mut [Core],
        now: Millis,
        from: usize,
        outs: Vec<Output>,
        loss: f64,
        rng: &mut StdRng,
        dropped: &mut u32,
    ) -> Vec<(usize, Delivery)> {
        use crate::proto::core::tests::{is_data_frame, pump_dropping};
        let lose = |f: &crate::proto::wire::Frame| {
            let lost = is_data_frame(f) && rng.gen_bool(loss);
            *dropped += u32::from(lost);
            lost
        };
        (pump_dropping(cores, now, from, outs, lose).into_iter())
            .filter_map(|(at, o)| match o {
                Output::Deliver(d) => Some((at, d)),
                _ => None,
            })
            .collect()
    }

    /// Two connected cores, the second subscribed to `t.#` and known to
    /// the first as subscribed.
    fn subscribed_pair(net: &TestNet, rng: &mut StdRng) -> (Vec<Core>, Millis) {
        use crate::proto::core::tests::connect;
        let mut cores: Vec<Core> = (0..2)
            .map(|i| crate::proto::core::tests::core(net, i, vec![]))
            .collect();
        connect(&mut cores, Millis(0), 0, 1);
        let mut now = Millis(0);
        let outs = cores[1].handle(now, Input::Command(Command::Subscribe("t.#".into())));
        lossy_pump(&mut cores, now, 1, outs, 0.0, rng, &mut 0);
        for _ in 0..20 {
            now = now + std::time::Duration::from_millis(200);
            for i in 0..2 {
                let outs = cores[i].handle(now, Input::Timer(TimerId::Tick));
                lossy_pump(&mut cores, now, i, outs, 0.0, rng, &mut 0);
            }
        }
        (cores, now)
    }

    fn publish_at_least_once(payload: Vec<u8>) -> Input {
        Input::Command(Command::Publish {
            topic: "t.x".into(),
            guarantee: Guarantee::AtLeastOnce,
            payload,
        })
    }

    #[test]
    fn the_messages_of_a_batch_leave_in_one_frame_each_delivered_once() {
        use crate::proto::wire::Frame;
        let net = TestNet::new(4, &[1, 1]);
        let mut rng = StdRng::seed_from_u64(2);
        let (mut cores, now) = subscribed_pair(&net, &mut rng);
        let mut out = Vec::new();
        // 1 KiB messages: 60 of them pass the batch's byte budget once.
        for n in 0..60u8 {
            cores[0].handle_batched(now, publish_at_least_once(vec![n; 1024]), &mut out);
        }
        let sent = |out: &[Output]| {
            out.iter()
                .filter(|o| matches!(o, Output::Send { .. }))
                .count()
        };
        assert_eq!(sent(&out), 1, "a full batch leaves at once, the rest waits");
        cores[0].end_batch(&mut out);
        let frames: Vec<Frame> = out
            .into_iter()
            .filter_map(|o| match o {
                Output::Send { frame, .. } => Some(frame),
                _ => None,
            })
            .collect();
        let sizes: Vec<usize> = frames
            .iter()
            .map(|f| match f {
                Frame::Routed(r) => match &r.payload {
                    RoutedPayload::DataBatch { items } => items.len(),
                    RoutedPayload::Data { .. } => 1,
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), 60);
        assert_eq!(
            sizes.len(),
            2,
            "two batches under the byte budget: {sizes:?}"
        );
        assert!(frames.iter().all(|f| crate::proto::wire::encode(f).is_ok()));
        let from = cores[0].id();
        let mut got = Vec::new();
        for frame in frames {
            // Twice: the second copy is a duplicate, acknowledged again.
            for _ in 0..2 {
                let outs = cores[1].handle(
                    now,
                    Input::Frame {
                        from,
                        frame: frame.clone(),
                    },
                );
                got.extend(deliveries(&outs).into_iter().cloned());
                lossy_pump(&mut cores, now, 1, outs, 0.0, &mut rng, &mut 0);
            }
        }
        let payloads: Vec<u8> = got
            .iter()
            .filter_map(|d| match d {
                Delivery::Message(e) => e.payload.first().copied(),
                _ => None,
            })
            .collect();
        assert_eq!(
            payloads,
            (0..60u8).collect::<Vec<_>>(),
            "each once, in order"
        );
        assert_eq!(cores[0].outbox_depth(), 0, "every message acknowledged");
    }

    #[test]
    fn the_acks_of_a_batch_leave_in_one_frame_and_settle_the_outbox() {
        use crate::proto::wire::Frame;
        let net = TestNet::new(4, &[1, 1]);
        let mut rng = StdRng::seed_from_u64(1);
        let (mut cores, now) = subscribed_pair(&net, &mut rng);
        let mut data = Vec::new();
        for n in 0..10u8 {
            let outs = cores[0].handle(now, publish_at_least_once(vec![n]));
            data.extend(outs.into_iter().filter_map(|o| match o {
                Output::Send { frame, .. } => Some(frame),
                _ => None,
            }));
        }
        assert_eq!(data.len(), 10);
        assert_eq!(cores[0].outbox_depth(), 10);
        // One batch of ten frames at the receiver: ten hand-offs, no ack yet.
        let from = cores[0].id();
        let mut out = Vec::new();
        for frame in data {
            cores[1].handle_batched(now, Input::Frame { from, frame }, &mut out);
        }
        let sends = |out: &[Output]| {
            out.iter()
                .filter(|o| matches!(o, Output::Send { .. }))
                .count()
        };
        assert_eq!(deliveries(&out).len(), 10);
        assert_eq!(sends(&out), 0, "acks wait for the end of the batch");
        let before = out.len();
        cores[1].end_batch(&mut out);
        let acks: Vec<Output> = out.split_off(before);
        assert_eq!(acks.len(), 1, "one frame for the batch: {acks:?}");
        let Output::Send { frame, .. } = &acks[0] else {
            panic!("{acks:?}")
        };
        let Frame::Routed(r) = frame else {
            panic!("{frame:?}")
        };
        assert!(matches!(&r.payload, RoutedPayload::DataAcks { ids } if ids.len() == 10));
        lossy_pump(&mut cores, now, 1, acks, 0.0, &mut rng, &mut 0);
        assert_eq!(cores[0].outbox_depth(), 0, "every message acknowledged");
    }

    #[test]
    fn at_least_once_and_broadcast_across_clusters_despite_lost_frames() {
        use crate::proto::core::tests::connect;
        let net = TestNet::new(2, &[1, 1, 1]);
        let mut cores: Vec<Core> = (0..3)
            .map(|i| crate::proto::core::tests::core(&net, i, vec![]))
            .collect();
        connect(&mut cores, Millis(0), 0, 1);
        connect(&mut cores, Millis(0), 1, 2);
        let seed = 7;
        println!("seed {seed}");
        let mut rng = StdRng::seed_from_u64(seed);
        let mut dropped = 0;
        let mut now = Millis(0);
        for i in [1, 2] {
            let outs = cores[i].handle(now, Input::Command(Command::Subscribe("t.#".into())));
            lossy_pump(&mut cores, now, i, outs, 0.0, &mut rng, &mut dropped);
        }
        // Let records spread and routes form.
        for _ in 0..20 {
            now = now + std::time::Duration::from_millis(200);
            for i in 0..3 {
                let outs = cores[i].handle(now, Input::Timer(TimerId::Tick));
                lossy_pump(&mut cores, now, i, outs, 0.0, &mut rng, &mut dropped);
            }
        }
        let (id1, id2) = (cores[1].id(), cores[2].id());
        let mut counts: BTreeMap<(usize, u64), u32> = BTreeMap::new();
        let mut keys = Vec::new();
        for n in 0..200u64 {
            let g = if n % 2 == 0 {
                Guarantee::AtLeastOnce
            } else {
                Guarantee::Broadcast
            };
            let outs = cores[0].handle(
                now,
                Input::Command(Command::Publish {
                    topic: "t.x".into(),
                    guarantee: g,
                    payload: n.to_be_bytes().to_vec(),
                }),
            );
            for (at, d) in lossy_pump(&mut cores, now, 0, outs, 0.3, &mut rng, &mut dropped) {
                match d {
                    Delivery::Message(e) => *counts.entry((at, e.key.id)).or_default() += 1,
                    Delivery::Published { key, mut dests } => {
                        dests.sort();
                        let mut want = vec![id1, id2];
                        want.sort();
                        assert_eq!(dests, want);
                        keys.push(key);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert!(dropped > 0);
        assert!(cores[0].outbox_depth() > 0, "some acks were lost");
        let lost = keys
            .iter()
            .find(|k| cores[0].message_status(k).is_some())
            .copied();
        let status = cores[0].message_status(&lost.unwrap()).unwrap();
        assert_eq!(status.len(), 2, "per-destination status: {status:?}");
        // Backoff grows to 10 s: give retries a few virtual minutes.
        for _ in 0..3000 {
            if cores[0].outbox_depth() == 0 {
                break;
            }
            now = now + std::time::Duration::from_millis(200);
            for i in 0..3 {
                let outs = cores[i].handle(now, Input::Timer(TimerId::Tick));
                for (at, d) in lossy_pump(&mut cores, now, i, outs, 0.3, &mut rng, &mut dropped) {
                    if let Delivery::Message(e) = d {
                        *counts.entry((at, e.key.id)).or_default() += 1;
                    }
                }
            }
        }
        assert_eq!(cores[0].outbox_depth(), 0, "every destination acknowledged");
        for at in [1, 2] {
            for k in &keys {
                assert_eq!(
                    counts.get(&(at, k.id)),
                    Some(&1),
                    "core {at} message {}",
                    k.id
                );
            }
        }
    }
}
