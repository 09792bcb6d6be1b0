//! Encryption at rest through the engine: Start/StopDeliveryStreamEncryption switch the running
//! stream's log (no plaintext of records acknowledged while ENABLED in any segment), a missing
//! keyring or key fails closed with `InvalidKMSResourceException` and changes nothing, an
//! interrupted ENABLING is finished on open, and `KMSEncryptionConfig` seals objects of local
//! buckets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lakehose_api::model::EncryptionInput;
use lakehose_api::{ErrorKind, StreamService, StreamSpec};
use lakehose_log::Keyring;
use lakehose_pipeline::{Engine, EngineConfig};

const MARKER: &str = "ENGINE-MARKER";

fn keyring(ids: &[&str]) -> Arc<Keyring> {
    Arc::new(
        Keyring::new(
            ids.iter()
                .enumerate()
                .map(|(i, id)| (id.to_string(), [i as u8 + 1; 32]))
                .collect(),
            None,
        )
        .unwrap(),
    )
}

async fn engine(dir: &Path, keyring: Option<Arc<Keyring>>) -> Arc<Engine> {
    let config = EngineConfig {
        keyring: keyring.clone(),
        ..EngineConfig::default()
    };
    let catalog = Arc::new(lakehose_catalog::FileCatalog::open_in_data_dir(dir).unwrap());
    let buckets =
        lakehose_sinks::Buckets::new(dir.join("buckets"), Default::default()).with_keyring(keyring);
    Engine::open(dir, buckets, catalog, config).await.unwrap()
}

fn spec(name: &str, extra: serde_json::Value) -> StreamSpec {
    let mut input = serde_json::json!({
        "DeliveryStreamName": name,
        "ExtendedS3DestinationConfiguration": {
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": format!("arn:aws:s3:::{name}"),
            "BufferingHints": { "SizeInMBs": 1, "IntervalInSeconds": 0 },
        },
    });
    let extra = extra.as_object().unwrap();
    for (k, v) in extra {
        if k == "KMS" {
            input["ExtendedS3DestinationConfiguration"]["EncryptionConfiguration"] =
                serde_json::json!({ "KMSEncryptionConfig": { "AWSKMSKeyARN": v } });
        } else {
            input[k] = v.clone();
        }
    }
    StreamSpec::from_create(serde_json::from_value(input).unwrap(), "us-east-1", 1).unwrap()
}

async fn start(engine: &Engine, name: &str, key_arn: Option<&str>) -> lakehose_api::Result<()> {
    let input = EncryptionInput {
        key_type: Some(
            if key_arn.is_some() {
                "CUSTOMER_MANAGED_CMK"
            } else {
                "AWS_OWNED_CMK"
            }
            .into(),
        ),
        key_arn: key_arn.map(str::to_string),
    };
    engine
        .modify_stream(name, &mut |s| s.set_encryption(Some(&input), 1))
        .await
        .map(|_| ())
}

async fn stop(engine: &Engine, name: &str) {
    engine
        .modify_stream(name, &mut |s| s.set_encryption(None, 2))
        .await
        .unwrap();
}

async fn put(engine: &Engine, name: &str, tag: &str, n: usize) {
    let records = (0..n)
        .map(|i| Bytes::from(format!("{{\"m\":\"{MARKER}-{tag}-{i}\"}}\n")))
        .collect();
    let out = engine.put_records(name, records).await.unwrap();
    assert!(
        out.records
            .iter()
            .all(|r| matches!(r, lakehose_api::model::RecordOutcome::Accepted(_)))
    );
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Segment files of the stream's log holding `needle`.
fn log_files_with(dir: &Path, name: &str, needle: &str) -> Vec<PathBuf> {
    files_under(&dir.join(format!("streams/{name}.stream/log")))
        .into_iter()
        .filter(|p| {
            std::fs::read(p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        })
        .collect()
}

/// Waits until the bucket's objects (opened if sealed) hold `n` lines.
async fn delivered(dir: &Path, bucket: &str, keyring: Option<&Keyring>, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut lines = Vec::new();
        for f in files_under(&dir.join("buckets").join(bucket)) {
            let raw = std::fs::read(&f).unwrap();
            let text = if lakehose_crypto::object::is_sealed(&raw) {
                lakehose_crypto::object::open(keyring.expect("a keyring"), &raw).unwrap()
            } else {
                raw
            };
            lines.extend(String::from_utf8(text).unwrap().lines().map(String::from));
        }
        if lines.len() >= n {
            lines.sort();
            return lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} delivered",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn without_a_keyring_encryption_fails_closed_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), None).await;
    engine
        .create_stream(spec("plain", serde_json::json!({})))
        .await
        .unwrap();
    let before = engine.stream("plain").unwrap();
    let err = start(&engine, "plain", None).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidKmsResource, "{}", err.message);
    assert!(err.message.contains("keyring"), "{}", err.message);
    assert_eq!(engine.stream("plain").unwrap(), before, "nothing changed");
    let on_disk: StreamSpec = serde_json::from_slice(
        &std::fs::read(dir.path().join("streams/plain.stream/spec.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(on_disk, before);

    let with_input = spec(
        "enc",
        serde_json::json!({"DeliveryStreamEncryptionConfigurationInput": {"KeyType": "AWS_OWNED_CMK"}}),
    );
    let err = engine.create_stream(with_input).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidKmsResource);
    assert!(engine.stream("enc").is_none());
    assert!(!dir.path().join("streams/enc.stream").exists());

    let kms = spec(
        "objs",
        serde_json::json!({"KMS": "arn:aws:kms:us-east-1:1:key/k"}),
    );
    let err = engine.create_stream(kms).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidKmsResource, "{}", err.message);
    engine.shutdown().await;
}

#[tokio::test]
async fn start_and_stop_switch_the_running_log() {
    let dir = tempfile::tempdir().unwrap();
    let ring = keyring(&["k1", "cmk"]);
    let engine = engine(dir.path(), Some(ring.clone())).await;
    engine
        .create_stream(spec("s", serde_json::json!({})))
        .await
        .unwrap();
    put(&engine, "s", "plain", 3).await;
    assert_eq!(
        log_files_with(dir.path(), "s", &format!("{MARKER}-plain")).len(),
        1
    );

    // A CUSTOMER_MANAGED_CMK the keyring lacks: refused, nothing changes.
    let err = start(
        &engine,
        "s",
        Some("arn:aws:kms:us-east-1:123456789012:key/nope"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidKmsResource);
    assert_eq!(engine.stream("s").unwrap().encryption.status, "DISABLED");

    start(
        &engine,
        "s",
        Some("arn:aws:kms:us-east-1:123456789012:key/cmk"),
    )
    .await
    .unwrap();
    let enc = engine.stream("s").unwrap().encryption;
    assert_eq!(enc.status, "ENABLED");
    assert_eq!(enc.key_type.as_deref(), Some("CUSTOMER_MANAGED_CMK"));
    assert!(
        engine.stream("s").unwrap().describe()["DeliveryStreamEncryptionConfiguration"]["KeyARN"]
            .as_str()
            .unwrap()
            .ends_with("key/cmk")
    );
    let out = engine
        .put_records(
            "s",
            vec![Bytes::from(format!("{{\"m\":\"{MARKER}-enc-0\"}}\n"))],
        )
        .await
        .unwrap();
    assert!(out.encrypted, "PutRecord answers Encrypted: true");
    put(&engine, "s", "enc", 4).await;
    assert!(log_files_with(dir.path(), "s", &format!("{MARKER}-enc")).is_empty());
    assert_eq!(
        log_files_with(dir.path(), "s", "cmk").len(),
        1,
        "the active segment's header names its master key"
    );
    let lines = delivered(dir.path(), "s", None, 8).await;
    assert_eq!(lines.iter().filter(|l| l.contains("-enc-")).count(), 5);

    stop(&engine, "s").await;
    assert_eq!(engine.stream("s").unwrap().encryption.status, "DISABLED");
    put(&engine, "s", "after", 2).await;
    assert_eq!(
        log_files_with(dir.path(), "s", &format!("{MARKER}-after")).len(),
        1
    );
    delivered(dir.path(), "s", None, 10).await;
    engine.shutdown().await;
    drop(engine);

    // Restarts read whatever is left; an encrypted stream with the key gone fails closed.
    let engine2 = self::engine(dir.path(), Some(ring)).await;
    put(&engine2, "s", "restart", 1).await;
    delivered(dir.path(), "s", None, 11).await;
    engine2.shutdown().await;
}

#[tokio::test]
async fn interrupted_enabling_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let ring = keyring(&["k1"]);
    let e = engine(dir.path(), Some(ring.clone())).await;
    e.create_stream(spec("s", serde_json::json!({})))
        .await
        .unwrap();
    e.shutdown().await;
    drop(e);
    // As if the process died after persisting ENABLING, before the log switched.
    let path = dir.path().join("streams/s.stream/spec.json");
    let mut s: StreamSpec = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    s.encryption.status = "ENABLING".into();
    s.encryption.key_type = Some("AWS_OWNED_CMK".into());
    std::fs::write(&path, serde_json::to_vec(&s).unwrap()).unwrap();
    let e = engine(dir.path(), Some(ring)).await;
    assert_eq!(e.stream("s").unwrap().encryption.status, "ENABLED");
    put(&e, "s", "x", 2).await;
    assert!(log_files_with(dir.path(), "s", MARKER).is_empty());
    e.shutdown().await;
    drop(e);

    // Without the keyring the engine does not open the encrypted stream (fail closed).
    let catalog = Arc::new(lakehose_catalog::FileCatalog::open_in_data_dir(dir.path()).unwrap());
    let buckets = lakehose_sinks::Buckets::new(dir.path().join("buckets"), Default::default());
    let err = match Engine::open(dir.path(), buckets, catalog, EngineConfig::default()).await {
        Ok(_) => panic!("opened without its key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("keyring"), "{err}");
}

#[tokio::test]
async fn kms_objects_of_local_buckets_are_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let ring = keyring(&["objects"]);
    let engine = engine(dir.path(), Some(ring.clone())).await;
    let arn = "arn:aws:kms:us-east-1:123456789012:key/objects";
    engine
        .create_stream(spec("o", serde_json::json!({ "KMS": arn })))
        .await
        .unwrap();
    put(&engine, "o", "obj", 5).await;
    let lines = delivered(dir.path(), "o", Some(&ring), 5).await;
    assert!(lines.iter().all(|l| l.contains(MARKER)));
    for f in files_under(&dir.path().join("buckets/o")) {
        let raw = std::fs::read(&f).unwrap();
        assert!(lakehose_crypto::object::is_sealed(&raw), "{}", f.display());
        assert!(!raw.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()));
    }
    // A key the keyring lacks is refused on update, like on create.
    let err = engine
        .modify_stream("o", &mut |s| {
            s.destination.encryption_configuration = Some(
                serde_json::from_value(serde_json::json!({
                    "KMSEncryptionConfig": {"AWSKMSKeyARN": "arn:aws:kms:us-east-1:1:key/gone"}
                }))
                .unwrap(),
            );
            Ok(())
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidKmsResource);
    engine.shutdown().await;
}
