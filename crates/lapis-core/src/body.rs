//! Message bodies held in memory up to a budget, and read back from the store beyond
//! it, so that memory does not grow with a backlog. Shared by every service that
//! queues messages.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Where a message's body is: in memory, or only in the store.
#[derive(Debug, Clone)]
pub enum Body {
    Inline(Arc<[u8]>),
    Stored { len: u32 },
}

impl Body {
    pub fn len(&self) -> usize {
        match self {
            Body::Inline(t) => t.len(),
            Body::Stored { len } => *len as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Memory allowed for message bodies kept inline when the store can read them back.
pub const DEFAULT_INLINE_BODY_BUDGET: i64 = 64 << 20;

/// Keeps `bytes` in memory when the store cannot read them back, or while `budget`
/// lasts; otherwise only their length is kept and the body is read from the store.
pub fn hold_body(budget: &AtomicI64, store_keeps_values: bool, bytes: Vec<u8>) -> Body {
    if !store_keeps_values {
        return Body::Inline(bytes.into());
    }
    let len = bytes.len() as i64;
    if budget.fetch_sub(len, Ordering::Relaxed) >= len {
        Body::Inline(bytes.into())
    } else {
        budget.fetch_add(len, Ordering::Relaxed);
        Body::Stored { len: len as u32 }
    }
}

/// Returns an inline body's memory to `budget`.
pub fn release_body(budget: &AtomicI64, store_keeps_values: bool, body: &Body) {
    if let (Body::Inline(t), true) = (body, store_keeps_values) {
        budget.fetch_add(t.len() as i64, Ordering::Relaxed);
    }
}

/// One service's inline-body budget, with whether its store reads bodies back: what
/// [`hold_body`] and [`release_body`] need, kept together.
#[derive(Debug)]
pub struct InlineBudget {
    left: AtomicI64,
    store_keeps_values: bool,
}

impl InlineBudget {
    pub fn new(store_keeps_values: bool, budget: i64) -> Self {
        InlineBudget { left: AtomicI64::new(budget), store_keeps_values }
    }

    pub fn hold(&self, bytes: Vec<u8>) -> Body {
        hold_body(&self.left, self.store_keeps_values, bytes)
    }

    pub fn release(&self, body: &Body) {
        release_body(&self.left, self.store_keeps_values, body)
    }

    /// What is left of the budget.
    pub fn left(&self) -> i64 {
        self.left.load(Ordering::Relaxed)
    }
}

