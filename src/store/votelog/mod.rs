//! The append-only, hash-chained, checkpointed vote log (being written).
