//! Waking receivers when an entity has new messages. Each entity has a
//! [`Notify`]; a receiver with credit waits on the entities it reads from. A new
//! message wakes one waiting receiver (or stores a permit for the next one to look),
//! and a receiver that took all it could while messages are left passes the wake-up on
//! — so a send wakes one connection, not every connection with a receiver. Session
//! entities wake every waiter: a message of one session is for its holder only.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::Notify;

use super::model::SubQueue;
use super::service::Broker;

#[derive(Default)]
pub(super) struct Wakers {
    by_entity: RwLock<HashMap<String, Arc<Notify>>>,
}

impl Wakers {
    pub fn get(&self, key: &str) -> Arc<Notify> {
        if let Some(n) = self.by_entity.read().get(key) {
            return n.clone();
        }
        self.by_entity.write().entry(key.to_string()).or_default().clone()
    }

    /// Wakes receivers of `key` (if any ever waited there).
    pub fn wake(&self, key: &str, every_waiter: bool) {
        if let Some(n) = self.by_entity.read().get(key) {
            if every_waiter {
                n.notify_waiters();
            }
            n.notify_one();
        }
    }

    pub fn forget(&self, key: &str) {
        self.by_entity.write().remove(key);
    }
}

impl Broker {
    /// What a receiver of `entity` (any sub-queue) waits on for new messages.
    pub fn waker(&self, entity: &str) -> Arc<Notify> {
        self.wakers.get(&entity.to_ascii_lowercase())
    }

    /// A receiver of `entity` stopped taking (no credit left) with messages left:
    /// wake another.
    pub fn pass_on(&self, entity: &str, sub: SubQueue) {
        let Ok(e) = self.entity(entity) else { return };
        let (left, sessions) = {
            let e = e.lock();
            (e.count_available(sub), e.record.config.requires_session)
        };
        if left > 0 && !sessions {
            self.wakers.wake(&entity.to_ascii_lowercase(), false);
        }
    }

    /// Wakes receivers of the entity named `key` (lowercase).
    pub(super) fn wake(&self, key: &str) {
        let sessions = self.entities.read().get(key).is_some_and(|e| e.lock().record.config.requires_session);
        self.wakers.wake(key, sessions);
    }
}
