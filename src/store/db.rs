//! The node's durable database: one redb file, `fedmesh.redb` in the data
//! directory, and the outbox log in `outbox/` beside it
//! ([`super::outbox_log`]). This module owns the roster tables (epochs adopted, and the
//! roster-change votes this node signed); other modules add their own
//! tables through [`Db::database`].
//!
//! Tables:
//! - `roster_epochs`: epoch number (`u64`) → canonical roster epoch bytes;
//! - `signed_votes`: owned by [`SignedVoteStore`], shared by roster votes and
//!   delivery votes, so both follow one rule: persisted before sending, never
//!   two values for one slot.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use redb::{ReadableDatabase, TableDefinition};

use super::delivery_error::DeliveryStoreError;
use super::outbox_log::{LogOptions, OUTBOX_DIR, OutboxLog};
use super::signed_votes::{PutOutcome, SignedVoteStore};
use crate::proto::roster_epoch::RosterEpoch;
use crate::proto::vote::{SignedVote, VoteKind};

const ROSTER_EPOCHS: TableDefinition<u64, &[u8]> = TableDefinition::new("roster_epochs");

/// The database file name in the data directory.
pub const DB_FILE: &str = "fedmesh.redb";

/// Why the database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// redb failed (I/O, corruption, lock held by another process).
    #[error("database {path}: {source}")]
    Redb {
        /// The database file.
        path: PathBuf,
        /// The error.
        source: Box<redb::Error>,
    },
    /// A stored value does not decode.
    #[error("database {path}: corrupt {table} entry: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Which table.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The data directory cannot be created.
    #[error("cannot create the data directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A delivery table (shared signed votes) failed.
    #[error("database {path}: {source}")]
    Table {
        /// The database file.
        path: PathBuf,
        /// The error.
        source: DeliveryStoreError,
    },
    /// A different vote is already stored for the slot.
    #[error("refusing to store a second value for a vote slot already signed")]
    SlotTaken,
}

/// The node database, with the outbox log beside it.
#[derive(Debug)]
pub struct Db {
    db: redb::Database,
    path: PathBuf,
    /// Appended to by the commit thread, read at startup.
    outbox: Mutex<OutboxLog>,
}

impl Db {
    /// Opens (creating if needed) `fedmesh.redb` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Db, DbError> {
        std::fs::create_dir_all(data_dir).map_err(|source| DbError::Io {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let db = redb::Database::create(&path).map_err(|e| DbError::Redb {
            path: path.clone(),
            source: Box::new(e.into()),
        })?;
        // redb's file lock keeps a second process out before the log opens.
        let table_err = |source| DbError::Table {
            path: path.clone(),
            source,
        };
        let mut outbox = OutboxLog::open(&data_dir.join(OUTBOX_DIR), LogOptions::default())
            .map_err(table_err)?;
        super::delivery_state::migrate_to_log(&db, &mut outbox).map_err(table_err)?;
        let me = Db {
            db,
            path,
            outbox: Mutex::new(outbox),
        };
        // Create the tables so that readers never see them missing.
        me.write(|tx| {
            tx.open_table(ROSTER_EPOCHS)?;
            Ok(())
        })?;
        me.votes().create_table().map_err(|e| me.table_err(e))?;
        super::delivery_state::init(&me.db).map_err(|e| me.table_err(e))?;
        Ok(me)
    }

    /// The underlying database, for modules that keep their own tables.
    pub fn database(&self) -> &redb::Database {
        &self.db
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The signed-vote record (roster and delivery votes alike).
    pub fn votes(&self) -> SignedVoteStore<'_> {
        SignedVoteStore::new(&self.db)
    }

    fn table_err(&self, source: DeliveryStoreError) -> DbError {
        DbError::Table {
            path: self.path.clone(),
            source,
        }
    }

    fn err(&self, e: impl Into<redb::Error>) -> DbError {
        DbError::Redb {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, DbError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let t = f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(t)
    }

    /// Stores an adopted roster epoch (durable on return).
    pub fn put_roster_epoch(&self, e: &RosterEpoch) -> Result<(), DbError> {
        let bytes = e.encode();
        self.write(|tx| {
            tx.open_table(ROSTER_EPOCHS)?
                .insert(e.roster.epoch(), bytes.as_slice())?;
            Ok(())
        })
    }

    /// Every stored epoch after genesis, in order.
    pub fn roster_epochs(&self) -> Result<Vec<RosterEpoch>, DbError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(ROSTER_EPOCHS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in table.range(1u64..).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let e = RosterEpoch::decode(v.value()).map_err(|e| DbError::Corrupt {
                path: self.path.clone(),
                table: "roster_epochs",
                reason: e.to_string(),
            })?;
            if e.roster.epoch() != k.value() {
                return Err(DbError::Corrupt {
                    path: self.path.clone(),
                    table: "roster_epochs",
                    reason: format!("epoch {} stored under key {}", e.roster.epoch(), k.value()),
                });
            }
            out.push(e);
        }
        Ok(out)
    }

    /// Stores a vote this node signed, durably, before it is sent. Refuses a
    /// second, different value for a slot already stored.
    pub fn put_signed_vote(&self, v: &SignedVote) -> Result<(), DbError> {
        match self
            .votes()
            .put(&(*v).into())
            .map_err(|e| self.table_err(e))?
        {
            PutOutcome::Stored => Ok(()),
            PutOutcome::SlotTaken => Err(DbError::SlotTaken),
        }
    }

    /// Every quorum (delivery) vote this node signed, for
    /// `Core::with_quorum_votes` after a restart.
    pub fn quorum_votes(&self) -> Result<Vec<crate::proto::delivery::AttestedVote>, DbError> {
        Ok(self
            .votes()
            .all()
            .map_err(|e| self.table_err(e))?
            .into_iter()
            .filter(|v| v.vote.round.kind != VoteKind::RosterChange)
            .collect())
    }

    /// The data path's stored state (outbox, counters, dedup windows).
    pub fn delivery_state(&self) -> Result<crate::proto::core::DataState, DbError> {
        let log = self.outbox()?;
        super::delivery_state::load(&self.db, &log).map_err(|e| self.table_err(e))
    }

    fn outbox(&self) -> Result<MutexGuard<'_, OutboxLog>, DbError> {
        // A panic while appending leaves the memory state unknown.
        self.outbox
            .lock()
            .map_err(|_| self.table_err(DeliveryStoreError::Poisoned))
    }

    /// Makes a batch of data-path state durable (at most one redb
    /// transaction, then one outbox log append).
    pub fn commit_delivery(
        &self,
        writes: &mut super::delivery_state::DeliveryWrites,
    ) -> Result<(), DbError> {
        let mut log = self.outbox()?;
        writes
            .commit(&self.db, &mut log)
            .map_err(|e| self.table_err(e))
    }

    /// Every roster-change vote this node signed (delivery votes are read
    /// through [`Db::votes`]).
    pub fn signed_votes(&self) -> Result<Vec<SignedVote>, DbError> {
        Ok(self
            .votes()
            .all()
            .map_err(|e| self.table_err(e))?
            .iter()
            .filter(|v| v.vote.round.kind == VoteKind::RosterChange)
            .filter_map(|v| v.as_single())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{TestNet, value};

    #[test]
    fn votes_and_epochs_survive_a_reopen_and_slots_are_never_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let net = TestNet::new(1, &[1, 1]);
        let round = net.round(VoteKind::RosterChange, 1);
        let a = net.vote(0, round, value(1));
        let b = net.vote(0, round, value(2));
        {
            let db = Db::open(dir.path()).unwrap();
            db.put_signed_vote(&a).unwrap();
            db.put_signed_vote(&a).unwrap();
            assert!(matches!(db.put_signed_vote(&b), Err(DbError::SlotTaken)));
            db.put_roster_epoch(&RosterEpoch {
                roster: net.roster.clone(),
                certificate: None,
                attempt: 0,
            })
            .unwrap();
        }
        let db = Db::open(dir.path()).unwrap();
        assert_eq!(db.signed_votes().unwrap(), vec![a]);
        assert!(
            db.roster_epochs().unwrap().is_empty(),
            "genesis is not listed"
        );
    }
}
