//! Time as the protocol core sees it: a monotonic millisecond count that the
//! caller passes in with every input. The core never reads a clock, so a
//! simulator can drive it with virtual time and a test can replay it exactly.
//!
//! Durations are plain [`std::time::Duration`] values; the helpers here
//! convert them to whole milliseconds with saturation, never overflow.

use std::time::Duration;

/// A point on the caller's monotonic clock, in milliseconds since an
/// arbitrary origin (process start, simulation start…).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Millis(pub u64);

impl Millis {
    /// The origin.
    pub const ZERO: Millis = Millis(0);

    /// `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Self {
        Millis(ms)
    }

    /// `s` seconds after the origin (saturating).
    pub const fn from_secs(s: u64) -> Self {
        Millis(s.saturating_mul(1000))
    }

    /// The instant `d` after the origin (saturating).
    pub fn from_duration(d: Duration) -> Self {
        Millis(duration_ms(d))
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time since the origin as a duration.
    pub const fn as_duration(self) -> Duration {
        Duration::from_millis(self.0)
    }

    /// `self + d`, saturating at the end of time.
    pub fn saturating_add(self, d: Duration) -> Millis {
        Millis(self.0.saturating_add(duration_ms(d)))
    }

    /// `self + d`, or `None` on overflow.
    pub fn checked_add(self, d: Duration) -> Option<Millis> {
        self.0.checked_add(duration_ms(d)).map(Millis)
    }

    /// `self - d`, saturating at the origin.
    pub fn saturating_sub(self, d: Duration) -> Millis {
        Millis(self.0.saturating_sub(duration_ms(d)))
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// Milliseconds elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub fn millis_since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::ops::Add<Duration> for Millis {
    type Output = Millis;
    /// Saturating addition.
    fn add(self, d: Duration) -> Millis {
        self.saturating_add(d)
    }
}

impl std::ops::Sub<Millis> for Millis {
    type Output = Duration;
    /// Saturating difference (zero if `rhs` is later).
    fn sub(self, rhs: Millis) -> Duration {
        self.since(rhs)
    }
}

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// Whole milliseconds in `d`, saturating at `u64::MAX`.
pub fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whole microseconds in `d`, saturating at `u64::MAX`.
pub fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_orders() {
        let t = Millis::from_secs(2);
        assert_eq!(t.as_millis(), 2000);
        assert_eq!(t + Duration::from_millis(5), Millis(2005));
        assert_eq!(Millis(u64::MAX) + Duration::from_secs(1), Millis(u64::MAX));
        assert_eq!(Millis(u64::MAX).checked_add(Duration::from_millis(1)), None);
        assert_eq!(t.saturating_sub(Duration::from_secs(9)), Millis::ZERO);
        assert_eq!(Millis(10) - Millis(25), Duration::ZERO);
        assert_eq!(Millis(25) - Millis(10), Duration::from_millis(15));
        assert_eq!(Millis(25).millis_since(Millis(10)), 15);
        assert!(Millis(1) < Millis(2));
        assert_eq!(Millis(61_042).to_string(), "61.042s");
        assert_eq!(duration_ms(Duration::MAX), u64::MAX);
        assert_eq!(duration_micros(Duration::from_millis(3)), 3000);
    }
}
