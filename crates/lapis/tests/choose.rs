//! `lapis choose` as a user runs it: each music-share task from `--scenario`, a task
//! from flags, one answered question by question (`--ask`), JSON, and the same advice
//! on the running server's `/choose` page with that server's connection strings.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;

use common::{lapis, run, start, terminate, text};

fn choose(args: &[&str]) -> String {
    let out = run(&[&["choose"], args].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn each_music_share_task_gets_its_service_with_reasons_and_a_snippet() {
    let upload = choose(&["--scenario", "upload"]);
    assert!(upload.starts_with("Use: Storage Queues\n  with Blob storage"), "{upload}");
    assert!(upload.contains("QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1") && upload.contains("QueueClient"), "{upload}");
    let comment = choose(&["--scenario", "comment"]);
    assert!(comment.starts_with("Use: Service Bus") && comment.contains("duplicate detection") && comment.contains("UseDevelopmentEmulator=true"), "{comment}");
    let published = choose(&["--scenario", "track-published"]);
    assert!(published.starts_with("Use: Event Grid") && published.contains("EventGridPublisherClient"), "{published}");
    let plays = choose(&["--scenario", "plays"]);
    assert!(plays.starts_with("Use: Event Hubs") && plays.contains("EntityPath=plays"), "{plays}");
    for answer in [&upload, &comment, &published, &plays] {
        assert!(answer.contains("Why:") && answer.contains("Why not:"), "{answer}");
    }
}

#[test]
fn flags_questions_and_json_give_the_same_advisor() {
    let flags = choose(&["--event", "--streaming", "--rate", "100000", "--protocol", "kafka"]);
    assert!(flags.starts_with("Use: Event Hubs") && flags.contains("Kafka"), "{flags}");

    let mut child = lapis().args(["choose", "--ask"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // message; ordered; dedup; no transactions; no sessions; the rest defaults.
    child.stdin.take().unwrap().write_all(b"message\ny\ny\nn\nn\n\n\n\n\n\n\n\n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("Use: Service Bus"), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("Is it an event"), "the questions go to stderr");

    let json: serde_json::Value = serde_json::from_str(&choose(&["--scenario", "comment", "--json"])).unwrap();
    assert_eq!(json["advice"]["service"], "ServiceBus");
    assert_eq!(json["task"]["dedup"], true);
}

fn get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn the_server_shows_the_advisor_as_a_page() {
    let (server, queue_port, http) = start(&["--in-memory"]);
    let form = get(http, "/choose");
    let advice = get(http, "/choose?scenario=upload");
    let custom = get(http, "/choose?kind=event&handlers=3&delivery=push");
    terminate(server);
    assert!(form.starts_with("HTTP/1.1 200") && form.contains("text/html") && form.contains("<form"), "{form}");
    for name in ["upload", "comment", "track-published", "plays"] {
        assert!(form.contains(&format!("scenario={name}")), "{name}");
    }
    assert!(advice.contains("Use: Storage Queues") && advice.contains(&format!("QueueEndpoint=http://127.0.0.1:{queue_port}/devstoreaccount1")), "the server's own ports: {advice}");
    assert!(custom.contains("Use: Event Grid") && custom.contains("3 independent handlers"), "{custom}");
}
