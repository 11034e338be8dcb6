//! Service Bus entity management as a user does it: queues declared in the emulator's
//! `Config.json`, and `lapis sb queue …` against a running server.

mod common;

use common::{run, start, terminate, text};

fn sb(http_port: u16, args: &[&str]) -> (bool, String, String) {
    let endpoint = format!("http://127.0.0.1:{http_port}");
    let mut full = vec!["sb", "--endpoint", endpoint.as_str()];
    full.extend_from_slice(args);
    let out = run(&full);
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
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
    let out = run(&["serve", "--in-memory", "--config", config.to_str().unwrap(), "--queue-port", "0", "--http-port", "0"]);
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
