//! Failure detection: a phi-accrual detector over heartbeat arrival times
//! (Hayashibara et al.; the variant of Akka and chitchat), plus the
//! connection state reported by the transport, drives each member through
//! Alive → Suspect → Dead.
//!
//! Phi is computed with integers only. Inter-arrival times are modelled as a
//! normal distribution (mean and standard deviation over a sliding window,
//! the deviation floored at `min_std_dev`). With the logistic approximation
//! of the normal CDF used by Akka, `phi >= k` exactly when the time since the
//! last arrival is at least `mean + y_k · std`, where `y_k` is a constant;
//! [`PHI_SIGMA_MILLI`] tabulates `y_k` in thousandths for k = 1..=20.
//!
//! Rules, checked every gossip round:
//! - Alive → Suspect when phi reaches the threshold, when the heartbeat has
//!   not advanced for `max_silence`, or when the transport lost our direct
//!   connection to the member unexpectedly;
//! - Suspect → Alive as soon as a newer heartbeat arrives;
//! - Suspect → Dead after `suspect_timeout` without a newer heartbeat.

use std::collections::VecDeque;

use super::config::MembershipConfig;
use crate::proto::time::{Millis, duration_ms};

/// `y_k · 1000` such that phi ≥ k ⇔ elapsed ≥ mean + y_k · std, for k = 1..=20
/// (index k − 1). Computed offline from Akka's approximation
/// `phi(y) = -log10(e / (1 + e))`, `e = exp(-y (1.5976 + 0.070566 y²))`.
pub const PHI_SIGMA_MILLI: [u64; 20] = [
    1282, 2323, 3059, 3638, 4119, 4533, 4898, 5226, 5524, 5799, 6054, 6292, 6516, 6728, 6928, 7120,
    7302, 7477, 7645, 7807,
];

/// Inter-arrival samples are clamped to one hour so sums of squares cannot overflow.
const MAX_INTERVAL_MS: u64 = 3_600_000;
/// Hard cap on the window, whatever the configuration says.
const MAX_WINDOW: usize = 10_000;

/// A member's liveness as seen locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum MemberState {
    /// Heartbeats arrive on time.
    Alive,
    /// Heartbeats are late (or our connection to it dropped); not yet dead.
    Suspect,
    /// Declared dead; kept as a tombstone until the TTL, never gossiped.
    Dead,
    /// Announced a graceful departure; gossiped until the TTL.
    Left,
}

impl std::fmt::Display for MemberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        })
    }
}

/// Sliding-window statistics of heartbeat inter-arrival times.
#[derive(Debug, Clone)]
pub struct PhiDetector {
    intervals: VecDeque<u64>,
    sum: u128,
    sum_sq: u128,
    last: Option<Millis>,
    window: usize,
}

impl PhiDetector {
    /// An empty detector keeping `window` samples.
    pub fn new(window: usize) -> Self {
        let window = window.clamp(2, MAX_WINDOW);
        PhiDetector {
            intervals: VecDeque::with_capacity(window.min(128)),
            sum: 0,
            sum_sq: 0,
            last: None,
            window,
        }
    }

    /// Records a heartbeat arrival at `now`.
    pub fn heartbeat(&mut self, now: Millis) {
        if let Some(last) = self.last {
            let interval = now.millis_since(last).min(MAX_INTERVAL_MS);
            if self.intervals.len() == self.window
                && let Some(old) = self.intervals.pop_front()
            {
                self.sum -= u128::from(old);
                self.sum_sq -= u128::from(old) * u128::from(old);
            }
            self.intervals.push_back(interval);
            self.sum += u128::from(interval);
            self.sum_sq += u128::from(interval) * u128::from(interval);
        }
        self.last = Some(now);
    }

    /// When the last heartbeat arrived.
    pub fn last_arrival(&self) -> Option<Millis> {
        self.last
    }

    /// Number of inter-arrival samples held.
    pub fn samples(&self) -> usize {
        self.intervals.len()
    }

    /// `(mean, std)` in milliseconds; with fewer than two samples the mean is
    /// `prior_mean_ms`. The deviation is floored at `min_std_ms`.
    pub fn stats(&self, prior_mean_ms: u64, min_std_ms: u64) -> (u64, u64) {
        let n = self.intervals.len() as u128;
        if n < 2 {
            return (prior_mean_ms, min_std_ms.max(1));
        }
        let mean = self.sum / n;
        let var = (n * self.sum_sq).saturating_sub(self.sum * self.sum) / (n * n);
        let std = u64::try_from(var.isqrt()).unwrap_or(u64::MAX);
        (
            u64::try_from(mean).unwrap_or(u64::MAX),
            std.max(min_std_ms).max(1),
        )
    }

    /// Phi (rounded down, 0..=20) at `now`.
    pub fn phi(&self, now: Millis, prior_mean_ms: u64, min_std_ms: u64) -> u32 {
        let Some(last) = self.last else { return 0 };
        let elapsed = now.millis_since(last);
        let (mean, std) = self.stats(prior_mean_ms, min_std_ms);
        let Some(late) = elapsed.checked_sub(mean) else {
            return 0;
        };
        let late = u128::from(late) * 1000;
        PHI_SIGMA_MILLI
            .iter()
            .take_while(|&&y| late >= u128::from(y) * u128::from(std))
            .count() as u32
    }

    /// Milliseconds after the last arrival at which phi reaches `threshold`.
    pub fn suspicion_delay(&self, threshold: u32, prior_mean_ms: u64, min_std_ms: u64) -> u64 {
        let (mean, std) = self.stats(prior_mean_ms, min_std_ms);
        let idx = (threshold.max(1) as usize - 1).min(PHI_SIGMA_MILLI.len() - 1);
        let y = u128::from(PHI_SIGMA_MILLI[idx]);
        let late = (y * u128::from(std)).div_ceil(1000);
        mean.saturating_add(u64::try_from(late).unwrap_or(u64::MAX))
    }
}

/// A state change worth an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Alive → Suspect.
    Suspected,
    /// Suspect → Alive.
    Recovered,
    /// Suspect → Dead.
    Died,
}

/// One member's failure-detection state.
#[derive(Debug, Clone)]
pub struct Liveness {
    state: MemberState,
    since: Millis,
    detector: PhiDetector,
    link_lost: bool,
}

impl Liveness {
    /// An alive member whose first heartbeat arrived at `now`.
    pub fn alive(now: Millis, window: usize) -> Self {
        let mut detector = PhiDetector::new(window);
        detector.heartbeat(now);
        Liveness {
            state: MemberState::Alive,
            since: now,
            detector,
            link_lost: false,
        }
    }

    /// A member that announced its departure at `now`.
    pub fn left(now: Millis, window: usize) -> Self {
        Liveness {
            state: MemberState::Left,
            since: now,
            detector: PhiDetector::new(window),
            link_lost: false,
        }
    }

    /// The current state.
    pub fn state(&self) -> MemberState {
        self.state
    }

    /// When the current state was entered.
    pub fn since(&self) -> Millis {
        self.since
    }

    /// The heartbeat statistics.
    pub fn detector(&self) -> &PhiDetector {
        &self.detector
    }

    /// Phi at `now` under `cfg`.
    pub fn phi(&self, now: Millis, cfg: &MembershipConfig) -> u32 {
        self.detector.phi(
            now,
            duration_ms(cfg.heartbeat_interval),
            duration_ms(cfg.min_std_dev),
        )
    }

    /// A newer heartbeat (same incarnation) arrived at `now`.
    pub fn heartbeat(&mut self, now: Millis) -> Option<Transition> {
        self.detector.heartbeat(now);
        self.link_lost = false;
        if self.state == MemberState::Suspect {
            self.state = MemberState::Alive;
            self.since = now;
            return Some(Transition::Recovered);
        }
        None
    }

    /// A connection to the member finished its handshake again: the loss of
    /// the previous one is no longer a reason for suspicion (only late
    /// heartbeats are).
    pub fn link_restored(&mut self) {
        self.link_lost = false;
    }

    /// The transport lost our direct connection to the member unexpectedly.
    pub fn link_lost(&mut self) {
        if matches!(self.state, MemberState::Alive | MemberState::Suspect) {
            self.link_lost = true;
        }
    }

    fn suspicious(&self, now: Millis, cfg: &MembershipConfig) -> bool {
        if self.link_lost {
            return true;
        }
        let Some(last) = self.detector.last_arrival() else {
            return true;
        };
        let delay = self
            .detector
            .suspicion_delay(
                cfg.phi_threshold,
                duration_ms(cfg.heartbeat_interval),
                duration_ms(cfg.min_std_dev),
            )
            .min(duration_ms(cfg.max_silence));
        now.millis_since(last) >= delay
    }

    /// Applies the rules of the module docs at `now`.
    pub fn check(&mut self, now: Millis, cfg: &MembershipConfig) -> Option<Transition> {
        match self.state {
            MemberState::Alive if self.suspicious(now, cfg) => {
                self.state = MemberState::Suspect;
                self.since = now;
                Some(Transition::Suspected)
            }
            MemberState::Suspect if !self.suspicious(now, cfg) => {
                self.state = MemberState::Alive;
                self.since = now;
                Some(Transition::Recovered)
            }
            MemberState::Suspect if now.since(self.since) >= cfg.suspect_timeout => {
                self.state = MemberState::Dead;
                self.since = now;
                Some(Transition::Died)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> MembershipConfig {
        MembershipConfig::default()
    }

    #[test]
    fn phi_grows_with_lateness_and_matches_the_table() {
        let mut d = PhiDetector::new(100);
        for i in 0..50 {
            d.heartbeat(Millis(i * 1000));
        }
        let last = Millis(49_000);
        // Perfectly regular: std is the floor (500 ms), mean 1000 ms.
        assert_eq!(d.stats(1000, 500), (1000, 500));
        assert_eq!(d.phi(last + Duration::from_millis(900), 1000, 500), 0);
        // phi 8 needs 1000 + 5.226 × 500 = 3613 ms.
        assert_eq!(d.suspicion_delay(8, 1000, 500), 3613);
        assert_eq!(d.phi(last + Duration::from_millis(3612), 1000, 500), 7);
        assert_eq!(d.phi(last + Duration::from_millis(3613), 1000, 500), 8);
        assert_eq!(d.phi(last + Duration::from_secs(3600), 1000, 500), 20);
    }

    #[test]
    fn jittery_heartbeats_widen_the_margin() {
        let mut d = PhiDetector::new(100);
        d.heartbeat(Millis(0));
        let mut t = 0;
        for i in 0..40u64 {
            t += if i % 2 == 0 { 200 } else { 3800 };
            d.heartbeat(Millis(t));
        }
        let (mean, std) = d.stats(1000, 500);
        assert_eq!(mean, 2000);
        assert_eq!(std, 1800);
        assert!(d.suspicion_delay(8, 1000, 500) > 10_000);
    }

    #[test]
    fn window_slides() {
        let mut d = PhiDetector::new(3);
        for t in [0, 10, 20, 30, 1030, 2030, 3030] {
            d.heartbeat(Millis(t));
        }
        assert_eq!(d.samples(), 3);
        assert_eq!(d.stats(0, 1).0, 1000);
    }

    #[test]
    fn alive_suspect_dead_and_recovery() {
        let c = cfg();
        let mut l = Liveness::alive(Millis(0), c.phi_window);
        for t in 1..=10 {
            assert_eq!(l.heartbeat(Millis(t * 1000)), None);
        }
        assert_eq!(l.check(Millis(11_000), &c), None);
        assert_eq!(l.check(Millis(13_700), &c), Some(Transition::Suspected));
        assert_eq!(l.state(), MemberState::Suspect);
        assert_eq!(l.heartbeat(Millis(14_000)), Some(Transition::Recovered));
        // The late heartbeat widened the deviation: phi now needs about
        // 5.8 s, so the 5 s silence cap decides.
        assert_eq!(l.check(Millis(18_999), &c), None);
        assert_eq!(l.check(Millis(19_000), &c), Some(Transition::Suspected));
        assert_eq!(l.check(Millis(20_999), &c), None);
        assert_eq!(l.check(Millis(21_000), &c), Some(Transition::Died));
        assert_eq!(l.state(), MemberState::Dead);
        assert_eq!(l.check(Millis(99_000), &c), None);
    }

    #[test]
    fn max_silence_caps_a_lenient_detector_and_link_loss_suspects() {
        let c = cfg();
        let mut l = Liveness::alive(Millis(0), c.phi_window);
        let mut t = 0;
        for i in 0..40u64 {
            t += if i % 2 == 0 { 200 } else { 3800 };
            l.heartbeat(Millis(t));
        }
        assert_eq!(l.check(Millis(t + 4_999), &c), None);
        assert_eq!(l.check(Millis(t + 5_000), &c), Some(Transition::Suspected));

        let mut l = Liveness::alive(Millis(0), c.phi_window);
        l.link_lost();
        assert_eq!(l.check(Millis(1), &c), Some(Transition::Suspected));
        assert_eq!(l.heartbeat(Millis(2)), Some(Transition::Recovered));
        assert_eq!(l.check(Millis(3), &c), None);
        l.link_lost();
        assert_eq!(l.check(Millis(4), &c), Some(Transition::Suspected));
        l.link_restored();
        assert_eq!(l.check(Millis(5), &c), Some(Transition::Recovered));
    }
}
