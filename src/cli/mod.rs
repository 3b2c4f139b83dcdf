//! The `fedmesh` binary's front end: argument parsing and one module per
//! subcommand. Each subcommand returns the process exit code, or an error that
//! `main` prints with its cause chain and turns into exit code 2.

pub mod keygen;
pub mod roster;
pub mod verify;

use std::process::ExitCode;

/// Exit code for usage and I/O errors (clap uses the same for bad arguments).
pub const EXIT_ERROR: u8 = 2;

/// fedmesh: a QUIC overlay that federates clusters, with ed25519-signed
/// weighted votes and a verifiable vote log.
#[derive(Debug, clap::Parser)]
#[command(name = "fedmesh", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `fedmesh`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a cluster key (NAME.key, mode 0600) and its self-signed certificate (NAME.crt).
    Keygen(keygen::KeygenArgs),
    /// Create genesis roster files.
    #[command(subcommand)]
    Roster(roster::RosterCommand),
    /// Verify vote log files offline against a genesis roster.
    Verify(verify::VerifyArgs),
}

/// Runs the parsed command line.
pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Roster(cmd) => roster::run(cmd),
        Command::Verify(args) => verify::run(args),
    }
}
