//! `GET /subscribe?pattern=P`: subscribes the node to `P` and streams the
//! matching messages as they arrive, one JSON object per line (NDJSON):
//!
//! - first `{"type":"subscribed","pattern":P}` once the subscription is in
//!   place (a client may publish from then on);
//! - then `{"type":"message","origin":..,"id":..,"topic":..,"guarantee":..,
//!   "causal":..,"payload":..}` per message (`payload_base64` instead of
//!   `payload` when the payload is not UTF-8);
//! - `{"type":"missed","count":N}` when this observer fell behind the node
//!   and N deliveries were lost to it (also counted in
//!   [`SUBSCRIBE_MISSED_TOTAL`]): a slow observer is never silently short.
//!
//! The stream ends when the node stops. The node's subscription stays in
//! place after the client leaves (other observers or the application may
//! rely on it).

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tokio::sync::broadcast;

use super::delivery::{ApiError, api};
use super::metrics::SUBSCRIBE_MISSED_TOTAL;
use crate::proto::core::Delivery;
use crate::proto::delivery::Envelope;
use crate::proto::identity::ClusterId;
use crate::proto::queue::Pattern;

/// The `Content-Type` of the stream.
pub const NDJSON_CONTENT_TYPE: &str = "application/x-ndjson";

/// Query of `GET /subscribe`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SubscribeQuery {
    /// The subscription pattern (`*` one segment, `#` any number).
    pub pattern: String,
}

/// One line of the stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamLine {
    /// The subscription is in place.
    Subscribed {
        /// The pattern.
        pattern: String,
    },
    /// A message matching the pattern.
    Message(MessageLine),
    /// This observer fell behind: `count` deliveries were lost to it.
    Missed {
        /// How many.
        count: u64,
    },
}

/// A message as the stream shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageLine {
    /// The cluster that published it.
    pub origin: ClusterId,
    /// The origin's id for it.
    pub id: u64,
    /// Its topic.
    pub topic: String,
    /// Its guarantee's name.
    pub guarantee: String,
    /// Whether it carried a causal clock.
    #[serde(default)]
    pub causal: bool,
    /// The payload, if it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The payload in base64, if it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
}

impl MessageLine {
    /// The line of `e`.
    pub fn of(e: &Envelope) -> Self {
        let (payload, payload_base64) = match std::str::from_utf8(&e.payload) {
            Ok(s) => (Some(s.to_owned()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&e.payload)),
            ),
        };
        MessageLine {
            origin: e.key.origin,
            id: e.key.id,
            topic: e.topic.as_str().to_owned(),
            guarantee: e.guarantee.name().to_owned(),
            causal: e.clock.is_some(),
            payload,
            payload_base64,
        }
    }

    /// The payload's bytes.
    pub fn payload_bytes(&self) -> Option<Vec<u8>> {
        match (&self.payload, &self.payload_base64) {
            (Some(s), _) => Some(s.as_bytes().to_vec()),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD.decode(b).ok(),
            (None, None) => None,
        }
    }
}

fn to_line(l: &StreamLine) -> String {
    // Serialising these types cannot fail (string keys only); say so if it did.
    let mut s = serde_json::to_string(l).unwrap_or_else(|e| {
        serde_json::json!({ "type": "error", "error": e.to_string() }).to_string()
    });
    s.push('\n');
    s
}

struct StreamState {
    rx: broadcast::Receiver<Delivery>,
    pattern: Pattern,
    first: Option<String>,
}

async fn next_line(mut s: StreamState) -> Option<(Result<String, Infallible>, StreamState)> {
    if let Some(first) = s.first.take() {
        return Some((Ok(first), s));
    }
    loop {
        let line = match s.rx.recv().await {
            Ok(Delivery::Message(e)) if s.pattern.matches(&e.topic) => {
                StreamLine::Message(MessageLine::of(&e))
            }
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(count)) => {
                metrics::counter!(SUBSCRIBE_MISSED_TOTAL).increment(count);
                StreamLine::Missed { count }
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        return Some((Ok(to_line(&line)), s));
    }
}

/// `GET /subscribe?pattern=P`: 200 with the NDJSON stream, 400 for a bad
/// pattern, 503 if the node stopped.
pub(super) async fn get_subscribe(
    State(state): State<super::AdminState>,
    query: Result<Query<SubscribeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let api = api(&state.delivery)?;
    let Query(q) = query.map_err(|r| ApiError::BadRequest(r.status(), r.body_text()))?;
    let pattern = Pattern::new(&q.pattern).map_err(|e| {
        ApiError::BadRequest(
            axum::http::StatusCode::BAD_REQUEST,
            format!("invalid pattern {:?}: {e}", q.pattern),
        )
    })?;
    let rx = api
        .subscribe(q.pattern.clone())
        .await
        .ok_or_else(|| ApiError::Unavailable("the node has stopped".into()))?;
    let state = StreamState {
        rx,
        pattern,
        first: Some(to_line(&StreamLine::Subscribed { pattern: q.pattern })),
    };
    let stream = futures_util::stream::unfold(state, next_line);
    Ok((
        [(header::CONTENT_TYPE, NDJSON_CONTENT_TYPE)],
        Body::from_stream(stream),
    )
        .into_response())
}
