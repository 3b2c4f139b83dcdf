//! Retry timing: an initial timeout that adapts to the measured RTT, doubled
//! on each retry up to a cap, with bounded random jitter so that many
//! senders that lost the same link do not retry in lockstep.

use std::time::Duration;

use rand::Rng;

/// Retry and timeout policy (shared by the outbox and quorum rounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The shortest timeout, whatever the RTT.
    pub min: Duration,
    /// The longest timeout (after jitter too).
    pub max: Duration,
    /// The initial timeout when no RTT has been measured yet.
    pub unmeasured: Duration,
    /// The initial timeout is this many RTTs.
    pub rtt_multiple: u32,
    /// Jitter added on top, as a percentage of the timeout (0..=100).
    pub jitter_percent: u8,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(20),
            max: Duration::from_secs(10),
            unmeasured: Duration::from_millis(500),
            rtt_multiple: 4,
            jitter_percent: 20,
        }
    }
}

impl Backoff {
    /// The first timeout for a peer (or a set of peers) whose largest
    /// measured RTT is `rtt`.
    pub fn initial(&self, rtt: Option<Duration>) -> Duration {
        let base = match rtt {
            Some(rtt) => rtt.saturating_mul(self.rtt_multiple),
            None => self.unmeasured,
        };
        base.clamp(self.min, self.max.max(self.min))
    }

    /// The timeout after `previous` expired: doubled, capped at `max`.
    pub fn next(&self, previous: Duration) -> Duration {
        previous.saturating_mul(2).min(self.max).max(self.min)
    }

    /// `d` plus up to `jitter_percent` of it, never more than `max`.
    pub fn jittered<R: Rng>(&self, d: Duration, rng: &mut R) -> Duration {
        let span = d.as_micros() as u64 * u64::from(self.jitter_percent.min(100)) / 100;
        let extra = if span == 0 {
            0
        } else {
            rng.gen_range(0..=span)
        };
        d.saturating_add(Duration::from_micros(extra))
            .min(self.max.max(d))
    }
}

/// A smoothed RTT estimate (RFC 6298 style, integer microseconds), for
/// callers that see raw samples rather than the link's own estimate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RttEstimator {
    srtt_us: u64,
    rttvar_us: u64,
    samples: u64,
}

impl RttEstimator {
    /// Adds one RTT sample.
    pub fn sample(&mut self, rtt: Duration) {
        let r = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        if self.samples == 0 {
            self.srtt_us = r;
            self.rttvar_us = r / 2;
        } else {
            let diff = self.srtt_us.abs_diff(r);
            self.rttvar_us = (3 * (self.rttvar_us / 4)).saturating_add(diff / 4);
            self.srtt_us = (7 * (self.srtt_us / 8)).saturating_add(r / 8);
        }
        self.samples = self.samples.saturating_add(1);
    }

    /// The smoothed RTT plus four deviations, once a sample was seen.
    pub fn estimate(&self) -> Option<Duration> {
        (self.samples > 0).then(|| {
            Duration::from_micros(
                self.srtt_us
                    .saturating_add(self.rttvar_us.saturating_mul(4)),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn adapts_to_rtt_doubles_and_stays_bounded() {
        let b = Backoff::default();
        assert_eq!(b.initial(None), Duration::from_millis(500));
        assert_eq!(b.initial(Some(Duration::from_millis(1))), b.min);
        assert_eq!(
            b.initial(Some(Duration::from_millis(30))),
            Duration::from_millis(120)
        );
        assert_eq!(b.initial(Some(Duration::from_secs(60))), b.max);
        assert_eq!(
            b.next(Duration::from_millis(120)),
            Duration::from_millis(240)
        );
        assert_eq!(b.next(Duration::from_secs(8)), b.max);
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            let d = Duration::from_millis(100);
            let j = b.jittered(d, &mut rng);
            assert!(j >= d && j <= Duration::from_millis(120), "{j:?}");
            assert!(b.jittered(b.max, &mut rng) == b.max);
        }
    }

    #[test]
    fn rtt_estimator_smooths() {
        let mut e = RttEstimator::default();
        assert_eq!(e.estimate(), None);
        e.sample(Duration::from_millis(10));
        assert_eq!(e.estimate(), Some(Duration::from_millis(30)));
        for _ in 0..100 {
            e.sample(Duration::from_millis(10));
        }
        let est = e.estimate().unwrap();
        assert!(
            est >= Duration::from_millis(10) && est < Duration::from_millis(12),
            "{est:?}"
        );
    }
}
