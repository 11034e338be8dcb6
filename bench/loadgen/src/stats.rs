//! The figures: per-worker tallies (`Stats`) and their latency histograms.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::client::Resp;

fn new_hist() -> Histogram<u64> {
    crate::hist::new_hist(120_000_000)
}

/// Per-worker tallies, merged at the end.
pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    pub empty_gets: u64,
    pub status: BTreeMap<String, u64>,
    pub samples: Vec<String>,
    pub main: Histogram<u64>,
    pub put: Histogram<u64>,
    pub get: Histogram<u64>,
    pub del: Histogram<u64>,
    pub reconnects: u64,
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            ok: 0,
            errors: 0,
            empty_gets: 0,
            status: BTreeMap::new(),
            samples: Vec::new(),
            main: new_hist(),
            put: new_hist(),
            get: new_hist(),
            del: new_hist(),
            reconnects: 0,
        }
    }

    pub fn note(&mut self, op: &str, r: &Result<Resp, String>, record: bool) {
        if !record {
            return;
        }
        let key = match r {
            Ok(resp) => format!("{op} {}", resp.status),
            Err(_) => format!("{op} transport-error"),
        };
        *self.status.entry(key).or_insert(0) += 1;
        let bad = match r {
            Ok(resp) => !(200..300).contains(&resp.status),
            Err(_) => true,
        };
        if bad && self.samples.len() < 5 {
            let s = match r {
                Ok(resp) => format!("{op} HTTP {}: {}", resp.status, resp.snippet()),
                Err(e) => format!("{op}: {e}"),
            };
            self.samples.push(s);
        }
    }

    pub fn merge(&mut self, o: Stats) {
        self.ok += o.ok;
        self.errors += o.errors;
        self.empty_gets += o.empty_gets;
        for (k, v) in o.status {
            *self.status.entry(k).or_insert(0) += v;
        }
        for s in o.samples {
            if self.samples.len() < 10 && !self.samples.contains(&s) {
                self.samples.push(s);
            }
        }
        let _ = self.main.add(&o.main);
        let _ = self.put.add(&o.put);
        let _ = self.get.add(&o.get);
        let _ = self.del.add(&o.del);
        self.reconnects += o.reconnects;
    }
}

