//! `fedmesh verify LOG... --roster ROSTER [--json]`: exit 0 valid, 1 invalid,
//! 2 usage or I/O error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::audit::{FlagSource, Verdict, VerifyOptions, VerifyReport, verify_logs};
use crate::store::genesis::load_roster_file;

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

/// Runs `fedmesh verify`.
pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let roster = load_roster_file(&args.roster)
        .with_context(|| format!("cannot load roster {}", args.roster.display()))?;
    let options = VerifyOptions {
        allow_unsealed: args.allow_unsealed,
    };
    let report = verify_logs(Arc::new(roster), &args.logs, options);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    Ok(match report.verdict() {
        Verdict::Valid => ExitCode::SUCCESS,
        Verdict::Invalid => ExitCode::from(1),
        Verdict::IoError => ExitCode::from(2),
    })
}

fn print_human(report: &VerifyReport) {
    println!("network {} ({})", report.network, report.network_id.short());
    for log in &report.logs {
        let c = &log.counts;
        let node = log.node_id.map(|n| n.short()).unwrap_or_else(|| "?".into());
        let verdict = match (&log.io_error, &log.fault) {
            (Some(_), _) => "UNREADABLE",
            (None, Some(_)) => "INVALID",
            (None, None) => "VALID",
        };
        println!("{}  node {node}  {verdict}", log.path.display());
        println!(
            "  records {}  votes {}  certificates {}  evidence {}  rosters {}  checkpoints {}{}",
            c.records,
            c.votes,
            c.certificates,
            c.evidence,
            c.rosters,
            c.checkpoints,
            if log.sealed { "  sealed" } else { "" }
        );
        if let Some(e) = &log.io_error {
            println!("  error: {e}");
        }
        if let Some(f) = &log.fault {
            match f.index {
                Some(i) => println!("  first bad record: {i} ({}): {}", f.code, f.reason),
                None => println!("  bad header ({}): {}", f.code, f.reason),
            }
        }
    }
    println!("signers flagged: {}", report.flagged.len());
    for f in &report.flagged {
        let sources: Vec<&str> = f
            .sources
            .iter()
            .map(|s| match s {
                FlagSource::EvidenceRecord => "evidence record",
                FlagSource::Redetected => "re-detected",
            })
            .collect();
        println!(
            "  epoch {}  {}  {}  ({})",
            f.epoch,
            f.name,
            f.id,
            sources.join(", ")
        );
    }
    println!(
        "signatures: {} verified, {} duplicates skipped, {:.3} s ({:.0}/s)",
        report.signatures_verified,
        report.signatures_skipped,
        report.seconds,
        report.signatures_per_second()
    );
    let verdict = match report.verdict() {
        Verdict::Valid => "VALID",
        Verdict::Invalid => "INVALID",
        Verdict::IoError => "I/O ERROR",
    };
    println!("result: {verdict}");
}
