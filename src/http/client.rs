//! A blocking client for a node's admin endpoint, used by `fedmesh status`
//! and by tests that watch a running node.

use std::net::SocketAddr;
use std::time::Duration;

use super::roster::RosterStatus;
use super::status::StatusSnapshot;
use crate::proto::roster_sync::{Progress, RosterChange};

/// Why the status of a node could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer: nothing listens there, the connection failed or timed out.
    #[error("cannot reach the admin endpoint at {url} (is the node running, with admin enabled?)")]
    Unreachable {
        /// The URL requested.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The endpoint answered with an error status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The node refused the request (e.g. an invalid roster change).
    #[error("the node refused: {message}")]
    Refused {
        /// The node's explanation.
        message: String,
    },
    /// The answer is not what a fedmesh node sends.
    #[error("{url} did not answer with a fedmesh status")]
    BadBody {
        /// The URL requested.
        url: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// `GET http://ADMIN/status`, returning the body as received (JSON).
///
/// `timeout` bounds the whole exchange, connection included.
pub fn fetch_status_json(admin: SocketAddr, timeout: Duration) -> Result<String, ClientError> {
    request(admin, "/status", None, timeout)
}

pub(super) fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// A GET (or a POST of `body` as JSON) to `path`; the answer's body when
/// the status is 2xx.
fn request(
    admin: SocketAddr,
    path: &str,
    body: Option<&RosterChange>,
    timeout: Duration,
) -> Result<String, ClientError> {
    let url = format!("http://{admin}{path}");
    let unreachable = |e| ClientError::Unreachable {
        url: url.clone(),
        source: Box::new(e),
    };
    let agent = agent(timeout);
    let mut response = match body {
        None => agent.get(&url).call(),
        Some(b) => agent.post(&url).send_json(b),
    }
    .map_err(unreachable)?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().map_err(unreachable)?;
    match status {
        200..=299 => Ok(text),
        409 => Err(ClientError::Refused {
            message: text.chars().take(512).collect(),
        }),
        _ => Err(ClientError::Status { url, status }),
    }
}

/// `GET http://ADMIN/roster`, returning the body as received and parsed.
pub fn fetch_roster(
    admin: SocketAddr,
    timeout: Duration,
) -> Result<(String, RosterStatus), ClientError> {
    let body = request(admin, "/roster", None, timeout)?;
    let parsed = serde_json::from_str(&body).map_err(|source| ClientError::BadBody {
        url: format!("http://{admin}/roster"),
        source,
    })?;
    Ok((body, parsed))
}

/// `POST http://ADMIN/roster/propose`: the proposal's first progress.
pub fn propose_roster_change(
    admin: SocketAddr,
    change: &RosterChange,
    timeout: Duration,
) -> Result<Progress, ClientError> {
    let body = request(admin, "/roster/propose", Some(change), timeout)?;
    serde_json::from_str(&body).map_err(|source| ClientError::BadBody {
        url: format!("http://{admin}/roster/propose"),
        source,
    })
}

/// `GET http://ADMIN/status`, parsed.
pub fn fetch_status(admin: SocketAddr, timeout: Duration) -> Result<StatusSnapshot, ClientError> {
    let body = fetch_status_json(admin, timeout)?;
    parse_status(admin, &body)
}

/// Parses the body of `GET /status` from `admin` (named in errors).
pub fn parse_status(admin: SocketAddr, body: &str) -> Result<StatusSnapshot, ClientError> {
    serde_json::from_str(body).map_err(|source| ClientError::BadBody {
        url: format!("http://{admin}/status"),
        source,
    })
}
