//! The advisor on the music-share app's four tasks (each gets the service the app
//! uses, with the reasons that decide it) and on a table of scenarios covering every
//! criterion.

use super::*;

fn reasons(a: &Advice) -> String {
    a.reasons.join(" ")
}

fn task(name: &str) -> Task {
    scenario(name).expect("a music-share task")
}

fn upload() -> Task {
    task("upload")
}
fn comment() -> Task {
    task("comment")
}
fn track_published() -> Task {
    task("track-published")
}
fn plays() -> Task {
    task("plays")
}

#[test]
fn the_music_share_tasks_get_the_services_the_app_uses() {
    let a = advise(&upload());
    assert_eq!(a.service, Service::StorageQueue);
    assert!(a.with.iter().any(|(s, _)| *s == Service::Blob), "the claim check: {a:?}");
    assert!(reasons(&a).contains("64 KB") && reasons(&a).contains("200 GB"), "{}", reasons(&a));

    let a = advise(&comment());
    assert_eq!(a.service, Service::ServiceBus);
    let why = reasons(&a);
    assert!(why.contains("duplicate detection") && why.contains("sessions") && why.contains("ordered"), "{why}");
    assert!(a.with.is_empty(), "a comment fits in a message");

    let a = advise(&track_published());
    assert_eq!(a.service, Service::EventGrid);
    assert!(reasons(&a).contains("2 independent handlers") && reasons(&a).contains("pushed"), "{}", reasons(&a));

    let a = advise(&plays());
    assert_eq!(a.service, Service::EventHubs);
    let why = reasons(&a);
    assert!(why.contains("stream") && why.contains("read it again") && why.contains("50000 events/s"), "{why}");
}

#[test]
fn every_answer_says_why_not_the_others() {
    for t in [upload(), comment(), track_published(), plays()] {
        let a = advise(&t);
        let mut named: Vec<Service> = a.not.iter().map(|(s, _)| *s).collect();
        named.push(a.service);
        named.sort();
        assert_eq!(named, [Service::StorageQueue, Service::ServiceBus, Service::EventHubs, Service::EventGrid], "{a:?}");
    }
}

#[test]
fn a_table_of_scenarios_covers_the_deciding_criteria() {
    let d = Task::default;
    let table: Vec<(&str, Task, Service, &str)> = vec![
        ("plain work queue", d(), Service::StorageQueue, "simplest queue"),
        ("work that must not run twice", Task { dedup: true, ..d() }, Service::ServiceBus, "duplicate detection"),
        ("steps of one order in sequence", Task { ordered: true, ..d() }, Service::ServiceBus, "ordered"),
        ("a conversation per user", Task { sessions: true, ..d() }, Service::ServiceBus, "sessions"),
        ("debit and credit together", Task { transactions: true, ..d() }, Service::ServiceBus, "transactions"),
        ("one message to three services", Task { handlers: 3, ..d() }, Service::ServiceBus, "topic"),
        ("an AMQP shop", Task { protocol: Protocol::Amqp, ..d() }, Service::ServiceBus, "AMQP"),
        ("a backlog of terabytes", Task { backlog_gb: 2_000.0, ..d() }, Service::StorageQueue, "5 PiB"),
        ("ordered, but over 80 GB waiting", Task { ordered: true, backlog_gb: 500.0, ..d() }, Service::StorageQueue, "80 GB"),
        ("a 10 MB document to process", Task { size_kb: 10_240, ..d() }, Service::StorageQueue, "Blob storage"),
        ("a 1 MB command that must not repeat", Task { size_kb: 1024, dedup: true, ..d() }, Service::ServiceBus, "256 KB"),
        ("a blob was created; tell one function", Task { kind: Kind::Event, ..d() }, Service::EventGrid, "retries"),
        ("an order shipped; five teams react", Task { kind: Kind::Event, handlers: 5, delivery: Delivery::Push, ..d() }, Service::EventGrid, "fans it out"),
        ("events handlers pull when ready", Task { kind: Kind::Event, delivery: Delivery::Pull, ..d() }, Service::EventGrid, "queue subscription"),
        ("a 5 MB event", Task { kind: Kind::Event, size_kb: 5_000, ..d() }, Service::EventGrid, "1024 KB"),
        ("device telemetry", Task { kind: Kind::Event, streaming: true, per_second: 100_000, ..d() }, Service::EventHubs, "continuous stream"),
        ("20,000 events/s of clicks", Task { kind: Kind::Event, per_second: 20_000, ..d() }, Service::EventHubs, "5000 events/s"),
        ("an audit log read again later", Task { kind: Kind::Event, replay: true, ..d() }, Service::EventHubs, "read it again"),
        ("Kafka producers", Task { kind: Kind::Event, protocol: Protocol::Kafka, ..d() }, Service::EventHubs, "Kafka"),
        ("events in order per key", Task { kind: Kind::Event, ordered: true, ..d() }, Service::EventHubs, "partition"),
        ("telemetry whose alarms must reach a webhook", Task { kind: Kind::Event, streaming: true, delivery: Delivery::Push, ..d() }, Service::EventHubs, "Event Grid takes"),
    ];
    assert!(table.len() >= 15);
    for (what, task, want, because) in table {
        let a = advise(&task);
        assert_eq!(a.service, want, "{what}: {a:?}");
        let why = format!("{} {}", reasons(&a), a.with.iter().map(|(s, r)| format!("{}: {r}", s.name())).collect::<Vec<_>>().join(" "));
        assert!(why.contains(because), "{what}: expected a reason about {because:?}, got: {why}");
    }
}

#[test]
fn snippets_use_this_servers_endpoints() {
    let e = snippets::Endpoints { storage: "UseThisStorage".into(), service_bus: "Endpoint=sb://localhost:5672;".into(), http: "http://127.0.0.1:5300".into() };
    for (s, base) in [(Service::StorageQueue, &e.storage), (Service::ServiceBus, &e.service_bus), (Service::EventHubs, &e.service_bus), (Service::EventGrid, &e.http)] {
        let code = snippets::snippet(s, &e);
        assert!(code.contains("from azure.") && code.contains(base.as_str()), "{s:?}: {code}");
        assert!(snippets::connection(s, &e).starts_with(base.as_str()), "{s:?}");
    }
}
