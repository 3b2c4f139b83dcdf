//! The closing summary table.

use std::fmt;
use std::time::Duration;

/// One step's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The step's name.
    pub step: &'static str,
    /// What had to be observed.
    pub expected: String,
    /// What was observed.
    pub observed: String,
    /// Whether the expectation held.
    pub held: bool,
    /// How long the step took.
    pub elapsed: Duration,
}

/// Every step's outcome, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The outcomes.
    pub outcomes: Vec<Outcome>,
}

impl Summary {
    /// Whether every step held.
    pub fn all_held(&self) -> bool {
        !self.outcomes.is_empty() && self.outcomes.iter().all(|o| o.held)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "| step | expected | observed | held | time |")?;
        writeln!(f, "|---|---|---|---|---|")?;
        for o in &self.outcomes {
            writeln!(
                f,
                "| {} | {} | {} | {} | {:.1} s |",
                o.step,
                o.expected,
                o.observed,
                if o.held { "held" } else { "FAILED" },
                o.elapsed.as_secs_f64()
            )?;
        }
        let failed = self.outcomes.iter().filter(|o| !o.held).count();
        if self.all_held() {
            write!(f, "\nall {} steps held", self.outcomes.len())
        } else {
            write!(f, "\n{failed} of {} steps FAILED", self.outcomes.len())
        }
    }
}
