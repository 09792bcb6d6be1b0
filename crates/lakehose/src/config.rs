//! `lakehose.toml` and the command-line flags that override it. One struct serves both:
//! flags win over the file, the file over the defaults.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use lakehose_sinks::S3BucketConfig;
use serde::Deserialize;

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:4573`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Folder for logs, specs and local buckets (default `./lakehose-data`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Region used in ARNs when a request does not name one.
    #[serde(default = "default_region")]
    pub region: String,
    /// Buckets mapped to S3-compatible endpoints; others are folders under `data_dir/buckets/`.
    #[serde(default)]
    pub buckets: HashMap<String, S3BucketConfig>,
    /// Limits and durability knobs.
    #[serde(default)]
    pub limits: Limits,
    /// Lambda processors: function ARN (or name) -> endpoint serving the Lambda Invoke API,
    /// e.g. `"arn:aws:lambda:us-east-1:123456789012:function:xform" = "http://127.0.0.1:9001"`.
    #[serde(default)]
    pub lambdas: lakehose_process::LambdaEndpoints,
    /// HTTP timeouts and limits of the listener.
    #[serde(default)]
    pub server: Server,
    /// TLS for the listener (off unless both files are named).
    #[serde(default)]
    pub tls: Tls,
    /// `[auth]`: access keys (SigV4) and what each may do; the `/metrics` bearer token.
    /// Authentication is on when a key is configured (see `lakehose_auth::config`).
    #[serde(default)]
    pub auth: lakehose_auth::AuthConfig,
    /// `[encryption]`: the keyring of master keys for encryption at rest.
    #[serde(default)]
    pub encryption: Encryption,
    /// `[audit]`: the audit log of control-plane calls.
    #[serde(default)]
    pub audit: Audit,
    /// `[egress]`: where HTTP endpoint destinations may connect (the SSRF guard,
    /// `lakehose_sinks::egress`).
    #[serde(default)]
    pub egress: lakehose_sinks::egress::EgressPolicy,
    /// `[opensearch_domains]`: an OpenSearch / Elasticsearch `DomainARN` -> the cluster's URL,
    /// e.g. `"arn:aws:es:us-east-1:123456789012:domain/logs" = "http://127.0.0.1:9200"`.
    #[serde(default)]
    pub opensearch_domains: std::collections::BTreeMap<String, String>,
    /// `[redshift_clusters]`: a Redshift `ClusterJDBCURL` -> the PostgreSQL server loads go to,
    /// as a libpq connection string (`host=127.0.0.1 port=5432 dbname=dev`) or URL
    /// (`postgresql://127.0.0.1:5432/dev`); the stream's `Username`/`Password` sign in unless
    /// the string names a user.
    #[serde(default)]
    pub redshift_clusters: std::collections::BTreeMap<String, String>,
    /// `[console]`: the web console's settings.
    #[serde(default)]
    pub console: Console,
    /// `[[streams]]`: delivery streams declared here, each a `CreateDeliveryStream` request in
    /// its AWS shape. A declared stream that does not exist is created at start; one that
    /// exists is left as it is (changes made through the API persist).
    #[serde(default)]
    pub streams: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// `[console]`: the web console's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Console {
    /// How often the metric history is sampled, in milliseconds (default 10 000; the charts'
    /// steps are multiples of it). Lower values are meant for tests; at least 50.
    #[serde(default = "default_console_sample_ms")]
    pub sample_interval_ms: u64,
}

impl Default for Console {
    fn default() -> Self {
        Self {
            sample_interval_ms: default_console_sample_ms(),
        }
    }
}

fn default_console_sample_ms() -> u64 {
    10_000
}

impl Console {
    /// The sampling interval (at least 50 ms).
    pub fn sample_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.sample_interval_ms.max(50))
    }
}

/// `[audit]`: where the audit log goes (see `lakehose_api::audit`). On by default, as
/// CloudTrail's management events are.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// Whether control-plane calls are recorded.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The audit file (default `DATA_DIR/audit/audit.log`); rotated files get `.1`, `.2`, ...
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Size in MiB at which the file is rotated.
    #[serde(default = "default_audit_file_mib")]
    pub max_file_mib: u64,
    /// Files kept, the current one included.
    #[serde(default = "default_audit_files")]
    pub max_files: usize,
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            max_file_mib: default_audit_file_mib(),
            max_files: default_audit_files(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_audit_file_mib() -> u64 {
    64
}
fn default_audit_files() -> usize {
    8
}

impl Audit {
    /// The open audit log, or `None` when disabled.
    pub fn open(
        &self,
        data_dir: &Path,
    ) -> anyhow::Result<Option<std::sync::Arc<lakehose_api::audit::AuditLog>>> {
        if !self.enabled {
            return Ok(None);
        }
        anyhow::ensure!(
            self.max_file_mib >= 1 && self.max_files >= 1,
            "audit.max_file_mib and audit.max_files must be at least 1"
        );
        let path = self
            .path
            .clone()
            .unwrap_or_else(|| data_dir.join("audit").join("audit.log"));
        let log = lakehose_api::audit::AuditLog::open(lakehose_api::audit::AuditConfig {
            path: path.clone(),
            max_file_bytes: self.max_file_mib << 20,
            max_files: self.max_files,
        })
        .with_context(|| format!("opening the audit log {}", path.display()))?;
        Ok(Some(std::sync::Arc::new(log)))
    }
}

/// `[encryption]`: where the master keys of encryption at rest come from (see
/// docs/SECURITY.md). Without a keyring, `StartDeliveryStreamEncryption` and
/// `KMSEncryptionConfig` on local buckets fail with `InvalidKMSResourceException`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// A keyring file: one `KEYID = "BASE64"` line per 32-byte key (`lakehose keygen` prints
    /// one); the last key, or the one named by `active = "KEYID"`, wraps new data keys, the
    /// others only unwrap. Alternatively the `LAKEHOSE_MASTER_KEY` environment variable holds
    /// `KEYID:BASE64[,KEYID:BASE64...]` (the last is active); not both.
    pub keyring_file: Option<PathBuf>,
}

impl Encryption {
    /// The keyring: from `keyring_file`, else from `LAKEHOSE_MASTER_KEY`, else none.
    pub fn keyring(&self) -> anyhow::Result<Option<std::sync::Arc<lakehose_crypto::Keyring>>> {
        let env = std::env::var(lakehose_crypto::MASTER_KEY_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty());
        let keyring = match (&self.keyring_file, env) {
            (Some(_), Some(_)) => anyhow::bail!(
                "both encryption.keyring_file and {} are set: use one",
                lakehose_crypto::MASTER_KEY_ENV
            ),
            (Some(path), None) => lakehose_crypto::Keyring::load(path)?,
            (None, Some(value)) => lakehose_crypto::Keyring::from_env_value(&value)?,
            (None, None) => return Ok(None),
        };
        Ok(Some(std::sync::Arc::new(keyring)))
    }
}

/// `[tls]`: serve HTTPS with this certificate chain and key (PEM), reloaded on SIGHUP. Both
/// or neither; `--tls-cert`/`--tls-key` replace them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Certificate chain: the server certificate first, then any intermediates.
    pub cert: Option<PathBuf>,
    /// Private key of the certificate: PKCS#8, RSA or SEC1 PEM.
    pub key: Option<PathBuf>,
}

impl Tls {
    /// The files when TLS is on, `None` when off; an error when only one is named.
    pub fn files(&self) -> anyhow::Result<Option<crate::tls::TlsFiles>> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Ok(Some(crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => {
                anyhow::bail!("tls.cert is set but tls.key is not: set both or neither")
            }
            (None, Some(_)) => {
                anyhow::bail!("tls.key is set but tls.cert is not: set both or neither")
            }
        }
    }
}

/// `[server]`: timeouts and limits of the HTTP listener (slow-client and flood protection).
/// Request bodies of the AWS API (`POST /`) are capped at
/// [`lakehose_api::handler::MAX_BODY_BYTES`] whatever these say.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Seconds a client has to send a whole HTTP/1 request head; hyper also starts this timer
    /// when a kept-alive connection goes idle, so it bounds the wait for the next request too.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: f64,
    /// Seconds a connection (HTTP/1 or HTTP/2, including one that has not sent a byte yet) may
    /// stay open with no request in flight before it is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: f64,
    /// Seconds a client has to send a whole request body, counted from its request head;
    /// a late body is answered `408 RequestTimeoutException`.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout_secs: f64,
    /// Largest request head in bytes (HTTP/1 read buffer and HTTP/2 header list); larger heads
    /// are answered 431 (HTTP/1) or reset (HTTP/2). At least 8192.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Concurrent streams per HTTP/2 connection.
    #[serde(default = "default_h2_max_concurrent_streams")]
    pub h2_max_concurrent_streams: u32,
    /// Open connections at once; further clients wait (in the kernel's accept queue), and
    /// connections idle for a second or more are closed to make room for them. Each
    /// connection holds up to about `2 * max_header_bytes` of buffers.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: default_header_read_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            body_read_timeout_secs: default_body_read_timeout(),
            max_header_bytes: default_max_header_bytes(),
            h2_max_concurrent_streams: default_h2_max_concurrent_streams(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_header_read_timeout() -> f64 {
    10.0
}
fn default_idle_timeout() -> f64 {
    60.0
}
fn default_body_read_timeout() -> f64 {
    30.0
}
fn default_max_header_bytes() -> usize {
    64 * 1024
}
fn default_max_connections() -> usize {
    1024
}
fn default_h2_max_concurrent_streams() -> u32 {
    256
}

impl Server {
    /// Checks the ranges (positive finite timeouts up to a day, header buffer of at least
    /// 8 KiB, at least one HTTP/2 stream).
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, secs) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("body_read_timeout_secs", self.body_read_timeout_secs),
        ] {
            anyhow::ensure!(
                secs.is_finite() && secs > 0.0 && secs <= 86_400.0,
                "server.{name} must be in (0, 86400], got {secs}"
            );
        }
        anyhow::ensure!(
            self.max_header_bytes >= 8192,
            "server.max_header_bytes must be at least 8192, got {}",
            self.max_header_bytes
        );
        anyhow::ensure!(
            self.max_connections >= 1,
            "server.max_connections must be at least 1"
        );
        anyhow::ensure!(
            self.h2_max_concurrent_streams >= 1,
            "server.h2_max_concurrent_streams must be at least 1"
        );
        Ok(())
    }
    /// `header_read_timeout_secs` as a duration.
    pub fn header_read_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.header_read_timeout_secs)
    }
    /// `idle_timeout_secs` as a duration.
    pub fn idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.idle_timeout_secs)
    }
    /// `body_read_timeout_secs` as a duration.
    pub fn body_read_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.body_read_timeout_secs)
    }
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most delivery streams.
    #[serde(default = "default_max_streams")]
    pub max_streams: usize,
    /// Per stream: MiB accepted but not yet fsync'd before records are refused.
    #[serde(default = "default_inflight_mib")]
    pub max_inflight_mib: u64,
    /// Per stream: MiB of undelivered log on disk before records are refused.
    #[serde(default = "default_disk_mib")]
    pub max_disk_mib: u64,
    /// MiB of API request bodies held at once (received or being processed) across all
    /// streams; requests beyond it are answered `ServiceUnavailableException` (their bodies read
    /// and discarded, never held or decoded). It bounds
    /// memory and, since decoding cost follows size, the queue of work: the default is about
    /// 50 ms of decoding on two cores of a release build.
    #[serde(default = "default_max_request_mib")]
    pub max_request_mib: u64,
    /// MiB the data dir's filesystem keeps free: below it records are refused with
    /// `ServiceUnavailableException` until space is freed (0 turns the check off).
    #[serde(default = "default_min_free_disk_mib")]
    pub min_free_disk_mib: u64,
    /// Hours undelivered records are kept while the destination fails.
    #[serde(default = "default_retention_hours")]
    pub retention_hours: f64,
    /// Log segment size in MiB.
    #[serde(default = "default_segment_mib")]
    pub segment_mib: u64,
    /// Per stream: distinct dynamic partitions in one buffer (AWS default 500).
    #[serde(default = "default_max_active_partitions")]
    pub max_active_partitions: usize,
    /// How long a jq program may run on one request of up to 1,000 records in the sandbox
    /// before those records fail with `Lakehose.JqResourceLimit`.
    #[serde(default = "default_jq_timeout_ms")]
    pub jq_timeout_ms: u64,
    /// The address-space limit of each jq sandbox worker process.
    #[serde(default = "default_jq_memory_mib")]
    pub jq_memory_mib: u64,
    /// Seconds that cap every Splunk stream's `HECAcknowledgmentTimeoutInSeconds` (whose
    /// minimum is 180): for tests of acknowledgement timeouts. Unset: no cap.
    #[serde(default)]
    pub splunk_ack_timeout_cap_seconds: Option<f64>,
}

fn default_jq_timeout_ms() -> u64 {
    10_000
}

fn default_jq_memory_mib() -> u64 {
    1024
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_streams: default_max_streams(),
            max_inflight_mib: default_inflight_mib(),
            max_disk_mib: default_disk_mib(),
            max_request_mib: default_max_request_mib(),
            min_free_disk_mib: default_min_free_disk_mib(),
            retention_hours: default_retention_hours(),
            segment_mib: default_segment_mib(),
            max_active_partitions: default_max_active_partitions(),
            splunk_ack_timeout_cap_seconds: None,
            jq_timeout_ms: default_jq_timeout_ms(),
            jq_memory_mib: default_jq_memory_mib(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4573))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("lakehose-data")
}
fn default_region() -> String {
    "us-east-1".into()
}
fn default_max_streams() -> usize {
    5_000
}
fn default_inflight_mib() -> u64 {
    256
}
fn default_disk_mib() -> u64 {
    16 * 1024
}
fn default_max_request_mib() -> u64 {
    16
}
fn default_min_free_disk_mib() -> u64 {
    64
}
fn default_retention_hours() -> f64 {
    24.0
}
fn default_segment_mib() -> u64 {
    64
}
fn default_max_active_partitions() -> usize {
    500
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            data_dir: default_data_dir(),
            region: default_region(),
            buckets: HashMap::new(),
            limits: Limits::default(),
            lambdas: Default::default(),
            server: Server::default(),
            tls: Tls::default(),
            auth: Default::default(),
            encryption: Encryption::default(),
            audit: Audit::default(),
            egress: Default::default(),
            opensearch_domains: Default::default(),
            redshift_clusters: Default::default(),
            console: Console::default(),
            streams: Vec::new(),
        }
    }
}

impl Config {
    /// Reads `path`, or `./lakehose.toml` when it exists, or the defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let path = match path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("lakehose.toml")).filter(|p| p.is_file()),
        };
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let config: Self =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        config
            .server
            .validate()
            .with_context(|| format!("checking {}", path.display()))?;
        config
            .tls
            .files()
            .with_context(|| format!("checking {}", path.display()))?;
        config
            .egress
            .validate()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("checking {}", path.display()))?;
        Ok(config)
    }

    /// The engine settings these limits describe.
    pub fn engine(&self) -> lakehose_pipeline::EngineConfig {
        let mib = 1024 * 1024;
        lakehose_pipeline::EngineConfig {
            max_streams: self.limits.max_streams,
            max_inflight_bytes: self.limits.max_inflight_mib * mib,
            max_disk_bytes: self.limits.max_disk_mib * mib,
            retention_ms: (self.limits.retention_hours * 3600.0 * 1000.0) as i64,
            min_free_disk_bytes: self.limits.min_free_disk_mib * 1024 * 1024,
            log: lakehose_log::LogConfig {
                segment_bytes: self.limits.segment_mib * mib,
                ..Default::default()
            },
            lambdas: self.lambdas.clone(),
            max_active_partitions: self.limits.max_active_partitions,
            egress: self.egress.clone(),
            opensearch_domains: self.opensearch_domains.clone(),
            redshift_clusters: self.redshift_clusters.clone(),
            splunk_ack_timeout_cap: self
                .limits
                .splunk_ack_timeout_cap_seconds
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(std::time::Duration::from_secs_f64),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file() {
        let cfg: Config = toml::from_str(
            r#"
            listen = "127.0.0.1:9999"
            data_dir = "/tmp/x"
            [buckets.lake]
            endpoint = "http://127.0.0.1:9000"
            allow_http = true
            [limits]
            retention_hours = 1
            [server]
            header_read_timeout_secs = 2.5
            idle_timeout_secs = 5
            "#,
        )
        .unwrap();
        assert_eq!(
            cfg.server.header_read_timeout(),
            std::time::Duration::from_millis(2500)
        );
        assert_eq!(cfg.server.body_read_timeout().as_secs(), 30);
        cfg.server.validate().unwrap();
        let zero: Config = toml::from_str("[server]\nidle_timeout_secs = 0").unwrap();
        assert!(zero.server.validate().is_err());
        assert_eq!(cfg.listen.port(), 9999);
        assert!(cfg.buckets["lake"].allow_http);
        assert_eq!(cfg.engine().retention_ms, 3_600_000);
        assert!(
            toml::from_str::<Config>("lisen = \"x\"").is_err(),
            "unknown keys are rejected"
        );
    }

    #[test]
    fn tls_needs_both_files_or_neither() {
        let on: Config = toml::from_str("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"").unwrap();
        let files = on.tls.files().unwrap().unwrap();
        assert_eq!(files.cert, PathBuf::from("c.pem"));
        assert_eq!(files.key, PathBuf::from("k.pem"));
        assert!(Config::default().tls.files().unwrap().is_none());
        let half: Config = toml::from_str("[tls]\ncert = \"c.pem\"").unwrap();
        let err = half.tls.files().unwrap_err().to_string();
        assert!(err.contains("tls.key is not"), "{err}");
        assert!(toml::from_str::<Config>("[tls]\ncrt = \"c.pem\"").is_err());
    }

    #[test]
    fn encryption_keyring_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring");
        let lines = [
            lakehose_crypto::generate_key_line("old").unwrap(),
            lakehose_crypto::generate_key_line("new").unwrap(),
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let cfg: Config = toml::from_str(&format!(
            "[encryption]\nkeyring_file = \"{}\"",
            path.display()
        ))
        .unwrap();
        assert_eq!(cfg.encryption.keyring_file.as_deref(), Some(path.as_path()));
        if std::env::var_os(lakehose_crypto::MASTER_KEY_ENV).is_none() {
            let keyring = cfg.encryption.keyring().unwrap().unwrap();
            assert_eq!(keyring.active_id(), "new");
            assert!(keyring.contains("old"));
            let missing: Config =
                toml::from_str("[encryption]\nkeyring_file = \"/nonexistent/keyring\"").unwrap();
            assert!(missing.encryption.keyring().is_err());
            assert!(Config::default().encryption.keyring().unwrap().is_none());
        }
        assert!(toml::from_str::<Config>("[encryption]\nkeyring = \"x\"").is_err());
    }

    #[test]
    fn egress_section_reaches_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lakehose.toml");
        std::fs::write(
            &path,
            "[egress]\nallow_http_hosts = [\"127.0.0.1\"]\nallow_private = [\"127.0.0.0/8\"]\n",
        )
        .unwrap();
        let cfg = Config::load(Some(&path)).unwrap();
        let engine = cfg.engine();
        assert_eq!(engine.egress.allow_http_hosts, vec!["127.0.0.1"]);
        assert!(engine.egress.check_syntax("http://127.0.0.1:9/").is_ok());
        assert!(
            Config::default()
                .engine()
                .egress
                .check_syntax("http://127.0.0.1:9/")
                .is_err()
        );
        std::fs::write(&path, "[egress]\nallow_private = [\"10.0.0.0/33\"]\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
        assert!(toml::from_str::<Config>("[egress]\nallow = []").is_err());
    }
}
