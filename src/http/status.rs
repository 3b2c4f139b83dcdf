//! The node status served at `GET /status`, and its human-readable table.

use std::fmt::{self, Write as _};
use std::net::SocketAddr;

use crate::proto::{ClusterId, NetworkId};

/// A point-in-time view of a node: itself, the members it knows and its
/// live links. Serialised as the JSON of `GET /status`; ids are lowercase
/// hex, addresses `IP:PORT` strings.
///
/// Unknown fields are ignored when deserialising, so an older `fedmesh
/// status` can read a newer node's answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatusSnapshot {
    /// This node.
    pub node: NodeStatus,
    /// Every member this node knows of, itself included.
    pub members: Vec<MemberStatus>,
    /// This node's live links.
    pub links: Vec<LinkStatus>,
    /// The roster epoch in use and any change under way (absent from
    /// nodes that predate roster epochs).
    #[serde(default)]
    pub roster: super::roster::RosterStatus,
    /// The route to every reachable cluster (absent from older nodes).
    #[serde(default)]
    pub routes: Vec<RouteStatus>,
    /// Counters of routed traffic at this node (absent from older nodes).
    #[serde(default)]
    pub routing: RoutingStats,
    /// Every edge of the link graph this node routes over (absent from
    /// older nodes).
    #[serde(default)]
    pub graph: Vec<GraphEdge>,
    /// Recent notable events, oldest first, bounded (absent from older
    /// nodes).
    #[serde(default)]
    pub recent: Vec<RecentEvent>,
    /// The queues each cluster hosts and the topic patterns it subscribes
    /// to, as this node learned them from the signed records (absent from
    /// older nodes).
    #[serde(default)]
    pub queues: Vec<ClusterQueues>,
    /// Counters of publishing and delivering (absent from older nodes).
    #[serde(default)]
    pub delivery: super::delivery_stats::DeliveryStats,
}

impl StatusSnapshot {
    /// The clusters whose advertised subscriptions match `topic` (none for
    /// an invalid topic name).
    pub fn subscribers_of(&self, topic: &str) -> Vec<ClusterId> {
        use crate::proto::queue::{Pattern, QueueName, matches};
        let Ok(name) = QueueName::new(topic) else {
            return Vec::new();
        };
        self.queues
            .iter()
            .filter(|c| {
                c.subscriptions
                    .iter()
                    .filter_map(|p| Pattern::new(p).ok())
                    .any(|p| matches(&p, &name))
            })
            .map(|c| c.cluster)
            .collect()
    }
}

/// One cluster's advertised queues and subscriptions, as shown in a
/// [`StatusSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterQueues {
    /// The cluster.
    pub cluster: ClusterId,
    /// Its name in the roster, if any.
    pub name: Option<String>,
    /// Queues it hosts.
    pub hosts: Vec<String>,
    /// Topic patterns it subscribes to (AMQP style: `*` one segment, `#` any).
    pub subscriptions: Vec<String>,
}

/// One undirected edge of the link graph, as shown in a [`StatusSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GraphEdge {
    /// The end with the smaller id.
    pub a: ClusterId,
    /// The other end.
    pub b: ClusterId,
    /// The edge's routing cost: the link's RTT in microseconds, plus a
    /// penalty for suspect ends.
    pub cost_us: u64,
}

/// What kind of thing a [`RecentEvent`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecentKind {
    /// A decision reached by quorum (a roster epoch adopted, a proposal
    /// that failed; later: message decisions).
    Decision,
    /// Proof of misbehaviour (equivocation, a forked roster).
    Evidence,
    /// A member came up, became suspect, recovered, died or left.
    Member,
    /// A peer refused by this node, or a peer's goodbye.
    Refusal,
    /// A kind this reader does not know (sent by a newer node).
    #[serde(other)]
    Other,
}

impl RecentKind {
    /// The lowercase name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            RecentKind::Decision => "decision",
            RecentKind::Evidence => "evidence",
            RecentKind::Member => "member",
            RecentKind::Refusal => "refusal",
            RecentKind::Other => "other",
        }
    }
}

/// Milliseconds since the Unix epoch by the system clock (0 before 1970),
/// the time base of [`RecentEvent::unix_ms`].
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One notable event, as shown in a [`StatusSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecentEvent {
    /// When it happened, in milliseconds since the Unix epoch (node clock).
    pub unix_ms: u64,
    /// What kind of event it was.
    pub kind: RecentKind,
    /// A one-line description (may contain roster names: escape it).
    pub summary: String,
}

/// The best route to one cluster, as shown in a [`StatusSnapshot`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RouteStatus {
    /// The destination's cluster id.
    pub dst: ClusterId,
    /// Its name in the roster; `None` for an observer.
    pub name: Option<String>,
    /// The neighbour messages to it are handed to.
    pub next_hop: ClusterId,
    /// The path's cost: the sum of its links' RTT in microseconds, plus a
    /// penalty for suspect clusters.
    pub cost_us: u64,
    /// The whole path, this node first and the destination last.
    pub path: Vec<ClusterId>,
    /// Roster names along the path (`-` for observers), same order.
    #[serde(default)]
    pub path_names: Vec<String>,
}

/// Counters of routed traffic, as shown in a [`StatusSnapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RoutingStats {
    /// Messages this node originated (retries included).
    pub originated: u64,
    /// Messages forwarded on behalf of other clusters.
    pub forwarded: u64,
    /// Messages delivered here.
    pub delivered: u64,
    /// Messages dropped, by reason (`over_budget`, `loop`, `no_route`,
    /// `dst_unknown`, `bad_path`).
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// Route table recomputations.
    pub recomputations: u64,
    /// Probes awaiting an ack.
    pub pending_probes: u64,
}

/// This node, as shown in a [`StatusSnapshot`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeStatus {
    /// The node's cluster id.
    pub id: ClusterId,
    /// Its name in the roster; `None` for an observer that is not a member.
    pub name: Option<String>,
    /// The network name (from the genesis roster).
    pub network: String,
    /// The network id.
    pub network_id: NetworkId,
    /// The QUIC address the node listens on.
    pub listen: SocketAddr,
    /// The node's incarnation (bumped at every restart).
    pub incarnation: u64,
    /// Seconds since the node started.
    pub uptime_s: u64,
}

/// What a node believes about a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Heard from recently.
    Alive,
    /// Silent for longer than the failure detector allows; may still refute.
    Suspect,
    /// Declared dead; its record is dropped after the dead TTL.
    Dead,
    /// Left the network on purpose.
    Left,
}

impl MemberState {
    /// Every state, in display order.
    pub const ALL: [MemberState; 4] = [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Dead,
        MemberState::Left,
    ];

    /// The lowercase name used in JSON, tables and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member, as shown in a [`StatusSnapshot`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemberStatus {
    /// The member's cluster id.
    pub id: ClusterId,
    /// Its name in the roster; `None` for an observer.
    pub name: Option<String>,
    /// Its state as this node sees it.
    pub state: MemberState,
    /// The address it advertises, if known.
    pub addr: Option<SocketAddr>,
    /// The newest incarnation seen for it.
    pub incarnation: u64,
    /// RTT of the direct link to it in milliseconds, if there is one.
    pub rtt_ms: Option<f64>,
    /// Its voting weight in the current roster epoch (0 for observers).
    pub weight: u64,
}

/// One live link, as shown in a [`StatusSnapshot`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinkStatus {
    /// The peer's cluster id.
    pub peer: ClusterId,
    /// The peer's name in the roster; `None` for an observer.
    pub name: Option<String>,
    /// The peer's address on this connection.
    pub addr: SocketAddr,
    /// The link's smoothed RTT in milliseconds (a non-finite value is sent
    /// as JSON `null` and read back as NaN).
    #[serde(deserialize_with = "f64_or_null")]
    pub rtt_ms: f64,
    /// Whether the peer dialed this node (`false`: this node dialed it).
    pub inbound: bool,
}

/// Reads an `f64` that serde_json may have written as `null` (NaN, ±inf).
fn f64_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v: Option<f64> = serde::Deserialize::deserialize(d)?;
    Ok(v.unwrap_or(f64::NAN))
}

/// Renders a snapshot as the plain-text report of `fedmesh status`: a line
/// about the node and the roster epoch, then tables of every member (short
/// id, name, state, address, incarnation, RTT, weight), every link, every
/// route, and the newest recent events.
///
/// Text that came from the network is shown with control characters
/// replaced, so a hostile name cannot drive the terminal.
pub fn render_status_table(snapshot: &StatusSnapshot) -> String {
    let mut out = String::new();
    let node = &snapshot.node;
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "node {} {}  network {} ({})  listen {}  incarnation {}  up {}",
        node.id.short(),
        name_or_dash(node.name.as_deref()),
        clean(&node.network),
        node.network_id.short(),
        node.listen,
        node.incarnation,
        format_uptime(node.uptime_s),
    );
    let r = &snapshot.roster;
    let _ = writeln!(
        out,
        "roster epoch {}  total weight {}  ({} members)",
        r.epoch,
        r.total_weight,
        r.members.len()
    );
    if let Some(p) = &r.pending {
        let _ = writeln!(
            out,
            "roster change pending: epoch {} attempt {}, {} of {} weight voted, {} proposal(s)",
            p.epoch,
            p.attempt,
            p.voted,
            p.total,
            p.proposals.len()
        );
    }

    out.push('\n');
    if snapshot.members.is_empty() {
        out.push_str("members: none\n");
    } else {
        let counts: Vec<String> = MemberState::ALL
            .iter()
            .filter_map(|&state| {
                let n = snapshot.members.iter().filter(|m| m.state == state).count();
                (n > 0).then(|| format!("{n} {state}"))
            })
            .collect();
        let _ = writeln!(
            out,
            "members: {} ({})",
            snapshot.members.len(),
            counts.join(", ")
        );
        let mut table = Table::new(&[
            ("ID", Align::Left),
            ("NAME", Align::Left),
            ("STATE", Align::Left),
            ("ADDRESS", Align::Left),
            ("INCARNATION", Align::Right),
            ("RTT", Align::Right),
            ("WEIGHT", Align::Right),
        ]);
        for m in &snapshot.members {
            table.row(vec![
                m.id.short(),
                name_or_dash(m.name.as_deref()),
                m.state.to_string(),
                m.addr.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                m.incarnation.to_string(),
                format_rtt(m.rtt_ms),
                m.weight.to_string(),
            ]);
        }
        table.render_into(&mut out);
    }

    out.push('\n');
    if snapshot.links.is_empty() {
        out.push_str("links: none\n");
    } else {
        let inbound = snapshot.links.iter().filter(|l| l.inbound).count();
        let _ = writeln!(
            out,
            "links: {} ({} inbound, {} outbound)",
            snapshot.links.len(),
            inbound,
            snapshot.links.len() - inbound
        );
        let mut table = Table::new(&[
            ("PEER", Align::Left),
            ("NAME", Align::Left),
            ("ADDRESS", Align::Left),
            ("RTT", Align::Right),
            ("DIRECTION", Align::Left),
        ]);
        for l in &snapshot.links {
            table.row(vec![
                l.peer.short(),
                name_or_dash(l.name.as_deref()),
                l.addr.to_string(),
                format_rtt(Some(l.rtt_ms)),
                if l.inbound { "inbound" } else { "outbound" }.to_owned(),
            ]);
        }
        table.render_into(&mut out);
    }

    let _ = writeln!(out, "\nlink graph: {} edge(s)", snapshot.graph.len());
    out.push('\n');
    if snapshot.routes.is_empty() {
        out.push_str("routes: none\n");
    } else {
        let _ = writeln!(out, "routes: {}", snapshot.routes.len());
        let mut table = Table::new(&[
            ("DST", Align::Left),
            ("NAME", Align::Left),
            ("NEXT HOP", Align::Left),
            ("HOPS", Align::Right),
            ("COST", Align::Right),
            ("PATH", Align::Left),
        ]);
        for r in &snapshot.routes {
            table.row(vec![
                r.dst.short(),
                name_or_dash(r.name.as_deref()),
                r.next_hop.short(),
                r.path.len().saturating_sub(1).to_string(),
                format_rtt(Some(r.cost_us as f64 / 1e3)),
                format_path(r),
            ]);
        }
        table.render_into(&mut out);
    }
    render_recent(snapshot, &mut out);
    out
}

/// How many recent events `fedmesh status` shows.
const RECENT_SHOWN: usize = 10;

/// The newest events, newest first, with their age by this machine's
/// clock (the node's usually; a skewed clock shows `0s`).
fn render_recent(snapshot: &StatusSnapshot, out: &mut String) {
    out.push('\n');
    if snapshot.recent.is_empty() {
        out.push_str("recent events: none\n");
        return;
    }
    let now = unix_ms_now();
    let _ = writeln!(
        out,
        "recent events: {} (newest {} shown)",
        snapshot.recent.len(),
        snapshot.recent.len().min(RECENT_SHOWN)
    );
    let mut table = Table::new(&[
        ("AGO", Align::Right),
        ("KIND", Align::Left),
        ("EVENT", Align::Left),
    ]);
    for e in snapshot.recent.iter().rev().take(RECENT_SHOWN) {
        table.row(vec![
            format_uptime(now.saturating_sub(e.unix_ms) / 1000),
            e.kind.as_str().to_owned(),
            clean(&e.summary),
        ]);
    }
    table.render_into(out);
}

/// `alpha→beta→gamma` with roster names, short ids where a name is missing.
fn format_path(r: &RouteStatus) -> String {
    r.path
        .iter()
        .enumerate()
        .map(|(i, id)| match r.path_names.get(i) {
            Some(n) if !n.is_empty() && n != "-" => clean(n),
            _ => id.short(),
        })
        .collect::<Vec<_>>()
        .join("→")
}

/// `12.3 ms`, or `-` when unknown or not a valid duration.
fn format_rtt(rtt_ms: Option<f64>) -> String {
    match rtt_ms {
        Some(ms) if ms.is_finite() && ms >= 0.0 => format!("{ms:.1} ms"),
        _ => "-".to_owned(),
    }
}

/// `3d04h05m06s`, `1h02m03s`, `2m03s` or `5s`.
fn format_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h{m:02}m{s:02}s")
    } else if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

fn name_or_dash(name: Option<&str>) -> String {
    match name {
        Some(n) if !n.is_empty() => clean(n),
        _ => "-".to_owned(),
    }
}

/// Replaces control characters (escape sequences, newlines) with `?`.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// A plain-text table with columns as wide as their widest cell.
struct Table {
    headers: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[(&'static str, Align)]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render_into(&self, out: &mut String) {
        let widths: Vec<usize> = self
            .headers
            .iter()
            .enumerate()
            .map(|(i, (h, _))| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .chain([h.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let header: Vec<String> = self.headers.iter().map(|(h, _)| (*h).to_owned()).collect();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, ((_, align), width)) in self.headers.iter().zip(&widths).enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = width.saturating_sub(cell.chars().count());
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_and_rtt_are_compact() {
        assert_eq!(format_uptime(5), "5s");
        assert_eq!(format_uptime(123), "2m03s");
        assert_eq!(format_uptime(3_723), "1h02m03s");
        assert_eq!(
            format_uptime(3 * 86_400 + 4 * 3_600 + 5 * 60 + 6),
            "3d04h05m06s"
        );
        assert_eq!(format_rtt(Some(12.345)), "12.3 ms");
        assert_eq!(format_rtt(None), "-");
        assert_eq!(format_rtt(Some(f64::NAN)), "-");
        assert_eq!(format_rtt(Some(-1.0)), "-");
    }

    #[test]
    fn control_characters_are_neutralised() {
        assert_eq!(clean("a\u{1b}[31mb\n"), "a?[31mb?");
        assert_eq!(name_or_dash(Some("")), "-");
        assert_eq!(name_or_dash(None), "-");
    }

    #[test]
    fn columns_align() {
        let mut t = Table::new(&[("A", Align::Left), ("NUM", Align::Right)]);
        t.row(vec!["long-cell".into(), "1".into()]);
        t.row(vec!["x".into(), "12345".into()]);
        let mut out = String::new();
        t.render_into(&mut out);
        // Widths 9 and 5, two spaces between columns.
        let expected = format!(
            "A{}NUM\nlong-cell{}1\nx{}12345\n",
            " ".repeat(8 + 2 + 2),
            " ".repeat(2 + 4),
            " ".repeat(8 + 2)
        );
        assert_eq!(out, expected);
    }
}
