//! The one live link per peer. When two clusters dial each other at once,
//! both ends keep the connection dialed by the smaller cluster id, so they
//! agree without talking about it.

use std::collections::HashMap;

use crate::net::{Link, LinkId};
use crate::proto::identity::ClusterId;

/// A link and which side dialed it.
pub struct Entry {
    /// The link.
    pub link: Link,
    /// True if the peer dialed us.
    pub inbound: bool,
}

/// What to do with a freshly authenticated link.
pub enum Admit {
    /// It is the peer's only link: start it and tell the core.
    New,
    /// It replaces an older duplicate, which is returned to be closed
    /// silently (the core already knows the peer is up).
    Replaces(Entry),
    /// A better link to the peer exists: close this one.
    Duplicate,
}

/// The links by peer.
#[derive(Default)]
pub struct Links {
    by_peer: HashMap<ClusterId, Entry>,
}

impl Links {
    /// Decides about `link` to `peer`; on `New` and `Replaces` it is stored.
    pub fn admit(&mut self, me: ClusterId, link: Link, inbound: bool) -> (Admit, Option<Link>) {
        let peer = link.peer();
        let dialer = |inbound: bool| if inbound { peer } else { me };
        match self.by_peer.get(&peer) {
            Some(old) if !old.link.is_closed() => {
                if dialer(inbound) < dialer(old.inbound) {
                    let old = self.by_peer.insert(peer, Entry { link, inbound });
                    match old {
                        Some(old) => (Admit::Replaces(old), None),
                        None => (Admit::New, None),
                    }
                } else {
                    (Admit::Duplicate, Some(link))
                }
            }
            _ => {
                self.by_peer.insert(peer, Entry { link, inbound });
                (Admit::New, None)
            }
        }
    }

    /// The current link to `peer`.
    pub fn get(&self, peer: &ClusterId) -> Option<&Entry> {
        self.by_peer.get(peer)
    }

    /// Whether `id` is the current link to `peer`.
    pub fn is_current(&self, peer: &ClusterId, id: LinkId) -> bool {
        self.by_peer.get(peer).is_some_and(|e| e.link.id() == id)
    }

    /// Removes the link to `peer`.
    pub fn remove(&mut self, peer: &ClusterId) -> Option<Entry> {
        self.by_peer.remove(peer)
    }

    /// Every current link.
    pub fn iter(&self) -> impl Iterator<Item = (&ClusterId, &Entry)> {
        self.by_peer.iter()
    }
}
