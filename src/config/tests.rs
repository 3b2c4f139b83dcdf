use std::fs;

use super::*;
use crate::proto::Identity;

/// The error and its sources, `: `-separated.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// The reason behind an `InFile` error.
fn inner(err: &ConfigError) -> &ConfigError {
    match err {
        ConfigError::InFile { source, .. } => source,
        other => other,
    }
}

#[test]
fn an_empty_file_gives_the_documented_defaults() {
    let config = NodeConfig::from_toml_str("").unwrap();
    assert_eq!(config, NodeConfig::default());
    assert_eq!(config.key, PathBuf::from("certs/node.key"));
    assert_eq!(config.cert_path(), PathBuf::from("certs/node.crt"));
    assert_eq!(config.listen, "127.0.0.1:7700".parse().unwrap());
    assert_eq!(config.advertise, None);
    assert!(config.seeds.is_empty());
    assert_eq!(config.roster, PathBuf::from("roster.toml"));
    assert_eq!(config.data_dir, PathBuf::from("data"));
    assert_eq!(config.admin, Some("127.0.0.1:7800".parse().unwrap()));
    assert!(!config.open);
    assert_eq!(config.log_format, LogFormat::Human);
    let m = &config.membership;
    assert_eq!(m.gossip_interval(), Duration::from_millis(500));
    assert_eq!(m.fanout, 3);
    assert_eq!(m.phi_threshold, 8.0);
    assert_eq!(m.suspect_timeout(), Duration::from_secs(2));
    assert_eq!(m.dead_ttl(), Duration::from_secs(60));
    assert_eq!(m.max_links, 8);
    let t = &config.transport;
    assert_eq!(t.keep_alive(), Duration::from_secs(1));
    assert_eq!(t.idle_timeout(), Duration::from_secs(5));
    assert_eq!(t.max_frame_bytes, 1_048_576);
    assert_eq!(t.connect_timeout(), Duration::from_secs(5));
    config.validate().unwrap();
}

#[test]
fn every_key_is_read() {
    let id = Identity::from_seed([3; 32]).id();
    let text = format!(
        r#"
key = "k/a.key"
cert = "c/a.pem"
listen = "0.0.0.0:9000"
advertise = "10.1.2.3:9000"
seeds = ["10.0.0.2:7700", "{id}@10.0.0.3:7701", "10.0.0.2:7700"]
roster = "r.toml"
data_dir = "/var/lib/fedmesh"
admin = "off"
open = true
log_format = "json"

[membership]
gossip_interval_ms = 200
fanout = 2
phi_threshold = 10.0
suspect_timeout_ms = 1000
dead_ttl_ms = 1000
max_links = 4
allowed_peers = ["beta", "{id}"]

[transport]
keep_alive_ms = 100
idle_timeout_ms = 900
max_frame_bytes = 65536
connect_timeout_ms = 700
"#
    );
    let c = NodeConfig::from_toml_str(&text).unwrap();
    assert_eq!(c.key, PathBuf::from("k/a.key"));
    assert_eq!(c.cert_path(), PathBuf::from("c/a.pem"));
    assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(c.advertise, Some("10.1.2.3:9000".parse().unwrap()));
    // The duplicate seed is dropped.
    assert_eq!(
        c.seeds,
        vec![
            SeedAddr {
                addr: "10.0.0.2:7700".parse().unwrap(),
                id: None
            },
            SeedAddr {
                addr: "10.0.0.3:7701".parse().unwrap(),
                id: Some(id)
            },
        ]
    );
    assert_eq!(c.roster, PathBuf::from("r.toml"));
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/fedmesh"));
    assert_eq!(c.admin, None);
    assert!(c.open);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(
        c.membership,
        MembershipConfig {
            gossip_interval_ms: 200,
            fanout: 2,
            phi_threshold: 10.0,
            suspect_timeout_ms: 1000,
            dead_ttl_ms: 1000,
            max_links: 4,
            allowed_peers: Some(vec!["beta".into(), id.to_string()]),
        }
    );
    assert_eq!(
        c.transport,
        TransportConfig {
            keep_alive_ms: 100,
            idle_timeout_ms: 900,
            max_frame_bytes: 65536,
            connect_timeout_ms: 700,
        }
    );
}

#[test]
fn partial_tables_keep_the_other_defaults() {
    let c = NodeConfig::from_toml_str("[membership]\nfanout = 5\n").unwrap();
    assert_eq!(c.membership.fanout, 5);
    assert_eq!(c.membership.max_links, DEFAULT_MAX_LINKS);
    assert_eq!(c.transport, TransportConfig::default());
}

#[test]
fn unknown_keys_and_wrong_types_are_refused_naming_the_key() {
    for (text, needle) in [
        ("colour = \"red\"\n", "colour"),
        ("[membership]\nfanuot = 2\n", "fanuot"),
        ("[transport]\nmax_frame = 2\n", "max_frame"),
        ("[gossip]\n", "gossip"),
        ("open = \"yes\"\n", "open"),
        ("log_format = \"xml\"\n", "xml"),
        ("[membership]\nfanout = -1\n", "fanout"),
    ] {
        let err = NodeConfig::from_toml_str(text).unwrap_err();
        assert!(matches!(err, ConfigError::Toml(_)), "{text:?}: {err:?}");
        let chain = error_chain(&err);
        assert!(chain.contains(needle), "{text:?}: {chain}");
    }
}

#[test]
fn bad_addresses_are_refused_naming_the_key() {
    let err = NodeConfig::from_toml_str("listen = \"localhost\"\n").unwrap_err();
    assert!(matches!(&err, ConfigError::BadAddr { key, .. } if key == "listen"));
    assert!(err.to_string().contains("listen"));

    let err = NodeConfig::from_toml_str("admin = \"on\"\n").unwrap_err();
    assert!(matches!(&err, ConfigError::BadAdmin { key, .. } if key == "admin"));

    let err = NodeConfig::from_toml_str("seeds = [\"10.0.0.1:1\", \"nope\"]\n").unwrap_err();
    assert!(
        matches!(&err, ConfigError::BadSeed { key, source: SeedAddrError::MissingPort, .. } if key == "seeds[1]"),
        "{err:?}"
    );
    assert!(err.to_string().contains("seeds[1]"));

    for text in [
        "advertise = \"0.0.0.0:7700\"\n",
        "advertise = \"10.0.0.1:0\"\n",
    ] {
        let err = NodeConfig::from_toml_str(text).unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnusableAdvertise { key, .. } if key == "advertise"),
            "{err:?}"
        );
    }
    let err = NodeConfig::from_toml_str("key = \"\"\n").unwrap_err();
    assert!(matches!(err, ConfigError::EmptyPath { key: "key" }));
}

#[test]
fn invalid_values_are_refused_with_typed_errors() {
    let check = |text: &str, ok: fn(&ConfigError) -> bool| {
        let err = NodeConfig::from_toml_str(text).unwrap_err();
        assert!(ok(&err), "{text:?} gave {err:?}");
        // Every message names the key at fault.
        let key = text
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_default();
        assert!(err.to_string().contains(key), "{err} should name {key}");
    };
    check("[membership]\ngossip_interval_ms = 0\n", |e| {
        matches!(
            e,
            ConfigError::Zero {
                key: "membership.gossip_interval_ms"
            }
        )
    });
    check("[membership]\nfanout = 0\n", |e| {
        matches!(
            e,
            ConfigError::Zero {
                key: "membership.fanout"
            }
        )
    });
    check("[membership]\nmax_links = 0\n", |e| {
        matches!(
            e,
            ConfigError::Zero {
                key: "membership.max_links"
            }
        )
    });
    check("[membership]\nmax_links = 5000\n", |e| {
        matches!(
            e,
            ConfigError::OutOfRange {
                key: "membership.max_links",
                ..
            }
        )
    });
    check("[membership]\nfanout = 9\n", |e| {
        matches!(
            e,
            ConfigError::FanoutAboveMaxLinks {
                fanout: 9,
                max_links: 8
            }
        )
    });
    for phi in ["0.0", "0.5", "-1.0", "nan", "inf", "21.0", "8.5"] {
        let text = format!("[membership]\nphi_threshold = {phi}\n");
        let err = NodeConfig::from_toml_str(&text).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::OutOfRange {
                    key: "membership.phi_threshold",
                    ..
                }
            ),
            "{phi}: {err:?}"
        );
    }
    for phi in ["1.0", "20.0"] {
        let text = format!("[membership]\nphi_threshold = {phi}\n");
        assert!(NodeConfig::from_toml_str(&text).is_ok(), "{phi}");
    }
    check("[membership]\nsuspect_timeout_ms = 100\n", |e| {
        matches!(
            e,
            ConfigError::SuspectTimeoutBelowGossipInterval {
                suspect_timeout_ms: 100,
                gossip_interval_ms: 500
            }
        )
    });
    check("[membership]\ndead_ttl_ms = 0\n", |e| {
        matches!(
            e,
            ConfigError::Zero {
                key: "membership.dead_ttl_ms"
            }
        )
    });
    check("[membership]\ndead_ttl_ms = 9000000000000\n", |e| {
        matches!(
            e,
            ConfigError::OutOfRange {
                key: "membership.dead_ttl_ms",
                ..
            }
        )
    });
    check("[transport]\nkeep_alive_ms = 0\n", |e| {
        matches!(
            e,
            ConfigError::Zero {
                key: "transport.keep_alive_ms"
            }
        )
    });
    check("[transport]\nconnect_timeout_ms = 0\n", |e| {
        matches!(
            e,
            ConfigError::Zero {
                key: "transport.connect_timeout_ms"
            }
        )
    });
    check("[transport]\nkeep_alive_ms = 5000\n", |e| {
        matches!(
            e,
            ConfigError::KeepAliveNotBelowIdle {
                keep_alive_ms: 5000,
                idle_timeout_ms: 5000
            }
        )
    });
    for bytes in [0usize, MIN_FRAME_BYTES - 1, MAX_FRAME_BYTES + 1] {
        let text = format!("[transport]\nmax_frame_bytes = {bytes}\n");
        let err = NodeConfig::from_toml_str(&text).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::OutOfRange {
                    key: "transport.max_frame_bytes",
                    ..
                }
            ),
            "{bytes}: {err:?}"
        );
    }
    for bytes in [MIN_FRAME_BYTES, MAX_FRAME_BYTES] {
        let text = format!("[transport]\nmax_frame_bytes = {bytes}\n");
        assert!(NodeConfig::from_toml_str(&text).is_ok());
    }
}

#[test]
fn files_resolve_relative_paths_under_their_directory_and_errors_name_them() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("node.toml");
    fs::write(
        &path,
        "key = \"certs/a.key\"\ndata_dir = \"/abs/data\"\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let c = NodeConfig::load(&path).unwrap();
    assert_eq!(c.key, tmp.path().join("certs/a.key"));
    assert_eq!(c.cert_path(), tmp.path().join("certs/a.crt"));
    assert_eq!(c.roster, tmp.path().join("roster.toml"));
    assert_eq!(c.data_dir, PathBuf::from("/abs/data"));
    assert_eq!(c.listen.port(), 0);

    // A bare file name has an empty parent: paths stay as written.
    let mut bare = NodeConfig::default();
    bare.resolve_paths_under(Path::new(""));
    assert_eq!(bare, NodeConfig::default());

    let bad = tmp.path().join("bad.toml");
    fs::write(&bad, "[membership]\nfanout = 0\n").unwrap();
    let err = NodeConfig::load(&bad).unwrap_err();
    assert!(matches!(
        inner(&err),
        ConfigError::Zero {
            key: "membership.fanout"
        }
    ));
    let chain = error_chain(&err);
    assert!(chain.contains("bad.toml"), "{chain}");
    assert!(chain.contains("membership.fanout"), "{chain}");

    let typo = tmp.path().join("typo.toml");
    fs::write(&typo, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let chain = error_chain(&NodeConfig::load(&typo).unwrap_err());
    assert!(
        chain.contains("typo.toml") && chain.contains("lisen"),
        "{chain}"
    );

    let missing = tmp.path().join("missing.toml");
    let err = NodeConfig::load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err.to_string().contains("missing.toml"));

    let big = tmp.path().join("big.toml");
    fs::write(&big, vec![b'#'; MAX_CONFIG_FILE_LEN as usize + 1]).unwrap();
    assert!(matches!(
        NodeConfig::load(&big),
        Err(ConfigError::TooLarge { .. })
    ));
}

/// The ```toml blocks of a markdown document.
fn toml_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match &mut current {
            None if line.trim_start().starts_with("```toml") => current = Some(String::new()),
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn the_documented_examples_are_valid_and_every_key_is_documented() {
    let doc = include_str!("../../docs/configuration.md");
    let blocks = toml_blocks(doc);
    assert!(!blocks.is_empty());
    for block in &blocks {
        NodeConfig::from_toml_str(block).unwrap_or_else(|e| {
            panic!(
                "documented example is invalid: {}\n{block}",
                error_chain(&e)
            )
        });
    }
    for key in [
        "key",
        "cert",
        "listen",
        "advertise",
        "seeds",
        "roster",
        "data_dir",
        "admin",
        "open",
        "log_format",
        "membership.gossip_interval_ms",
        "membership.fanout",
        "membership.phi_threshold",
        "membership.suspect_timeout_ms",
        "membership.dead_ttl_ms",
        "membership.max_links",
        "membership.allowed_peers",
        "transport.keep_alive_ms",
        "transport.idle_timeout_ms",
        "transport.max_frame_bytes",
        "transport.connect_timeout_ms",
    ] {
        assert!(
            doc.contains(&format!("| `{key}` |")),
            "docs/configuration.md has no table row for `{key}`"
        );
    }
}

#[test]
fn allowed_peers_resolve_names_and_ids_and_refuse_the_rest() {
    let net = crate::testkit::TestNet::new(5, &[1, 1, 1]);
    let name1 = net
        .roster
        .member(&net.identities[1].id())
        .unwrap()
        .name
        .clone();
    let outsider = Identity::from_seed([77; 32]).id();
    let text = format!("[membership]\nallowed_peers = [\"{name1}\", \"{outsider}\"]\n");
    let c = NodeConfig::from_toml_str(&text).unwrap();
    let set = c
        .membership
        .resolve_allowed_peers(&net.roster)
        .unwrap()
        .unwrap();
    assert_eq!(
        set,
        [net.identities[1].id(), outsider].into_iter().collect()
    );
    assert_eq!(
        NodeConfig::default()
            .membership
            .resolve_allowed_peers(&net.roster)
            .unwrap(),
        None
    );
    let c = NodeConfig::from_toml_str("[membership]\nallowed_peers = [\"nobody\"]\n").unwrap();
    let e = c.membership.resolve_allowed_peers(&net.roster).unwrap_err();
    assert!(
        matches!(&e, ConfigError::BadAllowedPeer { value, .. } if value == "nobody"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("neither a 64-hex cluster id nor the name")
    );
    let e = NodeConfig::from_toml_str("[membership]\nallowed_peers = []\n").unwrap_err();
    assert!(matches!(e, ConfigError::EmptyAllowedPeers), "{e}");
}
