//! What the data path keeps across restarts, and how it is handed back.
//!
//! The core asks for durability with `Persist` outputs (the variants
//! `OutboxAdd`, `OutboxAck`, `NextMessageId`, `NextSeq`, `DedupWindow` and
//! `CausalClock`);
//! the caller stores them and, at the next start, hands the stored state
//! back as one [`DataState`] with [`Core::with_data_state`]. The rules that
//! make AT_LEAST_ONCE survive a crash of either side:
//!
//! - sender: a message's outbox entry (with the per-destination sequence
//!   numbers it was given) and the counters are durable before its first
//!   transmission and before `Delivery::Published`; it is deleted only after
//!   every destination acknowledged. A crash in between means a resend,
//!   never a loss, and ids and sequence numbers are never reused (a late
//!   ack of an old id cannot acknowledge a new message);
//! - receiver: an origin's dedup window is durable before the message is
//!   acknowledged, in the same batch as the hand-off to the subscriber;
//! - causal order: a topic's clock is durable with the publish that
//!   advanced its own entry and with the hand-offs that advanced the
//!   others; a message held back for a predecessor is neither marked in
//!   the dedup window nor acknowledged until it is handed off, so a crash
//!   loses only the memory of it and the sender's retry brings it back.
//!   The store keeps the clock records ahead of the dedup windows and
//!   behind the outbox entries of one commit: a window that survives a
//!   torn write implies the clock that goes with it, and an own counter
//!   that survives implies its message (whose stamp also restores it).

use std::sync::Arc;

use crate::proto::delivery::{Envelope, OriginWindow};
use crate::proto::identity::ClusterId;
use crate::proto::queue::QueueName;
use crate::proto::vclock::VClock;

use super::Core;

/// One destination of an outbox message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingDest {
    /// The destination cluster.
    pub to: ClusterId,
    /// The sequence number the message has towards `to` (dense per destination).
    pub seq: u64,
    /// Whether `to` acknowledged it.
    pub acked: bool,
}

/// An unacknowledged AT_LEAST_ONCE or BROADCAST message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The message.
    pub envelope: Arc<Envelope>,
    /// Every destination and its state.
    pub dests: Vec<PendingDest>,
}

/// The data path's stored state, read back at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataState {
    /// The next message id to publish with (0 if never stored).
    pub next_id: u64,
    /// The next sequence number per destination.
    pub next_seq: Vec<(ClusterId, u64)>,
    /// Messages not yet acknowledged by every destination.
    pub outbox: Vec<OutboxEntry>,
    /// Receiver dedup windows, per origin.
    pub dedup: Vec<(ClusterId, OriginWindow)>,
    /// Causal clocks, per topic (what was delivered here; the own entry
    /// counts what was published here).
    pub causal: Vec<(QueueName, VClock)>,
}

impl Core {
    /// Restores the data path stored through its `Persist` outputs (call
    /// once, right after [`Core::new`]). Restored messages are resent when
    /// their first timeout passes (the node has no routes at start); the
    /// receiver's dedup absorbs the copies it had already processed.
    pub fn with_data_state(mut self, mut state: DataState) -> Self {
        let clocks = std::mem::take(&mut state.causal);
        let me = self.own.id();
        // An own stamp in the outbox may be ahead of the stored clock (see
        // the module doc on torn writes).
        let stamps: Vec<(QueueName, u64)> = (state.outbox.iter())
            .filter(|e| e.envelope.key.origin == me)
            .filter_map(|e| {
                Some((
                    e.envelope.topic.clone(),
                    e.envelope.clock.as_ref()?.get(&me),
                ))
            })
            .collect();
        self.data.restore(state, &mut self.rng);
        self.restore_causal(clocks, stamps);
        self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::proto::core::tests::{connect, core, is_data_frame, pump_dropping};
    use crate::proto::core::{Command, Delivery, Input, Output, Persist, PublishOptions, TimerId};
    use crate::proto::delivery::{Guarantee, MessageKey};
    use crate::proto::identity::Identity;
    use crate::proto::membership::config::MembershipConfig;
    use crate::proto::time::Millis;
    use crate::proto::wire::Frame;
    use crate::testkit::TestNet;

    /// What a node's store holds: the `Persist` outputs applied in order.
    #[derive(Default)]
    struct Disk {
        next_id: u64,
        next_seq: BTreeMap<ClusterId, u64>,
        outbox: BTreeMap<MessageKey, OutboxEntry>,
        dedup: BTreeMap<ClusterId, OriginWindow>,
        causal: BTreeMap<QueueName, VClock>,
    }

    impl Disk {
        fn apply(&mut self, p: &Persist) {
            match p {
                Persist::OutboxAdd(e) => {
                    self.outbox.insert(e.envelope.key, e.clone());
                }
                Persist::OutboxAck { key, dest } => {
                    if let Some(e) = self.outbox.get_mut(key) {
                        e.dests
                            .iter_mut()
                            .filter(|d| d.to == *dest)
                            .for_each(|d| d.acked = true);
                        if e.dests.iter().all(|d| d.acked) {
                            self.outbox.remove(key);
                        }
                    }
                }
                Persist::NextMessageId(n) => self.next_id = *n,
                Persist::NextSeq { dest, next } => {
                    self.next_seq.insert(*dest, *next);
                }
                Persist::DedupWindow { origin, window } => {
                    self.dedup.insert(*origin, window.clone());
                }
                Persist::CausalClock { topic, clock } => {
                    self.causal.insert(topic.clone(), clock.clone());
                }
                _ => {}
            }
        }

        fn state(&self) -> DataState {
            DataState {
                next_id: self.next_id,
                next_seq: self.next_seq.iter().map(|(d, n)| (*d, *n)).collect(),
                outbox: self.outbox.values().cloned().collect(),
                dedup: self.dedup.iter().map(|(o, w)| (*o, w.clone())).collect(),
                causal: (self.causal.iter())
                    .map(|(t, c)| (t.clone(), c.clone()))
                    .collect(),
            }
        }
    }

    /// A restarted core: same identity, a later incarnation, stored state.
    fn restarted(net: &TestNet, i: usize, incarnation: u64, disk: &Disk) -> Core {
        let identity = Arc::new(Identity::from_seed(net.seed_of(i)));
        let addr = std::net::SocketAddr::from(([10, 0, 0, i as u8 + 1], 7000));
        Core::new(
            identity,
            net.roster.clone(),
            MembershipConfig::default(),
            vec![],
            vec![addr],
            incarnation,
            100 + i as u64,
        )
        .unwrap()
        .with_data_state(disk.state())
    }

    /// What core 1's subscriber got: how often each payload, and in what order.
    #[derive(Default)]
    struct Counts {
        times: BTreeMap<u64, u32>,
        order: Vec<u64>,
    }

    /// Core 0 publishing to core 1's subscriber, each with its disk.
    struct Pair {
        net: TestNet,
        cores: Vec<Core>,
        disks: Vec<Disk>,
        got: Counts,
        now: Millis,
        rng: StdRng,
    }

    impl Pair {
        fn new(seed: u64) -> Pair {
            println!("seed {seed}");
            let net = TestNet::new(3, &[1, 1]);
            let cores = vec![core(&net, 0, vec![]), core(&net, 1, vec![])];
            Pair {
                net,
                cores,
                disks: vec![Disk::default(), Disk::default()],
                got: Counts::default(),
                now: Millis(0),
                rng: StdRng::seed_from_u64(seed),
            }
        }

        /// Applies one output of core `at`: its persists to its disk, core
        /// 1's hand-offs to the counts.
        fn apply(&mut self, at: usize, o: Output) {
            match o {
                Output::Persist(p) => self.disks[at].apply(&p),
                Output::Deliver(Delivery::Message(e)) if at == 1 => {
                    let n = u64::from_be_bytes(e.payload[..8].try_into().unwrap());
                    *self.got.times.entry(n).or_default() += 1;
                    self.got.order.push(n);
                }
                _ => {}
            }
        }

        /// Runs `outs` of core `from` to quiescence, dropping data and ack
        /// frames with probability `loss`.
        fn run(&mut self, from: usize, outs: Vec<Output>, loss: f64) {
            let rng = &mut self.rng;
            let lose = |f: &Frame| is_data_frame(f) && rng.gen_bool(loss);
            for (at, o) in pump_dropping(&mut self.cores, self.now, from, outs, lose) {
                self.apply(at, o);
            }
        }

        /// Ticks both cores for `rounds` gossip rounds under `loss`
        /// (stopping early once the outbox is empty, if lossy).
        fn ticks(&mut self, rounds: usize, loss: f64) {
            for _ in 0..rounds {
                if self.cores[0].outbox_depth() == 0 && loss > 0.0 {
                    return;
                }
                self.now = self.now + Duration::from_millis(200);
                for i in 0..2 {
                    let outs = self.cores[i].handle(self.now, Input::Timer(TimerId::Tick));
                    self.run(i, outs, loss);
                }
            }
        }

        /// (Re)connects the two cores, then core 1 subscribes to `t.#` and
        /// a few rounds pass without loss.
        fn link(&mut self) {
            for (i, o) in connect(&mut self.cores, self.now, 0, 1) {
                self.apply(i, o);
            }
            let subscribe = Input::Command(Command::Subscribe("t.#".into()));
            let outs = self.cores[1].handle(self.now, subscribe);
            self.run(1, outs, 0.0);
            self.ticks(10, 0.0);
        }

        /// Core 0 publishes `range` (as payloads) under 40 % loss.
        fn publish(&mut self, range: std::ops::Range<u64>, options: PublishOptions) {
            for n in range {
                let outs = self.cores[0].handle(
                    self.now,
                    Input::Command(Command::PublishWith {
                        topic: "t.x".into(),
                        guarantee: Guarantee::AtLeastOnce,
                        payload: n.to_be_bytes().to_vec(),
                        options,
                    }),
                );
                self.run(0, outs, 0.4);
            }
        }

        /// Crashes core `i`: it starts again from its disk alone.
        fn restart(&mut self, i: usize) {
            self.cores[i] = restarted(&self.net, i, 1, &self.disks[i]);
        }
    }

    #[test]
    fn restarts_of_either_side_lose_nothing_and_deliver_nothing_twice() {
        restarts_lose_nothing(PublishOptions::default());
    }

    /// The same in causal order: the origin's counters and the receiver's
    /// delivered clock survive the restarts (a counter stamped again after
    /// the origin's restart would be taken for a duplicate and lost; a
    /// delivered clock forgotten by the receiver would hold every later
    /// message back), and a message held back is acknowledged only once it
    /// is handed off (a receiver crash cannot lose it).
    #[test]
    fn causal_messages_survive_restarts_of_either_side_in_order() {
        let got = restarts_lose_nothing(PublishOptions { causal: true });
        let mut sorted = got.order.clone();
        sorted.sort_unstable();
        assert_eq!(got.order, sorted, "delivered out of causal order");
    }

    /// Publishes 300 messages from core 0 to core 1's subscriber under 40 %
    /// loss, crashing the receiver and then the sender midway; asserts each
    /// is delivered exactly once and returns what was delivered.
    fn restarts_lose_nothing(options: PublishOptions) -> Counts {
        let mut p = Pair::new(11);
        p.link();
        p.publish(0..100, options);
        assert!(p.cores[0].outbox_depth() > 0, "some frames were lost");
        // Crash the receiver: only its disk survives.
        p.restart(1);
        p.link();
        p.publish(100..200, options);
        // Crash the sender with messages pending.
        let pending = p.cores[0].outbox_depth();
        assert!(pending > 0);
        p.restart(0);
        assert_eq!(
            p.cores[0].outbox_depth(),
            pending,
            "the outbox was restored"
        );
        p.link();
        p.publish(200..300, options);
        p.ticks(3000, 0.4);
        let (cores, disks, counts) = (&p.cores, &p.disks, &p.got);
        assert_eq!(cores[0].outbox_depth(), 0, "every message acknowledged");
        assert!(disks[0].outbox.is_empty(), "and deleted from the store");
        assert_eq!(counts.times.len(), 300, "every message delivered");
        let twice: Vec<_> = counts.times.iter().filter(|(_, c)| **c != 1).collect();
        assert!(twice.is_empty(), "delivered more than once: {twice:?}");
        // Ids are never reused across the restart (a reused id would have
        // been dropped as a duplicate above): the stored reservation covers
        // every id used.
        assert!(
            disks[0].next_id > 300,
            "reserved up to {}",
            disks[0].next_id
        );
        p.got
    }
}
