//! The worked example of docs/vote-log.md, pinned byte for byte, and an
//! encoder written from the document alone (raw BLAKE3 and ed25519, none of
//! this module's code) that must produce the same bytes. If either test
//! fails, the document and the code disagree.

use ed25519_dalek::{Signer, SigningKey};

use super::*;

/// The example log of docs/vote-log.md: network id 0x11 x 32, node key
/// from seed 0x01 x 32, one vote record with body "vote-1", closed (sealed
/// by a checkpoint). ed25519 signatures are deterministic, so every byte is fixed.
const EXAMPLE_HEX: &str = concat!(
    // header: magic, version, network id, node id
    "6665646d6573682d766f74656c6f670a0001",
    "1111111111111111111111111111111111111111111111111111111111111111",
    "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
    // record 0: len, seq, kind (vote), prev = h_0, body
    "0000002f000000000000000001",
    "33a940ed39a6f61be6b4082d09120561a50f465ccce90ab89a368aaa144dd50e",
    "766f74652d31",
    // record 1: len, seq, kind (checkpoint), prev = h_1, size, signature
    "00000071000000000000000105",
    "e0d9b97f02c57b532caf028cdd47ac233f646c296a096eaec8cf084aa85c8ea4",
    "0000000000000001",
    "10b02bbd73993d8d0c7754e5296c8f760af4bf83e5d0fcfcf1aed93131eabc6d",
    "91cfd77416c824dd56345b38681d9d4b0f015ae47ab908b8bd23039295d58007",
);

fn example_log() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.log");
    let id = Arc::new(Identity::from_seed([1; 32]));
    let mut w = VoteLogWriter::create(&path, NetworkId([0x11; 32]), id, every(1024)).unwrap();
    w.append(RecordKind::Vote, b"vote-1").unwrap();
    w.close().unwrap();
    std::fs::read(&path).unwrap()
}

fn tagged(tag: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&[tag.len() as u8]);
    h.update(tag);
    for p in parts {
        h.update(p);
    }
    *h.finalize().as_bytes()
}

/// Writes a log from the description in docs/vote-log.md only.
fn independent_log(network: [u8; 32], seed: [u8; 32], records: &[(u8, &[u8])]) -> Vec<u8> {
    let key = SigningKey::from_bytes(&seed);
    let node = key.verifying_key().to_bytes();
    let mut out = Vec::new();
    out.extend(b"fedmesh-votelog\n");
    out.extend(1u16.to_be_bytes());
    out.extend(network);
    out.extend(node);
    let mut prev = tagged(b"fedmesh/log-genesis/v1", &[&out]);
    let mut push = |out: &mut Vec<u8>, seq: u64, kind: u8, body: &[u8]| {
        out.extend((41 + body.len() as u32).to_be_bytes());
        out.extend(seq.to_be_bytes());
        out.push(kind);
        out.extend(prev);
        out.extend(body);
        prev = tagged(
            b"fedmesh/log-record/v1",
            &[&seq.to_be_bytes(), &[kind], &prev, body],
        );
        prev
    };
    let mut seq = 0u64;
    for (kind, body) in records {
        push(&mut out, seq, *kind, body);
        seq += 1;
    }
    // The closing checkpoint over the `seq` records before it.
    let head = if seq == 0 {
        tagged(b"fedmesh/log-genesis/v1", &[&out[..82]])
    } else {
        last_hash(&out)
    };
    let mut msg = vec![21u8];
    msg.extend(b"fedmesh/checkpoint/v1");
    msg.extend(network);
    msg.extend(node);
    msg.extend(seq.to_be_bytes());
    msg.extend(head);
    let mut body = seq.to_be_bytes().to_vec();
    body.extend(key.sign(&msg).to_bytes());
    push(&mut out, seq, 5, &body);
    out
}

/// Recomputes the hash of the last record by walking the framing.
fn last_hash(log: &[u8]) -> [u8; 32] {
    let mut at = 82;
    let mut last = [0u8; 32];
    while at < log.len() {
        let len = u32::from_be_bytes(log[at..at + 4].try_into().unwrap()) as usize;
        let rec = &log[at + 4..at + 4 + len];
        last = tagged(b"fedmesh/log-record/v1", &[&rec[..41], &rec[41..]]);
        at += 4 + len;
    }
    last
}

#[test]
fn the_documented_example_is_what_the_writer_writes() {
    let bytes = example_log();
    assert_eq!(bytes.len(), 250);
    assert_eq!(hex::encode(&bytes), EXAMPLE_HEX);
    let (records, summary) = read_all(&bytes);
    assert_eq!(records.len(), 2);
    assert_eq!(
        summary.head.to_string(),
        "a95e03554f1e9c63f0a0428f7fa693a3ea5b0953a4f9fd7dbb89e39993627488"
    );
    assert!(summary.sealed);
}

#[test]
fn an_independent_encoder_writes_the_same_bytes() {
    let bytes = example_log();
    let independent = independent_log([0x11; 32], [1; 32], &[(1, b"vote-1")]);
    assert_eq!(hex::encode(&independent), hex::encode(&bytes));

    // And on a longer log with every kind and an empty body.
    let fx = fixture();
    let mut w = fx.create(every(1024));
    let items: Vec<(RecordKind, Vec<u8>)> = (0..9).map(item).collect();
    for (kind, body) in &items {
        w.append(*kind, body).unwrap();
    }
    w.close().unwrap();
    let raw: Vec<(u8, &[u8])> = items.iter().map(|(k, b)| (k.as_u8(), &b[..])).collect();
    let independent = independent_log(fx.network.0, [42; 32], &raw);
    assert_eq!(hex::encode(&independent), hex::encode(fx.bytes()));
}
