//! The admin HTTP endpoint: `GET /` (the self-refreshing status page, see
//! [`page`]), `GET /status` (JSON [`StatusSnapshot`]),
//! `GET /metrics` (Prometheus text format), `GET /health` (`ok`),
//! `GET /roster` (JSON [`RosterStatus`]) and `POST /roster/propose` (a JSON
//! roster change, e.g. `{"op":"set_weight","id":"<hex>","weight":3}`), and
//! the delivery API: `POST /publish`, `POST /queues` ([`delivery`]) and
//! `GET /subscribe?pattern=P` (an NDJSON stream, [`subscribe`]).
//!
//! It is plain HTTP without authentication, meant for loopback (the default
//! address is `127.0.0.1:7800`); binding it elsewhere is logged as a warning.
//!
//! The node supplies its status through a [`StatusProvider`], a closure
//! called once per `GET /status`. A node that publishes its state through a
//! `tokio::sync::watch` channel can pass [`status_provider_from_watch`].

pub mod client;
pub mod delivery;
pub mod delivery_client;
pub mod delivery_stats;
pub mod metrics;
pub mod page;
pub mod roster;
pub mod status;
pub mod subscribe;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use self::metrics::{install_metrics, render_metrics};
pub use client::{
    ClientError, fetch_roster, fetch_status, fetch_status_json, parse_status, propose_roster_change,
};
pub use delivery_stats::{CausalStatus, DeliveryStats, QuorumStats};
pub use roster::{RosterMember, RosterProposer, RosterStatus, render_progress, render_roster};
pub use status::{
    ClusterQueues, GraphEdge, LinkStatus, MemberState, MemberStatus, NodeStatus, RecentEvent,
    RecentKind, RouteStatus, RoutingStats, StatusSnapshot, render_status_table,
};

/// Builds the [`StatusSnapshot`] served at `GET /status`.
///
/// Called on a tokio worker thread once per request, so it must be quick and
/// must not block: read state that the node keeps up to date (a `watch`
/// channel, an `ArcSwap`, a briefly held mutex), do not wait on the node's
/// actor. `uptime_s` should be computed at call time.
pub type StatusProvider = Arc<dyn Fn() -> StatusSnapshot + Send + Sync>;

/// A [`StatusProvider`] that serves the latest value of a watch channel.
pub fn status_provider_from_watch(
    rx: tokio::sync::watch::Receiver<StatusSnapshot>,
) -> StatusProvider {
    Arc::new(move || rx.borrow().clone())
}

/// The `Content-Type` of `GET /metrics`: Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the admin endpoint could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr} for the admin endpoint")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The bound address could not be read back.
    #[error("cannot read the admin endpoint's bound address")]
    LocalAddr(#[source] std::io::Error),
    /// The server stopped with an error.
    #[error("the admin endpoint failed")]
    Serve(#[source] std::io::Error),
}

#[derive(Clone)]
struct AdminState {
    provider: StatusProvider,
    metrics: PrometheusHandle,
    proposer: Option<RosterProposer>,
    delivery: Option<delivery::SharedDeliveryApi>,
}

/// What the node answers beyond status and metrics; each route answers 503
/// without its hook.
#[derive(Clone, Default)]
pub struct AdminHooks {
    /// Answers `POST /roster/propose`.
    pub proposer: Option<RosterProposer>,
    /// Answers `POST /publish`, `POST /queues` and `GET /subscribe`.
    pub delivery: Option<delivery::SharedDeliveryApi>,
}

/// The admin routes, for embedding in another axum server. [`serve`] is
/// the usual way to run them.
pub fn router(provider: StatusProvider, metrics: PrometheusHandle) -> Router {
    router_with_roster(provider, metrics, None)
}

/// [`router`] plus `POST /roster/propose`, answered by `proposer` (503
/// without one).
pub fn router_with_roster(
    provider: StatusProvider,
    metrics: PrometheusHandle,
    proposer: Option<RosterProposer>,
) -> Router {
    let hooks = AdminHooks {
        proposer,
        delivery: None,
    };
    router_with_hooks(provider, metrics, hooks)
}

/// Every admin route, answered by `hooks` where the node must act.
pub fn router_with_hooks(
    provider: StatusProvider,
    metrics: PrometheusHandle,
    hooks: AdminHooks,
) -> Router {
    Router::new()
        .route("/", get(page::get_page))
        .route("/status", get(get_status))
        .route("/metrics", get(get_metrics))
        .route("/health", get(get_health))
        .route("/roster", get(get_roster))
        .route("/roster/propose", post(post_propose))
        .route("/publish", post(delivery::post_publish))
        .route("/queues", post(delivery::post_queue))
        .route("/subscribe", get(subscribe::get_subscribe))
        .layer(axum::extract::DefaultBodyLimit::max(delivery::MAX_API_BODY))
        .with_state(AdminState {
            provider,
            metrics,
            proposer: hooks.proposer,
            delivery: hooks.delivery,
        })
}

async fn get_status(State(state): State<AdminState>) -> impl IntoResponse {
    axum::Json((state.provider)())
}

async fn get_roster(State(state): State<AdminState>) -> impl IntoResponse {
    axum::Json((state.provider)().roster)
}

/// Body: a JSON [`crate::proto::roster_sync::RosterChange`]. Answers 202
/// with the first progress, 409 if the node refused the change, 503 if
/// proposals are not wired.
async fn post_propose(
    State(state): State<AdminState>,
    axum::Json(change): axum::Json<crate::proto::roster_sync::RosterChange>,
) -> axum::response::Response {
    let Some(proposer) = state.proposer else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "roster proposals are not enabled",
        )
            .into_response();
    };
    match proposer(change).await {
        Ok(crate::proto::roster_sync::Progress::Failed { reason }) | Err(reason) => {
            (StatusCode::CONFLICT, reason).into_response()
        }
        Ok(progress) => (StatusCode::ACCEPTED, axum::Json(progress)).into_response(),
    }
}

async fn get_metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        render_metrics(&state.metrics),
    )
}

async fn get_health() -> &'static str {
    "ok"
}

/// Binds the admin endpoint on `addr` (port 0 picks a free port) and serves
/// it on a spawned task until `shutdown` completes.
///
/// Returns once the socket is bound, with the bound address (requests can
/// be sent at once) and the server task, which ends after `shutdown` fires
/// and the requests in flight are answered. Must be called within a tokio
/// runtime.
pub async fn serve<F>(
    addr: SocketAddr,
    provider: StatusProvider,
    metrics: PrometheusHandle,
    shutdown: F,
) -> Result<(SocketAddr, JoinHandle<Result<(), HttpError>>), HttpError>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_with_roster(addr, provider, metrics, None, shutdown).await
}

/// [`serve`] with `POST /roster/propose` answered by `proposer`.
pub async fn serve_with_roster<F>(
    addr: SocketAddr,
    provider: StatusProvider,
    metrics: PrometheusHandle,
    proposer: Option<RosterProposer>,
    shutdown: F,
) -> Result<(SocketAddr, JoinHandle<Result<(), HttpError>>), HttpError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let hooks = AdminHooks {
        proposer,
        delivery: None,
    };
    serve_admin(addr, provider, metrics, hooks, shutdown).await
}

/// [`serve`] with every route the node answers through `hooks`.
pub async fn serve_admin<F>(
    addr: SocketAddr,
    provider: StatusProvider,
    metrics: PrometheusHandle,
    hooks: AdminHooks,
    shutdown: F,
) -> Result<(SocketAddr, JoinHandle<Result<(), HttpError>>), HttpError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(HttpError::LocalAddr)?;
    if !local.ip().is_loopback() {
        tracing::warn!(
            addr = %local,
            "the admin endpoint has no authentication and listens beyond loopback"
        );
    }
    let app = router_with_hooks(provider, metrics, hooks);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(HttpError::Serve)
    });
    tracing::info!(addr = %local, "admin endpoint listening");
    Ok((local, task))
}
