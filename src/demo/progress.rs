//! Narration and the progress display on stdout.

use std::io::Write as _;
use std::time::{Duration, Instant};

use super::Observed;

/// Prints a step's heading and narration.
pub fn announce(index: usize, total: usize, name: &str, narration: &str) {
    println!("\n[{index}/{total}] {name}");
    println!("      {narration}");
}

/// Prints a step's outcome.
pub fn result(observed: &Observed, elapsed: Duration) {
    let mark = if observed.held { "held" } else { "FAILED" };
    println!(
        "      -> {mark} after {:.1} s: {}",
        elapsed.as_secs_f64(),
        observed.text
    );
}

/// Prints an informational line under the current step.
pub fn note(line: &str) {
    println!("      {line}");
}

/// Polls `condition` every 50 ms until it holds or `within` passes, printing
/// a dot per second waited; returns whether it held.
pub async fn until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    let mut dots = 0u64;
    let held = loop {
        if condition() {
            break true;
        }
        if start.elapsed() >= within {
            break condition();
        }
        let secs = start.elapsed().as_secs();
        if secs > dots {
            if dots == 0 {
                print!("      waiting ");
            }
            print!(".");
            let _ = std::io::stdout().flush();
            dots = secs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    };
    if dots > 0 {
        println!();
    }
    held
}
