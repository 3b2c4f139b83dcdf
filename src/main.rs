//! The `fedmesh` command-line tool.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use fedmesh::cli::{Cli, EXIT_ERROR, init_logging, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.command.configures_logging() {
        init_logging("warn", false);
    }
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
