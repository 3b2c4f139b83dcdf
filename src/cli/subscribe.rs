//! `fedmesh subscribe --admin ADDR PATTERN`: subscribes a running node to
//! PATTERN and prints the matching messages as they arrive, one per line
//! (`--json`: the NDJSON stream as is; `--count N`: exit after N messages).
//! Exit 0 at the end of the stream or after N messages, 2 on errors.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::config::DEFAULT_ADMIN;
use crate::http::delivery_client::subscribe;
use crate::http::subscribe::{MessageLine, StreamLine};

/// How long `fedmesh subscribe` waits for the node to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `fedmesh subscribe`.
#[derive(Debug, clap::Args)]
pub struct SubscribeArgs {
    /// The node's admin endpoint.
    #[arg(long, value_name = "IP:PORT", default_value_t = DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// Print each line of the NDJSON stream as is.
    #[arg(long)]
    pub json: bool,
    /// Exit after this many messages.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// The subscription pattern (`*` one segment, `#` any number).
    pub pattern: String,
}

/// One message as a human reads it.
fn render(m: &MessageLine) -> String {
    let payload = match (&m.payload, &m.payload_base64) {
        (Some(text), _) => text.escape_debug().to_string(),
        (None, Some(b64)) => format!("base64:{b64}"),
        (None, None) => String::new(),
    };
    let causal = if m.causal { " causal" } else { "" };
    format!(
        "{}/{} {} {}{} {}",
        m.origin.short(),
        m.id,
        m.topic,
        m.guarantee,
        causal,
        payload
    )
}

/// Runs `fedmesh subscribe`.
pub fn run(args: &SubscribeArgs) -> anyhow::Result<ExitCode> {
    let stream = subscribe(args.admin, &args.pattern, CONNECT_TIMEOUT)?;
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    for line in stream {
        if args.count.is_some_and(|n| seen >= n) {
            break;
        }
        let line = line?;
        let mut out = stdout.lock();
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        }
        match &line {
            StreamLine::Subscribed { pattern } => eprintln!("subscribed to {pattern}"),
            StreamLine::Message(m) => {
                seen += 1;
                if !args.json {
                    writeln!(out, "{}", render(m))?;
                }
            }
            StreamLine::Missed { count } => {
                eprintln!("fedmesh subscribe: fell behind, {count} deliveries missed");
                if !args.json {
                    writeln!(out, "! missed {count} deliveries")?;
                }
            }
        }
        // Each message is visible at once to whoever reads the output.
        out.flush().context("cannot write to stdout")?;
        if args.count.is_some_and(|n| seen >= n) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
