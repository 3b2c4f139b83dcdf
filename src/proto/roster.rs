//! Rosters: the members of a federation and their voting weights, one per epoch.
//!
//! Canonical encoding (big-endian):
//! `tag_len:u8=17 | "fedmesh/roster/v1" | network_id:32 | epoch:u64 | network_name:str16 |
//! member_count:u32 | member*`, each member `id:32 | weight:u64 | name:str16`, members
//! sorted by id ascending. For the genesis roster (epoch 0) the `network_id` field is 32
//! zero bytes, and the network id is BLAKE3 of that encoding. Later epochs carry the
//! network id they belong to.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;

use super::bytes32::{Digest, NetworkId};
use super::codec::{DecodeError, Reader, Writer, tags};
use super::identity::{ClusterId, IdentityError};

/// Longest cluster or network name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most members a roster may hold (bounds certificate and log record sizes).
pub const MAX_MEMBERS: usize = 4096;

/// One member of a roster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// The member's cluster id (public key).
    pub id: ClusterId,
    /// A human name, unique in the roster.
    pub name: String,
    /// Voting weight; 0 makes the member an observer.
    pub weight: u64,
}

/// Why a roster is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// No members, or all members have weight 0.
    #[error("roster total weight is zero: a quorum could never be formed")]
    ZeroTotal,
    /// The weights add up to more than u64::MAX.
    #[error("roster weights overflow u64")]
    WeightOverflow,
    /// Two members share an id.
    #[error("cluster {0} is listed twice")]
    DuplicateId(ClusterId),
    /// Two members share a name.
    #[error("name {0:?} is used by two members")]
    DuplicateName(String),
    /// A name is empty, too long or uses characters outside `[A-Za-z0-9._-]`.
    #[error("invalid name {0:?}: use 1-64 characters from A-Z a-z 0-9 . _ -")]
    BadName(String),
    /// More than [`MAX_MEMBERS`] members.
    #[error("roster has {0} members, at most {MAX_MEMBERS} are allowed")]
    TooManyMembers(usize),
    /// A member's key is not usable.
    #[error(transparent)]
    BadKey(#[from] IdentityError),
    /// The encoding does not parse.
    #[error("malformed roster encoding: {0}")]
    Decode(#[from] DecodeError),
    /// The members in an encoding are not sorted by id.
    #[error("roster encoding is not canonical: members not sorted by id")]
    NotCanonical,
}

/// A validated roster: every key canonical and strong, names unique, total weight positive.
#[derive(Debug, Clone)]
pub struct Roster {
    network_name: String,
    network_id: NetworkId,
    epoch: u64,
    members: Vec<Member>,
    index: HashMap<ClusterId, (usize, VerifyingKey)>,
    total: u64,
}

/// Checks a cluster or network name.
pub fn validate_name(name: &str) -> Result<(), RosterError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RosterError::BadName(name.to_owned()))
    }
}

impl Roster {
    /// The genesis roster (epoch 0) of a new network; its hash becomes the network id.
    pub fn genesis(network_name: &str, members: Vec<Member>) -> Result<Self, RosterError> {
        let mut r = Self::build(network_name, NetworkId::default(), 0, members)?;
        r.network_id = NetworkId(Digest::of(&r.encode()).0);
        Ok(r)
    }

    /// A roster for `epoch` of an existing network (validity of the change is
    /// checked by whoever accepts it, against the previous epoch's weights).
    pub fn for_epoch(
        network_name: &str,
        network_id: NetworkId,
        epoch: u64,
        members: Vec<Member>,
    ) -> Result<Self, RosterError> {
        if epoch == 0 {
            return Self::genesis(network_name, members);
        }
        Self::build(network_name, network_id, epoch, members)
    }

    fn build(
        network_name: &str,
        network_id: NetworkId,
        epoch: u64,
        mut members: Vec<Member>,
    ) -> Result<Self, RosterError> {
        validate_name(network_name)?;
        if members.len() > MAX_MEMBERS {
            return Err(RosterError::TooManyMembers(members.len()));
        }
        members.sort_by_key(|m| m.id);
        let mut index = HashMap::with_capacity(members.len());
        let mut names = std::collections::HashSet::with_capacity(members.len());
        let mut total: u64 = 0;
        for (i, m) in members.iter().enumerate() {
            validate_name(&m.name)?;
            if !names.insert(m.name.as_str()) {
                return Err(RosterError::DuplicateName(m.name.clone()));
            }
            let key = m.id.verifying_key()?;
            if index.insert(m.id, (i, key)).is_some() {
                return Err(RosterError::DuplicateId(m.id));
            }
            total = total
                .checked_add(m.weight)
                .ok_or(RosterError::WeightOverflow)?;
        }
        if total == 0 {
            return Err(RosterError::ZeroTotal);
        }
        Ok(Roster {
            network_name: network_name.to_owned(),
            network_id,
            epoch,
            members,
            index,
            total,
        })
    }

    /// The canonical encoding described in the module docs.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + self.members.len() * 64);
        let id_field = if self.epoch == 0 {
            NetworkId::default()
        } else {
            self.network_id
        };
        w.tag(tags::ROSTER)
            .raw(&id_field.0)
            .u64(self.epoch)
            .str16(&self.network_name)
            .u32(self.members.len() as u32);
        for m in &self.members {
            w.raw(&m.id.0).u64(m.weight).str16(&m.name);
        }
        w.finish()
    }

    /// Reads a canonical encoding from `r` and validates it.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, RosterError> {
        r.expect_tag(tags::ROSTER)?;
        let network_id = NetworkId(r.array()?);
        let epoch = r.u64()?;
        let network_name = r.str16("network name")?;
        let n = r.count(32 + 8 + 2)?;
        let mut members = Vec::with_capacity(n.min(MAX_MEMBERS));
        for _ in 0..n {
            let id = ClusterId(r.array()?);
            let weight = r.u64()?;
            let name = r.str16("member name")?;
            if members.last().is_some_and(|m: &Member| m.id >= id) {
                return Err(RosterError::NotCanonical);
            }
            members.push(Member { id, name, weight });
        }
        if epoch == 0 && network_id != NetworkId::default() {
            return Err(
                DecodeError::invalid("network id", "must be zero in a genesis roster").into(),
            );
        }
        Self::for_epoch(&network_name, network_id, epoch, members)
    }

    /// Decodes exactly one canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, RosterError> {
        let mut r = Reader::new(bytes);
        let roster = Self::read(&mut r)?;
        r.finish()?;
        Ok(roster)
    }

    /// The network's name.
    pub fn network_name(&self) -> &str {
        &self.network_name
    }

    /// The network id.
    pub fn network_id(&self) -> NetworkId {
        self.network_id
    }

    /// This roster's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Members sorted by id.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Sum of all weights (never zero).
    pub fn total_weight(&self) -> u64 {
        self.total
    }

    /// The member with id `id`.
    pub fn member(&self, id: &ClusterId) -> Option<&Member> {
        self.index.get(id).map(|(i, _)| &self.members[*i])
    }

    /// The weight of `id`, if it is a member.
    pub fn weight(&self, id: &ClusterId) -> Option<u64> {
        self.member(id).map(|m| m.weight)
    }

    /// The member's validated verifying key (decompressed once, at load).
    pub fn key(&self, id: &ClusterId) -> Option<&VerifyingKey> {
        self.index.get(id).map(|(_, k)| k)
    }

    /// The member named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::identity::Identity;

    fn member(seed: u8, name: &str, weight: u64) -> Member {
        Member {
            id: Identity::from_seed([seed; 32]).id(),
            name: name.into(),
            weight,
        }
    }

    #[test]
    fn genesis_id_is_independent_of_member_order_and_round_trips() {
        let a = Roster::genesis("net", vec![member(1, "a", 1), member(2, "b", 2)]).unwrap();
        let b = Roster::genesis("net", vec![member(2, "b", 2), member(1, "a", 1)]).unwrap();
        assert_eq!(a.network_id(), b.network_id());
        assert_eq!(a.network_id().0, *blake3::hash(&a.encode()).as_bytes());
        let back = Roster::decode(&a.encode()).unwrap();
        assert_eq!(back.network_id(), a.network_id());
        assert_eq!(back.total_weight(), 3);
        let c = Roster::genesis("net", vec![member(1, "a", 1), member(2, "b", 3)]).unwrap();
        assert_ne!(a.network_id(), c.network_id());
    }

    #[test]
    fn invalid_rosters_are_refused() {
        assert_eq!(
            Roster::genesis("n", vec![member(1, "a", 0)]).unwrap_err(),
            RosterError::ZeroTotal
        );
        assert_eq!(
            Roster::genesis("n", vec![member(1, "a", u64::MAX), member(2, "b", 1)]).unwrap_err(),
            RosterError::WeightOverflow
        );
        assert!(matches!(
            Roster::genesis("n", vec![member(1, "a", 1), member(1, "b", 1)]),
            Err(RosterError::DuplicateId(_))
        ));
        assert!(matches!(
            Roster::genesis("n", vec![member(1, "a", 1), member(2, "a", 1)]),
            Err(RosterError::DuplicateName(_))
        ));
        assert!(matches!(
            Roster::genesis("bad name", vec![member(1, "a", 1)]),
            Err(RosterError::BadName(_))
        ));
        let mut weak = member(1, "a", 1);
        weak.id = ClusterId({
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        });
        assert!(matches!(
            Roster::genesis("n", vec![weak]),
            Err(RosterError::BadKey(IdentityError::Weak(_)))
        ));
    }

    #[test]
    fn malformed_encodings_are_refused() {
        let r = Roster::genesis("net", vec![member(1, "a", 1), member(2, "b", 2)]).unwrap();
        let bytes = r.encode();
        assert!(Roster::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(Roster::decode(&long).is_err());
        // Swap the two members: same content, non-canonical order.
        let unsorted = Roster {
            members: r.members().iter().rev().cloned().collect(),
            ..r.clone()
        };
        assert_eq!(
            Roster::decode(&unsorted.encode()).unwrap_err(),
            RosterError::NotCanonical
        );
    }
}
