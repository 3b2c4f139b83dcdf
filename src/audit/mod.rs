//! Offline verification of vote logs (`fedmesh verify`): structure and chain
//! (by the log reader), every signature in parallel, every certificate's
//! tally, roster epochs, and re-detection of every equivocation.

mod checker;
mod run;
mod sigbatch;

pub use checker::{Auditor, Counts, Fault, FlagSource, LogAudit};
pub use run::{FlaggedSigner, LogReport, Verdict, VerifyOptions, VerifyReport, verify_logs};
pub use sigbatch::{BadSignature, SigBatch};
