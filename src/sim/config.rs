//! Simulation settings.

use std::time::Duration;

/// One-way latency between two nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Latency {
    /// Every pair has the same one-way latency.
    Fixed(Duration),
    /// An explicit matrix of one-way latencies in milliseconds, indexed by
    /// node; pairs outside it get 1 ms.
    Matrix(Vec<Vec<u64>>),
    /// Each pair gets its own fixed one-way latency, drawn from the seed
    /// uniformly in `min..=max` (symmetric: a→b equals b→a).
    Uniform {
        /// Lowest one-way latency.
        min: Duration,
        /// Highest one-way latency.
        max: Duration,
    },
}

impl Latency {
    /// One-way latency between `a` and `b` in milliseconds (at least 1).
    pub fn one_way_ms(&self, seed: u64, a: usize, b: usize) -> u64 {
        let ms = |d: &Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        match self {
            Latency::Fixed(d) => ms(d),
            Latency::Matrix(m) => m
                .get(a)
                .and_then(|row| row.get(b))
                .copied()
                .unwrap_or(1)
                .max(1),
            Latency::Uniform { min, max } => {
                let (lo, hi) = (ms(min), ms(max).max(ms(min)));
                let (x, y) = (a.min(b) as u64, a.max(b) as u64);
                let h = splitmix64(seed ^ splitmix64(x ^ splitmix64(y)));
                lo + h % (hi - lo + 1)
            }
        }
    }
}

/// SplitMix64: a tiny deterministic mixer for per-pair latencies and per-node seeds.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// How the simulated network behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Seeds every random choice of the run (network and cores).
    pub seed: u64,
    /// One-way latency model. Default: uniform 5–60 ms per pair.
    pub latency: Latency,
    /// Frames lost, per thousand (the connection stays up). Default 0.
    pub loss_permille: u32,
    /// How long the transport takes to notice that a peer crashed or a
    /// partition cut a connection (QUIC idle timeout). Default 5 s.
    pub idle_timeout: Duration,
    /// How long a dial to an unreachable address takes to fail. Default 3 s.
    pub connect_timeout: Duration,
    /// Postcard-size every frame sent, for byte statistics. Default false.
    pub measure_bytes: bool,
    /// Encode and decode every frame, as the real transport does. Default false.
    pub wire_roundtrip: bool,
}

impl SimConfig {
    /// Defaults with the given seed.
    pub fn with_seed(seed: u64) -> Self {
        SimConfig {
            seed,
            ..SimConfig::default()
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            latency: Latency::Uniform {
                min: Duration::from_millis(5),
                max: Duration::from_millis(60),
            },
            loss_permille: 0,
            idle_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            measure_bytes: false,
            wire_roundtrip: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_symmetric_bounded_and_seeded() {
        let l = Latency::Uniform {
            min: Duration::from_millis(5),
            max: Duration::from_millis(60),
        };
        let mut distinct = std::collections::BTreeSet::new();
        for a in 0..30 {
            for b in 0..30 {
                let x = l.one_way_ms(7, a, b);
                assert_eq!(x, l.one_way_ms(7, b, a));
                assert!((5..=60).contains(&x));
                distinct.insert(x);
            }
        }
        assert!(distinct.len() > 30);
        assert_eq!(Latency::Fixed(Duration::ZERO).one_way_ms(0, 1, 2), 1);
        let m = Latency::Matrix(vec![vec![0, 40], vec![40, 0]]);
        assert_eq!(m.one_way_ms(0, 0, 1), 40);
        assert_eq!(m.one_way_ms(0, 5, 1), 1);
    }
}
