//! Causal order: vector clocks on messages that ask for it, and a bounded
//! hold-back buffer that delivers a message only after its causal
//! predecessors (Birman–Schiper–Stephenson causal broadcast).

mod clock;
mod holdback;

pub use clock::{ClockError, MAX_ENTRIES, Order, VClock};
pub use holdback::{CausalBuffer, CausalCounters, Delivered, Offer};
