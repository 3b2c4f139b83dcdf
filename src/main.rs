//! The `fedmesh` command-line tool.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use fedmesh::cli::{Cli, EXIT_ERROR, run};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Logs go to stderr so that stdout carries only each command's result.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    // Fails only if a subscriber is already installed, which leaves logging working.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();

    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
