//! Reading the outbox log back at startup.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Write};
use std::path::Path;

use super::record::{self, Kind, MAGIC, Next};
use super::{LogOptions, OutboxLog, corrupt, io, segment_path, sync_dir};
use crate::proto::identity::ClusterId;
use crate::store::delivery_error::DeliveryStoreError;
use crate::store::outbox;

/// Bytes cut off torn segment ends since the process started.
pub const TRUNCATED_BYTES_TOTAL: &str = "fedmesh_outbox_log_truncated_bytes_total";

/// Segment numbers in `dir`, in order; other files are left alone.
fn list(dir: &Path) -> Result<Vec<u64>, DeliveryStoreError> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        if stem.len() == 16
            && let Ok(id) = u64::from_str_radix(stem, 16)
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

pub(super) fn open(dir: &Path, options: LogOptions) -> Result<OutboxLog, DeliveryStoreError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ids = list(dir)?;
    // Replaced below by the segment appended to (the newest, or a new one);
    // an open handle keeps `OutboxLog::file` from needing an Option.
    let placeholder = File::open(dir).map_err(io(dir))?;
    let mut log = OutboxLog {
        dir: dir.to_owned(),
        options,
        file: placeholder,
        active: 0,
        active_len: 0,
        segments: BTreeMap::new(),
        live: HashMap::new(),
        next_seq: HashMap::new(),
        dedup: HashMap::new(),
        causal: HashMap::new(),
        buf: Vec::new(),
        unsynced: false,
        poisoned: false,
    };
    let Some((&last, sealed)) = ids.split_last() else {
        log.start_segment(1)?;
        return Ok(log);
    };
    for &id in sealed {
        let path = segment_path(dir, id);
        if let Some(reason) = read_segment(&mut log, id)?.broken {
            return Err(corrupt(&path, reason));
        }
    }
    let path = segment_path(dir, last);
    let read = read_segment(&mut log, last)?;
    let mut file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io(&path))?;
    let len = file.metadata().map_err(io(&path))?.len();
    if let Some(reason) = read.broken {
        // Only a crash mid-append leaves this, and nothing was told about
        // what it held: outputs wait for the sync that did not happen.
        let cut = len.saturating_sub(read.good);
        tracing::warn!(file = %path.display(), bytes = cut, %reason,
            "cutting off a torn write at the end of the outbox log");
        metrics::counter!(TRUNCATED_BYTES_TOTAL).increment(cut);
        file.set_len(read.good).map_err(io(&path))?;
        if read.good == 0 {
            file.write_all(MAGIC).map_err(io(&path))?;
        }
        file.sync_all().map_err(io(&path))?;
        sync_dir(dir)?;
    }
    log.file = file;
    log.active = last;
    log.active_len = read.good.max(MAGIC.len() as u64);
    log.segments.entry(last).or_insert(0);
    log.maintain()?;
    Ok(log)
}

/// What reading one segment found.
struct SegmentRead {
    /// Bytes of whole, intact records (with the magic).
    good: u64,
    /// Why reading stopped before the end, if it did.
    broken: Option<String>,
}

fn read_segment(log: &mut OutboxLog, id: u64) -> Result<SegmentRead, DeliveryStoreError> {
    let path = segment_path(&log.dir, id);
    let f = File::open(&path).map_err(io(&path))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut magic = [0u8; 8];
    let got = record::read_full(&mut r, &mut magic).map_err(io(&path))?;
    if got < magic.len() {
        // A segment whose creation was cut short.
        return Ok(SegmentRead {
            good: 0,
            broken: Some(format!("{got} bytes, no header")),
        });
    }
    if &magic != MAGIC {
        return Err(corrupt(&path, "not an outbox log segment (bad magic)"));
    }
    log.segments.entry(id).or_insert(0);
    let mut good = MAGIC.len() as u64;
    loop {
        let (kind, body) = match record::read_next(&mut r).map_err(io(&path))? {
            Next::End => return Ok(SegmentRead { good, broken: None }),
            Next::Broken(reason) => {
                return Ok(SegmentRead {
                    good,
                    broken: Some(format!("at offset {good}: {reason}")),
                });
            }
            Next::Record(kind, body) => (kind, body),
        };
        let len = record::HEAD_LEN + 1 + body.len();
        let bad = |what: &str| corrupt(&path, format!("{what} record at offset {good}"));
        match kind {
            Kind::Add => {
                let (dests, envelope) = outbox::split_entry(&body, "outbox log")?;
                let key = outbox::envelope_key(envelope, "outbox log")?;
                log.note_add(key, id, good, len, dests);
            }
            Kind::Ack => {
                let (key, dest) = record::read_ack(&body).ok_or_else(|| bad("bad ack"))?;
                log.note_ack(&key, &dest);
            }
            Kind::Counters => {
                let next: Vec<(ClusterId, u64)> =
                    record::read_counters(&body).ok_or_else(|| bad("bad counters"))?;
                log.note_counters(&next);
            }
            Kind::Dedup => {
                let (origin, window) = record::read_dedup(&body).ok_or_else(|| bad("bad dedup"))?;
                log.dedup.insert(origin, window);
            }
            Kind::Causal => {
                let (topic, clock) = record::read_causal(&body).ok_or_else(|| bad("bad causal"))?;
                log.causal.insert(topic, clock);
            }
        }
        good += len as u64;
    }
}
