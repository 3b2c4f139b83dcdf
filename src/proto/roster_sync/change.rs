//! The operator-level change a proposal applies to the current roster.

use crate::proto::identity::ClusterId;
use crate::proto::roster::{Member, Roster, RosterError};

/// One change to the roster: the successor epoch is the current roster with
/// this change applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum RosterChange {
    /// Add a cluster.
    Add {
        /// Its id (public key).
        id: ClusterId,
        /// Its voting weight.
        weight: u64,
        /// Its unique name.
        name: String,
    },
    /// Remove a cluster.
    Remove {
        /// Its id.
        id: ClusterId,
    },
    /// Change a cluster's weight.
    SetWeight {
        /// Its id.
        id: ClusterId,
        /// The new weight.
        weight: u64,
    },
}

/// Why a change cannot be applied to a roster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// `add` of a cluster that is already a member.
    #[error("cluster {0} is already a member")]
    AlreadyMember(ClusterId),
    /// `remove`/`set-weight` of a cluster that is not a member.
    #[error("cluster {0} is not a member")]
    NotAMember(ClusterId),
    /// The change would leave the roster as it is.
    #[error("the change leaves the roster unchanged")]
    NoChange,
    /// The resulting roster is invalid.
    #[error(transparent)]
    Roster(#[from] RosterError),
    /// The epoch counter is exhausted.
    #[error("roster epoch counter exhausted")]
    EpochExhausted,
}

impl RosterChange {
    /// The successor of `current` with this change applied.
    pub fn apply(&self, current: &Roster) -> Result<Roster, ChangeError> {
        let mut members = current.members().to_vec();
        match self {
            RosterChange::Add { id, weight, name } => {
                if current.member(id).is_some() {
                    return Err(ChangeError::AlreadyMember(*id));
                }
                members.push(Member {
                    id: *id,
                    name: name.clone(),
                    weight: *weight,
                });
            }
            RosterChange::Remove { id } => {
                if current.member(id).is_none() {
                    return Err(ChangeError::NotAMember(*id));
                }
                members.retain(|m| m.id != *id);
            }
            RosterChange::SetWeight { id, weight } => {
                let m = members
                    .iter_mut()
                    .find(|m| m.id == *id)
                    .ok_or(ChangeError::NotAMember(*id))?;
                if m.weight == *weight {
                    return Err(ChangeError::NoChange);
                }
                m.weight = *weight;
            }
        }
        let epoch = current
            .epoch()
            .checked_add(1)
            .ok_or(ChangeError::EpochExhausted)?;
        Ok(Roster::for_epoch(
            current.network_name(),
            current.network_id(),
            epoch,
            members,
        )?)
    }

    /// Whether `roster` already reflects this change (nothing left to propose).
    pub fn is_in_effect(&self, roster: &Roster) -> bool {
        match self {
            RosterChange::Add { id, weight, name } => roster
                .member(id)
                .is_some_and(|m| m.weight == *weight && m.name == *name),
            RosterChange::Remove { id } => roster.member(id).is_none(),
            RosterChange::SetWeight { id, weight } => roster.weight(id) == Some(*weight),
        }
    }
}
