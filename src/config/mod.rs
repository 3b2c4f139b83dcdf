//! The configuration of one node, read from a TOML file (`node.toml`).
//!
//! Every key is optional and has a documented default (see
//! `docs/configuration.md`); unknown keys are refused so that a typo never
//! silently leaves a setting at its default. Errors name the file and the key.
//!
//! ```toml
//! key = "certs/alpha.key"
//! listen = "0.0.0.0:7700"
//! advertise = "10.0.0.1:7700"
//! seeds = ["10.0.0.2:7700"]
//!
//! [membership]
//! fanout = 4
//! ```
//!
//! Relative paths in a file (`key`, `cert`, `roster`, `data_dir`, and their
//! defaults) are relative to the directory holding the file, so a node
//! behaves the same whatever directory it is started from. Without a file,
//! they are relative to the working directory.

mod addr;

use crate::store::bounded::{BoundedReadError, read_bounded_text};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use addr::{ADMIN_OFF, AdminAddr, AdminAddrError, SeedAddr, SeedAddrError};

/// Default `key`: the cluster's private key.
pub const DEFAULT_KEY: &str = "certs/node.key";
/// Default `listen`: the QUIC (UDP) address the node listens on.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7700));
/// Default `roster`: the genesis roster file.
pub const DEFAULT_ROSTER: &str = "roster.toml";
/// Default `data_dir`: durable state and vote logs.
pub const DEFAULT_DATA_DIR: &str = "data";
/// Default `admin`: the admin HTTP endpoint, on loopback only.
pub const DEFAULT_ADMIN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7800));

/// Default `membership.gossip_interval_ms`.
pub const DEFAULT_GOSSIP_INTERVAL_MS: u64 = 500;
/// Default `membership.fanout`.
pub const DEFAULT_FANOUT: usize = 3;
/// Default `membership.phi_threshold`.
pub const DEFAULT_PHI_THRESHOLD: f64 = 8.0;
/// Default `membership.suspect_timeout_ms`.
pub const DEFAULT_SUSPECT_TIMEOUT_MS: u64 = 2_000;
/// Default `membership.dead_ttl_ms`.
pub const DEFAULT_DEAD_TTL_MS: u64 = 60_000;
/// Default `membership.max_links`.
pub const DEFAULT_MAX_LINKS: usize = 8;

/// Default `transport.keep_alive_ms`.
pub const DEFAULT_KEEP_ALIVE_MS: u64 = 1_000;
/// Default `transport.idle_timeout_ms`.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 5_000;
/// Default `transport.max_frame_bytes` (1 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Default `transport.connect_timeout_ms`.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Smallest accepted `transport.max_frame_bytes`: a node record or a
/// certificate must fit in one frame.
pub const MIN_FRAME_BYTES: usize = 4 * 1024;
/// Largest accepted `transport.max_frame_bytes`: a peer may make us allocate
/// this much per frame.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;
/// Largest accepted duration for any `*_ms` key (30 days): larger values
/// are typos, and would overflow when added to a clock reading.
pub const MAX_DURATION_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// Largest accepted `membership.max_links`.
pub const MAX_LINKS: usize = 1024;
/// Most entries of `membership.allowed_peers`.
pub const MAX_ALLOWED_PEERS: usize = 8192;
/// Smallest accepted `membership.phi_threshold`.
pub const MIN_PHI_THRESHOLD: f64 = 1.0;
/// Largest accepted `membership.phi_threshold` (the membership core takes
/// a whole number from 1 to 20).
pub const MAX_PHI_THRESHOLD: f64 = 20.0;
/// A config file larger than this is refused before parsing.
pub const MAX_CONFIG_FILE_LEN: u64 = 1024 * 1024;

/// Why a configuration cannot be loaded or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading the file failed.
    #[error("cannot read config file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than any plausible config file.
    #[error("config file {} is {len} bytes, larger than the {MAX_CONFIG_FILE_LEN}-byte limit", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The content of a file is invalid.
    #[error("invalid config file {}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        #[source]
        source: Box<ConfigError>,
    },
    /// The text is not TOML of the expected shape (syntax, an unknown key, a
    /// value of the wrong type); the message shows the line and the key.
    #[error("not a valid node config")]
    Toml(#[source] toml::de::Error),
    /// An address key is not `IP:PORT`.
    #[error("{key} = {value:?} is not an IP:PORT address")]
    BadAddr {
        /// The key (or flag) that holds it.
        key: String,
        /// The value given.
        value: String,
        /// The parse error.
        #[source]
        source: std::net::AddrParseError,
    },
    /// `admin` is neither `IP:PORT` nor `off`.
    #[error("invalid {key}")]
    BadAdmin {
        /// The key (or flag) that holds it.
        key: String,
        /// The parse error.
        #[source]
        source: AdminAddrError,
    },
    /// A seed is not a usable `HOST:PORT` or `ID@HOST:PORT`.
    #[error("{key} = {value:?} is not a usable seed")]
    BadSeed {
        /// The key (`seeds[INDEX]`) or flag that holds it.
        key: String,
        /// The value given.
        value: String,
        /// Why it is refused.
        #[source]
        source: SeedAddrError,
    },
    /// `advertise` cannot be dialed by other clusters.
    #[error("{key} = {addr} cannot be dialed by other clusters: {reason}")]
    UnusableAdvertise {
        /// The key (or flag) that holds it.
        key: String,
        /// The address.
        addr: SocketAddr,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A path key is empty.
    #[error("{key} must not be an empty path")]
    EmptyPath {
        /// The key.
        key: &'static str,
    },
    /// A key that must be positive is zero.
    #[error("{key} must be greater than 0")]
    Zero {
        /// The key.
        key: &'static str,
    },
    /// A number is outside its accepted range.
    #[error("{key} = {value} is out of range ({min} to {max})")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// The smallest accepted value.
        min: String,
        /// The largest accepted value.
        max: String,
    },
    /// QUIC keep-alives must be sent more often than the idle timeout, or
    /// every quiet link would be closed.
    #[error(
        "transport.keep_alive_ms ({keep_alive_ms}) must be less than transport.idle_timeout_ms ({idle_timeout_ms})"
    )]
    KeepAliveNotBelowIdle {
        /// `transport.keep_alive_ms`.
        keep_alive_ms: u64,
        /// `transport.idle_timeout_ms`.
        idle_timeout_ms: u64,
    },
    /// Gossip goes over links, so a fanout above the link bound is
    /// unreachable.
    #[error("membership.fanout ({fanout}) must not exceed membership.max_links ({max_links})")]
    FanoutAboveMaxLinks {
        /// `membership.fanout`.
        fanout: usize,
        /// `membership.max_links`.
        max_links: usize,
    },
    /// `membership.allowed_peers` is set but empty: the node could never link.
    #[error(
        "membership.allowed_peers is empty: the node could link with nobody (omit the key to allow every member)"
    )]
    EmptyAllowedPeers,
    /// An entry of `membership.allowed_peers` names no cluster.
    #[error("membership.allowed_peers entry {value:?}: {reason}")]
    BadAllowedPeer {
        /// The entry.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A suspect must get at least one gossip round to refute the suspicion.
    #[error(
        "membership.suspect_timeout_ms ({suspect_timeout_ms}) must be at least membership.gossip_interval_ms ({gossip_interval_ms})"
    )]
    SuspectTimeoutBelowGossipInterval {
        /// `membership.suspect_timeout_ms`.
        suspect_timeout_ms: u64,
        /// `membership.gossip_interval_ms`.
        gossip_interval_ms: u64,
    },
}

/// The log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// The `[membership]` table: gossip and failure detection.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MembershipConfig {
    /// Milliseconds between two anti-entropy gossip rounds (and heartbeats).
    pub gossip_interval_ms: u64,
    /// Peers a new or changed node record is pushed to (at most `max_links`).
    pub fanout: usize,
    /// Phi-accrual level above which a silent peer becomes suspect: a whole
    /// number from [`MIN_PHI_THRESHOLD`] to [`MAX_PHI_THRESHOLD`].
    pub phi_threshold: f64,
    /// Milliseconds a suspect has to show it is alive (a newer heartbeat or
    /// incarnation) before it is declared dead.
    pub suspect_timeout_ms: u64,
    /// Milliseconds a dead member's record is kept (and not re-gossiped)
    /// before it is removed.
    pub dead_ttl_ms: u64,
    /// The mesh degree: how many links the node keeps, dialing more below
    /// it and pruning the slowest above it.
    pub max_links: usize,
    /// The link policy: when set, links are dialed and accepted only with
    /// these clusters (roster names or 64-hex cluster ids); every other
    /// cluster is reached through routing. `None`: any member.
    pub allowed_peers: Option<Vec<String>>,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            gossip_interval_ms: DEFAULT_GOSSIP_INTERVAL_MS,
            fanout: DEFAULT_FANOUT,
            phi_threshold: DEFAULT_PHI_THRESHOLD,
            suspect_timeout_ms: DEFAULT_SUSPECT_TIMEOUT_MS,
            dead_ttl_ms: DEFAULT_DEAD_TTL_MS,
            max_links: DEFAULT_MAX_LINKS,
            allowed_peers: None,
        }
    }
}

impl MembershipConfig {
    /// `gossip_interval_ms` as a duration.
    pub fn gossip_interval(&self) -> Duration {
        Duration::from_millis(self.gossip_interval_ms)
    }

    /// `suspect_timeout_ms` as a duration.
    pub fn suspect_timeout(&self) -> Duration {
        Duration::from_millis(self.suspect_timeout_ms)
    }

    /// `dead_ttl_ms` as a duration.
    pub fn dead_ttl(&self) -> Duration {
        Duration::from_millis(self.dead_ttl_ms)
    }

    /// `allowed_peers` as cluster ids: each entry is a 64-hex cluster id,
    /// or else the name of a member of `roster`. `None`: any member.
    pub fn resolve_allowed_peers(
        &self,
        roster: &crate::proto::roster::Roster,
    ) -> Result<Option<std::collections::BTreeSet<crate::proto::ClusterId>>, ConfigError> {
        let Some(peers) = &self.allowed_peers else {
            return Ok(None);
        };
        let mut out = std::collections::BTreeSet::new();
        for p in peers {
            let p = p.trim();
            let id = match p.parse::<crate::proto::ClusterId>() {
                Ok(id) => id,
                Err(_) => roster.by_name(p).map(|m| m.id).ok_or_else(|| {
                    ConfigError::BadAllowedPeer {
                        value: p.to_owned(),
                        reason: format!(
                            "neither a 64-hex cluster id nor the name of a member of network {:?}",
                            roster.network_name()
                        ),
                    }
                })?,
            };
            out.insert(id);
        }
        Ok(Some(out))
    }

    /// Checks every key and their relations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_ms("membership.gossip_interval_ms", self.gossip_interval_ms)?;
        check_ms("membership.suspect_timeout_ms", self.suspect_timeout_ms)?;
        check_ms("membership.dead_ttl_ms", self.dead_ttl_ms)?;
        if self.fanout == 0 {
            return Err(ConfigError::Zero {
                key: "membership.fanout",
            });
        }
        if self.max_links == 0 {
            return Err(ConfigError::Zero {
                key: "membership.max_links",
            });
        }
        if self.max_links > MAX_LINKS {
            return Err(ConfigError::OutOfRange {
                key: "membership.max_links",
                value: self.max_links.to_string(),
                min: "1".into(),
                max: MAX_LINKS.to_string(),
            });
        }
        if self.fanout > self.max_links {
            return Err(ConfigError::FanoutAboveMaxLinks {
                fanout: self.fanout,
                max_links: self.max_links,
            });
        }
        // `contains` is false for NaN; `fract` refuses 8.5, which the
        // membership core (integer thresholds) could not honour.
        if !((MIN_PHI_THRESHOLD..=MAX_PHI_THRESHOLD).contains(&self.phi_threshold)
            && self.phi_threshold.fract() == 0.0)
        {
            return Err(ConfigError::OutOfRange {
                key: "membership.phi_threshold",
                value: self.phi_threshold.to_string(),
                min: format!("{MIN_PHI_THRESHOLD:.1}"),
                max: format!("{MAX_PHI_THRESHOLD:.1} (a whole number)"),
            });
        }
        if let Some(peers) = &self.allowed_peers {
            if peers.is_empty() {
                return Err(ConfigError::EmptyAllowedPeers);
            }
            if peers.len() > MAX_ALLOWED_PEERS {
                return Err(ConfigError::OutOfRange {
                    key: "membership.allowed_peers",
                    value: format!("{} entries", peers.len()),
                    min: "1".into(),
                    max: MAX_ALLOWED_PEERS.to_string(),
                });
            }
            if let Some(bad) = peers.iter().find(|p| p.trim().is_empty()) {
                return Err(ConfigError::BadAllowedPeer {
                    value: bad.clone(),
                    reason: "empty entry".into(),
                });
            }
        }
        if self.suspect_timeout_ms < self.gossip_interval_ms {
            return Err(ConfigError::SuspectTimeoutBelowGossipInterval {
                suspect_timeout_ms: self.suspect_timeout_ms,
                gossip_interval_ms: self.gossip_interval_ms,
            });
        }
        Ok(())
    }
}

/// The `[transport]` table: QUIC connections and framing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    /// Milliseconds between QUIC keep-alive packets on a quiet link.
    pub keep_alive_ms: u64,
    /// Milliseconds without any packet after which a link is closed.
    pub idle_timeout_ms: u64,
    /// Largest frame accepted or sent, in bytes (checked before allocating).
    pub max_frame_bytes: usize,
    /// Milliseconds a dial (QUIC handshake included) may take.
    pub connect_timeout_ms: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            keep_alive_ms: DEFAULT_KEEP_ALIVE_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
        }
    }
}

impl TransportConfig {
    /// `keep_alive_ms` as a duration.
    pub fn keep_alive(&self) -> Duration {
        Duration::from_millis(self.keep_alive_ms)
    }

    /// `idle_timeout_ms` as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// `connect_timeout_ms` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// Checks every key and their relations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_ms("transport.keep_alive_ms", self.keep_alive_ms)?;
        check_ms("transport.idle_timeout_ms", self.idle_timeout_ms)?;
        check_ms("transport.connect_timeout_ms", self.connect_timeout_ms)?;
        if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&self.max_frame_bytes) {
            return Err(ConfigError::OutOfRange {
                key: "transport.max_frame_bytes",
                value: self.max_frame_bytes.to_string(),
                min: MIN_FRAME_BYTES.to_string(),
                max: MAX_FRAME_BYTES.to_string(),
            });
        }
        if self.keep_alive_ms >= self.idle_timeout_ms {
            return Err(ConfigError::KeepAliveNotBelowIdle {
                keep_alive_ms: self.keep_alive_ms,
                idle_timeout_ms: self.idle_timeout_ms,
            });
        }
        Ok(())
    }
}

/// A duration key: positive and at most [`MAX_DURATION_MS`].
fn check_ms(key: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::Zero { key });
    }
    if value > MAX_DURATION_MS {
        return Err(ConfigError::OutOfRange {
            key,
            value: value.to_string(),
            min: "1".into(),
            max: MAX_DURATION_MS.to_string(),
        });
    }
    Ok(())
}

/// The configuration of one node. See `docs/configuration.md` for every key.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// `key`: the cluster's PKCS#8 PEM private key.
    pub key: PathBuf,
    /// `cert`: the certificate made from `key`; `None` means the key path
    /// with the extension `.crt` (see [`NodeConfig::cert_path`]).
    pub cert: Option<PathBuf>,
    /// `listen`: the QUIC (UDP) address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// `advertise`: the address other clusters dial, when it differs from
    /// `listen` (NAT, `0.0.0.0`, port 0).
    pub advertise: Option<SocketAddr>,
    /// `seeds`: clusters to dial at start, and again whenever every link is
    /// lost.
    pub seeds: Vec<SeedAddr>,
    /// `roster`: the genesis roster file (`roster.toml`).
    pub roster: PathBuf,
    /// `data_dir`: durable state and vote logs.
    pub data_dir: PathBuf,
    /// `admin`: the admin HTTP endpoint's address; `None` disables it.
    pub admin: Option<SocketAddr>,
    /// `open`: admit clusters that are not in the roster, as weight-0
    /// observers.
    pub open: bool,
    /// `log_format`: human-readable or JSON logs.
    pub log_format: LogFormat,
    /// `[membership]`: gossip and failure detection.
    pub membership: MembershipConfig,
    /// `[transport]`: QUIC connections and framing.
    pub transport: TransportConfig,
}

impl Default for NodeConfig {
    /// Every key at its documented default.
    fn default() -> Self {
        NodeConfig {
            key: PathBuf::from(DEFAULT_KEY),
            cert: None,
            listen: DEFAULT_LISTEN,
            advertise: None,
            seeds: Vec::new(),
            roster: PathBuf::from(DEFAULT_ROSTER),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            admin: Some(DEFAULT_ADMIN),
            open: false,
            log_format: LogFormat::Human,
            membership: MembershipConfig::default(),
            transport: TransportConfig::default(),
        }
    }
}

/// The file layout. Address keys are read as strings and parsed here, so
/// that errors name the key.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    key: Option<PathBuf>,
    cert: Option<PathBuf>,
    listen: Option<String>,
    advertise: Option<String>,
    #[serde(default)]
    seeds: Vec<String>,
    roster: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    admin: Option<String>,
    open: Option<bool>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    membership: MembershipConfig,
    #[serde(default)]
    transport: TransportConfig,
}

impl NodeConfig {
    /// Reads and validates a config file. Relative paths in it, and the
    /// default paths, are taken relative to the file's directory. Errors name
    /// the file, and the key when one is at fault.
    ///
    /// Seeds given as host names are resolved now (this may block on DNS).
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = read_bounded_text(path, MAX_CONFIG_FILE_LEN).map_err(|e| match e {
            BoundedReadError::Io(source) => ConfigError::Io {
                path: path.to_owned(),
                source,
            },
            BoundedReadError::TooLarge { len } => ConfigError::TooLarge {
                path: path.to_owned(),
                len,
            },
        })?;
        let in_file = |e| ConfigError::InFile {
            path: path.to_owned(),
            source: Box::new(e),
        };
        let mut config = NodeConfig::from_toml_str(&text).map_err(in_file)?;
        if let Some(base) = path.parent() {
            config.resolve_paths_under(base);
        }
        Ok(config)
    }

    /// Parses and validates the text of a config file. Paths are kept as
    /// written (relative to the working directory).
    pub fn from_toml_str(text: &str) -> Result<NodeConfig, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(ConfigError::Toml)?;
        let defaults = NodeConfig::default();
        let mut config = NodeConfig {
            key: file.key.unwrap_or(defaults.key),
            cert: file.cert,
            listen: match &file.listen {
                Some(v) => parse_addr("listen", v)?,
                None => defaults.listen,
            },
            advertise: file
                .advertise
                .as_deref()
                .map(|v| parse_addr("advertise", v))
                .transpose()?,
            seeds: Vec::new(),
            roster: file.roster.unwrap_or(defaults.roster),
            data_dir: file.data_dir.unwrap_or(defaults.data_dir),
            admin: match &file.admin {
                Some(v) => parse_admin("admin", v)?,
                None => defaults.admin,
            },
            open: file.open.unwrap_or(defaults.open),
            log_format: file.log_format.unwrap_or(defaults.log_format),
            membership: file.membership,
            transport: file.transport,
        };
        for (i, seed) in file.seeds.iter().enumerate() {
            config.add_seed(parse_seed(&format!("seeds[{i}]"), seed)?);
        }
        config.validate()?;
        Ok(config)
    }

    /// The certificate path: `cert`, or else `key` with the extension `.crt`.
    pub fn cert_path(&self) -> PathBuf {
        match &self.cert {
            Some(cert) => cert.clone(),
            None => self.key.with_extension("crt"),
        }
    }

    /// Adds a seed unless an identical one is already there.
    pub fn add_seed(&mut self, seed: SeedAddr) {
        if !self.seeds.contains(&seed) {
            self.seeds.push(seed);
        }
    }

    /// Makes the relative paths (`key`, `cert`, `roster`, `data_dir`)
    /// relative to `base` instead of the working directory.
    pub fn resolve_paths_under(&mut self, base: &Path) {
        let under = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        under(&mut self.key);
        if let Some(cert) = &mut self.cert {
            under(cert);
        }
        under(&mut self.roster);
        under(&mut self.data_dir);
    }

    /// Checks every key and their relations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, path) in [
            ("key", Some(&self.key)),
            ("cert", self.cert.as_ref()),
            ("roster", Some(&self.roster)),
            ("data_dir", Some(&self.data_dir)),
        ] {
            if path.is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(ConfigError::EmptyPath { key });
            }
        }
        if let Some(addr) = self.advertise {
            check_advertise("advertise", addr)?;
        }
        for (i, seed) in self.seeds.iter().enumerate() {
            seed.check().map_err(|source| ConfigError::BadSeed {
                key: format!("seeds[{i}]"),
                value: seed.to_string(),
                source,
            })?;
        }
        self.membership.validate()?;
        self.transport.validate()
    }
}

/// Parses an `IP:PORT` value of `key` (a config key or a flag).
pub fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|source| ConfigError::BadAddr {
        key: key.to_owned(),
        value: value.to_owned(),
        source,
    })
}

/// Parses an admin setting of `key`: `IP:PORT`, or `off` (`None`).
pub fn parse_admin(key: &str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    value
        .parse::<AdminAddr>()
        .map(|a| a.0)
        .map_err(|source| ConfigError::BadAdmin {
            key: key.to_owned(),
            source,
        })
}

/// Parses a seed of `key` (a config key or a flag), resolving host names.
pub fn parse_seed(key: &str, value: &str) -> Result<SeedAddr, ConfigError> {
    SeedAddr::parse(value).map_err(|source| ConfigError::BadSeed {
        key: key.to_owned(),
        value: value.to_owned(),
        source,
    })
}

/// Checks that an advertised address can be dialed by other clusters.
pub fn check_advertise(key: &str, addr: SocketAddr) -> Result<(), ConfigError> {
    let reason = if addr.ip().is_unspecified() {
        "the unspecified address cannot be dialed; give this host's address"
    } else if addr.port() == 0 {
        "port 0 cannot be dialed; give the port the node listens on"
    } else {
        return Ok(());
    };
    Err(ConfigError::UnusableAdvertise {
        key: key.to_owned(),
        addr,
        reason,
    })
}

#[cfg(test)]
mod tests;
