//! The admin HTTP endpoint served for real on loopback, and the table of
//! `fedmesh status`.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fedmesh::http::metrics::{
    FEDERATED_MESSAGES_TOTAL, FEDERATION_LATENCY_SECONDS, FRAMES_TOTAL, LABEL_DIRECTION, LABEL_TYPE,
};
use fedmesh::http::{
    ClientError, LinkStatus, MemberState, MemberStatus, NodeStatus, RouteStatus, RoutingStats,
    StatusProvider, StatusSnapshot, fetch_status, fetch_status_json, install_metrics,
    render_status_table, serve, status_provider_from_watch,
};
use fedmesh::proto::{ClusterId, Identity, NetworkId};

mod support;
use support::prom::sample;

const DEADLINE: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(5);

fn id(seed: u8) -> ClusterId {
    Identity::from_seed([seed; 32]).id()
}

fn snapshot() -> StatusSnapshot {
    StatusSnapshot {
        node: NodeStatus {
            id: id(1),
            name: Some("alpha".into()),
            network: "demo".into(),
            network_id: NetworkId([0xab; 32]),
            listen: "127.0.0.1:7700".parse().unwrap(),
            incarnation: 3,
            uptime_s: 3_723,
        },
        members: vec![
            MemberStatus {
                id: id(1),
                name: Some("alpha".into()),
                state: MemberState::Alive,
                addr: Some("127.0.0.1:7700".parse().unwrap()),
                incarnation: 3,
                rtt_ms: None,
                weight: 5,
            },
            MemberStatus {
                id: id(2),
                name: Some("beta".into()),
                state: MemberState::Suspect,
                addr: Some("10.0.0.2:7700".parse().unwrap()),
                incarnation: 1,
                rtt_ms: Some(12.25),
                weight: 2,
            },
            MemberStatus {
                id: id(3),
                name: Some("gamma".into()),
                state: MemberState::Dead,
                addr: None,
                incarnation: 7,
                rtt_ms: None,
                weight: 1,
            },
            MemberStatus {
                id: id(4),
                name: None,
                state: MemberState::Left,
                addr: Some("[::1]:7704".parse().unwrap()),
                incarnation: 0,
                rtt_ms: None,
                weight: 0,
            },
        ],
        links: vec![
            LinkStatus {
                peer: id(2),
                name: Some("beta".into()),
                addr: "10.0.0.2:7700".parse().unwrap(),
                rtt_ms: 12.25,
                inbound: false,
            },
            LinkStatus {
                peer: id(4),
                name: None,
                addr: "[::1]:50123".parse().unwrap(),
                rtt_ms: 0.5,
                inbound: true,
            },
        ],
        routes: vec![RouteStatus {
            dst: id(3),
            name: Some("gamma".into()),
            next_hop: id(2),
            cost_us: 25_400,
            path: vec![id(1), id(2), id(3)],
            path_names: vec!["alpha".into(), "beta".into(), "gamma".into()],
        }],
        routing: RoutingStats::default(),
        graph: vec![],
        recent: vec![],
        queues: vec![],
        roster: Default::default(),
        delivery: Default::default(),
    }
}

/// GET `path`, returning the status, the content type and the body.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String, String), ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent.get(format!("http://{addr}{path}")).call()?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.body_mut().read_to_string()?;
    Ok((status, content_type, body))
}

/// A running admin endpoint, stopped when dropped.
struct Server {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), fedmesh::http::HttpError>>>,
}

impl Server {
    fn start(provider: StatusProvider) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr, task) = runtime
            .block_on(serve(
                "127.0.0.1:0".parse().unwrap(),
                provider,
                install_metrics(),
                async move {
                    let _ = stopped.await;
                },
            ))
            .unwrap();
        assert_ne!(addr.port(), 0, "the bound port is reported");
        let server = Server {
            runtime,
            addr,
            stop: Some(stop),
            task: Some(task),
        };
        // The listener is bound before `serve` returns its address, so the
        // first request is queued by the kernel and answered: no retry.
        let (status, _, _) = get(server.addr, "/health").expect("/health answers at once");
        assert_eq!(status, 200);
        server
    }

    /// Stops the server and waits for its task to end.
    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = self
                .runtime
                .block_on(async { tokio::time::timeout(DEADLINE, task).await })
                .expect("the server stops within the deadline")
                .expect("the server task does not panic");
            result.unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn fixed() -> StatusProvider {
    let snap = snapshot();
    Arc::new(move || snap.clone())
}

#[test]
fn status_is_served_as_json_that_parses_back() {
    let server = Server::start(fixed());
    let (status, content_type, body) = get(server.addr, "/status").unwrap();
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let back: StatusSnapshot = serde_json::from_str(&body).unwrap();
    assert_eq!(back, snapshot());

    // The documented JSON shape.
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["node"]["id"], id(1).to_string());
    assert_eq!(json["node"]["network_id"], "ab".repeat(32));
    assert_eq!(json["node"]["listen"], "127.0.0.1:7700");
    assert_eq!(json["node"]["uptime_s"], 3_723);
    assert_eq!(json["members"][1]["state"], "suspect");
    assert_eq!(json["members"][3]["state"], "left");
    assert_eq!(json["members"][0]["rtt_ms"], serde_json::Value::Null);
    assert_eq!(json["members"][1]["rtt_ms"], 12.25);
    assert_eq!(json["links"][1]["inbound"], true);

    // The client `fedmesh status` uses.
    assert_eq!(fetch_status(server.addr, TIMEOUT).unwrap(), snapshot());
    assert_eq!(fetch_status_json(server.addr, TIMEOUT).unwrap(), body);
    server.stop();
}

#[test]
fn status_follows_the_provider() {
    let calls = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&calls);
    let provider: StatusProvider = Arc::new(move || {
        let mut snap = snapshot();
        snap.node.uptime_s = counter.fetch_add(1, Ordering::SeqCst);
        snap
    });
    let server = Server::start(provider);
    let first = fetch_status(server.addr, TIMEOUT).unwrap().node.uptime_s;
    let second = fetch_status(server.addr, TIMEOUT).unwrap().node.uptime_s;
    assert!(second > first, "each request asks the provider anew");
    server.stop();

    // A watch channel as the provider: each request sees the latest value.
    let (tx, rx) = tokio::sync::watch::channel(snapshot());
    let server = Server::start(status_provider_from_watch(rx));
    assert_eq!(
        fetch_status(server.addr, TIMEOUT).unwrap().node.incarnation,
        3
    );
    tx.send_modify(|s| s.node.incarnation = 4);
    assert_eq!(
        fetch_status(server.addr, TIMEOUT).unwrap().node.incarnation,
        4
    );
    server.stop();
}

#[test]
fn metrics_are_served_in_prometheus_text_format() {
    // Idempotent: a second call returns a handle to the same registry.
    let _ = install_metrics();
    let server = Server::start(fixed());
    metrics::counter!(FEDERATED_MESSAGES_TOTAL).increment(3);
    metrics::counter!(FRAMES_TOTAL, LABEL_DIRECTION => "in", LABEL_TYPE => "http_admin_test")
        .increment(2);
    metrics::histogram!(FEDERATION_LATENCY_SECONDS).record(0.003);

    let (status, content_type, body) = get(server.addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let messages = sample(&body, FEDERATED_MESSAGES_TOTAL, &[]);
    assert!(messages.is_some_and(|v| v >= 3.0), "{body}");
    assert_eq!(
        sample(
            &body,
            FRAMES_TOTAL,
            &[("direction", "in"), ("type", "http_admin_test")]
        ),
        Some(2.0),
        "{body}"
    );
    // The latency is a real histogram, with the sample in its 5 ms bucket.
    let bucket = format!("{FEDERATION_LATENCY_SECONDS}_bucket");
    assert!(
        sample(&body, &bucket, &[("le", "0.005")]).is_some_and(|v| v >= 1.0),
        "{body}"
    );
    assert!(body.contains(&format!("# TYPE {FEDERATED_MESSAGES_TOTAL} counter")));
    server.stop();
}

#[test]
fn health_is_ok_and_unknown_paths_are_not_found() {
    let server = Server::start(fixed());
    let (status, _, body) = get(server.addr, "/health").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, _, _) = get(server.addr, "/nope").unwrap();
    assert_eq!(status, 404);
    let addr = server.addr;
    server.stop();

    // Once stopped, the client reports the endpoint as unreachable.
    // `stop` waited for the server task to end, which dropped the listener.
    let err = fetch_status(addr, TIMEOUT).expect_err("the endpoint is closed");
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()));
}

#[test]
fn serving_on_a_taken_port_is_an_error() {
    let server = Server::start(fixed());
    let taken = server.addr;
    let result = server.runtime.block_on(serve(
        taken,
        fixed(),
        install_metrics(),
        std::future::pending::<()>(),
    ));
    assert!(matches!(
        result,
        Err(fedmesh::http::HttpError::Bind { addr, .. }) if addr == taken
    ));
    server.stop();
}

#[test]
fn the_status_table_shows_every_member_and_link() {
    let snap = snapshot();
    let table = render_status_table(&snap);
    let lines: Vec<&str> = table.lines().collect();
    let first = lines.first().copied().unwrap_or_default();
    for part in [
        id(1).short().as_str(),
        "alpha",
        "demo",
        "abababab",
        "127.0.0.1:7700",
        "incarnation 3",
        "1h02m03s",
    ] {
        assert!(first.contains(part), "{part:?} missing from {first:?}");
    }
    assert!(table.contains("members: 4 (1 alive, 1 suspect, 1 dead, 1 left)"));
    assert!(table.contains("links: 2 (1 inbound, 1 outbound)"));

    let row_of = |short: &str, after: &str| -> Vec<String> {
        let start = table.find(after).unwrap_or(0);
        table[start..]
            .lines()
            .find(|l| l.starts_with(short))
            .unwrap_or_else(|| panic!("no row for {short} after {after:?} in\n{table}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let header = row_of("ID", "members:");
    assert_eq!(
        header,
        [
            "ID",
            "NAME",
            "STATE",
            "ADDRESS",
            "INCARNATION",
            "RTT",
            "WEIGHT"
        ]
    );
    for m in &snap.members {
        let row = row_of(&m.id.short(), "members:");
        let rtt = m.rtt_ms.map_or_else(
            || vec!["-".to_owned()],
            |r| vec![format!("{r:.1}"), "ms".into()],
        );
        let mut expected = vec![
            m.id.short(),
            m.name.clone().unwrap_or_else(|| "-".into()),
            m.state.to_string(),
            m.addr.map_or_else(|| "-".into(), |a| a.to_string()),
            m.incarnation.to_string(),
        ];
        expected.extend(rtt);
        expected.push(m.weight.to_string());
        assert_eq!(row, expected, "\n{table}");
    }
    for l in &snap.links {
        let row = row_of(&l.peer.short(), "links:");
        assert_eq!(
            row,
            [
                l.peer.short(),
                l.name.clone().unwrap_or_else(|| "-".into()),
                l.addr.to_string(),
                format!("{:.1}", l.rtt_ms),
                "ms".into(),
                if l.inbound { "inbound" } else { "outbound" }.into(),
            ],
            "\n{table}"
        );
    }

    // Columns line up: every member row starts its STATE column at the same place.
    let member_lines: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("ID"))
        .take(1 + snap.members.len())
        .collect();
    let state_col = member_lines[0].find("STATE").unwrap();
    for (line, m) in member_lines[1..].iter().zip(&snap.members) {
        assert_eq!(line.find(m.state.as_str()), Some(state_col), "{line}");
    }

    let route = row_of(&id(3).short(), "routes:");
    assert_eq!(
        route,
        [
            id(3).short(),
            "gamma".into(),
            id(2).short(),
            "2".into(),
            "25.4".into(),
            "ms".into(),
            "alpha→beta→gamma".into(),
        ],
        "\n{table}"
    );

    // An empty node still renders.
    let mut empty = snap.clone();
    empty.members.clear();
    empty.links.clear();
    empty.routes.clear();
    let table = render_status_table(&empty);
    assert!(table.contains("members: none") && table.contains("links: none"));
    assert!(table.contains("routes: none"));
}

#[test]
fn hostile_names_cannot_drive_the_terminal() {
    let mut snap = snapshot();
    snap.members[0].name = Some("evil\u{1b}[2J\nname".into());
    let table = render_status_table(&snap);
    assert!(!table.contains('\u{1b}'));
    assert!(table.contains("evil?[2J?name"));
}
