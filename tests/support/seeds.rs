//! Seed selection and parallel multi-seed runs for simulator tests.
//! `FEDMESH_SIM_SEEDS=N` runs seeds `0..N`; `FEDMESH_SIM_SEEDS=3,17`
//! replays exactly those.

#![allow(dead_code)]

use std::sync::Mutex;

/// The seeds to run: `FEDMESH_SIM_SEEDS` (a count or a comma list), else `0..default`.
pub fn seeds(default: u64) -> Vec<u64> {
    match std::env::var("FEDMESH_SIM_SEEDS") {
        Ok(v) if v.contains(',') => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Ok(v) => (0..v.trim().parse().unwrap_or(default)).collect(),
        Err(_) => (0..default).collect(),
    }
}

/// Runs `check` for every seed on all cores; panics listing every failure.
pub fn for_seeds(seeds: Vec<u64>, check: impl Fn(u64) -> Result<(), String> + Sync) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let queue = Mutex::new(seeds);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                    let Some(seed) = next else { break };
                    if let Err(e) = check(seed) {
                        failures.lock().unwrap_or_else(|e| e.into_inner()).push(e);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    assert!(
        failures.is_empty(),
        "{} seed(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
