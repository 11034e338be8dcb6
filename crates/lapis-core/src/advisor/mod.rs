//! `lapis choose`: which of the four services fits a communication task, and why, in
//! the terms that decide it (event or message, what the sender expects, ordering,
//! duplicates, transactions, sessions, size, backlog, volume, fan-out, push or pull,
//! replay, protocol). The rules follow Microsoft's comparison of its messaging
//! services; the limits quoted are Azure's. [`snippets`] turns advice into a
//! connection string and a minimal SDK snippet.

pub mod render;
pub mod snippets;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

/// The four services (and the Blob service a claim check keeps large payloads in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Service {
    StorageQueue,
    ServiceBus,
    EventHubs,
    EventGrid,
    Blob,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::StorageQueue => "Storage Queues",
            Service::ServiceBus => "Service Bus",
            Service::EventHubs => "Event Hubs",
            Service::EventGrid => "Event Grid",
            Service::Blob => "Blob storage",
        }
    }
}

/// What is sent: a fact that happened (an event: the sender expects nothing of who
/// hears it) or a message (the sender hands over work and expects it done).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Kind {
    Event,
    #[default]
    Message,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Delivery {
    /// The service calls the handlers (webhooks, functions).
    Push,
    /// Handlers ask for work when they are ready.
    Pull,
    #[default]
    Either,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Protocol {
    #[default]
    Any,
    Http,
    Amqp,
    Kafka,
}

impl Delivery {
    /// `push` or `pull` as a user types it; anything else is `Either`.
    pub fn from_word(word: &str) -> Delivery {
        match word.trim().to_ascii_lowercase().as_str() {
            "push" => Delivery::Push,
            "pull" => Delivery::Pull,
            _ => Delivery::Either,
        }
    }
}

impl Protocol {
    /// `http`, `amqp` or `kafka` as a user types it; anything else is `Any`.
    pub fn from_word(word: &str) -> Protocol {
        match word.trim().to_ascii_lowercase().as_str() {
            "http" => Protocol::Http,
            "amqp" => Protocol::Amqp,
            "kafka" => Protocol::Kafka,
            _ => Protocol::Any,
        }
    }
}

/// A communication task, as `lapis choose` asks about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub kind: Kind,
    /// Items must be handled in the order sent (within a key).
    pub ordered: bool,
    /// A retried send must be stored once.
    pub dedup: bool,
    /// Several sends and settlements must commit together.
    pub transactions: bool,
    /// Related items must be handled together, by one consumer at a time.
    pub sessions: bool,
    /// Typical item size in KB.
    pub size_kb: u64,
    /// The most items that may wait unprocessed, in GB.
    pub backlog_gb: f64,
    /// Items per second at peak.
    pub per_second: u64,
    /// A continuous stream (telemetry, clicks, logs) rather than discrete items.
    pub streaming: bool,
    /// Independent handlers that each get every item.
    pub handlers: u32,
    pub delivery: Delivery,
    /// Consumers must re-read what they already read (replay).
    pub replay: bool,
    pub protocol: Protocol,
}

impl Default for Task {
    fn default() -> Self {
        Task { kind: Kind::Message, ordered: false, dedup: false, transactions: false, sessions: false, size_kb: 1, backlog_gb: 1.0, per_second: 10, streaming: false, handlers: 1, delivery: Delivery::Either, replay: false, protocol: Protocol::Any }
    }
}

/// What `lapis choose` says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    /// The service the task should go to.
    pub service: Service,
    /// Services it works with, and for what.
    pub with: Vec<(Service, String)>,
    /// Why, in the terms that decided it.
    pub reasons: Vec<String>,
    /// Why not each of the others.
    pub not: Vec<(Service, String)>,
}

// Azure's limits the rules quote.
const QUEUE_MESSAGE_KB: u64 = 64;
const SERVICE_BUS_MESSAGE_KB: u64 = 256;
const EVENT_KB: u64 = 1024;
const SERVICE_BUS_QUEUE_GB: f64 = 80.0;
const EVENT_GRID_TOPIC_PER_SECOND: u64 = 5_000;

/// Whether a task needs what only Service Bus gives among the queues.
fn broker_features(t: &Task) -> Vec<&'static str> {
    let mut needs = Vec::new();
    if t.ordered {
        needs.push("ordered delivery (first in, first out within a session)");
    }
    if t.sessions {
        needs.push("sessions (related messages to one consumer at a time)");
    }
    if t.dedup {
        needs.push("duplicate detection (a retried send is stored once)");
    }
    if t.transactions {
        needs.push("transactions (sends and settlements that commit together)");
    }
    needs
}

/// The music-share app's four tasks: (name, what it is, the task).
pub fn music_share() -> Vec<(&'static str, &'static str, Task)> {
    let d = Task::default;
    vec![
        ("upload", "A track upload: a job for the API workers, with an audio file of tens of MB, in bursts that build a deep backlog.", Task { kind: Kind::Message, size_kb: 20_000, backlog_gb: 200.0, per_second: 200, ..d() }),
        ("comment", "A comment: stored once however often the phone retries, in order per track.", Task { kind: Kind::Message, dedup: true, ordered: true, sessions: true, size_kb: 2, per_second: 500, ..d() }),
        ("track-published", "\"A new track was published\": independent handlers (notifications, search index) react, pushed to them.", Task { kind: Kind::Event, handlers: 2, delivery: Delivery::Push, per_second: 20, ..d() }),
        ("plays", "Plays: listening telemetry, read by a trending aggregator and replayable.", Task { kind: Kind::Event, streaming: true, replay: true, per_second: 50_000, delivery: Delivery::Pull, ..d() }),
    ]
}

/// The music-share task called `name`.
pub fn scenario(name: &str) -> Option<Task> {
    music_share().into_iter().find(|(n, _, _)| *n == name).map(|(_, _, t)| t)
}

pub fn advise(t: &Task) -> Advice {
    match t.kind {
        Kind::Message => advise_message(t),
        Kind::Event => advise_event(t),
    }
}

fn claim_check(t: &Task, limit_kb: u64, with: &mut Vec<(Service, String)>, reasons: &mut Vec<String>) {
    if t.size_kb > limit_kb {
        with.push((Service::Blob, format!("holds each {} KB payload; the message carries only its name (the claim-check pattern)", t.size_kb)));
        reasons.push(format!("Items of {} KB are over the {limit_kb} KB a message may carry, so the payload goes to Blob storage and the message points at it.", t.size_kb));
    }
}

fn advise_message(t: &Task) -> Advice {
    let features = broker_features(t);
    let mut reasons = vec!["It is a message: the sender hands over work and expects it to be done, so it needs a queue that keeps it until a consumer settles it.".to_string()];
    let mut with = Vec::new();
    let needs_broker = !features.is_empty() || t.protocol == Protocol::Amqp || t.handlers > 1;
    if needs_broker && t.backlog_gb <= SERVICE_BUS_QUEUE_GB {
        if !features.is_empty() {
            reasons.push(format!("It needs {}: Service Bus has them, Storage Queues do not.", features.join(", ")));
        }
        if t.handlers > 1 {
            reasons.push(format!("{} independent handlers each get every message: a Service Bus topic with one subscription (and filter) per handler.", t.handlers));
        }
        if t.protocol == Protocol::Amqp {
            reasons.push("AMQP 1.0 is Service Bus's protocol.".into());
        }
        reasons.push("Peek-lock, dead-lettering and a max delivery count keep a message that keeps failing from being lost or retried forever.".into());
        claim_check(t, SERVICE_BUS_MESSAGE_KB, &mut with, &mut reasons);
        let not = vec![
            (Service::StorageQueue, format!("no {}; only a simple work queue", if features.is_empty() { "topics or AMQP".to_string() } else { features.iter().map(|f| f.split(" (").next().unwrap_or(f)).collect::<Vec<_>>().join(", ") })),
            (Service::EventHubs, "a stream consumers read at their own offset, not a queue of work each consumer settles".into()),
            (Service::EventGrid, "for notifications of what happened; it does not hold work for a consumer to settle".into()),
        ];
        return Advice { service: Service::ServiceBus, with, reasons, not };
    }
    if !features.is_empty() {
        reasons.push(format!("It needs {} but its backlog of {} GB is over the {SERVICE_BUS_QUEUE_GB} GB a Service Bus queue holds: Storage Queues hold terabytes; make the handling idempotent and order-tolerant instead.", features.join(", "), t.backlog_gb));
    } else {
        reasons.push("It needs no ordering, duplicate detection, sessions or transactions: the simplest queue does, over plain HTTP.".into());
    }
    if t.backlog_gb > SERVICE_BUS_QUEUE_GB {
        reasons.push(format!("A backlog of {} GB fits: a Storage Queue grows to the account's capacity (up to 5 PiB); a Service Bus queue stops at {SERVICE_BUS_QUEUE_GB} GB.", t.backlog_gb));
    } else {
        reasons.push("Consumers drain a deep backlog at their own pace; a message stays invisible while one works on it and reappears if that consumer dies.".into());
    }
    claim_check(t, QUEUE_MESSAGE_KB, &mut with, &mut reasons);
    let not = vec![
        (Service::ServiceBus, "more than the task needs (sessions, duplicate detection, transactions, topics), with a smaller backlog ceiling".into()),
        (Service::EventHubs, "a stream read by offset, not a queue of work items each handled once".into()),
        (Service::EventGrid, "for notifications of what happened; it does not hold work until a consumer is ready".into()),
    ];
    Advice { service: Service::StorageQueue, with, reasons, not }
}

fn advise_event(t: &Task) -> Advice {
    let mut reasons = vec!["It is an event: the sender states what happened and expects nothing of who hears it.".to_string()];
    let mut with = Vec::new();
    let stream = t.streaming || t.replay || t.protocol == Protocol::Kafka || t.per_second > EVENT_GRID_TOPIC_PER_SECOND || t.ordered;
    if stream {
        if t.streaming {
            reasons.push("It is a continuous stream (telemetry): Event Hubs takes it at high volume and keeps it for consumers to read at their own pace.".into());
        }
        if t.per_second > EVENT_GRID_TOPIC_PER_SECOND {
            reasons.push(format!("{} events/s is over the {EVENT_GRID_TOPIC_PER_SECOND} events/s an Event Grid topic takes; an event hub scales by partitions.", t.per_second));
        }
        if t.replay {
            reasons.push("Consumers can read it again: an event hub retains events (days) and a reader starts from any offset or time.".into());
        }
        if t.ordered {
            reasons.push("Order is kept per partition (events with the same partition key stay in order).".into());
        }
        if t.protocol == Protocol::Kafka {
            reasons.push("Kafka clients speak to Event Hubs unchanged.".into());
        }
        if t.handlers > 1 {
            reasons.push(format!("{} independent readers: one consumer group each, with its own checkpoints.", t.handlers));
        }
        if t.delivery == Delivery::Push {
            with.push((Service::EventGrid, "pushes the few events that need a reaction to their handlers".into()));
            reasons.push("Push to handlers was asked for: Event Hubs is pulled, so Event Grid takes the discrete reactions.".into());
        }
        let not = vec![
            (Service::EventGrid, format!("discrete events pushed to handlers, up to {EVENT_GRID_TOPIC_PER_SECOND} events/s per topic, not replayable")),
            (Service::ServiceBus, "each message is settled once and gone: no replay, and not built for telemetry volume".into()),
            (Service::StorageQueue, "a work queue: no replay, no consumer groups".into()),
        ];
        return Advice { service: Service::EventHubs, with, reasons, not };
    }
    reasons.push(match t.handlers {
        0 | 1 => "Event Grid pushes it to the handler with retries (up to 24 hours) and dead-lettering.".to_string(),
        n => format!("{n} independent handlers each react to it: Event Grid fans it out, one subscription (and filter) per handler, pushed with retries and dead-lettering."),
    });
    if t.delivery == Delivery::Pull {
        reasons.push("Handlers want to pull: a namespace topic's queue subscription lets them receive, acknowledge and release.".into());
    }
    if t.size_kb > EVENT_KB {
        with.push((Service::Blob, "holds the payload; the event carries its URL".into()));
        reasons.push(format!("Events are at most {EVENT_KB} KB: the {} KB payload goes to Blob storage and the event points at it.", t.size_kb));
    }
    let not = vec![
        (Service::EventHubs, "a stream for volume and replay; handlers would have to poll it and keep offsets".into()),
        (Service::ServiceBus, "for work a sender expects done; its topics fan out too but need each handler to pull and settle".into()),
        (Service::StorageQueue, "one queue per handler and no push: a fan-out you would build yourself".into()),
    ];
    Advice { service: Service::EventGrid, with, reasons, not }
}
