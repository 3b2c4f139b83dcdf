//! The [`Transport`]: one quinn endpoint that both accepts and dials, and
//! turns every authenticated connection into a [`Link`].

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use quinn::{IdleTimeout, Runtime, TokioRuntime, VarInt};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::error::NetError;
use super::faulty::{FaultControl, FaultySocket};
use super::framing::DEFAULT_MAX_FRAME_LEN;
use super::link::{Link, LinkContext, close_code};
use super::stats::{TransportCounters, TransportStats};
use super::tls;
use crate::proto::ClusterId;
use crate::store::keys::TlsMaterial;

/// Tunables of a [`Transport`]. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportOptions {
    /// QUIC keep-alive interval (default 1 s): keeps NAT bindings and the
    /// idle timer fresh while a link is quiet.
    pub keep_alive: Duration,
    /// Idle timeout (default 5 s): a link that hears nothing for this long is
    /// closed as [`TimedOut`](super::CloseReason::TimedOut). QUIC uses the
    /// smaller of both sides' values. Must exceed `keep_alive`.
    pub idle_timeout: Duration,
    /// How long a dial or an inbound handshake may take (default 5 s).
    pub connect_timeout: Duration,
    /// Largest frame payload sent or accepted (default 1 MiB).
    pub max_frame_len: usize,
    /// Frames queued per priority class and link before `send` refuses
    /// (default 1024).
    pub queue_capacity: usize,
    /// Payload bytes queued per link, all classes together, before `send`
    /// refuses (default 16 MiB; at least `max_frame_len`).
    pub queue_bytes: usize,
    /// Inbound connections handshaking or waiting for [`Transport::accept`]
    /// at once; more are refused at once (default 64), so a flood of dials
    /// (or an owner slow to accept) cannot exhaust the node.
    pub max_pending_handshakes: usize,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            keep_alive: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            queue_capacity: 1024,
            queue_bytes: 16 << 20,
            max_pending_handshakes: 64,
        }
    }
}

impl TransportOptions {
    fn check(&self) -> Result<(), NetError> {
        let bad = |what: &str| Err(NetError::Options(what.to_owned()));
        if self.keep_alive.is_zero() || self.keep_alive >= self.idle_timeout {
            return bad("keep_alive must be positive and shorter than idle_timeout");
        }
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout must be positive");
        }
        if self.max_frame_len == 0 || self.max_frame_len > u32::MAX as usize {
            return bad("max_frame_len must be between 1 and u32::MAX");
        }
        if self.queue_capacity == 0 || self.queue_bytes < self.max_frame_len {
            return bad("queue_capacity must be positive and queue_bytes at least max_frame_len");
        }
        if self.max_pending_handshakes == 0 {
            return bad("max_pending_handshakes must be positive");
        }
        Ok(())
    }

    /// The QUIC transport parameters both directions use.
    fn quic(&self) -> Result<Arc<quinn::TransportConfig>, NetError> {
        let idle = IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| NetError::Options("idle_timeout is too long for QUIC".to_owned()))?;
        let mut config = quinn::TransportConfig::default();
        config
            .keep_alive_interval(Some(self.keep_alive))
            .max_idle_timeout(Some(idle))
            // One uni stream per direction, no bi streams (see `link`).
            .max_concurrent_uni_streams(VarInt::from_u32(1))
            .max_concurrent_bidi_streams(VarInt::from_u32(0))
            .datagram_receive_buffer_size(None);
        Ok(Arc::new(config))
    }
}

/// A QUIC endpoint that accepts and dials authenticated links.
///
/// It makes no protocol decisions: it reports who connected (by cluster id)
/// and leaves admission to its owner.
#[derive(Debug)]
pub struct Transport {
    endpoint: quinn::Endpoint,
    material: TlsMaterial,
    local_addr: SocketAddr,
    quic: Arc<quinn::TransportConfig>,
    connect_timeout: Duration,
    ctx: Arc<LinkContext>,
    accepted: Mutex<mpsc::Receiver<Accepted>>,
    accept_task: JoinHandle<()>,
    faults: Option<Arc<FaultControl>>,
}

impl Transport {
    /// Binds a UDP socket on `listen` and starts accepting connections.
    ///
    /// Must be called inside a tokio runtime. The material's certificate is
    /// checked here, so a node never starts with a certificate every peer
    /// would refuse.
    pub fn bind(
        listen: SocketAddr,
        material: &TlsMaterial,
        options: TransportOptions,
    ) -> Result<Transport, NetError> {
        Self::bind_inner(listen, material, options, None)
    }

    /// Like [`bind`](Self::bind), but over a UDP socket whose loss and
    /// partitions `faults` controls (tests only: it disables segmentation
    /// offload so every datagram is dropped or kept on its own).
    pub fn bind_with_faults(
        listen: SocketAddr,
        material: &TlsMaterial,
        options: TransportOptions,
        faults: Arc<FaultControl>,
    ) -> Result<Transport, NetError> {
        Self::bind_inner(listen, material, options, Some(faults))
    }

    fn bind_inner(
        listen: SocketAddr,
        material: &TlsMaterial,
        options: TransportOptions,
        faults: Option<Arc<FaultControl>>,
    ) -> Result<Transport, NetError> {
        tokio::runtime::Handle::try_current().map_err(|_| NetError::NoRuntime)?;
        options.check()?;
        let found = tls::cluster_id_from_cert(&material.cert_der).map_err(NetError::Material)?;
        if found != material.cluster_id {
            return Err(NetError::MaterialMismatch {
                claimed: material.cluster_id,
                found,
            });
        }
        let quic = options.quic()?;
        let mut server = quinn::ServerConfig::with_crypto(tls::server_crypto(material)?);
        server.transport_config(quic.clone());

        let bind_err = |source| NetError::Bind {
            addr: listen,
            source,
        };
        let socket = UdpSocket::bind(listen).map_err(bind_err)?;
        socket.set_nonblocking(true).map_err(bind_err)?;
        let runtime = Arc::new(TokioRuntime);
        let endpoint = match &faults {
            None => quinn::Endpoint::new(
                quinn::EndpointConfig::default(),
                Some(server),
                socket,
                runtime,
            ),
            Some(control) => runtime.wrap_udp_socket(socket).and_then(|inner| {
                quinn::Endpoint::new_with_abstract_socket(
                    quinn::EndpointConfig::default(),
                    Some(server),
                    Arc::new(FaultySocket::new(inner, control.clone())),
                    runtime,
                )
            }),
        }
        .map_err(bind_err)?;
        let local_addr = endpoint.local_addr().map_err(bind_err)?;

        let ctx = Arc::new(LinkContext {
            counters: TransportCounters::default(),
            shutdown: OnceLock::new(),
            next_id: AtomicU64::new(1),
            frame_cap: options.max_frame_len,
            queue_capacity: options.queue_capacity,
            queue_bytes: options.queue_bytes,
        });
        let (tx, rx) = mpsc::channel(options.max_pending_handshakes);
        let accept_task = tokio::spawn(accept_loop(
            endpoint.clone(),
            ctx.clone(),
            tx,
            Arc::new(Semaphore::new(options.max_pending_handshakes)),
            options.connect_timeout,
        ));
        tracing::info!(id = %material.cluster_id.short(), %local_addr, "transport listening");
        Ok(Transport {
            endpoint,
            material: TlsMaterial {
                cluster_id: material.cluster_id,
                cert_der: material.cert_der.clone(),
                key_pkcs8_der: material.key_pkcs8_der.clone(),
            },
            local_addr,
            quic,
            connect_timeout: options.connect_timeout,
            ctx,
            accepted: Mutex::new(rx),
            accept_task,
            faults,
        })
    }

    /// Dials `addr`. With `expected` set (`ID@HOST:PORT`), a peer presenting
    /// another key fails the handshake with [`NetError::PeerMismatch`];
    /// without it (a seed address), the peer's id is learned from the
    /// handshake.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        expected: Option<ClusterId>,
    ) -> Result<Link, NetError> {
        let result = self.dial(addr, expected).await;
        let counter = match &result {
            Ok(_) => &self.ctx.counters.handshakes,
            Err(_) => &self.ctx.counters.handshake_failures,
        };
        TransportCounters::bump(counter);
        if let Err(e) = &result {
            tracing::debug!(%addr, error = %e, "dial failed");
        }
        result
    }

    async fn dial(&self, addr: SocketAddr, expected: Option<ClusterId>) -> Result<Link, NetError> {
        let (crypto, seen) = tls::client_crypto_observed(&self.material, expected)?;
        let mut config = quinn::ClientConfig::new(crypto);
        config.transport_config(self.quic.clone());
        let connecting = self
            .endpoint
            .connect_with(config, addr, tls::SERVER_NAME)
            .map_err(|source| NetError::Connect { addr, source })?;
        let conn = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Err(_) => {
                return Err(NetError::HandshakeTimeout {
                    addr,
                    after: self.connect_timeout,
                });
            }
            Ok(Err(source)) => {
                return Err(match (expected, seen.get()) {
                    (Some(expected), Some(&found)) if found != expected => NetError::PeerMismatch {
                        addr,
                        expected,
                        found,
                    },
                    _ => NetError::Handshake { addr, source },
                });
            }
            Ok(Ok(conn)) => conn,
        };
        let link = make_link(&self.ctx, conn)?;
        // The verifier already enforced the pin; re-check rather than assume.
        match expected {
            Some(expected) if expected != link.peer() => {
                let found = link.peer();
                link.close("unexpected cluster id");
                Err(NetError::PeerMismatch {
                    addr,
                    expected,
                    found,
                })
            }
            _ => Ok(link),
        }
    }

    /// The next inbound link (handshakes run concurrently in the background;
    /// this returns them as they complete), or a failed inbound handshake,
    /// so it can be logged. `None` once the transport is closed.
    ///
    /// Cancel-safe: usable in `tokio::select!`.
    pub async fn accept(&self) -> Option<Result<Link, NetError>> {
        let (result, _permit) = self.accepted.lock().await.recv().await?;
        Some(result)
    }

    /// The bound UDP address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Our own cluster id.
    pub fn local_id(&self) -> ClusterId {
        self.material.cluster_id
    }

    /// The fault control this transport was bound with, if any.
    pub fn faults(&self) -> Option<&Arc<FaultControl>> {
        self.faults.as_ref()
    }

    /// Closes every link ([`close_code::SHUTDOWN`], "transport closed") and
    /// stops accepting; [`accept`](Self::accept) then returns `None`.
    pub fn close(&self) {
        const REASON: &str = "transport closed";
        let _ = self
            .ctx
            .shutdown
            .set((close_code::SHUTDOWN.into(), REASON.to_owned()));
        self.endpoint
            .close(VarInt::from_u32(close_code::SHUTDOWN), REASON.as_bytes());
    }

    /// Counters summed over every link this transport made, plus handshakes.
    pub fn stats(&self) -> TransportStats {
        self.ctx.counters.snapshot()
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        // Links outlive the transport if their owner keeps them; only the
        // accept loop, which nobody could read from any more, stops.
        self.accept_task.abort();
    }
}

/// An inbound handshake's outcome, with the permit it holds until accepted.
type Accepted = (Result<Link, NetError>, OwnedSemaphorePermit);

/// Turns an established connection into a link, refusing one without a
/// usable peer certificate.
fn make_link(ctx: &Arc<LinkContext>, conn: quinn::Connection) -> Result<Link, NetError> {
    match tls::peer_cluster_id(&conn) {
        Some(peer) => Ok(Link::new(ctx.clone(), conn, peer)),
        None => {
            let addr = conn.remote_address();
            conn.close(
                VarInt::from_u32(close_code::NO_IDENTITY),
                b"no usable peer identity",
            );
            Err(NetError::NoPeerIdentity { addr })
        }
    }
}

/// Accepts inbound connections and runs each handshake in its own task, so a
/// slow or hostile client cannot hold up the others.
async fn accept_loop(
    endpoint: quinn::Endpoint,
    ctx: Arc<LinkContext>,
    tx: mpsc::Sender<Accepted>,
    pending: Arc<Semaphore>,
    timeout: Duration,
) {
    while let Some(incoming) = endpoint.accept().await {
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            TransportCounters::bump(&ctx.counters.handshakes_refused);
            tracing::warn!(remote = %incoming.remote_address(), "too many handshakes, refusing");
            incoming.refuse();
            continue;
        };
        let (ctx, tx) = (ctx.clone(), tx.clone());
        tokio::spawn(async move {
            let addr = incoming.remote_address();
            let result = match tokio::time::timeout(timeout, incoming).await {
                Err(_) => Err(NetError::HandshakeTimeout {
                    addr,
                    after: timeout,
                }),
                Ok(Err(source)) => Err(NetError::Handshake { addr, source }),
                Ok(Ok(conn)) => make_link(&ctx, conn),
            };
            let counter = match &result {
                Ok(_) => &ctx.counters.handshakes,
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "inbound handshake failed");
                    &ctx.counters.handshake_failures
                }
            };
            TransportCounters::bump(counter);
            // The permit travels with the result and is released by
            // `accept`, so handshakes that finished but were not accepted
            // yet also count against the limit. If the transport is gone the
            // link is dropped, which closes it.
            let _ = tx.send((result, permit)).await;
        });
    }
}
