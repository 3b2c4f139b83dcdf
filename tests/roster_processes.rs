//! Roster epochs across real `fedmesh` processes: four clusters accept a
//! fifth through `fedmesh roster propose`, every node moves to epoch 1, and
//! the new cluster then joins with `fedmesh join`.

mod support;

use std::time::Duration;

use fedmesh::http::MemberState;
use support::*;

#[test]
fn four_clusters_add_a_fifth_which_then_joins() {
    let dir = workdir();
    let root = path(&dir);
    let ids = keys_and_roster(&root, 5, 4, "grow");

    let first = NodeProc::start(&root, "n0", &node_args(0, None));
    let seed = first.listen;
    let mut nodes = vec![first];
    for i in 1..4 {
        nodes.push(NodeProc::start(
            &root,
            &format!("n{i}"),
            &node_args(i, Some(seed)),
        ));
    }
    let alive_everywhere = |nodes: &[NodeProc], ids: &[String]| {
        nodes.iter().all(|n| {
            n.status().is_some_and(|s| {
                ids.iter()
                    .all(|id| member(&s, id).is_some_and(|(st, _)| st == MemberState::Alive))
            })
        })
    };
    assert!(
        wait_for(Duration::from_secs(10), || alive_everywhere(
            &nodes,
            &ids[..4]
        )
        .then_some(()))
        .is_some(),
        "the four members did not converge"
    );

    // Propose through n1: add n4 with weight 2.
    let admin = nodes[1].admin.to_string();
    let out = fedmesh_ok(
        &root,
        &[
            "roster",
            "propose",
            "--admin",
            &admin,
            "--timeout",
            "30",
            "add",
            "certs/n4.crt",
            "--weight",
            "2",
            "--name",
            "n4",
        ],
    );
    assert!(out.contains("roster epoch 1"), "propose output:\n{out}");
    assert!(
        wait_for(Duration::from_secs(10), || nodes
            .iter()
            .all(|n| n.status().is_some_and(|s| s.roster.epoch == 1))
            .then_some(()))
        .is_some(),
        "not every node moved to roster epoch 1"
    );

    // The new cluster joins through the seed and is alive everywhere.
    nodes.push(NodeProc::start(&root, "n4", &node_args(4, Some(seed))));
    assert!(
        wait_for(Duration::from_secs(15), || alive_everywhere(&nodes, &ids)
            .then_some(()))
        .is_some(),
        "n4 not alive everywhere; n4 logs:\n{}",
        nodes[4].logs()
    );
    let admin4 = nodes[4].admin.to_string();
    let show = fedmesh_ok(&root, &["roster", "show", "--admin", &admin4]);
    assert!(show.contains("roster epoch 1"), "roster show:\n{show}");
    assert!(show.contains("n4"), "roster show:\n{show}");
    let status = nodes[0].status().expect("status");
    let n4 = status
        .members
        .iter()
        .find(|m| m.id.to_string() == ids[4])
        .expect("n4 in status");
    assert_eq!(n4.weight, 2);
    assert_eq!(status.roster.total_weight, 6);
    let table = fedmesh_ok(&root, &["status", "--admin", &nodes[0].admin.to_string()]);
    assert!(table.contains("roster epoch 1"), "status:\n{table}");
    let metrics = ureq::get(&format!("http://{}/metrics", nodes[0].admin))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("metrics body");
    assert!(
        metrics.contains("fedmesh_roster_epoch 1"),
        "metrics:\n{metrics}"
    );
    assert!(metrics.contains("fedmesh_roster_weight{member=\"n4\"} 2"));

    // An invalid change is refused with a reason, exit code 1 or 2.
    let bad = std::process::Command::new(bin())
        .current_dir(&root)
        .args([
            "roster",
            "propose",
            "--admin",
            &admin,
            "remove",
            &"ab".repeat(32),
        ])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("not a member"), "stderr: {err}");
}
