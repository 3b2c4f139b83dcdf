//! The delivery API of the admin endpoint: `POST /publish` and
//! `POST /queues` (this file), `GET /subscribe` ([`super::subscribe`]).
//!
//! Bodies are JSON and bounded ([`MAX_API_BODY`]); every refusal is a 4xx
//! (or 503) with a JSON body `{"error": "..."}` saying why.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tokio::sync::broadcast;

use crate::proto::core::{Delivery, PublishOptions};
use crate::proto::delivery::{Guarantee, MAX_PAYLOAD};
use crate::proto::identity::ClusterId;
use crate::proto::queue::QueueName;

/// Largest request body of the delivery API: a [`MAX_PAYLOAD`] payload in
/// base64 plus the JSON around it.
pub const MAX_API_BODY: usize = MAX_PAYLOAD / 3 * 4 + 64 * 1024;

/// A boxed future answered by the node.
pub type ApiFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the admin endpoint asks of the node for the delivery API.
pub trait DeliveryApi: Send + Sync {
    /// Publishes; `Err` is the node's refusal.
    fn publish(
        &self,
        topic: String,
        guarantee: Guarantee,
        payload: Vec<u8>,
        options: PublishOptions,
    ) -> ApiFuture<Result<PublishAnswer, String>>;
    /// Hosts a (valid) queue name here; false if the node stopped.
    fn create_queue(&self, name: String) -> ApiFuture<bool>;
    /// Subscribes the node to a (valid) pattern and returns the node's
    /// deliveries from before the subscription on; `None` if it stopped.
    fn subscribe(&self, pattern: String) -> ApiFuture<Option<broadcast::Receiver<Delivery>>>;
}

/// The node's delivery API, shared by the handlers.
pub type SharedDeliveryApi = Arc<dyn DeliveryApi>;

/// Body of `POST /publish`. `payload` (UTF-8 text) or `payload_base64`
/// (standard alphabet, padded), not both.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The queue or topic (`queue` is accepted as an alias).
    #[serde(alias = "queue")]
    pub topic: String,
    /// A guarantee name (`at-least-once`, `AT_LEAST_ONCE`, ...); at-least-once if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guarantee: Option<String>,
    /// The payload as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The payload in base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// Deliver in causal order (needs at-least-once or broadcast).
    #[serde(default)]
    pub causal: bool,
}

/// Answer of `POST /publish`: the message key and its destinations.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublishAnswer {
    /// The message's origin (this node).
    pub origin: ClusterId,
    /// The origin's id for it.
    pub id: u64,
    /// The clusters it is sent to; empty if nobody is subscribed.
    pub dests: Vec<ClusterId>,
}

/// Body of `POST /queues`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateQueueRequest {
    /// The queue's name.
    pub name: String,
}

/// Why a delivery API request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (status 400, or the JSON extractor's status).
    #[error("{1}")]
    BadRequest(StatusCode, String),
    /// The node refused it (409).
    #[error("{0}")]
    Refused(String),
    /// The delivery API is not enabled or the node stopped (503).
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    fn bad(message: impl Into<String>) -> Self {
        ApiError::BadRequest(StatusCode::BAD_REQUEST, message.into())
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(s, _) => *s,
            ApiError::Refused(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::BadRequest(r.status(), r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}

pub(super) fn api(delivery: &Option<SharedDeliveryApi>) -> Result<&SharedDeliveryApi, ApiError> {
    delivery
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("the delivery API is not enabled".into()))
}

impl PublishRequest {
    /// The guarantee and payload asked for, checked.
    pub fn parse(&self) -> Result<(Guarantee, Vec<u8>), ApiError> {
        let guarantee = match &self.guarantee {
            None => Guarantee::AtLeastOnce,
            Some(g) => g
                .parse()
                .map_err(|e: crate::proto::delivery::UnknownGuarantee| {
                    ApiError::bad(e.to_string())
                })?,
        };
        let payload = match (&self.payload, &self.payload_base64) {
            (Some(text), None) => text.as_bytes().to_vec(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| ApiError::bad(format!("payload_base64 is not base64: {e}")))?,
            (None, None) => return Err(ApiError::bad("give payload or payload_base64")),
            (Some(_), Some(_)) => {
                return Err(ApiError::bad("give payload or payload_base64, not both"));
            }
        };
        if payload.len() > MAX_PAYLOAD {
            return Err(ApiError::BadRequest(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "payload is {} bytes, at most {MAX_PAYLOAD} are allowed",
                    payload.len()
                ),
            ));
        }
        QueueName::new(&self.topic)
            .map_err(|e| ApiError::bad(format!("invalid topic {:?}: {e}", self.topic)))?;
        Ok((guarantee, payload))
    }
}

/// `POST /publish`: 200 with a [`PublishAnswer`], 4xx if malformed, 409 if
/// the node refused it.
pub(super) async fn post_publish(
    State(state): State<super::AdminState>,
    body: Result<Json<PublishRequest>, JsonRejection>,
) -> Result<Json<PublishAnswer>, ApiError> {
    let api = api(&state.delivery)?;
    let Json(req) = body?;
    let (guarantee, payload) = req.parse()?;
    let options = PublishOptions { causal: req.causal };
    let answer = api
        .publish(req.topic, guarantee, payload, options)
        .await
        .map_err(ApiError::Refused)?;
    Ok(Json(answer))
}

/// `POST /queues`: 201 once the node hosts the queue, 400 for an invalid name.
pub(super) async fn post_queue(
    State(state): State<super::AdminState>,
    body: Result<Json<CreateQueueRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CreateQueueRequest>), ApiError> {
    let api = api(&state.delivery)?;
    let Json(req) = body?;
    QueueName::new(&req.name)
        .map_err(|e| ApiError::bad(format!("invalid queue name {:?}: {e}", req.name)))?;
    if !api.create_queue(req.name.clone()).await {
        return Err(ApiError::Unavailable("the node has stopped".into()));
    }
    Ok((StatusCode::CREATED, Json(req)))
}
