//! SigV4 authentication and authorization on the real binary: the official Rust SDK with the
//! right key, a wrong secret, an unknown key and a key limited to one stream; unsigned
//! requests; clock skew at ±299/±301 s (signed with aws-sigv4 at a chosen time, sent raw);
//! `/v1/query`; `/health` and the `/metrics` bearer token; and the loopback rule (no keys on a
//! public address refuses to start unless `--insecure-no-auth`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use aws_sdk_firehose::config::retry::RetryConfig;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use crate::common::*;

const CONFIG: &str = r#"
[auth]
metrics_bearer_token = "metrics-token"

[[auth.keys]]
access_key_id = "AKIAADMIN"
secret_access_key = "admin-secret"
allow = [ { actions = ["*"] } ]

[[auth.keys]]
access_key_id = "AKIACLICKS"
secret_access_key = "clicks-secret"
allow = [ { actions = ["firehose:PutRecord*"], resources = ["arn:aws:firehose:*:*:deliverystream/clicks"] } ]
"#;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn client(server: &Server, key: &str, secret: &str) -> aws_sdk_firehose::Client {
    client_with_key(&server.endpoint, RetryConfig::disabled(), key, secret)
}

/// An HTTP/1.1 `POST` (or any method) sent as is; the status and body of the answer.
fn raw(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, String) {
    let addr = endpoint.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
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
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The headers of a request signed by aws-sigv4 at `time` (host and x-amz-target signed).
fn signed_headers(
    endpoint: &str,
    path: &str,
    target: Option<&str>,
    body: &[u8],
    (key, secret): (&str, &str),
    service: &str,
    time: SystemTime,
) -> Vec<(String, String)> {
    let host = endpoint.strip_prefix("http://").unwrap();
    let mut headers = vec![
        ("host".to_string(), host.to_string()),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
    ];
    if let Some(target) = target {
        headers.push(("x-amz-target".to_string(), target.to_string()));
    }
    let identity = aws_credential_types::Credentials::new(key, secret, None, None, "t").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let uri = format!("{endpoint}{path}");
    let signable = SignableRequest::new(
        "POST",
        uri.as_str(),
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    for (name, value) in instructions.headers() {
        headers.push((name.to_string(), value.to_string()));
    }
    headers
}

const ADMIN: (&str, &str) = ("AKIAADMIN", "admin-secret");
const CLICKS: (&str, &str) = ("AKIACLICKS", "clicks-secret");

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s"])
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sdk_keys_policies_skew_and_open_routes() {
    let server = Server::start_with_config(CONFIG);
    let admin = client(&server, ADMIN.0, ADMIN.1);
    let clicks = client(&server, CLICKS.0, CLICKS.1);
    rt().block_on(async {
        // The right key: create, put, describe.
        for name in ["clicks", "views"] {
            admin
                .create_delivery_stream()
                .delivery_stream_name(name)
                .extended_s3_destination_configuration(s3_dest("lake", 1, 60))
                .send()
                .await
                .unwrap();
        }
        let record = || Record::builder().data(Blob::new("hi\n")).build().unwrap();
        admin
            .put_record()
            .delivery_stream_name("views")
            .record(record())
            .send()
            .await
            .unwrap();
        let d = admin
            .describe_delivery_stream()
            .delivery_stream_name("clicks")
            .send()
            .await
            .unwrap();
        assert_eq!(
            d.delivery_stream_description.unwrap().delivery_stream_arn,
            "arn:aws:firehose:us-east-1:000000000000:deliverystream/clicks"
        );

        // A wrong secret, an unknown key.
        let e = client(&server, ADMIN.0, "not-the-secret")
            .list_delivery_streams()
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidSignatureException");
        let e = client(&server, "AKIANOBODY", "x")
            .list_delivery_streams()
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "UnrecognizedClientException");

        // A key limited to PutRecord* on `clicks`.
        clicks
            .put_record()
            .delivery_stream_name("clicks")
            .record(record())
            .send()
            .await
            .unwrap();
        let batch = clicks
            .put_record_batch()
            .delivery_stream_name("clicks")
            .records(record())
            .send()
            .await
            .unwrap();
        assert_eq!(batch.failed_put_count, 0);
        let e = clicks
            .put_record()
            .delivery_stream_name("views")
            .record(record())
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "AccessDeniedException");
        assert_eq!(
            aws_sdk_firehose::error::ProvideErrorMetadata::message(&e).unwrap(),
            "User: arn:aws:iam::000000000000:user/AKIACLICKS is not \
             authorized to perform: firehose:PutRecord on resource: \
             arn:aws:firehose:us-east-1:000000000000:deliverystream/views"
        );
        let e = clicks
            .create_delivery_stream()
            .delivery_stream_name("clicks2")
            .extended_s3_destination_configuration(s3_dest("lake", 1, 60))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "AccessDeniedException");
        let e = clicks.list_delivery_streams().send().await.unwrap_err();
        assert_eq!(code(&e), "AccessDeniedException");
        // Nothing was created by the refused call.
        let names = admin.list_delivery_streams().send().await.unwrap();
        assert_eq!(names.delivery_stream_names, ["clicks", "views"]);
    });

    // Unsigned: 403 MissingAuthenticationTokenException.
    let out = curl(&[
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "-H",
        "x-amz-target: Firehose_20150804.ListDeliveryStreams",
        "-H",
        "content-type: application/x-amz-json-1.1",
        "-d",
        "{}",
        &server.endpoint,
    ]);
    let (body, status) = out.rsplit_once('\n').unwrap();
    assert_eq!(status, "403", "{out}");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["__type"], "MissingAuthenticationTokenException");

    // Clock skew, against the server's real clock.
    let target = Some("Firehose_20150804.ListDeliveryStreams");
    for (offset, accepted) in [(-299i64, true), (299, true), (-301, false), (301, false)] {
        let now = SystemTime::now();
        let time = if offset < 0 {
            now - Duration::from_secs(offset.unsigned_abs())
        } else {
            now + Duration::from_secs(offset as u64)
        };
        let headers = signed_headers(
            &server.endpoint,
            "/",
            target,
            b"{}",
            ADMIN,
            "firehose",
            time,
        );
        let (status, body) = raw(&server.endpoint, "POST", "/", &headers, b"{}");
        if accepted {
            assert_eq!(status, 200, "signed {offset} s from now: {body}");
        } else {
            assert_eq!(status, 400, "signed {offset} s from now: {body}");
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["__type"], "InvalidSignatureException");
            let message = body["message"].as_str().unwrap();
            let expected = if offset < 0 {
                "Signature expired: "
            } else {
                "Signature not yet current: "
            };
            assert!(message.starts_with(expected), "{message}");
        }
    }

    // /v1/query: signed for `lakehose` (or `athena`); authorized as athena:StartQueryExecution.
    let sql = br#"{"sql": "SELECT 1 AS one"}"#;
    let now = SystemTime::now();
    for service in ["lakehose", "athena"] {
        let headers = signed_headers(
            &server.endpoint,
            "/v1/query",
            None,
            sql,
            ADMIN,
            service,
            now,
        );
        let (status, body) = raw(&server.endpoint, "POST", "/v1/query", &headers, sql);
        assert_eq!(status, 200, "{service}: {body}");
        assert!(body.contains("\"rows\":[[1]]"), "{body}");
    }
    let headers = signed_headers(
        &server.endpoint,
        "/v1/query",
        None,
        sql,
        CLICKS,
        "lakehose",
        now,
    );
    let (status, body) = raw(&server.endpoint, "POST", "/v1/query", &headers, sql);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("AccessDeniedException") && body.contains("athena:StartQueryExecution"),
        "{body}"
    );
    let headers = signed_headers(
        &server.endpoint,
        "/v1/query",
        None,
        sql,
        ADMIN,
        "firehose",
        now,
    );
    let (status, body) = raw(&server.endpoint, "POST", "/v1/query", &headers, sql);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("Credential should be scoped to correct service: 'athena'."),
        "{body}"
    );
    let (status, body) = raw(&server.endpoint, "POST", "/v1/query", &[], sql);
    assert_eq!(status, 403, "{body}");

    // The CLI signs with the key in the environment.
    let cli = |key: Option<(&str, &str)>, args: &[&str]| {
        let mut cmd = Command::new(lakehose_binary());
        cmd.args(args)
            .env("LAKEHOSE_ENDPOINT", &server.endpoint)
            .env("RUST_LOG", "warn")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        if let Some((id, secret)) = key {
            cmd.env("AWS_ACCESS_KEY_ID", id)
                .env("AWS_SECRET_ACCESS_KEY", secret);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = cli(Some(ADMIN), &["streams", "list"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "clicks\nviews\n");
    let (ok, _, stderr) = cli(None, &["streams", "list"]);
    assert!(!ok);
    assert!(
        stderr.contains("MissingAuthenticationTokenException"),
        "{stderr}"
    );
    let (ok, _, stderr) = cli(Some(CLICKS), &["streams", "list"]);
    assert!(!ok);
    assert!(stderr.contains("AccessDeniedException"), "{stderr}");
    let (ok, stdout, stderr) = cli(Some(ADMIN), &["query", "SELECT 41 + 1 AS answer"]);
    assert!(ok && stdout.contains("42"), "{stdout}{stderr}");

    // /health is open; /metrics needs the bearer token.
    assert_eq!(
        curl_status("GET", &format!("{}/health", server.endpoint)),
        200
    );
    assert_eq!(
        curl_status("GET", &format!("{}/metrics", server.endpoint)),
        401
    );
    let metrics_url = format!("{}/metrics", server.endpoint);
    let wrong = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Authorization: Bearer nope",
        &metrics_url,
    ]);
    assert_eq!(wrong, "401");
    let right = curl(&[
        "-w",
        "\n%{http_code}",
        "-H",
        "Authorization: Bearer metrics-token",
        &metrics_url,
    ]);
    assert!(right.ends_with("\n200"), "{right}");
}

/// Starts `lakehose serve` with `args`; the listening URL, or the exit status and stderr when
/// it exits first.
fn serve(args: &[&str]) -> Result<(std::process::Child, String), String> {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(lakehose_binary())
        .arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(data.path())
        .current_dir(data.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    match lines.next() {
        Some(Ok(line)) if line.starts_with("lakehose listening on ") => {
            std::thread::spawn(move || for _ in lines {});
            Ok((child, line))
        }
        _ => {
            let status = child.wait().unwrap();
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            Err(format!("{status}: {stderr}"))
        }
    }
}

#[test]
fn public_address_needs_keys_or_insecure_no_auth() {
    let refused = serve(&["--listen", "0.0.0.0:0"]).map(|(mut c, l)| {
        let _ = c.kill();
        l
    });
    let message = refused.expect_err("started on 0.0.0.0 without keys");
    assert!(
        message.contains("refusing to serve 0.0.0.0:0 without authentication"),
        "{message}"
    );
    assert!(message.contains("--insecure-no-auth"), "{message}");

    let (mut child, line) = serve(&["--listen", "0.0.0.0:0", "--insecure-no-auth"]).unwrap();
    assert!(
        line.starts_with("lakehose listening on http://0.0.0.0:"),
        "{line}"
    );
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("WITHOUT authentication"), "{stderr}");

    // With keys, a public address is fine (and authenticated).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lakehose.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let (mut child, line) = serve(&[
        "--listen",
        "0.0.0.0:0",
        "--config",
        config.to_str().unwrap(),
    ])
    .unwrap();
    let port = line.rsplit(':').next().unwrap().to_string();
    let status = curl_status("POST", &format!("http://127.0.0.1:{port}/"));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 403);
}
