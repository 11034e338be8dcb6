//! Drives a real Lapis server with Microsoft's official Rust SDK
//! (`azure_storage_queue` 1.1.0), exactly as a user would.
//!
//! The Rust SDK has no Shared Key credential (only Entra ID tokens, which it
//! refuses over plain HTTP), so the client authenticates the way a Rust user
//! against an emulator would: an account SAS token in the service URL. The
//! token is generated here with HMAC-SHA256 over the account-SAS
//! string-to-sign (sv >= 2020-12-06 form, which ends with the encryption
//! scope line).
//!
//! The server is started from `$LAPIS_BIN` (default
//! `../../../target/debug/lapis` relative to this crate) on free loopback
//! ports with a fresh data directory, and killed when the test ends.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use azure_core::http::{StatusCode, Url};
use azure_storage_queue::models::{
    QueueClientPeekMessagesOptions, QueueClientReceiveMessagesOptions,
    QueueClientUpdateMessageOptions, QueueMessage, ReceivedMessage,
};
use azure_storage_queue::{QueueClient, QueueServiceClient};
use base64::Engine as _;
use futures::StreamExt as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const ACCOUNT: &str = "devstoreaccount1";
const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const SAS_VERSION: &str = "2021-12-02";

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Receives up to `count` messages (the service default when `None`), hiding them for 30 s.
async fn receive(
    queue: &QueueClient,
    count: Option<i32>,
) -> Result<Vec<ReceivedMessage>, Box<dyn std::error::Error>> {
    let options = QueueClientReceiveMessagesOptions {
        number_of_messages: count,
        visibility_timeout: Some(30),
        ..Default::default()
    };
    Ok(queue.receive_messages(Some(options)).await?.into_model()?.items.unwrap_or_default())
}

/// A running `lapis serve`; killed (and its data dir removed) on drop.
struct Server {
    child: Child,
    queue_port: u16,
    data_dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn lapis_bin() -> PathBuf {
    match std::env::var_os("LAPIS_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../target/debug/lapis"),
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

fn health_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(1),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!(
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while got.len() < 12 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"HTTP/1.1 200") || got.starts_with(b"HTTP/1.0 200")
}

fn start_server() -> Server {
    let bin = lapis_bin();
    assert!(
        bin.exists(),
        "lapis binary not found at {} (set LAPIS_BIN or run `cargo build -p lapis`)",
        bin.display()
    );
    let data_dir = std::env::temp_dir().join(format!(
        "lapis-rust-sdk-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&data_dir).unwrap();
    // Ports are picked by binding 0 and closing; retry a few times in the
    // unlikely case another process grabs one in between.
    for _attempt in 0..3 {
        let (qp, hp) = (free_port(), free_port());
        let mut child = Command::new(&bin)
            .args(["serve", "--data-dir"])
            .arg(&data_dir)
            .args(["--host", "127.0.0.1"])
            .args(["--queue-port", &qp.to_string()])
            .args(["--http-port", &hp.to_string()])
            .args(["--blob-port", "0", "--amqp-port", "0", "--kafka-port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!("lapis exited early with {status}; retrying with other ports");
                break;
            }
            if health_ok(hp) {
                return Server { child, queue_port: qp, data_dir };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("lapis did not answer GET /health on port {hp} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("lapis failed to start three times");
}

/// Account SAS query string (services=q, all resource types, all queue
/// permissions, valid for an hour), signed with the account key.
fn account_sas() -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    );
    let now = time::OffsetDateTime::now_utc();
    let st = (now - time::Duration::minutes(5)).format(&fmt).unwrap();
    let se = (now + time::Duration::hours(1)).format(&fmt).unwrap();
    let (sp, ss, srt, sip, spr, ses) = ("rwdlacup", "q", "sco", "", "", "");
    // sv >= 2020-12-06: account\nsp\nss\nsrt\nst\nse\nsip\nspr\nsv\nses\n
    let string_to_sign =
        format!("{ACCOUNT}\n{sp}\n{ss}\n{srt}\n{st}\n{se}\n{sip}\n{spr}\n{SAS_VERSION}\n{ses}\n");
    let key = base64::engine::general_purpose::STANDARD
        .decode(ACCOUNT_KEY)
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(string_to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());

    let mut u = Url::parse("http://x/").unwrap();
    u.query_pairs_mut()
        .append_pair("sv", SAS_VERSION)
        .append_pair("ss", ss)
        .append_pair("srt", srt)
        .append_pair("sp", sp)
        .append_pair("st", &st)
        .append_pair("se", &se)
        .append_pair("sig", &sig);
    u.query().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_lifecycle_with_official_rust_sdk() -> TestResult {
    let server = start_server();
    // Path-style emulator endpoint. No trailing slash: `queue_client()` pushes
    // a path segment, and a trailing slash would produce `//queue`.
    let service_url = Url::parse(&format!(
        "http://127.0.0.1:{}/{ACCOUNT}?{}",
        server.queue_port,
        account_sas()
    ))?;
    let service = QueueServiceClient::new(service_url, None, None)?;
    let queue_name = "rust-sdk-smoke";
    let queue = service.queue_client(queue_name)?;

    // create
    let rsp = queue.create(None).await?;
    assert_eq!(rsp.status(), StatusCode::Created, "create queue");
    assert!(queue.exists().await?, "queue exists after create");

    // list queues: the new queue is listed
    let mut names = Vec::new();
    let mut pages = service.list_queues(None)?.into_pages();
    while let Some(page) = pages.next().await {
        for item in page?.into_model()?.queue_items {
            names.extend(item.name);
        }
    }
    assert!(names.iter().any(|n| n == queue_name), "list_queues: {names:?}");

    // send
    let text = "hello from the rust sdk <&> \u{e9}";
    let sent = queue
        .send_message(
            QueueMessage { message_text: Some(text.to_string()) }.try_into()?,
            None,
        )
        .await?;
    assert_eq!(sent.status(), StatusCode::Created, "send_message");
    let sent = sent.into_model()?.items.unwrap_or_default();
    assert_eq!(sent.len(), 1, "one SentMessage");
    let sent_id = sent[0].message_id.clone().expect("sent message id");
    assert!(sent[0].pop_receipt.is_some(), "sent pop receipt");
    assert!(sent[0].insertion_time.is_some() && sent[0].expiration_time.is_some());

    // peek: visible, not dequeued
    let peeked = queue
        .peek_messages(Some(QueueClientPeekMessagesOptions {
            number_of_messages: Some(32),
            ..Default::default()
        }))
        .await?
        .into_model()?
        .items
        .unwrap_or_default();
    assert_eq!(peeked.len(), 1, "peek sees one message");
    assert_eq!(peeked[0].message_id.as_deref(), Some(sent_id.as_str()));
    assert_eq!(peeked[0].message_text.as_deref(), Some(text));
    assert_eq!(peeked[0].dequeue_count, Some(0));

    // receive
    let got = receive(&queue, Some(32)).await?;
    assert_eq!(got.len(), 1, "receive one message");
    let m = &got[0];
    assert_eq!(m.message_id.as_deref(), Some(sent_id.as_str()));
    assert_eq!(m.message_text.as_deref(), Some(text));
    assert_eq!(m.dequeue_count, Some(1));
    assert!(m.time_next_visible.is_some(), "time_next_visible");
    let pop1 = m.pop_receipt.clone().expect("received pop receipt");

    // hidden now: a second receive gets nothing
    let again = queue
        .receive_messages(None)
        .await?
        .into_model()?
        .items
        .unwrap_or_default();
    assert!(again.is_empty(), "message is invisible after receive: {again:?}");

    // update: new text, visible again at once; a fresh pop receipt comes back
    let updated_text = "updated by the rust sdk";
    let upd = queue
        .update_message(
            &sent_id,
            &pop1,
            0,
            Some(QueueClientUpdateMessageOptions {
                queue_message: Some(
                    QueueMessage { message_text: Some(updated_text.to_string()) }.try_into()?,
                ),
                ..Default::default()
            }),
        )
        .await?;
    assert_eq!(upd.status(), StatusCode::NoContent, "update_message");
    let pop2 = upd
        .headers()
        .get_optional_string(&"x-ms-popreceipt".into())
        .expect("x-ms-popreceipt on update");
    assert_ne!(pop2, pop1, "update issues a new pop receipt");
    assert!(
        upd.headers()
            .get_optional_str(&"x-ms-time-next-visible".into())
            .is_some(),
        "x-ms-time-next-visible on update"
    );

    // the old pop receipt is now invalid
    let stale = queue.delete_message(&sent_id, &pop1, None).await;
    let err = stale.expect_err("delete with a stale pop receipt must fail");
    assert_eq!(err.http_status(), Some(StatusCode::NotFound), "stale pop receipt: {err}");

    // receive the updated message
    let got = receive(&queue, None).await?;
    assert_eq!(got.len(), 1, "updated message is visible");
    assert_eq!(got[0].message_id.as_deref(), Some(sent_id.as_str()));
    assert_eq!(got[0].message_text.as_deref(), Some(updated_text));
    assert_eq!(got[0].dequeue_count, Some(2));
    let pop3 = got[0].pop_receipt.clone().expect("pop receipt");

    // delete
    let del = queue.delete_message(&sent_id, &pop3, None).await?;
    assert_eq!(del.status(), StatusCode::NoContent, "delete_message");
    let left = queue
        .peek_messages(None)
        .await?
        .into_model()?
        .items
        .unwrap_or_default();
    assert!(left.is_empty(), "queue empty after delete: {left:?}");

    // delete the queue
    let rsp = queue.delete(None).await?;
    assert_eq!(rsp.status(), StatusCode::NoContent, "delete queue");
    assert!(!queue.exists().await?, "queue gone after delete");

    drop(server);
    Ok(())
}
