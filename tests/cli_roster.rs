//! `fedmesh roster init` run as a separate process.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use fedmesh::store::genesis::load_roster_file;

fn fedmesh(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fedmesh"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("the fedmesh binary runs")
}

fn stdout_line(out: &Output) -> String {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout must be exactly one line: {stdout:?}"
    );
    lines[0].to_owned()
}

/// Runs keygen for each name in `dir/certs` and returns the printed ids.
fn keygen(dir: &Path, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|name| {
            let out = fedmesh(dir, &["keygen", "--name", name]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            stdout_line(&out)
        })
        .collect()
}

/// Runs `roster init` expecting failure with exit code 2 and returns stderr.
fn init_fails(dir: &Path, members: &[&str]) -> String {
    let mut args = vec!["roster", "init", "--network", "demo", "--out", "bad.toml"];
    args.extend_from_slice(members);
    let out = fedmesh(dir, &args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{members:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{members:?}");
    assert!(stderr.starts_with("error: "), "{members:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{members:?}: {stderr}");
    assert!(!dir.join("bad.toml").exists(), "{members:?}");
    stderr
}

#[test]
fn roster_init_writes_a_loadable_roster_with_the_printed_network_id() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = keygen(tmp.path(), &["alpha", "beta", "gamma"]);
    let out = fedmesh(
        tmp.path(),
        &[
            "roster",
            "init",
            "--network",
            "demo",
            "--out",
            "roster.toml",
            "certs/alpha.key",
            "certs/beta.crt=5",
            "certs/gamma.crt",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let network_id = stdout_line(&out);

    let roster = load_roster_file(&tmp.path().join("roster.toml")).unwrap();
    assert_eq!(roster.network_id().to_string(), network_id);
    assert_eq!(roster.network_name(), "demo");
    assert_eq!(roster.total_weight(), 7);
    for (name, (id, weight)) in ["alpha", "beta", "gamma"]
        .iter()
        .zip(ids.iter().zip([1, 5, 1]))
    {
        let member = roster.by_name(name).unwrap();
        assert_eq!(member.id.to_string(), *id);
        assert_eq!(member.weight, weight);
    }
    let text = fs::read_to_string(tmp.path().join("roster.toml")).unwrap();
    assert!(text.contains(&network_id));

    // Without --force the roster is kept; with it, it is replaced.
    let again = [
        "roster",
        "init",
        "--network",
        "demo",
        "--out",
        "roster.toml",
        "certs/alpha.key",
    ];
    let refused = fedmesh(tmp.path(), &again);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    assert_eq!(
        fs::read_to_string(tmp.path().join("roster.toml")).unwrap(),
        text
    );
    let mut forced = again.to_vec();
    forced.push("--force");
    let out = fedmesh(tmp.path(), &forced);
    assert!(out.status.success());
    let roster = load_roster_file(&tmp.path().join("roster.toml")).unwrap();
    assert_eq!(roster.total_weight(), 1);
    assert_eq!(roster.network_id().to_string(), stdout_line(&out));
}

#[test]
fn roster_init_reports_bad_inputs_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    keygen(tmp.path(), &["alpha", "beta", "gamma"]);
    fs::write(
        tmp.path().join("garbage.crt"),
        b"\x00\x01 not a certificate\n",
    )
    .unwrap();
    fs::copy(
        tmp.path().join("certs/alpha.key"),
        tmp.path().join("copy.key"),
    )
    .unwrap();

    let err = init_fails(tmp.path(), &["certs/missing.key"]);
    assert!(
        err.contains("certs/missing.key") && err.contains("No such file"),
        "{err}"
    );

    let err = init_fails(tmp.path(), &["garbage.crt"]);
    assert!(
        err.contains("garbage.crt") && err.contains("not a PEM file"),
        "{err}"
    );

    let err = init_fails(tmp.path(), &["certs/alpha.key=notanumber"]);
    assert!(
        err.contains("\"notanumber\" is not a whole number"),
        "{err}"
    );

    let err = init_fails(tmp.path(), &["certs/alpha.key=18446744073709551616"]);
    assert!(err.contains("too large"), "{err}");

    let max = "9223372036854775807";
    let (a, b, c) = (
        format!("certs/alpha.key={max}"),
        format!("certs/beta.key={max}"),
        format!("certs/gamma.key={max}"),
    );
    let err = init_fails(tmp.path(), &[&a, &b, &c]);
    assert!(err.contains("overflow"), "{err}");

    let err = init_fails(tmp.path(), &["certs/alpha.key", "copy.key"]);
    assert!(
        err.contains("same cluster id") && err.contains("copy.key"),
        "{err}"
    );

    let err = init_fails(tmp.path(), &["certs/alpha.key", "certs/alpha.crt"]);
    assert!(err.contains("same cluster id"), "{err}");

    let err = init_fails(tmp.path(), &["certs/alpha.key=0"]);
    assert!(err.contains("total weight is zero"), "{err}");

    let err = init_fails(tmp.path(), &[]);
    assert!(err.contains("CERT_OR_KEY"), "{err}");
}
