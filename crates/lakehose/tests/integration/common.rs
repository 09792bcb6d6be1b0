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

    /// A server on a fresh data dir with `config` as its `lakehose.toml` (e.g. `[auth]` keys).
    pub fn start_with_config(config: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Self::start_in(tmp.path(), Some(config));
        s._tmp = Some(tmp);
        s
    }

    /// A server on `data_dir`, with an optional `lakehose.toml` body.
    pub fn start_in(data_dir: &Path, config: Option<&str>) -> Self {
        Self::start_wrapped(data_dir, config, &[])
    }

    /// Like [`Server::start_in`], run through `wrapper` (a command that ends by exec'ing its
    /// arguments, e.g. one that first joins a cgroup).
    pub fn start_wrapped(data_dir: &Path, config: Option<&str>, wrapper: &[&str]) -> Self {
        Self::start_full(data_dir, config, wrapper, &[])
    }

    /// Like [`Server::start_in`], with more `serve` flags (e.g. `--tls-cert`). The endpoint is
    /// the URL the server prints, `http://` or `https://`.
    pub fn start_args(data_dir: &Path, config: Option<&str>, args: &[&str]) -> Self {
        Self::start_full(data_dir, config, &[], args)
    }

    fn start_full(data_dir: &Path, config: Option<&str>, wrapper: &[&str], args: &[&str]) -> Self {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(lakehose_binary());
                cmd
            }
            None => Command::new(lakehose_binary()),
        };
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args);
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

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
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
    client_with_key(endpoint, retry, "test", "test")
}

/// An SDK client signing with the access key `access_key_id` / `secret` (for servers with
/// `[auth]` keys; see [`Server::start_with_config`]).
pub fn client_with_key(
    endpoint: &str,
    retry: RetryConfig,
    access_key_id: &str,
    secret: &str,
) -> Client {
    let creds = aws_credential_types::Credentials::new(access_key_id, secret, None, None, "tests");
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

/// Creates the stream `name` delivering to `dest`.
pub async fn create(c: &Client, name: &str, dest: ExtendedS3DestinationConfiguration) {
    c.create_delivery_stream()
        .delivery_stream_name(name)
        .extended_s3_destination_configuration(dest)
        .send()
        .await
        .unwrap();
}

/// Puts `lines` with PutRecordBatch, 500 records per call, asserting that none failed; the
/// `Encrypted` flag of the last answer.
pub async fn put_lines(c: &Client, stream: &str, lines: &[String]) -> Option<bool> {
    let mut encrypted = None;
    for chunk in lines.chunks(500) {
        let records: Vec<aws_sdk_firehose::types::Record> = chunk
            .iter()
            .map(|l| {
                aws_sdk_firehose::types::Record::builder()
                    .data(aws_sdk_firehose::primitives::Blob::new(l.clone()))
                    .build()
                    .unwrap()
            })
            .collect();
        let out = c
            .put_record_batch()
            .delivery_stream_name(stream)
            .set_records(Some(records))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_put_count, 0);
        encrypted = out.encrypted;
    }
    encrypted
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

/// A free TCP port on 127.0.0.1 (nothing listens on it when this returns).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// moto's S3-protocol server (PyPI `moto[server]`), killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts `moto_server` on `port` and waits until it answers.
    pub fn start_on(port: u16) -> Self {
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server must be installed (scripts/test installs moto[server])");
        let mut moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while curl_status("GET", &moto.endpoint) == 0 {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited: {status}");
            }
            assert!(Instant::now() < deadline, "moto_server did not come up");
            std::thread::sleep(Duration::from_millis(200));
        }
        moto
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, name: &str) {
        assert_eq!(
            curl_status("PUT", &format!("{}/{name}", self.endpoint)),
            200
        );
    }

    /// The `lakehose.toml` table mapping `bucket` to this server.
    pub fn bucket_config(&self, bucket: &str) -> String {
        format!(
            "[buckets.{bucket}]\nendpoint = \"{}\"\nallow_http = true\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n",
            self.endpoint
        )
    }

    /// A sink reading the bucket back through the S3 protocol.
    pub fn sink(&self, bucket: &str) -> std::sync::Arc<lakehose_sinks::StoreSink> {
        let cfg = lakehose_sinks::S3BucketConfig {
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            allow_http: true,
            path_style: true,
            bucket: None,
        };
        let buckets = lakehose_sinks::Buckets::new(
            PathBuf::from("/nonexistent"),
            [(bucket.to_string(), cfg)].into(),
        );
        buckets.sink(bucket).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP status of a bodiless request (0 when nothing answered).
pub fn curl_status(method: &str, url: &str) -> u16 {
    Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            method,
            url,
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).parse().ok())
        .unwrap_or(0)
}

/// The sum of a Prometheus metric's samples for one stream, from `/metrics`.
pub fn metric(endpoint: &str, name: &str, stream: &str) -> f64 {
    let out = Command::new("curl")
        .args(["-s", &format!("{endpoint}/metrics")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let label = format!("stream=\"{stream}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A private PostgreSQL server for this test process (`scripts/postgres-test-server`: Debian's
/// `postgresql`, installed when missing, on 127.0.0.1 and a port of its own, data in a
/// temporary directory, stopped when this process exits): its libpq connection string, user
/// `lakehose` with a password, database `lakehose`.
pub fn postgres() -> &'static str {
    static SERVER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres-test-server");
        let out = Command::new(script)
            .arg(std::process::id().to_string())
            .stderr(Stdio::inherit())
            .output()
            .expect("running scripts/postgres-test-server");
        assert!(out.status.success(), "scripts/postgres-test-server failed");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

/// The `lakehose` binary the tests run: `$LAKEHOSE_BIN` when set (`scripts/test` sets it to
/// this build's debug binary, as for the Python and browser tests; point it at a release build
/// to measure one, e.g. the overload test), otherwise the binary cargo built for this test.
pub fn lakehose_binary() -> std::ffi::OsString {
    std::env::var_os("LAKEHOSE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_lakehose").into())
}

/// A connected client of [`postgres`].
pub async fn postgres_client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(postgres(), tokio_postgres::NoTls)
        .await
        .expect("connecting to the test PostgreSQL");
    tokio::spawn(connection);
    client
}

/// `n` JSON lines `{"<tag>":i}` with their newline.
pub fn lines(n: usize, tag: &str) -> Vec<String> {
    (0..n).map(|i| format!("{{\"{tag}\":{i}}}\n")).collect()
}

/// Polls `done` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The error documents (one JSON line each) under `folder/` of the `backup` bucket.
pub fn failure_docs(server: &Server, folder: &str) -> Vec<serde_json::Value> {
    objects(&server.bucket("backup"))
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{folder}/")))
        .flat_map(|(_, body)| {
            String::from_utf8(body)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<serde_json::Value>>()
        })
        .collect()
}

/// The decoded `rawData` of an error document.
pub fn raw_data(doc: &serde_json::Value) -> String {
    use base64::Engine as _;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(doc["rawData"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// `[egress]` letting destinations reach test servers on 127.0.0.1.
pub const EGRESS: &str =
    "[egress]\nallow_http_hosts = [\"127.0.0.1\"]\nallow_private = [\"127.0.0.0/8\"]\n";

/// The `S3Configuration` of destination tests: bucket `backup`, prefix `all/`, uncompressed.
pub fn backup_bucket() -> aws_sdk_firehose::types::S3DestinationConfiguration {
    aws_sdk_firehose::types::S3DestinationConfiguration::builder()
        .role_arn(ROLE)
        .bucket_arn("arn:aws:s3:::backup")
        .prefix("all/")
        .compression_format(CompressionFormat::Uncompressed)
        .build()
        .unwrap()
}

/// Bytes stored in the `backup` bucket.
pub fn backup_bytes(server: &Server) -> usize {
    objects(&server.bucket("backup"))
        .iter()
        .map(|(_, b)| b.len())
        .sum()
}

/// Asserts the `backup` bucket holds exactly `sent`, in order, under `all/` (an `AllData`-style
/// backup of every source record).
pub fn assert_backed_up(server: &Server, sent: &[String]) {
    let objs = objects(&server.bucket("backup"));
    assert!(objs.iter().all(|(k, _)| k.starts_with("all/")), "{objs:?}");
    let all: String = objs
        .iter()
        .map(|(_, b)| String::from_utf8(b.clone()).unwrap())
        .collect();
    assert_eq!(all, sent.concat());
}
