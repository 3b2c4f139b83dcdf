//! Heartbeats from peers: verified, then fed to the failure detector.

use ed25519_dalek::VerifyingKey;

use crate::proto::identity::ClusterId;
use crate::proto::membership::counters::bump;
use crate::proto::membership::heartbeat::SignedHeartbeat;
use crate::proto::membership::record::Verified;
use crate::proto::time::Millis;

use super::*;

/// Why no key is available to verify something signed by a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyMiss {
    /// Not in the roster, and the node is not open.
    NotMember,
    /// Open mode, but the id is not a valid ed25519 key.
    Invalid,
}

impl Core {
    /// The key that signs `id`'s records and heartbeats: its roster key, or
    /// (open mode only) the id itself.
    pub(super) fn gossip_key(&self, id: &ClusterId) -> Result<VerifyingKey, KeyMiss> {
        match self.roster.key(id) {
            Some(k) => Ok(*k),
            None if self.config.open => id.verifying_key().map_err(|_| KeyMiss::Invalid),
            None => Err(KeyMiss::NotMember),
        }
    }

    /// Verifies and stores each heartbeat that is newer than ours.
    pub(super) fn apply_beats(
        &mut self,
        now: Millis,
        beats: Vec<SignedHeartbeat>,
        out: &mut Vec<Output>,
    ) {
        for beat in beats {
            self.accept_beat(now, beat, out);
        }
    }

    fn accept_beat(&mut self, now: Millis, beat: SignedHeartbeat, out: &mut Vec<Output>) {
        if beat.id == self.own.id() {
            return self.own_beat_echo(now, beat, out);
        }
        // Checked before the signature, so a duplicate costs a lookup.
        if !self.table.beat_is_newer(&beat) {
            bump(&mut self.counters.heartbeats_stale);
            return;
        }
        let verified = self.gossip_key(&beat.id).ok().and_then(|key| {
            beat.verify(&self.network_id, &key, Some(&self.sigcache))
                .ok()
        });
        match verified {
            Some(Verified::Cached) => bump(&mut self.counters.signature_cache_hits),
            Some(Verified::Checked) => bump(&mut self.counters.signatures_verified),
            None => {
                bump(&mut self.counters.heartbeats_bad_signature);
                return;
            }
        }
        bump(&mut self.counters.heartbeats_applied);
        if let Some(ev) = self.table.apply_beat(beat, now) {
            out.push(Output::Event(ev));
        }
    }
}
