//! The member table: the latest verified record and heartbeat of every
//! known cluster (including this node's own), with its liveness. Dead
//! members stay as tombstones until the TTL: they are never gossiped, and
//! only a later heartbeat (proof the owner outlived our verdict) or a new
//! incarnation brings them back, so a stale copy relayed by a laggard cannot
//! resurrect them. A newer revision of a record updates its content but says
//! nothing about liveness.
//!
//! Iteration is in id order (a `BTreeMap`), so every decision built on it is
//! reproducible from the RNG seed.

use std::collections::BTreeMap;

use super::config::MembershipConfig;
use super::event::Event;
use super::failure::{Liveness, MemberState, Transition};
use super::heartbeat::SignedHeartbeat;
use super::record::{SignedRecord, Version};
use crate::proto::identity::ClusterId;
use crate::proto::time::Millis;
use crate::proto::wire::DigestEntry;

/// One known cluster.
#[derive(Debug, Clone)]
pub struct Entry {
    record: SignedRecord,
    wire_len: usize,
    beat: Option<SignedHeartbeat>,
    liveness: Liveness,
    first_seen: Millis,
}

impl Entry {
    /// The latest verified record.
    pub fn record(&self) -> &SignedRecord {
        &self.record
    }

    /// Its version.
    pub fn version(&self) -> Version {
        self.record.version()
    }

    /// The latest verified heartbeat of the record's incarnation, if any.
    pub fn beat(&self) -> Option<&SignedHeartbeat> {
        self.beat.as_ref()
    }

    /// The latest heartbeat counter (0 before the first heartbeat).
    pub fn beats(&self) -> u64 {
        self.beat.map_or(0, |b| b.counter)
    }

    /// This entry as a digest line.
    pub fn digest_entry(&self) -> DigestEntry {
        DigestEntry {
            id: self.record.id(),
            version: self.version(),
            heartbeat: self.beats(),
        }
    }

    /// True if our heartbeat is newer than what `held` says the other side holds.
    pub fn beat_newer_than(&self, held: &DigestEntry) -> bool {
        self.beat.is_some_and(|b| {
            b.incarnation > held.version.incarnation
                || (b.incarnation == held.version.incarnation && b.counter > held.heartbeat)
        })
    }

    /// The member's state.
    pub fn state(&self) -> MemberState {
        self.liveness.state()
    }

    /// The failure-detection state.
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// Upper bound of the record's size in a frame.
    pub fn wire_len(&self) -> usize {
        self.wire_len
    }

    /// When this cluster was first learned (or came back).
    pub fn first_seen(&self) -> Millis {
        self.first_seen
    }
}

/// What applying a newer record changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The record is news about the member's existence (a new member, a new
    /// incarnation or a departure): worth an eager push. A content change
    /// (links, addresses, queues) is not:
    /// anti-entropy spreads those within a few rounds, and relaying every
    /// link change would flood the mesh.
    pub fresh: bool,
    /// The event to report, if any.
    pub event: Option<Event>,
}

/// Every known cluster by id, and this node's own entry.
#[derive(Debug, Clone)]
pub struct MemberTable {
    local: ClusterId,
    window: usize,
    own: Entry,
    entries: BTreeMap<ClusterId, Entry>,
}

impl MemberTable {
    /// A table holding only this node's own record.
    pub fn new(own: SignedRecord, now: Millis, window: usize) -> Self {
        let local = own.id();
        let own = Entry {
            wire_len: own.record.wire_len_bound(),
            record: own,
            beat: None,
            liveness: Liveness::alive(now, window),
            first_seen: now,
        };
        MemberTable {
            local,
            window,
            own,
            entries: BTreeMap::new(),
        }
    }

    /// This node's id.
    pub fn local(&self) -> ClusterId {
        self.local
    }

    /// This node's own record.
    pub fn own(&self) -> &SignedRecord {
        &self.own.record
    }

    /// Replaces this node's own record (a new incarnation forgets the
    /// heartbeat of the old one).
    pub fn set_own(&mut self, own: SignedRecord) {
        if own.record.incarnation != self.own.record.record.incarnation {
            self.own.beat = None;
        }
        self.own.wire_len = own.record.wire_len_bound();
        self.own.record = own;
    }

    /// Replaces this node's own heartbeat.
    pub fn set_own_beat(&mut self, beat: SignedHeartbeat) {
        self.own.beat = Some(beat);
    }

    /// The entry of `id` (this node's own included).
    pub fn get(&self, id: &ClusterId) -> Option<&Entry> {
        if *id == self.local {
            Some(&self.own)
        } else {
            self.entries.get(id)
        }
    }

    /// Number of entries, tombstones and this node included.
    pub fn len(&self) -> usize {
        self.entries.len() + 1
    }

    /// Never true: the table always holds this node.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every entry, this node's own included, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&ClusterId, &Entry)> {
        use std::ops::Bound::{Excluded, Unbounded};
        self.entries
            .range(..self.local)
            .chain(std::iter::once((&self.local, &self.own)))
            .chain(self.entries.range((Excluded(self.local), Unbounded)))
    }

    /// True if `version` of `id` is newer than anything we hold for it
    /// (tombstones included), i.e. worth verifying.
    pub fn is_newer(&self, id: &ClusterId, version: Version) -> bool {
        self.get(id).is_none_or(|e| version > e.version())
    }

    /// The entry of `id` if it may be gossiped (anything but a tombstone).
    pub fn gossipable(&self, id: &ClusterId) -> Option<&Entry> {
        self.get(id).filter(|e| e.state() != MemberState::Dead)
    }

    /// The digest of every gossipable record.
    pub fn digest(&self) -> Vec<DigestEntry> {
        self.iter()
            .filter(|(_, e)| e.state() != MemberState::Dead)
            .map(|(_, e)| e.digest_entry())
            .collect()
    }

    /// True if `beat` is newer than the heartbeat we hold for the record of
    /// the same incarnation (tombstones included), i.e. worth verifying. A
    /// beat of an incarnation whose record we do not hold is useless: the
    /// record comes with anti-entropy, and its beats after it.
    pub fn beat_is_newer(&self, beat: &SignedHeartbeat) -> bool {
        self.get(&beat.id).is_some_and(|e| {
            e.record.record.incarnation == beat.incarnation
                && beat.counter > e.beats()
                && e.state() != MemberState::Left
        })
    }

    /// Stores a verified heartbeat that [`Self::beat_is_newer`] accepted:
    /// feeds the failure detector, and revives a tombstone.
    pub fn apply_beat(&mut self, beat: SignedHeartbeat, now: Millis) -> Option<Event> {
        let id = beat.id;
        if id == self.local || !self.beat_is_newer(&beat) {
            return None;
        }
        let e = self.entries.get_mut(&id)?;
        e.beat = Some(beat);
        if e.state() == MemberState::Dead {
            e.liveness = Liveness::alive(now, self.window);
            e.first_seen = now;
            return Some(Event::MemberUp {
                id,
                incarnation: beat.incarnation,
            });
        }
        match e.liveness.heartbeat(now) {
            Some(Transition::Recovered) => Some(Event::MemberRecovered { id }),
            _ => None,
        }
    }

    /// Stores a verified record that [`Self::is_newer`] accepted.
    pub fn apply(&mut self, rec: SignedRecord, now: Millis) -> Applied {
        let id = rec.id();
        let none = Applied {
            fresh: false,
            event: None,
        };
        if id == self.local {
            return none;
        }
        let incarnation = rec.record.incarnation;
        let left = rec.record.left;
        let wire_len = rec.record.wire_len_bound();
        let Some(e) = self.entries.get_mut(&id) else {
            let (liveness, event) = if left {
                // A departure of a cluster we never knew: keep it so that
                // stale copies of its older records are recognised as such.
                (Liveness::left(now, self.window), None)
            } else {
                (
                    Liveness::alive(now, self.window),
                    Some(Event::MemberUp { id, incarnation }),
                )
            };
            self.entries.insert(
                id,
                Entry {
                    record: rec,
                    wire_len,
                    beat: None,
                    liveness,
                    first_seen: now,
                },
            );
            return Applied { fresh: true, event };
        };
        if rec.version() <= e.version() {
            return none;
        }
        let prev = e.state();
        let reborn = incarnation != e.record.record.incarnation;
        let fresh = left || reborn;
        let event = if left {
            e.liveness = Liveness::left(now, self.window);
            (prev != MemberState::Left).then_some(Event::MemberLeft { id })
        } else if reborn {
            e.beat = None;
            e.liveness = Liveness::alive(now, self.window);
            e.first_seen = now;
            Some(Event::MemberUp { id, incarnation })
        } else {
            // A new revision: content only.
            None
        };
        e.record = rec;
        e.wire_len = wire_len;
        Applied { fresh, event }
    }

    /// A connection to `id` finished its handshake.
    pub fn link_restored(&mut self, id: &ClusterId) {
        if let Some(e) = self.entries.get_mut(id) {
            e.liveness.link_restored();
        }
    }

    /// Our direct connection to `id` dropped unexpectedly.
    pub fn link_lost(&mut self, id: &ClusterId) {
        if let Some(e) = self.entries.get_mut(id) {
            e.liveness.link_lost();
        }
    }

    /// Runs failure detection at `now`; pushes events, and the ids declared
    /// dead to `died`.
    pub fn check(
        &mut self,
        now: Millis,
        cfg: &MembershipConfig,
        events: &mut Vec<Event>,
        died: &mut Vec<ClusterId>,
    ) {
        for (id, e) in self.entries.iter_mut() {
            match e.liveness.check(now, cfg) {
                Some(Transition::Suspected) => events.push(Event::MemberSuspect { id: *id }),
                Some(Transition::Recovered) => events.push(Event::MemberRecovered { id: *id }),
                Some(Transition::Died) => {
                    events.push(Event::MemberDead {
                        id: *id,
                        incarnation: e.record.record.incarnation,
                    });
                    died.push(*id);
                }
                None => {}
            }
        }
    }

    /// Forgets dead and departed members whose state is older than `ttl`;
    /// returns the dead ones with their first advertised address.
    pub fn expire(
        &mut self,
        now: Millis,
        ttl: std::time::Duration,
        events: &mut Vec<Event>,
    ) -> Vec<(ClusterId, Option<std::net::SocketAddr>)> {
        let mut dead = Vec::new();
        self.entries.retain(|id, e| {
            let gone = matches!(e.state(), MemberState::Dead | MemberState::Left);
            let keep = !gone || now.since(e.liveness.since()) < ttl;
            if !keep {
                events.push(Event::MemberRemoved { id: *id });
                if e.state() == MemberState::Dead {
                    dead.push((*id, e.record.record.addrs.first().copied()));
                }
            }
            keep
        });
        dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::bytes32::NetworkId;
    use crate::proto::identity::Identity;
    use crate::proto::membership::record::NodeRecord;
    use std::time::Duration;

    fn net() -> NetworkId {
        NetworkId([1; 32])
    }

    fn rec(who: &Identity, incarnation: u64, revision: u64, left: bool) -> SignedRecord {
        let record = NodeRecord {
            id: who.id(),
            incarnation,
            revision,
            roster_epoch: 0,
            left,
            addrs: vec![],
            links: vec![],
            queues: vec![],
            subscriptions: Vec::new(),
        };
        SignedRecord::sign(record, who, &net()).unwrap()
    }

    fn beat(who: &Identity, incarnation: u64, counter: u64) -> SignedHeartbeat {
        SignedHeartbeat::sign(who, &net(), incarnation, counter)
    }

    #[test]
    fn tombstones_block_stale_beats_but_not_newer_ones() {
        let cfg = MembershipConfig::default();
        let me = Identity::from_seed([1; 32]);
        let other = Identity::from_seed([2; 32]);
        let mut t = MemberTable::new(rec(&me, 1, 1, false), Millis(0), cfg.phi_window);
        let a = t.apply(rec(&other, 1, 5, false), Millis(0));
        assert!(a.fresh);
        assert!(matches!(a.event, Some(Event::MemberUp { .. })));
        // A new revision: content only, not fresh, no event.
        assert!(t.is_newer(&other.id(), rec(&other, 1, 6, false).version()));
        let a = t.apply(rec(&other, 1, 6, false), Millis(500));
        assert_eq!(
            a,
            Applied {
                fresh: false,
                event: None
            }
        );
        // Beats of another incarnation or not newer are useless.
        assert!(!t.beat_is_newer(&beat(&other, 2, 1)));
        assert!(t.beat_is_newer(&beat(&other, 1, 1)));
        assert_eq!(t.apply_beat(beat(&other, 1, 1), Millis(1000)), None);
        assert!(!t.beat_is_newer(&beat(&other, 1, 1)));
        let d = t.get(&other.id()).unwrap().digest_entry();
        assert_eq!((d.version.revision, d.heartbeat), (6, 1));
        // Silence: suspect, then dead.
        let (mut ev, mut died) = (vec![], vec![]);
        for s in 2..=20 {
            t.check(Millis(s * 1000), &cfg, &mut ev, &mut died);
        }
        assert_eq!(died, vec![other.id()]);
        assert_eq!(t.get(&other.id()).unwrap().state(), MemberState::Dead);
        assert!(t.digest().iter().all(|d| d.id != other.id()));
        // A stale beat or a newer revision does not revive; a later beat does.
        assert!(!t.beat_is_newer(&beat(&other, 1, 1)));
        let a = t.apply(rec(&other, 1, 7, false), Millis(21_000));
        assert_eq!(a.event, None);
        assert_eq!(t.get(&other.id()).unwrap().state(), MemberState::Dead);
        let ev = t.apply_beat(beat(&other, 1, 2), Millis(21_000));
        assert!(matches!(ev, Some(Event::MemberUp { .. })));
        assert_eq!(t.get(&other.id()).unwrap().state(), MemberState::Alive);
    }

    #[test]
    fn departures_restarts_and_expiry() {
        let cfg = MembershipConfig::default();
        let me = Identity::from_seed([1; 32]);
        let other = Identity::from_seed([2; 32]);
        let mut t = MemberTable::new(rec(&me, 1, 1, false), Millis(0), cfg.phi_window);
        t.apply(rec(&other, 1, 5, false), Millis(0));
        t.apply_beat(beat(&other, 1, 9), Millis(5));
        let a = t.apply(rec(&other, 2, 0, false), Millis(10));
        assert_eq!(
            a.event,
            Some(Event::MemberUp {
                id: other.id(),
                incarnation: 2
            })
        );
        assert_eq!(
            t.get(&other.id()).unwrap().beats(),
            0,
            "a new life starts over"
        );
        let a = t.apply(rec(&other, 2, 1, true), Millis(20));
        assert_eq!(a.event, Some(Event::MemberLeft { id: other.id() }));
        assert!(a.fresh);
        assert!(
            !t.beat_is_newer(&beat(&other, 2, 1)),
            "no beats after leaving"
        );
        assert_eq!(t.digest().len(), 2, "departures are still gossiped");
        let mut ev = vec![];
        t.expire(Millis(20) + Duration::from_secs(59), cfg.dead_ttl, &mut ev);
        assert!(ev.is_empty());
        t.expire(Millis(20) + cfg.dead_ttl, cfg.dead_ttl, &mut ev);
        assert_eq!(ev, vec![Event::MemberRemoved { id: other.id() }]);
        assert_eq!(t.len(), 1);
        // Our own id is never overwritten through gossip.
        let a = t.apply(rec(&me, 9, 9, false), Millis(30));
        assert!(!a.fresh);
        assert_eq!(t.apply_beat(beat(&me, 1, 5), Millis(30)), None);
        assert_eq!(t.get(&me.id()).unwrap().version().incarnation, 1);
        t.set_own_beat(beat(&me, 1, 3));
        assert_eq!(t.get(&me.id()).unwrap().beats(), 3);
        t.set_own(rec(&me, 2, 0, false));
        assert_eq!(t.get(&me.id()).unwrap().beats(), 0);
    }
}
