//! Five `fedmesh` processes on 127.0.0.1: join through one seed, detect a
//! `kill -9`, welcome the restarted node back with a higher incarnation, and
//! refuse outsiders with a clear reason on both sides.

mod support;

use std::time::{Duration, Instant};

use fedmesh::http::MemberState;
use support::*;

#[test]
fn five_processes_join_detect_a_crash_and_welcome_the_restart() {
    let dir = workdir();
    let root = path(&dir);
    let ids = keys_and_roster(&root, 5, 5, "proc");

    let first = NodeProc::start(&root, "n0", &node_args(0, None));
    let seed = first.listen;
    let mut nodes = vec![first];
    for i in 1..5 {
        nodes.push(NodeProc::start(
            &root,
            &format!("n{i}"),
            &node_args(i, Some(seed)),
        ));
    }
    let t = Instant::now();
    let all_alive = |nodes: &[NodeProc], ids: &[String]| {
        nodes.iter().all(|n| {
            n.status().is_some_and(|s| {
                ids.iter()
                    .all(|id| member(&s, id).is_some_and(|(st, _)| st == MemberState::Alive))
            })
        })
    };
    assert!(
        wait_for(Duration::from_secs(5), || all_alive(&nodes, &ids)
            .then_some(()))
        .is_some(),
        "not all five alive everywhere within 5 s; logs of n1:\n{}",
        nodes[1].logs()
    );
    println!("five nodes converged in {:?}", t.elapsed());

    // kill -9 one: the others mark it dead within 10 s.
    let victim = 2;
    let before = nodes[victim]
        .status()
        .and_then(|s| member(&s, &ids[victim]))
        .map(|m| m.1)
        .unwrap_or(0);
    nodes[victim].kill();
    let t = Instant::now();
    let dead_everywhere = wait_for(Duration::from_secs(10), || {
        nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != victim)
            .all(|(_, n)| {
                n.status()
                    .and_then(|s| member(&s, &ids[victim]))
                    .is_some_and(|(st, _)| st == MemberState::Dead)
            })
            .then_some(())
    });
    assert!(
        dead_everywhere.is_some(),
        "killed node not marked dead everywhere within 10 s"
    );
    println!("crash detected everywhere in {:?}", t.elapsed());

    // Restart with the same key and data dir: alive everywhere, higher incarnation.
    nodes[victim] = NodeProc::start(&root, "n2-restarted", &node_args(victim, Some(seed)));
    let t = Instant::now();
    let back = wait_for(Duration::from_secs(5), || {
        nodes
            .iter()
            .all(|n| {
                n.status()
                    .and_then(|s| member(&s, &ids[victim]))
                    .is_some_and(|(st, inc)| st == MemberState::Alive && inc > before)
            })
            .then_some(())
    });
    assert!(
        back.is_some(),
        "restarted node not alive with a higher incarnation everywhere within 5 s"
    );
    println!("restart seen everywhere in {:?}", t.elapsed());
}

#[test]
fn outsiders_and_wrong_pins_are_refused_with_a_reason_on_both_sides() {
    let dir = workdir();
    let root = path(&dir);
    // n0, n1, n2 are members; n3 has a key but is not in the roster.
    let ids = keys_and_roster(&root, 4, 3, "refusals");
    let first = NodeProc::start(&root, "n0", &node_args(0, None));
    let member1 = NodeProc::start(&root, "n1", &node_args(1, Some(first.listen)));
    assert!(
        wait_for(Duration::from_secs(5), || {
            first
                .status()
                .and_then(|s| member(&s, &ids[1]))
                .filter(|m| m.0 == MemberState::Alive)
        })
        .is_some()
    );

    // A key that is not in the roster cannot start a member node without
    // seeds (with seeds it may wait to learn a roster epoch listing it)...
    let out = std::process::Command::new(bin())
        .current_dir(&root)
        .args(node_args(3, None))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a member"), "{stderr}");

    // ...and as an observer (--open on its side only) the members refuse it,
    // and both sides log why.
    let mut args = node_args(3, Some(first.listen));
    args.push("--open".into());
    let outsider = NodeProc::start(&root, "n3", &args);
    let refused = wait_for(Duration::from_secs(5), || {
        (first.logs().contains("not a member") && outsider.logs().contains("not a member"))
            .then_some(())
    });
    assert!(
        refused.is_some(),
        "missing refusal lines\n--- n0:\n{}\n--- n3:\n{}",
        first.logs(),
        outsider.logs()
    );
    assert!(
        first.status().and_then(|s| member(&s, &ids[3])).is_none(),
        "outsider admitted"
    );
    assert!(
        member1.status().and_then(|s| member(&s, &ids[3])).is_none(),
        "outsider admitted"
    );

    // A pinned id that does not match the seed's key fails the handshake.
    let mut args = node_args(2, None);
    args[0] = "join".into();
    args.insert(1, format!("{}@{}", ids[1], first.listen));
    let pinned = NodeProc::start(&root, "n2", &args);
    let mismatch = wait_for(Duration::from_secs(5), || {
        pinned
            .logs()
            .contains("not the expected cluster")
            .then_some(())
    });
    assert!(
        mismatch.is_some(),
        "no pin mismatch logged:\n{}",
        pinned.logs()
    );
    let seed_side = wait_for(Duration::from_secs(5), || {
        first
            .logs()
            .contains("inbound connection refused")
            .then_some(())
    });
    assert!(
        seed_side.is_some(),
        "seed did not log the failed handshake:\n{}",
        first.logs()
    );
    assert!(
        first.status().and_then(|s| member(&s, &ids[2])).is_none(),
        "wrongly pinned node got in"
    );
}
