//! Event Grid topic management as a user does it: `lapis eg topic …` against a
//! running server, and topics with their keys across a restart.

mod common;

use common::{admin_cli, json, start, terminate};

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
