//! `fedmesh verify` end to end: valid logs pass, and every kind of tampering
//! is caught at the right record with the right reason.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use fedmesh::audit::{FlagSource, Verdict, VerifyOptions, VerifyReport, verify_logs};
use fedmesh::proto::Identity;
use fedmesh::proto::certificate::Certificate;
use fedmesh::proto::log_entry::LogEntry;
use fedmesh::proto::quorum::verify_vote;
use fedmesh::proto::roster_epoch::RosterEpoch;
use fedmesh::proto::vote::{SignedVote, Vote, VoteKind};
use fedmesh::store::votelog::checkpoint::Checkpoint;
use fedmesh::store::votelog::{RecordKind, VoteLogReader, VoteLogWriter, WriterOptions};
use fedmesh::testkit::{SampleLog, TestNet, append_entry, value, write_sample_log};

const WEIGHTS: [u64; 5] = [1, 1, 1, 1, 1];

fn options() -> WriterOptions {
    WriterOptions {
        checkpoint_every: 16,
        ..WriterOptions::default()
    }
}

fn sample(dir: &Path, name: &str, net: &TestNet, equivocator: Option<usize>) -> PathBuf {
    let path = dir.join(name);
    write_sample_log(
        net,
        &path,
        SampleLog {
            rounds: 12,
            certificates: true,
            equivocator,
            writer: 0,
        },
        options(),
    )
    .unwrap();
    path
}

fn verify(net: &TestNet, paths: &[PathBuf]) -> VerifyReport {
    verify_logs(net.roster.clone(), paths, VerifyOptions::default())
}

/// (offset, length) of every record of a valid log.
fn layout(path: &Path) -> Vec<(RecordKind, usize, usize)> {
    let mut r = VoteLogReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push((rec.kind, rec.offset as usize, rec.encoded_len() as usize));
    }
    out
}

fn first_fault(report: &VerifyReport) -> (Option<u64>, &'static str) {
    let f = report.logs[0].fault.as_ref().expect("expected a fault");
    (f.index, f.code)
}

fn tampered(dir: &Path, original: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(original).unwrap();
    edit(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_valid_log_verifies_and_reports_the_equivocator() {
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new(1, &WEIGHTS);
    let log = sample(dir.path(), "a.log", &net, Some(3));
    let report = verify(&net, &[log]);
    assert_eq!(report.verdict(), Verdict::Valid, "{report:#?}");
    let c = &report.logs[0].counts;
    assert_eq!(c.votes, 12 * 5 + 1);
    assert_eq!(c.certificates, 12);
    assert_eq!(c.evidence, 1);
    assert_eq!(c.rosters, 1);
    assert!(report.logs[0].sealed);
    assert_eq!(report.flagged.len(), 1);
    assert_eq!(report.flagged[0].id, net.identities[3].id());
    assert_eq!(
        report.flagged[0].sources,
        vec![FlagSource::EvidenceRecord, FlagSource::Redetected]
    );
    // Certificate votes repeat vote records: verified once, skipped after.
    assert_eq!(report.signatures_verified, 12 * 5 + 1);
    assert!(report.signatures_skipped >= 12 * 4);
}

#[test]
fn every_tampering_is_found_at_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new(2, &WEIGHTS);
    let log = sample(dir.path(), "good.log", &net, None);
    let recs = layout(&log);
    let vote_at = |n: usize| {
        recs.iter()
            .enumerate()
            .filter(|(_, r)| r.0 == RecordKind::Vote)
            .nth(n)
            .unwrap()
            .0
    };
    let (kv, kv_off, kv_len) = {
        let i = vote_at(7);
        (i, recs[i].1, recs[i].2)
    };
    let check = |name: &str, edit: &dyn Fn(&mut Vec<u8>), want: (Option<u64>, &str)| {
        let path = tampered(dir.path(), &log, name, |b| edit(b));
        let report = verify(&net, &[path]);
        assert_eq!(report.verdict(), Verdict::Invalid, "{name}");
        assert_eq!(
            first_fault(&report),
            (want.0, want.1),
            "{name}: {:?}",
            report.logs[0].fault
        );
    };
    let kv64 = Some(kv as u64);
    // A flipped bit in a vote's value: its signature no longer verifies.
    check(
        "body",
        &|b| b[kv_off + 4 + 41 + 80] ^= 1,
        (kv64, "bad_signature"),
    );
    // A flipped bit in the signature itself.
    check(
        "sig",
        &|b| b[kv_off + kv_len - 1] ^= 0x10,
        (kv64, "bad_signature"),
    );
    // A flipped bit in the chain hash field.
    check(
        "chain",
        &|b| b[kv_off + 4 + 9 + 3] ^= 1,
        (kv64, "chain_mismatch"),
    );
    // Deleted, duplicated, reordered records.
    check(
        "deleted",
        &|b| {
            b.drain(kv_off..kv_off + kv_len);
        },
        (kv64, "seq_mismatch"),
    );
    check(
        "duplicated",
        &|b| {
            let copy = b[kv_off..kv_off + kv_len].to_vec();
            b.splice(kv_off + kv_len..kv_off + kv_len, copy);
        },
        (Some(kv as u64 + 1), "seq_mismatch"),
    );
    check(
        "swapped",
        &|b| {
            let next_len = recs[kv + 1].2;
            let a = b[kv_off..kv_off + kv_len].to_vec();
            let n = b[kv_off + kv_len..kv_off + kv_len + next_len].to_vec();
            b.splice(kv_off..kv_off + kv_len + next_len, n.into_iter().chain(a));
        },
        (kv64, "seq_mismatch"),
    );
    // Truncation inside a record.
    check(
        "torn",
        &|b| b.truncate(kv_off + kv_len / 2),
        (kv64, "torn_tail"),
    );
    // Truncation at a record boundary before the final checkpoint: unsealed.
    let last = recs.len() - 1;
    assert_eq!(recs[last].0, RecordKind::Checkpoint);
    // The fault names the first record no checkpoint covers.
    let prev_cp = recs[..last]
        .iter()
        .rposition(|r| r.0 == RecordKind::Checkpoint)
        .unwrap();
    check(
        "unsealed",
        &|b| b.truncate(recs[last].1),
        (Some(prev_cp as u64 + 1), "unsealed_tail"),
    );
    // A flipped bit in a checkpoint's signature.
    let cp = recs
        .iter()
        .position(|r| r.0 == RecordKind::Checkpoint)
        .unwrap();
    check(
        "checkpoint",
        &|b| b[recs[cp].1 + recs[cp].2 - 5] ^= 1,
        (Some(cp as u64), "bad_checkpoint"),
    );
}

#[test]
fn a_forged_final_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new(3, &WEIGHTS);
    let log = sample(dir.path(), "good.log", &net, None);
    let recs = layout(&log);
    let last = recs.len() - 1;
    let mut reader = VoteLogReader::open(&log).unwrap();
    let header = *reader.header();
    let mut prev = None;
    while let Some(rec) = reader.next_record().unwrap() {
        if rec.index == last as u64 {
            prev = Some(rec.prev);
        }
    }
    let mallory = Identity::from_seed([66; 32]);
    let forged = Checkpoint::sign(&mallory, &header, last as u64, &prev.unwrap());
    let path = tampered(dir.path(), &log, "forged.log", |b| {
        let end = recs[last].1 + recs[last].2;
        b[end - 72..end].copy_from_slice(&forged.encode());
    });
    let report = verify(&net, &[path]);
    assert_eq!(first_fault(&report), (Some(last as u64), "bad_checkpoint"));
}

/// A log with the genesis roster followed by the given entries.
fn custom_log(dir: &Path, name: &str, net: &TestNet, entries: &[LogEntry]) -> PathBuf {
    let path = dir.join(name);
    let identity = Arc::new(Identity::from_seed(net.seed_of(0)));
    let mut w = VoteLogWriter::create(&path, net.roster.network_id(), identity, options()).unwrap();
    let genesis = LogEntry::Roster(RosterEpoch {
        roster: net.roster.clone(),
        certificate: None,
        attempt: 0,
    });
    append_entry(&mut w, &genesis).unwrap();
    for e in entries {
        append_entry(&mut w, e).unwrap();
    }
    w.close().unwrap();
    path
}

#[test]
fn impostors_outsiders_and_short_certificates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new(4, &WEIGHTS);
    let round = net.round(VoteKind::ByzantineQuorum, 1);
    let honest = LogEntry::Vote(net.vote(0, round, value(1)));

    // Member 1's name on a vote signed by member 0.
    let vote = Vote {
        round,
        value: value(1),
        voter: net.identities[1].id(),
    };
    let impostor = SignedVote {
        vote,
        signature: net.identities[0].sign(&vote.sign_bytes()),
    };
    let path = custom_log(
        dir.path(),
        "impostor.log",
        &net,
        &[honest.clone(), LogEntry::Vote(impostor)],
    );
    assert_eq!(
        first_fault(&verify(&net, &[path])),
        (Some(2), "bad_signature")
    );

    let outsider = TestNet::new(5, &[1]);
    let stranger = outsider.vote(0, round, value(1));
    let path = custom_log(
        dir.path(),
        "outsider.log",
        &net,
        &[honest.clone(), LogEntry::Vote(stranger)],
    );
    assert_eq!(
        first_fault(&verify(&net, &[path])),
        (Some(2), "vote_refused")
    );

    let votes: Vec<_> = (0..3)
        .map(|i| verify_vote(&net.roster, &net.vote(i, round, value(1))).unwrap())
        .collect();
    let short = Certificate::from_votes(round, value(1), &votes);
    let path = custom_log(
        dir.path(),
        "short.log",
        &net,
        &[honest, LogEntry::Certificate(short)],
    );
    assert_eq!(
        first_fault(&verify(&net, &[path])),
        (Some(2), "bad_certificate")
    );
}

#[test]
fn equivocation_across_logs_is_redetected_and_forgeries_never_flag_the_honest() {
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new(6, &WEIGHTS);
    let round = net.round(VoteKind::ByzantineQuorum, 9);
    let a = custom_log(
        dir.path(),
        "a.log",
        &net,
        &[LogEntry::Vote(net.vote(3, round, value(1)))],
    );
    let b = custom_log(
        dir.path(),
        "b.log",
        &net,
        &[LogEntry::Vote(net.vote(3, round, value(2)))],
    );
    let report = verify(&net, &[a.clone(), b]);
    assert_eq!(report.verdict(), Verdict::Valid);
    assert_eq!(report.flagged.len(), 1);
    assert_eq!(report.flagged[0].id, net.identities[3].id());
    assert_eq!(report.flagged[0].sources, vec![FlagSource::Redetected]);

    // A forged conflicting vote (bad signature) in another log flags nobody.
    let mut forged = net.vote(3, round, value(2));
    forged.signature[10] ^= 1;
    let c = custom_log(dir.path(), "c.log", &net, &[LogEntry::Vote(forged)]);
    let report = verify(&net, &[a, c]);
    assert_eq!(report.verdict(), Verdict::Invalid);
    assert!(report.logs[0].is_valid());
    assert!(report.flagged.is_empty(), "{:?}", report.flagged);
}

#[test]
fn empty_header_only_and_foreign_logs() {
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new(7, &WEIGHTS);
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(first_fault(&verify(&net, &[empty])), (None, "empty_file"));

    let log = sample(dir.path(), "good.log", &net, None);
    let header_only = tampered(dir.path(), &log, "header.log", |b| b.truncate(82));
    let report = verify(&net, &[header_only]);
    assert_eq!(report.verdict(), Verdict::Valid, "{report:#?}");
    assert_eq!(report.logs[0].counts.records, 0);

    let other = TestNet::new(8, &WEIGHTS);
    let report = verify(&other, &[log]);
    assert_eq!(first_fault(&report), (None, "wrong_network"));

    let report = verify(&net, &[dir.path().join("missing.log")]);
    assert_eq!(report.verdict(), Verdict::IoError);
}

fn roster_file(dir: &Path, net: &TestNet) -> PathBuf {
    let path = dir.join("roster.toml");
    fedmesh::store::genesis::write_roster_file(&path, &net.roster, true).unwrap();
    path
}

fn fedmesh(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fedmesh"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_cli_exit_codes_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new(9, &WEIGHTS);
    let roster = roster_file(dir.path(), &net);
    let good = sample(dir.path(), "good.log", &net, Some(1));
    let bad = tampered(dir.path(), &good, "bad.log", |b| {
        let n = b.len();
        b.truncate(n - 10)
    });
    let os = |p: &Path| p.as_os_str().to_owned();

    let out = fedmesh(&[
        "verify".as_ref(),
        &os(&good),
        "--roster".as_ref(),
        &os(&roster),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("result: VALID"), "{stdout}");
    assert!(stdout.contains("signers flagged: 1"), "{stdout}");

    let out = fedmesh(&[
        "verify".as_ref(),
        "--json".as_ref(),
        &os(&good),
        &os(&bad),
        "--roster".as_ref(),
        &os(&roster),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["logs"][0]["fault"], serde_json::Value::Null);
    assert_eq!(json["logs"][1]["fault"]["code"], "torn_tail");
    assert_eq!(json["flagged"][0]["id"], net.identities[1].id().to_string());

    let out = fedmesh(&[
        "verify".as_ref(),
        &os(&dir.path().join("nope.log")),
        "--roster".as_ref(),
        &os(&roster),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = fedmesh(&["verify".as_ref(), &os(&good)]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing --roster is a usage error"
    );
    let out = fedmesh(&[
        "verify".as_ref(),
        &os(&good),
        "--roster".as_ref(),
        &os(&good),
    ]);
    assert_eq!(out.status.code(), Some(2), "a log is not a roster");
    assert!(String::from_utf8_lossy(&out.stderr).contains("roster"));
}

/// Epoch 1 certified in voting attempt `attempt` by members `voters`.
fn epoch_one(net: &TestNet, attempt: u32, claimed: u32, voters: &[usize]) -> RosterEpoch {
    use fedmesh::proto::roster_sync::RosterChange;
    let change = RosterChange::SetWeight {
        id: net.identities[0].id(),
        weight: 7,
    };
    let roster = Arc::new(change.apply(&net.roster).unwrap());
    let round = RosterEpoch::change_round(&net.roster, attempt);
    let value = RosterEpoch::change_value(&roster);
    let votes: Vec<_> = voters
        .iter()
        .map(|i| verify_vote(&net.roster, &net.vote(*i, round, value)).unwrap())
        .collect();
    RosterEpoch {
        roster,
        certificate: Some(Certificate::from_votes(round, value, &votes)),
        attempt: claimed,
    }
}

#[test]
fn roster_epochs_are_verified_with_their_attempt_and_then_weigh_votes() {
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new(6, &WEIGHTS);
    let e1 = epoch_one(&net, 2, 2, &[0, 1, 2, 3]);
    // A vote counted with epoch 1's weights.
    let round = fedmesh::proto::vote::Round {
        epoch: 1,
        ..net.round(VoteKind::ByzantineQuorum, 9)
    };
    let later = LogEntry::Vote(net.vote(0, round, value(3)));
    let path = custom_log(
        dir.path(),
        "epochs.log",
        &net,
        &[LogEntry::Roster(e1), later],
    );
    let report = verify(&net, &[path]);
    assert!(report.logs[0].fault.is_none(), "{:?}", report.logs[0].fault);

    // The same votes claimed for another attempt, or too few of them.
    for (name, e) in [
        ("attempt.log", epoch_one(&net, 2, 1, &[0, 1, 2, 3])),
        ("short.log", epoch_one(&net, 0, 0, &[0, 1, 2])),
    ] {
        let path = custom_log(dir.path(), name, &net, &[LogEntry::Roster(e)]);
        assert_eq!(
            first_fault(&verify(&net, &[path])),
            (Some(1), "bad_roster"),
            "{name}"
        );
    }
}
