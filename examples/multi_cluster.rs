//! The multi-cluster demo, the same as `fedmesh demo`: clusters on 127.0.0.1
//! over real QUIC join, route over several hops, survive a partition, change
//! a weight by quorum, flag a Byzantine cluster with evidence and pass
//! `verify`. Exits 0 only if every step held.
//!
//! Run: `cargo run --release --example multi_cluster [-- --clusters 5 --byzantine 1 --out DIR]`

use std::process::ExitCode;

use clap::Parser;
use fedmesh::cli::demo::{DemoArgs, run};

/// The example's flags are `fedmesh demo`'s.
#[derive(Debug, Parser)]
#[command(name = "multi_cluster")]
struct Args {
    #[command(flatten)]
    demo: DemoArgs,
}

fn main() -> ExitCode {
    fedmesh::cli::init_logging("error", false);
    match run(&Args::parse().demo) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(fedmesh::cli::EXIT_ERROR)
        }
    }
}
