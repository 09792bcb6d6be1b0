//! `lakehose put` and `lakehose streams` against the real server.

use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;

fn lakehose(endpoint: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(lakehose_binary())
        .args(args)
        .env("LAKEHOSE_ENDPOINT", endpoint)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        input.write_all(data).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn streams_and_put_commands() {
    let server = Server::start();
    let ep = server.endpoint.as_str();
    let spec = server.data_dir.join("create.json");
    std::fs::write(
        &spec,
        r#"{"DeliveryStreamName": "cli", "ExtendedS3DestinationConfiguration": {
            "RoleARN": "arn:aws:iam::123456789012:role/r", "BucketARN": "arn:aws:s3:::clib",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0}}}"#,
    )
    .unwrap();
    let out = lakehose(
        ep,
        &["streams", "create", "--from-json", spec.to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "arn:aws:firehose:us-east-1:000000000000:deliverystream/cli"
    );
    let out = lakehose(ep, &["streams", "list"], None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "cli\n");
    let out = lakehose(ep, &["streams", "describe", "cli"], None);
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["DeliveryStreamDescription"]["VersionId"], "1");

    // 1,200 lines from stdin: three PutRecordBatch calls (500 + 500 + 200).
    let input: String = (0..1200).map(|i| format!("{{\"i\":{i}}}\n")).collect();
    let out = lakehose(ep, &["put", "--stream", "cli", "-"], Some(input.as_bytes()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.starts_with("1200 records"), "{summary}");
    assert!(summary.contains("0 failed"), "{summary}");
    let objs = wait_for_objects(&server.bucket("clib"), Duration::from_secs(15), |o| {
        o.iter().map(|(_, d)| d.len()).sum::<usize>() >= input.len()
    });
    let mut got: Vec<String> = objs
        .iter()
        .flat_map(|(_, d)| {
            String::from_utf8_lossy(d)
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    got.sort();
    let mut want: Vec<String> = input.lines().map(String::from).collect();
    want.sort();
    assert_eq!(got, want, "every line delivered once, newline-delimited");

    // Errors surface with the AWS error type and a non-zero exit.
    let out = lakehose(ep, &["put", "--stream", "missing", "-"], Some(b"x\n"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ResourceNotFoundException"));
    let out = lakehose(ep, &["streams", "delete", "cli"], None);
    assert!(out.status.success());
    let out = lakehose(ep, &["streams", "describe", "cli"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ResourceNotFoundException"));
}
