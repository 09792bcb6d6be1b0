//! The Lambda processor against a real Lambda Invoke API server (tests/common).

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use lakehose_process::{ProcessorChain, codes, error_output};
use serde_json::Value;

fn lambda(name: &str, extra: &[(&str, &str)]) -> Value {
    let arn = lambda_arn(name);
    let mut params: Vec<(&str, &str)> = vec![("LambdaArn", arn.as_str())];
    params.extend_from_slice(extra);
    processing(&[("Lambda", &params)])
}

#[tokio::test]
async fn ok_records_are_transformed_and_the_event_has_firehose_shape() {
    let server = FunctionServer::start().await;
    let chain = chain(&lambda("upper", &[]), false, &server.endpoints());
    assert!(!chain.is_identity());
    let input = inputs(&["hello", "world", ""]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(strings(&batch), ["HELLO", "WORLD", ""]);
    assert!(batch.failed.is_empty() && batch.dropped.is_empty());
    assert_eq!(batch.stats.lambda_attempts, 1);

    let events = server.events("upper");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4, "{e}");
    uuid_like(e["invocationId"].as_str().unwrap());
    assert_eq!(e["deliveryStreamArn"], STREAM_ARN);
    assert_eq!(e["region"], REGION);
    let records = e["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    let mut ids = std::collections::BTreeSet::new();
    for (r, i) in records.iter().zip(&input) {
        assert_eq!(r.as_object().unwrap().len(), 3, "{r}");
        assert_eq!(
            r["approximateArrivalTimestamp"].as_i64(),
            Some(i.arrival_ms)
        );
        assert_eq!(
            B64.decode(r["data"].as_str().unwrap()).unwrap(),
            i.data.as_ref()
        );
        assert!(
            ids.insert(r["recordId"].as_str().unwrap().to_owned()),
            "recordIds are unique"
        );
    }
}

fn uuid_like(s: &str) {
    assert_eq!(s.len(), 36, "{s}");
    assert_eq!(s.matches('-').count(), 4, "{s}");
}

#[tokio::test]
async fn ok_dropped_and_processing_failed() {
    let server = FunctionServer::start().await;
    let chain = chain(&lambda("mixed", &[]), false, &server.endpoints());
    let input = inputs(&["keep me", "drop me", "fail me", "also keep"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(strings(&batch), ["KEEP ME", "ALSO KEEP"]);
    assert_eq!(batch.dropped, [101]);
    assert_eq!(batch.failed.len(), 1);
    let f = &batch.failed[0];
    assert_eq!(f.source_id, 102);
    assert_eq!(f.error_output_type, error_output::PROCESSING_FAILED);
    assert_eq!(f.error_code, codes::LAMBDA_PROCESSING_FAILED);
    assert_eq!(f.raw_data.as_ref(), b"fail me");
    assert_eq!(f.attempts_made, 1);
    assert_eq!(f.lambda_arn.as_deref(), Some(lambda_arn("mixed").as_str()));

    let doc: Value = serde_json::from_str(&f.to_error_document(1_800_000_000_000)).unwrap();
    assert_eq!(doc["attemptsMade"], 1);
    assert_eq!(doc["arrivalTimestamp"], f.arrival_ms);
    assert_eq!(doc["errorCode"], "Lambda.ProcessingFailed");
    assert_eq!(doc["attemptEndingTimestamp"], 1_800_000_000_000i64);
    assert_eq!(doc["rawData"], B64.encode("fail me"));
    assert_eq!(doc["lambdaArn"], lambda_arn("mixed"));
}

#[tokio::test]
async fn crashing_function_fails_every_record_after_retries() {
    let server = FunctionServer::start().await;
    let chain = chain(
        &lambda("crash", &[("NumberOfRetries", "1")]),
        false,
        &server.endpoints(),
    );
    let input = inputs(&["a", "b"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert!(batch.records.is_empty());
    assert_eq!(batch.failed.len(), 2);
    for (f, i) in batch.failed.iter().zip(&input) {
        assert_eq!(f.error_code, codes::LAMBDA_INVOCATION_FAILED);
        assert!(f.error_message.contains("500"), "{}", f.error_message);
        assert_eq!(f.attempts_made, 2);
        assert_eq!(f.raw_data, i.data);
    }
    assert_eq!(server.calls("crash"), 2);
    assert_eq!(batch.stats.lambda_attempts, 2);
    assert_eq!(batch.stats.lambda_failed_invocations, 1);
}

#[tokio::test]
async fn function_error_header_is_a_failed_invocation() {
    let server = FunctionServer::start().await;
    let chain = chain(
        &lambda("raise", &[("NumberOfRetries", "0")]),
        false,
        &server.endpoints(),
    );
    let input = inputs(&["a"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    let f = &batch.failed[0];
    assert_eq!(f.error_code, codes::LAMBDA_FUNCTION_ERROR);
    assert!(
        f.error_message.contains("Unhandled") && f.error_message.contains("boom"),
        "{}",
        f.error_message
    );
    assert_eq!(f.attempts_made, 1);
    assert_eq!(server.calls("raise"), 1);
}

#[tokio::test]
async fn a_function_that_times_out() {
    let server = FunctionServer::start().await;
    let endpoints = server.endpoints().with_timeout(Duration::from_millis(200));
    let chain = chain(
        &lambda("slow", &[("NumberOfRetries", "1")]),
        false,
        &endpoints,
    );
    let input = inputs(&["a", "b", "c"]);
    let started = Instant::now();
    let batch = chain.process(&input).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_accounted(&input, &batch);
    assert_eq!(batch.failed.len(), 3);
    for f in &batch.failed {
        assert_eq!(f.error_code, codes::LAMBDA_TIMEOUT);
        assert!(f.error_message.contains("timeout"), "{}", f.error_message);
        assert_eq!(f.attempts_made, 2);
    }
    assert_eq!(server.calls("slow"), 2);
}

#[tokio::test]
async fn missing_record_id_fails_only_that_record() {
    let server = FunctionServer::start().await;
    let chain = chain(&lambda("missing", &[]), false, &server.endpoints());
    let input = inputs(&["a", "b", "c"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(strings(&batch), ["B", "C"]);
    assert_eq!(batch.failed.len(), 1);
    assert_eq!(batch.failed[0].source_id, 100);
    assert_eq!(batch.failed[0].error_code, codes::LAMBDA_MISSING_RECORD_ID);
    assert_eq!(batch.failed[0].raw_data.as_ref(), b"a");
    assert_eq!(
        server.calls("missing"),
        1,
        "response faults are not retried"
    );
}

#[tokio::test]
async fn duplicated_record_id_fails_that_record() {
    let server = FunctionServer::start().await;
    let chain = chain(&lambda("duplicate", &[]), false, &server.endpoints());
    let input = inputs(&["a", "b"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(strings(&batch), ["B"]);
    assert_eq!(batch.failed.len(), 1);
    assert_eq!(batch.failed[0].source_id, 100);
    assert_eq!(
        batch.failed[0].error_code,
        codes::LAMBDA_DUPLICATED_RECORD_ID
    );
}

#[tokio::test]
async fn invalid_json_fails_the_invocation_after_retries() {
    let server = FunctionServer::start().await;
    for function in ["badjson", "wrongshape"] {
        let chain = chain(
            &lambda(function, &[("NumberOfRetries", "2")]),
            false,
            &server.endpoints(),
        );
        let input = inputs(&["a", "b"]);
        let batch = chain.process(&input).await;
        assert_accounted(&input, &batch);
        assert!(batch.records.is_empty());
        assert_eq!(batch.failed.len(), 2);
        for f in &batch.failed {
            assert_eq!(f.error_code, codes::LAMBDA_JSON_PROCESSING, "{function}");
            assert_eq!(f.attempts_made, 3);
        }
        assert_eq!(server.calls(function), 3);
    }
}

#[tokio::test]
async fn ok_without_data_fails_that_record() {
    let server = FunctionServer::start().await;
    let chain = chain(&lambda("nodata", &[]), false, &server.endpoints());
    let input = inputs(&["a"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(batch.failed[0].error_code, codes::LAMBDA_JSON_PROCESSING);
    assert!(batch.failed[0].error_message.contains("no data"));
}

#[tokio::test]
async fn retries_until_the_function_recovers() {
    let server = FunctionServer::start().await;
    let chain = chain(
        &lambda("flaky", &[("NumberOfRetries", "3")]),
        false,
        &server.endpoints(),
    );
    let input = inputs(&["a", "b"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(strings(&batch), ["A", "B"]);
    assert!(batch.failed.is_empty());
    assert_eq!(server.calls("flaky"), 3, "failed twice, then succeeded");
    assert_eq!(batch.stats.lambda_attempts, 3);
    assert_eq!(batch.stats.lambda_failed_invocations, 0);
    // The same invocation (same invocationId and recordIds) is sent on every attempt.
    let events = server.events("flaky");
    assert!(events.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn too_few_retries_for_a_flaky_function() {
    let server = FunctionServer::start().await;
    let chain = chain(
        &lambda("flaky", &[("NumberOfRetries", "1")]),
        false,
        &server.endpoints(),
    );
    let input = inputs(&["a"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(batch.failed[0].attempts_made, 2);
    assert_eq!(batch.failed[0].error_code, codes::LAMBDA_INVOCATION_FAILED);
}

#[tokio::test]
async fn batches_are_split_by_buffer_size() {
    let server = FunctionServer::start().await;
    // 0.2 MB = 209,715 bytes: four 50,000-byte records per invocation.
    let chain = chain(
        &lambda("echo", &[("BufferSizeInMBs", "0.2")]),
        false,
        &server.endpoints(),
    );
    assert_eq!(chain.lambda_buffering().unwrap().size_bytes, 209_715);
    let data: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'a' + i; 50_000]).collect();
    let input = inputs(&data);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(batch.records.len(), 10);
    for (r, i) in batch.records.iter().zip(&input) {
        assert_eq!(r.data, i.data);
    }
    let mut sizes: Vec<usize> = server
        .events("echo")
        .iter()
        .map(|e| e["records"].as_array().unwrap().len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [2, 4, 4]);
    assert_eq!(batch.stats.lambda_attempts, 3);
}

#[tokio::test]
async fn records_over_the_payload_limit_fail_without_an_invocation() {
    let server = FunctionServer::start().await;
    let chain = chain(&lambda("echo", &[]), false, &server.endpoints());
    // 5 MB of data is 6.7 MB of base64: over the 6 MB invocation payload limit.
    let input = inputs(&[vec![b'x'; 5 * 1024 * 1024], b"small".to_vec()]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(strings(&batch), ["small"]);
    assert_eq!(batch.failed.len(), 1);
    assert_eq!(batch.failed[0].error_code, codes::LAMBDA_REQUEST_TOO_LARGE);
    assert_eq!(batch.failed[0].attempts_made, 0);
    let events = server.events("echo");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["records"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn at_most_five_invocations_in_flight() {
    let server = FunctionServer::start().await;
    let chain = chain(
        &lambda("tracked", &[("BufferSizeInMBs", "0.2")]),
        false,
        &server.endpoints(),
    );
    // 12 invocations of one 200,000-byte record each.
    let data: Vec<Vec<u8>> = (0..12).map(|_| vec![b'z'; 200_000]).collect();
    let input = inputs(&data);
    let started = Instant::now();
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(batch.records.len(), 12);
    assert_eq!(server.calls("tracked"), 12);
    let max = server.max_in_flight();
    assert!((2..=5).contains(&max), "max in flight {max}");
    // 12 invocations of 100 ms, 5 at a time: at least 3 rounds.
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn lambda_partition_keys_with_dynamic_partitioning() {
    let server = FunctionServer::start().await;
    let config = lambda("partition", &[]);
    let input = inputs(&[
        r#"{"customer":"acme"}"#,
        r#"{"customer":"a/b"}"#,
        r#"{"customer":7}"#,
    ]);

    let dp = chain(&config, true, &server.endpoints());
    assert!(dp.produces_partition_keys());
    let batch = dp.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(batch.records.len(), 2);
    let k = &batch.records[0].partition_keys;
    assert_eq!(k.get("partitionKeyFromLambda", "customer"), Some("acme"));
    assert_eq!(k.get("partitionKeyFromLambda", "static"), Some("lambda"));
    assert!(k.from_query.is_empty());
    assert_eq!(batch.records[1].partition_keys.from_lambda["customer"], "7");
    assert_eq!(batch.failed.len(), 1);
    assert_eq!(batch.failed[0].source_id, 101);
    assert_eq!(batch.failed[0].error_code, codes::INVALID_PARTITION_KEY);

    // Without dynamic partitioning the keys are ignored.
    let plain = chain(&config, false, &server.endpoints());
    let batch = plain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(batch.records.len(), 3);
    assert!(batch.records.iter().all(|r| r.partition_keys.is_empty()));
}

#[tokio::test]
async fn unknown_functions() {
    let server = FunctionServer::start().await;
    // Not mapped in lakehose.toml: a configuration error for the API user.
    let err = ProcessorChain::from_config(
        Some(&lambda("nowhere", &[])),
        false,
        &server.endpoints(),
        STREAM_ARN,
        REGION,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not mapped"), "{err}");
    // Mapped, but the endpoint does not know it: 404 -> Lambda.ResourceNotFound.
    let chain = chain(
        &lambda("unknown-function", &[("NumberOfRetries", "0")]),
        false,
        &server.endpoints(),
    );
    let input = inputs(&["a"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(batch.failed[0].error_code, codes::LAMBDA_RESOURCE_NOT_FOUND);
}

#[tokio::test]
async fn unreachable_endpoint() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut endpoints =
        lakehose_process::LambdaEndpoints::new().with_retry_backoff(Duration::from_millis(1));
    endpoints.insert("upper", url);
    let chain = chain(
        &lambda("upper", &[("NumberOfRetries", "2")]),
        false,
        &endpoints,
    );
    let input = inputs(&["a", "b"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(batch.failed.len(), 2);
    assert_eq!(batch.failed[0].error_code, codes::LAMBDA_INVOCATION_FAILED);
    assert_eq!(batch.failed[0].attempts_made, 3);
}

#[tokio::test]
async fn full_chain_cloudwatch_logs_lambda_partitioning_delimiter() {
    let server = FunctionServer::start().await;
    let arn = lambda_arn("upper");
    let config = processing(&[
        ("AppendDelimiterToRecord", &[]),
        (
            "MetadataExtraction",
            &[
                ("MetadataExtractionQuery", "{level: .LEVEL}"),
                ("JsonParsingEngine", "JQ-1.6"),
            ],
        ),
        ("Lambda", &[("LambdaArn", arn.as_str())]),
        (
            "CloudWatchLogProcessing",
            &[("DataMessageExtraction", "true")],
        ),
        ("Decompression", &[("CompressionFormat", "GZIP")]),
    ]);
    let chain = chain(&config, true, &server.endpoints());
    let payload = serde_json::json!({
        "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "g", "logStream": "s",
        "subscriptionFilters": ["f"],
        "logEvents": [
            {"id": "1", "timestamp": 1, "message": "{\"level\":\"info\",\"m\":1}"},
            {"id": "2", "timestamp": 2, "message": "{\"level\":\"warn\",\"m\":2}"},
            {"id": "3", "timestamp": 3, "message": "not json"}
        ]
    });
    let input = inputs(&[gzip(payload.to_string().as_bytes())]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(
        strings(&batch),
        [
            "{\"LEVEL\":\"INFO\",\"M\":1}\n",
            "{\"LEVEL\":\"WARN\",\"M\":2}\n"
        ]
    );
    assert_eq!(batch.records[0].partition_keys.from_query["level"], "INFO");
    assert_eq!(batch.records[1].partition_keys.from_query["level"], "WARN");
    assert_eq!(batch.failed.len(), 1);
    assert_eq!(
        batch.failed[0].error_code,
        codes::METADATA_EXTRACTION_FAILED
    );
    assert_eq!(
        batch.failed[0].raw_data.as_ref(),
        b"NOT JSON",
        "the record as it entered the failing step"
    );
    assert_eq!(
        server.events("upper")[0]["records"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

/// The key the signing tests' function server expects.
const KEY: ExpectedKey = ExpectedKey {
    access_key_id: "AKIDLAMBDATEST",
    secret_access_key: "lambda-test-secret/with+symbols",
    session_token: None,
    region: "eu-west-1",
};

/// Endpoints mapping every function of `server` to it, signing with `key` (and `region`, when
/// given, instead of the ARN's).
fn signing_endpoints(
    server: &FunctionServer,
    key: &ExpectedKey,
    region: Option<&str>,
) -> lakehose_process::LambdaEndpoints {
    let mut endpoints = lakehose_process::LambdaEndpoints::new()
        .with_timeout(Duration::from_secs(10))
        .with_retry_backoff(Duration::from_millis(5));
    for f in FUNCTIONS {
        let endpoint = lakehose_process::LambdaEndpoint {
            url: server.url.clone(),
            function_name: None,
            timeout: None,
            signing: Some(lakehose_process::Signing {
                region: region.map(str::to_owned),
                credentials: lakehose_process::Credentials {
                    access_key_id: key.access_key_id.to_owned(),
                    secret_access_key: key.secret_access_key.to_owned(),
                    session_token: key.session_token.map(str::to_owned),
                },
            }),
        };
        endpoints.insert_endpoint(*f, endpoint).unwrap();
    }
    endpoints
}

/// A Lambda processor for `arn` with `extra` parameters.
fn lambda_at(arn: &str, extra: &[(&str, &str)]) -> Value {
    let mut params: Vec<(&str, &str)> = vec![("LambdaArn", arn)];
    params.extend_from_slice(extra);
    processing(&[("Lambda", &params)])
}

#[tokio::test]
async fn sigv4_signs_every_attempt_in_the_functions_region() {
    let server = FunctionServer::start_signed(KEY).await;
    let endpoints = signing_endpoints(&server, &KEY, None);
    // The region comes from the ARN; the qualifier puts a query string under the signature,
    // and the flaky function makes the invocation be signed three times.
    let arn = "arn:aws:lambda:eu-west-1:123456789012:function:flaky:live";
    let chain = chain(
        &lambda_at(arn, &[("NumberOfRetries", "3")]),
        false,
        &endpoints,
    );
    let input = inputs(&["a", "b"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert!(batch.failed.is_empty(), "{:?}", batch.failed);
    assert_eq!(strings(&batch), ["A", "B"]);
    assert_eq!(server.calls("flaky"), 3);
    assert_eq!(
        server.verified(),
        3,
        "every attempt carries a right signature"
    );
    assert_eq!(server.queries(), vec![Some("Qualifier=live".to_owned()); 3]);
}

#[tokio::test]
async fn sigv4_with_a_session_token_and_a_configured_region() {
    let key = ExpectedKey {
        session_token: Some("FwoGZXIvYXdzEXAMPLETOKEN//+=="),
        ..KEY
    };
    let server = FunctionServer::start_signed(key.clone()).await;
    // The ARN names us-east-1; the endpoint's region wins.
    let endpoints = signing_endpoints(&server, &key, Some("eu-west-1"));
    let chain = chain(&lambda("upper", &[]), false, &endpoints);
    let input = inputs(&["x"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert!(batch.failed.is_empty(), "{:?}", batch.failed);
    assert_eq!(strings(&batch), ["X"]);
    assert_eq!(server.verified(), 1);
}

#[tokio::test]
async fn a_wrong_signature_is_refused_and_its_records_fail_as_access_denied() {
    let server = FunctionServer::start_signed(KEY).await;
    let cases = [
        // The wrong secret.
        (
            signing_endpoints(
                &server,
                &ExpectedKey {
                    secret_access_key: "not-the-secret",
                    ..KEY
                },
                None,
            ),
            lambda_arn("upper").replace("us-east-1", "eu-west-1"),
        ),
        // The right key in the wrong region: the ARN's, us-east-1.
        (signing_endpoints(&server, &KEY, None), lambda_arn("upper")),
    ];
    for (endpoints, arn) in cases {
        let chain = chain(
            &lambda_at(&arn, &[("NumberOfRetries", "1")]),
            false,
            &endpoints,
        );
        let input = inputs(&["a"]);
        let batch = chain.process(&input).await;
        assert_accounted(&input, &batch);
        assert!(batch.records.is_empty());
        let failed = &batch.failed[0];
        assert_eq!(
            failed.error_code,
            codes::LAMBDA_INVOKE_ACCESS_DENIED,
            "{failed:?}"
        );
        assert!(
            failed.error_message.contains("signature mismatch"),
            "{}",
            failed.error_message
        );
        assert_eq!(failed.attempts_made, 2);
    }
    assert_eq!(server.verified(), 0);
    assert_eq!(
        server.calls("upper"),
        0,
        "no refused invocation reached the function"
    );
}

#[tokio::test]
async fn a_qualified_arn_invokes_its_alias() {
    let server = FunctionServer::start().await;
    let arn = format!("{}:live", lambda_arn("upper"));
    let chain = chain(&lambda_at(&arn, &[]), false, &server.endpoints());
    let input = inputs(&["q"]);
    let batch = chain.process(&input).await;
    assert_accounted(&input, &batch);
    assert_eq!(strings(&batch), ["Q"]);
    assert_eq!(server.queries(), [Some("Qualifier=live".to_owned())]);
}
