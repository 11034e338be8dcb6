//! Sessions: a receiver accepts one session (by id, or the next one with messages that
//! nobody holds) and receives its messages in strict order while it holds the session
//! lock. Message locks in a session follow the session lock: renewing it renews them,
//! and once it lapses they are lost. Session state is kept durably per session.

use lapis_store::Op;
use uuid::Uuid;

use super::codec;
use super::entity::{EntityState, Lock};
use super::error::{BrokerError, BrokerResult};
use super::model::{Delivery, ReceiveMode};
use super::service::Broker;
use crate::clock::Millis;

/// A session held by a receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLock {
    pub session_id: String,
    pub token: Uuid,
    pub locked_until: Millis,
}

fn require_sessions(e: &EntityState) -> BrokerResult<()> {
    if e.record.config.requires_session {
        Ok(())
    } else {
        Err(BrokerError::InvalidOperation(format!(
            "It is not possible for an entity that does not require sessions to create a sessionful receiver: '{}'.",
            e.record.name
        )))
    }
}

/// The session `token` holds, if its lock is still valid at `now`.
fn held_session(e: &EntityState, token: &Uuid, now: Millis) -> BrokerResult<String> {
    e.session_locks
        .iter()
        .find(|(_, l)| l.token == *token && l.until > now)
        .map(|(id, _)| id.clone())
        .ok_or(BrokerError::SessionLockLost)
}

impl Broker {
    /// Locks `session_id`, or the next session with messages nobody holds; `None` when
    /// no session is free (the adapter decides how long to wait and retry).
    pub fn accept_session(&self, entity: &str, session_id: Option<&str>) -> BrokerResult<Option<SessionLock>> {
        let e = self.entity(entity)?;
        let now = self.clock.now_ms();
        let mut e = e.lock();
        require_sessions(&e)?;
        let id = match session_id {
            Some(id) => {
                if e.session_locks.get(id).is_some_and(|l| l.until > now) {
                    return Err(BrokerError::SessionCannotBeLocked(id.to_string()));
                }
                id.to_string()
            }
            None => match e.next_free_session(now) {
                Some(id) => id,
                None => return Ok(None),
            },
        };
        let lock = Lock { token: Uuid::new_v4(), until: now + e.record.config.lock_duration_ms };
        e.session_locks.insert(id.clone(), lock);
        Ok(Some(SessionLock { session_id: id, token: lock.token, locked_until: lock.until }))
    }

    /// Takes up to `max` messages of the session held by `token`, oldest first.
    pub async fn receive_from_session(&self, entity: &str, token: Uuid, mode: ReceiveMode, max: usize) -> BrokerResult<Vec<Delivery>> {
        assert!(max > 0, "receive asks for at least one message");
        let e = self.entity(entity)?;
        let now = self.clock.now_ms();
        let (taken, commit, id) = {
            let mut e = e.lock();
            let (mut ops, _) = self.tidy(&mut e, now);
            let session = held_session(&e, &token, now)?;
            let lock_until = e.session_locks[&session].until;
            let seqs = e.available_in_session(&session, max);
            let taken = self.take(&mut e, &seqs, mode, lock_until, &mut ops);
            (taken, self.store.commit(&ops)?, e.record.id)
        };
        commit.durable().await?;
        self.deliveries(id, taken).await
    }

    /// Extends the session lock held by `token`, and with it the locks of the messages
    /// received under it. Returns the new expiry.
    pub fn renew_session_lock(&self, entity: &str, token: Uuid) -> BrokerResult<Millis> {
        let e = self.entity(entity)?;
        let now = self.clock.now_ms();
        let mut e = e.lock();
        let session = held_session(&e, &token, now)?;
        let until = now + e.record.config.lock_duration_ms;
        e.session_locks.insert(session.clone(), Lock { token, until });
        for seq in e.locked_in_session(&session) {
            if let Some(mut m) = e.remove(seq) {
                m.lock = m.lock.map(|l| Lock { until, ..l });
                e.put(m);
            }
        }
        Ok(until)
    }

    /// Gives the session up (its receiver closed, or its connection went away). The
    /// messages received under it and not settled are unlocked at once, their
    /// delivery counted as failed, so the next receiver of the session gets them first
    /// and the session stays in order (as in Azure: a session's messages have no lock
    /// of their own). Waiting for their locks to lapse would let later messages of
    /// the session overtake them.
    pub fn release_session(&self, entity: &str, token: Uuid) -> BrokerResult<()> {
        let e = self.entity(entity)?;
        {
            let mut e = e.lock();
            let released: Vec<String> = e.session_locks.iter().filter(|(_, l)| l.token == token).map(|(id, _)| id.clone()).collect();
            e.session_locks.retain(|_, l| l.token != token);
            let mut ops = Vec::new();
            for session in &released {
                for seq in e.locked_in_session(session) {
                    ops.extend(self.lose_lock(&mut e, seq).0);
                }
            }
            if !ops.is_empty() {
                // The new delivery counts need not be awaited: a crash before they are
                // on disk only counts those deliveries once fewer.
                let _ = self.store.commit(&ops)?;
            }
        }
        // Receivers waiting for the next free session may take it now.
        self.wake(&entity.to_ascii_lowercase());
        Ok(())
    }

    /// Sets (or, with `None`, clears) the state of the session held by `token`.
    pub async fn set_session_state(&self, entity: &str, token: Uuid, state: Option<Vec<u8>>) -> BrokerResult<()> {
        let e = self.entity(entity)?;
        let now = self.clock.now_ms();
        let commit = {
            let mut e = e.lock();
            let session = held_session(&e, &token, now)?;
            let key = codec::session_state_key(e.record.id, &session);
            let op = match &state {
                Some(bytes) => Op::Put { key, value: bytes.clone() },
                None => Op::Delete { key },
            };
            let commit = self.store.commit(&[op])?;
            e.session_state_times.insert(session.clone(), now);
            match state {
                Some(bytes) => e.session_states.insert(session, bytes),
                None => e.session_states.remove(&session),
            };
            commit
        };
        Ok(commit.durable().await?)
    }

    /// The state of the session held by `token`.
    pub fn session_state(&self, entity: &str, token: Uuid) -> BrokerResult<Option<Vec<u8>>> {
        let e = self.entity(entity)?;
        let now = self.clock.now_ms();
        let e = e.lock();
        let session = held_session(&e, &token, now)?;
        Ok(e.session_states.get(&session).cloned())
    }

    /// Sessions of `entity` that hold messages or state.
    pub fn list_sessions(&self, entity: &str) -> BrokerResult<Vec<String>> {
        self.list_sessions_since(entity, None)
    }

    /// Sessions of `entity` that hold messages or state or, with `since`, only those
    /// whose state was set after that instant.
    pub fn list_sessions_since(&self, entity: &str, since: Option<Millis>) -> BrokerResult<Vec<String>> {
        let e = self.entity(entity)?;
        let e = e.lock();
        require_sessions(&e)?;
        Ok(match since {
            None => e.sessions(),
            Some(t) => {
                let mut ids: Vec<String> = e.session_state_times.iter().filter(|(_, &at)| at > t).map(|(id, _)| id.clone()).collect();
                ids.sort();
                ids
            }
        })
    }
}
