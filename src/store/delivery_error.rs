//! The error type of the delivery tables (outbox log, dedup, signed votes).

/// Why a delivery table could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryStoreError {
    /// The database failed (I/O, transaction, commit).
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    /// A stored value does not decode: the file was damaged or written by
    /// an incompatible version.
    #[error("corrupt entry in table {table}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A file of the outbox log could not be read, written or synced.
    #[error("outbox log {}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An earlier write of the outbox log failed: what is durable is known
    /// only after a restart reads the log back.
    #[error("the outbox log failed earlier; restart the node to recover")]
    Poisoned,
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for DeliveryStoreError {
            fn from(e: $t) -> Self {
                DeliveryStoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
