//! Durable state: key and certificate files, the genesis roster file, the
//! node database, the outbox log and the vote log.

pub mod atomic;
pub mod bounded;
pub mod db;
pub mod dedup;
pub mod delivery_error;
pub mod delivery_state;
pub mod genesis;
pub mod keys;
pub mod outbox;
pub mod outbox_log;
pub mod signed_votes;
pub mod state;
pub mod votelog;
