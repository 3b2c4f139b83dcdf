//! A fault-injecting UDP socket under quinn, for tests: random loss of
//! outgoing datagrams and partitions (blocked remote addresses), both
//! changeable while connections run.
//!
//! Every datagram it drops is counted, so a test can tell injected faults
//! from bugs.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Loss probability resolution: parts per million.
const PPM: u32 = 1_000_000;

/// Counts of what a [`FaultControl`] let through or dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Outgoing datagrams handed to the real socket.
    pub sent: u64,
    /// Outgoing datagrams dropped by random loss.
    pub lost: u64,
    /// Outgoing datagrams dropped because their destination is blocked.
    pub blocked_out: u64,
    /// Incoming datagrams dropped because their source is blocked.
    pub blocked_in: u64,
}

/// The shared switchboard of a faulty socket: set loss and partitions from
/// the test while the transport runs.
pub struct FaultControl {
    loss_ppm: AtomicU32,
    rng: Mutex<StdRng>,
    blocked: RwLock<HashSet<SocketAddr>>,
    sent: AtomicU64,
    lost: AtomicU64,
    blocked_out: AtomicU64,
    blocked_in: AtomicU64,
}

impl fmt::Debug for FaultControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultControl")
            .field("loss", &self.loss())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl FaultControl {
    /// No loss, nothing blocked; losses are drawn from an RNG seeded with
    /// `seed`, so a failing run's seed can be printed and reused.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(FaultControl {
            loss_ppm: AtomicU32::new(0),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            blocked: RwLock::default(),
            sent: AtomicU64::default(),
            lost: AtomicU64::default(),
            blocked_out: AtomicU64::default(),
            blocked_in: AtomicU64::default(),
        })
    }

    /// Drops each outgoing datagram with `probability` (clamped to 0..=1).
    pub fn set_loss(&self, probability: f64) {
        let ppm = (probability.clamp(0.0, 1.0) * f64::from(PPM)).round() as u32;
        self.loss_ppm.store(ppm, Ordering::Relaxed);
    }

    /// The current loss probability.
    pub fn loss(&self) -> f64 {
        f64::from(self.loss_ppm.load(Ordering::Relaxed)) / f64::from(PPM)
    }

    /// Drops every datagram to or from `remote` until unblocked.
    pub fn block(&self, remote: SocketAddr) {
        self.blocked_set().insert(remote);
    }

    /// Lets `remote`'s datagrams through again.
    pub fn unblock(&self, remote: SocketAddr) {
        self.blocked_set().remove(&remote);
    }

    /// Heals every partition.
    pub fn unblock_all(&self) {
        self.blocked_set().clear();
    }

    /// Whether `remote` is blocked.
    pub fn is_blocked(&self, remote: SocketAddr) -> bool {
        let set = self.blocked.read().unwrap_or_else(|e| e.into_inner());
        !set.is_empty() && set.contains(&remote)
    }

    /// What was let through and dropped so far.
    pub fn stats(&self) -> FaultStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FaultStats {
            sent: get(&self.sent),
            lost: get(&self.lost),
            blocked_out: get(&self.blocked_out),
            blocked_in: get(&self.blocked_in),
        }
    }

    fn blocked_set(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<SocketAddr>> {
        // A panicking test thread must not disable fault control for others.
        self.blocked.write().unwrap_or_else(|e| e.into_inner())
    }

    fn roll_loss(&self) -> bool {
        let ppm = self.loss_ppm.load(Ordering::Relaxed);
        if ppm == 0 {
            return false;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.gen_range(0..PPM) < ppm
    }
}

/// The runtime's real UDP socket, filtered through a [`FaultControl`].
#[derive(Debug)]
pub(crate) struct FaultySocket {
    inner: Arc<dyn AsyncUdpSocket>,
    control: Arc<FaultControl>,
}

impl FaultySocket {
    pub(crate) fn new(inner: Arc<dyn AsyncUdpSocket>, control: Arc<FaultControl>) -> Self {
        FaultySocket { inner, control }
    }
}

impl AsyncUdpSocket for FaultySocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        // A dropped datagram "succeeds", as the network would make it look.
        if self.control.is_blocked(transmit.destination) {
            self.control.blocked_out.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if self.control.roll_loss() {
            self.control.lost.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.inner.try_send(transmit)?;
        self.control.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        if bufs.is_empty() || meta.is_empty() {
            return self.inner.poll_recv(cx, bufs, meta);
        }
        // One receive at a time, so a blocked datagram can be skipped
        // without compacting quinn's buffers.
        loop {
            match self.inner.poll_recv(cx, &mut bufs[..1], &mut meta[..1]) {
                Poll::Ready(Ok(n)) if n > 0 && self.control.is_blocked(meta[0].addr) => {
                    let datagrams = meta[0].len.div_ceil(meta[0].stride.max(1)).max(1);
                    self.control
                        .blocked_in
                        .fetch_add(datagrams as u64, Ordering::Relaxed);
                }
                other => return other,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// One datagram per transmit, so loss applies to datagrams, not to
    /// GSO batches of them.
    fn max_transmit_segments(&self) -> usize {
        1
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}
