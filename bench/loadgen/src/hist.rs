//! Latency histograms (microseconds) shared by the load generators, and how one is
//! written into a JSON result.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// A histogram of microseconds up to `max_us`, to 3 significant digits.
pub fn new_hist(max_us: u64) -> Histogram<u64> {
    Histogram::new_with_bounds(1, max_us, 3).expect("histogram bounds")
}

/// count, mean and percentiles in milliseconds (3 decimals); null when empty.
pub fn hist_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    let ms = |us: f64| (us / 1000.0 * 1000.0).round() / 1000.0;
    json!({
        "count": h.len(),
        "mean": ms(h.mean()),
        "p50": ms(h.value_at_quantile(0.50) as f64),
        "p90": ms(h.value_at_quantile(0.90) as f64),
        "p99": ms(h.value_at_quantile(0.99) as f64),
        "p999": ms(h.value_at_quantile(0.999) as f64),
        "max": ms(h.max() as f64),
    })
}
