//! Anti-entropy in the style of scuttlebutt (as in chitchat), over whole
//! signed records.
//!
//! Every gossip round a node sends its digest (`id → version` of every
//! record it may gossip) to `fanout` random peers:
//!
//! 1. `A → B: Syn { digest }`
//! 2. `B → A: SynAck { records A lacks or holds older, ids whose record A holds newer }`
//! 3. `A → B: Ack { the records B asked for }`
//!
//! Records are also pushed eagerly (`Records`) when they are fresh: the
//! owner pushes each new heartbeat, and whoever learns of a new member, a
//! new incarnation, a revival or a departure relays it once (other changes
//! wait for anti-entropy, so link churn does not flood the mesh). Because every round
//! reconciles whole digests, two halves of a partition converge by themselves
//! as soon as any link between them is back.
//!
//! Frames stay under a byte budget: when the records do not fit, a random
//! rotation of the candidates is sent, so no record starves; the rest
//! follows in later rounds.

use std::cmp::Ordering;

use rand::Rng;
use rand::seq::SliceRandom;

use super::failure::MemberState;
use super::record::SignedRecord;
use super::table::{Entry, MemberTable};
use crate::proto::identity::ClusterId;
use crate::proto::wire::{DigestEntry, MAX_RECORDS_PER_FRAME, MAX_WANT};

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

/// The answer to a digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SynReply {
    /// Records the digest's sender lacks or holds older.
    pub records: Vec<SignedRecord>,
    /// Clusters whose record the digest's sender holds newer than we do.
    pub want: Vec<ClusterId>,
}

impl SynReply {
    /// True if there is nothing to say.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.want.is_empty()
    }
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
    let mut send: Vec<&Entry> = Vec::new();
    let mut want: Vec<ClusterId> = Vec::new();
    let ask = |id: &ClusterId, want: &mut Vec<ClusterId>| {
        if *id != local && want.len() < MAX_WANT && admissible(id) {
            want.push(*id);
        }
    };
    let mut mine = table.iter().peekable();
    let mut other = theirs.iter().peekable();
    loop {
        match (mine.peek(), other.peek()) {
            (None, None) => break,
            (Some((_, e)), None) => {
                if e.state() != MemberState::Dead {
                    send.push(e);
                }
                mine.next();
            }
            (None, Some(d)) => {
                ask(&d.id, &mut want);
                other.next();
            }
            (Some((id, e)), Some(d)) => match (*id).cmp(&d.id) {
                Ordering::Less => {
                    if e.state() != MemberState::Dead {
                        send.push(e);
                    }
                    mine.next();
                }
                Ordering::Greater => {
                    ask(&d.id, &mut want);
                    other.next();
                }
                Ordering::Equal => {
                    let (ours, held) = (e.version(), d.version);
                    if ours > held && e.state() != MemberState::Dead {
                        send.push(e);
                    } else if held > ours {
                        ask(&d.id, &mut want);
                    }
                    mine.next();
                    other.next();
                }
            },
        }
    }
    SynReply {
        records: collect(&send, budget, rng),
        want,
    }
}

/// The records asked for in a `SynAck`'s `want` list that we may gossip.
pub fn answer_want<R: Rng>(
    table: &MemberTable,
    want: &[ClusterId],
    budget: usize,
    rng: &mut R,
) -> Vec<SignedRecord> {
    let mut ids: Vec<ClusterId> = want.to_vec();
    ids.sort();
    ids.dedup();
    let entries: Vec<&Entry> = ids.iter().filter_map(|id| table.gossipable(id)).collect();
    collect(&entries, budget, rng)
}

/// Clones the records of `entries` within `budget` bytes, starting at a
/// random rotation when they do not all fit.
fn collect<R: Rng>(entries: &[&Entry], budget: usize, rng: &mut R) -> Vec<SignedRecord> {
    let total: usize = entries
        .iter()
        .map(|e| e.wire_len())
        .fold(0, usize::saturating_add);
    let fits = total <= budget && entries.len() <= MAX_RECORDS_PER_FRAME;
    let start = if fits || entries.is_empty() {
        0
    } else {
        rng.gen_range(0..entries.len())
    };
    let mut out = Vec::new();
    let mut used = 0usize;
    for i in 0..entries.len() {
        let e = entries[(start + i) % entries.len()];
        let next = used.saturating_add(e.wire_len());
        if next > budget || out.len() >= MAX_RECORDS_PER_FRAME {
            break;
        }
        used = next;
        out.push(e.record().clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::bytes32::NetworkId;
    use crate::proto::identity::Identity;
    use crate::proto::membership::record::{NodeRecord, Version};
    use crate::proto::time::Millis;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn rec(who: &Identity, heartbeat: u64) -> SignedRecord {
        let record = NodeRecord {
            id: who.id(),
            incarnation: 1,
            heartbeat,
            roster_epoch: 0,
            left: false,
            addrs: vec![],
            links: vec![],
            queues: vec![],
        };
        SignedRecord::sign(record, who, &NetworkId([1; 32])).unwrap()
    }

    fn v(heartbeat: u64) -> Version {
        Version {
            incarnation: 1,
            heartbeat,
        }
    }

    #[test]
    fn syn_reply_sends_what_is_missing_and_asks_for_what_is_newer() {
        let ids: Vec<Identity> = (1..=4).map(|i| Identity::from_seed([i; 32])).collect();
        let mut t = MemberTable::new(rec(&ids[0], 5), Millis(0), 10);
        t.apply(rec(&ids[1], 5), Millis(0));
        t.apply(rec(&ids[2], 5), Millis(0));
        let mut rng = StdRng::seed_from_u64(1);
        let digest = vec![
            DigestEntry {
                id: ids[1].id(),
                version: v(5),
            },
            DigestEntry {
                id: ids[2].id(),
                version: v(9),
            },
            DigestEntry {
                id: ids[3].id(),
                version: v(1),
            },
            DigestEntry {
                id: ids[3].id(),
                version: v(1),
            },
        ];
        let reply = answer_syn(&t, &digest, |_| true, 1 << 20, &mut rng);
        let sent: Vec<ClusterId> = reply.records.iter().map(|r| r.id()).collect();
        assert_eq!(sent, vec![ids[0].id()]);
        let mut want = reply.want.clone();
        want.sort();
        let mut expect = vec![ids[2].id(), ids[3].id()];
        expect.sort();
        assert_eq!(want, expect);
        let not_admitted = answer_syn(&t, &digest, |id| *id != ids[3].id(), 1 << 20, &mut rng);
        assert_eq!(not_admitted.want, vec![ids[2].id()]);
        // The want answer holds only what we have.
        let recs = answer_want(
            &t,
            &[ids[1].id(), ids[3].id(), ids[1].id()],
            1 << 20,
            &mut rng,
        );
        assert_eq!(recs.len(), 1);
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
            assert_eq!(r.records.len(), 3);
            seen.extend(r.records.iter().map(|r| r.id()));
        }
        assert!(seen.len() > 10, "rotation reaches most records");
        let picks = choose_peers(&[ids[0].id(), ids[1].id()], 3, Some(&ids[0].id()), &mut rng);
        assert_eq!(picks, vec![ids[1].id()]);
    }
}
