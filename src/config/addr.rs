//! Addresses in the node configuration: seeds (`HOST:PORT` or
//! `ID@HOST:PORT`) and the admin endpoint (`IP:PORT` or `off`).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use crate::proto::ClusterId;
use crate::proto::bytes32::HexError;
use crate::proto::identity::IdentityError;

/// A seed to dial: a resolved address, and the cluster id to pin if the
/// operator gave one (`ID@HOST:PORT`).
///
/// Dialing a seed with an id fails the handshake unless the peer presents
/// that id; dialing a bare `HOST:PORT` learns the id from the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeedAddr {
    /// The address to dial.
    pub addr: SocketAddr,
    /// The expected cluster id of the peer, when pinned.
    pub id: Option<ClusterId>,
}

/// Why a seed string is not a usable seed.
#[derive(Debug, thiserror::Error)]
pub enum SeedAddrError {
    /// The string is empty.
    #[error("empty seed address")]
    Empty,
    /// The part before `@` is not 64 hex characters.
    #[error("invalid cluster id before '@'")]
    BadId(#[source] HexError),
    /// The cluster id is not a usable ed25519 public key.
    #[error("unusable cluster id before '@'")]
    UnusableId(#[source] IdentityError),
    /// There is no `:PORT` after the host.
    #[error("missing :PORT (expected HOST:PORT or ID@HOST:PORT)")]
    MissingPort,
    /// The port is not a number from 1 to 65535.
    #[error("invalid port {0:?} (expected 1-65535)")]
    BadPort(String),
    /// The host name could not be resolved.
    #[error("cannot resolve {host:?}")]
    Resolve {
        /// The host part of the seed.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The host name resolved to no address at all.
    #[error("{host:?} resolves to no address")]
    NoAddress {
        /// The host part of the seed.
        host: String,
    },
    /// The address is the unspecified address (`0.0.0.0` or `::`), which
    /// cannot be dialed.
    #[error("{0} is not an address that can be dialed")]
    Unspecified(SocketAddr),
}

impl SeedAddr {
    /// Parses `HOST:PORT` or `ID@HOST:PORT`, resolving a host name with the
    /// system resolver (this may block on DNS).
    ///
    /// When a name resolves to several addresses, the first IPv4 address is
    /// taken, else the first address: the default listen address is IPv4
    /// loopback, and `localhost` often resolves to `::1` first.
    pub fn parse(s: &str) -> Result<SeedAddr, SeedAddrError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(SeedAddrError::Empty);
        }
        let (id, host_port) = match s.split_once('@') {
            Some((id, rest)) => {
                let id: ClusterId = id.trim().parse().map_err(SeedAddrError::BadId)?;
                id.verifying_key().map_err(SeedAddrError::UnusableId)?;
                (Some(id), rest.trim())
            }
            None => (None, s),
        };
        let addr = resolve_host_port(host_port)?;
        let seed = SeedAddr { addr, id };
        seed.check()?;
        Ok(seed)
    }

    /// Checks that the address can be dialed: a port other than 0 and an
    /// address other than the unspecified one.
    pub fn check(&self) -> Result<(), SeedAddrError> {
        if self.addr.port() == 0 {
            return Err(SeedAddrError::BadPort("0".to_owned()));
        }
        if self.addr.ip().is_unspecified() {
            return Err(SeedAddrError::Unspecified(self.addr));
        }
        Ok(())
    }
}

/// Resolves `HOST:PORT` (an IP literal, `[v6]:port`, or a host name).
fn resolve_host_port(s: &str) -> Result<SocketAddr, SeedAddrError> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(SeedAddrError::MissingPort);
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(SeedAddrError::NoAddress {
            host: host.to_owned(),
        });
    }
    let port: u16 = port
        .parse()
        .map_err(|_| SeedAddrError::BadPort(port.to_owned()))?;
    if port == 0 {
        return Err(SeedAddrError::BadPort(port.to_string()));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| SeedAddrError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| SeedAddrError::NoAddress {
            host: host.to_owned(),
        })
}

impl FromStr for SeedAddr {
    type Err = SeedAddrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SeedAddr::parse(s)
    }
}

impl fmt::Display for SeedAddr {
    /// `ID@ADDR` (full id) or `ADDR`: the form [`SeedAddr::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{id}@{}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// The word that disables the admin endpoint.
pub const ADMIN_OFF: &str = "off";

/// The admin endpoint setting: an `IP:PORT` to listen on, or `off`
/// (`AdminAddr(None)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdminAddr(pub Option<SocketAddr>);

/// Why an admin endpoint setting is neither `IP:PORT` nor `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected IP:PORT or \"off\", got {0:?}")]
pub struct AdminAddrError(pub String);

impl FromStr for AdminAddr {
    type Err = AdminAddrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case(ADMIN_OFF) {
            return Ok(AdminAddr(None));
        }
        t.parse()
            .map(|a| AdminAddr(Some(a)))
            .map_err(|_| AdminAddrError(s.to_owned()))
    }
}

impl fmt::Display for AdminAddr {
    /// The address, or `off`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str(ADMIN_OFF),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Identity;

    #[test]
    fn seeds_parse_with_and_without_an_id() {
        let plain = SeedAddr::parse("10.0.0.2:7700").unwrap();
        assert_eq!(plain.addr, "10.0.0.2:7700".parse().unwrap());
        assert_eq!(plain.id, None);
        assert_eq!(plain.to_string(), "10.0.0.2:7700");

        let id = Identity::from_seed([7; 32]).id();
        let pinned = SeedAddr::parse(&format!(" {id}@[::1]:7701 ")).unwrap();
        assert_eq!(pinned.addr, "[::1]:7701".parse().unwrap());
        assert_eq!(pinned.id, Some(id));
        assert_eq!(SeedAddr::parse(&pinned.to_string()).unwrap(), pinned);
    }

    #[test]
    fn host_names_resolve_preferring_ipv4() {
        let seed = SeedAddr::parse("localhost:7700").unwrap();
        assert!(seed.addr.ip().is_loopback());
        assert!(seed.addr.is_ipv4(), "{seed}");
        assert_eq!(seed.addr.port(), 7700);
    }

    #[test]
    fn bad_seeds_are_refused_with_the_reason() {
        let id = Identity::from_seed([7; 32]).id();
        type Check = fn(&SeedAddrError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, SeedAddrError::Empty)),
            ("10.0.0.1", |e| matches!(e, SeedAddrError::MissingPort)),
            ("10.0.0.1:x", |e| matches!(e, SeedAddrError::BadPort(_))),
            ("10.0.0.1:0", |e| matches!(e, SeedAddrError::BadPort(_))),
            ("host:70000", |e| matches!(e, SeedAddrError::BadPort(_))),
            (":7700", |e| matches!(e, SeedAddrError::NoAddress { .. })),
            ("0.0.0.0:7700", |e| {
                matches!(e, SeedAddrError::Unspecified(_))
            }),
            ("abc@10.0.0.1:7700", |e| {
                matches!(e, SeedAddrError::BadId(HexError::Length(3)))
            }),
            ("no-such-host.invalid:7700", |e| {
                matches!(e, SeedAddrError::Resolve { .. })
            }),
        ];
        for (text, check) in cases {
            let err = SeedAddr::parse(text).unwrap_err();
            assert!(check(&err), "{text:?} gave {err:?}");
        }
        // A weak (small-order) key cannot be pinned.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let weak = ClusterId(weak);
        assert!(matches!(
            SeedAddr::parse(&format!("{weak}@10.0.0.1:7700")),
            Err(SeedAddrError::UnusableId(_))
        ));
        assert!(SeedAddr::parse(&format!("{id}@10.0.0.1:7700")).is_ok());
    }

    #[test]
    fn admin_is_an_address_or_off() {
        assert_eq!("off".parse::<AdminAddr>().unwrap(), AdminAddr(None));
        assert_eq!("OFF".parse::<AdminAddr>().unwrap(), AdminAddr(None));
        let on: AdminAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(on, AdminAddr(Some("127.0.0.1:0".parse().unwrap())));
        assert_eq!(on.to_string(), "127.0.0.1:0");
        assert_eq!(AdminAddr(None).to_string(), "off");
        assert!("localhost:7800".parse::<AdminAddr>().is_err());
        assert!("".parse::<AdminAddr>().is_err());
    }
}
