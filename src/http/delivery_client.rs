//! A blocking client for the delivery API (`fedmesh send`, `fedmesh
//! subscribe`, tests).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::time::Duration;

use super::client::{ClientError, agent};
use super::delivery::{PublishAnswer, PublishRequest};
use super::subscribe::StreamLine;

/// Longest stream line accepted: a maximal base64 payload and its fields.
pub const MAX_LINE: usize = super::delivery::MAX_API_BODY;

/// The node's `{"error": ...}` body, or the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(512).collect())
}

/// `POST http://ADMIN/publish`: the message key and destinations.
pub fn publish(
    admin: SocketAddr,
    req: &PublishRequest,
    timeout: Duration,
) -> Result<PublishAnswer, ClientError> {
    let url = format!("http://{admin}/publish");
    let unreachable = |e| ClientError::Unreachable {
        url: url.clone(),
        source: Box::new(e),
    };
    let mut response = agent(timeout)
        .post(&url)
        .send_json(req)
        .map_err(unreachable)?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_LINE as u64)
        .read_to_string()
        .map_err(unreachable)?;
    match status {
        200..=299 => serde_json::from_str(&body).map_err(|source| ClientError::BadBody {
            url: url.clone(),
            source,
        }),
        400..=499 => Err(ClientError::Refused {
            message: error_message(&body),
        }),
        _ => Err(ClientError::Status { url, status }),
    }
}

/// Percent-encodes a query value (patterns hold `#`, which would end the URL).
fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len() * 3);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'*') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An open `GET /subscribe` stream: an iterator over its lines.
pub struct Subscription {
    url: String,
    reader: Box<dyn BufRead + Send>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("url", &self.url)
            .finish()
    }
}

/// `GET http://ADMIN/subscribe?pattern=P`: subscribes the node to
/// `pattern` and opens the stream. `connect_timeout` bounds the connection
/// and the answer's head; the stream itself has no deadline.
pub fn subscribe(
    admin: SocketAddr,
    pattern: &str,
    connect_timeout: Duration,
) -> Result<Subscription, ClientError> {
    let url = format!("http://{admin}/subscribe?pattern={}", encode_query(pattern));
    let unreachable = |e| ClientError::Unreachable {
        url: url.clone(),
        source: Box::new(e),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(connect_timeout))
        .timeout_recv_response(Some(connect_timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent.get(&url).call().map_err(unreachable)?;
    let status = response.status().as_u16();
    if !(200..=299).contains(&status) {
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .map_err(unreachable)?;
        return match status {
            400..=499 => Err(ClientError::Refused {
                message: error_message(&body),
            }),
            _ => Err(ClientError::Status { url, status }),
        };
    }
    let reader = response.into_body().into_reader();
    Ok(Subscription {
        url,
        reader: Box::new(BufReader::new(reader)),
    })
}

impl Subscription {
    /// The next line, `None` at the end of the stream (the node stopped).
    pub fn next_line(&mut self) -> Option<Result<StreamLine, ClientError>> {
        let mut buf = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf);
        match read {
            Ok(0) => None,
            Ok(_) if buf.len() > MAX_LINE => Some(Err(ClientError::Refused {
                message: format!("a stream line is longer than {MAX_LINE} bytes"),
            })),
            Ok(_) => Some(
                serde_json::from_slice(&buf).map_err(|source| ClientError::BadBody {
                    url: self.url.clone(),
                    source,
                }),
            ),
            Err(e) => Some(Err(ClientError::Unreachable {
                url: self.url.clone(),
                source: Box::new(ureq::Error::Io(e)),
            })),
        }
    }
}

impl Iterator for Subscription {
    type Item = Result<StreamLine, ClientError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_line()
    }
}
