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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_streams: default_max_streams(),
            max_inflight_mib: default_inflight_mib(),
            max_disk_mib: default_disk_mib(),
            min_free_disk_mib: default_min_free_disk_mib(),
            retention_hours: default_retention_hours(),
            segment_mib: default_segment_mib(),
            max_active_partitions: default_max_active_partitions(),
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
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
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
            "#,
        )
        .unwrap();
        assert_eq!(cfg.listen.port(), 9999);
        assert!(cfg.buckets["lake"].allow_http);
        assert_eq!(cfg.engine().retention_ms, 3_600_000);
        assert!(
            toml::from_str::<Config>("lisen = \"x\"").is_err(),
            "unknown keys are rejected"
        );
    }
}
