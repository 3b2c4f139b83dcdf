//! The QUIC transport on loopback: mutual authentication, pinning, framing,
//! malformed peers, closing with a reason, partitions and loss.
//!
//! Every wait has a deadline; nothing sleeps for a fixed time to let
//! something happen.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedmesh::net::tls::{self, SERVER_NAME};
use fedmesh::net::{
    CloseReason, FaultControl, FrameError, Link, LinkEvent, NetError, Priority, SendError,
    Transport, TransportOptions, close_code,
};
use fedmesh::proto::ClusterId;
use fedmesh::store::keys::{TlsMaterial, generate_key_files, load_tls_material};
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Generous: these are upper bounds on waits, never sleeps.
const DEADLINE: Duration = Duration::from_secs(20);

fn material(dir: &Path, name: &str) -> TlsMaterial {
    let files = generate_key_files(name, dir, false).unwrap();
    load_tls_material(&files.cert_path, &files.key_path).unwrap()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls `cond` until it holds, failing after the deadline.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

async fn next_event(rx: &mut mpsc::Receiver<LinkEvent>) -> LinkEvent {
    within("a link event", rx.recv())
        .await
        .expect("the event channel stays open")
}

async fn next_frame(rx: &mut mpsc::Receiver<LinkEvent>) -> Vec<u8> {
    match next_event(rx).await {
        LinkEvent::Frame { bytes, .. } => bytes,
        other => panic!("expected a frame, got {other:?}"),
    }
}

async fn next_closed(rx: &mut mpsc::Receiver<LinkEvent>) -> CloseReason {
    loop {
        match next_event(rx).await {
            LinkEvent::Closed { reason, .. } => return reason,
            LinkEvent::Frame { .. } => continue,
            other => panic!("expected Closed, got {other:?}"),
        }
    }
}

/// Waits for the next inbound link on `t`, which must succeed.
async fn accept_link(t: &Transport) -> Link {
    within("an inbound link", t.accept())
        .await
        .expect("transport open")
        .expect("inbound handshake succeeds")
}

/// Two transports and one started link between them, each way.
struct Pair {
    _dir: tempfile::TempDir,
    a: Transport,
    b: Transport,
    /// a's end, dialed to b.
    ab: Link,
    /// b's end, accepted from a.
    ba: Link,
    rx_a: mpsc::Receiver<LinkEvent>,
    rx_b: mpsc::Receiver<LinkEvent>,
}

async fn pair_with(
    options: TransportOptions,
    faults: Option<(Arc<FaultControl>, Arc<FaultControl>)>,
) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (ma, mb) = (material(dir.path(), "a"), material(dir.path(), "b"));
    let (a, b) = match faults {
        None => (
            Transport::bind(loopback(), &ma, options.clone()).unwrap(),
            Transport::bind(loopback(), &mb, options).unwrap(),
        ),
        Some((fa, fb)) => (
            Transport::bind_with_faults(loopback(), &ma, options.clone(), fa).unwrap(),
            Transport::bind_with_faults(loopback(), &mb, options, fb).unwrap(),
        ),
    };
    let (ab, ba) = tokio::join!(
        a.connect(b.local_addr(), Some(b.local_id())),
        accept_link(&b)
    );
    let ab = ab.expect("dial succeeds");
    let (tx_a, rx_a) = mpsc::channel(1024);
    let (tx_b, rx_b) = mpsc::channel(1024);
    assert!(ab.start(tx_a));
    assert!(ba.start(tx_b));
    Pair {
        _dir: dir,
        a,
        b,
        ab,
        ba,
        rx_a,
        rx_b,
    }
}

async fn pair() -> Pair {
    pair_with(TransportOptions::default(), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_handshake_authenticates_both_sides() {
    let p = pair().await;
    assert_eq!(p.ab.peer(), p.b.local_id());
    assert_eq!(p.ba.peer(), p.a.local_id());
    assert_eq!(p.ab.remote_addr(), p.b.local_addr());
    assert_eq!(p.ba.remote_addr(), p.a.local_addr());
    assert!(p.ab.rtt() > Duration::ZERO);
    // A second `start` is refused rather than splitting the stream.
    let (tx, _rx) = mpsc::channel(1);
    assert!(!p.ab.start(tx));

    // Handshake latency on loopback, dialing a seed address (id learned).
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let (link, accepted) = tokio::join!(p.a.connect(p.b.local_addr(), None), async {
            accept_link(&p.b).await
        });
        times.push(started.elapsed());
        let link = link.expect("seed dial succeeds");
        // Several links to one peer are told apart by their ids.
        assert_ne!(link.id(), p.ab.id());
        assert_eq!(link.peer(), p.b.local_id());
        assert_eq!(accepted.peer(), p.a.local_id());
    }
    times.sort();
    println!(
        "loopback handshake (dial + mutual auth, 20 runs): min {:?}, median {:?}, max {:?}",
        times[0], times[10], times[19]
    );
    let stats = p.a.stats();
    assert_eq!(stats.handshakes, 21);
    assert_eq!(stats.handshake_failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_id_mismatch_fails_the_dial() {
    let p = pair().await;
    let dir = tempfile::tempdir().unwrap();
    let other = material(dir.path(), "c").cluster_id;
    let err = within(
        "the pinned dial",
        p.a.connect(p.b.local_addr(), Some(other)),
    )
    .await
    .expect_err("a pinned mismatch must fail");
    println!("pinned mismatch: {err}");
    match &err {
        NetError::PeerMismatch {
            expected, found, ..
        } => {
            assert_eq!(*expected, other);
            assert_eq!(*found, p.b.local_id());
        }
        other => panic!("expected PeerMismatch, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&other.to_string()) && text.contains(&p.b.local_id().to_string()));
    // The server saw the dialer abort the handshake.
    let refused = within("the refused inbound handshake", p.b.accept()).await;
    assert!(matches!(refused, Some(Err(NetError::Handshake { .. }))));
    assert_eq!(p.a.stats().handshake_failures, 1);
}

/// A self-signed ECDSA P-256 certificate and key, as a non-fedmesh peer
/// would have.
fn ecdsa_material() -> TlsMaterial {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["fedmesh".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    TlsMaterial {
        cluster_id: ClusterId([7; 32]),
        cert_der: cert.der().to_vec(),
        key_pkcs8_der: key.serialize_der(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_non_ed25519_certificate_is_refused() {
    let p = pair().await;
    let ecdsa = ecdsa_material();
    // Our own transport refuses to start with such a certificate...
    assert!(matches!(
        Transport::bind(loopback(), &ecdsa, TransportOptions::default()),
        Err(NetError::Material(_))
    ));
    // ...and a raw QUIC client presenting one is refused by the server.
    let endpoint = quinn::Endpoint::client(loopback()).unwrap();
    let config = quinn::ClientConfig::new(tls::client_crypto(&ecdsa, None).unwrap());
    let connecting = endpoint
        .connect_with(config, p.b.local_addr(), SERVER_NAME)
        .unwrap();
    match within("the ECDSA client's handshake", connecting).await {
        Err(e) => println!("ECDSA client refused: {e}"),
        // In TLS 1.3 the client may finish before the server checks its
        // certificate; the server then closes the connection at once.
        Ok(conn) => {
            let e = within("the ECDSA client's close", conn.closed()).await;
            println!("ECDSA client closed: {e}");
        }
    }
    let refused = within("the refused inbound handshake", p.b.accept()).await;
    match refused {
        Some(Err(NetError::Handshake { source, .. })) => println!("server side: {source}"),
        other => panic!("expected a failed inbound handshake, got {other:?}"),
    }
    assert_eq!(p.b.stats().handshake_failures, 1);
    assert_eq!(p.b.stats().handshakes, 1);
}

/// An ed25519 certificate issued by another ed25519 key: the key is fine
/// and can sign the handshake, but the certificate is not self-signed.
fn ca_issued_material() -> TlsMaterial {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ca_params = rcgen::CertificateParams::new(vec!["ca".to_owned()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["fedmesh".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let raw: [u8; 32] = key.public_key_raw().try_into().unwrap();
    TlsMaterial {
        cluster_id: ClusterId(raw),
        cert_der: cert.der().to_vec(),
        key_pkcs8_der: key.serialize_der(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_certificate_is_not_self_signed_is_refused() {
    let p = pair().await;
    let issued = ca_issued_material();
    assert!(matches!(
        Transport::bind(loopback(), &issued, TransportOptions::default()),
        Err(NetError::Material(_))
    ));
    // The client can present this one (it signs with ed25519), so it is the
    // server's verifier that refuses it, with a reason in both logs.
    let endpoint = quinn::Endpoint::client(loopback()).unwrap();
    let config = quinn::ClientConfig::new(tls::client_crypto(&issued, None).unwrap());
    let connecting = endpoint
        .connect_with(config, p.b.local_addr(), SERVER_NAME)
        .unwrap();
    let client_side = match within("the client's handshake", connecting).await {
        Err(e) => e,
        Ok(conn) => within("the client's close", conn.closed()).await,
    };
    println!("CA-issued client: {client_side}");
    match within("the refused inbound handshake", p.b.accept()).await {
        Some(Err(NetError::Handshake { source, .. })) => {
            println!("server side: {source}");
            assert!(source.to_string().contains("self-signed"), "{source}");
        }
        other => panic!("expected a failed inbound handshake, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_round_trip_in_order_both_ways() {
    let mut p = pair().await;
    let sizes = [0usize, 1, 7, 1200, 70_000, 1 << 20];
    for (i, &len) in sizes.iter().enumerate() {
        p.ab.send(Priority::Data, vec![i as u8; len]).unwrap();
        p.ba.send(Priority::Gossip, vec![!(i as u8); len]).unwrap();
    }
    for (i, &len) in sizes.iter().enumerate() {
        assert_eq!(next_frame(&mut p.rx_b).await, vec![i as u8; len]);
        assert_eq!(next_frame(&mut p.rx_a).await, vec![!(i as u8); len]);
    }
    // Over the cap: refused at the sender, never put on the wire.
    assert_eq!(
        p.ab.send(Priority::Data, vec![0; (1 << 20) + 1]),
        Err(SendError::TooLarge {
            len: (1 << 20) + 1,
            cap: 1 << 20
        })
    );
    let total: u64 = sizes.iter().map(|&l| l as u64).sum();
    let ba = p.ba.stats();
    assert_eq!((ba.frames_in, ba.bytes_in), (sizes.len() as u64, total));
    eventually("a's writer to count its frames", || {
        p.ab.stats().frames_out == sizes.len() as u64
    })
    .await;
    assert_eq!(p.ab.stats().bytes_out, total);
    assert_eq!(p.a.stats().links.frames_out, sizes.len() as u64);
}

/// Sends `n` numbered frames in a tight loop and checks that exactly the
/// accepted ones arrive, in order, and that the counters add up.
async fn burst(options: TransportOptions, n: u32) -> (u64, u64) {
    let mut p = pair_with(options, None).await;
    let mut accepted = Vec::new();
    let mut full = 0u64;
    for seq in 0..n {
        match p.ab.send(Priority::Data, seq.to_be_bytes().to_vec()) {
            Ok(()) => accepted.push(seq),
            Err(SendError::QueueFull { .. }) => full += 1,
            Err(e) => panic!("unexpected send error: {e}"),
        }
    }
    let mut received = Vec::with_capacity(accepted.len());
    while received.len() < accepted.len() {
        let bytes = next_frame(&mut p.rx_b).await;
        let seq: [u8; 4] = bytes.as_slice().try_into().expect("4-byte frame");
        received.push(u32::from_be_bytes(seq));
    }
    assert_eq!(received, accepted, "accepted frames arrive, in order");
    let ok = accepted.len() as u64;
    assert_eq!(ok + full, u64::from(n));
    let sent = p.ab.stats();
    assert_eq!((sent.frames_queued, sent.queue_full), (ok, full));
    eventually("a's writer to count every frame", || {
        p.ab.stats().frames_out == ok
    })
    .await;
    assert_eq!(p.ba.stats().frames_in, ok);
    assert_eq!(p.a.stats().links.queue_full, full);
    assert_eq!(p.ab.stats().frames_unsent, 0);
    (ok, full)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_10000_frames_arrives_or_is_counted_as_refused() {
    let started = Instant::now();
    let (ok, full) = burst(TransportOptions::default(), 10_000).await;
    println!(
        "burst, default queue: {ok} delivered, {full} refused as queue-full, {:?}",
        started.elapsed()
    );
    let big_queue = TransportOptions {
        queue_capacity: 10_000,
        ..TransportOptions::default()
    };
    let started = Instant::now();
    let (ok, full) = burst(big_queue, 10_000).await;
    println!(
        "burst, 10k queue: {ok} delivered in {:?}",
        started.elapsed()
    );
    assert_eq!((ok, full), (10_000, 0));
}

/// A raw QUIC client, authenticated as a fresh cluster, that writes `bytes`
/// on a uni stream to `t` and finishes it. Returns its connection.
async fn raw_client(t: &Transport, bytes: &[u8]) -> (quinn::Endpoint, quinn::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let m = material(dir.path(), "raw");
    let endpoint = quinn::Endpoint::client(loopback()).unwrap();
    let config = quinn::ClientConfig::new(tls::client_crypto(&m, Some(t.local_id())).unwrap());
    let conn = within(
        "the raw handshake",
        endpoint
            .connect_with(config, t.local_addr(), SERVER_NAME)
            .unwrap(),
    )
    .await
    .unwrap();
    let mut stream = conn.open_uni().await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.finish().unwrap();
    (endpoint, conn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_streams_close_only_their_own_link() {
    let mut p = pair().await;
    let mut random = vec![0u8; 256];
    rand::rngs::StdRng::seed_from_u64(7).fill(&mut random[..]);
    let mut truncated = 100u32.to_be_bytes().to_vec();
    truncated.extend_from_slice(&[1; 40]);
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "oversized prefix",
            ((1u32 << 20) + 1).to_be_bytes().to_vec(),
        ),
        ("random bytes", random),
        ("truncated payload", truncated),
        ("truncated prefix", vec![0, 0]),
    ];
    for (i, (what, bytes)) in cases.iter().enumerate() {
        let (_endpoint, conn) = raw_client(&p.b, bytes).await;
        let link = accept_link(&p.b).await;
        let (tx, mut rx) = mpsc::channel(16);
        link.start(tx);
        let error = match next_event(&mut rx).await {
            LinkEvent::Malformed { error, peer, .. } => {
                assert_eq!(peer, link.peer());
                error
            }
            other => panic!("{what}: expected Malformed, got {other:?}"),
        };
        println!("{what}: {error}");
        match (i, &error) {
            (0, FrameError::TooLarge { len, cap }) => {
                assert_eq!((*len, *cap), ((1 << 20) + 1, 1 << 20));
            }
            (1, FrameError::TooLarge { .. } | FrameError::Truncated { .. }) => {}
            (2, FrameError::Truncated { expected, received }) => {
                assert_eq!((*expected, *received), (100, 40));
            }
            (3, FrameError::Truncated { expected, received }) => {
                assert_eq!((*expected, *received), (4, 2));
            }
            _ => panic!("{what}: unexpected error {error:?}"),
        }
        match next_closed(&mut rx).await {
            CloseReason::Local { code, reason } => {
                assert_eq!(code, u64::from(close_code::MALFORMED));
                assert!(reason.starts_with("malformed frame"), "{reason}");
            }
            other => panic!("{what}: expected a local close, got {other:?}"),
        }
        // The offender is told why.
        match within("the raw client's close", conn.closed()).await {
            quinn::ConnectionError::ApplicationClosed(close) => {
                assert_eq!(
                    close.error_code.into_inner(),
                    u64::from(close_code::MALFORMED)
                );
            }
            other => panic!("{what}: raw client saw {other:?}"),
        }
        // The well-behaved link on the same transport is untouched.
        p.ab.send(Priority::Votes, format!("still here {i}").into_bytes())
            .unwrap();
        assert_eq!(
            next_frame(&mut p.rx_b).await,
            format!("still here {i}").into_bytes()
        );
    }
    assert_eq!(p.b.stats().links.malformed, cases.len() as u64);
    assert!(!p.ba.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_reason_reaches_the_peer() {
    let mut p = pair().await;
    p.ab.send(Priority::Data, b"last words".to_vec()).unwrap();
    assert_eq!(next_frame(&mut p.rx_b).await, b"last words");
    p.ab.close("not in roster epoch 3");
    assert_eq!(
        next_closed(&mut p.rx_b).await,
        CloseReason::Remote {
            code: close_code::REQUESTED.into(),
            reason: "not in roster epoch 3".to_owned()
        }
    );
    assert_eq!(
        next_closed(&mut p.rx_a).await,
        CloseReason::Local {
            code: close_code::REQUESTED.into(),
            reason: "not in roster epoch 3".to_owned()
        }
    );
    eventually("sends on a closed link to fail", || {
        p.ab.send(Priority::Data, vec![1]) == Err(SendError::Closed)
    })
    .await;
    assert!(p.ba.is_closed());
    assert!(matches!(p.ba.closed().await, CloseReason::Remote { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_transport_closes_its_links_and_accepting() {
    let mut p = pair().await;
    p.a.close();
    assert_eq!(
        next_closed(&mut p.rx_b).await,
        CloseReason::Remote {
            code: close_code::SHUTDOWN.into(),
            reason: "transport closed".to_owned()
        }
    );
    assert!(matches!(
        next_closed(&mut p.rx_a).await,
        CloseReason::Local { code, .. } if code == u64::from(close_code::SHUTDOWN)
    ));
    assert!(within("accept to end", p.a.accept()).await.is_none());
}

/// Short timeouts so a partition is detected quickly.
fn fast_timeouts() -> TransportOptions {
    TransportOptions {
        keep_alive: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(1000),
        ..TransportOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_times_the_link_out() {
    let (fa, fb) = (FaultControl::new(1), FaultControl::new(2));
    let mut p = pair_with(fast_timeouts(), Some((fa.clone(), fb))).await;
    p.ab.send(Priority::Data, b"before".to_vec()).unwrap();
    assert_eq!(next_frame(&mut p.rx_b).await, b"before");

    let started = Instant::now();
    fa.block(p.b.local_addr());
    assert_eq!(next_closed(&mut p.rx_a).await, CloseReason::TimedOut);
    assert_eq!(next_closed(&mut p.rx_b).await, CloseReason::TimedOut);
    println!(
        "partition detected after {:?}; faults at a: {:?}",
        started.elapsed(),
        fa.stats()
    );
    let stats = fa.stats();
    assert!(stats.blocked_out > 0 && stats.blocked_in > 0, "{stats:?}");

    // Healed, the two can link up again.
    fa.unblock_all();
    let (again, accepted) = tokio::join!(
        p.a.connect(p.b.local_addr(), Some(p.b.local_id())),
        accept_link(&p.b)
    );
    assert_eq!(again.expect("redial after heal").peer(), p.b.local_id());
    assert_eq!(accepted.peer(), p.a.local_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_loss_still_delivers_every_frame() {
    let (fa, fb) = (FaultControl::new(11), FaultControl::new(12));
    let mut p = pair_with(TransportOptions::default(), Some((fa.clone(), fb.clone()))).await;
    fa.set_loss(0.05);
    fb.set_loss(0.05);
    let n = 2000u32;
    let started = Instant::now();
    for seq in 0..n {
        let mut frame = seq.to_be_bytes().to_vec();
        frame.resize(200, seq as u8);
        p.ab.send(Priority::Data, frame).unwrap();
        if seq % 512 == 511 {
            // Keep within the queue; wait for the writer to drain, not a timer.
            eventually("the queue to drain", || p.ab.queued(Priority::Data) < 512).await;
        }
    }
    for seq in 0..n {
        let bytes = next_frame(&mut p.rx_b).await;
        assert_eq!(bytes[..4], seq.to_be_bytes(), "frame {seq} in order");
    }
    let (sa, sb) = (fa.stats(), fb.stats());
    println!(
        "5% loss: {n} frames in {:?}; a lost {} of {} datagrams, b lost {} of {}",
        started.elapsed(),
        sa.lost,
        sa.lost + sa.sent,
        sb.lost,
        sb.lost + sb.sent
    );
    assert!(sa.lost > 0, "loss was injected: {sa:?}");
    assert_eq!(p.ab.stats().queue_full, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unaccepted_handshakes_are_bounded() {
    let options = TransportOptions {
        max_pending_handshakes: 2,
        ..TransportOptions::default()
    };
    let p = pair_with(options, None).await;
    // Two dials complete but b's owner does not accept them yet...
    let first = p.a.connect(p.b.local_addr(), None).await.unwrap();
    let _second = p.a.connect(p.b.local_addr(), None).await.unwrap();
    // ...so a third is refused rather than queued without bound.
    match within("the refused dial", p.a.connect(p.b.local_addr(), None)).await {
        Err(NetError::Handshake { source, .. }) => {
            assert!(
                matches!(&source, quinn::ConnectionError::ConnectionClosed(c)
                    if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED),
                "{source}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(p.b.stats().handshakes_refused, 1);
    // Accepting frees a slot.
    assert_eq!(accept_link(&p.b).await.peer(), p.a.local_id());
    let again = within("a dial after accept", p.a.connect(p.b.local_addr(), None)).await;
    assert_eq!(again.unwrap().peer(), p.b.local_id());
    drop(first);
}
