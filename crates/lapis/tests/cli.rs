//! The `lapis` command line as a user runs it: version, connection strings, config
//! file, the off-loopback safety check, the data-directory lock and clean shutdown.

mod common;

use std::io::{BufRead, BufReader};

use common::{run, start, terminate, text};

#[test]
fn version_is_printed() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), format!("lapis {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn connection_strings_use_the_configured_port_and_the_dev_key() {
    let out = run(&["connection-strings", "--queue-port", "12345", "--in-memory"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;QueueEndpoint=http://127.0.0.1:12345/devstoreaccount1;"), "{stdout}");
}

#[test]
fn connection_strings_name_the_blob_endpoint_unless_it_is_off() {
    let out = run(&["connection-strings", "--queue-port", "12345", "--blob-port", "12346", "--in-memory"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("QueueEndpoint=http://127.0.0.1:12345/devstoreaccount1;BlobEndpoint=http://127.0.0.1:12346/devstoreaccount1;"), "{stdout}");
    assert!(stdout.contains("  Blob             http://127.0.0.1:12346/<account>"), "{stdout}");
    let out = run(&["connection-strings", "--queue-port", "0", "--in-memory"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"), "{stdout}");
    let out = run(&["connection-strings", "--blob-port", "0", "--in-memory"]);
    assert!(!text(&out.stdout).contains("BlobEndpoint"));
}

#[test]
fn config_file_settings_apply_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lapis.json");
    std::fs::write(&path, r#"{"Lapis": {"queue_port": 23456, "accounts": ["extra1:a2V5"]}, "UserConfig": {}}"#).unwrap();
    let out = run(&["connection-strings", "--config", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("QueueEndpoint=http://127.0.0.1:23456/devstoreaccount1;"), "{stdout}");
    assert!(stdout.contains("AccountName=extra1;"), "{stdout}");
    let out = run(&["connection-strings", "--config", path.to_str().unwrap(), "--queue-port", "34567"]);
    assert!(text(&out.stdout).contains(":34567/"));

    std::fs::write(&path, r#"{"Lapis": {"queue_prot": 1}}"#).unwrap();
    let out = run(&["connection-strings", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("queue_prot"), "a misspelt key is named: {}", text(&out.stderr));
}

#[test]
fn refuses_to_listen_beyond_loopback_without_real_keys() {
    let out = run(&["serve", "--in-memory", "--host", "0.0.0.0"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0") && err.contains("--account"), "{err}");
    let storage_only = run(&["serve", "--in-memory", "--host", "0.0.0.0", "--account", "prod1:a2V5"]);
    assert!(!storage_only.status.success(), "a storage key alone does not secure Service Bus and the admin API");
    assert!(text(&storage_only.stderr).contains("--sas-key"));
    let bad = run(&["serve", "--in-memory", "--account", "not-a-spec"]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("NAME:BASE64KEY"));
}

#[test]
fn beyond_loopback_the_development_account_is_not_offered() {
    let out = run(&["connection-strings", "--host", "0.0.0.0", "--account", "prod1:a2V5", "--sas-key", "ops:secret"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("AccountName=prod1;") && !stdout.contains("devstoreaccount1"), "{stdout}");
}

#[test]
fn a_data_directory_serves_one_process_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (mut first, queue_port, _) = start(&["--data-dir", data]);
    let second = run(&["serve", "--data-dir", data, "--queue-port", "0", "--http-port", "0", "--amqp-port", "0"]);
    assert!(!second.status.success());
    assert!(text(&second.stderr).contains("in use by another lapis process"), "{}", text(&second.stderr));

    let mut banner = BufReader::new(first.stdout.take().unwrap()).lines();
    let headline = banner.next().unwrap().unwrap();
    assert!(headline.contains(&format!("data in {data}")) && headline.contains("strict durability"), "{headline}");
    let queue_line = banner.next().unwrap().unwrap();
    assert!(queue_line.contains(&format!("127.0.0.1:{queue_port}")), "{queue_line}");
    let (status, err) = terminate(first);
    assert!(status.success(), "exit {status:?}: {err}");
    assert!(err.contains("stopped cleanly"), "{err}");
}

/// Writes three records into the queue store of `data`, then flips a byte inside the
/// second, as a failing disk would.
fn damage_middle_record(data: &std::path::Path) {
    use lapis_store::{CompactionPolicy, JournalOptions, KvLog, Op, Store};
    let dir = data.join("queues");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (kv, _) = KvLog::open(&dir, JournalOptions::default(), CompactionPolicy::default(), |_| Ok(())).unwrap();
        for i in 0..3u8 {
            let op = Op::Put { key: vec![b'Z', i], value: vec![i; 100] };
            kv.commit(&[op]).unwrap().durable().await.unwrap();
        }
        kv.close();
    });
    let segment = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|e| e == "seg")).unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let record_len = bytes.len() / 3;
    bytes[record_len + record_len / 2] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();
}

#[test]
fn damage_mid_segment_stops_start_up_until_salvage_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    damage_middle_record(dir.path());
    let data = dir.path().to_str().unwrap();
    let refused = run(&["serve", "--data-dir", data, "--queue-port", "0", "--http-port", "0", "--amqp-port", "0"]);
    assert!(!refused.status.success());
    let err = text(&refused.stderr);
    assert!(err.contains("corrupt record") && err.contains("--salvage"), "{err}");

    let (server, _, _) = start(&["--data-dir", data, "--salvage"]);
    let (status, log) = terminate(server);
    assert!(status.success(), "{log}");
    assert!(log.contains("skipping a damaged record"), "{log}");
}
