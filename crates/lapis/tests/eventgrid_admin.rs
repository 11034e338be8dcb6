//! Event Grid topic management as a user does it: `lapis eg topic …` against a
//! running server, and topics with their keys across a restart.

mod common;

use common::{admin_cli, json, run, start, terminate, text};

fn eg(http_port: u16, args: &[&str]) -> (bool, String, String) {
    admin_cli("eg", http_port, args)
}

#[test]
fn the_cli_manages_topics_and_they_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (server, _, http) = start(&["--data-dir", data]);
    let (ok, out, err) = eg(http, &["topic", "create", "uploads"]);
    assert!(ok, "{err}");
    let created = json(&out);
    assert_eq!(created["InputSchema"], "EventGridSchema");
    assert!(created["Endpoint"].as_str().unwrap().ends_with("/topics/uploads/api/events"), "{out}");
    let (ok, out, err) = eg(http, &["topic", "create", "plays", "--schema", "cloudevents"]);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["InputSchema"], "CloudEventSchemaV1_0");
    let (ok, _, err) = eg(http, &["topic", "create", "UPLOADS"]);
    assert!(!ok && err.contains("409"), "names are case-insensitive: {err}");
    let (ok, _, err) = eg(http, &["topic", "create", "x"]);
    assert!(!ok && err.contains("400"), "{err}");
    let (ok, _, err) = eg(http, &["topic", "delete", "plays"]);
    assert!(ok, "{err}");
    terminate(server);

    let (server, _, http) = start(&["--data-dir", data]);
    let (ok, out, err) = eg(http, &["topic", "list"]);
    let (ok_show, shown, _) = eg(http, &["topic", "show", "uploads"]);
    terminate(server);
    assert!(ok, "{err}");
    let names: Vec<String> = json(&out)["Topics"].as_array().unwrap().iter().map(|t| t["Name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["uploads"]);
    assert!(ok_show);
    assert_eq!(json(&shown)["Key1"], created["Key1"], "the keys are kept");
}

const CONFIG: &str = r#"{"EventGrid": {"Topics": [
  {"Name": "uploads"},
  {"Name": "likes", "Kind": "Namespace"},
  {"Name": "plays", "InputSchema": "CloudEventSchemaV1_0", "Key1": "a2V5IG9uZQ==", "Key2": "a2V5IHR3bw=="}]}}"#;

#[test]
fn topics_declared_in_the_config_exist_with_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lapis.json");
    let data = dir.path().join("data");
    let serve = |text: &str| {
        std::fs::write(&config, text).unwrap();
        start(&["--data-dir", data.to_str().unwrap(), "--config", config.to_str().unwrap()])
    };
    let (server, _, http) = serve(CONFIG);
    let (_, plays, err) = eg(http, &["topic", "show", "plays"]);
    let (_, uploads, _) = eg(http, &["topic", "show", "uploads"]);
    let (_, likes, _) = eg(http, &["topic", "show", "likes"]);
    terminate(server);
    assert_eq!(json(&likes)["Kind"], "Namespace", "a namespace topic from the config file");
    let (plays, uploads) = (json(&plays), json(&uploads));
    assert_eq!((plays["InputSchema"].as_str(), plays["Key1"].as_str(), plays["Key2"].as_str()), (Some("CloudEventSchemaV1_0"), Some("a2V5IG9uZQ=="), Some("a2V5IHR3bw==")), "{err}");
    assert_eq!(uploads["InputSchema"], "EventGridSchema");

    // Fresh keys for a topic without declared ones are kept across restarts; declared
    // keys that change replace the old ones.
    let (server, _, http) = serve(&CONFIG.replace("a2V5IHR3bw==", "bmV3IHR3bw=="));
    let (_, plays_after, _) = eg(http, &["topic", "show", "plays"]);
    let (_, uploads_after, _) = eg(http, &["topic", "show", "uploads"]);
    terminate(server);
    assert_eq!(json(&plays_after)["Key2"], "bmV3IHR3bw==");
    assert_eq!(json(&uploads_after)["Key1"], uploads["Key1"]);
}

#[test]
fn a_declared_topic_that_cannot_be_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lapis.json");
    let data = dir.path().join("data");
    let serve = |text: &str| {
        std::fs::write(&config, text).unwrap();
        run(&["serve", "--data-dir", data.to_str().unwrap(), "--config", config.to_str().unwrap(), "--queue-port", "0", "--http-port", "0", "--amqp-port", "0", "--blob-port", "0"])
    };
    let half_keys = r#"{"EventGrid": {"Topics": [{"Name": "plays", "Key1": "a2V5IG9uZQ=="}]}}"#;
    let out = serve(half_keys);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("plays") && err.contains("Key2"), "{err}");
    let bad_name = r#"{"EventGrid": {"Topics": [{"Name": "x"}]}}"#;
    let err = text(&serve(bad_name).stderr);
    assert!(err.contains("\"x\"") && err.contains("3 and 50"), "{err}");
}

/// A webhook that consents to the CloudEvents handshake (and answers anything else
/// with 200): enough for a subscription to be created.
fn consenting_webhook() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nWebHook-Allowed-Origin: *\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    url
}

#[test]
fn the_cli_manages_subscriptions_and_they_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (server, _, http) = start(&["--data-dir", data]);
    assert!(eg(http, &["topic", "create", "uploads"]).0);
    let hook = consenting_webhook();
    let (ok, _, err) = eg(http, &["subscription", "uploads", "create", "refused", "--webhook", "http://127.0.0.1:9/hook"]);
    assert!(!ok && err.contains("400") && err.contains("validation handshake"), "an endpoint that does not answer is refused: {err}");
    let (ok, out, err) = eg(http, &["subscription", "uploads", "create", "notify", "--webhook", &hook, "--included-event-type", "Track.Uploaded",
        "--advanced-filter", r#"{"operatorType":"NumberGreaterThan","key":"data.plays","value":10}"#, "--max-delivery-attempts", "5", "--delivery-schema", "cloudevents"]);
    assert!(ok, "{err}");
    let sub = json(&out);
    assert_eq!(sub["destination"]["properties"]["endpointUrl"], hook.as_str());
    assert_eq!(sub["deliveryMetrics"]["deliveredEvents"], 0);
    assert_eq!(sub["retryPolicy"]["maxDeliveryAttempts"], 5);
    assert_eq!(sub["retryPolicy"]["eventTimeToLiveInMinutes"], 1440);
    assert_eq!(sub["eventDeliverySchema"], "CloudEventSchemaV1_0");
    assert_eq!(sub["filter"]["advancedFilters"][0]["operatorType"], "NumberGreaterThan");
    let (ok, out, err) = eg(http, &["subscription", "uploads", "create", "into-queue", "--storage-queue", "uploads", "--queue-message-ttl", "-1"]);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["destination"]["properties"]["queueMessageTimeToLiveInSeconds"], -1);
    let (ok, _, err) = eg(http, &["subscription", "uploads", "create", "pulled", "--pull"]);
    assert!(!ok && err.contains("namespace topics"), "pull delivery needs a namespace topic: {err}");
    let (ok, _, err) = eg(http, &["subscription", "uploads", "create", "notify", "--webhook", "http://127.0.0.1:9/other"]);
    assert!(!ok && err.contains("409"), "{err}");
    let (ok, _, err) = eg(http, &["subscription", "uploads", "create", "tries", "--webhook", "http://127.0.0.1:9/x", "--max-delivery-attempts", "31"]);
    assert!(!ok && err.contains("400") && err.contains("maxDeliveryAttempts"), "{err}");
    let (ok, _, err) = eg(http, &["subscription", "uploads", "create", "nowhere"]);
    assert!(!ok && err.contains("--webhook"), "a destination is required: {err}");
    let (ok, _, err) = eg(http, &["subscription", "uploads", "delete", "into-queue"]);
    assert!(ok, "{err}");
    terminate(server);

    let (server, _, http) = start(&["--data-dir", data]);
    let (ok, out, err) = eg(http, &["subscription", "uploads", "list"]);
    terminate(server);
    assert!(ok, "{err}");
    let names: Vec<String> = json(&out)["Subscriptions"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["notify"]);
}

#[test]
fn the_cli_makes_namespace_topics_with_queue_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (server, _, http) = start(&["--data-dir", data]);
    let (ok, out, err) = eg(http, &["topic", "create", "plays", "--namespace"]);
    assert!(ok, "{err}");
    let topic = json(&out);
    assert_eq!((topic["Kind"].as_str(), topic["InputSchema"].as_str()), (Some("Namespace"), Some("CloudEventSchemaV1_0")));
    assert!(!topic["Endpoint"].as_str().unwrap().contains("/topics/"), "a namespace endpoint is the namespace's: {out}");
    let (ok, out, err) = eg(http, &["subscription", "plays", "create", "trending", "--pull", "--lock-seconds", "120", "--max-delivery-count", "3", "--queue-event-ttl", "P1D"]);
    assert!(ok, "{err}");
    let props = &json(&out)["destination"]["properties"];
    assert_eq!((props["receiveLockDurationInSeconds"].as_u64(), props["maxDeliveryCount"].as_u64(), props["eventTimeToLive"].as_str()), (Some(120), Some(3), Some("P1D")));
    let (ok, _, err) = eg(http, &["subscription", "plays", "create", "long-locks", "--pull", "--lock-seconds", "301"]);
    assert!(!ok && err.contains("receiveLockDurationInSeconds"), "{err}");
    terminate(server);
    let (server, _, http) = start(&["--data-dir", data]);
    let (ok, out, _) = eg(http, &["subscription", "plays", "show", "trending"]);
    let (_, shown, _) = eg(http, &["topic", "show", "plays"]);
    terminate(server);
    assert!(ok, "kept across a restart: {out}");
    assert_eq!(json(&shown)["Kind"], "Namespace");
}
