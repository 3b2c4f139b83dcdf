//! `fedmesh status [--admin ADDR] [--json]`: what a running node knows, from
//! its admin endpoint. Exit 0 on success, 2 if the endpoint cannot be reached
//! or does not answer with a status.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::DEFAULT_ADMIN;
use crate::http::{fetch_status_json, parse_status, render_status_table};

/// How long `fedmesh status` waits for the node, connection included.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Arguments of `fedmesh status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The node's admin endpoint (its `admin` setting).
    #[arg(long, value_name = "IP:PORT", default_value_t = DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// Print the JSON answer of GET /status as is.
    #[arg(long)]
    pub json: bool,
}

/// Runs `fedmesh status`.
pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    // The client's errors say which URL failed and why.
    let body = fetch_status_json(args.admin, STATUS_TIMEOUT)?;
    // Parsed even with --json, so that a non-fedmesh answer is an error.
    let snapshot = parse_status(args.admin, &body)?;
    if args.json {
        print!("{body}");
        if !body.ends_with('\n') {
            println!();
        }
    } else {
        print!("{}", render_status_table(&snapshot));
        println!("\nstatus page: http://{}/", args.admin);
    }
    Ok(ExitCode::SUCCESS)
}
