//! Event hub management as a user does it: hubs declared in the Event Hubs
//! emulator's `Config.json`, and `lapis eh …` against a running server.

mod common;

use common::{admin_cli, json, run, start, terminate, text};

fn eh(http_port: u16, args: &[&str]) -> (bool, String, String) {
    admin_cli("eh", http_port, args)
}

const EMULATOR_CONFIG: &str = r#"{"UserConfig": {"NamespaceConfig": [{"Type": "EventHub", "Name": "emulatorNs1",
  "Entities": [{"Name": "eh1", "PartitionCount": "2", "ConsumerGroups": [{"Name": "cg1"}]}]}],
  "LoggingConfig": {"Type": "File"}}}"#;

#[test]
fn hubs_declared_in_the_emulator_config_exist() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("Config.json");
    std::fs::write(&config, EMULATOR_CONFIG).unwrap();
    let (server, _, http) = start(&["--in-memory", "--config", config.to_str().unwrap()]);
    let (ok, out, err) = eh(http, &["hub", "show", "eh1"]);
    let (ok_groups, groups, _) = eh(http, &["group", "eh1", "list"]);
    terminate(server);
    assert!(ok, "{err}");
    let hub = json(&out);
    assert_eq!(hub["Properties"]["PartitionCount"], 2);
    assert_eq!(hub["Partitions"].as_array().unwrap().len(), 2);
    assert_eq!(hub["Partitions"][0]["IsEmpty"], true);
    assert!(ok_groups);
    let groups = json(&groups);
    let names: Vec<&str> = groups["ConsumerGroups"].as_array().unwrap().iter().map(|g| g["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["$Default", "cg1"]);
}

#[test]
fn an_invalid_hub_in_the_config_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("Config.json");
    std::fs::write(&config, EMULATOR_CONFIG.replace("\"2\"", "\"0\"")).unwrap();
    let out = run(&["serve", "--in-memory", "--config", config.to_str().unwrap(), "--queue-port", "0", "--http-port", "0", "--amqp-port", "0", "--blob-port", "0"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("eh1") && err.contains("PartitionCount"), "{err}");
}

#[test]
fn the_cli_manages_hubs_and_groups_and_they_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (server, _, http) = start(&["--data-dir", data]);
    let (ok, out, err) = eh(http, &["hub", "create", "plays", "--partitions", "4", "--retention-hours", "48", "--consumer-group", "trending"]);
    assert!(ok, "{err}");
    let created = json(&out);
    assert_eq!((created["Properties"]["PartitionCount"].as_u64(), created["Properties"]["RetentionTimeInHours"].as_u64()), (Some(4), Some(48)));
    let (ok, _, err) = eh(http, &["hub", "create", "PLAYS"]);
    assert!(!ok && err.contains("409"), "names are case-insensitive: {err}");
    let (ok, _, err) = eh(http, &["hub", "create", "bad name"]);
    assert!(!ok && err.contains("400"), "{err}");
    let (ok, out, err) = eh(http, &["hub", "update", "plays", "--partitions", "6"]);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["Partitions"].as_array().unwrap().len(), 6);
    let (ok, _, err) = eh(http, &["hub", "update", "plays", "--partitions", "2"]);
    assert!(!ok && err.contains("400") && err.contains("only grow"), "{err}");
    let (ok, _, err) = eh(http, &["group", "plays", "add", "audit"]);
    assert!(ok, "{err}");
    let (ok, _, err) = eh(http, &["group", "plays", "delete", "$Default"]);
    assert!(!ok && err.contains("400"), "{err}");
    let (ok, _, err) = eh(http, &["--key", "wrong", "hub", "list"]);
    assert!(!ok && err.contains("401"), "{err}");
    let (status, log) = terminate(server);
    assert!(status.success(), "{log}");

    let (server, _, http) = start(&["--data-dir", data]);
    let (ok, out, err) = eh(http, &["hub", "show", "plays"]);
    assert!(ok, "{err}");
    let hub = json(&out);
    assert_eq!(hub["Properties"]["PartitionCount"], 6);
    let groups: Vec<&str> = hub["Properties"]["ConsumerGroups"].as_array().unwrap().iter().map(|g| g["Name"].as_str().unwrap()).collect();
    assert_eq!(groups, ["$Default", "audit", "trending"]);
    let (ok, _, _) = eh(http, &["hub", "delete", "plays"]);
    assert!(ok);
    let (ok, _, err) = eh(http, &["hub", "show", "plays"]);
    assert!(!ok && err.contains("404"), "{err}");
    terminate(server);
}

#[test]
fn hubs_have_at_most_32_partitions_unless_the_server_allows_more() {
    let (server, _, http) = start(&["--in-memory"]);
    let (too_many, _, err) = eh(http, &["hub", "create", "wide", "--partitions", "33"]);
    let (ok32, _, err32) = eh(http, &["hub", "create", "standard", "--partitions", "32"]);
    terminate(server);
    assert!(!too_many);
    assert!(err.contains("between 1 and 32") && err.contains("--max-partitions"), "{err}");
    assert!(ok32, "{err32}");

    let (server, _, http) = start(&["--in-memory", "--max-partitions", "64"]);
    let (ok, out, err) = eh(http, &["hub", "create", "wide", "--partitions", "64"]);
    let (over, _, over_err) = eh(http, &["hub", "create", "wider", "--partitions", "65"]);
    terminate(server);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["Partitions"].as_array().map(Vec::len), Some(64), "{out}");
    assert!(!over && over_err.contains("between 1 and 64"), "{over_err}");

    let refused = run(&["serve", "--in-memory", "--max-partitions", "5000", "--queue-port", "0", "--http-port", "0", "--amqp-port", "0", "--blob-port", "0"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("between 1 and 1024"), "{}", text(&refused.stderr));
}

#[test]
fn a_name_is_a_hub_or_a_service_bus_entity_never_both() {
    let (server, _, http) = start(&["--in-memory"]);
    let (queue_ok, _, queue_err) = admin_cli("sb", http, &["queue", "create", "plays"]);
    let (hub_over_queue, _, hub_err) = eh(http, &["hub", "create", "Plays"]);
    let (hub_ok, _, hub_ok_err) = eh(http, &["hub", "create", "uploads"]);
    let (topic_over_hub, _, topic_err) = admin_cli("sb", http, &["topic", "create", "uploads"]);
    terminate(server);
    assert!(queue_ok, "{queue_err}");
    assert!(!hub_over_queue && hub_err.contains("taken by a Service Bus queue or topic"), "{hub_err}");
    assert!(hub_ok, "{hub_ok_err}");
    assert!(!topic_over_hub && topic_err.contains("taken by an event hub"), "{topic_err}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("Config.json");
    let both = r#"{"UserConfig": {"Namespaces": [{"Name": "sbemulatorns", "Queues": [{"Name": "eh1", "Properties": {}}], "Topics": []}],
      "NamespaceConfig": [{"Type": "EventHub", "Name": "emulatorNs1", "Entities": [{"Name": "eh1", "PartitionCount": 1}]}]}}"#;
    std::fs::write(&config, both).unwrap();
    let out = run(&["serve", "--in-memory", "--config", config.to_str().unwrap(), "--queue-port", "0", "--http-port", "0", "--amqp-port", "0", "--blob-port", "0"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("'eh1' is both a Service Bus queue or topic and an event hub"), "{err}");
}
