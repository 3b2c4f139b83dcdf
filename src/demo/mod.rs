//! `fedmesh demo`: a guided walk through a multi-cluster federation on
//! 127.0.0.1 over real QUIC. Each step narrates what it shows, waits for
//! the outcome with a deadline and checks what was actually observed; the
//! summary table is the honest record and the demo succeeds only if every
//! step held.
//!
//! New steps are added by implementing [`Step`] and listing them in
//! [`steps::all`].

pub mod byzantine;
pub mod cluster;
pub mod guarantees;
pub mod progress;
pub mod steps;
pub mod summary;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

pub use cluster::Demo;
pub use summary::{Outcome, Summary};

/// What the demo runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// How many clusters (4 to 12: the multi-hop step needs a pair two
    /// links apart).
    pub clusters: usize,
    /// How many of them equivocate in the Byzantine step.
    pub byzantine: usize,
    /// Where keys, the roster, node data and vote logs go; `None`: a new
    /// directory under the system temp dir (printed).
    pub out: Option<PathBuf>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            clusters: 5,
            byzantine: 1,
            out: None,
        }
    }
}

/// Why the demo could not run at all (a failed step is not an error: it
/// shows in the summary).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The options make no sense.
    #[error("invalid demo options: {0}")]
    Options(String),
    /// Setting up keys, roster or output directory failed.
    #[error("demo setup failed: {0:#}")]
    Setup(anyhow::Error),
}

/// What a step saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Whether the expected outcome held.
    pub held: bool,
    /// What was seen, in a few words.
    pub text: String,
}

impl Observed {
    /// An outcome from a check and its description.
    pub fn new(held: bool, text: impl Into<String>) -> Self {
        Self {
            held,
            text: text.into(),
        }
    }
}

/// The future a step runs as.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Observed>> + Send + 'a>>;

/// One step of the walk-through.
pub trait Step: Send + Sync {
    /// Its short name (the summary's first column).
    fn name(&self) -> &'static str;
    /// One or two sentences telling the audience what happens.
    fn narration(&self, demo: &Demo) -> String;
    /// The outcome that must be observed for the step to hold.
    fn expected(&self, demo: &Demo) -> String;
    /// How long the step may take.
    fn deadline(&self) -> Duration;
    /// Runs the step and reports what it observed.
    fn run<'a>(&'a self, demo: &'a mut Demo) -> StepFuture<'a>;
}

/// Runs the whole demo on the current tokio runtime: setup, every step of
/// [`steps::all`], shutdown; prints narration, progress and the summary.
pub async fn run(options: &DemoOptions) -> Result<Summary, DemoError> {
    let mut demo = Demo::setup(options).await?;
    let steps = steps::all();
    let mut outcomes = Vec::new();
    let total = steps.len();
    for (i, step) in steps.iter().enumerate() {
        progress::announce(i + 1, total, step.name(), &step.narration(&demo));
        let expected = step.expected(&demo);
        let started = Instant::now();
        // The step's own waits end at its deadline; this guards against one
        // that hangs anyway.
        let guard = step.deadline() + Duration::from_secs(2);
        let observed = match tokio::time::timeout(guard, step.run(&mut demo)).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => Observed::new(false, format!("error: {e:#}")),
            Err(_) => Observed::new(false, format!("no outcome within {guard:?}")),
        };
        let elapsed = started.elapsed();
        progress::result(&observed, elapsed);
        outcomes.push(Outcome {
            step: step.name(),
            expected,
            observed: observed.text,
            held: observed.held,
            elapsed,
        });
    }
    demo.shutdown().await;
    Ok(Summary { outcomes })
}

/// [`run`] on a new multi-threaded runtime, for the CLI and the example.
pub fn run_blocking(options: &DemoOptions) -> Result<Summary, DemoError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| DemoError::Setup(e.into()))?;
    runtime.block_on(run(options))
}
