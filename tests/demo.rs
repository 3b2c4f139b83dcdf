//! `fedmesh demo` end to end (the built binary, real QUIC on 127.0.0.1):
//! with the defaults every step holds and it exits 0; with a Byzantine
//! weight above 1/3 the Byzantine step reports FAILED and it exits non-zero.

use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

/// The demo times failure detection: run one at a time on a small machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs the demo with `args`; returns (exit code, stdout).
fn demo(args: &[&str]) -> (Option<i32>, String) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_fedmesh"))
        .arg("demo")
        .args(args)
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("run fedmesh demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}\n(demo {args:?} took {:?})", t.elapsed());
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code(), stdout)
}

/// The summary's rows: (step, held column).
fn rows(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| step |"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].to_owned(), cells[4].to_owned())
        })
        .collect()
}

const STEPS: [&str; 7] = [
    "join + converge",
    "multi-hop route",
    "five guarantees",
    "partition + heal",
    "weight change by quorum",
    "Byzantine equivocation",
    "verify all vote logs",
];

#[test]
fn the_default_demo_holds_every_step_and_exits_zero() {
    let (code, stdout) = demo(&[]);
    let rows = rows(&stdout);
    let names: Vec<&str> = rows.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, STEPS, "summary lists every step");
    for (step, held) in &rows {
        assert_eq!(held, "held", "step {step}");
    }
    assert!(stdout.contains("all 7 steps held"));
    assert_eq!(code, Some(0));
}

#[test]
fn a_byzantine_weight_above_a_third_fails_that_step_and_exits_non_zero() {
    let (code, stdout) = demo(&["--byzantine", "2"]);
    let rows = rows(&stdout);
    let byz = rows
        .iter()
        .find(|(s, _)| s == "Byzantine equivocation")
        .expect("Byzantine row in the summary");
    assert_eq!(byz.1, "FAILED", "{stdout}");
    assert!(stdout.contains("steps FAILED"));
    assert_eq!(code, Some(1));
}
