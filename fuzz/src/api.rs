//! The Firehose API decoders: AWS JSON 1.1 request bodies into the typed models
//! (`handler::parse`), the validation that turns them into a `StreamSpec`, and the record
//! path of PutRecordBatch / PutRecord (JSON borrowing + base64 into one shared buffer), driven
//! through the real axum router.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use lakehose_api::error::{ApiError, ErrorKind};
use lakehose_api::handler::{
    MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_RECORD_BYTES, TARGET_PREFIX, parse,
};
use lakehose_api::model::*;
use lakehose_api::prefix::validate_prefixes;
use lakehose_api::stream::{
    CompressionFormat, StreamSpec, bucket_name, validate_destination, validate_stream_name,
};
use lakehose_api::{ApiState, SpecChange, StreamService};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{json_eq, split_selector};

const NOW_MS: i64 = 1_700_000_000_000;

/// Target `api_json`: selector byte (low bits: which input shape; bit 7: which baseline
/// stream an update/tag/encryption request is applied to), then the JSON body.
pub fn api_json(data: &[u8]) {
    let Some((sel, body)) = split_selector(data) else {
        return;
    };
    let mut spec = baseline(sel & 0x80 != 0);
    match sel & 0x7f {
        0 => {
            if let Some(input) = round_trip::<CreateDeliveryStreamInput>(body) {
                match StreamSpec::from_create(input, "us-east-1", NOW_MS) {
                    Ok(spec) => check_spec(&spec),
                    Err(e) => client_error(&e),
                }
            }
        }
        1 => {
            if let Some(input) = round_trip::<UpdateDestinationInput>(body) {
                let before = spec.clone();
                match spec.apply_update(&input, NOW_MS + 1) {
                    Ok(()) => {
                        assert_eq!(spec.version, before.version + 1, "update bumps the version");
                        check_spec(&spec);
                    }
                    Err(e) => unchanged(&before, &spec, &e),
                }
            }
        }
        2 => drop(round_trip::<DeleteDeliveryStreamInput>(body)),
        3 => drop(round_trip::<DescribeDeliveryStreamInput>(body)),
        4 => drop(round_trip::<ListDeliveryStreamsInput>(body)),
        5 => {
            if let Some(input) = round_trip::<TagDeliveryStreamInput>(body) {
                let before = spec.clone();
                match spec.tag(input.tags.as_deref().unwrap_or_default()) {
                    Ok(()) => {
                        assert!(spec.tags.len() <= 50, "at most 50 tags");
                        check_spec(&spec);
                    }
                    Err(e) => unchanged(&before, &spec, &e),
                }
            }
        }
        6 => {
            if let Some(input) = round_trip::<UntagDeliveryStreamInput>(body) {
                let before = spec.clone();
                match spec.untag(input.tag_keys.as_deref().unwrap_or_default()) {
                    Ok(()) => check_spec(&spec),
                    Err(e) => unchanged(&before, &spec, &e),
                }
            }
        }
        7 => drop(round_trip::<ListTagsForDeliveryStreamInput>(body)),
        8 => {
            if let Some(input) = round_trip::<StartEncryptionInput>(body) {
                let enc = input
                    .delivery_stream_encryption_configuration_input
                    .unwrap_or_default();
                let before = spec.clone();
                match spec.set_encryption(Some(&enc), NOW_MS + 1) {
                    Ok(()) => {
                        assert_eq!(spec.encryption.status, "ENABLED");
                        check_spec(&spec);
                    }
                    Err(e) => unchanged(&before, &spec, &e),
                }
            }
        }
        9 => drop(round_trip::<StopEncryptionInput>(body)),
        10 => {
            if let Some(d) = round_trip::<ExtendedS3DestinationConfiguration>(body)
                && validate_destination(&d).is_ok()
            {
                check_destination(&d);
            }
        }
        _ => drop(round_trip::<ProcessingConfiguration>(body)),
    }
}

/// Parses `body` as `T` the way every handler does; a failure must be a
/// `SerializationException`, a success must survive serialize -> parse unchanged.
fn round_trip<T: DeserializeOwned + Serialize + Debug>(body: &[u8]) -> Option<T> {
    let value: T = match parse(body) {
        Ok(v) => v,
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Serialization, "parse error kind: {e}");
            return None;
        }
    };
    let text = serde_json::to_vec(&value).expect("a parsed request serialises");
    let again: T = parse(&text).unwrap_or_else(|e| {
        panic!(
            "re-parsing the serialised request failed: {e}\n{}",
            String::from_utf8_lossy(&text)
        )
    });
    let (a, b) = (to_value(&value), to_value(&again));
    assert!(json_eq(&a, &b), "round trip changed the request:\n{a}\n{b}");
    Some(value)
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serialises to a JSON value")
}

/// A validation failure is the caller's fault: never a 5xx.
fn client_error(e: &ApiError) {
    assert!(
        e.kind.status().is_client_error(),
        "validation answered a server error: {e}"
    );
}

/// A request that fails validation changes nothing (the `SpecChange` contract).
fn unchanged(before: &StreamSpec, after: &StreamSpec, e: &ApiError) {
    client_error(e);
    assert_eq!(before, after, "a rejected request ({e}) changed the stream");
}

/// The invariants `StreamSpec` documents: safe name and bucket, parsing prefixes, hints in
/// range, an S3 destination that validates again; and it persists (serde) unchanged.
fn check_spec(spec: &StreamSpec) {
    validate_stream_name(&spec.name).expect("a spec's name is valid");
    check_destination(&spec.destination);
    assert!(spec.tags.len() <= 50);
    let (size, interval) = spec.buffering();
    assert!((1 << 20..=128 << 20).contains(&size) && interval <= 900);
    let _ = spec.file_extension();
    let description = spec.describe();
    serde_json::to_vec(&description).expect("the description serialises");
    let stored = serde_json::to_vec(spec).expect("a spec serialises");
    let loaded: StreamSpec = serde_json::from_slice(&stored).expect("a stored spec loads");
    assert!(
        json_eq(&to_value(spec), &to_value(&loaded)),
        "a spec changed through its stored form"
    );
}

fn check_destination(d: &ExtendedS3DestinationConfiguration) {
    validate_destination(d).expect("an accepted destination validates again");
    let bucket = bucket_name(d.bucket_arn.as_deref().unwrap_or_default())
        .expect("an accepted bucket ARN names a bucket");
    assert!(!bucket.contains('/') && bucket != "." && bucket != "..");
    let dynamic = d
        .dynamic_partitioning_configuration
        .as_ref()
        .and_then(|c| c.enabled)
        .unwrap_or(false);
    validate_prefixes(
        d.prefix.as_deref(),
        d.error_output_prefix.as_deref(),
        dynamic,
    )
    .expect("accepted prefixes validate again");
    if let Some(c) = d.compression_format.as_deref() {
        CompressionFormat::parse(c).expect("an accepted compression format parses");
    }
}

/// The stream updates are applied to: an `S3DestinationConfiguration` stream, or an Extended
/// S3 one with dynamic partitioning, a processor, tags and encryption.
fn baseline(extended: bool) -> StreamSpec {
    let input: CreateDeliveryStreamInput = if extended {
        serde_json::from_value(json!({
            "DeliveryStreamName": "fuzz-ext",
            "ExtendedS3DestinationConfiguration": {
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": "arn:aws:s3:::fuzz-bucket",
                "Prefix": "data/!{partitionKeyFromQuery:customer}/!{timestamp:yyyy/MM/dd}/",
                "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
                "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
                "CompressionFormat": "GZIP",
                "DynamicPartitioningConfiguration": {"Enabled": true},
                "ProcessingConfiguration": {"Enabled": true, "Processors": [{
                    "Type": "MetadataExtraction",
                    "Parameters": [
                        {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{customer: .c}"},
                        {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}
                    ]
                }]},
                "S3BackupMode": "Enabled",
                "S3BackupConfiguration": {
                    "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                    "BucketARN": "arn:aws:s3:::fuzz-backup"
                }
            },
            "DeliveryStreamEncryptionConfigurationInput": {"KeyType": "AWS_OWNED_CMK"},
            "Tags": [{"Key": "team", "Value": "ingest"}, {"Key": "env"}]
        }))
    } else {
        serde_json::from_value(json!({
            "DeliveryStreamName": "fuzz-s3",
            "S3DestinationConfiguration": {
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": "arn:aws:s3:::fuzz-bucket",
                "Prefix": "plain/"
            }
        }))
    }
    .expect("baseline request parses");
    StreamSpec::from_create(input, "us-east-1", NOW_MS).expect("baseline request is valid")
}

/// A `StreamService` that keeps what PutRecordBatch / PutRecord hand it.
#[derive(Default)]
struct Recorder {
    puts: Mutex<Vec<(String, Vec<Bytes>)>>,
}

#[async_trait]
impl StreamService for Recorder {
    async fn create_stream(&self, _spec: StreamSpec) -> lakehose_api::Result<()> {
        Ok(())
    }
    async fn delete_stream(&self, _name: &str) -> lakehose_api::Result<()> {
        Ok(())
    }
    fn stream(&self, _name: &str) -> Option<StreamSpec> {
        None
    }
    fn stream_names(&self) -> Vec<String> {
        Vec::new()
    }
    async fn modify_stream(
        &self,
        name: &str,
        _change: SpecChange<'_>,
    ) -> lakehose_api::Result<StreamSpec> {
        Err(ApiError::stream_not_found(name))
    }
    async fn put_records(
        &self,
        name: &str,
        records: Vec<Bytes>,
    ) -> lakehose_api::Result<PutOutcome> {
        let outcome = PutOutcome {
            records: (0..records.len())
                .map(|i| RecordOutcome::Accepted(format!("id-{i}")))
                .collect(),
            encrypted: false,
        };
        self.puts
            .lock()
            .expect("recorder lock")
            .push((name.to_owned(), records));
        Ok(outcome)
    }
}

struct Answer {
    status: u16,
    body: Value,
    puts: Vec<(String, Vec<Bytes>)>,
}

/// Sends `body` to operation `op` through the real router.
fn call(op: &str, body: Vec<u8>) -> Answer {
    use tower::ServiceExt as _;
    let recorder = Arc::new(Recorder::default());
    let router = lakehose_api::router(ApiState {
        audit: None,
        service: recorder.clone(),
        default_region: "us-east-1".into(),
        services: Vec::new(),
    });
    let request = http::Request::builder()
        .method("POST")
        .uri("/")
        .header("x-amz-target", format!("{TARGET_PREFIX}{op}"))
        .header("content-type", lakehose_api::CONTENT_TYPE)
        .body(axum::body::Body::from(body))
        .expect("build request");
    let (status, headers, bytes) = crate::rt::block_on(async move {
        let response = router.oneshot(request).await.expect("router is infallible");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("in-memory body")
            .to_bytes();
        (status, headers, bytes)
    });
    assert!(
        headers.contains_key("x-amzn-requestid"),
        "every answer carries x-amzn-RequestId"
    );
    let body: Value = serde_json::from_slice(&bytes).expect("every answer is JSON");
    let puts = std::mem::take(&mut *recorder.puts.lock().expect("recorder lock"));
    Answer { status, body, puts }
}

/// What the API must answer for a batch of `Data` strings: the decoded records, or the
/// `__type` of the first failure (an independent decode with the base64 crate).
fn expected(datas: &[String]) -> Result<Vec<Vec<u8>>, &'static str> {
    if datas.is_empty() || datas.len() > MAX_BATCH_RECORDS {
        return Err("InvalidArgumentException");
    }
    let mut total = 0;
    let mut out = Vec::new();
    for d in datas {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(d) else {
            return Err("SerializationException");
        };
        total += raw.len();
        if raw.len() > MAX_RECORD_BYTES || total > MAX_BATCH_BYTES {
            return Err("InvalidArgumentException");
        }
        out.push(raw);
    }
    Ok(out)
}

/// Checks the answer to a well-formed request whose `Data` members are `datas`.
fn check_put(answer: &Answer, datas: &[String], batch: bool) {
    match expected(datas) {
        Ok(records) => {
            assert_eq!(answer.status, 200, "valid put refused: {}", answer.body);
            assert_eq!(answer.puts.len(), 1);
            let (name, got) = &answer.puts[0];
            assert_eq!(name, "s");
            assert_eq!(got.len(), records.len());
            for (i, (g, want)) in got.iter().zip(&records).enumerate() {
                assert_eq!(&g[..], &want[..], "record {i} decoded differently");
            }
            if batch {
                assert_eq!(answer.body["FailedPutCount"], 0);
                assert_eq!(
                    answer.body["RequestResponses"].as_array().map(Vec::len),
                    Some(records.len())
                );
            } else {
                assert!(answer.body["RecordId"].is_string());
            }
        }
        Err(kind) => {
            // A single PutRecord never has a count problem.
            assert_eq!(answer.status, 400, "invalid put accepted: {datas:?}");
            assert_eq!(answer.body["__type"], kind, "{}", answer.body);
            assert!(answer.puts.is_empty(), "a rejected put stored records");
        }
    }
}

/// Target `api_put_records`: selector byte, then
/// - `0`: a raw PutRecordBatch body; `1`: a raw PutRecord body (never a 5xx; a 200 stored
///   exactly one record per request entry);
/// - `2`/`3`: `Data` strings separated by NUL, sent in a well-formed PutRecordBatch /
///   PutRecord: the API must decode exactly what the base64 crate decodes, or reject with the
///   same first error;
/// - `4`/`5`: raw records separated by NUL, base64-encoded by the harness: they must come
///   back byte for byte (encode -> decode round trip).
pub fn api_put_records(data: &[u8]) {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    match sel % 6 {
        m @ (0 | 1) => {
            let op = if m == 0 {
                "PutRecordBatch"
            } else {
                "PutRecord"
            };
            let answer = call(op, rest.to_vec());
            assert!(
                answer.status == 200 || answer.status == 400,
                "{op} answered {}: {}",
                answer.status,
                answer.body
            );
            if answer.status == 200 {
                let body: Value = serde_json::from_slice(rest).expect("an accepted body is JSON");
                let count = if m == 0 {
                    body["Records"].as_array().map_or(0, Vec::len)
                } else {
                    1
                };
                assert_eq!(answer.puts.len(), 1);
                assert_eq!(answer.puts[0].1.len(), count);
            } else {
                assert!(answer.puts.is_empty(), "a rejected put stored records");
            }
        }
        m => {
            let pieces: Vec<&[u8]> = rest.split(|b| *b == 0).collect();
            let datas: Vec<String> = if m < 4 {
                pieces
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect()
            } else {
                pieces
                    .iter()
                    .map(|p| base64::engine::general_purpose::STANDARD.encode(p))
                    .collect()
            };
            let batch = m % 2 == 0;
            let (op, body, datas) = if batch {
                let records: Vec<Value> = datas.iter().map(|d| json!({ "Data": d })).collect();
                let body = json!({ "DeliveryStreamName": "s", "Records": records });
                ("PutRecordBatch", body, datas)
            } else {
                let first = datas.into_iter().next().unwrap_or_default();
                let body = json!({ "DeliveryStreamName": "s", "Record": { "Data": first } });
                ("PutRecord", body, vec![first])
            };
            let answer = call(op, serde_json::to_vec(&body).expect("serialise"));
            check_put(&answer, &datas, batch);
            if m >= 4 && (!batch || pieces.len() <= MAX_BATCH_RECORDS) {
                assert_eq!(answer.status, 200, "base64 of raw bytes refused");
                let got = &answer.puts[0].1;
                for (g, p) in got.iter().zip(&pieces) {
                    assert_eq!(&g[..], *p, "a record changed through base64");
                }
            }
        }
    }
}
