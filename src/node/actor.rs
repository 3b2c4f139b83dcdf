//! The node's actor: one task that owns the protocol [`Core`], turns
//! transport events into core inputs and core outputs into transport
//! actions. It makes no protocol decisions of its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::http::StatusSnapshot;
use crate::http::metrics::{
    DIRECTION_IN, DIRECTION_OUT, FRAMES_TOTAL, MALFORMED_FRAMES_TOTAL, UDP_BYTES,
};
use crate::net::{Link, LinkEvent, NetError, Priority, Transport};
use crate::node::commit::{CommitPipeline, Handoff, Step, tell};
use crate::node::links::{Admit, Links};
use crate::node::snapshot::{record_gauges, snapshot};
use crate::proto::core::{Command, Core, Delivery, Input, Output, Persist, TimerId};
use crate::proto::identity::ClusterId;
use crate::proto::membership::event::Event;
use crate::proto::roster_sync::{Progress, RosterChange};
use crate::proto::time::Millis;
use crate::proto::wire;

/// Requests from the [`NodeHandle`](super::NodeHandle).
pub enum Request {
    /// Leave gracefully, then stop; answered when done.
    Shutdown(oneshot::Sender<()>),
    /// Hand a command to the core.
    Command(Command),
    /// Propose a roster change; answered with its first progress.
    ProposeRoster(RosterChange, oneshot::Sender<Progress>),
    /// A publish command, answered with its [`Delivery::Published`] or
    /// [`Delivery::PublishRefused`] (a refusal wins if both come).
    Publish(Command, oneshot::Sender<Delivery>),
    /// Per-destination acknowledgement state of an outbox message (`None`
    /// once every destination acknowledged it, or if unknown).
    MessageStatus(
        crate::proto::delivery::MessageKey,
        oneshot::Sender<Option<Vec<(ClusterId, crate::proto::delivery::DestStatus)>>>,
    ),
}

/// A connection attempt's outcome, from the accept loop or a dial task.
pub enum Dialed {
    /// A peer dialed us.
    Inbound(Result<Link, NetError>),
    /// Our dial finished.
    Outbound {
        /// Where we dialed.
        addr: SocketAddr,
        /// The id we pinned.
        expected: Option<ClusterId>,
        /// The outcome.
        result: Result<Link, NetError>,
    },
}

/// Everything the actor owns.
pub struct Actor {
    pub(crate) core: Core,
    pub(crate) transport: Arc<Transport>,
    pub(crate) links: Links,
    pub(crate) link_events_tx: mpsc::Sender<LinkEvent>,
    pub(crate) link_events: mpsc::Receiver<LinkEvent>,
    pub(crate) dialed_tx: mpsc::Sender<Dialed>,
    pub(crate) dialed: mpsc::Receiver<Dialed>,
    pub(crate) requests: mpsc::Receiver<Request>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) deliveries: broadcast::Sender<Delivery>,
    pub(crate) status: watch::Sender<StatusSnapshot>,
    pub(crate) pinned: HashMap<SocketAddr, ClusterId>,
    pub(crate) data_dir: PathBuf,
    pub(crate) started: Instant,
    pub(crate) timer: Option<Millis>,
    /// Links being closed after their last frames drain.
    pub(crate) closing: Vec<tokio::task::JoinHandle<()>>,
    /// Route recomputations already published in the status.
    pub(crate) routes_seen: u64,
    /// The latest progress of this node's own roster proposal.
    pub(crate) roster_progress: Option<Progress>,
    /// Notable events for the status page.
    pub(crate) recent: crate::node::recent::RecentLog,
    /// This node's vote log (None if it could not be opened: logged at start).
    pub(crate) vote_log: Option<crate::store::votelog::VoteLogWriter>,
    /// The subscriber's reliable inbox, if the node was started with one.
    pub(crate) inbox: Option<crate::node::inbox::InboxSender>,
    /// Core outputs (and publish answers) not staged in the commit
    /// pipeline yet (see [`Actor::flush`]).
    pub(crate) staged: Vec<Step>,
    /// Reused buffer for one input's outputs.
    pub(crate) scratch: Vec<Output>,
    /// True while several inputs are fed before one flush.
    pub(crate) batching: bool,
    /// A staged output opens or closes a connection: flush before more input.
    pub(crate) staged_link_change: bool,
    /// Durable writes committed off the actor, and the outputs waiting for them.
    pub(crate) commits: CommitPipeline,
    /// A durable write failed: the node stops (fail-stop).
    pub(crate) failed: bool,
    /// The outbox depth, published after every flush.
    pub(crate) outbox_depth: Arc<std::sync::atomic::AtomicUsize>,
}

/// Most inputs fed to the core before their outputs are carried out with
/// one group commit.
pub(crate) const MAX_BATCH: usize = 256;

/// The answer to a publish command among its outputs: the refusal if
/// there is one, else the acceptance.
fn publish_answer(steps: &[Step]) -> Delivery {
    let mut answer = None;
    for s in steps {
        match s {
            Step::Output(Output::Deliver(d @ Delivery::PublishRefused { .. })) => {
                return d.clone();
            }
            Step::Output(Output::Deliver(d @ Delivery::Published { .. })) => {
                answer = Some(d.clone());
            }
            _ => {}
        }
    }
    answer.unwrap_or_else(|| Delivery::PublishRefused {
        topic: String::new(),
        reason: "the node gave no answer".into(),
    })
}

/// An error with its causes, for log lines that must say why.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// How long a closing link may take to deliver what was queued before it
/// (goodbyes, the leave announcement).
const FLUSH_BEFORE_CLOSE: Duration = Duration::from_secs(1);

impl Actor {
    fn now(&self) -> Millis {
        Millis::from_duration(self.started.elapsed())
    }

    /// Runs until shutdown or until the handle is dropped.
    pub async fn run(mut self) {
        self.input(Input::Start).await;
        loop {
            if self.failed {
                // Carrying on could lose or duplicate messages; a restart
                // reloads the last committed state.
                tracing::error!("stopping the node after a failed durable write");
                self.transport.close();
                return;
            }
            let deadline = self
                .timer
                .map(|at| self.started + at.as_duration())
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                Some(ev) = self.link_events.recv() => {
                    // Group commit: every input already queued shares one flush.
                    self.batching = true;
                    self.on_link_event(ev).await;
                    for _ in 1..MAX_BATCH {
                        if self.staged_link_change {
                            break;
                        }
                        match self.link_events.try_recv() {
                            Ok(ev) => self.on_link_event(ev).await,
                            Err(_) => break,
                        }
                    }
                    self.batching = false;
                    self.flush().await;
                }
                Some(c) = self.commits.finished(), if self.commits.in_flight() => {
                    self.on_committed(c).await;
                }
                Some(d) = self.dialed.recv() => self.on_dialed(d).await,
                _ = tokio::time::sleep_until(deadline.into()), if self.timer.is_some() => {
                    self.timer = None;
                    self.on_tick().await;
                }
                req = self.requests.recv() => {
                    let next = match req {
                        Some(r @ (Request::Command(_) | Request::Publish(..))) => {
                            self.commands(r).await
                        }
                        other => other.map(Some),
                    };
                    if let Some(req) = next
                        && self.request(req).await
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Feeds `first` and the commands and publishes queued behind it with
    /// one flush (so the messages of a burst of publishes share one commit
    /// and leave as one data batch per destination); returns a queued
    /// request of another kind, if it stopped there (`Some(None)`: the
    /// handle is gone).
    async fn commands(&mut self, first: Request) -> Option<Option<Request>> {
        self.batching = true;
        let mut next = Some(first);
        let mut rest = None;
        for _ in 0..MAX_BATCH {
            match next.take() {
                Some(Request::Command(c)) => self.input(Input::Command(c)).await,
                Some(Request::Publish(c, reply)) => self.publish(c, reply).await,
                Some(other) => {
                    rest = Some(Some(other));
                    break;
                }
                None => {}
            }
            if self.staged_link_change {
                break;
            }
            match self.requests.try_recv() {
                Ok(req) => next = Some(req),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    rest = Some(None);
                    break;
                }
            }
        }
        // A request taken but not fed (the batch is full) goes next.
        if let Some(req) = next {
            rest = Some(Some(req));
        }
        self.batching = false;
        self.flush().await;
        rest
    }

    /// Feeds a publish command and stages its answer, given in order once
    /// the outbox entry is durable. Call while batching.
    async fn publish(&mut self, c: Command, reply: oneshot::Sender<Delivery>) {
        let from = self.staged.len();
        self.input(Input::Command(c)).await;
        let answer = publish_answer(&self.staged[from..]);
        self.staged.push(Step::Answer(reply, answer));
    }

    /// Handles one request (`None`: the handle is gone); true to stop.
    async fn request(&mut self, req: Option<Request>) -> bool {
        let done = match req {
            Some(Request::Command(c)) => {
                self.input(Input::Command(c)).await;
                return false;
            }
            Some(Request::ProposeRoster(change, reply)) => {
                self.batching = true;
                let from = self.staged.len();
                self.input(Input::Command(Command::ProposeRoster(change)))
                    .await;
                let first = self.staged[from..]
                    .iter()
                    .rev()
                    .find_map(|s| match s {
                        Step::Output(Output::Event(Event::RosterProgress(p))) => Some(p.clone()),
                        _ => None,
                    })
                    .unwrap_or(Progress::Failed {
                        reason: "the node reported no progress".into(),
                    });
                self.batching = false;
                self.flush().await;
                let _ = reply.send(first);
                return false;
            }
            Some(Request::Publish(c, reply)) => {
                self.batching = true;
                self.publish(c, reply).await;
                self.batching = false;
                self.flush().await;
                return false;
            }
            Some(Request::MessageStatus(key, reply)) => {
                let _ = reply.send(self.core.message_status(&key));
                return false;
            }
            Some(Request::Shutdown(done)) => Some(done),
            None => None,
        };
        self.leave().await;
        if let Some(done) = done {
            let _ = done.send(());
        }
        true
    }

    async fn on_tick(&mut self) {
        let samples: Vec<(ClusterId, Duration)> =
            self.links.iter().map(|(p, e)| (*p, e.link.rtt())).collect();
        let (tx, rx) = self
            .links
            .iter()
            .map(|(_, e)| e.link.udp_bytes())
            .fold((0u64, 0u64), |(a, b), (t, r)| {
                (a.saturating_add(t), b.saturating_add(r))
            });
        metrics::gauge!(UDP_BYTES, "direction" => DIRECTION_OUT).set(tx as f64);
        metrics::gauge!(UDP_BYTES, "direction" => DIRECTION_IN).set(rx as f64);
        for (peer, rtt) in samples {
            self.input(Input::Rtt { peer, rtt }).await;
        }
        self.input(Input::Timer(TimerId::Tick)).await;
        crate::http::metrics::record_latency(self.core.take_latency_samples());
        self.publish_status();
    }

    fn publish_status(&self) {
        let mut snap = snapshot(
            &self.core,
            self.now(),
            self.transport.local_addr(),
            self.started.elapsed().as_secs(),
        );
        snap.roster.own_proposal = self.roster_progress.clone();
        snap.recent = self.recent.to_vec();
        record_gauges(&snap);
        self.status.send_replace(snap);
    }

    async fn on_link_event(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Frame { link, peer, bytes } => {
                // A duplicate link being replaced still delivers what the
                // peer sent on it before it saw the new one (the peer is
                // the same, authenticated either way); only a peer with no
                // link left is not heard.
                if !self.links.is_current(&peer, link) && self.links.get(&peer).is_none() {
                    return;
                }
                match wire::decode(&bytes) {
                    Ok(frame) => {
                        metrics::counter!(FRAMES_TOTAL, "direction" => DIRECTION_IN, "type" => frame.kind().name())
                            .increment(1);
                        self.input(Input::Frame { from: peer, frame }).await;
                    }
                    Err(error) => {
                        metrics::counter!(MALFORMED_FRAMES_TOTAL).increment(1);
                        tracing::warn!(peer = %peer.short(), %error, "malformed frame");
                        self.input(Input::MalformedFrame {
                            peer,
                            error: error.to_string(),
                        })
                        .await;
                    }
                }
            }
            LinkEvent::Malformed { link, peer, error } => {
                metrics::counter!(MALFORMED_FRAMES_TOTAL).increment(1);
                tracing::warn!(peer = %peer.short(), %error, "malformed stream, connection closed");
                if self.links.is_current(&peer, link) {
                    self.input(Input::MalformedFrame {
                        peer,
                        error: error.to_string(),
                    })
                    .await;
                }
            }
            LinkEvent::Closed { link, peer, reason } => {
                if self.links.is_current(&peer, link) {
                    self.links.remove(&peer);
                    tracing::info!(peer = %peer.short(), %reason, "link closed");
                    self.input(Input::PeerDown {
                        peer,
                        reason: reason.to_string(),
                    })
                    .await;
                }
            }
        }
    }

    async fn on_dialed(&mut self, d: Dialed) {
        let (result, inbound) = match d {
            Dialed::Inbound(r) => (r, true),
            Dialed::Outbound {
                addr,
                expected,
                result: Err(e),
            } => {
                tracing::warn!(%addr, error = %chain(&e), "dial failed");
                self.input(Input::ConnectFailed {
                    addr,
                    expected,
                    reason: e.to_string(),
                })
                .await;
                return;
            }
            Dialed::Outbound { result, .. } => (result, false),
        };
        let link = match result {
            Ok(link) => link,
            Err(e) => {
                tracing::warn!(error = %chain(&e), "inbound connection refused");
                return;
            }
        };
        let (peer, addr, rtt) = (link.peer(), link.remote_addr(), link.rtt());
        match self.links.admit(self.core.id(), link, inbound) {
            (Admit::Duplicate, Some(dup)) => dup.close("duplicate connection"),
            (Admit::Duplicate, None) => {}
            (Admit::Replaces(old), _) => {
                // What was queued on the old link still goes out.
                self.closing.retain(|t| !t.is_finished());
                self.closing.push(tokio::spawn(async move {
                    old.link
                        .close_after_flush("duplicate connection", FLUSH_BEFORE_CLOSE)
                        .await
                }));
                self.start_link(&peer);
            }
            (Admit::New, _) => {
                self.start_link(&peer);
                self.input(Input::PeerUp {
                    peer,
                    addr,
                    rtt,
                    inbound,
                })
                .await;
            }
        }
    }

    fn start_link(&self, peer: &ClusterId) {
        if let Some(e) = self.links.get(peer) {
            e.link.start(self.link_events_tx.clone());
        }
    }

    /// Feeds one input to the core; its outputs are staged at once, or by
    /// the flush that ends a batch.
    async fn input(&mut self, input: Input) {
        let now = self.now();
        let mut outs = std::mem::take(&mut self.scratch);
        self.core.handle_batched(now, input, &mut outs);
        self.stage_outputs(outs);
        if !self.batching {
            self.flush().await;
        }
    }

    fn stage_outputs(&mut self, mut outs: Vec<Output>) {
        for o in outs.drain(..) {
            self.staged_link_change |=
                matches!(o, Output::Connect { .. } | Output::Disconnect { .. });
            self.staged.push(Step::Output(o));
        }
        self.scratch = outs;
    }

    /// Hands the staged outputs to the commit pipeline and carries out
    /// those that wait for no commit. The group-committed writes of a
    /// batch become one transaction, committed while the next batch is
    /// handled; what follows a write is carried out once it is durable.
    /// Persisting earlier than asked is always safe.
    async fn flush(&mut self) {
        let mut acks = std::mem::take(&mut self.scratch);
        self.core.end_batch(&mut acks);
        self.stage_outputs(acks);
        let steps = std::mem::take(&mut self.staged);
        self.staged_link_change = false;
        let steps = self.reserve_inbox_room(steps).await;
        let waits = steps
            .iter()
            .any(|s| matches!(s, Step::Message(_, Handoff::Wait)));
        let mut ready = Vec::new();
        self.commits.stage(steps, &mut ready);
        if !ready.is_empty() {
            self.execute(ready).await;
        }
        self.commits.start();
        if waits {
            // Hand-offs that wait for room go before any later batch can
            // reserve room for itself (which they would then wait behind).
            self.drain_commits().await;
        }
    }

    /// Turns the messages among `steps` into inbox hand-offs, with room
    /// reserved for each (waiting for the subscriber: backpressure).
    async fn reserve_inbox_room(&mut self, steps: Vec<Step>) -> Vec<Step> {
        let is_message =
            |s: &Step| matches!(s, Step::Output(Output::Deliver(Delivery::Message(_))));
        let n = steps.iter().filter(|s| is_message(s)).count();
        if n == 0 {
            return steps;
        }
        let capacity = self.inbox.as_ref().map(|i| i.capacity());
        if let (Some(capacity), Some(i)) = (capacity, &self.inbox)
            && (n > capacity || i.available() < n)
            && self.commits.holds()
        {
            // Held messages may hold the room: let their commits hand them
            // off first, or waiting for room could wait for ourselves.
            self.drain_commits().await;
        }
        let mut permits = Vec::new();
        if let Some(i) = &self.inbox
            && n <= i.capacity()
        {
            for _ in 0..n {
                match i.reserve().await {
                    Some(p) => permits.push(p),
                    None => break,
                }
            }
        }
        if self.inbox.is_some() && permits.len() < n && n <= capacity.unwrap_or(0) {
            tracing::warn!("the inbox was dropped; messages go to the deliveries stream only");
            self.inbox = None;
        }
        let mut permits = permits.into_iter();
        let inbox = self.inbox.is_some();
        steps
            .into_iter()
            .map(|s| match s {
                Step::Output(Output::Deliver(Delivery::Message(e))) => {
                    let handoff = match permits.next() {
                        Some(p) => Handoff::Reserved(p),
                        None if inbox => Handoff::Wait,
                        None => Handoff::Skip,
                    };
                    Step::Message(e, handoff)
                }
                other => other,
            })
            .collect()
    }

    /// A commit finished: carries out what it releases, starts the next.
    async fn on_committed(&mut self, c: crate::node::commit::Committed) {
        let mut ready = Vec::new();
        match self.commits.on_finished(c, &mut ready) {
            Ok(()) => {
                self.execute(ready).await;
                self.commits.start();
            }
            Err(e) => {
                tracing::error!(error = %chain(&e), "cannot persist the data path");
                self.failed = true;
            }
        }
    }

    /// Waits until every write staged so far is durable and everything
    /// waiting for it carried out.
    async fn drain_commits(&mut self) {
        self.commits.start();
        while self.commits.in_flight() && !self.failed {
            match self.commits.finished().await {
                Some(c) => Box::pin(self.on_committed(c)).await,
                None => return,
            }
        }
    }

    /// Carries out steps whose writes are durable, in order.
    async fn execute(&mut self, steps: Vec<Step>) {
        let mut membership_changed = false;
        // Votes whose persistence failed: never sent (see Persist::SignedVote).
        let mut unsafe_votes: Vec<wire::Blob> = Vec::new();
        for step in steps {
            let out = match step {
                Step::Output(o) => o,
                Step::Done => continue,
                // Only a tick's many local self-deliveries get here.
                Step::Message(e, Handoff::Wait) => {
                    if let Some(i) = &self.inbox
                        && !i.send(e.clone()).await
                    {
                        tracing::warn!(
                            "the inbox was dropped; messages go to the deliveries stream only"
                        );
                        self.inbox = None;
                    }
                    let _ = self.deliveries.send(Delivery::Message(e));
                    continue;
                }
                told @ (Step::Answer(..) | Step::Message(..)) => {
                    tell(told, &self.deliveries);
                    continue;
                }
            };
            match out {
                Output::Send { to, mut frame } => {
                    if let wire::Frame::RosterPending { votes, proposals } = &mut frame
                        && !unsafe_votes.is_empty()
                    {
                        votes.retain(|v| !unsafe_votes.contains(v));
                        if votes.is_empty() && proposals.is_empty() {
                            continue;
                        }
                    }
                    self.send(to, &frame)
                }
                Output::Connect { addr, expected } => self.dial(addr, expected),
                Output::Disconnect { peer, reason } => {
                    if let Some(e) = self.links.remove(&peer) {
                        tracing::info!(peer = %peer.short(), %reason, "closing link");
                        self.closing.retain(|t| !t.is_finished());
                        self.closing.push(tokio::spawn(async move {
                            e.link.close_after_flush(&reason, FLUSH_BEFORE_CLOSE).await
                        }));
                    }
                }
                Output::SetTimer {
                    id: TimerId::Tick,
                    at,
                } => self.timer = Some(at),
                Output::Event(ev) => {
                    if let Event::RosterProgress(p) = &ev {
                        self.roster_progress = Some(p.clone());
                    }
                    tracing::info!(event = ?ev, "membership");
                    let now = crate::node::recent::unix_ms_now();
                    self.recent.record(now, &ev, self.core.roster());
                    membership_changed = true;
                    let _ = self.events.send(ev);
                }
                Output::Persist(Persist::Incarnation(n)) => {
                    if let Err(e) = crate::store::state::store_incarnation(&self.data_dir, n) {
                        tracing::error!(error = %e, "cannot persist the incarnation");
                    }
                }
                Output::Deliver(d) => {
                    tracing::debug!(delivery = ?d, "routed");
                    let _ = self.deliveries.send(d);
                }
                Output::Persist(Persist::RosterEpoch(e)) => {
                    if let Err(err) = self.commits.db().put_roster_epoch(&e) {
                        tracing::error!(error = %err, "cannot persist the roster epoch");
                    }
                }
                Output::Persist(Persist::SignedVote(v)) => {
                    // A vote that is not durable must not leave this node:
                    // after a crash it could sign another value for the slot.
                    if let Err(err) = self.commits.db().put_signed_vote(&v) {
                        tracing::error!(error = %err, "cannot persist a roster vote; not sending it");
                        unsafe_votes.push(wire::Blob(v.encode().to_vec()));
                    }
                }
                Output::Persist(Persist::VoteLog { kind, body }) => {
                    let Some(kind) = crate::store::votelog::RecordKind::from_u8(kind) else {
                        tracing::error!(kind, "core asked to log an unknown record kind");
                        continue;
                    };
                    if let Some(log) = &mut self.vote_log
                        && let Err(err) = log.append(kind, &body)
                    {
                        tracing::error!(error = %err, "vote log append failed; vote log disabled");
                        self.vote_log = None;
                    }
                }
                // Taken by the commit pipeline.
                Output::Persist(
                    Persist::OutboxAdd(_)
                    | Persist::OutboxAck { .. }
                    | Persist::NextMessageId(_)
                    | Persist::NextSeq { .. }
                    | Persist::DedupWindow { .. }
                    | Persist::CausalClock { .. }
                    | Persist::QuorumVotes(_),
                ) => {}
            }
        }
        self.outbox_depth.store(
            self.core.outbox_depth(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let routes = self.core.routing_counters().recomputations;
        if membership_changed || routes != self.routes_seen {
            self.routes_seen = routes;
            self.publish_status();
        }
    }

    fn send(&self, to: ClusterId, frame: &wire::Frame) {
        let Some(entry) = self.links.get(&to) else {
            tracing::debug!(peer = %to.short(), "no link for frame");
            return;
        };
        // Bulk application data queues behind membership traffic, so a
        // busy stream never delays heartbeats into false suspicion.
        let priority = match frame {
            wire::Frame::Routed(r) if r.payload.is_data_path() => Priority::Data,
            _ => Priority::Gossip,
        };
        match wire::encode(frame) {
            Ok(bytes) => match entry.link.send(priority, bytes) {
                Ok(()) => metrics::counter!(FRAMES_TOTAL, "direction" => DIRECTION_OUT, "type" => frame.kind().name())
                    .increment(1),
                Err(e) => tracing::warn!(peer = %to.short(), error = %e, "frame not sent"),
            },
            Err(e) => tracing::error!(error = %e, "cannot encode frame"),
        }
    }

    fn dial(&self, addr: SocketAddr, expected: Option<ClusterId>) {
        let expected = expected.or_else(|| self.pinned.get(&addr).copied());
        let transport = self.transport.clone();
        let tx = self.dialed_tx.clone();
        tokio::spawn(async move {
            let result = transport.connect(addr, expected).await;
            let _ = tx
                .send(Dialed::Outbound {
                    addr,
                    expected,
                    result,
                })
                .await;
        });
    }

    /// Announces the departure, lets the goodbye frames drain, closes everything.
    async fn leave(&mut self) {
        self.input(Input::Command(Command::Leave)).await;
        // What waits for a commit goes out before the links close.
        self.drain_commits().await;
        let peers: Vec<ClusterId> = self.links.iter().map(|(p, _)| *p).collect();
        for p in peers {
            if let Some(e) = self.links.remove(&p) {
                self.closing.push(tokio::spawn(async move {
                    e.link
                        .close_after_flush("node shutting down", FLUSH_BEFORE_CLOSE)
                        .await
                }));
            }
        }
        for c in std::mem::take(&mut self.closing) {
            let _ = c.await;
        }
        if let Some(log) = self.vote_log.take()
            && let Err(e) = log.close()
        {
            tracing::error!(error = %e, "cannot seal the vote log");
        }
        self.publish_status();
        self.transport.close();
    }
}
