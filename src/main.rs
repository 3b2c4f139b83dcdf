//! The `fedmesh` command-line tool.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use fedmesh::cli::{Cli, EXIT_ERROR, init_logging, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.command.configures_logging() {
        // The demo's story is on stdout; its nodes' expected dial failures
        // during the partition would only clutter it.
        let level = if matches!(cli.command, fedmesh::cli::Command::Demo(_)) {
            "error"
        } else {
            "warn"
        };
        init_logging(level, false);
    }
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
