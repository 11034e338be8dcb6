//! Errors a worker met, as the AMQP load generators report them: how many, how
//! many of each kind (the text before the first ':'), and a few distinct examples.

use std::collections::BTreeMap;

/// Examples kept per worker, and per merged total.
const SAMPLES_PER_WORKER: usize = 5;
const SAMPLES_IN_TOTAL: usize = 10;

#[derive(Debug, Default)]
pub struct Errors {
    pub count: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub samples: Vec<String>,
}

impl Errors {
    pub fn record(&mut self, what: String) {
        self.count += 1;
        let kind = what.split(':').next().unwrap_or("error").to_string();
        *self.by_kind.entry(kind).or_insert(0) += 1;
        if self.samples.len() < SAMPLES_PER_WORKER && !self.samples.contains(&what) {
            self.samples.push(what);
        }
    }

    pub fn merge(&mut self, o: Errors) {
        self.count += o.count;
        for (k, v) in o.by_kind {
            *self.by_kind.entry(k).or_insert(0) += v;
        }
        for s in o.samples {
            if self.samples.len() < SAMPLES_IN_TOTAL && !self.samples.contains(&s) {
                self.samples.push(s);
            }
        }
    }
}
