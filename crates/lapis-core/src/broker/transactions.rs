//! Transactions, as the AMQP transaction coordinator exposes them: a client declares
//! one, enlists sends and settlements in it, and discharges it. Nothing enlisted takes
//! effect before the discharge: sent messages are invisible, settled messages stay
//! locked. A commit applies everything as one atomic store commit across all the
//! entities involved, or — if a lock was lost meanwhile — nothing; a rollback drops it
//! all. Open transactions are bounded in number, size and lifetime (Azure's limits).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use lapis_store::Commit;
use parking_lot::Mutex;
use uuid::Uuid;

use super::codec::EntityKind;
use super::error::{BrokerError, BrokerResult};
use super::model::*;
use super::service::{Broker, LockSet, Staged};
use crate::clock::Millis;

/// Operations one transaction may hold (Azure: 100).
pub const MAX_TRANSACTION_OPS: usize = 100;
/// A transaction not discharged within this time is rolled back (Azure: 2 minutes).
pub const TRANSACTION_TIMEOUT_MS: Millis = 120_000;
/// Transactions open at once, over all connections.
pub const MAX_OPEN_TRANSACTIONS: usize = 10_000;
/// How long a timed-out transaction is remembered, to tell its owner why it is gone.
const TIMED_OUT_MEMORY_MS: Millis = 600_000;

/// A transaction, as its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionId(pub u64);

enum Enlisted {
    Send { entity: String, messages: Vec<OutgoingMessage> },
    Settle { entity: String, sub: SubQueue, token: Uuid, settlement: Settlement },
}

enum Txn {
    Open { opened_at: Millis, ops: Vec<Enlisted> },
    TimedOut { at: Millis },
}

#[derive(Default)]
pub(super) struct Transactions {
    next: AtomicU64,
    txns: Mutex<HashMap<u64, Txn>>,
}

impl Transactions {
    /// Rolls back transactions open too long, and forgets old timeouts.
    pub fn expire(&self, now: Millis) {
        let mut txns = self.txns.lock();
        for t in txns.values_mut() {
            if let Txn::Open { opened_at, .. } = t {
                if *opened_at + TRANSACTION_TIMEOUT_MS <= now {
                    *t = Txn::TimedOut { at: now };
                }
            }
        }
        txns.retain(|_, t| !matches!(t, Txn::TimedOut { at } if *at + TIMED_OUT_MEMORY_MS <= now));
    }

    fn enlist(&self, id: TransactionId, op: Enlisted) -> BrokerResult<()> {
        let mut txns = self.txns.lock();
        match txns.get_mut(&id.0) {
            Some(Txn::Open { ops, .. }) => {
                if ops.len() >= MAX_TRANSACTION_OPS {
                    return Err(BrokerError::InvalidOperation(format!("A transaction cannot hold more than {MAX_TRANSACTION_OPS} operations.")));
                }
                if let Enlisted::Settle { token, .. } = &op {
                    let again = ops.iter().any(|o| matches!(o, Enlisted::Settle { token: t, .. } if t == token));
                    if again {
                        return Err(BrokerError::MessageLockLost);
                    }
                }
                ops.push(op);
                Ok(())
            }
            Some(Txn::TimedOut { .. }) => Err(BrokerError::TransactionTimedOut(id.0)),
            None => Err(BrokerError::UnknownTransaction(id.0)),
        }
    }

    fn take(&self, id: TransactionId) -> BrokerResult<Vec<Enlisted>> {
        match self.txns.lock().remove(&id.0) {
            Some(Txn::Open { ops, .. }) => Ok(ops),
            Some(Txn::TimedOut { .. }) => Err(BrokerError::TransactionTimedOut(id.0)),
            None => Err(BrokerError::UnknownTransaction(id.0)),
        }
    }
}

impl Broker {
    /// Opens a transaction.
    pub fn declare_transaction(&self) -> BrokerResult<TransactionId> {
        let mut txns = self.transactions.txns.lock();
        if txns.len() >= MAX_OPEN_TRANSACTIONS {
            return Err(BrokerError::QuotaExceeded("transactions".into()));
        }
        let id = self.transactions.next.fetch_add(1, Ordering::Relaxed) + 1;
        txns.insert(id, Txn::Open { opened_at: self.clock.now_ms(), ops: Vec::new() });
        Ok(TransactionId(id))
    }

    /// Enlists a send: checked now, applied at commit.
    pub fn enlist_send(&self, txn: TransactionId, entity: &str, messages: Vec<OutgoingMessage>) -> BrokerResult<()> {
        {
            let e = self.entity(entity)?;
            let e = e.lock();
            if matches!(e.record.kind, EntityKind::Subscription { .. }) {
                return Err(BrokerError::InvalidOperation(format!("Cannot send to the subscription '{entity}': send to its topic.")));
            }
            Self::check_send(&e, entity, &messages)?;
        }
        self.transactions.enlist(txn, Enlisted::Send { entity: entity.to_string(), messages })
    }

    /// Enlists a settlement: the lock is checked now and again at commit.
    pub fn enlist_settle(&self, txn: TransactionId, entity: &str, sub: SubQueue, token: Uuid, settlement: Settlement) -> BrokerResult<()> {
        {
            let e = self.entity(entity)?;
            let e = e.lock();
            self.check_lock(&e, sub, &token, self.clock.now_ms())?;
        }
        self.transactions.enlist(txn, Enlisted::Settle { entity: entity.to_string(), sub, token, settlement })
    }

    /// Ends a transaction: commits everything it holds atomically, or rolls it back.
    pub fn discharge(&self, txn: TransactionId, commit: bool) -> BrokerResult<Staged<()>> {
        let ops = self.transactions.take(txn)?;
        if !commit || ops.is_empty() {
            return Ok(Staged::new(Commit::ready(), ()));
        }
        let mut reach = BTreeMap::new();
        for op in &ops {
            let found = match op {
                Enlisted::Send { entity, .. } => self.reach(entity, &mut reach),
                Enlisted::Settle { entity, .. } => self.entity(entity).map(|e| {
                    reach.insert(entity.to_ascii_lowercase(), e);
                }),
            };
            found.map_err(|e| BrokerError::TransactionRolledBack(e.to_string()))?;
        }
        let now = self.clock.now_ms();
        let mut forward = Vec::new();
        let mut woken: Vec<String> = reach.keys().cloned().collect();
        let commit = {
            let mut set = LockSet::lock(&reach);
            let rolled_back = |e: BrokerError| BrokerError::TransactionRolledBack(e.to_string());
            // Every lock must still hold, and every send still fit, before anything
            // changes: past this point nothing may fail halfway.
            for op in &ops {
                let entity = match op {
                    Enlisted::Send { entity, .. } | Enlisted::Settle { entity, .. } => entity,
                };
                let i = set.index(entity).ok_or_else(|| rolled_back(BrokerError::EntityNotFound(entity.clone())))?;
                match op {
                    Enlisted::Settle { sub, token, .. } => {
                        self.check_lock(&set.guards[i], *sub, token, now).map_err(rolled_back)?;
                    }
                    Enlisted::Send { messages, .. } => Self::check_send(&set.guards[i], entity, messages).map_err(rolled_back)?,
                }
            }
            let mut store_ops = Vec::new();
            for op in ops {
                match op {
                    Enlisted::Send { entity, messages } => {
                        self.send_locked(&mut set, &entity, messages, now, &mut store_ops, &mut woken).map_err(rolled_back)?;
                    }
                    Enlisted::Settle { entity, sub, token, settlement } => {
                        let i = set.index(&entity).expect("checked above");
                        let (more, dead) = self.settle_locked(&mut set.guards[i], sub, token, settlement, now).map_err(rolled_back)?;
                        store_ops.extend(more);
                        if dead && set.guards[i].record.config.forward_dead_lettered_to.is_some() {
                            forward.push(entity);
                        }
                    }
                }
            }
            self.store.commit(&store_ops)?
        };
        woken.sort();
        woken.dedup();
        for key in woken {
            self.wake(&key);
        }
        let mut staged = Staged::new(commit, ());
        staged.forward_dead_letters_of = forward;
        Ok(staged)
    }
}
