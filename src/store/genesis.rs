//! The genesis roster file, `roster.toml`: the network name and the epoch-0
//! members with their weights.
//!
//! ```toml
//! network = "demo"
//!
//! [[members]]
//! name = "alpha"
//! id = "<64 hex characters: the cluster's ed25519 public key>"
//! weight = 1
//! ```
//!
//! The network id is the hash of the roster's canonical encoding, not of this
//! text, so comments, member order and layout may change freely while names,
//! ids and weights may not.

use crate::store::bounded::{BoundedReadError, read_bounded_text};
use std::path::{Path, PathBuf};

use crate::proto::bytes32::HexError;
use crate::proto::roster::{Member, Roster, RosterError};

/// A roster file larger than this is refused before parsing ([`MAX_MEMBERS`]
/// members at ~120 bytes each fit easily).
///
/// [`MAX_MEMBERS`]: crate::proto::roster::MAX_MEMBERS
pub const MAX_ROSTER_FILE_LEN: u64 = 4 * 1024 * 1024;

/// Largest weight a roster file can hold: TOML integers are signed 64-bit.
pub const MAX_FILE_WEIGHT: u64 = i64::MAX as u64;

/// Why a roster file cannot be read, understood or written.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// Reading or writing the file failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than any plausible roster.
    #[error("{} is {len} bytes, larger than the {MAX_ROSTER_FILE_LEN}-byte limit for a roster file", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The output file exists and overwriting was not asked for.
    #[error("{} already exists; pass --force to overwrite it", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// The content of a file is invalid.
    #[error("invalid roster file {}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        #[source]
        source: Box<GenesisError>,
    },
    /// The text is not TOML of the expected shape.
    #[error("not a roster file")]
    Toml(#[source] toml::de::Error),
    /// The roster could not be rendered as TOML.
    #[error("cannot render the roster as TOML")]
    Render(#[source] toml::ser::Error),
    /// A member's id is not 64 hex characters.
    #[error("member #{index} ({name:?}) has an invalid id")]
    BadId {
        /// 1-based position of the member in the file.
        index: usize,
        /// The member's name.
        name: String,
        /// Why the id does not parse.
        #[source]
        source: HexError,
    },
    /// A weight does not fit in a TOML integer.
    #[error(
        "member {name:?} has weight {weight}, larger than a roster file can hold ({MAX_FILE_WEIGHT})"
    )]
    WeightTooLarge {
        /// The member's name.
        name: String,
        /// Its weight.
        weight: u64,
    },
    /// The members and weights do not form a valid roster (duplicates, weak
    /// keys, zero total...).
    #[error("invalid roster")]
    Roster(#[from] RosterError),
}

/// The file layout, kept apart from [`Member`] so that ids are parsed here,
/// with the member's name and position in the error.
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RosterFile {
    network: String,
    members: Vec<MemberEntry>,
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct MemberEntry {
    name: String,
    id: String,
    weight: u64,
}

/// Parses and validates the text of a genesis roster file.
pub fn parse_roster_toml(text: &str) -> Result<Roster, GenesisError> {
    let file: RosterFile = toml::from_str(text).map_err(GenesisError::Toml)?;
    let members = file
        .members
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let id = m.id.parse().map_err(|source| GenesisError::BadId {
                index: i + 1,
                name: m.name.clone(),
                source,
            })?;
            Ok(Member {
                id,
                name: m.name,
                weight: m.weight,
            })
        })
        .collect::<Result<Vec<_>, GenesisError>>()?;
    Ok(Roster::genesis(&file.network, members)?)
}

/// Reads and validates a genesis roster file; errors name the file.
pub fn load_roster_file(path: &Path) -> Result<Roster, GenesisError> {
    let text = read_bounded_text(path, MAX_ROSTER_FILE_LEN).map_err(|e| match e {
        BoundedReadError::Io(source) => GenesisError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        },
        BoundedReadError::TooLarge { len } => GenesisError::TooLarge {
            path: path.to_owned(),
            len,
        },
    })?;
    parse_roster_toml(&text).map_err(|e| GenesisError::InFile {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

/// The roster as a genesis file, headed by a comment with its network id.
///
/// Only genesis rosters have a file form; weights above [`MAX_FILE_WEIGHT`]
/// are refused because the file could never be read back.
pub fn render_roster_toml(roster: &Roster) -> Result<String, GenesisError> {
    if let Some(m) = roster.members().iter().find(|m| m.weight > MAX_FILE_WEIGHT) {
        return Err(GenesisError::WeightTooLarge {
            name: m.name.clone(),
            weight: m.weight,
        });
    }
    let file = RosterFile {
        network: roster.network_name().to_owned(),
        members: roster
            .members()
            .iter()
            .map(|m| MemberEntry {
                name: m.name.clone(),
                id: m.id.to_string(),
                weight: m.weight,
            })
            .collect(),
    };
    let body = toml::to_string(&file).map_err(GenesisError::Render)?;
    Ok(format!(
        "# fedmesh genesis roster (epoch 0)\n\
         # network id: {}\n\
         # The network id is the hash of the network name and of the member names,\n\
         # ids and weights below: changing any of them makes a different network.\n\
         # Total weight: {}.\n\
         \n{body}",
        roster.network_id(),
        roster.total_weight(),
    ))
}

/// Writes `roster` as a genesis file at `path`, refusing to replace an
/// existing file unless `force`.
///
/// The text goes to a temporary file renamed into place: a half-written
/// roster would silently define another network.
pub fn write_roster_file(path: &Path, roster: &Roster, force: bool) -> Result<(), GenesisError> {
    let text = render_roster_toml(roster)?;
    if !force && path.symlink_metadata().is_ok() {
        return Err(GenesisError::Exists {
            path: path.to_owned(),
        });
    }
    crate::store::atomic::write_atomically(path, text.as_bytes(), 0o644).map_err(|e| {
        GenesisError::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Identity;

    fn member(seed: u8, name: &str, weight: u64) -> Member {
        Member {
            id: Identity::from_seed([seed; 32]).id(),
            name: name.into(),
            weight,
        }
    }

    fn id_hex(seed: u8) -> String {
        Identity::from_seed([seed; 32]).id().to_string()
    }

    #[test]
    fn render_then_parse_round_trips_and_keeps_the_network_id() {
        let roster = Roster::genesis(
            "demo",
            vec![
                member(1, "alpha", 1),
                member(2, "beta", 5),
                member(3, "gamma", 0),
            ],
        )
        .unwrap();
        let text = render_roster_toml(&roster).unwrap();
        assert!(text.contains(&format!("# network id: {}", roster.network_id())));
        let back = parse_roster_toml(&text).unwrap();
        assert_eq!(back.network_id(), roster.network_id());
        assert_eq!(back.members(), roster.members());
        assert_eq!(back.total_weight(), 6);
        assert_eq!(back.network_name(), "demo");
    }

    #[test]
    fn hand_written_file_parses_regardless_of_member_order() {
        let text = |first: u8, second: u8| {
            format!(
                "network = \"demo\"\n\
                 [[members]]\nname = \"m{first}\"\nid = \"{}\"\nweight = {first}\n\
                 [[members]]\nname = \"m{second}\"\nid = \"{}\"\nweight = {second}\n",
                id_hex(first),
                id_hex(second)
            )
        };
        let a = parse_roster_toml(&text(1, 2)).unwrap();
        let b = parse_roster_toml(&text(2, 1)).unwrap();
        assert_eq!(a.network_id(), b.network_id());
        assert_eq!(a.weight(&Identity::from_seed([2; 32]).id()), Some(2));
    }

    #[test]
    fn invalid_files_are_refused_with_the_reason() {
        let one = |name: &str, id: &str, weight: &str| {
            format!(
                "network = \"n\"\n[[members]]\nname = \"{name}\"\nid = \"{id}\"\nweight = {weight}\n"
            )
        };
        let good = id_hex(1);
        assert!(matches!(
            parse_roster_toml(&one("a", "abc", "1")),
            Err(GenesisError::BadId {
                index: 1,
                source: HexError::Length(3),
                ..
            })
        ));
        assert!(matches!(
            parse_roster_toml(&one("a", &"zz".repeat(32), "1")),
            Err(GenesisError::BadId {
                source: HexError::NotHex,
                ..
            })
        ));
        let mut weak = "00".repeat(32);
        weak.replace_range(0..2, "01");
        assert!(matches!(
            parse_roster_toml(&one("a", &weak, "1")),
            Err(GenesisError::Roster(RosterError::BadKey(_)))
        ));
        assert!(matches!(
            parse_roster_toml(&one("a", &good, "0")),
            Err(GenesisError::Roster(RosterError::ZeroTotal))
        ));
        assert!(matches!(
            parse_roster_toml(&one("a", &good, "-1")),
            Err(GenesisError::Toml(_))
        ));
        let extra = format!("{}colour = \"red\"\n", one("a", &good, "1"));
        assert!(matches!(
            parse_roster_toml(&extra),
            Err(GenesisError::Toml(_))
        ));
        assert!(matches!(
            parse_roster_toml("network = \"n\"\n"),
            Err(GenesisError::Toml(_))
        ));
        let dup = format!(
            "{}{}",
            one("a", &good, "1"),
            one("b", &good, "1").replacen("network = \"n\"\n", "", 1)
        );
        assert!(matches!(
            parse_roster_toml(&dup),
            Err(GenesisError::Roster(RosterError::DuplicateId(id))) if id == Identity::from_seed([1; 32]).id()
        ));
    }

    #[test]
    fn weights_beyond_toml_integers_are_refused_when_rendering() {
        let roster = Roster::genesis("n", vec![member(1, "big", MAX_FILE_WEIGHT + 1)]).unwrap();
        assert!(matches!(
            render_roster_toml(&roster),
            Err(GenesisError::WeightTooLarge { weight, .. }) if weight == MAX_FILE_WEIGHT + 1
        ));
        let max = Roster::genesis("n", vec![member(1, "big", MAX_FILE_WEIGHT)]).unwrap();
        let back = parse_roster_toml(&render_roster_toml(&max).unwrap()).unwrap();
        assert_eq!(back.total_weight(), MAX_FILE_WEIGHT);
    }

    #[test]
    fn files_are_written_once_unless_forced_and_load_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("roster.toml");
        let first = Roster::genesis("demo", vec![member(1, "a", 1)]).unwrap();
        let second = Roster::genesis("demo", vec![member(1, "a", 2)]).unwrap();
        write_roster_file(&path, &first, false).unwrap();
        let err = write_roster_file(&path, &second, false).unwrap_err();
        assert!(matches!(&err, GenesisError::Exists { .. }));
        assert!(err.to_string().contains("--force"));
        assert_eq!(
            load_roster_file(&path).unwrap().network_id(),
            first.network_id()
        );
        write_roster_file(&path, &second, true).unwrap();
        assert_eq!(
            load_roster_file(&path).unwrap().network_id(),
            second.network_id()
        );

        let missing = tmp.path().join("missing.toml");
        assert!(matches!(
            load_roster_file(&missing),
            Err(GenesisError::Io { .. })
        ));
        let garbage = tmp.path().join("garbage.toml");
        std::fs::write(&garbage, "not = [toml").unwrap();
        let err = load_roster_file(&garbage).unwrap_err();
        assert!(
            matches!(&err, GenesisError::InFile { source, .. } if matches!(**source, GenesisError::Toml(_)))
        );
        assert!(err.to_string().contains("garbage.toml"));
    }
}
