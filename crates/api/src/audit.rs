//! The audit log: one CloudTrail-like JSON line per control-plane call.
//!
//! Every API call except the data plane (`PutRecord`, `PutRecordBatch`) is recorded: stream
//! management, tags and encryption, every Glue and Athena call, SQL over `/v1/query`, console
//! logins. A line holds when, who (access key id, or anonymous), from where (source IP), what
//! (event source and name, read-only or not), on which resource, and the outcome (the AWS
//! error code and message when it failed) — never request parameters, which may hold secrets
//! (an HTTP endpoint's access key, a Lambda's payload).
//!
//! ```json
//! {"eventVersion":"1.08","eventTime":"2026-11-24T04:40:00.123Z","eventSource":"firehose.amazonaws.com",
//!  "eventName":"CreateDeliveryStream","awsRegion":"us-east-1","sourceIPAddress":"127.0.0.1",
//!  "userIdentity":{"type":"IAMUser","accessKeyId":"AKIA..."},"readOnly":false,
//!  "resources":[{"ARN":"arn:aws:firehose:us-east-1:123456789012:deliverystream/clicks"}],
//!  "requestID":"...","eventID":"...","errorCode":"ResourceInUseException","errorMessage":"..."}
//! ```
//!
//! Invariants:
//! - Lines are appended whole, in the order calls finish, by one writer at a time; a line is
//!   never split or interleaved with another.
//! - A call that changes something is on disk (`fdatasync`) before its answer is sent; a
//!   read-only call's line is written to the OS before the answer (it survives a process
//!   crash, not a power loss). An audit write failure is logged as an error and does not fail
//!   the call (the call has already happened).
//! - Disk use is bounded: past `max_file_bytes` the file is rotated to `audit.log.1`,
//!   `audit.log.2`, ... and only `max_files` files are kept.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value, json};

/// Where and how much to keep.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// The current file; rotated files get `.1`, `.2`, ... appended.
    pub path: PathBuf,
    /// Size at which the current file is rotated.
    pub max_file_bytes: u64,
    /// Files kept in all, the current one included (at least 1).
    pub max_files: usize,
}

/// The outcome of an audited call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The call succeeded.
    Success,
    /// The call failed with an AWS error code (`__type`) and message.
    Failure {
        /// e.g. `ResourceNotFoundException`.
        code: String,
        /// The message the caller got.
        message: String,
    },
}

/// One audited call.
#[derive(Clone, Debug)]
pub struct AuditEvent<'a> {
    /// `firehose.amazonaws.com`, `glue.amazonaws.com`, `athena.amazonaws.com`,
    /// `lakehose.console`.
    pub event_source: &'a str,
    /// The operation, e.g. `CreateDeliveryStream`, `GetTable`, `ConsoleLogin`.
    pub event_name: &'a str,
    /// The region the call was signed for (or the default region).
    pub region: &'a str,
    /// The caller's access key id; `None` when authentication is off.
    pub access_key_id: Option<&'a str>,
    /// The peer address of the connection.
    pub source_ip: Option<IpAddr>,
    /// ARNs of the resources the call named.
    pub resources: Vec<String>,
    /// The `x-amzn-RequestId` the caller got.
    pub request_id: &'a str,
    /// Whether the call only reads.
    pub read_only: bool,
    /// Success or the error answered.
    pub outcome: Outcome,
}

/// The append-only audit file.
#[derive(Debug)]
pub struct AuditLog {
    config: AuditConfig,
    file: Mutex<Writer>,
}

#[derive(Debug)]
struct Writer {
    file: File,
    len: u64,
}

/// Whether a Firehose operation is data plane (not audited, as CloudTrail leaves data events
/// out by default).
pub fn is_data_plane(event_name: &str) -> bool {
    matches!(event_name, "PutRecord" | "PutRecordBatch")
}

/// Whether an operation only reads, from its name (AWS's naming: `Describe*`, `Get*`,
/// `List*`, `Search*`, `BatchGet*`).
pub fn is_read_only(event_name: &str) -> bool {
    ["Describe", "Get", "List", "Search", "BatchGet"]
        .iter()
        .any(|p| event_name.starts_with(p))
}

impl AuditLog {
    /// Opens (creating it and its folder) the audit file for appending.
    pub fn open(config: AuditConfig) -> std::io::Result<Self> {
        if let Some(dir) = config.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(&config.path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            config,
            file: Mutex::new(Writer { file, len }),
        })
    }

    /// The current file's path.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Appends one event (module docs: durability and failure handling).
    pub fn record(&self, event: &AuditEvent<'_>) {
        let mut line = serde_json::to_vec(&to_json(event)).unwrap_or_default();
        line.push(b'\n');
        let mut writer = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.append(&mut writer, &line, !event.read_only) {
            tracing::error!(path = %self.config.path.display(), error = %e,
                event = event.event_name, "could not write the audit log");
            metrics::counter!("AuditLog.WriteErrors").increment(1);
        }
    }

    fn append(&self, writer: &mut Writer, line: &[u8], sync: bool) -> std::io::Result<()> {
        if writer.len > 0 && writer.len + line.len() as u64 > self.config.max_file_bytes {
            self.rotate(writer)?;
        }
        writer.file.write_all(line)?;
        writer.len += line.len() as u64;
        if sync {
            writer.file.sync_data()?;
        }
        Ok(())
    }

    /// `audit.log.(n-1)` -> `audit.log.n`, ..., `audit.log` -> `audit.log.1`, then a new
    /// `audit.log`; the oldest beyond `max_files` is removed.
    fn rotate(&self, writer: &mut Writer) -> std::io::Result<()> {
        let keep = self.config.max_files.max(1);
        let numbered = |n: usize| {
            let mut p = self.config.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if keep == 1 {
            std::fs::remove_file(&self.config.path)?;
        } else {
            let _ = std::fs::remove_file(numbered(keep - 1));
            for n in (1..keep - 1).rev() {
                let from = numbered(n);
                if from.exists() {
                    std::fs::rename(&from, numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.config.path, numbered(1))?;
        }
        writer.file = open_append(&self.config.path)?;
        writer.len = 0;
        if let Some(dir) = self.config.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn to_json(e: &AuditEvent<'_>) -> Value {
    let mut m = Map::new();
    m.insert("eventVersion".into(), json!("1.08"));
    m.insert(
        "eventTime".into(),
        json!(
            chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        ),
    );
    m.insert("eventSource".into(), json!(e.event_source));
    m.insert("eventName".into(), json!(e.event_name));
    m.insert("awsRegion".into(), json!(e.region));
    m.insert(
        "sourceIPAddress".into(),
        json!(e.source_ip.map(|ip| ip.to_string())),
    );
    m.insert(
        "userIdentity".into(),
        match e.access_key_id {
            Some(key) => json!({"type": "IAMUser", "accessKeyId": key}),
            None => json!({"type": "Anonymous"}),
        },
    );
    m.insert("readOnly".into(), json!(e.read_only));
    m.insert(
        "resources".into(),
        Value::Array(e.resources.iter().map(|arn| json!({"ARN": arn})).collect()),
    );
    m.insert("requestID".into(), json!(e.request_id));
    m.insert("eventID".into(), json!(uuid::Uuid::new_v4().to_string()));
    if let Outcome::Failure { code, message } = &e.outcome {
        m.insert("errorCode".into(), json!(code));
        m.insert("errorMessage".into(), json!(message));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, outcome: Outcome) -> AuditEvent<'_> {
        AuditEvent {
            event_source: "firehose.amazonaws.com",
            event_name: name,
            region: "us-east-1",
            access_key_id: Some("AKIDEXAMPLE"),
            source_ip: Some("127.0.0.1".parse().unwrap()),
            resources: vec!["arn:aws:firehose:us-east-1:123456789012:deliverystream/s".into()],
            request_id: "req-1",
            read_only: is_read_only(name),
            outcome,
        }
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_carry_who_what_where_and_the_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit/audit.log");
        let log = AuditLog::open(AuditConfig {
            path: path.clone(),
            max_file_bytes: 1 << 20,
            max_files: 2,
        })
        .unwrap();
        log.record(&event("CreateDeliveryStream", Outcome::Success));
        log.record(&event(
            "DeleteDeliveryStream",
            Outcome::Failure {
                code: "ResourceNotFoundException".into(),
                message: "no such stream".into(),
            },
        ));
        let got = lines(&path);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["eventName"], "CreateDeliveryStream");
        assert_eq!(got[0]["userIdentity"]["accessKeyId"], "AKIDEXAMPLE");
        assert_eq!(got[0]["sourceIPAddress"], "127.0.0.1");
        assert_eq!(got[0]["readOnly"], false);
        assert!(got[0].get("errorCode").is_none());
        assert_eq!(
            got[0]["resources"][0]["ARN"],
            "arn:aws:firehose:us-east-1:123456789012:deliverystream/s"
        );
        assert_eq!(got[1]["errorCode"], "ResourceNotFoundException");
        assert_ne!(got[0]["eventID"], got[1]["eventID"]);
        // Reopening appends.
        drop(log);
        let log = AuditLog::open(AuditConfig {
            path: path.clone(),
            max_file_bytes: 1 << 20,
            max_files: 2,
        })
        .unwrap();
        log.record(&event("DescribeDeliveryStream", Outcome::Success));
        let got = lines(&path);
        assert_eq!(got.len(), 3);
        assert_eq!(got[2]["readOnly"], true);
    }

    #[test]
    fn rotation_keeps_at_most_max_files_and_every_line_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(AuditConfig {
            path: path.clone(),
            max_file_bytes: 1000,
            max_files: 3,
        })
        .unwrap();
        for _ in 0..100 {
            log.record(&event("UpdateDestination", Outcome::Success));
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["audit.log", "audit.log.1", "audit.log.2"]);
        for name in &names {
            let p = dir.path().join(name);
            assert!(std::fs::metadata(&p).unwrap().len() <= 1000, "{name}");
            for line in lines(&p) {
                assert_eq!(line["eventName"], "UpdateDestination");
            }
        }
    }

    #[test]
    fn data_plane_and_read_only_are_told_apart() {
        assert!(is_data_plane("PutRecordBatch"));
        assert!(!is_data_plane("CreateDeliveryStream"));
        assert!(is_read_only("ListDeliveryStreams"));
        assert!(is_read_only("GetTables"));
        assert!(!is_read_only("StartQueryExecution"));
        assert!(!is_read_only("TagDeliveryStream"));
    }
}
