//! The link policy: which clusters this node may hold a link with at all.
//! Operators (and tests) use it to shape the topology; everything else
//! reaches other clusters through routing.

use std::collections::BTreeSet;

use crate::proto::identity::ClusterId;

/// Which peers may be linked. The default allows every member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkPolicy {
    /// `Some`: only these clusters are dialed or accepted.
    pub allowed_peers: Option<BTreeSet<ClusterId>>,
}

impl LinkPolicy {
    /// Only `peers` may be linked.
    pub fn only(peers: impl IntoIterator<Item = ClusterId>) -> Self {
        LinkPolicy {
            allowed_peers: Some(peers.into_iter().collect()),
        }
    }

    /// True if a link with `peer` may be dialed or accepted.
    pub fn allows(&self, peer: &ClusterId) -> bool {
        self.allowed_peers
            .as_ref()
            .is_none_or(|set| set.contains(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_allows_everyone_a_list_only_its_members() {
        let (a, b) = (ClusterId([1; 32]), ClusterId([2; 32]));
        assert!(LinkPolicy::default().allows(&a));
        let p = LinkPolicy::only([a]);
        assert!(p.allows(&a));
        assert!(!p.allows(&b));
    }
}
