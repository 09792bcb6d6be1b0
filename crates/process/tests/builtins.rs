//! The built-in processors: CloudWatch Logs decompression, de-aggregation (JSON, DELIMITED,
//! KPL), jq metadata extraction, the Lakehose.Jq transform, the delimiter, configuration.

mod common;

use common::*;
use lakehose_process::{
    LambdaEndpoints, MAX_SUB_RECORDS, ProcessorChain, codes, error_output, validate_partition_value,
};
use md5::{Digest as _, Md5};
use serde_json::{Value, json};

fn no_lambdas() -> LambdaEndpoints {
    LambdaEndpoints::new()
}

fn cwl_payload(message_type: &str, messages: &[&str]) -> Vec<u8> {
    let events: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": format!("3{i:055}"), "timestamp": 1_700_000_000_000u64 + i as u64, "message": m}))
        .collect();
    let payload = json!({
        "messageType": message_type,
        "owner": "123456789012",
        "logGroup": "/aws/lambda/app",
        "logStream": "2024/01/01/[$LATEST]abc",
        "subscriptionFilters": ["to-firehose"],
        "logEvents": events,
    });
    gzip(payload.to_string().as_bytes())
}

const DECOMPRESS: (&str, &[(&str, &str)]) = ("Decompression", &[("CompressionFormat", "GZIP")]);
const EXTRACT: (&str, &[(&str, &str)]) = (
    "CloudWatchLogProcessing",
    &[("DataMessageExtraction", "true")],
);
const NO_EXTRACT: (&str, &[(&str, &str)]) = (
    "CloudWatchLogProcessing",
    &[("DataMessageExtraction", "false")],
);
const DELIMITER: (&str, &[(&str, &str)]) = ("AppendDelimiterToRecord", &[]);

#[tokio::test]
async fn cloudwatch_logs_extraction() {
    let chain = chain(
        &processing(&[DECOMPRESS, EXTRACT, DELIMITER]),
        false,
        &no_lambdas(),
    );
    let not_gzip = b"this is not gzip".to_vec();
    let input = inputs(&[
        cwl_payload(
            "DATA_MESSAGE",
            &["first event", "second event", "third event"],
        ),
        cwl_payload(
            "CONTROL_MESSAGE",
            &["CWL CONTROL MESSAGE: Checking health of destination Firehose."],
        ),
        not_gzip.clone(),
        cwl_payload("DATA_MESSAGE", &["later"]),
        cwl_payload("DATA_MESSAGE", &[]),
        gzip(b"{\"not\": \"cloudwatch\"}"),
    ]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(
        strings(&batch),
        [
            "first event\n",
            "second event\n",
            "third event\n",
            "later\n"
        ]
    );
    assert_eq!(
        batch
            .records
            .iter()
            .map(|r| r.source_id)
            .collect::<Vec<_>>(),
        [100, 100, 100, 103]
    );
    // The control message and the empty data message are dropped.
    assert_eq!(batch.dropped, [101, 104]);
    assert_eq!(batch.failed.len(), 2);
    let bad_gzip = &batch.failed[0];
    assert_eq!(bad_gzip.source_id, 102);
    assert_eq!(
        bad_gzip.error_output_type,
        error_output::DECOMPRESSION_FAILED
    );
    assert_eq!(bad_gzip.error_code, codes::DECOMPRESSION_FAILED);
    assert_eq!(
        bad_gzip.raw_data.as_ref(),
        not_gzip.as_slice(),
        "delivered as is"
    );
    assert_eq!(bad_gzip.attempts_made, 1);
    assert!(bad_gzip.lambda_arn.is_none());
    let doc: Value = serde_json::from_str(&bad_gzip.to_error_document(5)).unwrap();
    assert!(doc.get("lambdaArn").is_none());
    assert_eq!(doc["errorCode"], codes::DECOMPRESSION_FAILED);
    let not_cwl = &batch.failed[1];
    assert_eq!(not_cwl.source_id, 105);
    assert_eq!(not_cwl.error_output_type, error_output::PROCESSING_FAILED);
    assert_eq!(not_cwl.error_code, codes::CLOUDWATCH_LOGS_INVALID);
    assert_eq!(not_cwl.raw_data.as_ref(), b"{\"not\": \"cloudwatch\"}");
}

#[tokio::test]
async fn cloudwatch_logs_without_extraction_and_decompression_alone() {
    let data = cwl_payload("DATA_MESSAGE", &["a", "b"]);
    let control = cwl_payload("CONTROL_MESSAGE", &["health check"]);
    for config in [
        processing(&[DECOMPRESS, NO_EXTRACT]),
        processing(&[DECOMPRESS]),
    ] {
        let chain = chain(&config, false, &no_lambdas());
        let input = inputs(&[data.clone(), control.clone(), gzip(b"plain text")]);
        let batch = chain.process(&input).await;
        assert_accounted(&input, &batch);
        assert_eq!(batch.dropped, [101]);
        let first: Value = serde_json::from_slice(&batch.records[0].data).unwrap();
        assert_eq!(first["messageType"], "DATA_MESSAGE");
        assert_eq!(first["logEvents"].as_array().unwrap().len(), 2);
        if config["Processors"].as_array().unwrap().len() == 1 {
            // Decompression alone passes any gzip content through.
            assert_eq!(strings(&batch)[1], "plain text");
        } else {
            assert_eq!(batch.failed[0].error_code, codes::CLOUDWATCH_LOGS_INVALID);
        }
    }
}

#[tokio::test]
async fn decompression_bomb_is_refused() {
    let chain = chain(&processing(&[DECOMPRESS]), false, &no_lambdas());
    let bomb = gzip(&vec![0u8; lakehose_process::MAX_DECOMPRESSED_BYTES + 1]);
    assert!(bomb.len() < 1_024_000, "fits in one Firehose record");
    let input = inputs(&[bomb.clone(), gzip(b"fine")]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(strings(&batch), ["fine"]);
    assert_eq!(batch.failed[0].error_code, codes::DECOMPRESSION_TOO_LARGE);
    assert_eq!(
        batch.failed[0].error_output_type,
        error_output::DECOMPRESSION_FAILED
    );
    assert_eq!(batch.failed[0].raw_data.as_ref(), bomb.as_slice());
}

#[tokio::test]
async fn json_deaggregation() {
    let config = processing(&[
        ("RecordDeAggregation", &[("SubRecordType", "JSON")]),
        DELIMITER,
    ]);
    let chain = chain(&config, false, &no_lambdas());
    let too_many = "{\"n\":1}".repeat(MAX_SUB_RECORDS + 1);
    let input = inputs(&[
        "{\"a\":1}{\"a\":2}\n{\"a\":3}\n",
        "[{\"a\":1},{\"a\":2}]",
        too_many.as_str(),
        "{\"b\": {\"nested\": [1, 2]}}",
        "\n",
        "{\"c\":1}{broken",
    ]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(
        strings(&batch),
        [
            "{\"a\":1}\n",
            "{\"a\":2}\n",
            "{\"a\":3}\n",
            "{\"b\": {\"nested\": [1, 2]}}\n"
        ]
    );
    assert_eq!(batch.dropped, [104]);
    let codes_by_id: Vec<(u64, &str)> = batch
        .failed
        .iter()
        .map(|f| (f.source_id, f.error_code.as_str()))
        .collect();
    assert_eq!(
        codes_by_id,
        [
            (101, codes::DEAGGREGATION_INVALID_JSON),
            (102, codes::DEAGGREGATION_TOO_MANY),
            (105, codes::DEAGGREGATION_INVALID_JSON),
        ]
    );
    assert!(
        batch
            .failed
            .iter()
            .all(|f| f.error_output_type == error_output::PROCESSING_FAILED)
    );
}

#[tokio::test]
async fn delimited_deaggregation() {
    // "####" is IyMjIw== in base64.
    let config = processing(&[(
        "RecordDeAggregation",
        &[("SubRecordType", "DELIMITED"), ("Delimiter", "IyMjIw==")],
    )]);
    let chain = chain(&config, false, &no_lambdas());
    let too_many = "x####".repeat(MAX_SUB_RECORDS + 1);
    let input = inputs(&["one####two####three", "single", too_many.as_str(), "####"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(strings(&batch), ["one", "two", "three", "single"]);
    assert_eq!(batch.failed.len(), 1);
    assert_eq!(batch.failed[0].error_code, codes::DEAGGREGATION_TOO_MANY);
    assert_eq!(batch.dropped, [103]);
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(number: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(number << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// A KPL aggregated record: magic, `AggregatedRecord` protobuf, MD5 of the protobuf.
fn kpl_aggregate(records: &[&[u8]]) -> Vec<u8> {
    let mut message = Vec::new();
    bytes_field(1, b"partition-key", &mut message);
    bytes_field(2, b"1234567890", &mut message);
    for (i, data) in records.iter().enumerate() {
        let mut record = Vec::new();
        varint(1 << 3, &mut record);
        varint(0, &mut record);
        if i % 2 == 1 {
            varint(2 << 3, &mut record);
            varint(0, &mut record);
        }
        bytes_field(3, data, &mut record);
        // A tag { key = "k", value = "v" }.
        let mut tag = Vec::new();
        bytes_field(1, b"k", &mut tag);
        bytes_field(2, b"v", &mut tag);
        bytes_field(4, &tag, &mut record);
        bytes_field(3, &record, &mut message);
    }
    let mut out = vec![0xF3, 0x89, 0x9A, 0xC2];
    out.extend_from_slice(&message);
    out.extend_from_slice(&Md5::digest(&message));
    out
}

#[tokio::test]
async fn kpl_aggregated_records() {
    let config = processing(&[("RecordDeAggregation", &[("SubRecordType", "JSON")])]);
    let chain = chain(&config, false, &no_lambdas());
    let aggregate = kpl_aggregate(&[b"{\"u\":1}", b"{\"u\":2}{\"u\":3}", b"{\"u\":4}\n"]);
    let mut bad_checksum = aggregate.clone();
    let last = bad_checksum.len() - 1;
    bad_checksum[last] ^= 0xff;
    let input = inputs(&[aggregate, bad_checksum, b"{\"plain\":true}".to_vec()]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(
        &strings(&batch)[..4],
        ["{\"u\":1}", "{\"u\":2}", "{\"u\":3}", "{\"u\":4}"]
    );
    assert!(batch.records[..4].iter().all(|r| r.source_id == 100));
    // A bad checksum makes it an ordinary record, which is not JSON.
    assert_eq!(batch.failed.len(), 1);
    assert_eq!(batch.failed[0].source_id, 101);
    assert_eq!(
        batch.failed[0].error_code,
        codes::DEAGGREGATION_INVALID_JSON
    );
    assert_eq!(strings(&batch)[4], "{\"plain\":true}");

    // DELIMITED mode de-aggregates KPL records too.
    let config = processing(&[(
        "RecordDeAggregation",
        &[("SubRecordType", "DELIMITED"), ("Delimiter", "fA==")],
    )]);
    let chain = self::chain(&config, false, &no_lambdas());
    let input = inputs(&[kpl_aggregate(&[b"a|b", b"c"])]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(strings(&batch), ["a", "b", "c"]);
}

#[tokio::test]
async fn jq_metadata_extraction() {
    let query = r#"{customer_id: .customer_id, year: (.ts | strftime("%Y")), n: .n}"#;
    let config = processing(&[
        (
            "MetadataExtraction",
            &[
                ("MetadataExtractionQuery", query),
                ("JsonParsingEngine", "JQ-1.6"),
            ],
        ),
        DELIMITER,
    ]);
    let chain = chain(&config, true, &no_lambdas());
    assert!(chain.produces_partition_keys());
    let input = inputs(&[
        r#"{"customer_id":"acme","ts":1700000000,"n":3}"#,
        "not json",
        r#"{"ts":1700000000,"n":1}"#,
        r#"{"customer_id":"../etc","ts":1700000000,"n":1}"#,
        r#"{"customer_id":"beta","ts":1600000000,"n":2.5}"#,
    ]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(batch.records.len(), 2);
    let k = &batch.records[0].partition_keys;
    assert_eq!(k.get("partitionKeyFromQuery", "customer_id"), Some("acme"));
    assert_eq!(k.get("partitionKeyFromQuery", "year"), Some("2023"));
    assert_eq!(k.get("partitionKeyFromQuery", "n"), Some("3"));
    assert!(k.from_lambda.is_empty());
    assert_eq!(batch.records[1].partition_keys.from_query["year"], "2020");
    assert_eq!(batch.records[1].partition_keys.from_query["n"], "2.5");
    assert_eq!(
        strings(&batch)[0],
        format!("{}\n", String::from_utf8_lossy(&input[0].data))
    );
    let failures: Vec<(u64, &str)> = batch
        .failed
        .iter()
        .map(|f| (f.source_id, f.error_code.as_str()))
        .collect();
    assert_eq!(
        failures,
        [
            (101, codes::METADATA_EXTRACTION_FAILED),
            (102, codes::METADATA_EXTRACTION_FAILED),
            (103, codes::INVALID_PARTITION_KEY),
        ]
    );
    assert!(batch.failed[0].error_message.contains("Non JSON"));
    assert!(batch.failed[1].error_message.contains("customer_id"));
    assert_eq!(
        batch.failed[2].raw_data, input[3].data,
        "before the delimiter"
    );

    // Without dynamic partitioning the query does not run.
    let only_query = processing(&[("MetadataExtraction", &[("MetadataExtractionQuery", query)])]);
    let chain = self::chain(&only_query, false, &no_lambdas());
    assert!(chain.is_identity());
    assert!(!chain.produces_partition_keys());
}

#[tokio::test]
async fn lakehose_jq_transform() {
    let program = r#"select(.keep) | .items[] | {id, double: (.v * 2)}"#;
    let config = processing(&[
        ("Lakehose.Jq", &[("MetadataExtractionQuery", program)]),
        DELIMITER,
    ]);
    let chain = chain(&config, false, &no_lambdas());
    let input = inputs(&[
        r#"{"keep":true,"items":[{"id":"a","v":1},{"id":"b","v":2.5}]}"#,
        r#"{"keep":false,"items":[{"id":"c","v":1}]}"#,
        "not json",
        r#"{"keep":true,"items":"oops"}"#,
        r#"{"keep":true,"items":[]}"#,
        r#"{"keep":true,"items":[{"id":"ü\"\n","v":-0.5}]}"#,
    ]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(
        strings(&batch),
        [
            "{\"id\":\"a\",\"double\":2}\n",
            "{\"id\":\"b\",\"double\":5}\n",
            "{\"id\":\"ü\\\"\\n\",\"double\":-1}\n",
        ]
    );
    assert_eq!(batch.dropped, [101, 104]);
    assert_eq!(batch.failed.len(), 2);
    assert!(
        batch
            .failed
            .iter()
            .all(|f| f.error_code == codes::JQ_TRANSFORM_FAILED)
    );
    assert_eq!(batch.failed[0].source_id, 102);
    assert_eq!(batch.failed[1].source_id, 103);
    assert!(
        batch.failed[1].error_message.contains("jq error"),
        "{}",
        batch.failed[1].error_message
    );

    // Transform then partition: keys come from the transformed record.
    let config = processing(&[
        ("Lakehose.Jq", &[("MetadataExtractionQuery", ".items[]")]),
        (
            "MetadataExtraction",
            &[("MetadataExtractionQuery", "{id: .id}")],
        ),
    ]);
    let chain = self::chain(&config, true, &no_lambdas());
    let input = inputs(&[r#"{"items":[{"id":"x"},{"id":"y"}]}"#]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    let ids: Vec<&str> = batch
        .records
        .iter()
        .map(|r| r.partition_keys.from_query["id"].as_str())
        .collect();
    assert_eq!(ids, ["x", "y"]);
}

#[tokio::test]
async fn append_delimiter_and_identity() {
    let chain = chain(&processing(&[DELIMITER]), false, &no_lambdas());
    assert!(!chain.is_identity());
    let input = inputs(&["a", "", "c\n"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(strings(&batch), ["a\n", "\n", "c\n\n"]);

    for config in [
        None,
        Some(json!(null)),
        Some(json!({"Enabled": false, "Processors": [{"Type": "AppendDelimiterToRecord"}]})),
        Some(json!({"Enabled": true, "Processors": []})),
        Some(json!({"Processors": [{"Type": "AppendDelimiterToRecord"}]})),
    ] {
        let chain =
            ProcessorChain::from_config(config.as_ref(), true, &no_lambdas(), STREAM_ARN, REGION)
                .unwrap();
        assert!(chain.is_identity(), "{config:?}");
        let input = inputs(&["x"]);
        let batch = chain.process(&input).await;
        assert_accounted(&input, &batch);
        assert_eq!(strings(&batch), ["x"]);
    }
    let empty = ProcessorChain::identity().process(&[]).await;
    assert!(empty.records.is_empty() && empty.dropped.is_empty() && empty.failed.is_empty());
}

#[test]
fn configuration_errors_are_readable() {
    let cases: &[(Value, &str)] = &[
        (
            processing(&[(
                "MetadataExtraction",
                &[("MetadataExtractionQuery", "{a: .a")],
            )]),
            "MetadataExtractionQuery is not a valid jq program",
        ),
        (
            processing(&[(
                "MetadataExtraction",
                &[("MetadataExtractionQuery", "{a: nosuch(.a)}")],
            )]),
            "nosuch",
        ),
        (
            processing(&[("Lakehose.Jq", &[("MetadataExtractionQuery", ".[")])]),
            "Lakehose.Jq",
        ),
        (
            processing(&[(
                "Lambda",
                &[
                    ("LambdaArn", "arn:aws:lambda:us-east-1:1:function:f"),
                    ("NumberOfRetries", "11"),
                ],
            )]),
            "NumberOfRetries",
        ),
        (
            processing(&[(
                "Lambda",
                &[("LambdaArn", "arn:aws:lambda:us-east-1:1:function:f")],
            )]),
            "not mapped",
        ),
        (
            processing(&[("RecordDeAggregation", &[("SubRecordType", "CSV")])]),
            "SubRecordType",
        ),
        (
            processing(&[("Decompression", &[("CompressionFormat", "Snappy")])]),
            "GZIP",
        ),
        (processing(&[EXTRACT]), "Decompression"),
        (
            processing(&[("Sideways", &[])]),
            "Unsupported processor type",
        ),
        (json!({"Enabled": "yes"}), "Invalid ProcessingConfiguration"),
    ];
    for (config, expected) in cases {
        // Validation happens even when processing is disabled.
        for enabled in [true, false] {
            let mut config = config.clone();
            if config.get("Processors").is_some() {
                config["Enabled"] = json!(enabled);
            }
            let result =
                ProcessorChain::from_config(Some(&config), true, &no_lambdas(), STREAM_ARN, REGION);
            if !enabled && *expected == "not mapped" {
                // A disabled chain's Lambda need not be mapped.
                assert!(result.unwrap().is_identity());
                continue;
            }
            let err = result.unwrap_err();
            assert!(
                err.to_string().contains(expected),
                "{err} should mention {expected}"
            );
        }
    }
}

#[test]
fn a_lambda_chain_can_be_built_outside_a_runtime() {
    let mut endpoints = LambdaEndpoints::new();
    endpoints.insert("f", "http://127.0.0.1:9001");
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:f";
    let config = processing(&[(
        "Lambda",
        &[
            ("LambdaArn", arn),
            ("BufferSizeInMBs", "3"),
            ("BufferIntervalInSeconds", "0"),
        ],
    )]);
    let chain =
        ProcessorChain::from_config(Some(&config), false, &endpoints, STREAM_ARN, REGION).unwrap();
    let hints = chain.lambda_buffering().unwrap();
    assert_eq!(hints.size_bytes, 3 * 1024 * 1024);
    assert_eq!(hints.interval, std::time::Duration::ZERO);
    assert!(format!("{chain:?}").contains(arn));
}

#[test]
fn partition_value_validation() {
    assert!(validate_partition_value("customer-1").is_ok());
    for bad in ["", ".", "..", "a/b", "a\\b", "a\u{0}b", "line\nbreak"] {
        assert!(validate_partition_value(bad).is_err(), "{bad:?}");
    }
    assert!(validate_partition_value(&"x".repeat(513)).is_err());
}
