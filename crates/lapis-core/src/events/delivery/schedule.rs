//! When a failed delivery is tried again, and when it is not: the service's retry
//! schedule with its jitter, the minimum delays some answers impose, the answers that
//! end delivery at once, and the `lastDeliveryOutcome` each failure is reported as.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::transport::{HttpFailure, ServiceFailure};
use crate::clock::Millis;

const SECOND: Millis = 1000;
const MINUTE: Millis = 60 * SECOND;
const HOUR: Millis = 60 * MINUTE;

/// The delay after the first, second, ... failed attempt; the last step repeats.
pub const RETRY_SCHEDULE: [Millis; 10] = [10 * SECOND, 30 * SECOND, MINUTE, 5 * MINUTE, 10 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR];

/// The most jitter added to a step, as a fraction of it.
pub const JITTER: f64 = 0.1;

/// How one attempt went wrong, as a dead-letter record names it
/// (`lastDeliveryOutcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    BadRequest,
    Unauthorized,
    Forbidden,
    PayloadTooLarge,
    NotFound,
    TimedOut,
    Busy,
    SocketError,
    ResolutionError,
    Full,
}

/// What one failed attempt means for the events it carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub outcome: Outcome,
    /// The endpoint's status, when it answered.
    pub status: Option<u16>,
    pub detail: String,
}

impl Failure {
    pub fn from_status(status: u16) -> Failure {
        let outcome = match status {
            400 => Outcome::BadRequest,
            401 => Outcome::Unauthorized,
            403 => Outcome::Forbidden,
            404 => Outcome::NotFound,
            408 => Outcome::TimedOut,
            413 => Outcome::PayloadTooLarge,
            _ => Outcome::Busy,
        };
        Failure { outcome, status: Some(status), detail: format!("the endpoint answered {status}") }
    }

    pub fn from_http(failure: &HttpFailure) -> Failure {
        let (outcome, detail) = match failure {
            HttpFailure::TimedOut => (Outcome::TimedOut, "the endpoint did not answer in time".to_string()),
            HttpFailure::Unreachable(why) => (Outcome::SocketError, why.clone()),
            HttpFailure::BadUrl(why) => (Outcome::ResolutionError, why.clone()),
        };
        Failure { outcome, status: None, detail }
    }

    pub fn from_service(failure: &ServiceFailure) -> Failure {
        let (outcome, detail) = match failure {
            ServiceFailure::NotFound(why) => (Outcome::NotFound, why.clone()),
            ServiceFailure::Rejected(why) => (Outcome::BadRequest, why.clone()),
            ServiceFailure::Busy(why) => (Outcome::Busy, why.clone()),
        };
        Failure { outcome, status: None, detail }
    }

    /// Answers that no retry can change: the service dead-letters these at once.
    pub fn is_final(&self) -> bool {
        matches!(self.outcome, Outcome::BadRequest | Outcome::Unauthorized | Outcome::Forbidden | Outcome::PayloadTooLarge)
    }

    /// The least wait this answer asks for.
    fn minimum_delay(&self) -> Millis {
        match self.status {
            Some(408) => 2 * MINUTE,
            Some(503) => 30 * SECOND,
            _ => 10 * SECOND,
        }
    }

    /// How long a subscription holds back new deliveries after failing repeatedly
    /// this way (the service's "probation").
    pub fn probation(&self) -> Millis {
        match self.outcome {
            Outcome::SocketError => 30 * SECOND,
            Outcome::NotFound | Outcome::ResolutionError | Outcome::Unauthorized | Outcome::Forbidden | Outcome::Full => 5 * MINUTE,
            _ => 10 * SECOND,
        }
    }
}

/// The wait before the next attempt, after `failed_attempts` (>= 1) attempts failed,
/// the last one with `last`: the schedule's step (never under what the answer asks
/// for) plus up to [`JITTER`] of it.
pub fn retry_delay(failed_attempts: u32, last: &Failure) -> Millis {
    let step = RETRY_SCHEDULE[(failed_attempts.max(1) as usize - 1).min(RETRY_SCHEDULE.len() - 1)];
    let base = step.max(last.minimum_delay());
    base + (base as f64 * rand::thread_rng().gen_range(0.0..=JITTER)) as Millis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_grows_with_jitter_within_a_tenth() {
        let busy = Failure::from_status(500);
        for (i, step) in RETRY_SCHEDULE.iter().enumerate() {
            for _ in 0..50 {
                let d = retry_delay(i as u32 + 1, &busy);
                assert!(d >= *step && d <= step + step / 10, "attempt {} waited {d} ms", i + 1);
            }
        }
        assert!(retry_delay(25, &busy) >= 12 * HOUR, "the last step repeats");
    }

    #[test]
    fn some_answers_ask_for_longer_waits_and_some_end_delivery() {
        assert!(retry_delay(1, &Failure::from_status(408)) >= 2 * MINUTE);
        assert!(retry_delay(1, &Failure::from_status(503)) >= 30 * SECOND);
        assert!(retry_delay(3, &Failure::from_status(503)) >= MINUTE, "the schedule wins when it is longer");
        for final_status in [400, 401, 403, 413] {
            assert!(Failure::from_status(final_status).is_final(), "{final_status}");
        }
        for retried in [404, 408, 429, 500, 503] {
            assert!(!Failure::from_status(retried).is_final(), "{retried}");
        }
        assert_eq!(Failure::from_http(&HttpFailure::Unreachable("refused".into())).outcome, Outcome::SocketError);
        assert!(Failure::from_service(&ServiceFailure::Rejected("too large".into())).is_final());
    }
}
