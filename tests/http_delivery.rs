//! The delivery API of the admin endpoint with two in-process nodes over
//! real QUIC: messages published with `POST /publish` on one node reach a
//! `fedmesh subscribe --count N` process attached to the other, each once;
//! `fedmesh send` prints the key and destinations; malformed requests get
//! clear 4xx answers; `/metrics` carries the delivery metrics. Plus: an
//! observer that falls behind is told how many deliveries it missed.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use fedmesh::http::client::ClientError;
use fedmesh::http::delivery::{ApiFuture, DeliveryApi, PublishAnswer, PublishRequest};
use fedmesh::http::delivery_client::{publish, subscribe};
use fedmesh::http::metrics::{
    COMMIT_SECONDS, CONSENSUS_ROUNDS_STARTED_TOTAL, CONSENSUS_ROUNDS_TOTAL,
    CROSS_CLUSTER_DELIVERIES_TOTAL, FEDERATED_MESSAGES_TOTAL, FEDERATION_LATENCY_SECONDS,
    OUTBOX_DEPTH, SUBSCRIBE_MISSED_TOTAL,
};
use fedmesh::http::subscribe::{MessageLine, StreamLine};
use fedmesh::http::{AdminHooks, install_metrics, serve_admin};
use fedmesh::proto::ClusterId;
use fedmesh::proto::core::{Delivery, PublishOptions};
use fedmesh::proto::delivery::{Envelope, Guarantee, MessageKey};
use fedmesh::proto::queue::QueueName;
use tokio::sync::broadcast;

mod support;
use support::prom::sample;

const TIMEOUT: Duration = Duration::from_secs(10);
const DEADLINE: Duration = Duration::from_secs(30);

fn text(topic: &str, guarantee: &str, payload: &str, causal: bool) -> PublishRequest {
    PublishRequest {
        topic: topic.into(),
        guarantee: Some(guarantee.into()),
        payload: Some(payload.into()),
        payload_base64: None,
        causal,
    }
}

/// POST /publish on a blocking thread.
async fn post(admin: SocketAddr, req: PublishRequest) -> Result<PublishAnswer, ClientError> {
    tokio::task::spawn_blocking(move || publish(admin, &req, TIMEOUT))
        .await
        .expect("join")
}

/// A raw request: (status, body).
async fn raw(admin: SocketAddr, method: &'static str, path: String, body: String) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("http://{admin}{path}");
        let mut r = match method {
            "GET" => agent.get(&url).call(),
            _ => agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.as_bytes()),
        }
        .expect("request");
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().expect("body"))
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_over_http_reaches_a_cli_subscriber_on_another_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let ids = support::write_keys_and_roster(root, 2, "http-delivery");
    let a = support::start_neighbour(root, 0, &[1], vec![], None).await;
    let b = support::start_neighbour(root, 1, &[0], vec![a.local_addr()], None).await;
    let (admin_a, admin_b) = (
        a.admin_addr().expect("admin"),
        b.admin_addr().expect("admin"),
    );

    // The CLI subscriber on B; its first line says the subscription is in place.
    const N: usize = 20;
    let mut child = Command::new(support::bin())
        .args(["subscribe", "--admin", &admin_b.to_string(), "--json"])
        .args(["--count", &N.to_string(), "orders.eu"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fedmesh subscribe");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (first, lines) = tokio::task::spawn_blocking(move || (lines.recv_timeout(DEADLINE), lines))
        .await
        .expect("join");
    let first = first.expect("the subscriber's first line");
    let first: StreamLine = serde_json::from_str(&first).expect("json line");
    assert_eq!(
        first,
        StreamLine::Subscribed {
            pattern: "orders.eu".into()
        }
    );

    // A learns B's subscriptions by gossip (a record holds them all).
    assert!(b.subscribe("warm.up").await);
    assert!(
        support::until_status(&a, DEADLINE, |s| s.subscribers_of("warm.up") == [ids[1]]).await,
        "A never saw B's subscription"
    );

    let mut keys = Vec::new();
    for n in 0..N {
        let (g, causal) = match n % 3 {
            0 => ("AT_LEAST_ONCE", false),
            1 => ("broadcast", true),
            _ => ("At-Least-Once", true),
        };
        let answer = post(admin_a, text("orders.eu", g, &format!("msg {n}"), causal))
            .await
            .expect("publish");
        assert_eq!(answer.origin, ids[0]);
        assert_eq!(answer.dests, [ids[1]]);
        keys.push(answer.id);
    }

    // Every message arrives once, in order for the causal ones.
    let got: Vec<MessageLine> = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + DEADLINE;
        let mut got = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = lines.recv_timeout(left) else {
                break;
            };
            match serde_json::from_str::<StreamLine>(&line).expect("json line") {
                StreamLine::Message(m) => got.push(m),
                other => panic!("unexpected line {other:?}"),
            }
        }
        got
    })
    .await
    .expect("join");
    let mut ids_got: Vec<u64> = got.iter().map(|m| m.id).collect();
    let causal_order: Vec<u64> = got.iter().filter(|m| m.causal).map(|m| m.id).collect();
    assert!(
        causal_order.windows(2).all(|w| w[0] < w[1]),
        "causal messages out of order: {causal_order:?}"
    );
    ids_got.sort();
    assert_eq!(ids_got, keys, "each message exactly once");
    let m = got.iter().find(|m| m.id == keys[0]).expect("first message");
    assert_eq!(
        (m.origin, m.guarantee.as_str(), m.payload_bytes().as_deref()),
        (ids[0], "at-least-once", Some(&b"msg 0"[..]))
    );
    let status = child.wait().expect("wait");
    assert!(status.success(), "fedmesh subscribe exited with {status}");

    // `fedmesh send` prints the key and destinations.
    let out = Command::new(support::bin())
        .args([
            "send",
            "--admin",
            &admin_a.to_string(),
            "--queue",
            "warm.up",
        ])
        .args(["--guarantee", "at_least_once", "hello"])
        .output()
        .expect("run fedmesh send");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "send failed: {stdout}");
    assert!(stdout.contains(&format!("key {}/", ids[0])), "{stdout}");
    assert!(
        stdout.contains(&format!("destinations 1: {}", ids[1].short())),
        "{stdout}"
    );
    // A refusal exits 1 and says why.
    let out = Command::new(support::bin())
        .args([
            "send",
            "--admin",
            &admin_a.to_string(),
            "--queue",
            "orders.cli",
        ])
        .args(["--guarantee", "fire-and-forget", "--causal", "x"])
        .output()
        .expect("run fedmesh send");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("causal order needs"));

    // Clear 4xx answers.
    for (path, body, status, says) in [
        (
            "/publish",
            r#"{"topic":"a..b","payload":"x"}"#,
            400,
            "invalid topic",
        ),
        (
            "/publish",
            r#"{"topic":"a.b","guarantee":"exactly-once","payload":"x"}"#,
            400,
            "unknown guarantee",
        ),
        ("/publish", r#"{"topic":"a.b"}"#, 400, "give payload"),
        (
            "/publish",
            r#"{"topic":"a.b","payload_base64":"!!"}"#,
            400,
            "not base64",
        ),
        (
            "/publish",
            r#"{"topic":"a.b","guarantee":"fire-and-forget","causal":true,"payload":"x"}"#,
            409,
            "causal",
        ),
        ("/publish", "{\"topic\":", 400, ""),
        (
            "/queues",
            r#"{"name":"bad name"}"#,
            400,
            "invalid queue name",
        ),
        ("/queues", r#"{"name":"jobs.eu"}"#, 201, "jobs.eu"),
    ] {
        let (got, text) = raw(admin_a, "POST", path.into(), body.into()).await;
        assert_eq!(got, status, "{path} {body}: {text}");
        assert!(text.contains(says), "{path} {body}: {text}");
    }
    let (got, text) = raw(
        admin_a,
        "GET",
        "/subscribe?pattern=a..b".into(),
        String::new(),
    )
    .await;
    assert_eq!(got, 400, "{text}");
    assert!(text.contains("invalid pattern"), "{text}");
    let big = "x".repeat(fedmesh::http::delivery::MAX_API_BODY + 1);
    let (got, _) = raw(admin_a, "POST", "/publish".into(), big).await;
    assert_eq!(got, 413);

    // The delivery metrics, recorded when a node refreshes its status:
    // checked again after each refresh of either node.
    let deadline = Instant::now() + DEADLINE;
    let (mut refreshed_a, mut refreshed_b) = (a.watch_status(), b.watch_status());
    loop {
        let (_, body) = raw(admin_b, "GET", "/metrics".into(), String::new()).await;
        let delivered = sample(&body, CROSS_CLUSTER_DELIVERIES_TOTAL, &[]).unwrap_or(0.0);
        let latency = format!("{FEDERATION_LATENCY_SECONDS}_count");
        let acked = sample(&body, &latency, &[]).unwrap_or(0.0);
        if delivered >= N as f64 && acked >= N as f64 {
            for name in [
                FEDERATED_MESSAGES_TOTAL,
                OUTBOX_DEPTH,
                CONSENSUS_ROUNDS_STARTED_TOTAL,
            ] {
                assert!(sample(&body, name, &[]).is_some(), "{name} missing");
            }
            // B committed the dedup windows of what it received.
            let commits = format!("{COMMIT_SECONDS}_count");
            assert!(
                sample(&body, &commits, &[]).is_some_and(|n| n >= 1.0),
                "{commits} missing"
            );
            for result in ["succeeded", "failed"] {
                assert!(
                    sample(&body, CONSENSUS_ROUNDS_TOTAL, &[("result", result)]).is_some(),
                    "rounds {result} missing"
                );
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cross-cluster deliveries {delivered}"
        );
        let refresh = async {
            tokio::select! {
                r = refreshed_a.changed() => r,
                r = refreshed_b.changed() => r,
            }
        };
        let _ = tokio::time::timeout_at(deadline.into(), refresh).await;
    }
    let status = b.status().delivery;
    assert!(status.delivered_remote >= N as u64, "{status:?}");
    assert!(
        status.causal.delivered > 0 && status.causal.held == 0,
        "{status:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A delivery API whose deliveries channel holds only 4.
struct Tiny(broadcast::Sender<Delivery>);

impl DeliveryApi for Tiny {
    fn publish(
        &self,
        _: String,
        _: Guarantee,
        _: Vec<u8>,
        _: PublishOptions,
    ) -> ApiFuture<Result<PublishAnswer, String>> {
        Box::pin(async { Err("not here".into()) })
    }
    fn create_queue(&self, _: String) -> ApiFuture<bool> {
        Box::pin(async { true })
    }
    fn subscribe(&self, _: String) -> ApiFuture<Option<broadcast::Receiver<Delivery>>> {
        let rx = self.0.subscribe();
        Box::pin(async move { Some(rx) })
    }
}

// Current-thread: the stream cannot read while the test sends, so it lags.
#[tokio::test]
async fn an_observer_that_falls_behind_is_told_how_many_it_missed() {
    let metrics = install_metrics();
    let (tx, _) = broadcast::channel(4);
    let hooks = AdminHooks {
        proposer: None,
        delivery: Some(Arc::new(Tiny(tx.clone()))),
    };
    let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = serve_admin(
        "127.0.0.1:0".parse().expect("addr"),
        Arc::new(|| panic!("this test never asks for the status")),
        metrics.clone(),
        hooks,
        async move {
            let _ = stop.await;
        },
    )
    .await
    .expect("serve");
    let before = sample(
        &fedmesh::http::render_metrics(&metrics),
        SUBSCRIBE_MISSED_TOTAL,
        &[],
    )
    .unwrap_or(0.0);
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        let stream = subscribe(addr, "t.#", TIMEOUT).expect("subscribe");
        for line in stream {
            if lines_tx.send(line.expect("line")).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + DEADLINE;
    let first = loop {
        if let Ok(l) = lines.try_recv() {
            break l;
        }
        assert!(Instant::now() < deadline, "no subscribed line");
        tokio::time::sleep(Duration::from_millis(10)).await; // poll interval
    };
    assert!(matches!(first, StreamLine::Subscribed { .. }));
    let origin = ClusterId([7; 32]);
    for id in 1..=10u64 {
        let e = Envelope::new(
            MessageKey { origin, id },
            QueueName::new("t.x").expect("name"),
            Guarantee::AtLeastOnce,
            vec![0xff, id as u8],
            None,
        )
        .expect("envelope");
        tx.send(Delivery::Message(e)).expect("a receiver");
    }
    let mut got = Vec::new();
    while got.len() < 5 {
        if let Ok(l) = lines.try_recv() {
            got.push(l);
            continue;
        }
        assert!(Instant::now() < deadline, "got only {got:?}");
        tokio::time::sleep(Duration::from_millis(10)).await; // poll interval
    }
    assert_eq!(got[0], StreamLine::Missed { count: 6 });
    let ids: Vec<u64> = got[1..]
        .iter()
        .map(|l| match l {
            StreamLine::Message(m) => {
                // Not UTF-8: sent as base64, decoded back.
                assert_eq!(m.payload_bytes(), Some(vec![0xff, m.id as u8]));
                m.id
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ids, [7, 8, 9, 10]);
    let after = sample(
        &fedmesh::http::render_metrics(&metrics),
        SUBSCRIBE_MISSED_TOTAL,
        &[],
    )
    .unwrap_or(0.0);
    assert!(after - before >= 6.0);
    // The stream would keep a graceful shutdown waiting (the fake API holds
    // the channel open): stop the server outright.
    let _ = stop_tx.send(());
    server.abort();
}
