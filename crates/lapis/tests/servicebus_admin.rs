//! Service Bus entity management as a user does it: queues declared in the emulator's
//! `Config.json`, and `lapis sb queue …` against a running server.

mod common;

use common::{admin_cli, json, run, start, terminate, text};

fn sb(http_port: u16, args: &[&str]) -> (bool, String, String) {
    admin_cli("sb", http_port, args)
}

const EMULATOR_CONFIG: &str = r#"{"UserConfig": {"Namespaces": [{"Name": "sbemulatorns",
  "Queues": [{"Name": "queue.1", "Properties": {"LockDuration": "PT30S", "MaxDeliveryCount": 5,
    "RequiresDuplicateDetection": true, "DeadLetteringOnMessageExpiration": false, "ForwardTo": ""}}],
  "Topics": []}], "Logging": {"Type": "File"}}}"#;

#[test]
fn queues_declared_in_the_emulator_config_exist_with_emulator_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("Config.json");
    std::fs::write(&config, EMULATOR_CONFIG).unwrap();
    let (server, _, http) = start(&["--in-memory", "--config", config.to_str().unwrap()]);
    let (ok, out, err) = sb(http, &["queue", "show", "queue.1"]);
    let (status, log) = terminate(server);
    assert!(ok, "{err}\n{log}");
    assert!(status.success());
    let q = json(&out);
    let p = &q["Properties"];
    assert_eq!((p["LockDuration"].as_str(), p["MaxDeliveryCount"].as_u64()), (Some("PT30S"), Some(5)));
    assert_eq!(p["DuplicateDetectionHistoryTimeWindow"], "PT20S", "the emulator's default window");
    assert_eq!(p["DefaultMessageTimeToLive"], "PT1H", "the emulator's default TTL");
    assert_eq!(q["ActiveMessageCount"], 0);
}

#[test]
fn an_invalid_declaration_stops_start_up_naming_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("Config.json");
    std::fs::write(&config, EMULATOR_CONFIG.replace("PT30S", "PT1H")).unwrap();
    let out = run(&["serve", "--in-memory", "--config", config.to_str().unwrap(), "--queue-port", "0", "--http-port", "0", "--amqp-port", "0"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("queue.1") && err.contains("LockDuration"), "{err}");
}

#[test]
fn the_cli_manages_queues_and_they_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (server, _, http) = start(&["--data-dir", data]);

    let (ok, out, err) = sb(http, &["queue", "create", "orders", "--lock-duration", "PT10S", "--max-delivery-count", "2"]);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["Properties"]["MaxDeliveryCount"], 2);

    let (ok, _, err) = sb(http, &["queue", "create", "ORDERS"]);
    assert!(!ok && err.contains("409") && err.contains("already exists"), "names are case-insensitive: {err}");
    let (ok, out, _) = sb(http, &["queue", "update", "orders", "--max-delivery-count", "4"]);
    assert!(ok);
    let updated = json(&out);
    assert_eq!((updated["Properties"]["MaxDeliveryCount"].as_u64(), updated["Properties"]["LockDuration"].as_str()), (Some(4), Some("PT10S")), "an update keeps what it does not name");
    let (ok, _, err) = sb(http, &["queue", "update", "missing", "--max-delivery-count", "4"]);
    assert!(!ok && err.contains("404"), "{err}");
    let (ok, _, err) = sb(http, &["queue", "create", "slow", "--lock-duration", "PT1H"]);
    assert!(!ok && err.contains("400") && err.contains("LockDuration"), "{err}");
    let (ok, _, err) = sb(http, &["--key", "wrong", "queue", "list"]);
    assert!(!ok && err.contains("401"), "{err}");
    let (status, log) = terminate(server);
    assert!(status.success(), "{log}");

    let (server, _, http) = start(&["--data-dir", data]);
    let (ok, out, err) = sb(http, &["queue", "list"]);
    assert!(ok, "{err}");
    let list = json(&out);
    let names: Vec<&str> = list["Queues"].as_array().unwrap().iter().map(|q| q["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["orders"]);
    assert_eq!(list["Queues"][0]["Properties"]["MaxDeliveryCount"], 4);
    let (ok, _, _) = sb(http, &["queue", "delete", "orders"]);
    assert!(ok);
    let (ok, _, err) = sb(http, &["queue", "show", "orders"]);
    assert!(!ok && err.contains("404"), "{err}");
    terminate(server);
}

#[test]
fn the_admin_api_refuses_requests_without_a_token() {
    let (server, _, http) = start(&["--in-memory"]);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    use std::io::{Read, Write};
    stream.write_all(b"GET /admin/servicebus/queues HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    terminate(server);
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    assert!(reply.contains("SharedAccessSignature"), "{reply}");
}

/// The topic section of Microsoft's sample emulator configuration.
const EMULATOR_TOPICS: &str = r#"{"UserConfig": {"Namespaces": [{"Name": "sbemulatorns", "Queues": [],
  "Topics": [{"Name": "topic.1",
    "Properties": {"DefaultMessageTimeToLive": "PT1H", "DuplicateDetectionHistoryTimeWindow": "PT20S", "RequiresDuplicateDetection": false},
    "Subscriptions": [
      {"Name": "subscription.1",
       "Properties": {"DeadLetteringOnMessageExpiration": false, "DefaultMessageTimeToLive": "PT1H", "LockDuration": "PT1M",
                      "MaxDeliveryCount": 3, "ForwardDeadLetteredMessagesTo": "", "ForwardTo": "", "RequiresSession": false},
       "Rules": [
         {"Name": "app-prop-filter-1", "Properties": {"FilterType": "Correlation", "CorrelationFilter": {
            "ContentType": "application/text", "CorrelationId": "id1", "Label": "subject1", "MessageId": "msgid1",
            "ReplyTo": "someQueue", "ReplyToSessionId": "sessionId", "SessionId": "session1", "To": "xyz",
            "Properties": {"prop1": "value1"}}}},
         {"Name": "sql-filter-1", "Properties": {"FilterType": "Sql",
            "SqlFilter": {"SqlExpression": "sys.MessageId = '123456' AND userProp1 = 'value1'"},
            "Action": {"SqlExpression": "SET sys.To = 'Entity'"}}}]},
      {"Name": "subscription.2", "Properties": {}}]}]}],
  "Logging": {"Type": "File"}}}"#;

#[test]
fn topics_subscriptions_and_rules_from_the_emulator_sample_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("Config.json");
    std::fs::write(&config, EMULATOR_TOPICS).unwrap();
    let data = dir.path().join("data");
    let (server, _, http) = start(&["--data-dir", data.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    let (ok, out, err) = sb(http, &["subscription", "topic.1", "list"]);
    assert!(ok, "{err}");
    let names: Vec<String> = json(&out)["Subscriptions"].as_array().unwrap().iter().map(|s| s["Name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["topic.1/Subscriptions/subscription.1", "topic.1/Subscriptions/subscription.2"]);
    let (ok, out, _) = sb(http, &["rule", "topic.1", "subscription.1", "list"]);
    assert!(ok);
    let rules = json(&out);
    assert_eq!(rules["Rules"][0]["Name"], "app-prop-filter-1");
    assert_eq!(rules["Rules"][0]["Properties"]["CorrelationFilter"]["Label"], "subject1");
    assert_eq!(rules["Rules"][1]["Properties"]["Action"]["SqlExpression"], "SET sys.To = 'Entity'");
    let (_, out, _) = sb(http, &["rule", "topic.1", "subscription.2", "list"]);
    assert_eq!(json(&out)["Rules"][0]["Name"], "$Default", "a subscription without rules takes every message");
    terminate(server);

    // Starting again with the same declarations changes nothing and duplicates nothing.
    let (server, _, http) = start(&["--data-dir", data.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    let (_, out, _) = sb(http, &["rule", "topic.1", "subscription.1", "list"]);
    assert_eq!(json(&out)["Rules"].as_array().unwrap().len(), 2);
    terminate(server);
}

#[test]
fn an_invalid_rule_in_the_config_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("Config.json");
    std::fs::write(&config, EMULATOR_TOPICS.replace("userProp1 = 'value1'", "userProp1 = ")).unwrap();
    let out = run(&["serve", "--in-memory", "--config", config.to_str().unwrap(), "--queue-port", "0", "--http-port", "0", "--amqp-port", "0"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("sql-filter-1") && err.contains("SqlFilter"), "{err}");
}

#[test]
fn the_cli_manages_topics_subscriptions_and_rules() {
    let (server, _, http) = start(&["--in-memory"]);
    let ok = |args: &[&str]| {
        let (ok, out, err) = sb(http, args);
        assert!(ok, "{args:?}: {err}");
        out
    };
    ok(&["topic", "create", "events", "--default-ttl", "PT10M"]);
    ok(&["subscription", "events", "create", "audit", "--max-delivery-count", "4"]);
    let sub = json(&ok(&["subscription", "events", "show", "audit"]));
    assert_eq!(sub["Properties"]["MaxDeliveryCount"], 4);
    ok(&["rule", "events", "audit", "add", "big", "--sql", "size > 10 AND sys.Label LIKE 'order%'", "--action", "SET tier = 'gold'"]);
    ok(&["rule", "events", "audit", "add", "mine", "--correlation", "label=order.created", "--correlation", "region=eu"]);
    let rules = json(&ok(&["rule", "events", "audit", "list"]));
    let names: Vec<&str> = rules["Rules"].as_array().unwrap().iter().map(|r| r["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["$Default", "big", "mine"]);
    assert_eq!(rules["Rules"][2]["Properties"]["CorrelationFilter"]["Properties"]["region"], "eu");

    let (bad, _, err) = sb(http, &["rule", "events", "audit", "add", "broken", "--sql", "size >"]);
    assert!(!bad && err.contains("400"), "{err}");
    let (dup, _, err) = sb(http, &["rule", "events", "audit", "add", "big", "--sql", "1 = 1"]);
    assert!(!dup && err.contains("409"), "{err}");
    ok(&["rule", "events", "audit", "remove", "$Default"]);
    let (missing, _, err) = sb(http, &["subscription", "nope", "create", "s"]);
    assert!(!missing && err.contains("404"), "a subscription needs its topic: {err}");

    ok(&["topic", "delete", "events"]);
    let (gone, _, err) = sb(http, &["subscription", "events", "list"]);
    assert!(!gone && err.contains("404"), "deleting a topic deletes its subscriptions: {err}");
    terminate(server);
}

#[test]
fn the_cli_sets_up_forwarding_and_refuses_a_missing_destination() {
    let (server, _, http) = start(&["--in-memory"]);
    let (ok, _, err) = sb(http, &["queue", "create", "intake", "--forward-to", "nowhere"]);
    assert!(!ok && err.contains("400") && err.contains("nowhere"), "{err}");
    let (ok, _, err) = sb(http, &["queue", "create", "orders"]);
    assert!(ok, "{err}");
    let (ok, out, err) = sb(http, &["queue", "create", "intake", "--forward-to", "orders", "--forward-dead-lettered-to", "orders"]);
    assert!(ok, "{err}");
    let p = &json(&out)["Properties"];
    assert_eq!((p["ForwardTo"].as_str(), p["ForwardDeadLetteredMessagesTo"].as_str()), (Some("orders"), Some("orders")));
    let (ok, _, err) = sb(http, &["queue", "update", "orders", "--forward-to", "orders"]);
    assert!(!ok && err.contains("400"), "forwarding to itself: {err}");
    let (ok, out, err) = sb(http, &["queue", "update", "intake", "--forward-to", ""]);
    assert!(ok, "{err}");
    assert!(json(&out)["Properties"].get("ForwardTo").is_none_or(|v| v.is_null()), "an empty name turns forwarding off: {out}");
    terminate(server);
}
