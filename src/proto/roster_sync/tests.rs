use super::*;
use crate::proto::certificate::Certificate;
use crate::proto::quorum::verify_vote;
use crate::testkit::TestNet;

/// A synchronous full mesh of syncs; `cut` hides messages between groups.
struct Mesh {
    net: TestNet,
    nodes: Vec<RosterSync>,
    group: Vec<u8>,
    now: Millis,
}

impl Mesh {
    fn new(weights: &[u64]) -> Mesh {
        let net = TestNet::new(7, weights);
        let nodes = (0..weights.len())
            .map(|i| sync_for(&net, i, vec![]))
            .collect();
        Mesh {
            group: vec![0; weights.len()],
            net,
            nodes,
            now: Millis::from_secs(1),
        }
    }

    /// Delivers `actions` of node `from` to every reachable node, recursively.
    fn deliver(&mut self, from: usize, actions: Vec<SyncAction>) {
        let mut queue: Vec<(usize, SyncAction)> = actions.into_iter().map(|a| (from, a)).collect();
        while let Some((src, a)) = queue.pop() {
            let (proposals, votes, epochs) = match a {
                SyncAction::Signed(v) => (vec![], vec![v], vec![]),
                SyncAction::Proposed(p) => (vec![p], vec![], vec![]),
                SyncAction::Forward { proposals, votes } => (proposals, votes, vec![]),
                SyncAction::Adopted(e) => (vec![], vec![], vec![e]),
                _ => continue,
            };
            for to in 0..self.nodes.len() {
                if to == src || self.group[to] != self.group[src] {
                    continue;
                }
                let mut out = Vec::new();
                self.nodes[to].on_epochs(self.now, epochs.clone(), &mut out);
                self.nodes[to].on_items(self.now, proposals.clone(), votes.clone(), &mut out);
                queue.extend(out.into_iter().map(|a| (to, a)));
            }
        }
    }

    /// Advances time past the collection window and lets everyone vote.
    fn step(&mut self) {
        self.now = self.now.saturating_add(COLLECT_WINDOW.as_duration());
        for i in 0..self.nodes.len() {
            let mut out = Vec::new();
            self.nodes[i].poll(self.now, &mut out);
            self.deliver(i, out);
        }
    }

    /// Anti-entropy between every pair in one group: push all pending items.
    fn exchange(&mut self) {
        for i in 0..self.nodes.len() {
            let (p, v) = self.nodes[i].pending_items();
            let epochs = self.nodes[i].epochs_after(0).to_vec();
            let mut actions = vec![SyncAction::Forward {
                proposals: p,
                votes: v,
            }];
            actions.extend(epochs.into_iter().map(SyncAction::Adopted));
            self.deliver(i, actions);
        }
    }

    fn propose(&mut self, i: usize, change: RosterChange) {
        let mut out = Vec::new();
        self.nodes[i].propose(self.now, change, &mut out).unwrap();
        self.deliver(i, out);
    }

    fn epochs(&self) -> Vec<u64> {
        self.nodes.iter().map(RosterSync::epoch).collect()
    }
}

fn sync_for(net: &TestNet, i: usize, votes: Vec<SignedVote>) -> RosterSync {
    let id = Arc::new(Identity::from_seed(net.seed_of(i)));
    RosterSync::new(id, net.roster.clone(), vec![], votes)
}

fn set_weight(net: &TestNet, i: usize, weight: u64) -> RosterChange {
    RosterChange::SetWeight {
        id: net.identities[i].id(),
        weight,
    }
}

fn certified(net: &TestNet, roster: &Roster, voters: &[usize]) -> RosterEpoch {
    let round = RosterEpoch::change_round(&net.roster, 0);
    let value = RosterEpoch::change_value(roster);
    let votes: Vec<_> = voters
        .iter()
        .map(|i| verify_vote(&net.roster, &net.vote(*i, round, value)).unwrap())
        .collect();
    RosterEpoch {
        roster: Arc::new(roster.clone()),
        certificate: Some(Certificate::from_votes(round, value, &votes)),
        attempt: 0,
    }
}

#[test]
fn one_proposal_is_adopted_by_everyone() {
    let mut m = Mesh::new(&[1, 1, 1, 1]);
    let change = set_weight(&m.net, 2, 5);
    m.propose(0, change);
    assert_eq!(m.epochs(), vec![0; 4]);
    m.step();
    assert_eq!(m.epochs(), vec![1; 4]);
    let id = m.net.identities[2].id();
    assert!(m.nodes.iter().all(|n| n.roster().weight(&id) == Some(5)));
}

#[test]
fn a_split_vote_moves_to_the_next_attempt_and_converges() {
    let mut m = Mesh::new(&[1, 1, 1, 1, 1, 1]);
    m.group = vec![0, 0, 0, 1, 1, 1];
    let a = set_weight(&m.net, 0, 3);
    let b = set_weight(&m.net, 5, 4);
    m.propose(0, a);
    m.propose(5, b);
    m.step();
    m.step();
    assert_eq!(m.epochs(), vec![0; 6], "half the weight cannot decide");
    m.group = vec![0; 6];
    m.exchange();
    assert!(m.nodes.iter().all(|n| n.pending.dead == Some(0)));
    m.step();
    assert_eq!(m.epochs(), vec![1; 6]);
    let first = RosterEpoch::change_value(m.nodes[0].roster());
    assert!(
        m.nodes
            .iter()
            .all(|n| RosterEpoch::change_value(n.roster()) == first)
    );
    assert_eq!(m.nodes[0].current().attempt, 1);
    // The losing proposer re-based its change; it wins epoch 2.
    m.step();
    assert_eq!(m.epochs(), vec![2; 6]);
    let (w0, w5) = (m.net.identities[0].id(), m.net.identities[5].id());
    for n in &m.nodes {
        assert_eq!(n.roster().weight(&w0), Some(3));
        assert_eq!(n.roster().weight(&w5), Some(4));
    }
}

#[test]
fn two_thirds_or_less_never_certifies() {
    let net = TestNet::new(3, &[1, 1, 1]);
    let next = set_weight(&net, 0, 2).apply(&net.roster).unwrap();
    let mut s = sync_for(&net, 0, vec![]);
    let mut out = Vec::new();
    s.on_epochs(Millis::ZERO, [certified(&net, &next, &[0, 1])], &mut out);
    assert_eq!(s.epoch(), 0, "exactly 2/3 is not more than 2/3");
    assert_eq!(s.counters().bad_epochs, 1);

    // Votes alone: 2 of 3 never decide either.
    let mut m = Mesh::new(&[1, 1, 1]);
    m.group = vec![0, 0, 1];
    m.propose(0, set_weight(&m.net, 1, 9));
    m.step();
    m.step();
    assert_eq!(m.epochs(), vec![0, 0, 0]);

    // A weighted roster: 2 of 3 weight exactly, again refused.
    let net = TestNet::new(4, &[2, 2, 1, 1]);
    let next = set_weight(&net, 3, 5).apply(&net.roster).unwrap();
    let mut s = sync_for(&net, 3, vec![]);
    s.on_epochs(Millis::ZERO, [certified(&net, &next, &[0, 1])], &mut out);
    assert_eq!(s.epoch(), 0);
    s.on_epochs(Millis::ZERO, [certified(&net, &next, &[0, 1, 2])], &mut out);
    assert_eq!(s.epoch(), 1, "5 of 6 is enough");
}

#[test]
fn non_members_and_bad_signatures_are_refused() {
    let net = TestNet::new(5, &[1, 1, 1, 1]);
    let outsider = TestNet::new(6, &[1]);
    let next = Arc::new(set_weight(&net, 0, 2).apply(&net.roster).unwrap());
    let mut s = sync_for(&net, 0, vec![]);
    let mut out = Vec::new();

    // A proposal signed by a non-member, and one with a broken signature.
    let foreign = Proposal::sign(next.clone(), &outsider.identities[0]);
    let mut forged = Proposal::sign(next.clone(), &net.identities[1]);
    forged.signature[0] ^= 1;
    s.on_items(Millis::ZERO, vec![foreign, forged], vec![], &mut out);
    assert_eq!(s.counters().bad_proposals, 2);
    assert!(s.pending_status().is_none());

    // Votes: a non-member's and a tampered one are not counted.
    let round = RosterEpoch::change_round(&net.roster, 0);
    let value = RosterEpoch::change_value(&next);
    let stranger = Vote {
        round,
        value,
        voter: outsider.identities[0].id(),
    }
    .sign(&outsider.identities[0])
    .unwrap();
    let mut tampered = net.vote(1, round, value);
    tampered.signature[5] ^= 1;
    s.on_items(Millis::ZERO, vec![], vec![stranger, tampered], &mut out);
    assert_eq!(s.counters().bad_votes, 2);

    // A certificate carrying a tampered signature is refused.
    let mut e = certified(&net, &next, &[0, 1, 2, 3]);
    let mut bytes = e.encode();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    e = RosterEpoch::decode(&bytes).unwrap();
    s.on_epochs(Millis::ZERO, [e], &mut out);
    assert_eq!(s.epoch(), 0);
}

use crate::proto::vote::Vote;

#[test]
fn a_restart_never_signs_another_value_for_a_slot() {
    let net = TestNet::new(8, &[1, 1, 1, 1]);
    let now = Millis::from_secs(10);
    let a = Proposal::sign(
        Arc::new(set_weight(&net, 0, 2).apply(&net.roster).unwrap()),
        &net.identities[0],
    );
    let b = Proposal::sign(
        Arc::new(set_weight(&net, 1, 2).apply(&net.roster).unwrap()),
        &net.identities[1],
    );
    let (first, second) = if a.value() > b.value() {
        (a, b)
    } else {
        (b, a)
    };
    let mut s = sync_for(&net, 2, vec![]);
    let mut out = Vec::new();
    s.on_items(now, vec![first.clone()], vec![], &mut out);
    s.poll(now.saturating_add(COLLECT_WINDOW.as_duration()), &mut out);
    let mine: Vec<SignedVote> = out
        .iter()
        .filter_map(|a| match a {
            SyncAction::Signed(v) => Some(*v),
            _ => None,
        })
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].vote.value, first.value());

    // Restart with the persisted vote; a lower-digest proposal now arrives.
    let mut s = sync_for(&net, 2, mine.clone());
    let mut out = Vec::new();
    s.on_items(now, vec![first, second], vec![], &mut out);
    s.poll(
        now.saturating_add(COLLECT_WINDOW.as_duration() * 2),
        &mut out,
    );
    assert!(
        !out.iter().any(|a| matches!(a, SyncAction::Signed(_))),
        "no new signature for a slot already signed"
    );
    let sent: Vec<SignedVote> = out
        .iter()
        .filter_map(|a| match a {
            SyncAction::Forward { votes, .. } => Some(votes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(sent, mine, "the restored vote is spread instead");
}

#[test]
fn a_conflicting_certificate_is_kept_as_evidence_not_adopted() {
    let net = TestNet::new(9, &[1, 1, 1, 1]);
    let a = set_weight(&net, 0, 2).apply(&net.roster).unwrap();
    let b = set_weight(&net, 1, 2).apply(&net.roster).unwrap();
    let mut s = sync_for(&net, 3, vec![]);
    let mut out = Vec::new();
    s.on_epochs(Millis::ZERO, [certified(&net, &a, &[0, 1, 2])], &mut out);
    assert_eq!(s.epoch(), 1);
    let fork = certified(&net, &b, &[0, 1, 3]);
    s.on_epochs(Millis::ZERO, [fork], &mut out);
    assert_eq!(s.epoch(), 1);
    assert_eq!(
        RosterEpoch::change_value(s.roster()),
        RosterEpoch::change_value(&a)
    );
    assert_eq!(s.counters().conflicts, 1);
    assert_eq!(s.conflicts().len(), 1);
    assert!(out.iter().any(|a| matches!(a, SyncAction::Conflict(_))));
}

#[test]
fn equivocating_votes_produce_evidence() {
    let net = TestNet::new(10, &[1, 1, 1, 1]);
    let a = Arc::new(set_weight(&net, 0, 2).apply(&net.roster).unwrap());
    let b = Arc::new(set_weight(&net, 1, 2).apply(&net.roster).unwrap());
    let round = RosterEpoch::change_round(&net.roster, 0);
    let mut s = sync_for(&net, 3, vec![]);
    let mut out = Vec::new();
    let votes = vec![
        net.vote(2, round, RosterEpoch::change_value(&a)),
        net.vote(2, round, RosterEpoch::change_value(&b)),
    ];
    s.on_items(Millis::ZERO, vec![], votes, &mut out);
    assert!(out.iter().any(|a| matches!(a, SyncAction::Evidence(_))));
    assert!(s.coordinator().is_flagged(0, &net.identities[2].id()));
}

#[test]
fn stored_epochs_rebuild_the_chain() {
    let mut m = Mesh::new(&[1, 1, 1]);
    m.propose(1, set_weight(&m.net, 1, 4));
    m.step();
    let stored = m.nodes[0].epochs_after(0).to_vec();
    assert_eq!(stored.len(), 1);
    let id = Arc::new(Identity::from_seed(m.net.seed_of(0)));
    let s = RosterSync::new(id, m.net.roster.clone(), stored, vec![]);
    assert_eq!(s.epoch(), 1);
}
