//! The harness: starts the real `lakehose` binary on 127.0.0.1:0 with its own data dir, and hands
//! out official `aws-sdk-firehose` clients pointed at it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_firehose::Client;
use aws_sdk_firehose::config::{BehaviorVersion, Region, retry::RetryConfig};
use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, ExtendedS3DestinationConfiguration,
};

pub const ROLE: &str = "arn:aws:iam::123456789012:role/firehose";

/// A running `lakehose serve`.
pub struct Server {
    child: Option<Child>,
    pub endpoint: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// A server on a fresh data dir.
    pub fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Self::start_in(tmp.path(), None);
        s._tmp = Some(tmp);
        s
    }

    /// A server on `data_dir`, with an optional `lakehose.toml` body.
    pub fn start_in(data_dir: &Path, config: Option<&str>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lakehose"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir);
        if let Some(config) = config {
            let path = data_dir.with_extension("toml");
            std::fs::write(&path, config).unwrap();
            cmd.arg("--config").arg(path);
        }
        let mut child = cmd
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting lakehose");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(url) = line.strip_prefix("lakehose listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let endpoint = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server did not start");
        Self {
            child: Some(child),
            endpoint,
            data_dir: data_dir.to_path_buf(),
            _tmp: None,
        }
    }

    /// An SDK client with the SDK's standard retries.
    pub fn client(&self) -> Client {
        client_for(&self.endpoint, RetryConfig::standard())
    }

    /// An SDK client that never retries (crash tests count every attempt themselves).
    pub fn client_no_retry(&self) -> Client {
        client_for(&self.endpoint, RetryConfig::disabled())
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(status.success(), "lakehose exited with {status}");
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            panic!("lakehose did not stop within 20 s of SIGTERM");
        }
    }

    /// The folder of a local bucket.
    pub fn bucket(&self, name: &str) -> PathBuf {
        self.data_dir.join("buckets").join(name)
    }

    /// Keeps the data dir alive past this server (to restart on it).
    pub fn take_tmp(&mut self) -> Option<tempfile::TempDir> {
        self._tmp.take()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn client_for(endpoint: &str, retry: RetryConfig) -> Client {
    let creds = aws_credential_types::Credentials::new("test", "test", None, None, "tests");
    let conf = aws_sdk_firehose::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .retry_config(retry)
        .timeout_config(
            aws_sdk_firehose::config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

/// An Extended S3 destination on `bucket` with the given hints.
pub fn s3_dest(bucket: &str, size_mb: i32, interval_s: i32) -> ExtendedS3DestinationConfiguration {
    ExtendedS3DestinationConfiguration::builder()
        .role_arn(ROLE)
        .bucket_arn(format!("arn:aws:s3:::{bucket}"))
        .buffering_hints(
            BufferingHints::builder()
                .size_in_mbs(size_mb)
                .interval_in_seconds(interval_s)
                .build(),
        )
        .compression_format(CompressionFormat::Uncompressed)
        .build()
        .unwrap()
}

/// Every file under `dir`, as (path relative to `dir`, bytes), sorted by path.
pub fn objects(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.file_name().unwrap().to_string_lossy().contains('#') {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Polls `objects(dir)` until `done` says so or `timeout` passes; returns the last listing.
pub fn wait_for_objects(
    dir: &Path,
    timeout: Duration,
    done: impl Fn(&[(String, Vec<u8>)]) -> bool,
) -> Vec<(String, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    loop {
        let objs = objects(dir);
        if done(&objs) || Instant::now() > deadline {
            return objs;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The AWS error code of an SDK error.
pub fn code<E: aws_sdk_firehose::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_string()
}
