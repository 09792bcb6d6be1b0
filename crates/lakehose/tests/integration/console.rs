//! The console's JSON API (`/console/api/`) on the real binary: the overview, metric history
//! fed by a fast sampler (`[console] sample_interval_ms`), the errors a stream wrote (a
//! dynamic-partitioning failure) with their objects in the bucket, the tail of the log,
//! delivered objects, dashboards (validation, CRUD that survives a restart, the audit log),
//! unknown streams, and authentication (unsigned requests refused, signed ones authorized).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::{
    DynamicPartitioningConfiguration, ProcessingConfiguration, Processor, ProcessorParameter,
    ProcessorParameterName, ProcessorType, Record,
};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde_json::{Value, json};

use crate::common::*;

const FAST: &str = "[console]\nsample_interval_ms = 200\n";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A request with curl: (status, JSON body or `null`).
fn call(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-X", method, "-w", "\n%{http_code}", url]);
    if let Some(body) = body {
        cmd.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let out = cmd.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        status.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn get(server: &Server, path: &str) -> Value {
    let (status, body) = call(
        "GET",
        &format!("{}/console/api/{path}", server.endpoint),
        None,
    );
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Polls `GET path` until `done` holds for its body (at most 30 s); the last body.
fn get_until(server: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let body = get(server, path);
        if done(&body) || std::time::Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn record(data: &[u8]) -> Record {
    Record::builder().data(Blob::new(data)).build().unwrap()
}

/// A stream partitioned by `.k` extracted with jq: records that are not JSON fail with
/// `DynamicPartitioning.MetadataExtractionFailed` into `err/processing-failed/`.
async fn create_partitioned(c: &aws_sdk_firehose::Client, name: &str, bucket: &str) {
    let param = |n: ProcessorParameterName, v: &str| {
        ProcessorParameter::builder()
            .parameter_name(n)
            .parameter_value(v)
            .build()
            .unwrap()
    };
    let dest = aws_sdk_firehose::types::ExtendedS3DestinationConfiguration::builder()
        .role_arn(ROLE)
        .bucket_arn(format!("arn:aws:s3:::{bucket}"))
        .buffering_hints(
            aws_sdk_firehose::types::BufferingHints::builder()
                .size_in_mbs(1)
                .interval_in_seconds(1)
                .build(),
        )
        .prefix("data/k=!{partitionKeyFromQuery:k}/")
        .error_output_prefix("err/!{firehose:error-output-type}/")
        .dynamic_partitioning_configuration(
            DynamicPartitioningConfiguration::builder()
                .enabled(true)
                .build(),
        )
        .processing_configuration(
            ProcessingConfiguration::builder()
                .enabled(true)
                .processors(
                    Processor::builder()
                        .r#type(ProcessorType::MetadataExtraction)
                        .parameters(param(
                            ProcessorParameterName::MetadataExtractionQuery,
                            "{k: .k}",
                        ))
                        .parameters(param(ProcessorParameterName::JsonParsingEngine, "JQ-1.6"))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .build()
        .unwrap();
    create(c, name, dest).await;
}

fn sum(points: &Value, metric: &str) -> f64 {
    points
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["values"][metric].as_f64())
        .sum()
}

#[test]
fn console_monitoring() {
    let server = Server::start_with_config(FAST);
    let c = server.client();
    let lines = lines(5, "n");
    rt().block_on(async {
        create(&c, "plain", s3_dest("plainb", 1, 1)).await;
        create_partitioned(&c, "dp", "dpb").await;
        put_lines(&c, "plain", &lines).await;
        let binary = c
            .put_record()
            .delivery_stream_name("plain")
            .record(record(&[0xff, 0x00, 0xfe]))
            .send()
            .await
            .unwrap();
        assert!(!binary.record_id.is_empty());
        put_lines(
            &c,
            "dp",
            &["{\"k\":\"a\"}\n".to_string(), "not json\n".to_string()],
        )
        .await;
    });

    // The overview lists both streams; the sampler names the metrics it saw.
    let overview = get_until(&server, "overview", |o| {
        o["streams"].as_array().is_some_and(|s| {
            s.len() == 2 && s.iter().all(|s| s["latest"]["IncomingRecords"].is_number())
        })
    });
    assert!(
        overview["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "IncomingRecords"),
        "{overview}"
    );
    let streams = overview["streams"].as_array().unwrap();
    let names: Vec<&str> = streams
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dp", "plain"]);
    for s in streams {
        assert_eq!(s["status"], "ACTIVE");
        assert_eq!(s["destination"], "ExtendedS3");
        assert!(s["created_ms"].as_i64().unwrap() > 1_600_000_000_000);
        // The last interval's increase (the puts may be older than one interval).
        assert!(
            s["latest"]["IncomingRecords"].as_f64().unwrap() >= 0.0,
            "{s}"
        );
    }
    assert_eq!(overview["interval_s"].as_f64(), Some(0.2));

    // Metric history: the six records put show up as IncomingRecords increases. (The `1h`
    // range spans 72 s at this interval, `5m` only 6 s.)
    let m = get_until(&server, "streams/plain/metrics?range=1h", |m| {
        sum(&m["points"], "IncomingRecords") == 6.0
            && sum(&m["points"], "DeliveryToS3.Records") == 6.0
    });
    assert_eq!(sum(&m["points"], "IncomingRecords"), 6.0, "{m}");
    assert_eq!(sum(&m["points"], "DeliveryToS3.Records"), 6.0, "{m}");
    assert_eq!(sum(&m["points"], "IncomingBytes"), 43.0, "{m}");
    assert_eq!(
        (m["stream"].as_str(), m["range"].as_str()),
        (Some("plain"), Some("1h"))
    );
    assert!((m["step_s"].as_f64().unwrap() - 1.2).abs() < 1e-9);
    let five = get_until(&server, "streams/plain/metrics?range=5m", |m| {
        m["points"].as_array().is_some_and(|p| p.len() == 30)
    });
    assert_eq!(five["step_s"].as_f64(), Some(0.2));
    let points = five["points"].as_array().unwrap();
    assert_eq!(points.len(), 30, "{five}");
    assert!(
        points
            .windows(2)
            .all(|w| w[0]["t"].as_i64() < w[1]["t"].as_i64())
    );
    // A gauge reads as its value: nothing is waiting, so freshness is 0.
    assert_eq!(
        points[29]["values"]["DeliveryToS3.DataFreshness"].as_f64(),
        Some(0.0)
    );
    let day = get(&server, "streams/plain/metrics?range=24h");
    assert_eq!(day["step_s"].as_f64(), Some(12.0));
    assert_eq!(sum(&day["points"], "IncomingRecords"), 6.0, "{day}");
    let (status, body) = call(
        "GET",
        &format!(
            "{}/console/api/streams/plain/metrics?range=2d",
            server.endpoint
        ),
        None,
    );
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("InvalidArgumentException"))
    );

    // The tail: the newest acknowledged records, oldest first; binary data as base64.
    let tail = get(&server, "streams/plain/tail?limit=20");
    let records = tail["records"].as_array().unwrap();
    assert_eq!(records.len(), 6, "{tail}");
    for (r, line) in records.iter().zip(&lines) {
        assert_eq!(r["data"].as_str(), Some(line.as_str()));
        assert_eq!(r["bytes"].as_u64(), Some(line.len() as u64));
        assert!(r.get("encoding").is_none());
    }
    assert_eq!(records[5]["data"], "/wD+");
    assert_eq!(records[5]["encoding"], "base64");
    assert!(
        records
            .windows(2)
            .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64())
    );
    let last_two = get(&server, "streams/plain/tail?limit=2");
    assert_eq!(last_two["records"].as_array().unwrap(), &records[4..]);

    // Errors: the record that was not JSON, with the object it is in.
    let errors = get_until(&server, "streams/dp/errors", |e| {
        e["errors"].as_array().is_some_and(|a| !a.is_empty())
    });
    let errors = errors["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(e["error_output_type"], "processing-failed");
    assert_eq!(
        e["error_code"],
        "DynamicPartitioning.MetadataExtractionFailed"
    );
    assert!(!e["error_message"].as_str().unwrap().is_empty());
    assert!(e.get("rawData").is_none() && e.get("raw_data").is_none());
    let error_key = e["key"].as_str().unwrap();
    assert!(
        error_key.starts_with("err/processing-failed/"),
        "{error_key}"
    );
    let error_file = server.bucket("dpb").join(error_key);
    assert!(error_file.is_file(), "{}", error_file.display());
    assert!(
        get(&server, "streams/plain/errors")["errors"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Objects: the data object of `plain`; the data and error objects of `dp`.
    let objects = get_until(&server, "streams/plain/objects", |o| {
        o["objects"].as_array().is_some_and(|a| !a.is_empty())
    });
    let listed = objects["objects"].as_array().unwrap();
    let files = crate::common::objects(&server.bucket("plainb"));
    assert_eq!(listed.len(), files.len(), "{objects}");
    for o in listed {
        assert_eq!(o["kind"], "data");
        let (_, body) = files.iter().find(|(k, _)| *k == o["key"]).unwrap();
        assert_eq!(o["size"].as_u64(), Some(body.len() as u64));
        assert!(o["last_modified_ms"].as_i64().unwrap() > 1_600_000_000_000);
    }
    let dp = get_until(&server, "streams/dp/objects?limit=10", |o| {
        o["objects"].as_array().is_some_and(|a| a.len() >= 2)
    });
    let dp = dp["objects"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = dp
        .iter()
        .map(|o| (o["key"].as_str().unwrap(), o["kind"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&(error_key, "error")), "{kinds:?}");
    assert!(
        kinds
            .iter()
            .any(|(k, kind)| k.starts_with("data/k=a/") && *kind == "data"),
        "{kinds:?}"
    );
    assert!(
        dp.windows(2)
            .all(|w| w[0]["last_modified_ms"].as_i64() >= w[1]["last_modified_ms"].as_i64())
    );

    // Unknown streams and bad limits.
    for path in ["metrics", "errors", "tail", "objects"] {
        let url = format!("{}/console/api/streams/nope/{path}", server.endpoint);
        let (status, body) = call("GET", &url, None);
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["__type"], "ResourceNotFoundException", "{path}");
    }
    let (status, body) = call(
        "GET",
        &format!("{}/console/api/streams/plain/tail?limit=0", server.endpoint),
        None,
    );
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("InvalidArgumentException"))
    );

    // A deleted stream leaves the overview.
    rt().block_on(async {
        c.delete_delivery_stream()
            .delivery_stream_name("dp")
            .send()
            .await
            .unwrap();
    });
    let overview = get(&server, "overview");
    let names: Vec<&str> = overview["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["plain"]);
}

fn dashboard(name: &str) -> String {
    json!({
        "name": name,
        "refresh_s": 30,
        "panels": [{"id": "p1", "title": "Clicks", "sql": "SELECT 1 AS one",
                    "chart": {"type": "line", "x": "one", "y": ["one"]},
                    "x": 0, "y": 0, "w": 6, "h": 4}]
    })
    .to_string()
}

#[test]
fn console_dashboards_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(tmp.path(), None);
    let url = |s: &Server, path: &str| format!("{}/console/api/dashboards{path}", s.endpoint);
    assert_eq!(get(&server, "dashboards"), json!({"dashboards": []}));

    let (status, stored) = call("PUT", &url(&server, "/ops"), Some(&dashboard("Ops")));
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["id"], "ops");
    assert_eq!(stored["name"], "Ops");
    assert_eq!(stored["panels"][0]["chart"]["type"], "line");
    assert!(stored["updated_ms"].as_i64().unwrap() > 1_600_000_000_000);
    let (status, _) = call("PUT", &url(&server, "/gone"), Some(&dashboard("Gone")));
    assert_eq!(status, 200);
    let (status, body) = call("DELETE", &url(&server, "/gone"), None);
    assert_eq!((status, body), (200, json!({})));

    // Validation: clear messages, nothing stored.
    let bad_chart = dashboard("x").replace("\"line\"", "\"donut\"");
    let cases = [
        ("/bad%20id", dashboard("x"), "Dashboard id"),
        ("/d", json!({"name": ""}).to_string(), "'name'"),
        ("/d", bad_chart, "chart.type 'donut'"),
        (
            "/d",
            dashboard("x").replace("\"w\":6", "\"w\":500"),
            "panels[0].w",
        ),
        ("/d", "{not json".to_string(), "not valid"),
    ];
    for (path, body, expected) in cases {
        let (status, answer) = call("PUT", &url(&server, path), Some(&body));
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_eq!(answer["__type"], "InvalidArgumentException");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
    }
    let (status, body) = call("DELETE", &url(&server, "/absent"), None);
    assert_eq!(
        (status, body["__type"].as_str()),
        (404, Some("ResourceNotFoundException"))
    );

    server.stop();
    let audit = std::fs::read_to_string(tmp.path().join("audit/audit.log")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("PutDashboard") && l.contains("dashboard/ops")),
        "{audit}"
    );
    assert!(
        audit.lines().any(|l| l.contains("DeleteDashboard")),
        "{audit}"
    );

    let server = Server::start_in(tmp.path(), None);
    let list = get(&server, "dashboards");
    let dashboards = list["dashboards"].as_array().unwrap();
    assert_eq!(dashboards.len(), 1, "{list}");
    assert_eq!(dashboards[0], stored);
    let (status, _) = call("DELETE", &url(&server, "/ops"), None);
    assert_eq!(status, 200);
    assert_eq!(get(&server, "dashboards"), json!({"dashboards": []}));
}

const AUTH: &str = r#"
[[auth.keys]]
access_key_id = "AKIAADMIN"
secret_access_key = "admin-secret"
allow = [ { actions = ["*"] } ]

[[auth.keys]]
access_key_id = "AKIACLICKS"
secret_access_key = "clicks-secret"
allow = [ { actions = ["firehose:*"], resources = ["arn:aws:firehose:*:*:deliverystream/clicks"] } ]
"#;

/// A request signed with aws-sigv4 for service `lakehose`, sent raw: (status, JSON body).
fn signed(
    endpoint: &str,
    method: &str,
    path: &str,
    body: &[u8],
    key: (&str, &str),
) -> (u16, Value) {
    let host = endpoint.strip_prefix("http://").unwrap();
    let mut headers = vec![("host".to_string(), host.to_string())];
    if !key.0.is_empty() {
        let identity = aws_credential_types::Credentials::new(key.0, key.1, None, None, "t").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("lakehose")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let uri = format!("{endpoint}{path}");
        let signable = SignableRequest::new(
            method,
            uri.as_str(),
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        for (name, value) in instructions.headers() {
            headers.push((name.to_string(), value.to_string()));
        }
    }
    let mut stream = TcpStream::connect(host).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in &headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn console_api_needs_authentication() {
    const ADMIN: (&str, &str) = ("AKIAADMIN", "admin-secret");
    const CLICKS: (&str, &str) = ("AKIACLICKS", "clicks-secret");
    const NONE: (&str, &str) = ("", "");
    let server = Server::start_with_config(&format!("{AUTH}{FAST}"));
    let admin = client_with_key(
        &server.endpoint,
        aws_sdk_firehose::config::retry::RetryConfig::disabled(),
        ADMIN.0,
        ADMIN.1,
    );
    rt().block_on(async {
        create(&admin, "clicks", s3_dest("b", 1, 60)).await;
        create(&admin, "other", s3_dest("b", 1, 60)).await;
    });
    let e = &server.endpoint;
    let board = dashboard("Ops");

    // Unsigned: refused before anything is read or changed.
    for (method, path, body) in [
        ("GET", "/console/api/overview", ""),
        ("GET", "/console/api/streams/clicks/tail", ""),
        ("GET", "/console/api/dashboards", ""),
        ("PUT", "/console/api/dashboards/ops", board.as_str()),
    ] {
        let (status, answer) = signed(e, method, path, body.as_bytes(), NONE);
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert_eq!(answer["__type"], "MissingAuthenticationTokenException");
    }

    // Signed: the admin sees everything.
    let (status, overview) = signed(e, "GET", "/console/api/overview", b"", ADMIN);
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["streams"].as_array().unwrap().len(), 2);
    let (status, tail) = signed(e, "GET", "/console/api/streams/other/tail", b"", ADMIN);
    assert_eq!((status, &tail), (200, &json!({"records": []})));
    let (status, stored) = signed(
        e,
        "PUT",
        "/console/api/dashboards/ops",
        board.as_bytes(),
        ADMIN,
    );
    assert_eq!(status, 200, "{stored}");

    // A key limited to one stream: no listing, only its stream, no dashboards.
    let (status, answer) = signed(e, "GET", "/console/api/overview", b"", CLICKS);
    assert_eq!(
        (status, answer["__type"].as_str()),
        (400, Some("AccessDeniedException"))
    );
    let (status, _) = signed(e, "GET", "/console/api/streams/clicks/metrics", b"", CLICKS);
    assert_eq!(status, 200);
    let (status, answer) = signed(e, "GET", "/console/api/streams/other/tail", b"", CLICKS);
    assert_eq!(
        (status, answer["__type"].as_str()),
        (400, Some("AccessDeniedException"))
    );
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("firehose:DescribeDeliveryStream"),
        "{message}"
    );
    let (status, answer) = signed(e, "DELETE", "/console/api/dashboards/ops", b"", CLICKS);
    assert_eq!(
        (status, answer["__type"].as_str()),
        (400, Some("AccessDeniedException"))
    );
    let (status, list) = signed(e, "GET", "/console/api/dashboards", b"", ADMIN);
    assert_eq!(
        (status, list["dashboards"].as_array().unwrap().len()),
        (200, 1)
    );
}
