//! The HTTP endpoint destination against a receiver written here (axum on 127.0.0.1):
//! protocol v1.0 headers and body, retries with a stable request id, the backup bucket for
//! failures and `AllData`, gzip bodies, and the SSRF guard.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_firehose::Client;
use aws_sdk_firehose::types::{
    HttpEndpointBufferingHints, HttpEndpointCommonAttribute, HttpEndpointConfiguration,
    HttpEndpointDestinationConfiguration, HttpEndpointRequestConfiguration,
    HttpEndpointRetryOptions, HttpEndpointS3BackupMode,
};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;

use crate::common::*;

const ACCESS_KEY: &str = "receiver-secret-key";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What the receiver answers.
#[derive(Clone, Copy)]
pub(crate) enum Mode {
    /// 200 with the request id.
    Accept,
    /// 500 for the first `n` requests, then accept.
    FailFirst(usize),
    /// Always this status.
    Always(u16),
    /// Never answers.
    Hang,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    headers: HeaderMap,
    /// The body as JSON (gunzipped when `Content-Encoding: gzip`).
    body: serde_json::Value,
    /// Whether it was answered with success.
    accepted: bool,
}

pub(crate) struct Receiver {
    mode: Mutex<Mode>,
    got: Mutex<Vec<Got>>,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1 in its own thread; its URL and state.
    pub(crate) fn start(mode: Mode) -> (String, Arc<Receiver>) {
        let state = Arc::new(Receiver {
            mode: Mutex::new(mode),
            got: Mutex::new(Vec::new()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/ingest?x=1", listener.local_addr().unwrap());
        let s = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(receive).with_state(s);
                axum::serve(listener, app).await.unwrap();
            });
        });
        (url, state)
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// The records of every accepted request, in order.
    pub(crate) fn accepted_records(&self) -> Vec<String> {
        self.got()
            .iter()
            .filter(|g| g.accepted)
            .flat_map(|g| records_of(&g.body))
            .collect()
    }
}

fn records_of(body: &serde_json::Value) -> Vec<String> {
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(r["data"].as_str().unwrap())
                .unwrap();
            String::from_utf8(data).unwrap()
        })
        .collect()
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let raw = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        body.to_vec()
    };
    let json: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
    let id = json["requestId"].as_str().unwrap_or_default().to_string();
    let mode = *r.mode.lock().unwrap();
    let status = {
        let mut got = r.got.lock().unwrap();
        let status = match mode {
            Mode::Hang => None,
            Mode::Accept => Some(200),
            Mode::FailFirst(n) if got.len() < n => Some(500),
            Mode::FailFirst(_) => Some(200),
            Mode::Always(s) => Some(s),
        };
        got.push(Got {
            headers,
            body: json,
            accepted: status == Some(200),
        });
        status
    };
    let Some(status) = status else {
        std::future::pending::<()>().await;
        unreachable!()
    };
    let answer = serde_json::json!({"requestId": id, "timestamp": 1}).to_string();
    (StatusCode::from_u16(status).unwrap(), answer)
}

fn http_dest(
    url: &str,
    retry_s: i32,
    mode: HttpEndpointS3BackupMode,
    gzip: bool,
) -> HttpEndpointDestinationConfiguration {
    HttpEndpointDestinationConfiguration::builder()
        .endpoint_configuration(
            HttpEndpointConfiguration::builder()
                .url(url)
                .name("receiver")
                .access_key(ACCESS_KEY)
                .build()
                .unwrap(),
        )
        .buffering_hints(
            HttpEndpointBufferingHints::builder()
                .size_in_mbs(1)
                .interval_in_seconds(0)
                .build(),
        )
        .request_configuration(
            HttpEndpointRequestConfiguration::builder()
                .content_encoding(if gzip {
                    aws_sdk_firehose::types::ContentEncoding::Gzip
                } else {
                    aws_sdk_firehose::types::ContentEncoding::None
                })
                .common_attributes(
                    HttpEndpointCommonAttribute::builder()
                        .attribute_name("env")
                        .attribute_value("test")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .retry_options(
            HttpEndpointRetryOptions::builder()
                .duration_in_seconds(retry_s)
                .build(),
        )
        .s3_backup_mode(mode)
        .s3_configuration(backup_bucket())
        .build()
}

async fn create(c: &Client, name: &str, dest: HttpEndpointDestinationConfiguration) {
    c.create_delivery_stream()
        .delivery_stream_name(name)
        .http_endpoint_destination_configuration(dest)
        .send()
        .await
        .unwrap();
}

#[test]
fn receiver_gets_every_record_with_the_protocol_headers() {
    let server = Server::start_with_config(EGRESS);
    let (url, receiver) = Receiver::start(Mode::Accept);
    let sent = lines(300, "a");
    rt().block_on(async {
        let c = server.client();
        create(
            &c,
            "h1",
            http_dest(&url, 60, HttpEndpointS3BackupMode::FailedDataOnly, false),
        )
        .await;
        let d = c
            .describe_delivery_stream()
            .delivery_stream_name("h1")
            .send()
            .await
            .unwrap();
        let dest = &d.delivery_stream_description.unwrap().destinations[0];
        let h = dest.http_endpoint_destination_description.as_ref().unwrap();
        let e = h.endpoint_configuration.as_ref().unwrap();
        assert_eq!(e.url.as_deref(), Some(url.as_str()));
        assert_eq!(e.name.as_deref(), Some("receiver"));
        assert_eq!(
            h.retry_options.as_ref().unwrap().duration_in_seconds,
            Some(60)
        );
        put_lines(&c, "h1", &sent).await;
    });
    wait_until(Duration::from_secs(20), || {
        receiver.accepted_records().len() >= sent.len()
    });
    assert_eq!(receiver.accepted_records(), sent);
    for g in receiver.got() {
        let h = &g.headers;
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["x-amz-firehose-protocol-version"], "1.0");
        assert_eq!(h["x-amz-firehose-access-key"], ACCESS_KEY);
        assert_eq!(
            h["x-amz-firehose-request-id"].to_str().unwrap(),
            g.body["requestId"].as_str().unwrap()
        );
        let attrs: serde_json::Value =
            serde_json::from_str(h["x-amz-firehose-common-attributes"].to_str().unwrap()).unwrap();
        assert_eq!(
            attrs,
            serde_json::json!({"commonAttributes": {"env": "test"}})
        );
        assert!(h.get("content-encoding").is_none());
        assert!(g.body["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    }
    // Nothing failed, nothing backed up.
    assert!(failure_docs(&server, "http-endpoint-failed").is_empty());
    assert_eq!(
        metric(&server.endpoint, "DeliveryToHttpEndpoint_Records", "h1"),
        300.0
    );
    assert!(metric(&server.endpoint, "DeliveryToHttpEndpoint_Success", "h1") >= 1.0);
}

#[test]
fn a_failing_receiver_gets_the_same_request_id_again() {
    let server = Server::start_with_config(EGRESS);
    let (url, receiver) = Receiver::start(Mode::FailFirst(2));
    let sent = lines(20, "b");
    rt().block_on(async {
        let c = server.client();
        create(
            &c,
            "h2",
            http_dest(&url, 120, HttpEndpointS3BackupMode::FailedDataOnly, false),
        )
        .await;
        put_lines(&c, "h2", &sent).await;
    });
    wait_until(Duration::from_secs(30), || {
        receiver.accepted_records().len() >= sent.len()
    });
    let got = receiver.got();
    assert!(got.len() >= 3, "{} requests", got.len());
    assert!(!got[0].accepted && !got[1].accepted && got[2].accepted);
    let id = got[0].body["requestId"].as_str().unwrap();
    assert_eq!(got[1].body["requestId"], id);
    assert_eq!(got[2].body["requestId"], id);
    assert_eq!(got[0].headers["x-amz-firehose-request-id"], id);
    assert_eq!(got[2].headers["x-amz-firehose-request-id"], id);
    assert_eq!(records_of(&got[0].body), records_of(&got[2].body));
    // Exactly what was sent, once.
    assert_eq!(receiver.accepted_records(), sent);
    std::thread::sleep(Duration::from_millis(300));
    assert!(failure_docs(&server, "http-endpoint-failed").is_empty());
}

#[test]
fn failed_batches_land_in_the_backup_bucket() {
    let server = Server::start_with_config(EGRESS);
    let (url_413, r413) = Receiver::start(Mode::Always(413));
    let (url_500, r500) = Receiver::start(Mode::Always(500));
    let sent_a = lines(10, "c");
    let sent_b = lines(10, "d");
    rt().block_on(async {
        let c = server.client();
        // 413 is permanent even with a long retry duration.
        create(
            &c,
            "h3",
            http_dest(
                &url_413,
                3600,
                HttpEndpointS3BackupMode::FailedDataOnly,
                false,
            ),
        )
        .await;
        create(
            &c,
            "h4",
            http_dest(&url_500, 0, HttpEndpointS3BackupMode::FailedDataOnly, false),
        )
        .await;
        put_lines(&c, "h3", &sent_a).await;
        put_lines(&c, "h4", &sent_b).await;
    });
    wait_until(Duration::from_secs(30), || {
        failure_docs(&server, "http-endpoint-failed").len() >= sent_a.len() + sent_b.len()
    });
    let docs = failure_docs(&server, "http-endpoint-failed");
    assert_eq!(docs.len(), 20);
    let mut raw: Vec<String> = docs.iter().map(raw_data).collect();
    raw.sort();
    let mut expected: Vec<String> = sent_a.iter().chain(&sent_b).cloned().collect();
    expected.sort();
    assert_eq!(raw, expected);
    for d in &docs {
        assert_eq!(d["errorCode"], "HttpEndpoint.DestinationException");
        assert!(d["attemptsMade"].as_u64().unwrap() >= 1);
        assert!(d["arrivalTimestamp"].as_i64().unwrap() > 0);
        assert!(d["attemptEndingTimestamp"].as_i64().unwrap() > 0);
        let endpoint = d["EndpointUrl"].as_str().unwrap();
        assert!(endpoint == url_413 || endpoint == url_500);
        if endpoint == url_413 {
            assert_eq!(d["attemptsMade"], 1);
            assert!(d["errorMessage"].as_str().unwrap().contains("413"));
        }
    }
    assert_eq!(r413.got().len(), 1, "413 is not retried");
    assert!(!r500.got().is_empty());
    // The default error prefix: http-endpoint-failed/YYYY/MM/dd/HH/.
    for (key, _) in objects(&server.bucket("backup")) {
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts[0], "http-endpoint-failed", "{key}");
        assert_eq!(parts.len(), 6, "{key}");
    }
}

#[test]
fn all_data_backs_up_everything_and_gzip_bodies_decode() {
    let server = Server::start_with_config(EGRESS);
    let (url, receiver) = Receiver::start(Mode::Accept);
    let sent = lines(50, "e");
    rt().block_on(async {
        let c = server.client();
        create(
            &c,
            "h5",
            http_dest(&url, 60, HttpEndpointS3BackupMode::AllData, true),
        )
        .await;
        put_lines(&c, "h5", &sent).await;
    });
    wait_until(Duration::from_secs(20), || {
        receiver.accepted_records().len() >= sent.len()
            && backup_bytes(&server) >= sent.iter().map(String::len).sum::<usize>()
    });
    assert_eq!(receiver.accepted_records(), sent);
    for g in receiver.got() {
        assert_eq!(g.headers["content-encoding"], "gzip");
    }
    assert_backed_up(&server, &sent);
}

#[test]
fn private_endpoints_are_refused_or_never_contacted() {
    // No [egress] allowances.
    let server = Server::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    rt().block_on(async {
        let c = server.client();
        for url in [
            format!("http://127.0.0.1:{port}/"),
            "https://127.0.0.1/".to_string(),
            "https://169.254.169.254/latest/meta-data/".to_string(),
            "https://[::1]/".to_string(),
            "https://10.0.0.1/".to_string(),
            format!("http://localhost:{port}/"),
        ] {
            let err = c
                .create_delivery_stream()
                .delivery_stream_name("ssrf")
                .http_endpoint_destination_configuration(http_dest(
                    &url,
                    0,
                    HttpEndpointS3BackupMode::FailedDataOnly,
                    false,
                ))
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&err), "InvalidArgumentException", "{url}");
        }
        // A name is resolved at delivery, not at create.
        create(
            &c,
            "named",
            http_dest(
                &format!("https://localhost:{port}/"),
                0,
                HttpEndpointS3BackupMode::FailedDataOnly,
                false,
            ),
        )
        .await;
        put_lines(&c, "named", &lines(5, "f")).await;
    });
    wait_until(Duration::from_secs(20), || {
        failure_docs(&server, "http-endpoint-failed").len() >= 5
    });
    let docs = failure_docs(&server, "http-endpoint-failed");
    assert_eq!(docs.len(), 5);
    for d in &docs {
        assert_eq!(d["errorCode"], "HttpEndpoint.ConnectionFailed");
        let message = d["errorMessage"].as_str().unwrap();
        assert!(message.contains("not allowed"), "{message}");
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the refused endpoint was contacted: {other:?}"),
    }
}

#[test]
fn a_batch_replayed_after_a_crash_keeps_its_request_id() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, receiver) = Receiver::start(Mode::Hang);
    let sent = lines(10, "g");
    let mut server = Server::start_in(tmp.path(), Some(EGRESS));
    rt().block_on(async {
        let c = server.client();
        create(
            &c,
            "h6",
            http_dest(&url, 600, HttpEndpointS3BackupMode::FailedDataOnly, false),
        )
        .await;
        put_lines(&c, "h6", &sent).await;
    });
    wait_until(Duration::from_secs(20), || !receiver.got().is_empty());
    let first = receiver.got()[0].body["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    server.kill();
    receiver.set_mode(Mode::Accept);
    let _server = Server::start_in(tmp.path(), Some(EGRESS));
    wait_until(Duration::from_secs(20), || {
        receiver.accepted_records().len() >= sent.len()
    });
    assert_eq!(receiver.accepted_records(), sent);
    let accepted: Vec<Got> = receiver.got().into_iter().filter(|g| g.accepted).collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].body["requestId"], first.as_str());
    assert_eq!(
        accepted[0].headers["x-amz-firehose-request-id"],
        first.as_str()
    );
}
