//! Every benchmark of the project under one command, with one table at the
//! end: each figure beside its raw baseline measured in the same run.
//!
//! ```text
//! cargo run --release --example benchmarks            # everything (about 10 min on 2 cores)
//! cargo run --release --example benchmarks -- --quick # smaller runs (about 3 min)
//! cargo run --release --example benchmarks -- --only routing,delivery
//! ```
//!
//! Each job is a separate `cargo bench` / `cargo run --release --example`
//! (so each can also be run alone, as docs/benchmarks.md shows); the runner
//! streams its output and gathers the rows it prints in the
//! [`fedmesh::testkit::figures`] format. A job that fails is reported as
//! failed and makes the runner exit non-zero; the others still run.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use fedmesh::testkit::figures::{HEADER, SEPARATOR, parse_row};

#[derive(Parser)]
#[command(about = "Run every fedmesh benchmark and print one table of figures")]
struct Args {
    /// Smaller runs: fewer votes, probes, rounds, nodes and idle seconds.
    #[arg(long)]
    quick: bool,
    /// Only these jobs (comma-separated names; see --list).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// List the jobs and exit.
    #[arg(long)]
    list: bool,
}

/// One benchmark program and how to run it.
struct Job {
    name: &'static str,
    what: &'static str,
    /// `cargo` arguments.
    args: &'static [&'static str],
    /// Environment for a full run, then for `--quick`.
    env: &'static [(&'static str, &'static str, &'static str)],
}

const JOBS: &[Job] = &[
    Job {
        name: "signatures",
        what: "vote log verification and the coordinator's tally vs raw ed25519-dalek",
        args: &["bench", "--bench", "foundation"],
        env: &[("VOTES", "100000", "20000")],
    },
    Job {
        name: "decisions",
        what: "quorum decisions/s with pipelining and vote batching vs raw sign/verify",
        args: &["bench", "--bench", "delivery"],
        env: &[("ROUNDS", "100000", "20000")],
    },
    Job {
        name: "quorum-latency",
        what: "BYZANTINE_QUORUM decision latency over QUIC vs the raw QUIC round trip",
        args: &["run", "--release", "--example", "quorum_latency"],
        env: &[("ROUNDS", "500", "200")],
    },
    Job {
        name: "throughput",
        what: "AT_LEAST_ONCE throughput of 1 KiB messages vs raw quinn streams",
        args: &["run", "--release", "--example", "alo_throughput"],
        env: &[("MSGS", "20000", "10000")],
    },
    Job {
        name: "routing",
        what: "relay cost per hop vs a direct QUIC round trip; reroute time",
        args: &["run", "--release", "--example", "route_overhead"],
        env: &[("PROBES", "2000", "300")],
    },
    Job {
        name: "footprint",
        what: "N node processes: memory, idle traffic, handshake, failure detection",
        args: &["run", "--release", "--example", "mesh_footprint"],
        env: &[("NODES", "20", "10"), ("IDLE_SECS", "20", "8")],
    },
    Job {
        name: "simulation",
        what: "membership convergence in the simulator (N = 10, 100, 1000; quick: 10, 100)",
        args: &["run", "--release", "--example", "sim_convergence", "--"],
        env: &[],
    },
];

/// Runs `job`, echoing its output; returns its figure rows.
fn run(job: &Job, quick: bool) -> anyhow::Result<Vec<Vec<String>>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(&cargo);
    cmd.args(job.args);
    if job.name == "simulation" {
        cmd.args(if quick {
            &["10", "100"][..]
        } else {
            &["10", "100", "1000"]
        });
    }
    for (key, full, small) in job.env {
        cmd.env(key, if quick { small } else { full });
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cargo}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut rows = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("  {line}");
        if let Some(cells) = parse_row(&line) {
            rows.push(cells);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{} exited with {status}", job.args.join(" "));
    }
    if rows.is_empty() {
        bail!("printed no figure rows");
    }
    Ok(rows)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.list {
        for j in JOBS {
            println!("{:<15} {}", j.name, j.what);
        }
        return Ok(());
    }
    if let Some(bad) = args
        .only
        .iter()
        .find(|n| !JOBS.iter().any(|j| j.name == n.as_str()))
    {
        bail!("unknown job {bad:?}; --list shows the jobs");
    }
    let jobs: Vec<&Job> = JOBS
        .iter()
        .filter(|j| args.only.is_empty() || args.only.iter().any(|n| n == j.name))
        .collect();
    let started = Instant::now();
    let mut table = Vec::new();
    let mut failed = Vec::new();
    for job in jobs {
        println!(
            "== {} — {} (cargo {})",
            job.name,
            job.what,
            job.args.join(" ")
        );
        let t = Instant::now();
        match run(job, args.quick) {
            Ok(rows) => table.extend(rows.into_iter().map(|r| (job.name, r))),
            Err(e) => {
                println!("!! {} failed: {e:#}", job.name);
                failed.push(job.name);
            }
        }
        println!("== {} done in {:.0} s", job.name, t.elapsed().as_secs_f64());
    }
    println!();
    println!(
        "fedmesh benchmarks ({}), {:.0} s, {} cores",
        if args.quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| job {HEADER}");
    println!("|---{SEPARATOR}");
    for (job, cells) in &table {
        println!("| {job} | {} |", cells.join(" | "));
    }
    if !failed.is_empty() {
        bail!("failed jobs: {}", failed.join(", "));
    }
    Ok(())
}
