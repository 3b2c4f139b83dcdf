//! `fedmesh keygen` run as a separate process.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use x509_parser::oid_registry::OID_SIG_ED25519;

fn fedmesh(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fedmesh"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("the fedmesh binary runs")
}

/// The single stdout line, checked to be a 64-character lowercase hex id.
fn printed_id(out: &Output) -> String {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout must be exactly one line: {stdout:?}"
    );
    let id = lines[0];
    assert_eq!(id.len(), 64, "{id:?}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{id:?}"
    );
    id.to_owned()
}

fn key_public_hex(path: &Path) -> String {
    let pem = fs::read_to_string(path).unwrap();
    hex::encode(
        SigningKey::from_pkcs8_pem(&pem)
            .unwrap()
            .verifying_key()
            .to_bytes(),
    )
}

fn cert_public_hex(path: &Path) -> String {
    let pem_bytes = fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem_bytes).unwrap();
    assert_eq!(pem.label, "CERTIFICATE");
    let cert = pem.parse_x509().unwrap();
    let spki = cert.public_key();
    assert_eq!(spki.algorithm.algorithm, OID_SIG_ED25519);
    assert_eq!(cert.signature_algorithm.algorithm, OID_SIG_ED25519);
    hex::encode(&spki.subject_public_key.data)
}

#[test]
fn keygen_writes_a_private_key_and_a_matching_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let out = fedmesh(tmp.path(), &["keygen", "--name", "alpha"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = printed_id(&out);

    let key = tmp.path().join("certs/alpha.key");
    let crt = tmp.path().join("certs/alpha.crt");
    assert_eq!(key_public_hex(&key), id);
    assert_eq!(cert_public_hex(&crt), id);
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Paths are reported on stderr, not stdout.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("alpha.key") && stderr.contains("alpha.crt"),
        "{stderr}"
    );
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let first = fedmesh(tmp.path(), &["keygen", "--name", "alpha", "--out", "keys"]);
    assert!(first.status.success());
    let first_id = printed_id(&first);
    let key = tmp.path().join("keys/alpha.key");
    let crt = tmp.path().join("keys/alpha.crt");
    let (key_before, crt_before) = (fs::read(&key).unwrap(), fs::read(&crt).unwrap());

    let again = fedmesh(tmp.path(), &["keygen", "--name", "alpha", "--out", "keys"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(again.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains("--force") && stderr.contains("alpha.key"),
        "{stderr}"
    );
    assert_eq!(fs::read(&key).unwrap(), key_before);
    assert_eq!(fs::read(&crt).unwrap(), crt_before);

    let forced = fedmesh(
        tmp.path(),
        &["keygen", "--name", "alpha", "--out", "keys", "--force"],
    );
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    let new_id = printed_id(&forced);
    assert_ne!(new_id, first_id);
    assert_eq!(key_public_hex(&key), new_id);
    assert_eq!(cert_public_hex(&crt), new_id);
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn keygen_rejects_bad_names_and_missing_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["../escape", "has space", ""] {
        let out = fedmesh(tmp.path(), &["keygen", "--name", name]);
        assert_eq!(out.status.code(), Some(2), "name {name:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("invalid name"),
            "name {name:?}"
        );
    }
    assert!(!tmp.path().join("escape.key").exists());
    let out = fedmesh(tmp.path(), &["keygen"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name"));
}
