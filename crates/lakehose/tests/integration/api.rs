//! Every Firehose operation and its errors, driven by the official Rust SDK.

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::{
    DeliveryStreamEncryptionConfigurationInput, DeliveryStreamEncryptionStatus,
    DeliveryStreamStatus, DeliveryStreamType, ExtendedS3DestinationUpdate, KeyType, Record,
    S3DestinationConfiguration, Tag,
};

use crate::common::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
#[allow(deprecated)] // S3DestinationConfiguration is deprecated in the SDK, still in the API.
fn lifecycle_and_describe_defaults() {
    let server = Server::start();
    let c = server.client();
    rt().block_on(async {
        let arn = c
            .create_delivery_stream()
            .delivery_stream_name("orders")
            .extended_s3_destination_configuration(
                aws_sdk_firehose::types::ExtendedS3DestinationConfiguration::builder()
                    .role_arn(ROLE)
                    .bucket_arn("arn:aws:s3:::lake")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap()
            .delivery_stream_arn
            .unwrap();
        assert_eq!(
            arn,
            "arn:aws:firehose:us-east-1:000000000000:deliverystream/orders"
        );
        let d = c
            .describe_delivery_stream()
            .delivery_stream_name("orders")
            .send()
            .await
            .unwrap();
        let d = d.delivery_stream_description.unwrap();
        assert_eq!(d.delivery_stream_status, DeliveryStreamStatus::Active);
        assert_eq!(d.delivery_stream_type, DeliveryStreamType::DirectPut);
        assert_eq!(d.version_id, "1");
        assert!(!d.has_more_destinations);
        assert!(d.create_timestamp.is_some());
        let dest = &d.destinations[0];
        assert_eq!(dest.destination_id, "destinationId-000000000001");
        let ext = dest.extended_s3_destination_description.as_ref().unwrap();
        let hints = ext.buffering_hints.as_ref().unwrap();
        assert_eq!(
            (hints.size_in_mbs, hints.interval_in_seconds),
            (Some(5), Some(300))
        );
        assert_eq!(ext.compression_format.as_str(), "UNCOMPRESSED");
        assert_eq!(
            ext.encryption_configuration
                .as_ref()
                .unwrap()
                .no_encryption_config
                .as_ref()
                .unwrap()
                .as_str(),
            "NoEncryption"
        );
        assert_eq!(ext.s3_backup_mode.as_ref().unwrap().as_str(), "Disabled");
        assert_eq!(
            d.delivery_stream_encryption_configuration.unwrap().status,
            Some(DeliveryStreamEncryptionStatus::Disabled)
        );

        // A second stream with the deprecated S3 destination is described both ways.
        c.create_delivery_stream()
            .delivery_stream_name("legacy")
            .s3_destination_configuration(
                S3DestinationConfiguration::builder()
                    .role_arn(ROLE)
                    .bucket_arn("arn:aws:s3:::lake")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let d = c
            .describe_delivery_stream()
            .delivery_stream_name("legacy")
            .send()
            .await
            .unwrap();
        let dest = &d.delivery_stream_description.unwrap().destinations[0];
        assert!(dest.s3_destination_description.is_some());
        assert!(dest.extended_s3_destination_description.is_some());

        let dup = c
            .create_delivery_stream()
            .delivery_stream_name("orders")
            .extended_s3_destination_configuration(s3_dest("lake", 5, 300))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&dup), "ResourceInUseException");

        let names = c.list_delivery_streams().send().await.unwrap();
        assert_eq!(names.delivery_stream_names, vec!["legacy", "orders"]);
        assert!(!names.has_more_delivery_streams);
        let page = c.list_delivery_streams().limit(1).send().await.unwrap();
        assert_eq!(page.delivery_stream_names, vec!["legacy"]);
        assert!(page.has_more_delivery_streams);
        let next = c
            .list_delivery_streams()
            .exclusive_start_delivery_stream_name("legacy")
            .send()
            .await
            .unwrap();
        assert_eq!(next.delivery_stream_names, vec!["orders"]);

        c.delete_delivery_stream()
            .delivery_stream_name("orders")
            .send()
            .await
            .unwrap();
        let gone = c
            .describe_delivery_stream()
            .delivery_stream_name("orders")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&gone), "ResourceNotFoundException");
        let gone = c
            .delete_delivery_stream()
            .delivery_stream_name("orders")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&gone), "ResourceNotFoundException");
        let gone = c
            .put_record()
            .delivery_stream_name("orders")
            .record(Record::builder().data(Blob::new("x")).build().unwrap())
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&gone), "ResourceNotFoundException");
    });
}

#[test]
#[allow(deprecated)]
fn create_validation_errors() {
    let server = Server::start();
    let c = server.client();
    rt().block_on(async {
        let bad_name = c
            .create_delivery_stream()
            .delivery_stream_name("bad/name")
            .extended_s3_destination_configuration(s3_dest("lake", 5, 300))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&bad_name), "InvalidArgumentException");
        let long_name = "x".repeat(65);
        let e = c
            .create_delivery_stream()
            .delivery_stream_name(&long_name)
            .extended_s3_destination_configuration(s3_dest("lake", 5, 300))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidArgumentException");
        for (size, interval) in [(0, 60), (129, 60), (5, 901), (5, -1)] {
            let e = c
                .create_delivery_stream()
                .delivery_stream_name("hints")
                .extended_s3_destination_configuration(s3_dest("lake", size, interval))
                .send()
                .await
                .unwrap_err();
            assert_eq!(
                code(&e),
                "InvalidArgumentException",
                "hints {size}/{interval}"
            );
        }
        let none = c
            .create_delivery_stream()
            .delivery_stream_name("none")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&none), "InvalidArgumentException");
        let two = c
            .create_delivery_stream()
            .delivery_stream_name("two")
            .extended_s3_destination_configuration(s3_dest("lake", 5, 300))
            .s3_destination_configuration(
                S3DestinationConfiguration::builder()
                    .role_arn(ROLE)
                    .bucket_arn("arn:aws:s3:::lake")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&two), "InvalidArgumentException");
        let mut dest = s3_dest("lake", 5, 300);
        dest.prefix = Some("data/!{timestamp:yyyy}/".into());
        let e = c
            .create_delivery_stream()
            .delivery_stream_name("prefix")
            .extended_s3_destination_configuration(dest.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code(&e),
            "InvalidArgumentException",
            "expressions need an ErrorOutputPrefix"
        );
        dest.prefix = Some("data/!{nope:x}/".into());
        dest.error_output_prefix = Some("err/!{firehose:error-output-type}/".into());
        let e = c
            .create_delivery_stream()
            .delivery_stream_name("prefix")
            .extended_s3_destination_configuration(dest)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidArgumentException", "unknown namespace");
        let mut dest = s3_dest("..", 5, 300);
        dest.bucket_arn = "arn:aws:s3:::..".into();
        let e = c
            .create_delivery_stream()
            .delivery_stream_name("escape")
            .extended_s3_destination_configuration(dest)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code(&e),
            "InvalidArgumentException",
            "bucket names cannot leave the data dir"
        );
        let mut dest = s3_dest("lake", 5, 300);
        dest.custom_time_zone = Some("Mars/Olympus".into());
        let e = c
            .create_delivery_stream()
            .delivery_stream_name("tz")
            .extended_s3_destination_configuration(dest)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidArgumentException");
        // Nothing above created anything.
        let names = c.list_delivery_streams().send().await.unwrap();
        assert!(
            names.delivery_stream_names.is_empty(),
            "{:?}",
            names.delivery_stream_names
        );
    });
}

#[test]
fn update_destination_versions_and_conflicts() {
    let server = Server::start();
    let c = server.client();
    rt().block_on(async {
        c.create_delivery_stream()
            .delivery_stream_name("u")
            .extended_s3_destination_configuration(s3_dest("lake", 5, 300))
            .send()
            .await
            .unwrap();
        c.update_destination()
            .delivery_stream_name("u")
            .current_delivery_stream_version_id("1")
            .destination_id("destinationId-000000000001")
            .extended_s3_destination_update(
                ExtendedS3DestinationUpdate::builder()
                    .compression_format(aws_sdk_firehose::types::CompressionFormat::Gzip)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let d = c
            .describe_delivery_stream()
            .delivery_stream_name("u")
            .send()
            .await
            .unwrap();
        let d = d.delivery_stream_description.unwrap();
        assert_eq!(d.version_id, "2");
        assert!(d.last_update_timestamp.is_some());
        let ext = d.destinations[0]
            .extended_s3_destination_description
            .as_ref()
            .unwrap();
        assert_eq!(ext.compression_format.as_str(), "GZIP");
        assert_eq!(
            ext.bucket_arn, "arn:aws:s3:::lake",
            "fields not in the update are kept"
        );
        let stale = c
            .update_destination()
            .delivery_stream_name("u")
            .current_delivery_stream_version_id("1")
            .destination_id("destinationId-000000000001")
            .extended_s3_destination_update(ExtendedS3DestinationUpdate::builder().build())
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&stale), "ConcurrentModificationException");
        let bad_dest = c
            .update_destination()
            .delivery_stream_name("u")
            .current_delivery_stream_version_id("2")
            .destination_id("destinationId-000000000002")
            .extended_s3_destination_update(ExtendedS3DestinationUpdate::builder().build())
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&bad_dest), "InvalidArgumentException");
        let missing = c
            .update_destination()
            .delivery_stream_name("nope")
            .current_delivery_stream_version_id("1")
            .destination_id("destinationId-000000000001")
            .extended_s3_destination_update(ExtendedS3DestinationUpdate::builder().build())
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&missing), "ResourceNotFoundException");
    });
}

#[test]
fn tags_and_encryption() {
    // Encryption needs a keyring (without one it fails closed: see encryption.rs).
    let (_tmp, server) = crate::encryption::server_with_keyring();
    let c = server.client();
    rt().block_on(async {
        c.create_delivery_stream()
            .delivery_stream_name("t")
            .extended_s3_destination_configuration(s3_dest("lake", 5, 300))
            .tags(Tag::builder().key("team").value("data").build().unwrap())
            .send()
            .await
            .unwrap();
        let tags: Vec<Tag> = (0..10)
            .map(|i| {
                Tag::builder()
                    .key(format!("k{i:02}"))
                    .value("v")
                    .build()
                    .unwrap()
            })
            .collect();
        c.tag_delivery_stream()
            .delivery_stream_name("t")
            .set_tags(Some(tags))
            .send()
            .await
            .unwrap();
        let page = c
            .list_tags_for_delivery_stream()
            .delivery_stream_name("t")
            .limit(4)
            .send()
            .await
            .unwrap();
        assert_eq!(page.tags.len(), 4);
        assert!(page.has_more_tags);
        let rest = c
            .list_tags_for_delivery_stream()
            .delivery_stream_name("t")
            .exclusive_start_tag_key(page.tags[3].key.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(rest.tags.len(), 7);
        assert!(!rest.has_more_tags);
        c.untag_delivery_stream()
            .delivery_stream_name("t")
            .tag_keys("team")
            .send()
            .await
            .unwrap();
        let all = c
            .list_tags_for_delivery_stream()
            .delivery_stream_name("t")
            .send()
            .await
            .unwrap();
        assert_eq!(all.tags.len(), 10);
        assert!(all.tags.iter().all(|t| t.key != "team"));
        let reserved = c
            .tag_delivery_stream()
            .delivery_stream_name("t")
            .tags(Tag::builder().key("aws:x").value("v").build().unwrap())
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&reserved), "InvalidArgumentException");
        let many: Vec<Tag> = (0..41)
            .map(|i| {
                Tag::builder()
                    .key(format!("m{i:02}"))
                    .value("v")
                    .build()
                    .unwrap()
            })
            .collect();
        let over = c
            .tag_delivery_stream()
            .delivery_stream_name("t")
            .set_tags(Some(many))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&over), "LimitExceededException");
        let unknown = c
            .list_tags_for_delivery_stream()
            .delivery_stream_name("zz")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&unknown), "ResourceNotFoundException");

        c.start_delivery_stream_encryption()
            .delivery_stream_name("t")
            .delivery_stream_encryption_configuration_input(
                DeliveryStreamEncryptionConfigurationInput::builder()
                    .key_type(KeyType::AwsOwnedCmk)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let d = c
            .describe_delivery_stream()
            .delivery_stream_name("t")
            .send()
            .await
            .unwrap();
        let enc = d
            .delivery_stream_description
            .unwrap()
            .delivery_stream_encryption_configuration
            .unwrap();
        assert_eq!(enc.status, Some(DeliveryStreamEncryptionStatus::Enabled));
        assert_eq!(enc.key_type, Some(KeyType::AwsOwnedCmk));
        let bad_key = c
            .start_delivery_stream_encryption()
            .delivery_stream_name("t")
            .delivery_stream_encryption_configuration_input(
                DeliveryStreamEncryptionConfigurationInput::builder()
                    .key_type(KeyType::CustomerManagedCmk)
                    .key_arn("not-a-key")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&bad_key), "InvalidKMSResourceException");
        c.stop_delivery_stream_encryption()
            .delivery_stream_name("t")
            .send()
            .await
            .unwrap();
        let d = c
            .describe_delivery_stream()
            .delivery_stream_name("t")
            .send()
            .await
            .unwrap();
        let enc = d
            .delivery_stream_description
            .unwrap()
            .delivery_stream_encryption_configuration
            .unwrap();
        assert_eq!(enc.status, Some(DeliveryStreamEncryptionStatus::Disabled));
    });
}

#[test]
fn put_limits() {
    let server = Server::start();
    let c = server.client();
    rt().block_on(async {
        c.create_delivery_stream()
            .delivery_stream_name("p")
            .extended_s3_destination_configuration(s3_dest("lake", 5, 300))
            .send()
            .await
            .unwrap();
        let rec = |n: usize| {
            Record::builder()
                .data(Blob::new(vec![b'a'; n]))
                .build()
                .unwrap()
        };
        let ok = c
            .put_record_batch()
            .delivery_stream_name("p")
            .set_records(Some((0..500).map(|_| rec(10)).collect()))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.failed_put_count, 0);
        assert_eq!(ok.request_responses.len(), 500);
        let ids: std::collections::HashSet<_> = ok
            .request_responses
            .iter()
            .map(|r| r.record_id.clone().unwrap())
            .collect();
        assert_eq!(ids.len(), 500, "record ids are unique");

        let too_many = c
            .put_record_batch()
            .delivery_stream_name("p")
            .set_records(Some((0..501).map(|_| rec(1)).collect()))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&too_many), "InvalidArgumentException");
        let too_big = c
            .put_record_batch()
            .delivery_stream_name("p")
            .records(rec(10))
            .records(rec(1_024_001))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&too_big), "InvalidArgumentException");
        let max_ok = c
            .put_record()
            .delivery_stream_name("p")
            .record(rec(1_024_000))
            .send()
            .await
            .unwrap();
        assert!(!max_ok.record_id.is_empty());
        let over_4mib = c
            .put_record_batch()
            .delivery_stream_name("p")
            .set_records(Some((0..5).map(|_| rec(1_000_000)).collect()))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&over_4mib), "InvalidArgumentException");
        let empty = c
            .put_record()
            .delivery_stream_name("p")
            .record(rec(0))
            .send()
            .await
            .unwrap();
        assert!(!empty.record_id.is_empty(), "empty records are allowed");
        let none = c
            .put_record_batch()
            .delivery_stream_name("p")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&none), "InvalidArgumentException");
    });
}

/// Error paths no SDK would send, checked with hand-made requests.
#[test]
fn malformed_requests_get_aws_errors() {
    let server = Server::start();
    let post = |target: &str, body: &str| -> (u16, serde_json::Value) {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                "-X",
                "POST",
                &server.endpoint,
            ])
            .args(["-H", &format!("X-Amz-Target: {target}")])
            .args([
                "-H",
                "Content-Type: application/x-amz-json-1.1",
                "--data-binary",
                body,
            ])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (
            status.parse().unwrap(),
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        )
    };
    let (status, body) = post("Firehose_20150804.Nope", "{}");
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("UnknownOperationException"))
    );
    let (status, body) = post("Other.Thing", "{}");
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("UnknownOperationException"))
    );
    let (status, body) = post("Firehose_20150804.PutRecordBatch", "{not json");
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("SerializationException"))
    );
    let (_, body) = post(
        "Firehose_20150804.PutRecordBatch",
        r#"{"DeliveryStreamName":"p","Records":[{"Data":"!!notbase64"}]}"#,
    );
    assert_eq!(body["__type"], "SerializationException");
    let (_, body) = post("Firehose_20150804.ListDeliveryStreams", r#"{"Bogus":1}"#);
    assert_eq!(
        body["__type"], "SerializationException",
        "unknown members are rejected"
    );
    let (status, body) = post("Firehose_20150804.ListDeliveryStreams", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["DeliveryStreamNames"], serde_json::json!([]));
}
