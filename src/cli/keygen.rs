//! `fedmesh keygen`: a new cluster identity on disk.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::store::keys::generate_key_files;

/// Arguments of `fedmesh keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// The cluster's name: the files are NAME.key and NAME.crt, and it is the
    /// member name `roster init` will use. 1-64 characters from A-Z a-z 0-9 . _ -
    #[arg(long)]
    pub name: String,
    /// Directory to write the files to (created with mode 0700 if absent).
    #[arg(long, default_value = "certs")]
    pub out: PathBuf,
    /// Replace existing NAME.key / NAME.crt files (the old identity is lost).
    #[arg(long)]
    pub force: bool,
}

/// Runs `fedmesh keygen`. The cluster id is the only line on stdout, so that
/// scripts can capture it; everything else goes to stderr.
pub fn run(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let files = generate_key_files(&args.name, &args.out, args.force)
        .with_context(|| format!("cannot create keys for {:?}", args.name))?;
    eprintln!(
        "wrote {} (private key, mode 0600: keep it secret, never commit it)",
        files.key_path.display()
    );
    eprintln!("wrote {} (certificate)", files.cert_path.display());
    eprintln!("cluster id of {}:", args.name);
    println!("{}", files.cluster_id);
    Ok(ExitCode::SUCCESS)
}
