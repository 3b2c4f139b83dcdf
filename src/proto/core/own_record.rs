//! This node's own record: re-signing, pushing, and echoes from earlier lives.

use crate::proto::membership::antientropy::choose_peers;
use crate::proto::membership::counters::bump;
use crate::proto::membership::event::Event;
use crate::proto::membership::heartbeat::SignedHeartbeat;
use crate::proto::membership::record::{RecordError, SignedRecord};
use crate::proto::time::Millis;
use crate::proto::wire::Frame;

use super::*;

impl Core {
    pub(super) fn own(&self) -> &SignedRecord {
        self.table.own()
    }

    /// Stores a freshly signed own record (signing only fails on a bound
    /// violation, which our own record never has; keep the old one then).
    pub(super) fn set_own(&mut self, signed: Result<SignedRecord, RecordError>) {
        match signed {
            Ok(signed) => self.table.set_own(signed),
            Err(e) => tracing::error!(error = %e, "cannot sign our own record"),
        }
    }

    pub(super) fn push_own(&mut self, out: &mut Vec<Output>) {
        let live = self.peers.live();
        let targets = choose_peers(&live, self.config.fanout, None, &mut self.rng);
        if targets.is_empty() {
            return;
        }
        let own = self.own().clone();
        for to in targets {
            self.send(
                to,
                Frame::Records {
                    records: vec![own.clone()],
                },
                out,
            );
        }
    }

    /// A record of ourselves arrived through gossip. If it is at least as new
    /// as ours and not ours, it is from an earlier life whose incarnation we
    /// did not persist: jump past it so our record supersedes it everywhere.
    pub(super) fn own_echo(&mut self, now: Millis, rec: SignedRecord, out: &mut Vec<Output>) {
        let ours = self.own.version();
        if self.own.has_left()
            || rec.version() < ours
            || (rec.version() == ours && rec == *self.own())
        {
            bump(&mut self.counters.records_stale);
            return;
        }
        let Ok(key) = self.own.id().verifying_key() else {
            return;
        };
        if rec
            .verify(&self.network_id, &key, Some(&self.sigcache))
            .is_err()
        {
            bump(&mut self.counters.records_bad_signature);
            return;
        }
        self.supersede(now, rec.version().incarnation, out);
    }

    /// A heartbeat of ourselves arrived through gossip: one of a later
    /// incarnation, or a later beat of ours, is from an earlier life.
    pub(super) fn own_beat_echo(
        &mut self,
        now: Millis,
        beat: SignedHeartbeat,
        out: &mut Vec<Output>,
    ) {
        let ours = self.own.incarnation();
        let later = beat.incarnation > ours
            || (beat.incarnation == ours && beat.counter > self.own.beats());
        if self.own.has_left() || !later {
            bump(&mut self.counters.heartbeats_stale);
            return;
        }
        let Ok(key) = self.own.id().verifying_key() else {
            return;
        };
        if beat
            .verify(&self.network_id, &key, Some(&self.sigcache))
            .is_err()
        {
            bump(&mut self.counters.heartbeats_bad_signature);
            return;
        }
        self.supersede(now, beat.incarnation, out);
    }

    /// Jumps past incarnation `seen` of an earlier life, persists and
    /// announces the new one.
    fn supersede(&mut self, now: Millis, seen: u64, out: &mut Vec<Output>) {
        let ours = self.own.incarnation();
        let Some(signed) = self.own.supersede(seen) else {
            return;
        };
        tracing::warn!(
            seen,
            ours,
            "saw a record or heartbeat of ourselves from an earlier life; raising the incarnation"
        );
        bump(&mut self.counters.incarnation_bumps);
        self.set_own(signed);
        let incarnation = self.own.incarnation();
        out.push(Output::Persist(Persist::Incarnation(incarnation)));
        out.push(Output::Event(Event::IncarnationChanged { incarnation }));
        // Beat at once, so the new life's liveness spreads with its record.
        self.next_heartbeat = now;
        self.push_own(out);
    }
}
