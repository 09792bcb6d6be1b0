//! Encryption at rest, end to end with the official SDK against the real binary:
//!
//! - StartDeliveryStreamEncryption with a keyring: the stream's log segments hold no plaintext
//!   of the records (the files are searched), records survive restarts and are delivered;
//! - rotation: a new active key in the keyring keeps old segments readable and new segments
//!   use the new key; removing the old key while it protects undelivered records makes the
//!   restart fail closed (clear error, nothing written);
//! - without a keyring, Start and Create with encryption fail with
//!   `InvalidKMSResourceException` and change nothing;
//! - `KMSEncryptionConfig` on a local bucket: delivered objects hold no plaintext and
//!   `lakehose decrypt` prints them; on a bucket mapped to S3 (moto) the objects are stored
//!   with SSE-KMS.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_firehose::Client;
use aws_sdk_firehose::types::{
    BufferingHints, DeliveryStreamEncryptionConfigurationInput, DeliveryStreamEncryptionStatus,
    EncryptionConfiguration, ExtendedS3DestinationConfiguration, ExtendedS3DestinationUpdate,
    KeyType, KmsEncryptionConfig,
};

use crate::common::*;

const MARKER: &str = "PLAINTEXT-MARKER-5c1e";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn lakehose(args: &[&str]) -> std::process::Output {
    Command::new(lakehose_binary())
        .args(args)
        .env_remove("LAKEHOSE_MASTER_KEY")
        .output()
        .expect("running lakehose")
}

/// A new keyring line from `lakehose keygen ID`.
fn keygen(id: &str) -> String {
    let out = lakehose(&["keygen", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(line.starts_with(&format!("{id} = \"")), "{line}");
    line
}

/// A server on a fresh data dir whose config has a keyring (one key, `k1`); keep the
/// directory alive as long as the server.
pub fn server_with_keyring() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let keyring = tmp.path().join("keyring");
    std::fs::write(&keyring, keygen("k1")).unwrap();
    let server = Server::start_in(
        &tmp.path().join("data"),
        Some(&config_with_keyring(&keyring)),
    );
    (tmp, server)
}

/// A `lakehose.toml` body naming `keyring` as the keyring file.
fn config_with_keyring(keyring: &Path) -> String {
    format!("[encryption]\nkeyring_file = \"{}\"\n", keyring.display())
}

/// Every file under `dir` with its bytes, sorted; files that vanish while being listed (a
/// checkpoint's temp file renamed by the running server) are skipped.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    tree(dir)
        .into_iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(path, _)| path)
        .collect()
}

fn log_dir(data: &Path, stream: &str) -> PathBuf {
    data.join("streams")
        .join(format!("{stream}.stream"))
        .join("log")
}

fn marked(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{{\"m\":\"{MARKER}\",\"tag\":\"{tag}\",\"i\":{i}}}\n"))
        .collect()
}

fn dest(bucket: &str, interval_s: i32) -> ExtendedS3DestinationConfiguration {
    s3_dest(bucket, 1, interval_s)
}

async fn start_encryption(c: &Client, name: &str, key_arn: Option<&str>) -> Result<(), String> {
    let input = match key_arn {
        Some(arn) => DeliveryStreamEncryptionConfigurationInput::builder()
            .key_type(KeyType::CustomerManagedCmk)
            .key_arn(arn),
        None => {
            DeliveryStreamEncryptionConfigurationInput::builder().key_type(KeyType::AwsOwnedCmk)
        }
    };
    c.start_delivery_stream_encryption()
        .delivery_stream_name(name)
        .delivery_stream_encryption_configuration_input(input.build().unwrap())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| code(&e))
}

async fn encryption_status(
    c: &Client,
    name: &str,
) -> (
    Option<DeliveryStreamEncryptionStatus>,
    Option<KeyType>,
    Option<String>,
) {
    let d = c
        .describe_delivery_stream()
        .delivery_stream_name(name)
        .send()
        .await
        .unwrap();
    let e = d
        .delivery_stream_description
        .unwrap()
        .delivery_stream_encryption_configuration
        .unwrap();
    (e.status, e.key_type, e.key_arn)
}

/// Polls Describe until the stream's encryption status is `want`.
async fn wait_status(c: &Client, name: &str, want: DeliveryStreamEncryptionStatus) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, _) = encryption_status(c, name).await;
        if status.as_ref() == Some(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "status {status:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sets the stream's buffering interval to 0 s, so what is buffered goes out with the next
/// record.
async fn flush_now(c: &Client, name: &str) {
    let d = c
        .describe_delivery_stream()
        .delivery_stream_name(name)
        .send()
        .await
        .unwrap()
        .delivery_stream_description
        .unwrap();
    c.update_destination()
        .delivery_stream_name(name)
        .current_delivery_stream_version_id(d.version_id)
        .destination_id("destinationId-000000000001")
        .extended_s3_destination_update(
            ExtendedS3DestinationUpdate::builder()
                .buffering_hints(
                    BufferingHints::builder()
                        .size_in_mbs(1)
                        .interval_in_seconds(0)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// Lines of the bucket's objects once they hold `n` (after `timeout`, whatever is there).
fn delivered_lines(bucket: &Path, n: usize) -> Vec<String> {
    let objs = wait_for_objects(bucket, Duration::from_secs(30), |objs| {
        objs.iter()
            .map(|(_, b)| b.iter().filter(|&&c| c == b'\n').count())
            .sum::<usize>()
            >= n
    });
    let mut lines: Vec<String> = objs
        .iter()
        .flat_map(|(_, b)| {
            String::from_utf8_lossy(b)
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

/// `lakehose serve` that must fail to start: its exit status and standard error.
fn serve_expecting_failure(data: &Path, config: &str) -> (std::process::ExitStatus, String) {
    let cfg = data.with_extension("toml");
    std::fs::write(&cfg, config).unwrap();
    let mut child = Command::new(lakehose_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(&cfg)
        .env_remove("LAKEHOSE_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(!stdout.contains("listening"), "it served: {stdout}");
            return (status, String::from_utf8_lossy(&out.stderr).to_string());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("lakehose served without its key");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every file of the data dir outside the buckets, with its bytes (to show nothing changed).
fn state_files(data: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    tree(&data.join("streams"))
}

#[test]
fn stream_encryption_rotation_and_fail_closed_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let keyring = tmp.path().join("keyring");
    let k1 = keygen("k1");
    std::fs::write(&keyring, format!("# lakehose master keys\n{k1}\n")).unwrap();
    let config = config_with_keyring(&keyring);
    let bucket = data.join("buckets/encb");

    // 1. Start encryption on a running stream; records put afterwards are never plaintext
    //    on disk (a long buffering interval keeps them in the log).
    let mut server = Server::start_in(&data, Some(&config));
    let c = server.client();
    rt().block_on(async {
        create(&c, "enc", dest("encb", 900)).await;
        assert_eq!(
            put_lines(&c, "enc", &marked("before", 1)).await,
            Some(false)
        );
        start_encryption(&c, "enc", None).await.unwrap();
        wait_status(&c, "enc", DeliveryStreamEncryptionStatus::Enabled).await;
        let (_, key_type, _) = encryption_status(&c, "enc").await;
        assert_eq!(key_type, Some(KeyType::AwsOwnedCmk));
        assert_eq!(put_lines(&c, "enc", &marked("k1", 50)).await, Some(true));
    });
    // The record put before Start is in the old plaintext segment; none of the others is
    // anywhere in the data dir's stream state.
    let plain = files_containing(&log_dir(&data, "enc"), MARKER);
    assert_eq!(plain.len(), 1, "only the pre-encryption segment: {plain:?}");
    assert!(
        files_containing(&data.join("streams"), "\"tag\":\"k1\"").is_empty(),
        "records put while ENABLED are not in plaintext"
    );
    server.stop();
    assert!(files_containing(&data.join("streams"), "\"tag\":\"k1\"").is_empty());
    assert!(objects(&bucket).is_empty(), "nothing delivered yet");

    // 2. Rotation: k2 is added (active). Old segments still read; new segments use k2.
    let k2 = keygen("k2");
    std::fs::write(&keyring, format!("{k1}\n{k2}\n")).unwrap();
    let mut server = Server::start_in(&data, Some(&config));
    let c = server.client();
    rt().block_on(async {
        assert_eq!(
            encryption_status(&c, "enc").await.0,
            Some(DeliveryStreamEncryptionStatus::Enabled)
        );
        assert_eq!(put_lines(&c, "enc", &marked("k2", 10)).await, Some(true));
    });
    let segments = tree(&log_dir(&data, "enc"));
    let newest = segments
        .iter()
        .filter(|(path, _)| path.extension().is_some_and(|x| x == "seg"))
        .max_by_key(|(path, _)| path.clone())
        .unwrap();
    assert!(
        newest.1.windows(2).any(|w| w == b"k2"),
        "new segment under k2"
    );
    assert!(files_containing(&data.join("streams"), "\"tag\":\"k2\"").is_empty());
    server.stop();

    // 3. The old key removed while it protects undelivered records: the restart fails
    //    closed with a clear error and writes nothing.
    std::fs::write(&keyring, format!("{k2}\n")).unwrap();
    let before = state_files(&data);
    let (status, stderr) = serve_expecting_failure(&data, &config);
    assert!(!status.success());
    assert!(stderr.contains("'k1' is not in the keyring"), "{stderr}");
    assert_eq!(state_files(&data), before, "nothing changed on disk");
    assert!(objects(&bucket).is_empty());

    // 4. With the old key back, everything is delivered, in plaintext objects (the
    //    destination has no KMSEncryptionConfig).
    std::fs::write(&keyring, format!("{k1}\n{k2}\n")).unwrap();
    let mut server = Server::start_in(&data, Some(&config));
    let c = server.client();
    rt().block_on(async {
        flush_now(&c, "enc").await;
        put_lines(&c, "enc", &marked("last", 1)).await;
    });
    let lines = delivered_lines(&bucket, 62);
    assert_eq!(lines.len(), 62, "{lines:?}");
    for (tag, n) in [("before", 1), ("k1", 50), ("k2", 10), ("last", 1)] {
        let got = lines
            .iter()
            .filter(|l| l.contains(&format!("\"tag\":\"{tag}\"")))
            .count();
        assert_eq!(got, n, "{tag}");
    }

    // 5. Stop: new segments are plaintext again.
    rt().block_on(async {
        c.stop_delivery_stream_encryption()
            .delivery_stream_name("enc")
            .send()
            .await
            .unwrap();
        wait_status(&c, "enc", DeliveryStreamEncryptionStatus::Disabled).await;
        assert_eq!(put_lines(&c, "enc", &marked("off", 1)).await, Some(false));
    });
    assert_eq!(
        files_containing(&log_dir(&data, "enc"), "\"tag\":\"off\"").len(),
        1
    );
    server.stop();
}

#[test]
fn without_a_keyring_encryption_fails_closed() {
    let server = Server::start();
    let c = server.client();
    rt().block_on(async {
        create(&c, "p", dest("pb", 900)).await;
        assert_eq!(
            start_encryption(&c, "p", None).await.unwrap_err(),
            "InvalidKMSResourceException"
        );
        let (status, key_type, _) = encryption_status(&c, "p").await;
        assert_eq!(status, Some(DeliveryStreamEncryptionStatus::Disabled));
        assert_eq!(key_type, None);
        put_lines(&c, "p", &marked("x", 1)).await;

        let err = c
            .create_delivery_stream()
            .delivery_stream_name("q")
            .extended_s3_destination_configuration(dest("qb", 900))
            .delivery_stream_encryption_configuration_input(
                DeliveryStreamEncryptionConfigurationInput::builder()
                    .key_type(KeyType::AwsOwnedCmk)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "InvalidKMSResourceException");
        let local_kms = c
            .create_delivery_stream()
            .delivery_stream_name("r")
            .extended_s3_destination_configuration(kms_dest(
                "rb",
                "arn:aws:kms:us-east-1:123456789012:key/objects",
            ))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&local_kms), "InvalidKMSResourceException");
        let names = c.list_delivery_streams().send().await.unwrap();
        assert_eq!(names.delivery_stream_names, ["p"]);
    });
    assert!(!server.data_dir.join("streams/q.stream").exists());
}

fn kms_dest(bucket: &str, arn: &str) -> ExtendedS3DestinationConfiguration {
    let mut d = dest(bucket, 0);
    d.encryption_configuration = Some(
        EncryptionConfiguration::builder()
            .kms_encryption_config(
                KmsEncryptionConfig::builder()
                    .awskms_key_arn(arn)
                    .build()
                    .unwrap(),
            )
            .build(),
    );
    d
}

#[test]
fn kms_objects_of_local_buckets_are_sealed_and_decrypt() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let keyring = tmp.path().join("keyring");
    std::fs::write(
        &keyring,
        format!("{}\n{}\n", keygen("objects"), keygen("logs")),
    )
    .unwrap();
    let config = config_with_keyring(&keyring);
    let server = Server::start_in(&data, Some(&config));
    let c = server.client();
    let arn = "arn:aws:kms:us-east-1:123456789012:key/objects";
    rt().block_on(async {
        // A CUSTOMER_MANAGED_CMK the keyring lacks fails closed; one it has works.
        create(&c, "o", kms_dest("ob", arn)).await;
        assert_eq!(
            start_encryption(&c, "o", Some("arn:aws:kms:us-east-1:123456789012:key/nope"))
                .await
                .unwrap_err(),
            "InvalidKMSResourceException"
        );
        start_encryption(&c, "o", Some("arn:aws:kms:us-east-1:123456789012:key/logs"))
            .await
            .unwrap();
        let (status, key_type, key_arn) = encryption_status(&c, "o").await;
        assert_eq!(status, Some(DeliveryStreamEncryptionStatus::Enabled));
        assert_eq!(key_type, Some(KeyType::CustomerManagedCmk));
        assert!(key_arn.unwrap().ends_with("key/logs"));
        put_lines(&c, "o", &marked("obj", 20)).await;
    });
    let bucket = data.join("buckets/ob");
    let objs = wait_for_objects(&bucket, Duration::from_secs(30), |o| !o.is_empty());
    assert!(!objs.is_empty(), "delivered");
    assert!(
        files_containing(&bucket, MARKER).is_empty(),
        "objects are sealed"
    );
    assert!(files_containing(&data.join("streams"), MARKER).is_empty());

    // SQL reads the sealed objects like any other (the bucket's store opens them).
    for sql in [
        "CREATE DATABASE enc".to_string(),
        "CREATE EXTERNAL TABLE enc.objs (m string, tag string, i int) ROW FORMAT SERDE \
         'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://ob/'"
            .to_string(),
    ] {
        let (status, body) = query(&server.endpoint, &sql);
        assert_eq!(status, 200, "{sql}: {body}");
    }
    let (status, body) = query(
        &server.endpoint,
        &format!("SELECT count(*), max(i) FROM enc.objs WHERE m = '{MARKER}' AND tag = 'obj'"),
    );
    assert_eq!(status, 200, "{body}");
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rows["rows"], serde_json::json!([[20, 19]]), "{body}");

    // `lakehose decrypt` with the server's config prints the records; -o writes them.
    let mut plain = String::new();
    for (rel, _) in &objs {
        let path = bucket.join(rel);
        let cfg = data.with_extension("toml");
        let out = lakehose(&[
            "decrypt",
            path.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        plain.push_str(&String::from_utf8(out.stdout).unwrap());
    }
    assert_eq!(plain.lines().filter(|l| l.contains(MARKER)).count(), 20);
    let first = bucket.join(&objs[0].0);
    let out_file = tmp.path().join("plain.json");
    let out = lakehose(&[
        "decrypt",
        first.to_str().unwrap(),
        "--keyring",
        keyring.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(&out_file).unwrap().contains(MARKER));

    // Without the key: fails, writes nothing.
    let other = tmp.path().join("other-keyring");
    std::fs::write(&other, keygen("objects")).unwrap();
    let denied = tmp.path().join("denied.json");
    let out = lakehose(&[
        "decrypt",
        first.to_str().unwrap(),
        "--keyring",
        other.to_str().unwrap(),
        "-o",
        denied.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!denied.exists());
    let out = lakehose(&["decrypt", first.to_str().unwrap()]);
    assert!(!out.status.success(), "no keyring configured");
}

/// `POST /v1/query` with `sql`: the status and body.
fn query(endpoint: &str, sql: &str) -> (u16, String) {
    let body = serde_json::json!({ "sql": sql }).to_string();
    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-H",
            "content-type: application/json",
            "--data-binary",
            &body,
            &format!("{endpoint}/v1/query"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn kms_on_a_bucket_mapped_to_s3_uses_sse_kms() {
    let moto = Moto::start_on(free_port());
    moto.create_bucket("s3enc");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start_in(&data, Some(&moto.bucket_config("s3enc")));
    let c = server.client();
    let arn = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-aaaa-bbbb-cccc-123456789012";
    rt().block_on(async {
        // No keyring needed: S3 holds the key.
        create(&c, "m", kms_dest("s3enc", arn)).await;
        put_lines(&c, "m", &marked("s3", 3)).await;
    });
    let sink = moto.sink("s3enc");
    let deadline = Instant::now() + Duration::from_secs(30);
    let keys = loop {
        let keys = rt()
            .block_on(lakehose_sinks::ObjectSink::list(&*sink, ""))
            .unwrap();
        if !keys.is_empty() || Instant::now() > deadline {
            break keys;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(keys.len(), 1, "{keys:?}");
    // A signed HEAD (moto refuses anonymous ones).
    let head = Command::new("curl")
        .args([
            "-sI",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            "test:test",
            &format!("{}/s3enc/{}", moto.endpoint, keys[0]),
        ])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).to_lowercase();
    assert!(
        head.contains("x-amz-server-side-encryption: aws:kms"),
        "{head}"
    );
    assert!(
        head.contains("x-amz-server-side-encryption-aws-kms-key-id"),
        "{head}"
    );
}
