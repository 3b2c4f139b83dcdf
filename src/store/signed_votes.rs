//! Durable vote safety: the vote this node signed for each slot, so that it
//! never signs a second value for a slot, even across a crash.
//!
//! Table `signed_votes`: key = the slot, `network_id:32 | epoch:u64 | kind:u8
//! | subject:32 | voter:32` (105 bytes), value = the attested vote's
//! canonical encoding (`AttestedVote::encode`).
//!
//! Crash safety: [`SignedVoteStore::remember`] (and the node's group commit,
//! through [`remember_in`]) commits with redb's default
//! durability (fsync before returning) and the `VoteSigner` returns a signed
//! batch only after `remember` succeeded, so a vote can only be sent once it
//! is on disk. A crash after the commit and before the send leaves a vote
//! that was never sent; after restart the same value is returned again for
//! that slot and a different value is still refused.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::delivery_error::DeliveryStoreError;
use crate::proto::codec::Writer;
use crate::proto::delivery::{AttestedVote, SignedVoteRecord};
use crate::proto::vote::Slot;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("signed_votes");

fn slot_key(s: &Slot) -> Vec<u8> {
    let mut w = Writer::with_capacity(105);
    w.raw(&s.round.network_id.0)
        .u64(s.round.epoch)
        .u8(s.round.kind as u8)
        .raw(&s.round.subject.0)
        .raw(&s.voter.0);
    w.finish()
}

/// Adds `votes` to the record inside `txn` (durable when it commits); a
/// slot already present keeps its first vote.
pub(super) fn remember_in(
    txn: &redb::WriteTransaction,
    votes: &[AttestedVote],
) -> Result<(), DeliveryStoreError> {
    if votes.is_empty() {
        return Ok(());
    }
    let mut t = txn.open_table(TABLE)?;
    for v in votes {
        let k = slot_key(&v.vote.slot());
        if t.get(k.as_slice())?.is_none() {
            t.insert(k.as_slice(), v.encode().as_slice())?;
        }
    }
    Ok(())
}

/// The signed-vote record in a redb database.
#[derive(Debug, Clone, Copy)]
pub struct SignedVoteStore<'a> {
    db: &'a Database,
}

/// The outcome of [`SignedVoteStore::put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The vote is now stored (or the identical vote already was).
    Stored,
    /// Another value is already stored for the slot; nothing was written.
    SlotTaken,
}

impl<'a> SignedVoteStore<'a> {
    /// The record in `db` (the table is created on first write).
    pub fn new(db: &'a Database) -> Self {
        SignedVoteStore { db }
    }

    /// Creates the table so that readers never see it missing.
    pub fn create_table(&self) -> Result<(), DeliveryStoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(TABLE)?;
        txn.commit()?;
        Ok(())
    }

    /// Stores one vote durably unless the slot already holds a different
    /// vote (check and insert in one transaction).
    pub fn put(&self, vote: &AttestedVote) -> Result<PutOutcome, DeliveryStoreError> {
        let key = slot_key(&vote.vote.slot());
        let bytes = vote.encode();
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(TABLE)?;
            if let Some(old) = t.get(key.as_slice())? {
                return Ok(if old.value() == bytes.as_slice() {
                    PutOutcome::Stored
                } else {
                    PutOutcome::SlotTaken
                });
            }
            t.insert(key.as_slice(), bytes.as_slice())?;
        }
        txn.commit()?;
        Ok(PutOutcome::Stored)
    }

    /// Every stored vote, in slot order.
    pub fn all(&self) -> Result<Vec<AttestedVote>, DeliveryStoreError> {
        let txn = self.db.begin_read()?;
        let t = match txn.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for item in t.iter()? {
            let (_, v) = item?;
            out.push(
                AttestedVote::decode(v.value()).map_err(|e| DeliveryStoreError::Corrupt {
                    table: "signed_votes",
                    reason: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }
}

impl SignedVoteRecord for SignedVoteStore<'_> {
    type Error = DeliveryStoreError;

    fn previous(&self, slot: &Slot) -> Result<Option<AttestedVote>, DeliveryStoreError> {
        let txn = self.db.begin_read()?;
        let t = match txn.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(v) = t.get(slot_key(slot).as_slice())? else {
            return Ok(None);
        };
        let vote = AttestedVote::decode(v.value()).map_err(|e| DeliveryStoreError::Corrupt {
            table: "signed_votes",
            reason: e.to_string(),
        })?;
        if vote.vote.slot() != *slot {
            return Err(DeliveryStoreError::Corrupt {
                table: "signed_votes",
                reason: "stored vote is for another slot".into(),
            });
        }
        Ok(Some(vote))
    }

    /// Records new votes in one durable commit; a slot already present keeps
    /// its first vote (the signer never asks to overwrite one).
    fn remember(&mut self, votes: &[AttestedVote]) -> Result<(), DeliveryStoreError> {
        let txn = self.db.begin_write()?;
        remember_in(&txn, votes)?;
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::delivery::VoteSigner;
    use crate::proto::identity::Identity;
    use crate::proto::vote::VoteKind;
    use crate::testkit::{TestNet, value};

    #[test]
    fn never_signs_a_second_value_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let net = TestNet::new(9, &[1, 1, 1]);
        let r = net.round(VoteKind::ByzantineQuorum, 1);
        let first = {
            let db = Database::create(&path).unwrap();
            let mut rec = SignedVoteStore::new(&db);
            let signer = VoteSigner::new(Identity::from_seed(net.seed_of(0)));
            let s = signer
                .sign_batch(
                    &mut rec,
                    r.network_id,
                    r.epoch,
                    r.kind,
                    &[(r.subject, value(1)), (value(50), value(2))],
                )
                .unwrap();
            assert_eq!(s.new_votes.len(), 2);
            s.new_votes[0].clone()
        };
        let db = Database::create(&path).unwrap();
        let mut rec = SignedVoteStore::new(&db);
        let signer = VoteSigner::new(Identity::from_seed(net.seed_of(0)));
        let again = signer
            .sign_batch(
                &mut rec,
                r.network_id,
                r.epoch,
                r.kind,
                &[(r.subject, value(1)), (r.subject, value(3))],
            )
            .unwrap();
        assert!(again.batch.is_none());
        assert_eq!(again.repeats, std::slice::from_ref(&first));
        assert_eq!(again.refused.len(), 1);
        first.verify(&net.roster, None).unwrap();
        assert!(signer.sign_single(&mut rec, r, value(4)).unwrap().is_err());
    }
}
