//! The audit log on the real binary: control-plane calls (successes and failures, and calls
//! refused by authorization) and console sign-ins are recorded with who, from where, what and
//! the outcome; data-plane puts are not; no secret reaches the file; the file survives a
//! restart and keeps growing.

use std::process::Command;

use aws_sdk_firehose::config::retry::RetryConfig;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use serde_json::Value;

use crate::common::*;

const CONFIG: &str = r#"
[[auth.keys]]
access_key_id = "AKIAAUDITADMIN"
secret_access_key = "audit-admin-secret-value"
allow = [ { actions = ["*"] } ]

[[auth.keys]]
access_key_id = "AKIAAUDITPUT"
secret_access_key = "audit-put-secret-value"
allow = [ { actions = ["firehose:PutRecord*"] } ]
"#;

fn audit_lines(data_dir: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(data_dir.join("audit/audit.log")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn login(endpoint: &str, key: &str, secret: &str) -> u16 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", "Content-Type: application/json", "--data"])
        .arg(format!(
            r#"{{"accessKeyId":"{key}","secretAccessKey":"{secret}"}}"#
        ))
        .arg(format!("{endpoint}/console/api/login"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap()
}

#[test]
fn control_plane_calls_and_sign_ins_are_recorded_and_puts_are_not() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start_in(&data, Some(CONFIG));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin = client_with_key(
        &server.endpoint,
        RetryConfig::disabled(),
        "AKIAAUDITADMIN",
        "audit-admin-secret-value",
    );
    let putter = client_with_key(
        &server.endpoint,
        RetryConfig::disabled(),
        "AKIAAUDITPUT",
        "audit-put-secret-value",
    );
    rt.block_on(async {
        admin
            .create_delivery_stream()
            .delivery_stream_name("audited")
            .extended_s3_destination_configuration(s3_dest("audit-bucket", 1, 60))
            .send()
            .await
            .unwrap();
        for _ in 0..3 {
            putter
                .put_record()
                .delivery_stream_name("audited")
                .record(Record::builder().data(Blob::new("x")).build().unwrap())
                .send()
                .await
                .unwrap();
        }
        let missing = admin
            .describe_delivery_stream()
            .delivery_stream_name("missing")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&missing), "ResourceNotFoundException");
        let denied = putter
            .delete_delivery_stream()
            .delivery_stream_name("audited")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&denied), "AccessDeniedException");
    });
    assert_eq!(login(&server.endpoint, "AKIAAUDITADMIN", "wrong"), 403);
    assert_eq!(
        login(
            &server.endpoint,
            "AKIAAUDITADMIN",
            "audit-admin-secret-value"
        ),
        200
    );

    // SQL over /v1/query, signed by curl (`--aws-sigv4`), is Athena's StartQueryExecution.
    let sql = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["--aws-sigv4", "aws:amz:us-east-1:athena"])
        .args(["--user", "AKIAAUDITADMIN:audit-admin-secret-value"])
        .args(["-H", "Content-Type: application/json"])
        .args(["--data", r#"{"sql":"SELECT 1"}"#])
        .arg(format!("{}/v1/query", server.endpoint))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&sql.stdout), "200");

    let lines = audit_lines(&data);
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "CreateDeliveryStream",
            "DescribeDeliveryStream",
            "DeleteDeliveryStream",
            "ConsoleLogin",
            "ConsoleLogin",
            "StartQueryExecution"
        ],
        "puts are data plane and not recorded: {lines:#?}"
    );
    let create = &lines[0];
    assert_eq!(create["eventSource"], "firehose.amazonaws.com");
    assert_eq!(create["userIdentity"]["accessKeyId"], "AKIAAUDITADMIN");
    assert_eq!(create["sourceIPAddress"], "127.0.0.1");
    assert_eq!(create["readOnly"], false);
    assert!(create.get("errorCode").is_none());
    assert!(
        create["resources"][0]["ARN"]
            .as_str()
            .unwrap()
            .ends_with(":deliverystream/audited"),
        "{create}"
    );
    assert_eq!(lines[1]["errorCode"], "ResourceNotFoundException");
    assert_eq!(lines[1]["readOnly"], true);
    assert_eq!(lines[2]["errorCode"], "AccessDeniedException");
    assert_eq!(lines[2]["userIdentity"]["accessKeyId"], "AKIAAUDITPUT");
    assert_eq!(lines[3]["errorCode"], "UnrecognizedClientException");
    assert!(lines[4].get("errorCode").is_none());
    assert_eq!(lines[5]["eventSource"], "athena.amazonaws.com");
    assert_eq!(lines[5]["userIdentity"]["accessKeyId"], "AKIAAUDITADMIN");
    assert!(
        lines
            .iter()
            .all(|l| l["requestID"].is_string() && l["eventID"].is_string())
    );
    let raw = std::fs::read_to_string(data.join("audit/audit.log")).unwrap();
    assert!(
        !raw.contains("audit-admin-secret-value") && !raw.contains("wrong"),
        "no secret in the audit log"
    );

    // A restart appends to the same file.
    server.stop();
    let server = Server::start_in(&data, Some(CONFIG));
    let admin = client_with_key(
        &server.endpoint,
        RetryConfig::disabled(),
        "AKIAAUDITADMIN",
        "audit-admin-secret-value",
    );
    rt.block_on(async {
        admin.list_delivery_streams().send().await.unwrap();
    });
    let lines = audit_lines(&data);
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[6]["eventName"], "ListDeliveryStreams");
}
