//! `fedmesh roster ...`: genesis roster files, and (see `roster_admin`)
//! a running node's roster epochs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::proto::ClusterId;
use crate::proto::roster::{Member, Roster, validate_name};
use crate::store::genesis::{MAX_FILE_WEIGHT, write_roster_file};
use crate::store::keys::cluster_id_of_file;

/// The `fedmesh roster` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RosterCommand {
    /// Write a genesis roster (epoch 0) from cluster key or certificate files.
    Init(InitArgs),
    /// Show a running node's roster epoch, weights and pending change.
    Show(super::roster_admin::ShowArgs),
    /// Propose a roster change through a running node and wait for the
    /// resulting epoch.
    Propose(super::roster_admin::ProposeArgs),
}

/// Arguments of `fedmesh roster init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The network's name. 1-64 characters from A-Z a-z 0-9 . _ -
    #[arg(long)]
    pub network: String,
    /// The roster file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing roster file.
    #[arg(long)]
    pub force: bool,
    /// Members: a .crt or .key file (recognised by content) and an optional
    /// voting weight (default 1, 0 for an observer). The member name is the
    /// file name without its extension. A path containing '=' must be given
    /// with an explicit weight.
    #[arg(required = true, value_name = "CERT_OR_KEY[=WEIGHT]", value_parser = parse_member_spec)]
    pub members: Vec<MemberSpec>,
}

/// One `PATH[=WEIGHT]` argument of `roster init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    /// The key or certificate file.
    pub path: PathBuf,
    /// The voting weight.
    pub weight: u64,
}

/// Parses `PATH[=WEIGHT]`; everything after the last `=` is the weight, so a
/// typo in the weight is reported instead of being read as a file name.
pub fn parse_member_spec(arg: &str) -> Result<MemberSpec, String> {
    let (path, weight) = match arg.rsplit_once('=') {
        None => (arg, 1),
        Some((path, w)) => (path, parse_weight(w)?),
    };
    if path.is_empty() {
        return Err("missing the key or certificate path before '='".to_owned());
    }
    Ok(MemberSpec {
        path: PathBuf::from(path),
        weight,
    })
}

fn parse_weight(w: &str) -> Result<u64, String> {
    use std::num::IntErrorKind;
    let too_large = || format!("weight {w} is too large: at most {MAX_FILE_WEIGHT}");
    match w.parse::<u64>() {
        Ok(v) if v <= MAX_FILE_WEIGHT => Ok(v),
        Ok(_) => Err(too_large()),
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => Err(too_large()),
        Err(e) if *e.kind() == IntErrorKind::Empty => {
            Err("missing the weight after '='".to_owned())
        }
        Err(_) => Err(format!(
            "weight {w:?} is not a whole number (0 to {MAX_FILE_WEIGHT})"
        )),
    }
}

/// Runs a `fedmesh roster` subcommand.
pub fn run(cmd: &RosterCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RosterCommand::Init(args) => init(args),
        RosterCommand::Show(args) => super::roster_admin::show(args),
        RosterCommand::Propose(args) => super::roster_admin::propose(args),
    }
}

fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    validate_name(&args.network).context("invalid --network")?;
    let mut members = Vec::with_capacity(args.members.len());
    let mut by_id: HashMap<ClusterId, &Path> = HashMap::new();
    let mut by_name: HashMap<String, &Path> = HashMap::new();
    for spec in &args.members {
        let path = spec.path.as_path();
        let id = cluster_id_of_file(path)?;
        let name = member_name(path)?;
        if let Some(other) = by_id.insert(id, path) {
            bail!(
                "{} and {} hold the same cluster id {id}",
                other.display(),
                path.display()
            );
        }
        if let Some(other) = by_name.insert(name.clone(), path) {
            bail!(
                "{} and {} both give the member name {name:?}; rename one file",
                other.display(),
                path.display()
            );
        }
        members.push(Member {
            id,
            name,
            weight: spec.weight,
        });
    }
    let roster = Roster::genesis(&args.network, members).context("cannot build the roster")?;
    write_roster_file(&args.out, &roster, args.force)?;
    eprintln!(
        "wrote {}: network {:?}, {} members, total weight {}",
        args.out.display(),
        roster.network_name(),
        roster.members().len(),
        roster.total_weight()
    );
    eprintln!("network id:");
    println!("{}", roster.network_id());
    Ok(ExitCode::SUCCESS)
}

/// The member name a key file stands for: its name without the extension.
fn member_name(path: &Path) -> anyhow::Result<String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("{} has no usable file name", path.display()))?;
    validate_name(stem).with_context(|| {
        format!(
            "the member name comes from the file name of {}",
            path.display()
        )
    })?;
    Ok(stem.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_specs_parse_weights_and_report_bad_ones() {
        let spec = |path: &str, weight| MemberSpec {
            path: path.into(),
            weight,
        };
        assert_eq!(parse_member_spec("certs/a.key"), Ok(spec("certs/a.key", 1)));
        assert_eq!(parse_member_spec("a.crt=5"), Ok(spec("a.crt", 5)));
        assert_eq!(parse_member_spec("a=b.crt=0"), Ok(spec("a=b.crt", 0)));
        assert!(
            parse_member_spec("a.key=x")
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(
            parse_member_spec("a.key=-1")
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(
            parse_member_spec("a.key=")
                .unwrap_err()
                .contains("missing the weight")
        );
        assert!(
            parse_member_spec("=3")
                .unwrap_err()
                .contains("missing the key")
        );
        assert!(
            parse_member_spec("a.key=18446744073709551616")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_member_spec(&format!("a.key={}", MAX_FILE_WEIGHT + 1))
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(
            parse_member_spec(&format!("a.key={MAX_FILE_WEIGHT}")),
            Ok(spec("a.key", MAX_FILE_WEIGHT))
        );
    }
}
