//! Writes the seed corpus: `corpus/<target>/seed-*` files.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example gen_seeds \
//!         [-- PATH/TO/firehose-service-2.json]
//!
//! Seeds are valid inputs of each decoder built by the real encoders or from the AWS service
//! model: request instances generated from the model's input shapes, hand-written requests
//! that pass validation, gzip / zip / Snappy objects from `lakehose_formats::compress`,
//! CloudWatch Logs subscription payloads, KPL aggregates, the prefix examples of the Firehose
//! docs, and segment and checkpoint files written by `lakehose_log::Log` itself. Re-running
//! it overwrites the `seed-*` files and leaves fuzzer-found files alone.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use lakehose_formats::{Codec, compress};
use lakehose_fuzz::encode;
use serde_json::{Map, Value, json};

struct Corpus {
    root: PathBuf,
    written: usize,
}

impl Corpus {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
        self.written += 1;
    }

    fn put_sel(&mut self, target: &str, name: &str, sel: u8, rest: &[u8]) {
        let mut bytes = vec![sel];
        bytes.extend_from_slice(rest);
        self.put(target, name, &bytes);
    }
}

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model_path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../shared/reference/firehose-service-2.json"));
    let mut c = Corpus {
        root: manifest.join("corpus"),
        written: 0,
    };
    match std::fs::read(&model_path) {
        Ok(bytes) => {
            let model: Value = serde_json::from_slice(&bytes).expect("service model is JSON");
            api_from_model(&mut c, &model);
        }
        Err(e) => eprintln!(
            "skipping model-generated API seeds ({}: {e})",
            model_path.display()
        ),
    }
    api_handwritten(&mut c);
    put_records(&mut c);
    decompress(&mut c);
    cwl(&mut c);
    kpl(&mut c);
    record_deagg(&mut c);
    prefix(&mut c);
    log(&mut c);
    println!("wrote {} seed files under {}", c.written, c.root.display());
}

// ---------------------------------------------------------------- API requests

/// `api_json` selector of each input shape (see `src/api.rs`).
const API_SHAPES: [(&str, u8); 12] = [
    ("CreateDeliveryStreamInput", 0),
    ("UpdateDestinationInput", 1),
    ("DeleteDeliveryStreamInput", 2),
    ("DescribeDeliveryStreamInput", 3),
    ("ListDeliveryStreamsInput", 4),
    ("TagDeliveryStreamInput", 5),
    ("UntagDeliveryStreamInput", 6),
    ("ListTagsForDeliveryStreamInput", 7),
    ("StartDeliveryStreamEncryptionInput", 8),
    ("StopDeliveryStreamEncryptionInput", 9),
    ("ExtendedS3DestinationConfiguration", 10),
    ("ProcessingConfiguration", 11),
];

/// An instance of `shape` from the service model: every member (`full`) or only the
/// required ones, enum values and bounds respected, nesting cut at `depth`.
fn instance(model: &Value, shape: &str, full: bool, depth: usize) -> Value {
    let s = &model["shapes"][shape];
    match s["type"].as_str().unwrap_or("string") {
        "structure" => {
            let required: Vec<&str> = s["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut out = Map::new();
            if let Some(members) = s["members"].as_object() {
                for (name, m) in members {
                    if (full && depth < 4) || required.contains(&name.as_str()) {
                        let target = m["shape"].as_str().unwrap_or_default();
                        out.insert(name.clone(), instance(model, target, full, depth + 1));
                    }
                }
            }
            Value::Object(out)
        }
        "list" => {
            let member = s["member"]["shape"].as_str().unwrap_or_default();
            json!([instance(model, member, full, depth + 1)])
        }
        "map" => {
            let value = s["value"]["shape"].as_str().unwrap_or_default();
            json!({ "key": instance(model, value, full, depth + 1) })
        }
        "boolean" => json!(true),
        "integer" | "long" => json!(s["min"].as_i64().unwrap_or(1).max(1)),
        "double" | "float" => json!(1.5),
        "timestamp" => json!(1_700_000_000),
        "blob" => json!("aGVsbG8gZmlyZWhvc2U="),
        _ => {
            if let Some(first) = s["enum"].as_array().and_then(|e| e.first()) {
                return first.clone();
            }
            let lower = shape.to_ascii_lowercase();
            let text = if lower.contains("bucketarn") {
                "arn:aws:s3:::example-bucket".to_string()
            } else if lower.contains("rolearn") {
                "arn:aws:iam::123456789012:role/firehose".to_string()
            } else if lower.contains("arn") {
                "arn:aws:kms:us-east-1:123456789012:key/1234abcd".to_string()
            } else if lower.contains("prefix") {
                "logs/!{timestamp:yyyy/MM/dd}/".to_string()
            } else if lower.contains("deliverystreamname") {
                "example-stream".to_string()
            } else {
                let min = s["min"].as_u64().unwrap_or(1).max(1) as usize;
                "x".repeat(min.min(64))
            };
            json!(text)
        }
    }
}

fn api_from_model(c: &mut Corpus, model: &Value) {
    for (shape, sel) in API_SHAPES {
        if model["shapes"][shape].is_null() {
            eprintln!("model has no shape {shape}");
            continue;
        }
        for full in [false, true] {
            let body = serde_json::to_vec(&instance(model, shape, full, 0)).expect("json");
            let kind = if full { "full" } else { "min" };
            c.put_sel("api_json", &format!("model-{shape}-{kind}"), sel, &body);
            if matches!(sel, 1 | 5 | 6 | 8) {
                c.put_sel(
                    "api_json",
                    &format!("model-{shape}-{kind}-ext"),
                    sel | 0x80,
                    &body,
                );
            }
        }
    }
    for (shape, sel) in [("PutRecordBatchInput", 0u8), ("PutRecordInput", 1)] {
        let body = serde_json::to_vec(&instance(model, shape, true, 0)).expect("json");
        c.put_sel("api_put_records", &format!("model-{shape}"), sel, &body);
    }
}

fn api_handwritten(c: &mut Corpus) {
    let s3 = json!({
        "DeliveryStreamName": "clicks",
        "S3DestinationConfiguration": {
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": "arn:aws:s3:::my-bucket",
            "Prefix": "clicks/",
            "BufferingHints": {"SizeInMBs": 5, "IntervalInSeconds": 300},
            "CompressionFormat": "GZIP",
            "EncryptionConfiguration": {"NoEncryptionConfig": "NoEncryption"}
        }
    });
    let extended = json!({
        "DeliveryStreamName": "orders.v2",
        "DeliveryStreamType": "DirectPut",
        "ExtendedS3DestinationConfiguration": {
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": "arn:aws:s3:::lake",
            "Prefix": "orders/customer=!{partitionKeyFromQuery:customer_id}/dt=!{timestamp:yyyy-MM-dd}/",
            "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
            "CompressionFormat": "UNCOMPRESSED",
            "DynamicPartitioningConfiguration": {"Enabled": true, "RetryOptions": {"DurationInSeconds": 300}},
            "ProcessingConfiguration": {"Enabled": true, "Processors": [
                {"Type": "RecordDeAggregation", "Parameters": [{"ParameterName": "SubRecordType", "ParameterValue": "JSON"}]},
                {"Type": "MetadataExtraction", "Parameters": [
                    {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{customer_id: .customer.id}"},
                    {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]},
                {"Type": "AppendDelimiterToRecord", "Parameters": []}
            ]},
            "DataFormatConversionConfiguration": {"Enabled": false},
            "FileExtension": ".json",
            "CustomTimeZone": "America/New_York",
            "CloudWatchLoggingOptions": {"Enabled": true, "LogGroupName": "g", "LogStreamName": "s"}
        },
        "DeliveryStreamEncryptionConfigurationInput": {"KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": "arn:aws:kms:us-east-1:123456789012:key/abcd"},
        "Tags": [{"Key": "team", "Value": "data"}]
    });
    let cwl = json!({
        "DeliveryStreamName": "cwl",
        "ExtendedS3DestinationConfiguration": {
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": "arn:aws:s3:::logs",
            "ProcessingConfiguration": {"Enabled": true, "Processors": [
                {"Type": "Decompression", "Parameters": [{"ParameterName": "CompressionFormat", "ParameterValue": "GZIP"}]},
                {"Type": "CloudWatchLogProcessing", "Parameters": [{"ParameterName": "DataMessageExtraction", "ParameterValue": "true"}]},
                {"Type": "RecordDeAggregation", "Parameters": [
                    {"ParameterName": "SubRecordType", "ParameterValue": "DELIMITED"},
                    {"ParameterName": "Delimiter", "ParameterValue": "IyMjIw=="}]}
            ]},
            "S3BackupMode": "Enabled",
            "S3BackupConfiguration": {"RoleARN": "arn:aws:iam::123456789012:role/firehose", "BucketARN": "arn:aws:s3:::backup"}
        }
    });
    for (name, v) in [
        ("create-s3", &s3),
        ("create-extended", &extended),
        ("create-cwl", &cwl),
    ] {
        c.put_sel("api_json", name, 0, &serde_json::to_vec(v).expect("json"));
    }
    c.put_sel("api_json", "create-empty-body", 0, b"  \n");
    let updates = [
        (
            "update-s3",
            0u8,
            json!({"DeliveryStreamName": "fuzz-s3", "CurrentDeliveryStreamVersionId": "1",
                   "DestinationId": "destinationId-000000000001",
                   "S3DestinationUpdate": {"Prefix": "new/", "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0}}}),
        ),
        (
            "update-extended",
            0x80,
            json!({"DeliveryStreamName": "fuzz-ext", "CurrentDeliveryStreamVersionId": "1",
                   "DestinationId": "destinationId-000000000001",
                   "ExtendedS3DestinationUpdate": {"Prefix": "v2/!{partitionKeyFromQuery:customer}/",
                     "ErrorOutputPrefix": "e/!{firehose:error-output-type}/", "FileExtension": ".ndjson",
                     "S3BackupUpdate": {"Prefix": "bak/"}}}),
        ),
    ];
    for (name, sel, v) in updates {
        c.put_sel(
            "api_json",
            name,
            1 | sel,
            &serde_json::to_vec(&v).expect("json"),
        );
    }
    let tag = json!({"DeliveryStreamName": "fuzz-ext", "Tags": [{"Key": "env", "Value": "prod"}, {"Key": "cost-center"}]});
    c.put_sel(
        "api_json",
        "tag",
        5 | 0x80,
        &serde_json::to_vec(&tag).expect("json"),
    );
    let untag = json!({"DeliveryStreamName": "fuzz-ext", "TagKeys": ["team", "nope"]});
    c.put_sel(
        "api_json",
        "untag",
        6 | 0x80,
        &serde_json::to_vec(&untag).expect("json"),
    );
    let start = json!({"DeliveryStreamName": "fuzz-s3", "DeliveryStreamEncryptionConfigurationInput": {"KeyType": "AWS_OWNED_CMK"}});
    c.put_sel(
        "api_json",
        "start-encryption",
        8,
        &serde_json::to_vec(&start).expect("json"),
    );
    let list = json!({"Limit": 10, "DeliveryStreamType": "DirectPut", "ExclusiveStartDeliveryStreamName": "a"});
    c.put_sel(
        "api_json",
        "list",
        4,
        &serde_json::to_vec(&list).expect("json"),
    );
}

fn put_records(c: &mut Corpus) {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let batch = json!({"DeliveryStreamName": "s", "Records": [
        {"Data": b64(b"{\"ticker\":\"AMZN\",\"price\":181.5}\n")},
        {"Data": b64(b"")},
        {"Data": b64(&[0, 1, 2, 255, 254])}
    ]});
    c.put_sel(
        "api_put_records",
        "batch",
        0,
        &serde_json::to_vec(&batch).expect("json"),
    );
    let escaped = br#"{"DeliveryStreamName":"s","Records":[{"Data":"aGVs\u0062G8="}]}"#;
    c.put_sel("api_put_records", "batch-escaped", 0, escaped);
    let one = json!({"DeliveryStreamName": "s", "Record": {"Data": b64(b"hello\n")}});
    c.put_sel(
        "api_put_records",
        "record",
        1,
        &serde_json::to_vec(&one).expect("json"),
    );
    c.put_sel("api_put_records", "strings", 2, b"aGVsbG8=\0Zm9vYg==\0\0YQ");
    c.put_sel(
        "api_put_records",
        "strings-bad",
        2,
        b"aGVsbG8=\0Zm9v=\0====",
    );
    c.put_sel("api_put_records", "string-one", 3, b"eyJhIjoxfQo=");
    c.put_sel(
        "api_put_records",
        "raw",
        4,
        b"{\"a\":1}\n\0\xff\xfe\0plain text",
    );
    c.put_sel(
        "api_put_records",
        "raw-one",
        5,
        &[0x89, b'P', b'N', b'G', 13, 10],
    );
}

// ---------------------------------------------------------------- codecs and processors

fn sample_lines() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..40 {
        out.extend_from_slice(
            format!(
                "{{\"id\":{i},\"event\":\"click\",\"path\":\"/p/{}\"}}\n",
                i % 7
            )
            .as_bytes(),
        );
    }
    out
}

fn decompress(c: &mut Corpus) {
    let lines = sample_lines();
    let codecs = [
        (Codec::None, "none"),
        (Codec::Gzip, "gzip"),
        (Codec::Zip, "zip"),
        (Codec::Snappy, "snappy"),
        (Codec::HadoopSnappy, "hadoop-snappy"),
    ];
    for (i, (codec, name)) in codecs.into_iter().enumerate() {
        let packed =
            compress(codec, &[&lines[..600], b"", &lines[600..]], "obj.json").expect("compress");
        c.put_sel("decompress", &format!("decode-{name}"), i as u8, &packed);
        c.put_sel(
            "decompress",
            &format!("encode-{name}"),
            0x80 | i as u8,
            b"part one\0part two\0",
        );
    }
    let mut two = encode::gzip(b"first member\n");
    two.extend(encode::gzip(b"second member\n"));
    c.put_sel("decompress", "decode-gzip-two-members", 1, &two);
}

fn cwl_payload(message_type: &str, messages: &[&str]) -> Vec<u8> {
    let events: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": format!("3{i:055}"), "timestamp": 1_700_000_000_000u64 + i as u64, "message": m}))
        .collect();
    let (group, stream, filters) = if message_type == "CONTROL_MESSAGE" {
        ("", "", json!([]))
    } else {
        (
            "/aws/lambda/app",
            "2024/01/01/[$LATEST]abc",
            json!(["to-firehose"]),
        )
    };
    serde_json::to_vec(&json!({
        "messageType": message_type,
        "owner": "123456789012",
        "logGroup": group,
        "logStream": stream,
        "subscriptionFilters": filters,
        "logEvents": events,
    }))
    .expect("json")
}

fn cwl(c: &mut Corpus) {
    let data = cwl_payload(
        "DATA_MESSAGE",
        &[
            "START RequestId: 1",
            "{\"level\":\"info\",\"msg\":\"héllo\"}",
            "END RequestId: 1",
        ],
    );
    let control = cwl_payload(
        "CONTROL_MESSAGE",
        &["CWL CONTROL MESSAGE: Checking health of destination Firehose."],
    );
    let empty = cwl_payload("DATA_MESSAGE", &[]);
    for mode in 0..3u8 {
        c.put_sel(
            "cwl",
            &format!("data-gz-m{mode}"),
            mode,
            &encode::gzip(&data),
        );
        c.put_sel(
            "cwl",
            &format!("control-gz-m{mode}"),
            mode,
            &encode::gzip(&control),
        );
        c.put_sel("cwl", &format!("data-plain-m{mode}"), mode | 4, &data);
    }
    c.put_sel("cwl", "empty-events", 2 | 4, &empty);
    c.put_sel("cwl", "twice", 2 | 8, &encode::gzip(&data));
    c.put_sel("cwl", "not-gzip", 2, b"{\"messageType\":\"DATA_MESSAGE\"}");
}

fn kpl(c: &mut Corpus) {
    let users: [&[u8]; 3] = [b"{\"a\":1}", b"plain", b"{\"b\":[1,2,3]}"];
    let aggregate = encode::kpl_aggregate(&users);
    c.put_sel("kpl_deagg", "aggregate", 0, &aggregate);
    c.put_sel(
        "kpl_deagg",
        "aggregate-body",
        1,
        &aggregate[encode::KPL_MAGIC.len()..aggregate.len() - 16],
    );
    c.put_sel("kpl_deagg", "users", 2, b"{\"a\":1}\0plain\0\0last");
    c.put_sel("kpl_deagg", "not-aggregate", 0, b"just a record");
    let mut bad_md5 = aggregate.clone();
    *bad_md5.last_mut().expect("md5") ^= 1;
    c.put_sel("kpl_deagg", "bad-md5", 0, &bad_md5);
}

fn record_deagg(c: &mut Corpus) {
    c.put_sel(
        "record_deagg",
        "json-concat",
        0,
        b"{\"a\":1}{\"a\":2}{\"b\":{\"c\":[1,2]}}",
    );
    c.put_sel(
        "record_deagg",
        "json-lines",
        0,
        b"{\"a\":1}\n{\"a\":2}\r\n  {}\n",
    );
    c.put_sel("record_deagg", "json-array", 0, b"[{\"a\":1},{\"a\":2}]");
    c.put_sel("record_deagg", "json-many", 0, "{}".repeat(501).as_bytes());
    let mut delimited = vec![1u8, 3];
    delimited.extend_from_slice(b"####a####b########c####");
    c.put("record_deagg", "delimited-hashes", &delimited);
    let mut newline = vec![1u8, 0, b'\n'];
    newline.extend_from_slice(b"line one\nline two\n\nline three");
    c.put("record_deagg", "delimited-newline", &newline);
    let mut pipes = vec![1u8, 0, b'|'];
    pipes.extend_from_slice("x|".repeat(501).as_bytes());
    c.put("record_deagg", "delimited-many", &pipes);
}

// ---------------------------------------------------------------- prefixes

fn prefix(c: &mut Corpus) {
    // 2018-08-27T10:30:00Z, the docs' example instant.
    let t = 1_535_365_800_000i64.to_le_bytes();
    let cases: [(&str, u8, &str); 12] = [
        ("empty", 0, ""),
        ("literal", 0, "myFirehosePrefix"),
        ("literal-slash", 0, "myPrefix/"),
        (
            "doc-hive",
            2,
            "myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/\0myFirehoseFailures/!{firehose:error-output-type}/",
        ),
        (
            "doc-error-only",
            2,
            "\0myFirehoseFailures/!{firehose:error-output-type}/",
        ),
        (
            "dynamic",
            3,
            "customer_id=!{partitionKeyFromQuery:customer_id}/device=!{partitionKeyFromLambda:device}/!{timestamp:yyyy/MM/dd}/\0errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/",
        ),
        (
            "random",
            2,
            "data/!{firehose:random-string}/\0err/!{firehose:random-string}/!{firehose:error-output-type}/",
        ),
        (
            "quoted",
            2 | (1 << 2),
            "!{timestamp:yyyy-MM-dd'T'HH:mm:ss.SSSXXX}/''q'\0e/!{firehose:error-output-type}",
        ),
        (
            "all-letters",
            2 | (4 << 2),
            "!{timestamp:uuuu YYYY yy MMMM LLL QQQQ d D w EEEE a h K k H m s SSSSSSSSS VV zzz ZZZZZ XXXXX xxxxx}\0!{firehose:error-output-type}",
        ),
        (
            "optional",
            2 | (5 << 2),
            "!{timestamp:[yyyy][MM]}\0!{firehose:error-output-type}",
        ),
        ("unclosed", 0, "logs/!{timestamp:yyyy"),
        ("nested", 0, "a/!{timestamp:!{x}}/"),
    ];
    for (name, sel, text) in cases {
        let mut rest = t.to_vec();
        rest.extend_from_slice(text.as_bytes());
        c.put_sel("prefix", name, sel, &rest);
    }
    let mut far = i64::MAX.to_le_bytes().to_vec();
    far.extend_from_slice(b"!{timestamp:yyyy}\0!{firehose:error-output-type}");
    c.put_sel("prefix", "out-of-range", 2, &far);
    let mut dst = 1_710_054_000_000i64.to_le_bytes().to_vec(); // 2024-03-10, a US DST switch
    dst.extend_from_slice(b"!{timestamp:yyyy-MM-dd HH z Z}\0!{firehose:error-output-type}");
    c.put_sel("prefix", "dst", 2 | (1 << 2), &dst);
}

// ---------------------------------------------------------------- write-ahead log

fn log(c: &mut Corpus) {
    use lakehose_log::{Log, LogConfig};
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("lakehose-fuzz-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = LogConfig {
        segment_bytes: 300,
        ..LogConfig::default()
    };
    {
        let (log, _) = Log::open(&dir, config.clone()).expect("open log");
        for i in 0..12u8 {
            let records: Vec<Bytes> = (0..=i % 3)
                .map(|j| Bytes::from(format!("{{\"batch\":{i},\"n\":{j}}}\n")))
                .collect();
            rt.block_on(log.append(records, 1_700_000_000_000 + i64::from(i)))
                .expect("append");
        }
        rt.block_on(log.append(vec![Bytes::new()], 1))
            .expect("append empty");
        log.checkpoint(9, b"{\"plan\":[9,12]}").expect("checkpoint");
        log.close();
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("log dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    let mut container = Vec::new();
    for name in &names {
        let bytes = std::fs::read(dir.join(name)).expect("read log file");
        if let Some(stem) = name.strip_suffix(".seg") {
            let base: u64 = stem.parse().expect("segment base");
            c.put_sel("log_recovery", &format!("segment-{base}"), 0, &bytes);
            let mut torn = bytes.clone();
            torn.truncate(bytes.len() - 5);
            c.put_sel("log_recovery", &format!("segment-{base}-torn"), 0, &torn);
            // Container entries name segments by one byte; real bases are small here.
            container.extend_from_slice(&[0, base as u8]);
            container.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            container.extend_from_slice(&bytes);
        } else if name == "checkpoint" {
            container.extend_from_slice(&[1, 0]);
            container.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            container.extend_from_slice(&bytes);
        }
    }
    c.put_sel("log_recovery", "directory", 1, &container);
    let _ = std::fs::remove_dir_all(&dir);

    // Harness-built segments: header + CRC fix-up, and the structured round trip.
    let mut records = Vec::new();
    encode::log_record(&mut records, 3, 10, b"three");
    encode::log_record(&mut records, 4, 11, b"four");
    let mut fixed = vec![2 | 4, 3];
    fixed.extend_from_slice(&(records.len() as u16).to_le_bytes());
    fixed.extend_from_slice(&records);
    c.put_sel("log_recovery", "container-fixed", 1, &fixed);
    let mut cp = vec![1 | 2, 4, 2, 0];
    cp.extend_from_slice(b"pp");
    cp.extend_from_slice(&fixed);
    c.put_sel("log_recovery", "container-checkpoint", 1, &cp);
    let payloads = b"alpha\0beta\0\0gamma delta\0epsilon";
    for (name, op, pos) in [
        ("none", 0u8, 0u16),
        ("flip", 1, 70),
        ("flip-header", 1, 20),
        ("truncate", 2, 90),
    ] {
        let mut rest = vec![op];
        rest.extend_from_slice(&pos.to_le_bytes());
        rest.push(5);
        rest.extend_from_slice(payloads);
        c.put_sel("log_recovery", &format!("structured-{name}"), 2, &rest);
    }
}
