//! `fedmesh verify` (placeholder until the vote-log verifier lands in this same change series).

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `fedmesh verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Vote log files to verify.
    #[arg(required = true)]
    pub logs: Vec<PathBuf>,
    /// The genesis roster file (roster.toml) of the network the logs belong to.
    #[arg(long)]
    pub roster: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Accept records after the last checkpoint (a log whose writer crashed).
    #[arg(long)]
    pub allow_unsealed: bool,
}

/// Runs `fedmesh verify`: exit 0 valid, 1 invalid, 2 usage or I/O error.
pub fn run(_args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("fedmesh verify is not wired yet")
}
