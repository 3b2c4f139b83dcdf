//! Queues and subscriptions: this node's own adverts (hosted queues and
//! subscription patterns, published in its signed record) and the registry
//! of every live cluster's adverts, rebuilt from the member table.

use crate::proto::membership::failure::MemberState;
use crate::proto::queue::{Pattern, QueueName};

use super::*;

impl Core {
    /// The registry of hosted queues and subscriptions of live clusters
    /// (this node included).
    pub fn queue_registry(&self) -> &QueueRegistry {
        &self.queues
    }

    /// Hosts `name` here: it is published in the next record.
    pub(super) fn create_queue(&mut self, name: String, out: &mut Vec<Output>) {
        if QueueName::new(&name).is_err() {
            tracing::warn!(queue = %name, "refusing an invalid queue name");
            return;
        }
        let (q, s) = self.own.adverts();
        let (mut q, s) = (q.to_vec(), s.to_vec());
        q.push(name);
        self.publish_adverts(q, s, out);
    }

    /// Subscribes this node to `pattern` (published in the next record).
    pub(super) fn subscribe(&mut self, pattern: String, out: &mut Vec<Output>) {
        if Pattern::new(&pattern).is_err() {
            tracing::warn!(%pattern, "refusing an invalid subscription pattern");
            return;
        }
        let (q, s) = self.own.adverts();
        let (q, mut s) = (q.to_vec(), s.to_vec());
        s.push(pattern);
        self.publish_adverts(q, s, out);
    }

    /// Drops the subscription `pattern` (no effect if absent).
    pub(super) fn unsubscribe(&mut self, pattern: &str, out: &mut Vec<Output>) {
        let (q, s) = self.own.adverts();
        let (q, s): (Vec<String>, Vec<String>) = (
            q.to_vec(),
            s.iter().filter(|p| *p != pattern).cloned().collect(),
        );
        self.publish_adverts(q, s, out);
    }

    fn publish_adverts(&mut self, q: Vec<String>, s: Vec<String>, out: &mut Vec<Output>) {
        match self.own.set_adverts(q, s) {
            None => {}
            Some(Err(e)) => {
                tracing::warn!(error = %e, "queue or subscription change refused");
            }
            Some(Ok(signed)) => {
                self.set_own(Ok(signed));
                self.sync_queues();
                self.push_own(out);
            }
        }
    }

    /// Brings the registry in line with the member table: live records'
    /// adverts in, dead and departed clusters out.
    pub(super) fn sync_queues(&mut self) {
        let mut seen = Vec::new();
        for (id, e) in self.table.iter() {
            if matches!(e.state(), MemberState::Dead | MemberState::Left) {
                continue;
            }
            let r = &e.record().record;
            // Records are validated on arrival with the same rules, so an
            // update that fails here keeps the previous advert.
            if self.queues.update(*id, &r.queues, &r.subscriptions).is_ok() {
                seen.push(*id);
            }
        }
        let stale: Vec<ClusterId> = self
            .queues
            .clusters()
            .filter(|c| !seen.contains(c))
            .collect();
        for c in stale {
            self.queues.remove(&c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestNet;

    #[test]
    fn commands_publish_adverts_in_a_resigned_record_and_feed_the_registry() {
        let net = TestNet::new(1, &[1, 1]);
        let mut core = crate::proto::core::tests::core(&net, 0, vec![]);
        let me = core.own().record.id;
        let rev = core.own().record.revision;
        core.handle(
            Millis(1),
            Input::Command(Command::CreateQueue("jobs".into())),
        );
        core.handle(
            Millis(2),
            Input::Command(Command::Subscribe("jobs.#".into())),
        );
        core.handle(
            Millis(3),
            Input::Command(Command::Subscribe("bad..p".into())),
        );
        let r = &core.own().record;
        assert_eq!(r.queues, vec!["jobs".to_string()]);
        assert_eq!(r.subscriptions, vec!["jobs.#".to_string()]);
        assert_eq!(r.revision, rev + 2);
        let topic = QueueName::new("jobs.eu").unwrap();
        assert_eq!(
            core.queue_registry()
                .subscribers(&topic)
                .collect::<Vec<_>>(),
            vec![me]
        );
        core.handle(
            Millis(4),
            Input::Command(Command::Unsubscribe("jobs.#".into())),
        );
        assert!(core.own().record.subscriptions.is_empty());
        assert_eq!(core.queue_registry().subscribers(&topic).count(), 0);
    }
}
