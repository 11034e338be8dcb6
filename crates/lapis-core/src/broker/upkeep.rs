//! Keeping entities up to date with the clock — due scheduled messages, expired
//! locks, expired messages, duplicate-detection history, abandoned transactions — and
//! moving dead letters on to an entity's `ForwardDeadLetteredMessagesTo`.

use std::collections::BTreeMap;

use lapis_store::{Commit, Op};

use super::entity::EntityState;
use super::error::BrokerResult;
use super::model::*;
use super::send::Arrival;
use super::service::{Broker, EntityRef, LockSet};
use crate::clock::Millis;

/// Dead letters moved on per pass; a pass repeats until none are left.
const FORWARD_BATCH: usize = 256;

impl Broker {
    /// Brings an entity up to `now`: due scheduled messages become active, expired
    /// locks are counted as failed deliveries, expired messages are dead-lettered or
    /// dropped, and duplicate-detection entries past the window are forgotten. Returns
    /// the ops, and whether dead letters now wait to be forwarded.
    pub(super) fn tidy(&self, e: &mut EntityState, now: Millis) -> (Vec<Op>, bool) {
        e.promote_due(now);
        for session in e.expired_session_locks(now) {
            e.session_locks.remove(&session);
        }
        let mut ops = Vec::new();
        let mut dead_lettered = false;
        for seq in e.expired_locks(now) {
            let (more, dead) = self.lose_lock(e, seq);
            ops.extend(more);
            dead_lettered |= dead;
        }
        let expired = e.expired(now);
        if e.record.config.dead_letter_on_expiration {
            dead_lettered |= !expired.is_empty();
            for seq in expired {
                let mut m = e.remove(seq).expect("an expired sequence number is present");
                Self::dead_letter(&mut m, Some(REASON_TTL.into()), Some("The message expired and was dead lettered.".into()));
                ops.extend(self.persist(e, m));
            }
        } else {
            ops.extend(self.remove_messages(e, &expired));
        }
        if let Some(window) = e.record.config.duplicate_detection_window_ms {
            let id = e.record.id;
            for message_id in e.forget_ids_before(now - window + 1) {
                ops.push(Op::Delete { key: super::codec::dedup_key(id, &message_id) });
            }
        }
        (ops, dead_lettered && e.record.config.forward_dead_lettered_to.is_some())
    }

    /// Background upkeep for every entity (see `tidy`), dead-letter forwarding, and
    /// the end of transactions left open past their timeout.
    pub async fn maintain(&self) -> BrokerResult<()> {
        let now = self.clock.now_ms();
        self.transactions.expire(now);
        let entities: Vec<(String, EntityRef)> = self.entities.read().iter().map(|(k, e)| (k.clone(), e.clone())).collect();
        let mut commits: Vec<Commit> = Vec::new();
        let mut forward = Vec::new();
        let mut waiting = Vec::new();
        for (key, e) in entities {
            let mut e = e.lock();
            let (ops, _) = self.tidy(&mut e, now);
            if e.record.config.forward_dead_lettered_to.is_some() && e.count_available(SubQueue::DeadLetter) > 0 {
                forward.push(key.clone());
            }
            // Messages that became available by the clock (schedules, lapsed locks), or
            // that a receiver left: a wake-up also recovers one that was missed.
            if e.count_available(SubQueue::Main) + e.count_available(SubQueue::DeadLetter) > 0 || !e.session_locks.is_empty() {
                waiting.push(key);
            }
            if !ops.is_empty() {
                commits.push(self.store.commit(&ops)?);
            }
        }
        for c in commits {
            c.durable().await?;
        }
        for key in waiting {
            self.wake(&key);
        }
        for key in forward {
            self.forward_dead_letters(&key).await?;
        }
        Ok(())
    }

    /// Moves the dead letters of `entity` to its `ForwardDeadLetteredMessagesTo`
    /// target (as new messages there, with the dead-letter reason and description
    /// among their properties). Each batch is one atomic commit.
    pub(super) async fn forward_dead_letters(&self, entity: &str) -> BrokerResult<()> {
        loop {
            let source = self.entity(entity)?;
            let (target, candidates, source_id) = {
                let e = source.lock();
                let Some(target) = e.record.config.forward_dead_lettered_to.clone() else { return Ok(()) };
                let seqs = e.available(SubQueue::DeadLetter, FORWARD_BATCH);
                let candidates: Vec<_> = seqs.iter().filter_map(|s| e.get(*s).cloned()).collect();
                (target, candidates, e.record.id)
            };
            if candidates.is_empty() {
                return Ok(());
            }
            // Bodies first, without locks: some live only in the store.
            let mut loaded = Vec::with_capacity(candidates.len());
            for m in candidates {
                if let Some(body) = self.body_of(source_id, &m).await? {
                    loaded.push((m, body));
                }
            }
            let mut reach = BTreeMap::new();
            reach.insert(entity.to_ascii_lowercase(), source.clone());
            if self.reach(&target, &mut reach).is_err() {
                tracing::warn!(entity, target, "the dead-letter forwarding destination does not exist; dead letters stay");
                return Ok(());
            }
            let commit = {
                let mut set = LockSet::lock(&reach);
                let (Some(from), Some(to)) = (set.index(entity), set.index(&target)) else { return Ok(()) };
                let now = self.clock.now_ms();
                let mut ops = Vec::new();
                let mut touched = vec![false; set.guards.len()];
                for (m, body) in loaded {
                    let still_there = set.guards[from].get(m.meta.seq).is_some_and(|s| s.lock.is_none() && s.meta.sub_queue == SubQueue::DeadLetter);
                    if !still_there {
                        continue;
                    }
                    ops.extend(self.remove_messages(&mut set.guards[from], &[m.meta.seq]));
                    let message = self.re_sent(&m, body);
                    let mut overrides = m.meta.overrides.clone();
                    if let Some(dl) = &m.meta.dead_letter {
                        for (k, v) in [("DeadLetterReason", &dl.reason), ("DeadLetterErrorDescription", &dl.description)] {
                            if let Some(v) = v {
                                overrides.insert(k.into(), PropertyValue::String(v.clone()));
                            }
                        }
                    }
                    let to_id = set.guards[to].record.id;
                    let seq = set.guards[to].take_seq();
                    touched[to] = true;
                    let arrival = Arrival { message: &message, overrides, origin: (to_id, seq), hops: 1 };
                    self.deliver(&mut set, to, arrival, now, &mut ops, &mut touched);
                }
                for (i, _) in touched.iter().enumerate().filter(|(_, t)| **t) {
                    ops.push(set.guards[i].next_seq_op());
                }
                self.store.commit(&ops)?
            };
            commit.durable().await?;
            self.wake(&target.to_ascii_lowercase());
        }
    }

    /// A stored message as a message sent anew.
    fn re_sent(&self, m: &super::entity::StoredMessage, body: Vec<u8>) -> OutgoingMessage {
        let routing = self.routing_reader.get().and_then(|read| read(&body)).unwrap_or_else(|| RoutingProperties {
            message_id: m.meta.message_id.clone(),
            session_id: m.meta.session_id.clone(),
            size: body.len() as i64,
            ..Default::default()
        });
        OutgoingMessage {
            message_id: m.meta.message_id.clone(),
            session_id: m.meta.session_id.clone(),
            ttl_ms: None,
            scheduled_enqueue_at: None,
            routing,
            body,
        }
    }
}
