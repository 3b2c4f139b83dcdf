//! `fedmesh demo [--clusters 5] [--byzantine 1] [--out DIR]`: the guided
//! multi-cluster walk-through; exit 0 only if every step held, 1 if one
//! failed, 2 on usage or setup errors.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::demo::{DemoOptions, run_blocking};

/// Arguments of `fedmesh demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How many clusters to start (4 to 12).
    #[arg(long, default_value_t = 5)]
    pub clusters: usize,
    /// How many of them equivocate in the Byzantine step (with a third of
    /// the weight or more, that step fails, as it must).
    #[arg(long, default_value_t = 1)]
    pub byzantine: usize,
    /// Directory for keys, roster, node data and vote logs (default: a new
    /// directory under the system temp dir).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl DemoArgs {
    /// The library options these arguments stand for.
    pub fn options(&self) -> DemoOptions {
        DemoOptions {
            clusters: self.clusters,
            byzantine: self.byzantine,
            out: self.out.clone(),
        }
    }
}

/// Runs `fedmesh demo` and prints the summary table.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let summary = run_blocking(&args.options())?;
    println!("\n{summary}");
    Ok(if summary.all_held() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
