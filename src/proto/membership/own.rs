//! This node's own record and heartbeat: its incarnation, revision and
//! heartbeat counters, the links it publishes, and the re-signing that every
//! change needs. A heartbeat signs three integers; the record is re-signed
//! (and its revision bumped) only when its content changes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::heartbeat::SignedHeartbeat;
use super::record::{LinkInfo, MAX_LINKS, NodeRecord, RecordError, SignedRecord, Version};
use crate::proto::bytes32::NetworkId;
use crate::proto::identity::{ClusterId, Identity};
use crate::proto::time::duration_micros;

/// RTT changes smaller than this fraction (in percent) of the published
/// value are not worth publishing…
const RTT_REPUBLISH_PERCENT: u64 = 25;
/// …nor changes smaller than this many microseconds.
const RTT_REPUBLISH_MIN_MICROS: u64 = 1000;

/// The state behind this node's signed record.
#[derive(Debug)]
pub struct OwnRecord {
    identity: Arc<Identity>,
    network_id: NetworkId,
    record: NodeRecord,
    beats: u64,
}

impl OwnRecord {
    /// Incarnation `previous_incarnation + 1`, revision 0, no links; returns
    /// the state and its first signed record. `None` if the incarnation
    /// counter is exhausted.
    pub fn new(
        identity: Arc<Identity>,
        network_id: NetworkId,
        roster_epoch: u64,
        addrs: Vec<SocketAddr>,
        previous_incarnation: u64,
    ) -> Option<Result<(OwnRecord, SignedRecord), RecordError>> {
        let incarnation = previous_incarnation.checked_add(1)?;
        let record = NodeRecord {
            id: identity.id(),
            incarnation,
            revision: 0,
            roster_epoch,
            left: false,
            // Only IP and port are advertised (and signed).
            addrs: addrs
                .iter()
                .map(|a| SocketAddr::new(a.ip(), a.port()))
                .collect(),
            links: Vec::new(),
            queues: Vec::new(),
            subscriptions: Vec::new(),
        };
        let mut own = OwnRecord {
            identity,
            network_id,
            record,
            beats: 0,
        };
        Some(own.sign().map(|signed| (own, signed)))
    }

    fn sign(&mut self) -> Result<SignedRecord, RecordError> {
        SignedRecord::sign(self.record.clone(), &self.identity, &self.network_id)
    }

    /// This node's id.
    pub fn id(&self) -> ClusterId {
        self.record.id
    }

    /// The incarnation in use.
    pub fn incarnation(&self) -> u64 {
        self.record.incarnation
    }

    /// The version of the latest record.
    pub fn version(&self) -> Version {
        self.record.version()
    }

    /// Publishes `epoch` as the roster epoch held, from the next signing on.
    pub fn set_roster_epoch(&mut self, epoch: u64) {
        self.record.roster_epoch = epoch;
    }

    /// The hosted queues and subscription patterns published now.
    pub fn adverts(&self) -> (&[String], &[String]) {
        (&self.record.queues, &self.record.subscriptions)
    }

    /// Replaces the hosted queues and subscription patterns (sorted and
    /// deduplicated here). Returns the re-signed record if the content
    /// changed, `None` if it did not; a list over its bound or with an invalid
    /// entry is refused and the published lists are kept.
    pub fn set_adverts(
        &mut self,
        mut queues: Vec<String>,
        mut subscriptions: Vec<String>,
    ) -> Option<Result<SignedRecord, RecordError>> {
        queues.sort();
        queues.dedup();
        subscriptions.sort();
        subscriptions.dedup();
        if queues == self.record.queues && subscriptions == self.record.subscriptions {
            return None;
        }
        let mut next = self.record.clone();
        next.queues = queues;
        next.subscriptions = subscriptions;
        next.revision = next.revision.saturating_add(1);
        if let Err(e) = next.validate() {
            return Some(Err(e));
        }
        self.record = next;
        Some(self.sign())
    }

    /// True once [`Self::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.record.left
    }

    /// The number of heartbeats signed in this incarnation.
    pub fn beats(&self) -> u64 {
        self.beats
    }

    /// Signs the next heartbeat, and a new record revision if the links
    /// changed. `links` are the live links with their RTT; they replace the
    /// published ones only if the set changed or an RTT moved by more than a
    /// quarter (and a millisecond), so that RTT noise does not make every
    /// heartbeat a content change.
    pub fn heartbeat(
        &mut self,
        links: impl IntoIterator<Item = (ClusterId, Duration)>,
    ) -> (Option<Result<SignedRecord, RecordError>>, SignedHeartbeat) {
        let mut current: Vec<(ClusterId, Duration)> = links.into_iter().collect();
        current.sort_by_key(|(id, _)| *id);
        if current.len() > MAX_LINKS {
            current.sort_by_key(|(id, rtt)| (*rtt, *id));
            current.truncate(MAX_LINKS);
            current.sort_by_key(|(id, _)| *id);
        }
        let links: Vec<LinkInfo> = current
            .into_iter()
            .map(|(peer, rtt)| LinkInfo {
                peer,
                rtt_micros: u32::try_from(duration_micros(rtt)).unwrap_or(u32::MAX),
            })
            .collect();
        let record = links_changed(&self.record.links, &links).then(|| {
            self.record.links = links;
            self.record.revision = self.record.revision.saturating_add(1);
            self.sign()
        });
        self.beats = self.beats.saturating_add(1);
        let beat = SignedHeartbeat::sign(
            &self.identity,
            &self.network_id,
            self.record.incarnation,
            self.beats,
        );
        (record, beat)
    }

    /// The final record of this incarnation, announcing the departure.
    pub fn leave(&mut self) -> Result<SignedRecord, RecordError> {
        self.record.left = true;
        self.record.revision = self.record.revision.saturating_add(1);
        self.sign()
    }

    /// A record or heartbeat of ourselves from an earlier life at
    /// incarnation `seen` was gossiped: jump to incarnation `seen + 1`
    /// (revision and heartbeats 0) so that our record supersedes it
    /// everywhere. `None` if the counter is exhausted.
    pub fn supersede(&mut self, seen: u64) -> Option<Result<SignedRecord, RecordError>> {
        self.record.incarnation = seen.checked_add(1)?;
        self.record.revision = 0;
        self.beats = 0;
        Some(self.sign())
    }
}

/// True if the link set changed, or an RTT moved by more than
/// [`RTT_REPUBLISH_PERCENT`] and [`RTT_REPUBLISH_MIN_MICROS`].
fn links_changed(published: &[LinkInfo], current: &[LinkInfo]) -> bool {
    if published.len() != current.len() {
        return true;
    }
    published.iter().zip(current).any(|(a, b)| {
        if a.peer != b.peer {
            return true;
        }
        let (x, y) = (u64::from(a.rtt_micros), u64::from(b.rtt_micros));
        let diff = x.abs_diff(y);
        diff > RTT_REPUBLISH_MIN_MICROS && diff * 100 > x * RTT_REPUBLISH_PERCENT
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> (OwnRecord, SignedRecord) {
        let id = Arc::new(Identity::from_seed([1; 32]));
        let addr: SocketAddr = "[fe80::1%3]:7000".parse().unwrap();
        OwnRecord::new(id, NetworkId([2; 32]), 0, vec![addr], 4)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn heartbeats_republish_links_only_on_significant_change() {
        let (mut o, first) = own();
        assert_eq!(
            first.version(),
            Version {
                incarnation: 5,
                revision: 0
            }
        );
        assert_eq!(first.record.addrs[0].to_string(), "[fe80::1]:7000");
        let p = ClusterId([9; 32]);
        let ms = Duration::from_millis;
        let (r, beat) = o.heartbeat([(p, ms(10))]);
        let r = r.unwrap().unwrap();
        assert_eq!(r.record.links[0].rtt_micros, 10_000);
        assert_eq!(r.version().revision, 1);
        assert_eq!((beat.incarnation, beat.counter), (5, 1));
        let (r, beat) = o.heartbeat([(p, ms(12))]);
        assert!(r.is_none(), "20% is noise: no new revision");
        assert_eq!(beat.counter, 2);
        let (r, _) = o.heartbeat([(p, ms(13))]);
        let r = r.unwrap().unwrap();
        assert_eq!(r.record.links[0].rtt_micros, 13_000);
        assert_eq!(r.version().revision, 2);
        assert_eq!(o.beats(), 3);
        let (r, _) = o.heartbeat([]);
        assert!(r.unwrap().unwrap().record.links.is_empty());
        let many = (0..=MAX_LINKS).map(|i| (ClusterId([i as u8; 32]), ms(i as u64 + 1)));
        let r = o.heartbeat(many).0.unwrap().unwrap();
        assert_eq!(r.record.links.len(), MAX_LINKS);
        assert!(r.record.validate().is_ok());
        assert!(r.record.links.iter().all(|l| l.rtt_micros <= 64_000));
    }

    #[test]
    fn leave_and_supersede() {
        let (mut o, _) = own();
        o.heartbeat([]);
        let r = o.supersede(9).unwrap().unwrap();
        assert_eq!(
            r.version(),
            Version {
                incarnation: 10,
                revision: 0
            }
        );
        assert_eq!((o.incarnation(), o.beats()), (10, 0));
        let r = o.leave().unwrap();
        assert!(r.record.left && o.has_left());
        assert_eq!(r.version().revision, 1);
        assert!(o.supersede(u64::MAX).is_none());
    }

    #[test]
    fn links_change_only_when_significant() {
        let p = |b: u8, rtt| LinkInfo {
            peer: ClusterId([b; 32]),
            rtt_micros: rtt,
        };
        assert!(!links_changed(&[p(1, 10_000)], &[p(1, 12_000)]));
        assert!(links_changed(&[p(1, 10_000)], &[p(1, 13_000)]));
        assert!(!links_changed(&[p(1, 100)], &[p(1, 900)]));
        assert!(links_changed(&[p(1, 100)], &[p(2, 100)]));
        assert!(links_changed(&[], &[p(2, 100)]));
    }
}
