//! The embedding API: start a node from a [`NodeConfig`], watch its members
//! and links, subscribe to membership events, shut it down gracefully.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fedmesh::node::NodeError> {
//! let config = fedmesh::config::NodeConfig::load("node.toml".as_ref())?;
//! let node = fedmesh::node::Node::start(config).await?;
//! for m in node.members() {
//!     println!("{} {:?}", m.id.short(), m.state);
//! }
//! node.shutdown().await;
//! # Ok(()) }
//! ```

mod actor;
mod commit;
mod delivery_api;
mod inbox;
mod links;
mod publish;
pub mod recent;
mod roster;
mod snapshot;

pub use inbox::{DEFAULT_INBOX_CAPACITY, Inbox, MIN_INBOX_CAPACITY};
pub use publish::{PublishError, Published};
pub use roster::{RosterChangeError, RosterProposal};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::{ConfigError, NodeConfig};
use crate::http::{LinkStatus, MemberStatus, RouteStatus, StatusSnapshot};
use crate::net::{FaultControl, NetError, Transport, TransportOptions};
use crate::proto::core::{Command, Core, CoreError, Delivery};
use crate::proto::delivery::Guarantee;
use crate::proto::identity::ClusterId;
use crate::proto::membership::config::MembershipConfig as CoreMembershipConfig;
use crate::proto::membership::event::Event;
use crate::proto::topology::LinkPolicy;
use crate::store::db::{Db, DbError};
use crate::store::genesis::{GenesisError, load_roster_file};
use crate::store::keys::{KeyFileError, load_identity, load_tls_material};
use crate::store::state::{StateError, load_incarnation};

use actor::{Actor, Dialed, Request};

/// Why a node cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The key or certificate cannot be used.
    #[error(transparent)]
    Keys(#[from] KeyFileError),
    /// The roster file cannot be used.
    #[error(transparent)]
    Roster(#[from] GenesisError),
    /// Persisted node state cannot be read.
    #[error(transparent)]
    State(#[from] StateError),
    /// The node database cannot be opened or read.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The protocol core refused the configuration (e.g. not a member).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The QUIC endpoint cannot be set up.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The admin endpoint cannot be started.
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// The listen address is a wildcard and no `advertise` address is set.
    #[error(
        "listen address {0} is a wildcard: set `advertise` to an address other clusters can dial"
    )]
    NoAdvertise(SocketAddr),
}

/// Options for tests and embedders beyond the config file.
#[derive(Default, Clone)]
pub struct NodeOptions {
    /// Put a fault-injecting socket under QUIC (loss, partitions).
    pub faults: Option<Arc<FaultControl>>,
    /// Seed of the protocol's random choices (random if unset).
    pub rng_seed: Option<u64>,
}

/// Starts nodes.
pub struct Node;

/// The vote log file in a node's data directory.
pub const VOTE_LOG_FILE: &str = "votes.log";

/// Opens (or creates) the node's vote log; a node without one still runs,
/// so a failure is logged loudly rather than stopping it.
fn open_vote_log(
    data_dir: &std::path::Path,
    network: crate::proto::bytes32::NetworkId,
    identity: &Arc<crate::proto::identity::Identity>,
) -> Option<crate::store::votelog::VoteLogWriter> {
    use crate::store::votelog::{VoteLogWriter, WriterOptions};
    let path = data_dir.join(VOTE_LOG_FILE);
    let exists = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
    let opened = if exists {
        VoteLogWriter::open(&path, network, identity.clone(), WriterOptions::default())
    } else {
        VoteLogWriter::create(&path, network, identity.clone(), WriterOptions::default())
    };
    match opened {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(error = %e, "cannot open the vote log; running without one");
            None
        }
    }
}

impl Node {
    /// Starts a node from `config`.
    pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
        Self::start_with(config, NodeOptions::default()).await
    }

    /// Starts a node from `config` with extra options.
    pub async fn start_with(
        config: NodeConfig,
        options: NodeOptions,
    ) -> Result<NodeHandle, NodeError> {
        Self::start_inner(config, options, None).await
    }

    /// Starts a node whose messages are handed to a reliable inbox of
    /// `capacity` messages (at least [`MIN_INBOX_CAPACITY`]) ([`NodeHandle::take_inbox`]; semantics in
    /// [`Inbox`]). The inbox exists from the first input on, so no message
    /// is acknowledged before the subscriber could have it.
    pub async fn start_with_inbox(
        config: NodeConfig,
        options: NodeOptions,
        capacity: usize,
    ) -> Result<NodeHandle, NodeError> {
        Self::start_inner(config, options, Some(capacity)).await
    }

    async fn start_inner(
        config: NodeConfig,
        options: NodeOptions,
        inbox_capacity: Option<usize>,
    ) -> Result<NodeHandle, NodeError> {
        config.validate()?;
        let identity = Arc::new(load_identity(&config.key)?);
        let material = load_tls_material(&config.cert_path(), &config.key)?;
        let roster = Arc::new(load_roster_file(&config.roster)?);
        let previous = load_incarnation(&config.data_dir)?;
        if config.admin.is_some() {
            // Before the store opens, so that what opening it counts is kept.
            crate::http::install_metrics();
        }
        let db = Db::open(&config.data_dir)?;
        let stored_epochs = db.roster_epochs()?;
        let signed_votes = db.signed_votes()?;
        let quorum_votes = db.quorum_votes()?;
        let data_state = db.delivery_state()?;

        let transport_options = TransportOptions {
            keep_alive: config.transport.keep_alive(),
            idle_timeout: config.transport.idle_timeout(),
            connect_timeout: config.transport.connect_timeout(),
            max_frame_len: config.transport.max_frame_bytes,
            ..TransportOptions::default()
        };
        let transport = Arc::new(match &options.faults {
            Some(f) => {
                Transport::bind_with_faults(config.listen, &material, transport_options, f.clone())?
            }
            None => Transport::bind(config.listen, &material, transport_options)?,
        });
        let local = transport.local_addr();
        let advertise = match config.advertise {
            Some(a) => a,
            None if local.ip().is_unspecified() => return Err(NodeError::NoAdvertise(local)),
            None => local,
        };

        let m = &config.membership;
        let defaults = CoreMembershipConfig::default();
        let membership = CoreMembershipConfig {
            gossip_interval: m.gossip_interval(),
            fanout: m.fanout,
            // Validated to be a whole number in 1..=20.
            phi_threshold: m.phi_threshold as u32,
            suspect_timeout: m.suspect_timeout(),
            dead_ttl: m.dead_ttl(),
            degree: m.max_links,
            // Keep the core's ratios valid for any degree from 1 to 1024.
            max_degree: defaults.max_degree.max(m.max_links),
            far_links: defaults.far_links.min(m.max_links - 1),
            max_links: defaults.max_links.max(m.max_links),
            max_connections: defaults.max_connections.max(m.max_links),
            open: config.open,
            link_policy: LinkPolicy {
                allowed_peers: m.resolve_allowed_peers(&roster)?,
            },
            ..defaults
        };
        let seeds: Vec<SocketAddr> = config.seeds.iter().map(|s| s.addr).collect();
        let pinned: HashMap<SocketAddr, ClusterId> = config
            .seeds
            .iter()
            .filter_map(|s| s.id.map(|id| (s.addr, id)))
            .collect();
        let rng_seed = options.rng_seed.unwrap_or_else(rand::random);
        let core = Core::new(
            identity.clone(),
            roster,
            membership,
            seeds,
            vec![advertise],
            previous,
            rng_seed,
        )?
        .with_roster_state(stored_epochs, signed_votes)
        .with_quorum_votes(quorum_votes);
        let vote_log = open_vote_log(&config.data_dir, core.roster().network_id(), &identity);
        if !data_state.outbox.is_empty() {
            tracing::info!(pending = data_state.outbox.len(), "outbox restored");
        }
        let core = core.with_data_state(data_state);
        if core.roster().epoch() > 0 {
            tracing::info!(epoch = core.roster().epoch(), "roster epochs restored");
        }
        if !core.config().open && core.roster().member(&core.id()).is_none() {
            // Allowed so that a cluster added by a roster change can join
            // with its old genesis file; say clearly why members refuse it
            // until it has learned that epoch.
            tracing::warn!(
                id = %core.id(),
                epoch = core.roster().epoch(),
                "this cluster is not a member of the roster it holds; waiting to learn a later roster epoch that lists it from the seeds (members refuse it with \"not a member\" until then)"
            );
        }

        let started = Instant::now();
        let (status_tx, status_rx) = watch::channel(snapshot::snapshot(
            &core,
            crate::proto::time::Millis::ZERO,
            local,
            0,
        ));
        let (events, _) = broadcast::channel(1024);
        let (deliveries, _) = broadcast::channel(4096);
        let (link_events_tx, link_events) = mpsc::channel(4096);
        let (dialed_tx, dialed) = mpsc::channel(256);
        let (requests_tx, requests) = mpsc::channel(256);

        let accept_transport = transport.clone();
        let accept_tx = dialed_tx.clone();
        let accept = tokio::spawn(async move {
            while let Some(r) = accept_transport.accept().await {
                if accept_tx.send(Dialed::Inbound(r)).await.is_err() {
                    break;
                }
            }
        });

        let (http_stop_tx, http_stop) = oneshot::channel::<()>();
        let admin = match config.admin {
            Some(addr) => {
                let provider = crate::http::status_provider_from_watch(status_rx.clone());
                let metrics = crate::http::install_metrics();
                let requests = requests_tx.clone();
                let proposer: crate::http::RosterProposer = Arc::new(move |change| {
                    let requests = requests.clone();
                    Box::pin(async move {
                        roster::propose_via(&requests, change)
                            .await
                            .map_err(|e| e.to_string())
                    })
                });
                let delivery = delivery_api::NodeDelivery::new(requests_tx.clone(), &deliveries);
                let hooks = crate::http::AdminHooks {
                    proposer: Some(proposer),
                    delivery: Some(Arc::new(delivery)),
                };
                let (bound, _task) =
                    crate::http::serve_admin(addr, provider, metrics, hooks, async move {
                        let _ = http_stop.await;
                    })
                    .await?;
                tracing::info!(%bound, "admin endpoint listening");
                Some(bound)
            }
            None => None,
        };

        let outbox_depth = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (inbox_tx, inbox_rx) = match inbox_capacity.map(inbox::channel) {
            Some((tx, rx)) => (Some(tx), Some(rx)),
            None => (None, None),
        };
        let (commits, db_closed) = commit::CommitPipeline::new(db, deliveries.clone());
        let actor = Actor {
            core,
            transport: transport.clone(),
            links: Default::default(),
            link_events_tx,
            link_events,
            dialed_tx,
            dialed,
            requests,
            events: events.clone(),
            deliveries: deliveries.clone(),
            status: status_tx,
            pinned,
            data_dir: config.data_dir.clone(),
            started,
            timer: None,
            closing: Vec::new(),
            routes_seen: 0,
            roster_progress: None,
            recent: Default::default(),
            vote_log,
            inbox: inbox_tx,
            staged: Vec::new(),
            scratch: Vec::new(),
            batching: false,
            staged_link_change: false,
            commits,
            failed: false,
            outbox_depth: outbox_depth.clone(),
        };
        let task = tokio::spawn(actor.run());
        tracing::info!(id = %identity.id(), %local, "node started");
        Ok(NodeHandle {
            id: identity.id(),
            local,
            admin,
            status: status_rx,
            events,
            deliveries,
            requests: requests_tx,
            task,
            accept,
            http_stop: Some(http_stop_tx),
            faults: options.faults,
            inbox: std::sync::Mutex::new(inbox_rx),
            transport,
            outbox_depth,
            db_closed: Some(db_closed),
        })
    }
}

/// A running node.
pub struct NodeHandle {
    id: ClusterId,
    local: SocketAddr,
    admin: Option<SocketAddr>,
    status: watch::Receiver<StatusSnapshot>,
    events: broadcast::Sender<Event>,
    deliveries: broadcast::Sender<Delivery>,
    requests: mpsc::Sender<Request>,
    task: JoinHandle<()>,
    accept: JoinHandle<()>,
    http_stop: Option<oneshot::Sender<()>>,
    faults: Option<Arc<FaultControl>>,
    inbox: std::sync::Mutex<Option<Inbox>>,
    transport: Arc<Transport>,
    outbox_depth: Arc<std::sync::atomic::AtomicUsize>,
    /// Ends once the node's database is closed (see [`NodeHandle::crash`]).
    db_closed: Option<oneshot::Receiver<()>>,
}

/// How long [`NodeHandle::shutdown`] waits for the graceful leave.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl NodeHandle {
    /// This node's cluster id.
    pub fn id(&self) -> ClusterId {
        self.id
    }

    /// The QUIC address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The admin HTTP address, if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// The latest status (refreshed every gossip interval and on every membership change).
    pub fn status(&self) -> StatusSnapshot {
        self.status.borrow().clone()
    }

    /// The status as a watch channel: `changed()` wakes on every refresh,
    /// for callers that wait for a condition instead of polling.
    pub fn watch_status(&self) -> watch::Receiver<StatusSnapshot> {
        self.status.clone()
    }

    /// Known members, this node included.
    pub fn members(&self) -> Vec<MemberStatus> {
        self.status().members
    }

    /// Live links.
    pub fn links(&self) -> Vec<LinkStatus> {
        self.status().links
    }

    /// Membership events from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The route to every reachable cluster (as of the latest status).
    pub fn routes(&self) -> Vec<RouteStatus> {
        self.status().routes
    }

    /// Routed deliveries (probes received, acks, expiries) from now on.
    pub fn deliveries(&self) -> broadcast::Receiver<Delivery> {
        self.deliveries.subscribe()
    }

    /// AT_LEAST_ONCE and BROADCAST messages published here and not yet
    /// acknowledged by every destination.
    pub fn outbox_depth(&self) -> usize {
        self.outbox_depth.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Per-destination acknowledgement state of an AT_LEAST_ONCE or
    /// BROADCAST message published here: `None` once every destination
    /// acknowledged it (or if the key is unknown or the node stopped).
    pub async fn message_status(
        &self,
        key: crate::proto::delivery::MessageKey,
    ) -> Option<Vec<(ClusterId, crate::proto::delivery::DestStatus)>> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::MessageStatus(key, tx))
            .await
            .ok()?;
        rx.await.ok().flatten()
    }

    /// The reliable inbox, once (see [`Inbox`]); `None` if the node was not
    /// started with [`Node::start_with_inbox`] or it was taken already.
    pub fn take_inbox(&self) -> Option<Inbox> {
        self.inbox.lock().ok().and_then(|mut i| i.take())
    }

    /// Sends an at-least-once test probe to `dst` over the best route; its
    /// outcome arrives on [`Self::deliveries`]. False if the node stopped.
    pub async fn send_probe(&self, dst: ClusterId, id: u64, body: Vec<u8>) -> bool {
        self.requests
            .send(Request::Command(Command::SendProbe { dst, id, body }))
            .await
            .is_ok()
    }

    /// Hosts the queue `name` here (advertised in this node's record). False
    /// if the node stopped; an invalid name is logged and ignored.
    pub async fn create_queue(&self, name: &str) -> bool {
        self.command(Command::CreateQueue(name.to_owned())).await
    }

    /// Subscribes this node to `pattern` (`*` one segment, `#` any number);
    /// matching messages arrive on [`Self::deliveries`] as
    /// [`Delivery::Message`]. False if the node stopped.
    pub async fn subscribe(&self, pattern: &str) -> bool {
        self.command(Command::Subscribe(pattern.to_owned())).await
    }

    /// Drops the subscription `pattern`. False if the node stopped.
    pub async fn unsubscribe(&self, pattern: &str) -> bool {
        self.command(Command::Unsubscribe(pattern.to_owned())).await
    }

    /// Publishes `payload` to every cluster subscribed to `topic`. The key
    /// (or the refusal) arrives on [`Self::deliveries`] as
    /// [`Delivery::Published`] / [`Delivery::PublishRefused`], in publish
    /// order. False if the node stopped.
    pub async fn publish(&self, topic: &str, guarantee: Guarantee, payload: Vec<u8>) -> bool {
        self.command(Command::Publish {
            topic: topic.to_owned(),
            guarantee,
            payload,
        })
        .await
    }

    /// Votes REJECT on quorum messages published to `topic` from now on.
    pub async fn refuse_quorum_topic(&self, topic: &str) -> bool {
        self.command(Command::RefuseQuorumTopic(topic.to_owned()))
            .await
    }

    /// Test and demo only: makes this node a Byzantine cluster (equivocating
    /// voter or two-faced origin), or honest again with `None`.
    pub async fn set_byzantine_for_demo(
        &self,
        behaviour: Option<crate::proto::core::Byzantine>,
    ) -> bool {
        self.command(Command::SetByzantine(behaviour)).await
    }

    async fn command(&self, c: Command) -> bool {
        self.requests.send(Request::Command(c)).await.is_ok()
    }

    /// The fault injector under this node's socket, if it was started with one.
    pub fn faults(&self) -> Option<&Arc<FaultControl>> {
        self.faults.as_ref()
    }

    /// Stops the node at once, as a crash would: no leave announcement, no
    /// flush, nothing written after the last completed commit (for
    /// restart tests). The only courtesy is closing the QUIC endpoint, so
    /// peers notice now rather than after the idle timeout and the data
    /// directory can be opened again as soon as this returns.
    pub async fn crash(mut self) {
        self.task.abort();
        self.accept.abort();
        // Waiting for the aborted task drops the actor; a commit already
        // running on its blocking thread still holds the database.
        let _ = (&mut self.task).await;
        if let Some(closed) = self.db_closed.take() {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, closed).await;
        }
        self.transport.close();
        if let Some(stop) = self.http_stop.take() {
            let _ = stop.send(());
        }
    }

    /// Leaves the federation gracefully (peers see it as left, not dead)
    /// and stops every task.
    pub async fn shutdown(mut self) {
        let (done_tx, done) = oneshot::channel();
        if self.requests.send(Request::Shutdown(done_tx)).await.is_ok() {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, done).await;
        }
        if let Some(stop) = self.http_stop.take() {
            let _ = stop.send(());
        }
        self.accept.abort();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await;
    }
}
