//! The process-wide Prometheus recorder and the names of fedmesh's metrics.
//!
//! Record with the `metrics` macros and these names, for example
//! `metrics::counter!(FRAMES_TOTAL, LABEL_DIRECTION => DIRECTION_IN, LABEL_TYPE => "gossip").increment(1)`.
//! Nothing is recorded until [`install_metrics`] has installed the recorder;
//! the `metrics` macros are no-ops before that.
//!
//! The consensus and federation names are those operators know from MPREG,
//! so that existing dashboards keep working.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Gauge: known members by state; label [`LABEL_STATE`] (`alive`, `suspect`,
/// `dead`, `left`).
pub const MEMBERS: &str = "fedmesh_members";
/// Gauge: live links (QUIC connections to other clusters).
pub const LINKS: &str = "fedmesh_links";
/// Gauge: smoothed RTT of each link in seconds; label [`LABEL_PEER`] (the
/// peer's short cluster id).
pub const LINK_RTT_SECONDS: &str = "fedmesh_link_rtt_seconds";
/// Gauge: the roster epoch in use.
pub const ROSTER_EPOCH: &str = "fedmesh_roster_epoch";
/// Gauge: each member's voting weight in the current roster epoch; label
/// [`LABEL_MEMBER`] (the member's name).
pub const ROSTER_WEIGHT: &str = "fedmesh_roster_weight";
/// Gauge: the current roster epoch's total weight.
pub const ROSTER_TOTAL_WEIGHT: &str = "fedmesh_roster_total_weight";
/// Label: a roster member's name.
pub const LABEL_MEMBER: &str = "member";
/// Gauge: UDP bytes sent and received on the current links (QUIC overhead
/// included); label [`LABEL_DIRECTION`]. Links that closed drop out of it.
pub const UDP_BYTES: &str = "fedmesh_udp_bytes";
/// Counter: frames sent and received; labels [`LABEL_DIRECTION`]
/// ([`DIRECTION_IN`], [`DIRECTION_OUT`]) and [`LABEL_TYPE`] (the frame kind).
pub const FRAMES_TOTAL: &str = "fedmesh_frames_total";
/// Counter: frames refused as oversized or undecodable.
pub const MALFORMED_FRAMES_TOTAL: &str = "fedmesh_malformed_frames_total";
/// Counter: connections refused; label [`LABEL_REASON`] (for example
/// `not_in_roster`, `network_mismatch`, `version_mismatch`, `id_mismatch`).
pub const REFUSED_CONNECTIONS_TOTAL: &str = "fedmesh_refused_connections_total";
/// Gauge: clusters this node has a route to.
pub const ROUTES: &str = "fedmesh_routes";
/// Gauge: cost of the route to each cluster in seconds (sum of the links'
/// RTT plus suspect penalties); label `dst` (the short cluster id).
pub const ROUTE_COST_SECONDS: &str = "fedmesh_route_cost_seconds";
/// Gauge: links on the route to each cluster; label `dst`.
pub const ROUTE_HOPS: &str = "fedmesh_route_hops";
/// Counter: routed messages forwarded on behalf of other clusters.
pub const ROUTED_FORWARDED_TOTAL: &str = "fedmesh_routed_forwarded_total";
/// Counter: routed messages delivered to this node.
pub const ROUTED_DELIVERED_TOTAL: &str = "fedmesh_routed_delivered_total";
/// Counter: routed messages dropped; label [`LABEL_REASON`] (`over_budget`,
/// `loop`, `no_route`, `dst_unknown`, `bad_path`).
pub const ROUTED_DROPPED_TOTAL: &str = "fedmesh_routed_dropped_total";

/// Counter (MPREG name): quorum rounds finished; label [`LABEL_RESULT`]
/// ([`RESULT_SUCCEEDED`], [`RESULT_FAILED`]).
pub const CONSENSUS_ROUNDS_TOTAL: &str = "fedmesh_consensus_rounds_total";
/// Counter (MPREG name): Byzantine faults detected (verified equivocation
/// evidence).
pub const BYZANTINE_FAULTS_DETECTED_TOTAL: &str = "fedmesh_byzantine_faults_detected_total";
/// Counter (MPREG name): federated messages sent by this node.
pub const FEDERATED_MESSAGES_TOTAL: &str = "fedmesh_federated_messages_total";
/// Counter (MPREG name): messages delivered here from another cluster.
pub const CROSS_CLUSTER_DELIVERIES_TOTAL: &str = "fedmesh_cross_cluster_deliveries_total";
/// Counter (MPREG name): federation attempts that failed (no route, dial
/// failure, retries exhausted, quorum not reached).
pub const FAILED_FEDERATION_ATTEMPTS_TOTAL: &str = "fedmesh_failed_federation_attempts_total";
/// Histogram (MPREG name): seconds from sending a federated message to its
/// delivery or decision, with buckets [`FEDERATION_LATENCY_BUCKETS`].
pub const FEDERATION_LATENCY_SECONDS: &str = "fedmesh_federation_latency_seconds";

/// Counter (MPREG name): quorum rounds this node started (finished ones
/// are in [`CONSENSUS_ROUNDS_TOTAL`] by result).
pub const CONSENSUS_ROUNDS_STARTED_TOTAL: &str = "fedmesh_consensus_rounds_started_total";
/// Gauge (MPREG name): messages awaiting an acknowledgement in the outbox.
pub const OUTBOX_DEPTH: &str = "fedmesh_outbox_depth";
/// Counter: messages handed to this node's subscribers (its own included).
pub const MESSAGES_DELIVERED_TOTAL: &str = "fedmesh_messages_delivered_total";
/// Counter: duplicate messages received (acknowledged again, not delivered).
pub const DUPLICATE_MESSAGES_TOTAL: &str = "fedmesh_duplicate_messages_total";
/// Counter: messages received and refused (malformed, ahead of the dedup window).
pub const REFUSED_MESSAGES_TOTAL: &str = "fedmesh_refused_messages_total";
/// Gauge: causal messages held back now, waiting for predecessors.
pub const CAUSAL_HELD: &str = "fedmesh_causal_held";
/// Counter: causal messages that had to wait for a predecessor.
pub const CAUSAL_HELD_BACK_TOTAL: &str = "fedmesh_causal_held_back_total";
/// Counter: messages refused (unacknowledged) because the causal hold-back
/// buffer was full.
pub const CAUSAL_OVERFLOW_TOTAL: &str = "fedmesh_causal_overflow_total";
/// Counter: federation latency samples not recorded (more than the node
/// keeps between two ticks).
pub const LATENCY_SAMPLES_DROPPED_TOTAL: &str = "fedmesh_latency_samples_dropped_total";
/// Counter: deliveries a `GET /subscribe` observer missed by falling behind.
pub const SUBSCRIBE_MISSED_TOTAL: &str = "fedmesh_subscribe_missed_total";
/// Histogram: seconds one group commit of the data path took (fsync
/// included), with buckets [`COMMIT_BUCKETS`]. Everything that waits for
/// durability (publish answers, acks, votes) waits about this long.
pub const COMMIT_SECONDS: &str = "fedmesh_commit_seconds";

/// Label of [`MEMBERS`]: the member state.
pub const LABEL_STATE: &str = "state";
/// Label of [`LINK_RTT_SECONDS`]: the peer's short cluster id.
pub const LABEL_PEER: &str = "peer";
/// Label of [`FRAMES_TOTAL`]: [`DIRECTION_IN`] or [`DIRECTION_OUT`].
pub const LABEL_DIRECTION: &str = "direction";
/// Label of [`FRAMES_TOTAL`]: the frame kind.
pub const LABEL_TYPE: &str = "type";
/// Label of [`REFUSED_CONNECTIONS_TOTAL`]: why the connection was refused.
pub const LABEL_REASON: &str = "reason";
/// Label of [`CONSENSUS_ROUNDS_TOTAL`]: how the round ended.
pub const LABEL_RESULT: &str = "result";

/// [`LABEL_DIRECTION`] of received frames.
pub const DIRECTION_IN: &str = "in";
/// [`LABEL_DIRECTION`] of sent frames.
pub const DIRECTION_OUT: &str = "out";
/// [`LABEL_RESULT`] of a round that reached its quorum.
pub const RESULT_SUCCEEDED: &str = "succeeded";
/// [`LABEL_RESULT`] of a round that was rejected or timed out.
pub const RESULT_FAILED: &str = "failed";

/// Bucket upper bounds of [`FEDERATION_LATENCY_SECONDS`], in seconds.
pub const FEDERATION_LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Bucket upper bounds of [`COMMIT_SECONDS`], in seconds.
pub const COMMIT_BUCKETS: &[f64] = &[
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// How often the recorder drains recorded histogram samples, so that they
/// do not pile up in memory when nobody scrapes `/metrics`.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global `metrics`
/// recorder and returns a handle that renders it.
///
/// Safe to call any number of times, from any thread, in or out of a tokio
/// runtime: the first call installs the recorder (and a small upkeep thread),
/// later calls return clones of the same handle. Tests that start several
/// nodes in one process therefore share one registry; their assertions
/// should use labels or deltas.
///
/// If another global recorder was installed first (by the embedding
/// application), it stays in place and is logged as a warning: the handle
/// then renders only the metric descriptions.
pub fn install_metrics() -> PrometheusHandle {
    HANDLE.get_or_init(install_once).clone()
}

fn install_once() -> PrometheusHandle {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(FEDERATION_LATENCY_SECONDS.to_owned()),
            FEDERATION_LATENCY_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(COMMIT_SECONDS.to_owned()), COMMIT_BUCKETS)
        })
        // Only fails for an empty bucket list, which the constants are not.
        .unwrap_or_else(|_| PrometheusBuilder::new());
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(recorder) {
        tracing::warn!(
            error = %e,
            "another metrics recorder is already installed; /metrics will not show fedmesh metrics"
        );
    }
    describe_metrics();

    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("fedmesh-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms are drained only when /metrics is scraped");
    }
    handle
}

/// Registers the HELP text and unit of every fedmesh metric.
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(MEMBERS, Unit::Count, "Known members by state.");
    describe_gauge!(LINKS, Unit::Count, "Live links to other clusters.");
    describe_gauge!(ROSTER_EPOCH, Unit::Count, "The roster epoch in use.");
    describe_gauge!(
        ROSTER_WEIGHT,
        Unit::Count,
        "Each member's voting weight in the current roster epoch."
    );
    describe_gauge!(
        ROSTER_TOTAL_WEIGHT,
        Unit::Count,
        "Total voting weight of the current roster epoch."
    );
    describe_gauge!(
        UDP_BYTES,
        Unit::Bytes,
        "UDP bytes on the current links, QUIC overhead included."
    );
    describe_gauge!(
        LINK_RTT_SECONDS,
        Unit::Seconds,
        "Smoothed round-trip time of each link."
    );
    describe_gauge!(ROUTES, Unit::Count, "Clusters this node has a route to.");
    describe_gauge!(
        ROUTE_COST_SECONDS,
        Unit::Seconds,
        "Cost of the route to each cluster (sum of link RTTs plus suspect penalties)."
    );
    describe_gauge!(
        ROUTE_HOPS,
        Unit::Count,
        "Links on the route to each cluster."
    );
    describe_counter!(
        ROUTED_FORWARDED_TOTAL,
        Unit::Count,
        "Routed messages forwarded on behalf of other clusters."
    );
    describe_counter!(
        ROUTED_DELIVERED_TOTAL,
        Unit::Count,
        "Routed messages delivered to this node."
    );
    describe_counter!(
        ROUTED_DROPPED_TOTAL,
        Unit::Count,
        "Routed messages dropped, by reason."
    );
    describe_counter!(
        FRAMES_TOTAL,
        Unit::Count,
        "Frames sent and received, by direction and type."
    );
    describe_counter!(
        MALFORMED_FRAMES_TOTAL,
        Unit::Count,
        "Frames refused as oversized or undecodable."
    );
    describe_counter!(
        REFUSED_CONNECTIONS_TOTAL,
        Unit::Count,
        "Connections refused, by reason."
    );
    describe_counter!(
        CONSENSUS_ROUNDS_TOTAL,
        Unit::Count,
        "Quorum rounds finished, by result."
    );
    describe_counter!(
        BYZANTINE_FAULTS_DETECTED_TOTAL,
        Unit::Count,
        "Byzantine faults detected (verified equivocation evidence)."
    );
    describe_counter!(
        FEDERATED_MESSAGES_TOTAL,
        Unit::Count,
        "Federated messages sent by this node."
    );
    describe_counter!(
        CROSS_CLUSTER_DELIVERIES_TOTAL,
        Unit::Count,
        "Messages delivered here from another cluster."
    );
    describe_counter!(
        FAILED_FEDERATION_ATTEMPTS_TOTAL,
        Unit::Count,
        "Federation attempts that failed."
    );
    describe_counter!(
        CONSENSUS_ROUNDS_STARTED_TOTAL,
        Unit::Count,
        "Quorum rounds this node started."
    );
    describe_gauge!(
        OUTBOX_DEPTH,
        Unit::Count,
        "Messages awaiting an acknowledgement."
    );
    describe_counter!(
        MESSAGES_DELIVERED_TOTAL,
        Unit::Count,
        "Messages handed to this node's subscribers."
    );
    describe_counter!(
        DUPLICATE_MESSAGES_TOTAL,
        Unit::Count,
        "Duplicate messages received."
    );
    describe_counter!(
        REFUSED_MESSAGES_TOTAL,
        Unit::Count,
        "Messages received and refused."
    );
    describe_gauge!(
        CAUSAL_HELD,
        Unit::Count,
        "Causal messages waiting for predecessors."
    );
    describe_counter!(
        CAUSAL_HELD_BACK_TOTAL,
        Unit::Count,
        "Causal messages that had to wait for a predecessor."
    );
    describe_counter!(
        CAUSAL_OVERFLOW_TOTAL,
        Unit::Count,
        "Messages refused because the causal hold-back buffer was full."
    );
    describe_counter!(
        SUBSCRIBE_MISSED_TOTAL,
        Unit::Count,
        "Deliveries subscription observers missed by falling behind."
    );
    describe_counter!(
        LATENCY_SAMPLES_DROPPED_TOTAL,
        Unit::Count,
        "Federation latency samples not recorded."
    );
    describe_counter!(
        crate::store::outbox_log::TRUNCATED_BYTES_TOTAL,
        Unit::Bytes,
        "Bytes of torn writes cut off the end of the outbox log at start."
    );
    describe_histogram!(
        COMMIT_SECONDS,
        Unit::Seconds,
        "Seconds one group commit of the data path took, fsync included."
    );
    describe_histogram!(
        FEDERATION_LATENCY_SECONDS,
        Unit::Seconds,
        "Seconds from sending a federated message to its delivery or decision."
    );
}

/// Renders the recorder's metrics in the Prometheus text exposition format,
/// draining pending histogram samples first.
pub fn render_metrics(handle: &PrometheusHandle) -> String {
    handle.run_upkeep();
    handle.render()
}

/// Records the delivery counters of a status snapshot under their metric
/// names (absolute values: the node's counters are the source of truth).
pub fn record_delivery(d: &super::DeliveryStats) {
    use metrics::{counter, gauge};
    counter!(FEDERATED_MESSAGES_TOTAL).absolute(d.published);
    counter!(CROSS_CLUSTER_DELIVERIES_TOTAL).absolute(d.delivered_remote);
    // A retransmission is an attempt that was not acknowledged in time; a
    // publish refused by a full outbox never got an attempt.
    counter!(FAILED_FEDERATION_ATTEMPTS_TOTAL).absolute(d.retries.saturating_add(d.outbox_full));
    gauge!(OUTBOX_DEPTH).set(d.outbox_depth as f64);
    counter!(MESSAGES_DELIVERED_TOTAL).absolute(d.delivered);
    counter!(DUPLICATE_MESSAGES_TOTAL).absolute(d.duplicates);
    counter!(REFUSED_MESSAGES_TOTAL).absolute(d.refused);
    gauge!(CAUSAL_HELD).set(d.causal.held as f64);
    counter!(CAUSAL_HELD_BACK_TOTAL).absolute(d.causal.held_back);
    counter!(CAUSAL_OVERFLOW_TOTAL).absolute(d.causal.overflow);
    let q = &d.quorum;
    counter!(CONSENSUS_ROUNDS_STARTED_TOTAL).absolute(q.started);
    counter!(CONSENSUS_ROUNDS_TOTAL, LABEL_RESULT => RESULT_SUCCEEDED).absolute(q.succeeded);
    counter!(CONSENSUS_ROUNDS_TOTAL, LABEL_RESULT => RESULT_FAILED).absolute(q.failed);
    counter!(BYZANTINE_FAULTS_DETECTED_TOTAL).absolute(q.byzantine_faults);
}

/// Records federation latency samples (publish to every acknowledgement)
/// in [`FEDERATION_LATENCY_SECONDS`]; samples the node could not keep are
/// counted in [`LATENCY_SAMPLES_DROPPED_TOTAL`].
pub fn record_latency((samples, dropped): (Vec<Duration>, u64)) {
    let h = metrics::histogram!(FEDERATION_LATENCY_SECONDS);
    for s in samples {
        h.record(s.as_secs_f64());
    }
    if dropped > 0 {
        metrics::counter!(LATENCY_SAMPLES_DROPPED_TOTAL).increment(dropped);
    }
}
