//! Which clusters host which queues and subscribe to which patterns, rebuilt
//! from gossiped node records. A cluster's entry is replaced as a whole on
//! every record update, so the registry never holds state a record has
//! withdrawn.

use std::collections::{BTreeMap, BTreeSet};

use super::name::{NameError, Pattern, QueueName};
use crate::proto::identity::ClusterId;

/// Most queues or patterns one cluster may advertise (the node record's limit).
pub const MAX_PER_CLUSTER: usize = crate::proto::membership::record::MAX_QUEUES;

/// Why a cluster's advertisement was refused (as a whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// More than [`MAX_PER_CLUSTER`] queues or patterns.
    #[error("cluster advertises {0} entries, at most {MAX_PER_CLUSTER} are allowed")]
    TooMany(usize),
    /// A hosted queue name is invalid.
    #[error("invalid hosted queue {name:?}: {error}")]
    BadQueue {
        /// The advertised text.
        name: String,
        /// Why it is refused.
        error: NameError,
    },
    /// A subscription pattern is invalid.
    #[error("invalid subscription pattern {pattern:?}: {error}")]
    BadPattern {
        /// The advertised text.
        pattern: String,
        /// Why it is refused.
        error: NameError,
    },
}

/// What an update changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryUpdate {
    /// The cluster's advertisement differs from what was held.
    Changed,
    /// Nothing changed.
    Unchanged,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Advert {
    hosts: BTreeSet<QueueName>,
    subscriptions: BTreeSet<Pattern>,
}

/// The federation-wide view of queues and subscriptions.
#[derive(Debug, Default)]
pub struct QueueRegistry {
    clusters: BTreeMap<ClusterId, Advert>,
    hosts_by_queue: BTreeMap<QueueName, BTreeSet<ClusterId>>,
}

impl QueueRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces `cluster`'s advertisement with the hosted `queues` and
    /// subscription `patterns` of its latest record. An invalid entry refuses
    /// the whole update and keeps the previous advertisement, so a bad record
    /// cannot half-apply.
    pub fn update<Q: AsRef<str>, P: AsRef<str>>(
        &mut self,
        cluster: ClusterId,
        queues: &[Q],
        patterns: &[P],
    ) -> Result<RegistryUpdate, RegistryError> {
        for n in [queues.len(), patterns.len()] {
            if n > MAX_PER_CLUSTER {
                return Err(RegistryError::TooMany(n));
            }
        }
        let hosts = queues
            .iter()
            .map(|q| {
                QueueName::new(q.as_ref()).map_err(|error| RegistryError::BadQueue {
                    name: q.as_ref().to_owned(),
                    error,
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let subscriptions = patterns
            .iter()
            .map(|p| {
                Pattern::new(p.as_ref()).map_err(|error| RegistryError::BadPattern {
                    pattern: p.as_ref().to_owned(),
                    error,
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let advert = Advert {
            hosts,
            subscriptions,
        };
        if self.clusters.get(&cluster) == Some(&advert) {
            return Ok(RegistryUpdate::Unchanged);
        }
        self.remove(&cluster);
        for q in &advert.hosts {
            self.hosts_by_queue
                .entry(q.clone())
                .or_default()
                .insert(cluster);
        }
        self.clusters.insert(cluster, advert);
        Ok(RegistryUpdate::Changed)
    }

    /// Forgets `cluster` (its record died or left). Returns whether it was known.
    pub fn remove(&mut self, cluster: &ClusterId) -> bool {
        let Some(old) = self.clusters.remove(cluster) else {
            return false;
        };
        for q in &old.hosts {
            if let Some(set) = self.hosts_by_queue.get_mut(q) {
                set.remove(cluster);
                if set.is_empty() {
                    self.hosts_by_queue.remove(q);
                }
            }
        }
        true
    }

    /// The clusters hosting `queue` ("where does queue Q live"), ascending by id.
    pub fn hosts(&self, queue: &QueueName) -> impl Iterator<Item = &ClusterId> {
        self.hosts_by_queue.get(queue).into_iter().flatten()
    }

    /// The clusters with at least one subscription matching `topic`, ascending by id.
    pub fn subscribers<'a>(&'a self, topic: &'a QueueName) -> impl Iterator<Item = ClusterId> + 'a {
        self.clusters
            .iter()
            .filter(|(_, a)| a.subscriptions.iter().any(|p| p.matches(topic)))
            .map(|(id, _)| *id)
    }

    /// The queues `cluster` hosts.
    pub fn hosted_by(&self, cluster: &ClusterId) -> impl Iterator<Item = &QueueName> {
        self.clusters
            .get(cluster)
            .into_iter()
            .flat_map(|a| &a.hosts)
    }

    /// The patterns `cluster` subscribes to.
    pub fn subscriptions_of(&self, cluster: &ClusterId) -> impl Iterator<Item = &Pattern> {
        self.clusters
            .get(cluster)
            .into_iter()
            .flat_map(|a| &a.subscriptions)
    }

    /// Every cluster with an advertisement.
    pub fn clusters(&self) -> impl Iterator<Item = ClusterId> + '_ {
        self.clusters.keys().copied()
    }

    /// Clusters with an advertisement.
    pub fn cluster_count(&self) -> usize {
        self.clusters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ClusterId {
        ClusterId([n; 32])
    }

    fn q(s: &str) -> QueueName {
        QueueName::new(s).unwrap()
    }

    #[test]
    fn answers_where_queues_live_and_who_subscribes() {
        let mut r = QueueRegistry::new();
        let none: &[&str] = &[];
        assert_eq!(
            r.update(id(1), &["orders", "audit.eu"], &["events.#"])
                .unwrap(),
            RegistryUpdate::Changed
        );
        r.update(id(2), &["orders"], &["events.*.created", "audit.eu"])
            .unwrap();
        r.update(id(3), none, none).unwrap();
        assert_eq!(
            r.hosts(&q("orders")).copied().collect::<Vec<_>>(),
            [id(1), id(2)]
        );
        assert_eq!(
            r.hosts(&q("audit.eu")).copied().collect::<Vec<_>>(),
            [id(1)]
        );
        assert_eq!(r.hosts(&q("nowhere")).count(), 0);
        assert_eq!(
            r.subscribers(&q("events.x.created")).collect::<Vec<_>>(),
            [id(1), id(2)]
        );
        assert_eq!(r.subscribers(&q("events")).collect::<Vec<_>>(), [id(1)]);
        assert_eq!(r.subscribers(&q("audit.eu")).collect::<Vec<_>>(), [id(2)]);

        // A new record replaces the old advertisement entirely.
        assert_eq!(
            r.update(id(1), &["billing"], none).unwrap(),
            RegistryUpdate::Changed
        );
        assert_eq!(r.hosts(&q("orders")).copied().collect::<Vec<_>>(), [id(2)]);
        assert_eq!(r.hosts(&q("audit.eu")).count(), 0);
        assert_eq!(r.subscribers(&q("events")).count(), 0);
        assert_eq!(
            r.update(id(1), &["billing"], none).unwrap(),
            RegistryUpdate::Unchanged
        );
        assert!(r.remove(&id(2)));
        assert!(!r.remove(&id(2)));
        assert_eq!(r.hosts(&q("orders")).count(), 0);
        assert_eq!(r.cluster_count(), 2);
    }

    #[test]
    fn invalid_advertisements_are_refused_whole() {
        let mut r = QueueRegistry::new();
        r.update(id(1), &["keep"], &["k.#"]).unwrap();
        assert!(matches!(
            r.update(id(1), &["ok", "bad name"], &["x"]),
            Err(RegistryError::BadQueue { .. })
        ));
        assert!(matches!(
            r.update(id(1), &["ok"], &["x.y*"]),
            Err(RegistryError::BadPattern { .. })
        ));
        let many: Vec<String> = (0..=MAX_PER_CLUSTER).map(|i| format!("q{i}")).collect();
        assert_eq!(
            r.update(id(1), &many, &["x"]),
            Err(RegistryError::TooMany(MAX_PER_CLUSTER + 1))
        );
        assert_eq!(
            r.hosted_by(&id(1)).map(|q| q.as_str()).collect::<Vec<_>>(),
            ["keep"]
        );
        assert_eq!(r.subscriptions_of(&id(1)).count(), 1);
    }
}
