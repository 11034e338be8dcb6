//! Per-subscription delivery counters and the publish-to-delivery latency
//! distribution, lock-free, since the server started.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Enough buckets for about 2^40 µs.
const BUCKETS: usize = 160;

#[derive(Debug)]
struct Histogram {
    counts: Vec<AtomicU64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect() }
    }
}

/// Values under 8 µs have a bucket each; above, each doubling splits in four.
fn bucket(us: u64) -> usize {
    if us < 8 {
        return us as usize;
    }
    let log2 = 63 - us.leading_zeros() as usize;
    let fraction = ((us >> (log2 - 2)) & 3) as usize;
    (8 + (log2 - 3) * 4 + fraction).min(BUCKETS - 1)
}

/// The (exclusive) upper bound of bucket `b`, in µs.
fn bucket_bound(b: usize) -> u64 {
    if b < 8 {
        return b as u64;
    }
    let (log2, fraction) = ((b - 8) / 4 + 3, ((b - 8) % 4) as u64);
    let base = 1u64 << log2.min(62);
    base + base / 4 * (fraction + 1)
}

impl Histogram {
    fn record(&self, us: u64) {
        self.counts[bucket(us)].fetch_add(1, Ordering::Relaxed);
    }

    fn quantile(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_bound(b));
            }
        }
        None
    }
}

#[derive(Debug, Default)]
pub struct DeliveryMetrics {
    matched: AtomicU64,
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    dead_lettered: AtomicU64,
    dropped: AtomicU64,
    retrying: AtomicU64,
    latency: Histogram,
    last_failure: Mutex<Option<String>>,
}

/// A snapshot, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsView {
    /// Events that passed the filter.
    pub matched_events: u64,
    pub delivered_events: u64,
    pub failed_attempts: u64,
    pub dead_lettered_events: u64,
    /// Events given up on with nowhere to dead-letter them.
    pub dropped_events: u64,
    /// Events waiting for a retry now.
    pub retrying_events: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub last_failure: Option<String>,
}

impl DeliveryMetrics {
    pub fn new() -> Arc<DeliveryMetrics> {
        Arc::new(DeliveryMetrics::default())
    }

    pub(crate) fn matched(&self, n: usize) {
        self.matched.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Events delivered at `now` that were published at `published`: each one's
    /// publish-to-delivery latency is recorded.
    pub(crate) fn delivered(&self, now: crate::clock::Millis, published: impl Iterator<Item = crate::clock::Millis>) {
        let mut n = 0;
        for at in published {
            self.latency.record((now.saturating_sub(at).max(0) as u64) * 1000);
            n += 1;
        }
        self.delivered.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, why: String) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
        *self.last_failure.lock() = Some(why);
    }

    pub(crate) fn dead_lettered(&self, n: usize) {
        self.dead_lettered.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_retrying(&self, n: usize) {
        self.retrying.store(n as u64, Ordering::Relaxed);
    }

    pub fn view(&self) -> MetricsView {
        let ms = |us: Option<u64>| us.map(|v| v as f64 / 1000.0);
        MetricsView {
            matched_events: self.matched.load(Ordering::Relaxed),
            delivered_events: self.delivered.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            dead_lettered_events: self.dead_lettered.load(Ordering::Relaxed),
            dropped_events: self.dropped.load(Ordering::Relaxed),
            retrying_events: self.retrying.load(Ordering::Relaxed),
            latency_p50_ms: ms(self.latency.quantile(0.5)),
            latency_p99_ms: ms(self.latency.quantile(0.99)),
            last_failure: self.last_failure.lock().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_their_values_within_a_quarter() {
        for us in [1u64, 2, 3, 5, 7, 100, 999, 1_000, 12_345, 1 << 30] {
            let bound = bucket_bound(bucket(us));
            assert!(bound >= us && bound <= us + us / 4 + 1, "{us} -> {bound}");
        }
    }

    #[test]
    fn quantiles_of_recorded_latencies() {
        let m = DeliveryMetrics::default();
        // Published 1 to 100 ms before they were delivered.
        m.delivered(1_000, (1..=100).map(|ms| 1_000 - ms));
        let v = m.view();
        assert_eq!(v.delivered_events, 100);
        let p50 = v.latency_p50_ms.unwrap();
        assert!((50.0..=63.0).contains(&p50), "{p50}");
        assert!(v.latency_p99_ms.unwrap() >= 99.0);
    }
}
