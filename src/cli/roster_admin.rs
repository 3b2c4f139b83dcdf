//! `fedmesh roster show` and `fedmesh roster propose`: a running node's
//! roster epoch, and roster changes through its admin endpoint.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::config::DEFAULT_ADMIN;
use crate::http::{fetch_roster, propose_roster_change, render_progress, render_roster};
use crate::proto::ClusterId;
use crate::proto::roster_sync::{Progress, RosterChange};
use crate::store::keys::cluster_id_of_file;

/// How long one admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often `propose` polls the node for progress.
const POLL: Duration = Duration::from_millis(200);

/// Arguments of `fedmesh roster show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The node's admin endpoint.
    #[arg(long, value_name = "IP:PORT", default_value_t = DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// Print the JSON answer of GET /roster as is.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `fedmesh roster propose`.
#[derive(Debug, clap::Args)]
pub struct ProposeArgs {
    /// The node's admin endpoint.
    #[arg(long, value_name = "IP:PORT", default_value_t = DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// Seconds to wait for the change to be accepted.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// The change.
    #[command(subcommand)]
    pub change: ChangeArg,
}

/// A roster change on the command line. `ID` is a cluster id (64 hex
/// characters) or a cluster's .key/.crt file.
#[derive(Debug, clap::Subcommand)]
pub enum ChangeArg {
    /// Add a cluster.
    Add {
        /// The cluster's id or key/certificate file.
        id: String,
        /// Its voting weight.
        #[arg(long)]
        weight: u64,
        /// Its unique name in the roster.
        #[arg(long)]
        name: String,
    },
    /// Remove a cluster.
    Remove {
        /// The cluster's id or key/certificate file.
        id: String,
    },
    /// Change a cluster's weight.
    SetWeight {
        /// The cluster's id or key/certificate file.
        id: String,
        /// The new weight.
        weight: u64,
    },
}

fn cluster_id(arg: &str) -> anyhow::Result<ClusterId> {
    if arg.len() == 64 && arg.bytes().all(|b| b.is_ascii_hexdigit()) {
        return arg
            .parse()
            .map_err(|e| anyhow::anyhow!("bad cluster id {arg:?}: {e:?}"));
    }
    cluster_id_of_file(Path::new(arg))
        .with_context(|| format!("{arg:?} is neither a cluster id nor a key/certificate file"))
}

impl ChangeArg {
    /// The roster change it names.
    pub fn to_change(&self) -> anyhow::Result<RosterChange> {
        Ok(match self {
            ChangeArg::Add { id, weight, name } => RosterChange::Add {
                id: cluster_id(id)?,
                weight: *weight,
                name: name.clone(),
            },
            ChangeArg::Remove { id } => RosterChange::Remove {
                id: cluster_id(id)?,
            },
            ChangeArg::SetWeight { id, weight } => RosterChange::SetWeight {
                id: cluster_id(id)?,
                weight: *weight,
            },
        })
    }
}

/// Runs `fedmesh roster show`.
pub fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let (body, roster) = fetch_roster(args.admin, REQUEST_TIMEOUT)?;
    if args.json {
        println!("{}", body.trim_end());
    } else {
        print!("{}", render_roster(&roster));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `fedmesh roster propose`: proposes, prints each new progress line,
/// and exits 0 with the resulting epoch, 1 if the change failed or timed out.
pub fn propose(args: &ProposeArgs) -> anyhow::Result<ExitCode> {
    let change = args.change.to_change()?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let first = propose_roster_change(args.admin, &change, REQUEST_TIMEOUT)?;
    println!("proposed: {}", render_progress(&first));
    let mut last = Some(first);
    loop {
        match &last {
            Some(Progress::Done { epoch }) => {
                println!("roster epoch {epoch}");
                return Ok(ExitCode::SUCCESS);
            }
            Some(Progress::Failed { reason }) => {
                eprintln!("roster change failed: {reason}");
                return Ok(ExitCode::from(1));
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            eprintln!(
                "roster change not accepted within {}s; it may still be accepted later",
                args.timeout
            );
            return Ok(ExitCode::from(1));
        }
        std::thread::sleep(POLL);
        let (_, roster) = fetch_roster(args.admin, REQUEST_TIMEOUT)?;
        if roster.own_proposal != last {
            if let Some(p) = &roster.own_proposal {
                println!("{}", render_progress(p));
            }
            last = roster.own_proposal;
        }
        if last.is_none() {
            bail!("the node lost track of the proposal (restarted?)");
        }
    }
}
