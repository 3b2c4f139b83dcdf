//! A roster epoch as it is recorded and gossiped: the roster, and for every
//! epoch after genesis the certificate by which the previous epoch's members
//! (more than 2/3 of its weight) accepted it.
//!
//! Encoding: `roster_len:u32 | roster (see [`Roster::encode`]) | attempt:u32 |
//! certificate` where the attempt and certificate are present only for epochs
//! after 0. The change vote for epoch N+1 is a `RosterChange` vote in epoch N
//! whose subject is [`change_subject`] (network, N+1, attempt) and whose value
//! is BLAKE3 of the new roster's encoding, so that two different rosters for
//! one epoch compete for the same slots. Attempts exist for liveness only: an
//! honest voter signs in attempt `a+1` only once signed votes prove that no
//! value can reach quorum in attempt `a` (see `proto::roster_sync`).

use std::sync::Arc;

use crate::proto::bytes32::{Digest, NetworkId};
use crate::proto::certificate::{Certificate, CertificateError};
use crate::proto::codec::{DecodeError, Reader, Writer, tags};
use crate::proto::roster::{Roster, RosterError};
use crate::proto::vote::{Round, VoteKind};

/// Why a roster epoch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterEpochError {
    /// The roster itself is invalid.
    #[error(transparent)]
    Roster(#[from] RosterError),
    /// A genesis roster differs from the network's genesis.
    #[error("genesis roster does not match network {expected}")]
    NotOurGenesis {
        /// The network expected.
        expected: NetworkId,
    },
    /// An epoch after 0 came without a change certificate, or genesis with one.
    #[error(
        "epoch {0}: a certificate is required for every epoch after 0 and forbidden for epoch 0"
    )]
    CertificatePresence(u64),
    /// The certificate is not for this change (wrong kind, epoch, subject or value).
    #[error("the certificate does not certify this roster as epoch {0}")]
    WrongCertificate(u64),
    /// The certificate does not verify against the previous epoch.
    #[error("change certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// The roster belongs to another network.
    #[error("roster belongs to another network")]
    WrongNetwork,
    /// The encoding does not parse.
    #[error("malformed roster epoch: {0}")]
    Decode(#[from] DecodeError),
}

/// The subject of the votes that accept epoch `new_epoch` of `network_id`
/// in voting attempt `attempt`.
pub fn change_subject(network_id: NetworkId, new_epoch: u64, attempt: u32) -> Digest {
    let mut w = Writer::with_capacity(72);
    w.tag(tags::ROSTER_SUBJECT)
        .raw(&network_id.0)
        .u64(new_epoch)
        .u32(attempt);
    Digest::of(&w.finish())
}

/// A roster and the proof that it is the network's roster for its epoch.
#[derive(Debug, Clone)]
pub struct RosterEpoch {
    /// The roster.
    pub roster: Arc<Roster>,
    /// The certificate of the previous epoch's members (absent for genesis).
    pub certificate: Option<Certificate>,
    /// The voting attempt the certificate belongs to (0 for genesis).
    pub attempt: u32,
}

/// Two epochs are equal when their canonical encodings are.
impl PartialEq for RosterEpoch {
    fn eq(&self, other: &Self) -> bool {
        self.encode() == other.encode()
    }
}

impl Eq for RosterEpoch {}

impl RosterEpoch {
    /// The round of `attempt` in which the successor of `previous` is voted
    /// on, under `previous`'s weights.
    pub fn change_round(previous: &Roster, attempt: u32) -> Round {
        Round {
            network_id: previous.network_id(),
            epoch: previous.epoch(),
            kind: VoteKind::RosterChange,
            subject: change_subject(previous.network_id(), previous.epoch() + 1, attempt),
        }
    }

    /// The value voters sign to accept `roster`.
    pub fn change_value(roster: &Roster) -> Digest {
        Digest::of(&roster.encode())
    }

    /// Checks a genesis epoch against the network's genesis roster.
    pub fn verify_genesis(&self, genesis: &Roster) -> Result<(), RosterEpochError> {
        if self.certificate.is_some() || self.roster.epoch() != 0 || self.attempt != 0 {
            return Err(RosterEpochError::CertificatePresence(self.roster.epoch()));
        }
        if self.roster.encode() != genesis.encode() {
            return Err(RosterEpochError::NotOurGenesis {
                expected: genesis.network_id(),
            });
        }
        Ok(())
    }

    /// Checks everything but signatures: that `self` is the successor of
    /// `previous` certified by more than 2/3 of its weight.
    pub fn verify_successor_tally(
        &self,
        previous: &Roster,
    ) -> Result<&Certificate, RosterEpochError> {
        let epoch = self.roster.epoch();
        let cert = self
            .certificate
            .as_ref()
            .ok_or(RosterEpochError::CertificatePresence(epoch))?;
        if self.roster.network_id() != previous.network_id() {
            return Err(RosterEpochError::WrongNetwork);
        }
        if epoch != previous.epoch() + 1
            || cert.round() != Self::change_round(previous, self.attempt)
            || cert.value() != Self::change_value(&self.roster)
        {
            return Err(RosterEpochError::WrongCertificate(epoch));
        }
        cert.verify_tally(previous)?;
        Ok(cert)
    }

    /// Fully verifies `self` as the successor of `previous`, signatures included.
    pub fn verify_successor(&self, previous: &Roster) -> Result<(), RosterEpochError> {
        self.verify_successor_tally(previous)?.verify(previous)?;
        Ok(())
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let roster = self.roster.encode();
        let mut w = Writer::with_capacity(roster.len() + 4);
        w.u32(roster.len() as u32).raw(&roster);
        if let Some(cert) = &self.certificate {
            w.u32(self.attempt).raw(&cert.encode());
        }
        w.finish()
    }

    /// Decodes exactly one encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, RosterEpochError> {
        let mut r = Reader::new(bytes);
        let len = r.count(1)?;
        let roster = Arc::new(Roster::decode(r.take(len)?)?);
        let (attempt, certificate) = if r.remaining() == 0 {
            (0, None)
        } else {
            let attempt = r.u32()?;
            (attempt, Some(Certificate::decode(r.take(r.remaining())?)?))
        };
        if certificate.is_some() != (roster.epoch() > 0) {
            return Err(RosterEpochError::CertificatePresence(roster.epoch()));
        }
        Ok(RosterEpoch {
            roster,
            certificate,
            attempt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::quorum::verify_vote;
    use crate::proto::roster::Member;
    use crate::testkit::TestNet;

    fn next_roster(net: &TestNet, weights: &[u64]) -> Roster {
        let members = net
            .roster
            .members()
            .iter()
            .zip(weights)
            .map(|(m, w)| Member {
                weight: *w,
                ..m.clone()
            })
            .collect();
        Roster::for_epoch("testnet", net.roster.network_id(), 1, members).unwrap()
    }

    fn certify(net: &TestNet, roster: &Roster, voters: &[usize]) -> Certificate {
        let round = RosterEpoch::change_round(&net.roster, 0);
        let value = RosterEpoch::change_value(roster);
        let votes: Vec<_> = voters
            .iter()
            .map(|i| verify_vote(&net.roster, &net.vote(*i, round, value)).unwrap())
            .collect();
        Certificate::from_votes(round, value, &votes)
    }

    #[test]
    fn a_change_needs_more_than_two_thirds_of_the_previous_weight() {
        let net = TestNet::new(1, &[1, 1, 1]);
        let next = Arc::new(next_roster(&net, &[1, 1, 5]));
        let ok = RosterEpoch {
            roster: next.clone(),
            certificate: Some(certify(&net, &next, &[0, 1, 2])),
            attempt: 0,
        };
        ok.verify_successor(&net.roster).unwrap();
        // The same votes do not certify another attempt.
        let shifted = RosterEpoch {
            attempt: 1,
            ..ok.clone()
        };
        assert_eq!(
            shifted.verify_successor(&net.roster),
            Err(RosterEpochError::WrongCertificate(1))
        );
        let back = RosterEpoch::decode(&ok.encode()).unwrap();
        back.verify_successor(&net.roster).unwrap();

        let two_thirds = RosterEpoch {
            roster: next.clone(),
            certificate: Some(certify(&net, &next, &[0, 1])),
            attempt: 0,
        };
        assert!(matches!(
            two_thirds.verify_successor(&net.roster),
            Err(RosterEpochError::Certificate(
                CertificateError::NoQuorum { .. }
            ))
        ));

        // A certificate for one roster does not certify another.
        let other = Arc::new(next_roster(&net, &[2, 1, 1]));
        let swapped = RosterEpoch {
            roster: other,
            certificate: Some(certify(&net, &next, &[0, 1, 2])),
            attempt: 0,
        };
        assert_eq!(
            swapped.verify_successor(&net.roster),
            Err(RosterEpochError::WrongCertificate(1))
        );
    }

    #[test]
    fn genesis_is_checked_against_the_network() {
        let net = TestNet::new(1, &[1, 1, 1]);
        let genesis = RosterEpoch {
            roster: net.roster.clone(),
            certificate: None,
            attempt: 0,
        };
        genesis.verify_genesis(&net.roster).unwrap();
        let other = TestNet::new(2, &[1, 1, 1]);
        assert!(matches!(
            genesis.verify_genesis(&other.roster),
            Err(RosterEpochError::NotOurGenesis { .. })
        ));
        assert!(RosterEpoch::decode(&genesis.encode()[..10]).is_err());
    }
}
