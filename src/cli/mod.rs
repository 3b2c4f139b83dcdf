//! The `fedmesh` binary's front end: argument parsing and one module per
//! subcommand. Each subcommand returns the process exit code, or an error that
//! `main` prints with its cause chain and turns into exit code 2.

pub mod demo;
pub mod keygen;
pub mod roster;
pub mod roster_admin;
pub mod run;
pub mod run_args;
pub mod send;
pub mod status;
pub mod subscribe;
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
    /// Run a node (config file, flags override it).
    Run(run_args::RunArgs),
    /// Run a node that joins the mesh through the given seeds.
    Join(run_args::JoinArgs),
    /// Show a running node's members and links through its admin endpoint.
    Status(status::StatusArgs),
    /// Publish a message through a running node's admin endpoint.
    Send(send::SendArgs),
    /// Print the messages matching a pattern as a running node receives them.
    Subscribe(subscribe::SubscribeArgs),
    /// Walk through a multi-cluster federation on 127.0.0.1 (joins, routing,
    /// partition, roster change, Byzantine evidence, verify).
    Demo(demo::DemoArgs),
}

impl Command {
    /// Whether the command sets up logging itself (from its config).
    pub fn configures_logging(&self) -> bool {
        matches!(self, Command::Run(_) | Command::Join(_))
    }
}

/// Logs to stderr (stdout carries only each command's result), filtered by
/// `RUST_LOG` or else at `default_level`; JSON lines if `json`.
pub fn init_logging(default_level: &str, json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // Fails only if a subscriber is already installed, which leaves logging working.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Runs the parsed command line.
pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Roster(cmd) => roster::run(cmd),
        Command::Verify(args) => verify::run(args),
        Command::Run(args) => run::run_node(args.resolve()?),
        Command::Join(args) => run::run_node(args.resolve()?),
        Command::Status(args) => status::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Send(args) => send::run(args),
        Command::Subscribe(args) => subscribe::run(args),
    }
}
