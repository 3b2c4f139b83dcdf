//! The member side of quorum rounds: proposals checked and voted on, the
//! votes of an input signed together, persisted ahead of their frames and
//! sent to every member, and every routed quorum payload tallied.

use std::sync::Arc;

use super::*;

impl Core {
    /// A proposal for this node to vote on (from the routed origin, or local).
    pub(super) fn on_proposal(
        &mut self,
        now: Millis,
        round: Round,
        envelope: Arc<Envelope>,
        out: &mut Vec<Output>,
    ) {
        let roster = self.quorum.driver.roster().clone();
        if !self.remember_envelope(now, round, envelope.clone()) {
            self.quorum.counters.proposals_refused += 1;
            return;
        }
        if let Some(cert) = self.quorum.rounds.get(&round).and_then(|k| k.cert.clone()) {
            self.try_deliver(now, &cert, out);
        }
        let proposal = Proposal { round, envelope };
        if self.quorum.byzantine == Some(Byzantine::EquivocateVotes) {
            return self.equivocate(now, &roster, &proposal, out);
        }
        let refused = &self.quorum.refused_topics;
        let accept = |e: &Envelope| !refused.contains(e.topic.as_str());
        if self
            .quorum
            .voter
            .on_proposal(&roster, &proposal, accept)
            .is_err()
        {
            self.quorum.counters.proposals_refused += 1;
        }
    }

    /// [`Byzantine::EquivocateVotes`]: accept to the first half, reject to the rest.
    fn equivocate(&mut self, now: Millis, roster: &Roster, p: &Proposal, out: &mut Vec<Output>) {
        let network = roster.network_id();
        let sign = |value| {
            Vote {
                round: p.round,
                value,
                voter: self.quorum.identity.id(),
            }
            .sign(&self.quorum.identity)
            .ok()
            .map(AttestedVote::from)
        };
        let (Some(yes), Some(no)) = (sign(p.envelope.digest(network)), sign(REJECT)) else {
            return;
        };
        let me = self.own.id();
        let members = self.quorum_members();
        let half = members.len() / 2;
        for (i, m) in members.into_iter().enumerate() {
            let v = if i < half { &yes } else { &no };
            if m == me {
                if let Ok(outs) = self.quorum.driver.on_vote(now, v.clone()) {
                    self.apply_quorum(now, None, outs, out);
                }
            } else {
                self.send_votes(m, std::slice::from_ref(v), out);
            }
        }
    }

    pub(super) fn send_votes(
        &mut self,
        to: ClusterId,
        votes: &[AttestedVote],
        out: &mut Vec<Output>,
    ) {
        for chunk in votes.chunks(MAX_QUORUM_VOTES) {
            let votes = chunk.iter().map(AttestedVote::encode).collect();
            self.originate(to, RoutedPayload::QuorumVotes { votes }, out);
        }
    }

    /// After every input: sign and send the votes queued by it, fire due
    /// round timers, forget old rounds.
    pub(in crate::proto::core) fn quorum_after_input(
        &mut self,
        now: Millis,
        out: &mut Vec<Output>,
    ) {
        if self.quorum.voter.queued() > 0 {
            self.flush_votes(now, out);
        }
        while let Some(&(at, round)) = self.quorum.timers.first() {
            if at > now {
                break;
            }
            self.quorum.timers.pop_first();
            let outs = self.quorum.driver.on_timer(now, round);
            self.apply_quorum(now, None, outs, out);
        }
        if now.since(self.quorum.last_pull) >= PULL_EVERY {
            self.quorum.last_pull = now;
            self.pull_certificates(now, out);
        }
        if now.since(self.quorum.last_gc) >= GC_EVERY {
            self.quorum.last_gc = now;
            self.quorum.driver.gc(now);
            let keep = round_config().retention;
            let own = &self.quorum.own;
            self.quorum
                .rounds
                .retain(|r, k| now.since(k.first_seen) <= keep || own.contains_key(r));
        }
    }

    fn flush_votes(&mut self, now: Millis, out: &mut Vec<Output>) {
        let roster = self.quorum.driver.roster().clone();
        let q = &mut self.quorum;
        let signed = match q.voter.flush(&roster, &q.signer, &mut q.record) {
            Ok(s) => s,
            Err(e) => {
                // Nothing was sent; the origins' retries bring the rounds back.
                tracing::warn!(error = %e, "cannot sign quorum votes");
                q.counters.sign_refusals += 1;
                return;
            }
        };
        let me = self.own.id();
        let others: Vec<ClusterId> = self
            .quorum_members()
            .into_iter()
            .filter(|m| *m != me)
            .collect();
        for s in signed {
            self.quorum.counters.sign_refusals += s.refused.len() as u64;
            if !s.new_votes.is_empty() {
                // Durable before any frame carrying them is sent.
                out.push(Output::Persist(Persist::QuorumVotes(s.new_votes.clone())));
                for v in &s.new_votes {
                    self.log_vote(v, out);
                }
            }
            match &s.batch {
                Some(batch) => {
                    let bytes = batch.encode();
                    for m in &others {
                        self.originate(
                            *m,
                            RoutedPayload::QuorumBatch {
                                batch: bytes.clone(),
                            },
                            out,
                        );
                    }
                    if let Ok(outs) = self.quorum.driver.on_batch(now, batch) {
                        self.apply_quorum(now, None, outs, out);
                    }
                }
                None if !s.new_votes.is_empty() => {
                    for m in &others {
                        self.send_votes(*m, &s.new_votes, out);
                    }
                    for v in s.new_votes {
                        if let Ok(outs) = self.quorum.driver.on_vote(now, v) {
                            self.apply_quorum(now, None, outs, out);
                        }
                    }
                }
                None => {}
            }
            // Votes signed earlier (a retried proposal): resend, they may have been lost.
            if !s.repeats.is_empty() {
                for m in &others {
                    self.send_votes(*m, &s.repeats, out);
                }
            }
        }
    }

    /// A vote that reaches this node after it delivered the round's
    /// certified message was not in the echo it sent back with the
    /// certificate: it goes to the round's origin too, which holds the vote
    /// the same voter sent it. Without this an equivocator whose votes are
    /// slower than the certificate (all its votes outside it) is never
    /// caught: every node holds just one of its values.
    fn echo_late_vote(&mut self, from: ClusterId, v: &AttestedVote, out: &mut Vec<Output>) {
        let me = self.own.id();
        let origin = match self.quorum.rounds.get(&v.vote.round) {
            Some(k) if k.delivered => k.envelopes.first().map(|e| e.key.origin),
            _ => None,
        };
        if let Some(origin) = origin.filter(|o| *o != me && *o != from) {
            self.send_votes(origin, std::slice::from_ref(v), out);
        }
    }

    /// Certificates are routed once: a member that voted and still has no
    /// certificate after [`PULL_EVERY`] (lost with a link replaced under
    /// it, say) sends its vote to the origin again, which answers with the
    /// certificate ([`Core::resend_certificate`]).
    fn pull_certificates(&mut self, now: Millis, out: &mut Vec<Output>) {
        use crate::proto::delivery::SignedVoteRecord;
        let me = self.own.id();
        let mut asks = Vec::new();
        for (round, k) in self.quorum.rounds.iter_mut() {
            if asks.len() >= PULLS_PER_PASS {
                break;
            }
            let Some(origin) = k.envelopes.first().map(|e| e.key.origin) else {
                continue;
            };
            if k.delivered
                || origin == me
                || k.pulls >= MAX_PULLS
                || now.since(k.first_seen) < PULL_EVERY
            {
                continue;
            }
            let slot = crate::proto::vote::Slot {
                round: *round,
                voter: me,
            };
            let Ok(Some(vote)) = self.quorum.record.previous(&slot) else {
                continue;
            };
            k.pulls += 1;
            asks.push((origin, vote));
        }
        for (origin, vote) in asks {
            self.send_votes(origin, std::slice::from_ref(&vote), out);
        }
    }

    /// A vote for an own round already certified: the voter may have
    /// missed the certificate (see [`Core::pull_certificates`]).
    fn resend_certificate(&mut self, from: ClusterId, v: &AttestedVote, out: &mut Vec<Output>) {
        let Some(k) = self.quorum.rounds.get(&v.vote.round) else {
            return;
        };
        let (Some(cert), Some(envelope)) = (&k.certified, k.envelopes.first()) else {
            return;
        };
        if v.vote.voter != from || envelope.key.origin != self.own.id() {
            return;
        }
        let network = self.network_id;
        let Some(envelope) = k
            .envelopes
            .iter()
            .find(|e| e.digest(network) == cert.value())
        else {
            return;
        };
        let payload = RoutedPayload::QuorumCertificate {
            cert: cert.encode(),
            envelope: envelope.encode(),
        };
        self.originate(from, payload, out);
    }

    fn log_vote(&mut self, v: &AttestedVote, out: &mut Vec<Output>) {
        match v.as_single() {
            Some(sv) => out.push(log_record(LogEntry::Vote(sv))),
            None => self.quorum.counters.unloggable += 1,
        }
    }

    /// A quorum payload routed to this node from `origin`.
    pub(in crate::proto::core) fn on_quorum(
        &mut self,
        origin: ClusterId,
        payload: RoutedPayload,
        out: &mut Vec<Output>,
    ) {
        let now = self.quorum.now;
        match payload {
            RoutedPayload::QuorumProposal { epoch, envelope } => {
                let network = self.network_id;
                match Envelope::decode(&envelope) {
                    Ok(e) if e.key.origin == origin => match e.guarantee.vote_kind() {
                        Some(kind) => {
                            let round = Round {
                                network_id: network,
                                epoch,
                                kind,
                                subject: e.subject(network),
                            };
                            self.on_proposal(now, round, Arc::new(e), out);
                        }
                        None => self.quorum.counters.proposals_refused += 1,
                    },
                    _ => self.quorum.counters.proposals_refused += 1,
                }
            }
            RoutedPayload::QuorumVotes { votes } => {
                for bytes in votes {
                    let Ok(v) = AttestedVote::decode(&bytes) else {
                        self.quorum.counters.votes_refused += 1;
                        continue;
                    };
                    match self.quorum.driver.on_vote(now, v.clone()) {
                        Ok(outs) => {
                            self.log_vote(&v, out);
                            self.apply_quorum(now, Some(origin), outs, out);
                            self.echo_late_vote(origin, &v, out);
                            self.resend_certificate(origin, &v, out);
                        }
                        Err(_) => self.quorum.counters.votes_refused += 1,
                    }
                }
            }
            RoutedPayload::QuorumBatch { batch } => {
                let outs = VoteBatch::decode(&batch)
                    .ok()
                    .and_then(|b| self.quorum.driver.on_batch(now, &b).ok());
                match outs {
                    Some(outs) => {
                        self.quorum.counters.unloggable += 1;
                        self.apply_quorum(now, Some(origin), outs, out);
                    }
                    None => self.quorum.counters.votes_refused += 1,
                }
            }
            RoutedPayload::QuorumCertificate { cert, envelope } => {
                let (Ok(cert), Ok(envelope)) = (
                    QuorumCertificate::decode(&cert),
                    Envelope::decode(&envelope),
                ) else {
                    self.quorum.counters.certificates_refused += 1;
                    return;
                };
                let roster = self.quorum.driver.roster().clone();
                if roster.epoch() != cert.round().epoch
                    || verify_delivery(&roster, Some(&self.sigcache), &envelope, &cert).is_err()
                {
                    self.quorum.counters.certificates_refused += 1;
                    return;
                }
                let round = cert.round();
                self.remember_envelope(now, round, Arc::new(envelope));
                match self.quorum.driver.on_certificate(now, &cert) {
                    Ok(outs) => self.apply_quorum(now, Some(origin), outs, out),
                    Err(_) => {
                        self.quorum.counters.certificates_refused += 1;
                        return;
                    }
                }
                self.try_deliver(now, &Arc::new(cert), out);
            }
            RoutedPayload::QuorumEvidence { evidence } => {
                let outs = VoteEvidence::decode(&evidence)
                    .ok()
                    .and_then(|e| self.quorum.driver.on_evidence(now, &e).ok());
                match outs {
                    Some(outs) => self.apply_quorum(now, Some(origin), outs, out),
                    None => self.quorum.counters.evidence_refused += 1,
                }
            }
            _ => {}
        }
    }
}
