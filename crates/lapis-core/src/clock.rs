//! Time as the services see it. Everything that expires or becomes visible asks a
//! [`Clock`], never the system directly, so tests can jump ahead instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> Millis;
}

fn system_ms() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as Millis).unwrap_or(0)
}

/// The wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        system_ms()
    }
}

/// The wall clock plus an offset that only moves forward; `lapis serve
/// --enable-test-clock` exposes [`ShiftableClock::advance`] to tests.
#[derive(Debug, Default)]
pub struct ShiftableClock {
    offset_ms: AtomicI64,
}

impl ShiftableClock {
    pub fn advance(&self, by_ms: Millis) {
        assert!(by_ms >= 0, "the clock only moves forward");
        self.offset_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for ShiftableClock {
    fn now_ms(&self) -> Millis {
        system_ms() + self.offset_ms.load(Ordering::SeqCst)
    }
}
