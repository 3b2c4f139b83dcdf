//! `fedmesh send --admin ADDR --queue Q --guarantee G PAYLOAD`: publishes
//! through a running node's admin endpoint and prints the message key and
//! its destinations. Exit 0 when published, 1 if the node refused it, 2 if
//! the endpoint cannot be reached.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::DEFAULT_ADMIN;
use crate::http::client::ClientError;
use crate::http::delivery::PublishRequest;
use crate::http::delivery_client::publish;
use crate::proto::delivery::Guarantee;

/// How long `fedmesh send` waits for the node.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `fedmesh send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The node's admin endpoint.
    #[arg(long, value_name = "IP:PORT", default_value_t = DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// The queue or topic to publish to.
    #[arg(long, visible_alias = "topic", value_name = "NAME")]
    pub queue: String,
    /// fire-and-forget, at-least-once, broadcast, global-quorum or
    /// byzantine-quorum (any case, `-` or `_`).
    #[arg(long, default_value_t = Guarantee::AtLeastOnce)]
    pub guarantee: Guarantee,
    /// Deliver in causal order (needs at-least-once or broadcast).
    #[arg(long)]
    pub causal: bool,
    /// PAYLOAD is base64 (for binary payloads).
    #[arg(long)]
    pub base64: bool,
    /// Print the node's JSON answer as is.
    #[arg(long)]
    pub json: bool,
    /// The message (UTF-8 text, or base64 with --base64).
    pub payload: String,
}

/// Runs `fedmesh send`.
pub fn run(args: &SendArgs) -> anyhow::Result<ExitCode> {
    let (payload, payload_base64) = if args.base64 {
        (None, Some(args.payload.clone()))
    } else {
        (Some(args.payload.clone()), None)
    };
    let req = PublishRequest {
        topic: args.queue.clone(),
        guarantee: Some(args.guarantee.name().to_owned()),
        payload,
        payload_base64,
        causal: args.causal,
    };
    let answer = match publish(args.admin, &req, SEND_TIMEOUT) {
        Ok(a) => a,
        Err(ClientError::Refused { message }) => {
            eprintln!("fedmesh send: refused: {message}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("key {}/{}", answer.origin, answer.id);
    let dests: Vec<String> = answer.dests.iter().map(|d| d.short()).collect();
    if dests.is_empty() {
        println!(
            "destinations 0 (no cluster is subscribed to {})",
            args.queue
        );
    } else {
        println!("destinations {}: {}", dests.len(), dests.join(" "));
    }
    Ok(ExitCode::SUCCESS)
}
