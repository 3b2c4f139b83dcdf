//! Federation latency: from publishing an acknowledged message to every
//! destination's acknowledgement. The core collects samples (bounded); the
//! node drains them into the `fedmesh_federation_latency_seconds` histogram.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::proto::delivery::MessageKey;

use super::*;

/// Most samples kept between two drains; later ones are counted, not kept.
pub const MAX_LATENCY_SAMPLES: usize = 4096;

/// Latency bookkeeping of one node.
#[derive(Debug, Default)]
pub(super) struct Latency {
    /// The time of the input being handled (acks arrive without one).
    now: Millis,
    /// When each message awaiting acknowledgements was published.
    sent: BTreeMap<MessageKey, Millis>,
    samples: Vec<Duration>,
    dropped: u64,
}

impl Core {
    /// Notes the time of the input being handled.
    pub(super) fn latency_clock(&mut self, now: Millis) {
        self.latency.now = now;
    }

    /// An acknowledged message was published now.
    pub(super) fn latency_sent(&mut self, key: MessageKey) {
        self.latency.sent.insert(key, self.latency.now);
    }

    /// Every destination of `key` acknowledged it.
    pub(super) fn latency_acked(&mut self, key: &MessageKey) {
        let Some(sent) = self.latency.sent.remove(key) else {
            return;
        };
        if self.latency.samples.len() < MAX_LATENCY_SAMPLES {
            self.latency.samples.push(self.latency.now.since(sent));
        } else {
            self.latency.dropped += 1;
        }
    }

    /// The latency samples since the last call (and how many were not kept).
    pub fn take_latency_samples(&mut self) -> (Vec<Duration>, u64) {
        let dropped = std::mem::take(&mut self.latency.dropped);
        (std::mem::take(&mut self.latency.samples), dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::core::tests::{connect, core, pump};
    use crate::proto::delivery::Guarantee;
    use crate::testkit::TestNet;

    #[test]
    fn latency_runs_from_publish_to_the_last_acknowledgement() {
        let net = TestNet::new(5, &[1, 1]);
        let mut cores: Vec<Core> = (0..2).map(|i| core(&net, i, vec![])).collect();
        connect(&mut cores, Millis(0), 0, 1);
        let mut now = Millis(0);
        let outs = cores[1].handle(now, Input::Command(Command::Subscribe("t.#".into())));
        pump(&mut cores, now, 1, outs);
        for _ in 0..10 {
            now = now + Duration::from_millis(200);
            for i in 0..2 {
                let outs = cores[i].handle(now, Input::Timer(TimerId::Tick));
                pump(&mut cores, now, i, outs);
            }
        }
        let _ = cores[0].take_latency_samples();
        let outs = cores[0].handle(
            now,
            Input::Command(Command::Publish {
                topic: "t.x".into(),
                guarantee: Guarantee::AtLeastOnce,
                payload: vec![1],
            }),
        );
        assert_eq!(cores[0].outbox_depth(), 1, "sent to core 1");
        // The message and its ack travel while 40 ms pass.
        pump(&mut cores, now + Duration::from_millis(40), 0, outs);
        assert_eq!(cores[0].outbox_depth(), 0, "acknowledged");
        let (samples, dropped) = cores[0].take_latency_samples();
        assert_eq!((samples, dropped), (vec![Duration::from_millis(40)], 0));
        assert_eq!(cores[0].take_latency_samples(), (vec![], 0));
    }
}
