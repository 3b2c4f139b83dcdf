//! Counters of the data path as `GET /status` shows them (the `delivery`
//! field) and as the delivery metrics are recorded from.

/// Counters of publishing and delivering at one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryStats {
    /// Messages published here (federated messages).
    pub published: u64,
    /// Messages handed to this node's subscribers.
    pub delivered: u64,
    /// Of those, messages from another cluster (cross-cluster deliveries).
    pub delivered_remote: u64,
    /// Duplicates received (acknowledged again, not delivered).
    pub duplicates: u64,
    /// Messages received and refused (malformed, ahead of the dedup window).
    pub refused: u64,
    /// Messages awaiting an acknowledgement.
    pub outbox_depth: u64,
    /// Retransmissions after an acknowledgement timed out.
    pub retries: u64,
    /// Publishes refused because the outbox was full.
    pub outbox_full: u64,
    /// Causal order.
    pub causal: CausalStatus,
    /// Quorum rounds this node coordinates.
    pub quorum: QuorumStats,
}

/// Counters of causal delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CausalStatus {
    /// Causal messages published here.
    pub stamped: u64,
    /// Causal messages from other clusters delivered here.
    pub delivered: u64,
    /// Causal messages that had to wait for a predecessor.
    pub held_back: u64,
    /// Causal messages waiting now.
    pub held: u64,
    /// Messages refused because the hold-back buffer was full.
    pub overflow: u64,
    /// Causal messages refused as malformed.
    pub invalid: u64,
}

/// Counters of quorum rounds (MPREG's names in the metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuorumStats {
    /// Rounds this node started (consensus rounds total).
    pub started: u64,
    /// Rounds accepted (consensus rounds succeeded).
    pub succeeded: u64,
    /// Rounds rejected or timed out (consensus rounds failed).
    pub failed: u64,
    /// Equivocations detected or learnt from evidence (byzantine faults detected).
    pub byzantine_faults: u64,
}
