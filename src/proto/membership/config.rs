//! Tunables of the membership protocol, with documented defaults.
//!
//! The defaults target a real deployment of a handful to a few hundred
//! clusters: a join converges within a few gossip rounds (well under 5 s for
//! five clusters), and a killed cluster is declared dead by everyone within
//! [`MembershipConfig::detection_time`] (9 s) of its death.

use std::time::Duration;

use super::failure::PHI_SIGMA_MILLI;
use super::sigcache::DEFAULT_SIG_CACHE_CAPACITY;
use crate::proto::wire::{MAX_DIGEST_ENTRIES, MAX_FRAME_LEN};

/// Membership protocol settings. Every field has a default; see [`Default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipConfig {
    /// How often a node gossips (one anti-entropy round). Default 500 ms.
    pub gossip_interval: Duration,
    /// How often a node signs a heartbeat and pushes it to its links.
    /// Default 1 s (every second gossip round): liveness news every round
    /// would double the heartbeat traffic for little gain in detection time.
    pub heartbeat_interval: Duration,
    /// Peers a fresh record is pushed to (and relayed to). Default 3.
    pub fanout: usize,
    /// Peers sent our digest each gossip round. Default 1: a push-pull
    /// exchange with one random peer per round spreads a heartbeat to N
    /// clusters in about log3(N) rounds, and more digests per round mostly
    /// fetch the same heartbeats several times.
    pub sync_fanout: usize,
    /// Phi-accrual threshold above which a member becomes suspect, an
    /// integer in 1..=20. Default 8 (about 5.2 standard deviations late).
    pub phi_threshold: u32,
    /// Heartbeat inter-arrival samples kept per member. Default 100.
    pub phi_window: usize,
    /// Floor on the standard deviation of inter-arrival times, so that very
    /// regular heartbeats do not make the detector hair-triggered. Default 500 ms.
    pub min_std_dev: Duration,
    /// A member whose heartbeat has not advanced for this long is suspect
    /// whatever phi says. Default 5 s.
    pub max_silence: Duration,
    /// A suspect whose heartbeat still has not advanced after this long is
    /// declared dead. Default 2 s.
    pub suspect_timeout: Duration,
    /// Dead and departed members are kept (as tombstones, never gossiped for
    /// dead ones) for this long, then forgotten. Default 60 s.
    pub dead_ttl: Duration,
    /// Target number of links; below it a node dials more. Default 8.
    pub degree: usize,
    /// Above this many links a node prunes its worst ones. Default 12.
    pub max_degree: usize,
    /// Links kept at random regardless of RTT when pruning, so the mesh keeps
    /// long-range shortcuts (corrosion's RTT rings idea). Default 2.
    pub far_links: usize,
    /// A link younger than this is never pruned. Default 10 s.
    pub min_link_age: Duration,
    /// Above this many links, the excess is pruned as soon as it is older
    /// than `join_grace`, even if younger than `min_link_age`: a seed
    /// flooded by joiners lets each of them sync once, then sheds them.
    /// Default 64.
    pub max_links: usize,
    /// How long a link beyond `max_links` is kept (enough for the handshake
    /// and one anti-entropy exchange). Default 2 s.
    pub join_grace: Duration,
    /// Inbound connections are refused above this many links (a backstop;
    /// the transport should cap connections too). Default 1024.
    pub max_connections: usize,
    /// A dial or handshake not finished after this long is abandoned. Default 5 s.
    pub dial_timeout: Duration,
    /// After a failed dial the same cluster is not dialed again for this long. Default 5 s.
    pub dial_backoff: Duration,
    /// Most new dials started per gossip round. Default 3.
    pub max_dials_per_round: usize,
    /// While a node has no link at all, it re-dials its seeds this often. Default 2 s.
    pub seed_retry_interval: Duration,
    /// How often one dead member is probed (dialed), so that a healed
    /// partition reconnects by itself. Default 3 s.
    pub reconnect_interval: Duration,
    /// How long the address of a dead member is still probed after its
    /// tombstone expired, so long partitions heal too (Serf's reconnect
    /// timeout). Default 24 h.
    pub reconnect_ttl: Duration,
    /// How often one extra random member is dialed to discover lower-RTT
    /// links (the worst link is pruned once over `max_degree`). Default 30 s.
    pub explore_interval: Duration,
    /// Accept clusters that are not in the roster, as weight-0 observers. Default false.
    pub open: bool,
    /// Most members tracked (including tombstones). Default 8192.
    pub max_members: usize,
    /// Byte budget of the records in one gossip frame. Default 512 KiB.
    pub max_gossip_bytes: usize,
    /// Entries of the verified-signature cache. Default 16 384.
    pub sig_cache_capacity: usize,
    /// Which clusters may be linked at all (dialed or accepted). Default: any member.
    pub link_policy: crate::proto::topology::LinkPolicy,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            gossip_interval: Duration::from_millis(500),
            heartbeat_interval: Duration::from_secs(1),
            fanout: 3,
            sync_fanout: 1,
            phi_threshold: 8,
            phi_window: 100,
            min_std_dev: Duration::from_millis(500),
            max_silence: Duration::from_secs(5),
            suspect_timeout: Duration::from_secs(2),
            dead_ttl: Duration::from_secs(60),
            degree: 8,
            max_degree: 12,
            far_links: 2,
            min_link_age: Duration::from_secs(10),
            max_links: 64,
            join_grace: Duration::from_secs(2),
            max_connections: 1024,
            dial_timeout: Duration::from_secs(5),
            dial_backoff: Duration::from_secs(5),
            max_dials_per_round: 3,
            seed_retry_interval: Duration::from_secs(2),
            reconnect_interval: Duration::from_secs(3),
            reconnect_ttl: Duration::from_secs(24 * 3600),
            explore_interval: Duration::from_secs(30),
            open: false,
            max_members: MAX_DIGEST_ENTRIES,
            max_gossip_bytes: 512 * 1024,
            sig_cache_capacity: DEFAULT_SIG_CACHE_CAPACITY,
            link_policy: crate::proto::topology::LinkPolicy::default(),
        }
    }
}

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid membership config: {field} {reason}")]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

impl MembershipConfig {
    /// Checks that the settings can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ms = Duration::from_millis(1);
        for (field, d) in [
            ("gossip_interval", self.gossip_interval),
            ("heartbeat_interval", self.heartbeat_interval),
            ("min_std_dev", self.min_std_dev),
            ("dial_timeout", self.dial_timeout),
            ("seed_retry_interval", self.seed_retry_interval),
            ("reconnect_interval", self.reconnect_interval),
            ("explore_interval", self.explore_interval),
        ] {
            if d < ms {
                return Err(err(field, "must be at least 1 ms"));
            }
        }
        if self.fanout == 0 {
            return Err(err("fanout", "must be at least 1"));
        }
        if self.sync_fanout == 0 {
            return Err(err("sync_fanout", "must be at least 1"));
        }
        if self.phi_threshold == 0 || self.phi_threshold as usize > PHI_SIGMA_MILLI.len() {
            return Err(err(
                "phi_threshold",
                format!("must be in 1..={}", PHI_SIGMA_MILLI.len()),
            ));
        }
        if self.phi_window < 2 {
            return Err(err("phi_window", "must keep at least 2 samples"));
        }
        if self.max_silence <= self.heartbeat_interval {
            return Err(err("max_silence", "must exceed heartbeat_interval"));
        }
        if self.degree == 0 {
            return Err(err("degree", "must be at least 1"));
        }
        if self.max_degree < self.degree {
            return Err(err("max_degree", "must be at least degree"));
        }
        if self.far_links >= self.degree {
            return Err(err("far_links", "must be below degree"));
        }
        if self.max_links < self.max_degree {
            return Err(err("max_links", "must be at least max_degree"));
        }
        if self.max_connections < self.max_links {
            return Err(err("max_connections", "must be at least max_links"));
        }
        if self.max_dials_per_round == 0 {
            return Err(err("max_dials_per_round", "must be at least 1"));
        }
        if self.max_members < 2 || self.max_members > MAX_DIGEST_ENTRIES {
            return Err(err(
                "max_members",
                format!("must be in 2..={MAX_DIGEST_ENTRIES}"),
            ));
        }
        if self.max_gossip_bytes < 8 * 1024 || self.max_gossip_bytes > MAX_FRAME_LEN / 2 {
            return Err(err(
                "max_gossip_bytes",
                format!("must be in 8 KiB..={} bytes", MAX_FRAME_LEN / 2),
            ));
        }
        Ok(())
    }

    /// The longest a cluster stays "alive" in everyone's view after it dies:
    /// its last heartbeat reaches every observer within about one heartbeat
    /// interval (the propagation allowance), then `max_silence` of silence
    /// makes it suspect and `suspect_timeout` more makes it dead, each
    /// noticed at the next gossip round. Phi usually fires well before
    /// `max_silence` for neighbours, whose beats arrive first-hand and
    /// steadily. Defaults: 1 + 5 + 2 + 2×0.5 = 9 s.
    ///
    /// The allowance holds for neighbours (beats are pushed to every link)
    /// and, in the simulator, for meshes of up to a few hundred clusters;
    /// beyond that a beat needs more anti-entropy rounds to reach the far
    /// side (at N = 1000 the slowest observer took about 10 s).
    pub fn detection_time(&self) -> Duration {
        self.heartbeat_interval
            .saturating_add(self.max_silence)
            .saturating_add(self.suspect_timeout)
            .saturating_add(self.gossip_interval.saturating_mul(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_meet_the_deployment_targets() {
        let c = MembershipConfig::default();
        c.validate().unwrap();
        assert!(c.detection_time() <= Duration::from_secs(10));
        let bad = MembershipConfig {
            max_degree: 4,
            ..c.clone()
        };
        assert_eq!(bad.validate().unwrap_err().field, "max_degree");
        let bad = MembershipConfig {
            phi_threshold: 0,
            ..c.clone()
        };
        assert_eq!(bad.validate().unwrap_err().field, "phi_threshold");
        let bad = MembershipConfig {
            gossip_interval: Duration::ZERO,
            ..c
        };
        assert_eq!(bad.validate().unwrap_err().field, "gossip_interval");
    }
}
