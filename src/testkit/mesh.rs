//! Fixtures for running clusters in one process on 127.0.0.1: key files and
//! a genesis roster on disk, and node configs with a link policy. Shared by
//! the demo, the examples and the integration tests so that there is one
//! way to stand up a local mesh.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use crate::config::{MembershipConfig, NodeConfig, SeedAddr, TransportConfig};
use crate::proto::ClusterId;
use crate::proto::roster::{Member, Roster, RosterError};
use crate::store::genesis::{GenesisError, write_roster_file};
use crate::store::keys::{KeyFileError, generate_key_files};

/// Why the fixture files cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// A key file could not be generated.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The roster is invalid (for example duplicate names or zero weight).
    #[error(transparent)]
    Roster(#[from] RosterError),
    /// The roster file could not be written.
    #[error(transparent)]
    Genesis(#[from] GenesisError),
}

/// Writes `root/certs/{name}.key|.crt` for each `(name, weight)` (replacing
/// existing files) and the genesis roster of network `network` to
/// `root/roster.toml`; returns the ids and the roster.
pub fn write_cluster_files(
    root: &Path,
    members: &[(String, u64)],
    network: &str,
) -> Result<(Vec<ClusterId>, Roster), FixtureError> {
    let mut ids = Vec::with_capacity(members.len());
    for (name, _) in members {
        ids.push(generate_key_files(name, &root.join("certs"), true)?.cluster_id);
    }
    let roster = Roster::genesis(
        network,
        members
            .iter()
            .zip(&ids)
            .map(|((name, weight), id)| Member {
                id: *id,
                name: name.clone(),
                weight: *weight,
            })
            .collect(),
    )?;
    write_roster_file(&root.join("roster.toml"), &roster, true)?;
    Ok((ids, roster))
}

/// The config of cluster `name` written by [`write_cluster_files`]:
/// listening on an ephemeral loopback port, data under `root/data/{name}`,
/// admin endpoint on an ephemeral port, linking only with `neighbours`
/// (any cluster if `None`), joining through `seeds`, gossiping every
/// `gossip_ms`.
pub fn local_config(
    root: &Path,
    name: &str,
    neighbours: Option<Vec<String>>,
    seeds: &[SocketAddr],
    gossip_ms: u64,
) -> NodeConfig {
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    NodeConfig {
        key: root.join(format!("certs/{name}.key")),
        listen: loopback,
        seeds: seeds
            .iter()
            .map(|addr| SeedAddr {
                addr: *addr,
                id: None,
            })
            .collect(),
        roster: root.join("roster.toml"),
        data_dir: root.join(format!("data/{name}")),
        admin: Some(loopback),
        membership: MembershipConfig {
            gossip_interval_ms: gossip_ms,
            allowed_peers: neighbours,
            ..MembershipConfig::default()
        },
        ..NodeConfig::default()
    }
}

/// Makes a cut link noticeable within about a second (200 ms keep-alives,
/// 1 s idle timeout) instead of the defaults meant for real networks.
pub fn fast_link_failure(config: &mut NodeConfig) {
    config.transport = TransportConfig {
        keep_alive_ms: 200,
        idle_timeout_ms: 1_000,
        ..config.transport.clone()
    };
}

/// The `p` quantile (0.0 ..= 1.0) of ascending `sorted` samples, nearest
/// rank; the default value if empty.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let i = ((sorted.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_config_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let members = vec![("a".to_owned(), 1), ("b".to_owned(), 3)];
        let (ids, roster) = write_cluster_files(dir.path(), &members, "t").expect("files");
        assert_eq!(roster.total_weight(), 4);
        let loaded = crate::store::genesis::load_roster_file(&dir.path().join("roster.toml"))
            .expect("roster file");
        assert_eq!(loaded.network_id(), roster.network_id());
        let id = crate::store::keys::load_identity(&dir.path().join("certs/b.key"))
            .expect("key")
            .id();
        assert_eq!(id, ids[1]);
        let mut c = local_config(dir.path(), "b", Some(vec!["a".into()]), &[], 250);
        fast_link_failure(&mut c);
        assert_eq!(c.membership.allowed_peers, Some(vec!["a".to_owned()]));
        assert_eq!(c.transport.idle_timeout_ms, 1_000);
        assert_eq!(c.data_dir, dir.path().join("data/b"));
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 51);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile::<u32>(&[], 0.5), 0);
    }
}
