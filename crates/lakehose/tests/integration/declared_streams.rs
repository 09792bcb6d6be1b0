//! Streams declared in `lakehose.toml` (`[[streams]]`, each a `CreateDeliveryStream` request):
//! created at start when missing, left alone when they exist (API changes persist), and a
//! declaration the API would refuse stops the start with a message naming it.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

const DECLARED: &str = r#"
[[streams]]
DeliveryStreamName = "declared"
[streams.ExtendedS3DestinationConfiguration]
RoleARN = "arn:aws:iam::123456789012:role/firehose"
BucketARN = "arn:aws:s3:::lake"
Prefix = "declared/"
BufferingHints = { SizeInMBs = 1, IntervalInSeconds = 0 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_streams_are_created_once_and_keep_api_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(tmp.path(), Some(DECLARED));
    let c = server.client();
    let (desc, dest) = describe(&c, "declared").await;
    assert_eq!(desc.delivery_stream_status().as_str(), "ACTIVE");
    assert_eq!(dest.prefix(), Some("declared/"));
    put_lines(&c, "declared", &lines(10, "a")).await;
    let objs = wait_for_objects(&server.bucket("lake"), Duration::from_secs(10), |o| {
        o.iter().map(|(_, b)| b.len()).sum::<usize>() > 0
    });
    assert!(objs[0].0.starts_with("declared/"), "{objs:?}");

    // A change made through the API survives a restart with the same declaration.
    c.update_destination()
        .delivery_stream_name("declared")
        .current_delivery_stream_version_id(desc.version_id())
        .destination_id(desc.destinations()[0].destination_id())
        .extended_s3_destination_update(
            aws_sdk_firehose::types::ExtendedS3DestinationUpdate::builder()
                .prefix("changed/")
                .build(),
        )
        .send()
        .await
        .unwrap();
    server.stop();
    let server = Server::start_in(tmp.path(), Some(DECLARED));
    let c = server.client();
    let names = c.list_delivery_streams().send().await.unwrap();
    assert_eq!(names.delivery_stream_names(), ["declared"]);
    let (_, dest) = describe(&c, "declared").await;
    assert_eq!(dest.prefix(), Some("changed/"));
}

/// The stream's description and its Extended S3 destination.
async fn describe(
    c: &aws_sdk_firehose::Client,
    name: &str,
) -> (
    aws_sdk_firehose::types::DeliveryStreamDescription,
    aws_sdk_firehose::types::ExtendedS3DestinationDescription,
) {
    let out = c
        .describe_delivery_stream()
        .delivery_stream_name(name)
        .send()
        .await
        .unwrap();
    let desc = out.delivery_stream_description().unwrap().clone();
    let dest = desc.destinations()[0]
        .extended_s3_destination_description()
        .unwrap()
        .clone();
    (desc, dest)
}

#[test]
fn a_declaration_the_api_would_refuse_stops_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("lakehose.toml");
    std::fs::write(
        &config,
        DECLARED.replace("arn:aws:s3:::lake", "not-an-arn")
            + "\n[[streams]]\nDeliveryStreamName = \"second\"\n",
    )
    .unwrap();
    let out = Command::new(lakehose_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[[streams]] entry 1 (declared): InvalidArgumentException")
            && stderr.contains("bucketARN"),
        "{stderr}"
    );
    // Nothing was created.
    assert!(!tmp.path().join("data/streams/declared.stream").exists());
}
