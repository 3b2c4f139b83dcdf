use proptest::prelude::*;

use super::*;
use crate::proto::vote::{REJECT, VoteKind};
use crate::testkit::{TestNet, value};

#[test]
fn boundaries_are_exact() {
    let b = Threshold::Byzantine;
    let g = Threshold::Global;
    assert!(!b.is_met(2, 3).unwrap());
    assert!(b.is_met(3, 3).unwrap());
    assert!(!b.is_met(66, 100).unwrap());
    assert!(b.is_met(67, 100).unwrap());
    assert!(!g.is_met(50, 100).unwrap());
    assert!(g.is_met(51, 100).unwrap());
    assert_eq!(b.min_weight(100).unwrap(), 67);
    assert_eq!(g.min_weight(100).unwrap(), 51);
    assert_eq!(b.min_weight(3).unwrap(), 3);
    assert_eq!(g.is_met(0, 0), Err(QuorumError::ZeroTotal));
    assert!(matches!(
        g.is_met(2, 1),
        Err(QuorumError::CountExceedsTotal { .. })
    ));
}

#[test]
fn weights_near_u64_max_never_wrap() {
    let max = u64::MAX;
    // 3·yes and 2·total overflow u64 but not u128.
    assert!(Threshold::Byzantine.is_met(max, max).unwrap());
    assert!(!Threshold::Byzantine.is_met(max / 3 * 2, max).unwrap());
    assert!(Threshold::Byzantine.is_met(max / 3 * 2 + 1, max).unwrap());
    assert!(!Threshold::Global.is_met(max / 2, max).unwrap());
    assert!(Threshold::Global.is_met(max / 2 + 1, max).unwrap());
    assert_eq!(
        Threshold::Byzantine.min_weight(max).unwrap(),
        max / 3 * 2 + 1
    );
    assert_eq!(checked_sum([max, 1]), Err(QuorumError::Overflow));
    assert_eq!(checked_sum([max - 1, 1]), Ok(max));
}

proptest! {
    #[test]
    fn min_weight_is_the_exact_boundary(total in 1u64.., pick in any::<bool>()) {
        let t = if pick { Threshold::Global } else { Threshold::Byzantine };
        let m = t.min_weight(total).unwrap();
        prop_assert!(t.is_met(m, total).unwrap());
        prop_assert!(!t.is_met(m - 1, total).unwrap());
    }

    #[test]
    fn quorum_is_monotone(total in 1u64.., a in any::<u64>(), b in any::<u64>(), pick in any::<bool>()) {
        let t = if pick { Threshold::Global } else { Threshold::Byzantine };
        let (lo, hi) = (a.min(b) % (total + 1).max(1), a.max(b) % (total + 1).max(1));
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        if t.is_met(lo, total).unwrap() {
            prop_assert!(t.is_met(hi, total).unwrap());
        }
    }

    #[test]
    fn two_quorums_intersect_in_more_than_the_faulty_weight(
        weights in proptest::collection::vec(0u64..1_000_000, 1..40),
        mask_a in any::<u64>(),
        mask_b in any::<u64>(),
        pick in any::<bool>(),
    ) {
        let total: u64 = weights.iter().sum();
        prop_assume!(total > 0);
        let t = if pick { Threshold::Global } else { Threshold::Byzantine };
        let sum = |mask: u64| -> u64 {
            weights.iter().enumerate().filter(|(i, _)| mask >> i & 1 == 1).map(|(_, w)| *w).sum()
        };
        let (a, b, both) = (sum(mask_a), sum(mask_b), sum(mask_a & mask_b));
        if t.is_met(a, total).unwrap() && t.is_met(b, total).unwrap() {
            // Intersection exceeds what may be faulty, so an honest member is in both.
            prop_assert!(both > t.tolerated_faulty(total));
        }
    }
}

fn coordinator(net: &TestNet) -> Coordinator {
    Coordinator::new(net.roster.clone())
}

fn add(c: &mut Coordinator, v: &crate::proto::vote::SignedVote) -> VoteReport {
    let verified = c.verify(v).unwrap();
    c.add_vote(&verified).unwrap()
}

#[test]
fn byzantine_round_with_unit_weights_needs_all_three() {
    let net = TestNet::new(1, &[1, 1, 1]);
    let mut c = coordinator(&net);
    let round = net.round(VoteKind::ByzantineQuorum, 1);
    assert_eq!(add(&mut c, &net.vote(0, round, value(1))).decided, None);
    assert_eq!(add(&mut c, &net.vote(1, round, value(1))).decided, None);
    let r = add(&mut c, &net.vote(2, round, value(1)));
    assert_eq!(r.decided, Some(Decision::Accepted(value(1))));
    let cert = c.certificate(&round).unwrap();
    assert_eq!(cert.len(), 3);
    assert_eq!(cert.verify(&net.roster).unwrap(), 3);
}

#[test]
fn identical_duplicates_and_other_slots_are_never_flagged() {
    let net = TestNet::new(2, &[1, 1, 1, 1]);
    let mut c = coordinator(&net);
    let r1 = net.round(VoteKind::ByzantineQuorum, 1);
    let r2 = net.round(VoteKind::ByzantineQuorum, 2);
    let r3 = net.round(VoteKind::GlobalQuorum, 1);
    let v = net.vote(0, r1, value(1));
    assert_eq!(add(&mut c, &v).effect, VoteEffect::Counted);
    for _ in 0..3 {
        assert_eq!(add(&mut c, &v).effect, VoteEffect::Duplicate);
    }
    // Same signer, other slots, other values: independent.
    assert_eq!(
        add(&mut c, &net.vote(0, r2, value(2))).effect,
        VoteEffect::Counted
    );
    assert_eq!(
        add(&mut c, &net.vote(0, r3, REJECT)).effect,
        VoteEffect::Counted
    );
    assert_eq!(c.flagged().count(), 0);
    assert_eq!(c.tally(&r1).unwrap().counted_weight(), 1);
}

#[test]
fn a_conflict_is_flagged_once_and_weight_counts_once() {
    let net = TestNet::new(3, &[10, 10, 10, 10]);
    let mut c = coordinator(&net);
    let round = net.round(VoteKind::ByzantineQuorum, 7);
    add(&mut c, &net.vote(0, round, value(1)));
    let report = add(&mut c, &net.vote(0, round, value(2)));
    let VoteEffect::Equivocation(evidence) = report.effect else {
        panic!("expected evidence, got {:?}", report.effect);
    };
    assert_eq!(
        evidence.verify(&net.roster).unwrap(),
        net.identities[0].id()
    );
    assert!(c.is_flagged(0, &net.identities[0].id()));
    // Neither repeat nor a third value produces new evidence.
    assert_eq!(
        add(&mut c, &net.vote(0, round, value(2))).effect,
        VoteEffect::FurtherConflict
    );
    assert_eq!(
        add(&mut c, &net.vote(0, round, value(3))).effect,
        VoteEffect::FurtherConflict
    );
    assert_eq!(c.flagged().count(), 1);
    let tally = c.tally(&round).unwrap();
    assert_eq!(tally.weight_for(&value(1)), 10);
    assert_eq!(tally.weight_for(&value(2)), 0);
    assert_eq!(tally.counted_weight(), 10);
    // Flagged for the rest of the epoch: its vote in a new round is not counted.
    let other = net.round(VoteKind::ByzantineQuorum, 8);
    assert_eq!(
        add(&mut c, &net.vote(0, other, value(1))).effect,
        VoteEffect::SignerFlagged
    );
    assert_eq!(c.tally(&other).unwrap().counted_weight(), 0);
}

#[test]
fn an_equivocator_cannot_make_both_sides_reach_quorum() {
    // Weights 1,1,1,1: Byzantine needs all 4 minus nothing: 3·yes > 8 → yes ≥ 3.
    let net = TestNet::new(4, &[1, 1, 1, 1]);
    let mut c = coordinator(&net);
    let round = net.round(VoteKind::ByzantineQuorum, 1);
    add(&mut c, &net.vote(3, round, value(1)));
    add(&mut c, &net.vote(3, round, value(2)));
    add(&mut c, &net.vote(0, round, value(2)));
    add(&mut c, &net.vote(1, round, value(2)));
    // value(2) has 2 (the equivocator's second vote is not counted), value(1) has 1.
    assert_eq!(c.decision(&round), None);
    let r = add(&mut c, &net.vote(2, round, value(2)));
    assert_eq!(r.decided, Some(Decision::Accepted(value(2))));
    assert_eq!(c.certificate(&round).unwrap().len(), 3);
}

#[test]
fn rejects_as_soon_as_quorum_is_unreachable() {
    let net = TestNet::new(5, &[1; 7]);
    let mut c = coordinator(&net);
    let round = net.round(VoteKind::ByzantineQuorum, 1);
    // Byzantine over 7 needs 5. Two rejects leave at most 5: still possible.
    assert_eq!(add(&mut c, &net.vote(0, round, REJECT)).decided, None);
    assert_eq!(add(&mut c, &net.vote(1, round, REJECT)).decided, None);
    // A third reject leaves at most 4: rejected now, not at a timeout.
    assert_eq!(
        add(&mut c, &net.vote(2, round, REJECT)).decided,
        Some(Decision::Rejected)
    );
    // Later votes do not change a decision.
    for i in 3..7 {
        assert_eq!(add(&mut c, &net.vote(i, round, value(1))).decided, None);
    }
    assert_eq!(c.decision(&round), Some(Decision::Rejected));
    assert!(c.certificate(&round).is_none());
}

#[test]
fn split_accept_values_reject_early() {
    let net = TestNet::new(6, &[1, 1, 1, 1]);
    let mut c = coordinator(&net);
    let round = net.round(VoteKind::GlobalQuorum, 1);
    add(&mut c, &net.vote(0, round, value(1)));
    // value(1) could still get 1 + 2 = 3 > 2.
    assert_eq!(add(&mut c, &net.vote(1, round, value(2))).decided, None);
    // Now value(1) ≤ 1 + 1 = 2, value(2) ≤ 2: neither exceeds half.
    assert_eq!(
        add(&mut c, &net.vote(2, round, value(3))).decided,
        Some(Decision::Rejected)
    );
}

#[test]
fn votes_for_unknown_epochs_or_outsiders_are_refused() {
    let net = TestNet::new(7, &[1, 1]);
    let other = TestNet::new(8, &[1, 1]);
    let c = coordinator(&net);
    let mut round = net.round(VoteKind::GlobalQuorum, 1);
    assert!(matches!(
        c.verify(&other.vote(0, round, value(1))),
        Err(CoordinatorError::Vote(
            crate::proto::vote::VoteError::NotAMember(_)
        ))
    ));
    round.epoch = 5;
    assert_eq!(
        c.verify(&net.vote(0, round, value(1))),
        Err(CoordinatorError::UnknownEpoch(5))
    );
    let foreign = other.round(VoteKind::GlobalQuorum, 1);
    assert!(matches!(
        c.verify(&net.vote(0, foreign, value(1))),
        Err(CoordinatorError::Vote(
            crate::proto::vote::VoteError::WrongNetwork { .. }
        ))
    ));
}

#[test]
fn evidence_from_elsewhere_flags_and_is_idempotent() {
    let net = TestNet::new(9, &[1, 1, 1]);
    let round = net.round(VoteKind::ByzantineQuorum, 1);
    let e = crate::proto::evidence::Evidence::from_conflict(
        net.vote(1, round, value(2)),
        net.vote(1, round, value(1)),
    )
    .unwrap();
    let mut c = coordinator(&net);
    assert!(c.add_evidence(&e).unwrap());
    assert!(!c.add_evidence(&e).unwrap());
    assert!(c.is_flagged(0, &net.identities[1].id()));
    // A flagged signer that has not voted can no longer help: 3·2 > 6 is false.
    assert_eq!(
        add(&mut c, &net.vote(0, round, value(1))).decided,
        Some(Decision::Rejected)
    );
    assert_eq!(c.decision(&round), Some(Decision::Rejected));
}

#[test]
fn large_rounds_index_voters_and_still_catch_duplicates_and_conflicts() {
    // 40 voters: past the tally's linear-scan limit, so lookups go through
    // its voter index; votes land on both sides of the switch.
    let net = TestNet::new(9, &[1; 40]);
    let mut c = coordinator(&net);
    let round = net.round(VoteKind::ByzantineQuorum, 1);
    for i in 0..26 {
        let r = add(&mut c, &net.vote(i, round, value(1)));
        assert_eq!(r.effect, VoteEffect::Counted, "voter {i}");
        assert_eq!(r.decided, None);
    }
    for i in [0, 5, 15, 16, 25] {
        let again = add(&mut c, &net.vote(i, round, value(1)));
        assert_eq!(again.effect, VoteEffect::Duplicate, "voter {i}");
        let other = add(&mut c, &net.vote(i, round, value(2)));
        assert!(
            matches!(other.effect, VoteEffect::Equivocation(_)),
            "voter {i}"
        );
        let third = add(&mut c, &net.vote(i, round, value(3)));
        assert_eq!(third.effect, VoteEffect::FurtherConflict, "voter {i}");
        assert!(c.is_flagged(round.epoch, &net.identities[i].id()));
    }
    let tally = c.tally(&round).unwrap();
    assert_eq!(tally.counted_weight(), 26);
    assert!(tally.is_counted(&net.identities[20].id()));
    assert!(!tally.is_counted(&net.identities[30].id()));
    // 27 of 40 is a Byzantine quorum (3·27 > 2·40); 26 is not.
    let r = add(&mut c, &net.vote(26, round, value(1)));
    assert_eq!(r.decided, Some(Decision::Accepted(value(1))));
    assert_eq!(c.certificate(&round).unwrap().votes().count(), 27);
}
