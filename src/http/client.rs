//! A blocking client for a node's admin endpoint, used by `fedmesh status`
//! and by tests that watch a running node.

use std::net::SocketAddr;
use std::time::Duration;

use super::status::StatusSnapshot;

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
    /// The answer is not a status snapshot.
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
    let url = format!("http://{admin}/status");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let unreachable = |e| ClientError::Unreachable {
        url: url.clone(),
        source: Box::new(e),
    };
    let mut response = agent.get(&url).call().map_err(unreachable)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(ClientError::Status { url, status });
    }
    response.body_mut().read_to_string().map_err(unreachable)
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
