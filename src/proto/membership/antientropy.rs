//! Anti-entropy in the style of scuttlebutt (as in chitchat), over signed
//! records and signed heartbeats.
//!
//! Every gossip round a node sends its digest (`id → (record version,
//! heartbeat)` of every member it may gossip) to `sync_fanout` random peers:
//!
//! 1. `A → B: Syn { digest }`
//! 2. `B → A: SynAck { records and heartbeats A lacks or holds older, what B holds of the members A holds newer }`
//! 3. `A → B: Ack { the records and heartbeats newer than what B holds }`
//!
//! A record moves only when it changed (a new revision or incarnation); a
//! steady mesh exchanges digests and ~110-byte heartbeats. Each owner also
//! pushes every new heartbeat to all its live links (`Beat`, never
//! relayed), so its neighbours hear it first-hand and anti-entropy starts
//! from a dozen holders instead of one. Records are also
//! pushed eagerly (`Records`) when they are fresh: the owner pushes each new
//! revision, and whoever learns of a new member, a new incarnation or a
//! departure relays it once (other changes wait for anti-entropy, so link
//! churn does not flood the mesh). Because every round reconciles whole
//! digests, two halves of a partition converge by themselves as soon as any
//! link between them is back.
//!
//! Frames stay under a byte budget: when the records and heartbeats do not
//! fit, a random rotation of the candidates is sent, so none starves; the
//! rest follows in later rounds.

use std::cmp::Ordering;

use rand::Rng;
use rand::seq::SliceRandom;

use super::failure::MemberState;
use super::heartbeat::SignedHeartbeat;
use super::record::{SignedRecord, Version};
use super::table::{Entry, MemberTable};
use crate::proto::identity::ClusterId;
use crate::proto::wire::{DigestEntry, MAX_HEARTBEATS_PER_FRAME, MAX_RECORDS_PER_FRAME, MAX_WANT};

/// Up to `k` distinct peers drawn at random from `candidates`, never `exclude`.
pub fn choose_peers<R: Rng>(
    candidates: &[ClusterId],
    k: usize,
    exclude: Option<&ClusterId>,
    rng: &mut R,
) -> Vec<ClusterId> {
    let pool: Vec<ClusterId> = candidates
        .iter()
        .filter(|c| Some(*c) != exclude)
        .copied()
        .collect();
    pool.choose_multiple(rng, k).copied().collect()
}

/// Records and heartbeats to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Records the other side lacks or holds older.
    pub records: Vec<SignedRecord>,
    /// Heartbeats newer than the other side's.
    pub heartbeats: Vec<SignedHeartbeat>,
}

impl Delta {
    /// True if there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.heartbeats.is_empty()
    }
}

/// The answer to a digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SynReply {
    /// What the digest's sender lacks or holds older.
    pub delta: Delta,
    /// What we hold of the clusters the digest's sender holds newer.
    pub want: Vec<DigestEntry>,
}

impl SynReply {
    /// True if there is nothing to say.
    pub fn is_empty(&self) -> bool {
        self.delta.is_empty() && self.want.is_empty()
    }
}

/// What to send of one entry: its record, its heartbeat, or both.
struct Pick<'a> {
    entry: &'a Entry,
    record: bool,
    beat: bool,
}

/// What to send of `e` to a side that holds `held` (`None`: nothing).
fn pick<'a>(e: &'a Entry, held: Option<&DigestEntry>) -> Option<Pick<'a>> {
    if e.state() == MemberState::Dead {
        return None;
    }
    let p = match held {
        None => Pick {
            entry: e,
            record: true,
            beat: e.beat().is_some(),
        },
        Some(d) => Pick {
            entry: e,
            record: e.version() > d.version,
            beat: e.beat_newer_than(d),
        },
    };
    (p.record || p.beat).then_some(p)
}

/// True if `d` is newer than `e` (its record or its heartbeat).
fn theirs_newer(e: &Entry, d: &DigestEntry) -> bool {
    let ours = e.version();
    d.version > ours || (d.version.incarnation == ours.incarnation && d.heartbeat > e.beats())
}

/// Compares `digest` with the table. `admissible` filters the ids we are
/// willing to ask for (roster members, or anyone in open mode). Both sides
/// are walked in id order once (a merge join), so a digest costs a sort.
pub fn answer_syn<R: Rng>(
    table: &MemberTable,
    digest: &[DigestEntry],
    admissible: impl Fn(&ClusterId) -> bool,
    budget: usize,
    rng: &mut R,
) -> SynReply {
    // Digests are built in id order; only a foreign or garbage one needs sorting.
    let owned;
    let theirs: &[DigestEntry] = if digest.windows(2).all(|w| w[0].id < w[1].id) {
        digest
    } else {
        let mut v = digest.to_vec();
        v.sort_by_key(|d| d.id);
        v.dedup_by_key(|d| d.id);
        owned = v;
        &owned
    };

    let local = table.local();
    let mut send: Vec<Pick<'_>> = Vec::new();
    let mut want: Vec<DigestEntry> = Vec::new();
    let ask = |held: DigestEntry, want: &mut Vec<DigestEntry>| {
        if held.id != local && want.len() < MAX_WANT && admissible(&held.id) {
            want.push(held);
        }
    };
    let unknown = |id: ClusterId| DigestEntry {
        id,
        version: Version::default(),
        heartbeat: 0,
    };
    let mut mine = table.iter().peekable();
    let mut other = theirs.iter().peekable();
    loop {
        match (mine.peek(), other.peek()) {
            (None, None) => break,
            (Some((_, e)), None) => {
                send.extend(pick(e, None));
                mine.next();
            }
            (None, Some(d)) => {
                ask(unknown(d.id), &mut want);
                other.next();
            }
            (Some((id, e)), Some(d)) => match (*id).cmp(&d.id) {
                Ordering::Less => {
                    send.extend(pick(e, None));
                    mine.next();
                }
                Ordering::Greater => {
                    ask(unknown(d.id), &mut want);
                    other.next();
                }
                Ordering::Equal => {
                    // Both ways at once: their record may be newer while
                    // our heartbeat is.
                    if theirs_newer(e, d) {
                        ask(e.digest_entry(), &mut want);
                    }
                    send.extend(pick(e, Some(d)));
                    mine.next();
                    other.next();
                }
            },
        }
    }
    SynReply {
        delta: collect(&send, budget, rng),
        want,
    }
}

/// The records and heartbeats newer than what a `SynAck`'s `want` list says
/// its sender holds, among those we may gossip.
pub fn answer_want<R: Rng>(
    table: &MemberTable,
    want: &[DigestEntry],
    budget: usize,
    rng: &mut R,
) -> Delta {
    let mut held: Vec<DigestEntry> = want.to_vec();
    held.sort_by_key(|d| d.id);
    held.dedup_by_key(|d| d.id);
    let picks: Vec<Pick<'_>> = held
        .iter()
        .filter_map(|d| pick(table.gossipable(&d.id)?, Some(d)))
        .collect();
    collect(&picks, budget, rng)
}

/// Clones the picked records and heartbeats within `budget` bytes, starting
/// at a random rotation when they do not all fit.
fn collect<R: Rng>(picks: &[Pick<'_>], budget: usize, rng: &mut R) -> Delta {
    let cost = |p: &Pick<'_>| {
        let r = if p.record { p.entry.wire_len() } else { 0 };
        let b = if p.beat {
            SignedHeartbeat::WIRE_LEN_BOUND
        } else {
            0
        };
        r.saturating_add(b)
    };
    let total: usize = picks.iter().map(cost).fold(0, usize::saturating_add);
    let max_items = MAX_RECORDS_PER_FRAME.min(MAX_HEARTBEATS_PER_FRAME);
    let fits = total <= budget && picks.len() <= max_items;
    let start = if fits || picks.is_empty() {
        0
    } else {
        rng.gen_range(0..picks.len())
    };
    let mut out = Delta::default();
    let mut used = 0usize;
    for i in 0..picks.len() {
        let p = &picks[(start + i) % picks.len()];
        let next = used.saturating_add(cost(p));
        if next > budget || out.records.len().max(out.heartbeats.len()) >= max_items {
            break;
        }
        used = next;
        if p.record {
            out.records.push(p.entry.record().clone());
        }
        if let Some(b) = p.beat.then(|| p.entry.beat()).flatten() {
            out.heartbeats.push(*b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::bytes32::NetworkId;
    use crate::proto::identity::Identity;
    use crate::proto::membership::record::NodeRecord;
    use crate::proto::time::Millis;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn net() -> NetworkId {
        NetworkId([1; 32])
    }

    fn rec(who: &Identity, revision: u64) -> SignedRecord {
        let record = NodeRecord {
            id: who.id(),
            incarnation: 1,
            revision,
            roster_epoch: 0,
            left: false,
            addrs: vec![],
            links: vec![],
            queues: vec![],
            subscriptions: Vec::new(),
        };
        SignedRecord::sign(record, who, &net()).unwrap()
    }

    fn d(who: &Identity, revision: u64, heartbeat: u64) -> DigestEntry {
        DigestEntry {
            id: who.id(),
            version: Version {
                incarnation: 1,
                revision,
            },
            heartbeat,
        }
    }

    fn ids(records: &[SignedRecord]) -> Vec<ClusterId> {
        records.iter().map(|r| r.id()).collect()
    }

    #[test]
    fn syn_reply_sends_what_is_missing_and_asks_for_what_is_newer() {
        let ids4: Vec<Identity> = (1..=5).map(|i| Identity::from_seed([i; 32])).collect();
        let [a, b, c, x, y] = &ids4[..] else {
            unreachable!()
        };
        let mut t = MemberTable::new(rec(a, 5), Millis(0), 10);
        t.set_own_beat(SignedHeartbeat::sign(a, &net(), 1, 3));
        t.apply(rec(b, 5), Millis(0));
        t.apply_beat(SignedHeartbeat::sign(b, &net(), 1, 7), Millis(0));
        t.apply(rec(c, 5), Millis(0));
        t.apply(rec(y, 5), Millis(0));
        t.apply_beat(SignedHeartbeat::sign(y, &net(), 1, 9), Millis(0));
        let mut rng = StdRng::seed_from_u64(1);
        let mut digest = vec![
            // Same record, older beat: only the beat goes.
            d(b, 5, 6),
            // Newer record: asked for.
            d(c, 9, 0),
            // Unknown to us: asked for, twice in the digest.
            d(x, 1, 1),
            d(x, 1, 1),
            // Newer record but older beat: both ways.
            d(y, 6, 2),
        ];
        digest.sort_by_key(|e| e.id);
        let reply = answer_syn(&t, &digest, |_| true, 1 << 20, &mut rng);
        assert_eq!(
            ids(&reply.delta.records),
            vec![a.id()],
            "only what is missing"
        );
        let mut beats: Vec<(ClusterId, u64)> = reply
            .delta
            .heartbeats
            .iter()
            .map(|h| (h.id, h.counter))
            .collect();
        beats.sort();
        let mut expect = vec![(a.id(), 3), (b.id(), 7), (y.id(), 9)];
        expect.sort();
        assert_eq!(beats, expect);
        let mut want = reply.want.clone();
        want.sort_by_key(|e| e.id);
        let mut expect = vec![
            d(c, 5, 0),
            DigestEntry {
                id: x.id(),
                version: Version::default(),
                heartbeat: 0,
            },
            d(y, 5, 9),
        ];
        expect.sort_by_key(|e| e.id);
        assert_eq!(want, expect, "what we hold, so only newer comes back");
        let not_admitted = answer_syn(&t, &digest, |id| *id != x.id(), 1 << 20, &mut rng);
        assert_eq!(not_admitted.want.len(), 2);
        // The want answer holds only what is newer than what the asker holds.
        let delta = answer_want(
            &t,
            &[d(b, 5, 7), d(x, 0, 0), d(y, 4, 9), d(b, 5, 7)],
            1 << 20,
            &mut rng,
        );
        assert_eq!(ids(&delta.records), vec![y.id()]);
        assert!(delta.heartbeats.is_empty());
        let delta = answer_want(&t, &[d(b, 5, 2)], 1 << 20, &mut rng);
        assert!(delta.records.is_empty());
        assert_eq!(delta.heartbeats.len(), 1);
    }

    #[test]
    fn budget_truncates_with_rotation() {
        let ids: Vec<Identity> = (1..=20).map(|i| Identity::from_seed([i; 32])).collect();
        let mut t = MemberTable::new(rec(&ids[0], 1), Millis(0), 10);
        for i in &ids[1..] {
            t.apply(rec(i, 1), Millis(0));
        }
        let one = t.get(&ids[0].id()).unwrap().wire_len();
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let r = answer_syn(&t, &[], |_| true, one * 3, &mut rng);
            assert_eq!(r.delta.records.len(), 3);
            seen.extend(r.delta.records.iter().map(|r| r.id()));
        }
        assert!(seen.len() > 10, "rotation reaches most records");
        let picks = choose_peers(&[ids[0].id(), ids[1].id()], 3, Some(&ids[0].id()), &mut rng);
        assert_eq!(picks, vec![ids[1].id()]);
    }
}
