//! Pipelined group commit: the data path's durable writes (outbox, counters,
//! dedup windows, quorum votes) are committed on a blocking thread, one
//! redb transaction at a time, while the actor goes on feeding the core.
//! Every output waits for the commits of the writes staged before it and
//! is carried out in order; outputs with no write before them (a quorum
//! proposal, a heartbeat) leave at once.
//!
//! What the application hears of a commit is told by the commit thread
//! itself, right after the commit: messages for the subscriber's inbox
//! (room reserved beforehand) and every delivery on the observers' stream
//! (a message, `Published`, a publish request's answer) that waited for
//! it. So a node task stopped at any await (a crash in a test) never
//! leaves a message marked processed but not handed off (the sender's
//! retry would find it a duplicate), nor a publish durable but never
//! reported (the application would publish it again). The actor carries
//! out the rest (frames, events, the vote log) in order.
//!
//! Why: an fsync costs 0.2–8 ms here. Committing inline stalled the actor
//! for that long after every batch, so throughput was one batch per fsync
//! and every quorum hop paid for the fsyncs of unrelated writes. Now the
//! next batch gathers while the previous one is being made durable, and a
//! write delays only what was staged after it.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::proto::core::{Delivery, Output};
use crate::proto::delivery::Envelope;
use crate::store::db::{Db, DbError};
use crate::store::delivery_state::DeliveryWrites;

/// One thing the actor carries out, in order.
pub enum Step {
    /// A core output.
    Output(Output),
    /// The answer to a publish request, given once everything staged
    /// before it (the outbox entry, above all) is durable and carried out.
    Answer(oneshot::Sender<Delivery>, Delivery),
    /// A message for the subscriber (then for the observers too).
    Message(Envelope, Handoff),
    /// Carried out by the commit thread already.
    Done,
}

/// How a [`Step::Message`] reaches the subscriber's inbox.
pub enum Handoff {
    /// Room is reserved: sent with this permit, by the commit before it or
    /// by the actor.
    Reserved(mpsc::OwnedPermit<Envelope>),
    /// No room was reserved (a batch larger than the inbox): the actor
    /// waits for room when it carries the step out.
    Wait,
    /// Already handed off, or there is no inbox.
    Skip,
}

/// A commit that finished on the blocking thread.
pub struct Committed {
    seq: u64,
    result: Result<(), DbError>,
}

/// The database and the observers' stream, shared with the commit thread.
struct OpenDb {
    db: Db,
    /// The observers' stream of deliveries. Held here, not beside, so that
    /// it is gone too once `_closed` fires: a crashed node's stream ends.
    deliveries: broadcast::Sender<Delivery>,
    /// Dropped last (fields drop in order): tells that the file is closed
    /// and can be opened again, whichever thread let go of it last.
    _closed: oneshot::Sender<()>,
}

/// The commit pipeline of one node.
pub struct CommitPipeline {
    db: Arc<OpenDb>,
    /// Writes gathered for the next commit.
    writes: DeliveryWrites,
    /// The number the next commit gets.
    next: u64,
    in_flight: bool,
    /// Steps waiting for a commit, with the number of that commit
    /// (non-decreasing from front to back).
    held: VecDeque<(u64, Step)>,
    done_tx: mpsc::UnboundedSender<Committed>,
    done_rx: mpsc::UnboundedReceiver<Committed>,
}

impl CommitPipeline {
    /// A pipeline committing to `db`, and a receiver that ends once the
    /// database is closed and the pipeline's hold on `deliveries` is gone
    /// (the pipeline and any running commit dropped).
    pub fn new(db: Db, deliveries: broadcast::Sender<Delivery>) -> (Self, oneshot::Receiver<()>) {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (closed_tx, closed_rx) = oneshot::channel();
        let pipeline = CommitPipeline {
            db: Arc::new(OpenDb {
                db,
                deliveries,
                _closed: closed_tx,
            }),
            writes: DeliveryWrites::default(),
            next: 1,
            in_flight: false,
            held: VecDeque::new(),
            done_tx,
            done_rx,
        };
        (pipeline, closed_rx)
    }

    /// The database (for the rare writes made in line: roster votes and epochs).
    pub fn db(&self) -> &Db {
        &self.db.db
    }

    /// Whether a commit is running (its end is awaited with [`Self::finished`]).
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Whether steps wait for a commit.
    pub fn holds(&self) -> bool {
        !self.held.is_empty()
    }

    /// Takes the group-committed writes out of `steps` and appends to
    /// `ready` the steps that can be carried out now; the others are held
    /// until the commits they follow are durable. Call [`Self::start`]
    /// once `ready` is carried out.
    pub fn stage(&mut self, steps: impl IntoIterator<Item = Step>, ready: &mut Vec<Step>) {
        // Later steps wait for whatever the last held one waits for.
        let mut need = self.held.back().map(|(n, _)| *n);
        for step in steps {
            let step = match step {
                Step::Output(Output::Persist(p)) => match self.writes.take(p) {
                    None => {
                        // Only a write that will be committed, and that
                        // anything waits for, holds steps.
                        if self.writes.holds_outputs() {
                            need = Some(self.next);
                        }
                        continue;
                    }
                    Some(p) => Step::Output(Output::Persist(p)),
                },
                other => other,
            };
            match need {
                Some(n) => self.held.push_back((n, step)),
                None => ready.push(step),
            }
        }
    }

    /// The next finished commit (pending forever while none is running).
    pub async fn finished(&mut self) -> Option<Committed> {
        self.done_rx.recv().await
    }

    /// Records a finished commit and appends the steps it releases to
    /// `ready`; call [`Self::start`] once they are carried out. An error
    /// is final: the node must stop, and the steps that waited for the
    /// commit are never carried out.
    pub fn on_finished(&mut self, c: Committed, ready: &mut Vec<Step>) -> Result<(), DbError> {
        self.in_flight = false;
        c.result?;
        while self.held.front().is_some_and(|(n, _)| *n <= c.seq) {
            if let Some((_, step)) = self.held.pop_front() {
                ready.push(step);
            }
        }
        Ok(())
    }

    /// Starts committing the gathered writes unless a commit is running
    /// or there is nothing to write. The messages waiting for exactly this
    /// commit go with it, to be handed off as soon as it is durable (after
    /// everything before them was carried out: hence called by the actor
    /// only once the steps already released are).
    pub fn start(&mut self) {
        if self.in_flight || self.writes.is_empty() {
            return;
        }
        let mut writes = std::mem::take(&mut self.writes);
        let seq = self.next;
        // The steps waiting for this commit are the last held ones; the
        // application's part of them goes with the commit, in order, up to
        // a hand-off that must wait for room (the actor's to make).
        let first = self
            .held
            .iter()
            .rposition(|(n, _)| *n != seq)
            .map_or(0, |i| i + 1);
        let mut told = Vec::new();
        for (_, step) in self.held.range_mut(first..) {
            match step {
                Step::Message(_, Handoff::Wait) => break,
                Step::Output(Output::Deliver(_)) | Step::Answer(..) | Step::Message(..) => {
                    told.push(std::mem::replace(step, Step::Done));
                }
                _ => {}
            }
        }
        let (db, tx) = (self.db.clone(), self.done_tx.clone());
        self.next += 1;
        self.in_flight = true;
        tokio::task::spawn_blocking(move || {
            let t = std::time::Instant::now();
            let result = db.db.commit_delivery(&mut writes);
            metrics::histogram!(crate::http::metrics::COMMIT_SECONDS)
                .record(t.elapsed().as_secs_f64());
            if result.is_ok() {
                for step in told {
                    tell(step, &db.deliveries);
                }
            }
            // The actor may be gone (a crash in a test): nothing to tell.
            let _ = tx.send(Committed { seq, result });
        });
    }
}

/// Carries out the application's part of a step: a hand-off with room
/// already reserved, a delivery on the observers' stream, an answer.
/// Whatever else is given is left undone.
pub fn tell(step: Step, deliveries: &broadcast::Sender<Delivery>) {
    match step {
        Step::Message(e, handoff) => {
            if let Handoff::Reserved(permit) = handoff {
                if deliveries.receiver_count() == 0 {
                    // No observer: the subscriber's copy is the only one
                    // (saves a copy of the payload per message).
                    permit.send(e);
                    return;
                }
                permit.send(e.clone());
            }
            let _ = deliveries.send(Delivery::Message(e));
        }
        Step::Output(Output::Deliver(d)) => {
            let _ = deliveries.send(d);
        }
        Step::Answer(reply, answer) => {
            let _ = reply.send(answer);
        }
        Step::Output(_) | Step::Done => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::core::{Persist, TimerId};
    use crate::proto::time::Millis;

    fn timer(ms: u64) -> Step {
        Step::Output(Output::SetTimer {
            id: TimerId::Tick,
            at: Millis(ms),
        })
    }

    fn at(step: &Step) -> u64 {
        match step {
            Step::Output(Output::SetTimer { at, .. }) => at.0,
            _ => u64::MAX,
        }
    }

    async fn next(p: &mut CommitPipeline) -> Vec<u64> {
        let mut ready = Vec::new();
        let c = p.finished().await.unwrap();
        p.on_finished(c, &mut ready).unwrap();
        p.start();
        ready.iter().map(at).collect()
    }

    #[tokio::test]
    async fn the_commit_thread_tells_the_application_what_waited_for_it() {
        use crate::proto::delivery::MessageKey;
        use crate::proto::identity::ClusterId;
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut observed) = broadcast::channel(16);
        let (mut p, _closed) = CommitPipeline::new(Db::open(dir.path()).unwrap(), tx);
        let published = || Delivery::Published {
            key: MessageKey {
                origin: ClusterId([1; 32]),
                id: 1,
            },
            dests: vec![],
        };
        let (answer_tx, answer_rx) = oneshot::channel();
        let mut ready = Vec::new();
        p.stage(
            [
                Step::Output(Output::Persist(Persist::NextMessageId(2))),
                Step::Output(Output::Deliver(published())),
                Step::Answer(answer_tx, published()),
                timer(7),
            ],
            &mut ready,
        );
        assert!(ready.is_empty());
        p.start();
        // Told by the commit thread before the actor hears of the commit:
        // an actor stopped now would not leave them untold.
        let answer = answer_rx.await.unwrap();
        assert!(matches!(answer, Delivery::Published { key, .. } if key.id == 1));
        let seen = observed.recv().await.unwrap();
        assert!(matches!(seen, Delivery::Published { key, .. } if key.id == 1));
        // The actor gets the rest, in order.
        assert_eq!(next(&mut p).await, [u64::MAX, u64::MAX, 7]);
    }

    #[tokio::test]
    async fn nothing_waits_for_an_ack_but_the_ack_is_still_written() {
        use crate::proto::delivery::MessageKey;
        use crate::proto::identity::ClusterId;
        let dir = tempfile::tempdir().unwrap();
        let (tx, _observed) = broadcast::channel(16);
        let (mut p, _closed) = CommitPipeline::new(Db::open(dir.path()).unwrap(), tx);
        let ack = Step::Output(Output::Persist(Persist::OutboxAck {
            key: MessageKey {
                origin: ClusterId([1; 32]),
                id: 1,
            },
            dest: ClusterId([2; 32]),
        }));
        let mut ready = Vec::new();
        p.stage([ack, timer(1)], &mut ready);
        assert_eq!(ready.iter().map(at).collect::<Vec<_>>(), [1]);
        p.start();
        assert!(p.in_flight(), "the ack is committed all the same");
        // A write that outputs wait for still holds what follows it.
        ready.clear();
        p.stage(
            [
                Step::Output(Output::Persist(Persist::NextMessageId(3))),
                timer(2),
            ],
            &mut ready,
        );
        assert!(ready.is_empty());
        assert!(next(&mut p).await.is_empty());
        assert_eq!(next(&mut p).await, [2]);
    }

    #[tokio::test]
    async fn steps_wait_for_the_writes_before_them_and_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut observed) = broadcast::channel(16);
        let (mut p, closed) = CommitPipeline::new(Db::open(dir.path()).unwrap(), tx);
        let mut ready = Vec::new();
        // Nothing to write: carried out at once.
        p.stage([timer(1)], &mut ready);
        assert_eq!(ready.iter().map(at).collect::<Vec<_>>(), [1]);
        assert!(!p.in_flight());
        // A write: what follows it waits for its commit; what precedes it does not.
        ready.clear();
        p.stage(
            [
                timer(2),
                Step::Output(Output::Persist(Persist::NextMessageId(5))),
                timer(3),
            ],
            &mut ready,
        );
        assert_eq!(ready.iter().map(at).collect::<Vec<_>>(), [2]);
        p.start();
        assert!(p.in_flight());
        // Staged while the first commit runs: the write goes into the
        // second commit, and even a step with no write before it waits
        // behind the held ones.
        ready.clear();
        p.stage(
            [
                timer(4),
                Step::Output(Output::Persist(Persist::NextMessageId(9))),
                timer(5),
            ],
            &mut ready,
        );
        assert!(ready.is_empty());
        p.start();
        assert_eq!(next(&mut p).await, [3, 4]);
        assert!(p.in_flight(), "the second commit started");
        assert_eq!(next(&mut p).await, [5]);
        assert!(!p.in_flight());
        let state = p.db().delivery_state().unwrap();
        assert_eq!(state.next_id, 9);
        assert!(observed.try_recv().is_err(), "nothing to tell");
        drop(p);
        closed.await.unwrap_err();
        Db::open(dir.path()).expect("closed, so it opens again");
    }
}
