//! The arguments of `fedmesh run` and `fedmesh join`, and how they combine
//! with the config file: flags beat the file, which beats the defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::config::{AdminAddr, LogFormat, NodeConfig, check_advertise, parse_seed};

/// Arguments of `fedmesh run`: a config file and flags that override it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// The node's config file (TOML). Without it every key has its default;
    /// relative paths in it are relative to its directory.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The cluster's private key (`key`). Unless --cert is given, the
    /// certificate is this path with the extension .crt.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The cluster's certificate (`cert`).
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// QUIC (UDP) address to listen on (`listen`); port 0 picks a free port.
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<SocketAddr>,
    /// Address other clusters dial to reach this node (`advertise`).
    #[arg(long, value_name = "IP:PORT")]
    pub advertise: Option<SocketAddr>,
    /// A cluster to dial, HOST:PORT or ID@HOST:PORT; repeatable, added to the
    /// file's `seeds`.
    #[arg(long = "seed", id = "seed", value_name = "ADDR")]
    pub seeds: Vec<String>,
    /// The genesis roster file (`roster`).
    #[arg(long, value_name = "FILE")]
    pub roster: Option<PathBuf>,
    /// Directory for durable state and vote logs (`data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Admin HTTP endpoint address, or "off" (`admin`).
    #[arg(long, value_name = "IP:PORT|off")]
    pub admin: Option<AdminAddr>,
    /// Admit clusters outside the roster as weight-0 observers (`open = true`).
    #[arg(long)]
    pub open: bool,
    /// Log one JSON object per line (`log_format = "json"`).
    #[arg(long)]
    pub log_json: bool,
}

impl RunArgs {
    /// The node configuration: the file if given (else the defaults), then
    /// the flags on top, validated as a whole.
    pub fn resolve(&self) -> anyhow::Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => NodeConfig::load(path).context("cannot load the node configuration")?,
            None => NodeConfig::default(),
        };
        self.apply(&mut config)?;
        config
            .validate()
            .context("invalid node configuration after applying the command-line flags")?;
        Ok(config)
    }

    /// Overrides the keys of `config` that a flag sets. Seeds are added.
    pub fn apply(&self, config: &mut NodeConfig) -> anyhow::Result<()> {
        if let Some(key) = &self.key {
            config.key = key.clone();
            // The file's certificate belongs to the file's key.
            config.cert = self.cert.clone();
        } else if let Some(cert) = &self.cert {
            config.cert = Some(cert.clone());
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(advertise) = self.advertise {
            check_advertise("--advertise", advertise)?;
            config.advertise = Some(advertise);
        }
        for seed in &self.seeds {
            config.add_seed(parse_seed("--seed", seed)?);
        }
        if let Some(roster) = &self.roster {
            config.roster = roster.clone();
        }
        if let Some(data_dir) = &self.data_dir {
            config.data_dir = data_dir.clone();
        }
        if let Some(admin) = self.admin {
            config.admin = admin.0;
        }
        if self.open {
            config.open = true;
        }
        if self.log_json {
            config.log_format = LogFormat::Json;
        }
        Ok(())
    }
}

/// Arguments of `fedmesh join SEED... [flags]`: `fedmesh run` with the
/// given seeds added.
#[derive(Debug, Clone, clap::Args)]
pub struct JoinArgs {
    /// Clusters to join through: HOST:PORT or ID@HOST:PORT.
    #[arg(required = true, value_name = "SEED")]
    pub seeds: Vec<String>,
    /// The same options as `fedmesh run`.
    #[command(flatten)]
    pub run: RunArgs,
}

impl JoinArgs {
    /// The node configuration of `fedmesh run` with the same flags, plus the
    /// seeds given as arguments.
    pub fn resolve(&self) -> anyhow::Result<NodeConfig> {
        let mut config = self.run.resolve()?;
        for seed in &self.seeds {
            config.add_seed(parse_seed("SEED", seed)?);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::config::{ConfigError, SeedAddr};
    use crate::proto::Identity;

    #[derive(Debug, Parser)]
    struct Run {
        #[command(flatten)]
        run: RunArgs,
    }

    #[derive(Debug, Parser)]
    struct Join {
        #[command(flatten)]
        join: JoinArgs,
    }

    fn run_args(args: &[&str]) -> RunArgs {
        Run::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
            .unwrap()
            .run
    }

    fn write_config(dir: &Path, text: &str) -> String {
        let path = dir.join("node.toml");
        fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn seed(addr: &str) -> SeedAddr {
        SeedAddr {
            addr: addr.parse().unwrap(),
            id: None,
        }
    }

    #[test]
    fn the_argument_definitions_are_consistent() {
        Run::command().debug_assert();
        Join::command().debug_assert();
    }

    #[test]
    fn without_file_or_flags_every_key_has_its_default() {
        assert_eq!(run_args(&[]).resolve().unwrap(), NodeConfig::default());
    }

    #[test]
    fn the_file_beats_the_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        let file = write_config(
            tmp.path(),
            "listen = \"127.0.0.1:9001\"\nadmin = \"off\"\nlog_format = \"json\"\nopen = true\n",
        );
        let config = run_args(&["--config", &file]).resolve().unwrap();
        assert_eq!(config.listen, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(config.admin, None);
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(config.open);
        // Keys the file leaves out keep their defaults (paths under its directory).
        assert_eq!(config.roster, tmp.path().join("roster.toml"));
        assert_eq!(config.membership, NodeConfig::default().membership);
    }

    #[test]
    fn flags_beat_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = write_config(
            tmp.path(),
            "key = \"a.key\"\ncert = \"a.pem\"\nlisten = \"127.0.0.1:9001\"\n\
             advertise = \"10.0.0.1:9001\"\nroster = \"r.toml\"\ndata_dir = \"d\"\n\
             admin = \"127.0.0.1:9100\"\nseeds = [\"10.0.0.2:7700\"]\n",
        );
        let config = run_args(&[
            "--config",
            &file,
            "--key",
            "/keys/b.key",
            "--listen",
            "127.0.0.1:9002",
            "--advertise",
            "10.0.0.9:9002",
            "--seed",
            "10.0.0.3:7700",
            "--seed",
            "10.0.0.2:7700",
            "--roster",
            "/r2.toml",
            "--data-dir",
            "/d2",
            "--admin",
            "off",
            "--open",
            "--log-json",
        ])
        .resolve()
        .unwrap();
        assert_eq!(config.key, PathBuf::from("/keys/b.key"));
        // --key without --cert moves the certificate along with the key.
        assert_eq!(config.cert_path(), PathBuf::from("/keys/b.crt"));
        assert_eq!(config.listen, "127.0.0.1:9002".parse().unwrap());
        assert_eq!(config.advertise, Some("10.0.0.9:9002".parse().unwrap()));
        // Seeds add up, without duplicates.
        assert_eq!(
            config.seeds,
            vec![seed("10.0.0.2:7700"), seed("10.0.0.3:7700")]
        );
        assert_eq!(config.roster, PathBuf::from("/r2.toml"));
        assert_eq!(config.data_dir, PathBuf::from("/d2"));
        assert_eq!(config.admin, None);
        assert!(config.open);
        assert_eq!(config.log_format, LogFormat::Json);

        // --cert alone replaces the file's certificate and keeps its key.
        let config = run_args(&["--config", &file, "--cert", "/c.pem", "--admin", "[::1]:0"])
            .resolve()
            .unwrap();
        assert_eq!(config.key, tmp.path().join("a.key"));
        assert_eq!(config.cert_path(), PathBuf::from("/c.pem"));
        assert_eq!(config.admin, Some("[::1]:0".parse().unwrap()));

        // Without flags the file's values stand.
        let config = run_args(&["--config", &file]).resolve().unwrap();
        assert_eq!(config.cert_path(), tmp.path().join("a.pem"));
        assert_eq!(config.admin, Some("127.0.0.1:9100".parse().unwrap()));
    }

    #[test]
    fn flags_beat_the_defaults_without_a_file() {
        let config = run_args(&["--listen", "127.0.0.1:0", "--key", "k/x.key"])
            .resolve()
            .unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.cert_path(), PathBuf::from("k/x.crt"));
        assert_eq!(config.admin, NodeConfig::default().admin);
    }

    #[test]
    fn join_adds_its_seeds() {
        let id = Identity::from_seed([9; 32]).id();
        let pinned = format!("{id}@10.0.0.5:7700");
        let join = Join::try_parse_from([
            "join",
            "10.0.0.4:7700",
            &pinned,
            "--seed",
            "10.0.0.6:7700",
            "--listen",
            "127.0.0.1:0",
        ])
        .unwrap()
        .join;
        let config = join.resolve().unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(
            config.seeds,
            vec![
                seed("10.0.0.6:7700"),
                seed("10.0.0.4:7700"),
                SeedAddr {
                    addr: "10.0.0.5:7700".parse().unwrap(),
                    id: Some(id)
                },
            ]
        );
        // At least one seed is required.
        assert!(Join::try_parse_from(["join", "--open"]).is_err());
    }

    #[test]
    fn bad_flags_and_files_are_reported_with_their_origin() {
        let err = run_args(&["--seed", "nowhere"]).resolve().unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("--seed") && text.contains("nowhere"),
            "{text}"
        );

        let err = run_args(&["--advertise", "0.0.0.0:7700"])
            .resolve()
            .unwrap_err();
        assert!(format!("{err:#}").contains("--advertise"));

        assert!(Run::try_parse_from(["run", "--admin", "on"]).is_err());
        assert!(Run::try_parse_from(["run", "--listen", "localhost"]).is_err());

        let tmp = tempfile::tempdir().unwrap();
        let file = write_config(tmp.path(), "[transport]\nmax_frame_bytes = 1\n");
        let err = run_args(&["--config", &file]).resolve().unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("node.toml") && text.contains("transport.max_frame_bytes"),
            "{text}"
        );
        assert!(matches!(
            err.downcast_ref::<ConfigError>(),
            Some(ConfigError::InFile { .. })
        ));

        let missing = tmp.path().join("missing.toml");
        let err = run_args(&["--config", &missing.to_string_lossy()])
            .resolve()
            .unwrap_err();
        assert!(format!("{err:#}").contains("missing.toml"));
    }
}
