//! The engine: the set of streams, each a [`StreamRuntime`] (spec, write-ahead log, admission
//! budgets, delivery task), persisted under `DATA_DIR/streams/<name>.stream/`:
//!
//! ```text
//! streams/<name>.stream/spec.json   the StreamSpec (written to a temp file, fsync'd, renamed)
//! streams/<name>.stream/log/        the stream's write-ahead log (lakehose-log)
//! ```
//!
//! Invariants: a stream is visible to the API only after its spec and log exist on disk; a put is
//! acknowledged only after `Log::append` returned (data fsync'd); delete stops delivery before the
//! folder is removed.
//!
//! Encryption at rest (`[encryption]` keyring, see `lakehose_crypto`):
//! - A stream whose `DeliveryStreamEncryption` status is `ENABLED` (or `ENABLING`) has its log
//!   opened encrypting new segments under a keyring key: the active one for `AWS_OWNED_CMK`,
//!   the one the `KeyARN`'s last path segment names for `CUSTOMER_MANAGED_CMK`
//!   (`arn:aws:kms:REGION:ACCOUNT:key/KEYID`). The log's context (bound into every record's
//!   authenticated data) is the stream's ARN and creation time.
//! - Start/Stop persist `ENABLING`/`DISABLING` first, switch the running log
//!   (`Log::set_encryption`: every record acknowledged afterwards is in the new mode), then
//!   persist `ENABLED`/`DISABLED`; an open finishes a transition a crash interrupted.
//! - A key that is not available fails closed: `InvalidKMSResourceException` and no change for
//!   API calls; a stream that cannot open its log (a key removed from the keyring while it
//!   holds undelivered encrypted records) stops the start of the engine.
//! - `KMSEncryptionConfig` on the destination (or backup) selects the sink that encrypts
//!   objects ([`lakehose_sinks::Buckets::sink_with_kms`]); for local buckets the key must be in
//!   the keyring, checked with the rest of the spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use lakehose_api::model::{EncryptionConfiguration, PutOutcome, RecordOutcome};
use lakehose_api::stream::StreamEncryption;
use lakehose_api::{ApiError, ErrorKind, SpecChange, StreamService, StreamSpec};
use lakehose_catalog::CatalogStore;
use lakehose_formats::convert::ConversionConfig;
use lakehose_log::{Fs, Keyring, Log, LogConfig, LogEncryption, StdFs};
use lakehose_process::{LambdaEndpoints, ProcessorChain};
use lakehose_sinks::{Buckets, SinkResult, StoreSink};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::admit::{ByteBudget, DiskSpace};
use crate::{Clock, Error, Result};

/// Limits and knobs of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Most streams (AWS: 5,000 per region).
    pub max_streams: usize,
    /// Bytes a stream may have accepted but not yet made durable.
    pub max_inflight_bytes: u64,
    /// Bytes of log a stream may keep on disk (undelivered data) before refusing more.
    pub max_disk_bytes: u64,
    /// How long undelivered records are kept while the destination fails (AWS: 24 h).
    pub retention_ms: i64,
    /// The clock of arrival stamps, buffering intervals and retention (simulated in tests).
    pub clock: Clock,
    /// Free bytes the data dir's filesystem keeps: below it, records are refused with
    /// `ServiceUnavailableException` (and delivery, which frees log space, goes on).
    pub min_free_disk_bytes: u64,
    /// Write-ahead log settings.
    pub log: LogConfig,
    /// The filesystem the logs write through: the real one, or a fault-injecting one in tests
    /// of fail-stop behaviour (`lakehose_log::testing::FaultFs`).
    pub log_fs: Arc<dyn Fs>,
    /// Where Lambda processors' functions are reached (`[lambdas]` in lakehose.toml).
    pub lambdas: LambdaEndpoints,
    /// Most distinct dynamic partitions in one buffer (AWS: 500); records beyond go to the
    /// error output.
    pub max_active_partitions: usize,
    /// Master keys for encryption at rest (`[encryption]` in lakehose.toml): stream logs after
    /// `StartDeliveryStreamEncryption`, objects of local buckets with `KMSEncryptionConfig`.
    /// `None`: such requests fail with `InvalidKMSResourceException`.
    pub keyring: Option<Arc<Keyring>>,
    /// Where HTTP endpoint destinations may connect (`[egress]` in lakehose.toml).
    pub egress: lakehose_sinks::egress::EgressPolicy,
    /// OpenSearch / Elasticsearch `DomainARN` -> cluster URL (`[opensearch_domains]`).
    pub opensearch_domains: std::collections::BTreeMap<String, String>,
    /// Redshift `ClusterJDBCURL` -> PostgreSQL connection string (`[redshift_clusters]`).
    pub redshift_clusters: std::collections::BTreeMap<String, String>,
    /// Caps Splunk's `HECAcknowledgmentTimeoutInSeconds` (whose minimum is 180 s), for tests
    /// of acknowledgement timeouts (`[limits] splunk_ack_timeout_cap_seconds`). `None`: the
    /// configured timeout as is.
    pub splunk_ack_timeout_cap: Option<std::time::Duration>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_streams: 5_000,
            max_inflight_bytes: 256 * 1024 * 1024,
            max_disk_bytes: 16 * 1024 * 1024 * 1024,
            retention_ms: 24 * 3600 * 1000,
            clock: Clock::System,
            min_free_disk_bytes: 64 * 1024 * 1024,
            log: LogConfig::default(),
            log_fs: Arc::new(StdFs),
            lambdas: LambdaEndpoints::default(),
            max_active_partitions: 500,
            keyring: None,
            egress: Default::default(),
            opensearch_domains: Default::default(),
            redshift_clusters: Default::default(),
            splunk_ack_timeout_cap: None,
        }
    }
}

/// Flushes remembered for queries' exclusions (see `StreamRuntime::announced`): a query would
/// have to list a table while more flushes than this happen in one stream to miss one.
const ANNOUNCED_FLUSHES: usize = 1024;

/// Counters of one stream, for tests, the CLI and the console.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Records acknowledged.
    pub incoming_records: AtomicU64,
    /// Records refused by admission.
    pub throttled_records: AtomicU64,
    /// Records delivered to the destination.
    pub delivered_records: AtomicU64,
    /// Bytes delivered (before compression).
    pub delivered_bytes: AtomicU64,
    /// Records dropped after the retention period.
    pub expired_records: AtomicU64,
}

impl StreamStats {
    pub(crate) fn delivered(&self, records: u64, bytes: u64) {
        self.delivered_records.fetch_add(records, Ordering::Relaxed);
        self.delivered_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn expired(&self, records: u64) {
        self.expired_records.fetch_add(records, Ordering::Relaxed);
    }
}

/// What a spec needs at run time, derived (and validated) with it.
pub(crate) struct Derived {
    chain: ProcessorChain,
    conversion: Option<ConversionConfig>,
    /// `KMSEncryptionConfig.AWSKMSKeyARN` of the destination, and of the backup destination.
    kms: Option<String>,
    backup_kms: Option<String>,
}

/// The `AWSKMSKeyARN` of a `KMSEncryptionConfig`, if set.
fn kms_arn(e: Option<&EncryptionConfiguration>) -> Option<String> {
    e.and_then(|e| e.kms_encryption_config.as_ref())
        .and_then(|k| k.get("AWSKMSKeyARN"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// Whether the stream's log writes encrypted segments: `ENABLED`, or `ENABLING` (a start that
/// a crash interrupted, finished on open).
fn log_encrypted(e: &StreamEncryption) -> bool {
    matches!(e.status.as_str(), "ENABLED" | "ENABLING")
}

/// Whether a spec change changes what the log must write.
fn encryption_changed(before: &StreamEncryption, after: &StreamEncryption) -> bool {
    log_encrypted(before) != log_encrypted(after)
        || (log_encrypted(after)
            && (before.key_type != after.key_type || before.key_arn != after.key_arn))
}

fn kms_error(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::InvalidKmsResource, message)
}

/// One running stream.
pub struct StreamRuntime {
    spec: RwLock<StreamSpec>,
    /// The processors and the format conversion the spec describes (derived with it).
    derived: RwLock<Derived>,
    catalog: Arc<dyn CatalogStore>,
    pub(crate) log: Log,
    inflight: Arc<ByteBudget>,
    buckets: Arc<Buckets>,
    config: EngineConfig,
    /// Counters.
    pub stats: StreamStats,
    oldest_undelivered_ms: AtomicI64,
    shutdown: watch::Sender<bool>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Recent flushes, announced before their first object is written: (first sequence
    /// number, `s3://bucket/key` of each data object), newest last, at most
    /// [`ANNOUNCED_FLUSHES`]. A query holding the records from sequence `c` on
    /// ([`crate::fresh`]) skips the objects of every announced flush starting at or after `c`
    /// — including flushes announced after it took its records. Commits take this lock too, so
    /// a snapshot's reader opens before the segments under it can be reclaimed.
    announced: std::sync::Mutex<std::collections::VecDeque<(u64, Vec<String>)>>,
    /// The HTTP endpoint client (made at first use, with the engine's egress policy).
    http_client: std::sync::OnceLock<Arc<lakehose_sinks::http::HttpEndpointClient>>,
    /// The OpenSearch / Elasticsearch bulk client (made at first use, like `http_client`).
    opensearch_client: std::sync::OnceLock<Arc<lakehose_sinks::opensearch::BulkClient>>,
    /// The Splunk HEC client (made at first use, with the engine's egress policy).
    splunk_client: std::sync::OnceLock<Arc<lakehose_sinks::splunk::HecClient>>,
    /// The newest error documents written (bounded), for the console.
    pub(crate) recent_errors: crate::recent::RecentErrors,
}

impl StreamRuntime {
    /// The stream's write-ahead log, for readers that keep their own position (streaming SQL
    /// applications). Such a reader pins the records it still needs with
    /// [`Log::set_hold`]; delivery reclaims nothing at or above a hold.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// A snapshot of the stream's spec.
    pub fn spec(&self) -> StreamSpec {
        self.spec.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn chain(&self) -> ProcessorChain {
        self.derived
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .chain
            .clone()
    }

    pub(crate) fn conversion(&self) -> Option<ConversionConfig> {
        self.derived
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .conversion
            .clone()
    }

    pub(crate) fn catalog(&self) -> Arc<dyn CatalogStore> {
        self.catalog.clone()
    }

    pub(crate) fn http_client(&self) -> Arc<lakehose_sinks::http::HttpEndpointClient> {
        self.http_client
            .get_or_init(|| {
                Arc::new(lakehose_sinks::http::HttpEndpointClient::new(
                    self.config.egress.clone(),
                ))
            })
            .clone()
    }

    pub(crate) fn splunk_client(&self) -> Arc<lakehose_sinks::splunk::HecClient> {
        self.splunk_client
            .get_or_init(|| {
                Arc::new(lakehose_sinks::splunk::HecClient::new(
                    self.config.egress.clone(),
                ))
            })
            .clone()
    }

    pub(crate) fn opensearch_client(&self) -> Arc<lakehose_sinks::opensearch::BulkClient> {
        self.opensearch_client
            .get_or_init(|| {
                Arc::new(lakehose_sinks::opensearch::BulkClient::new(
                    self.config.egress.clone(),
                ))
            })
            .clone()
    }

    /// The engine's settings.
    pub(crate) fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub(crate) fn max_active_partitions(&self) -> usize {
        self.config.max_active_partitions
    }

    /// The extension of data objects: `FileExtension`, else `.parquet`/`.orc` when converting,
    /// else the compression's.
    pub(crate) fn data_extension(&self) -> String {
        let spec = self.spec();
        match (&spec.destination.file_extension, self.conversion()) {
            (Some(ext), _) => ext.clone(),
            (None, Some(c)) => c.extension().to_string(),
            (None, None) => spec.file_extension(),
        }
    }

    /// The sink of the backup bucket (with the backup destination's KMS key, if any).
    pub(crate) fn sink_for(&self, bucket: &str) -> SinkResult<Arc<StoreSink>> {
        let kms = self
            .derived
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .backup_kms
            .clone();
        self.buckets.sink_with_kms(bucket, kms.as_deref())
    }

    /// The sink of the destination bucket (with its KMS key, if any).
    pub(crate) fn sink(&self) -> SinkResult<Arc<StoreSink>> {
        let kms = self
            .derived
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .kms
            .clone();
        self.buckets.sink_with_kms(
            self.spec.read().unwrap_or_else(|e| e.into_inner()).bucket(),
            kms.as_deref(),
        )
    }

    pub(crate) fn time_zone(&self) -> chrono_tz::Tz {
        let spec = self.spec.read().unwrap_or_else(|e| e.into_inner());
        spec.destination
            .custom_time_zone
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|s| s.parse().ok())
            .unwrap_or(chrono_tz::UTC)
    }

    pub(crate) fn retention_ms(&self) -> i64 {
        self.config.retention_ms
    }

    /// Now, by the engine's [`Clock`].
    pub(crate) fn now_ms(&self) -> i64 {
        self.config.clock.now_ms()
    }

    /// Records the arrival time of the oldest record read but not yet delivered (`None`: none).
    pub(crate) fn set_freshness(&self, oldest: Option<i64>) {
        self.oldest_undelivered_ms
            .store(oldest.unwrap_or(0), Ordering::Relaxed);
        self.publish_freshness();
    }

    /// Sets the `DeliveryToS3.DataFreshness` gauge to the current age of the oldest undelivered
    /// record (the engine's ticker calls this every second, so the gauge keeps growing while a
    /// delivery is stuck in retries).
    fn publish_freshness(&self) {
        metrics::gauge!("DeliveryToS3.DataFreshness", "stream" => self.spec().name)
            .set(self.data_freshness_s());
    }

    /// Age in seconds of the oldest record read but not yet delivered (0 when none).
    pub fn data_freshness_s(&self) -> f64 {
        let oldest = self.oldest_undelivered_ms.load(Ordering::Relaxed);
        if oldest == 0 {
            0.0
        } else {
            (self.now_ms() - oldest) as f64 / 1000.0
        }
    }

    /// Announces the data objects of `flush`, whose records start at `start`, before any is
    /// written (see `announced`).
    pub(crate) fn begin_delivery(&self, start: u64, flush: &crate::flush::Flush) {
        let bucket = self.spec().bucket().to_string();
        let urls = flush
            .outputs
            .iter()
            .filter(|o| o.kind == crate::flush::OutputKind::Data)
            .map(|o| format!("s3://{bucket}/{}", o.key))
            .collect();
        let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        if announced.len() >= ANNOUNCED_FLUSHES {
            announced.pop_front();
        }
        announced.push_back((start, urls));
    }

    /// The newest `limit` error documents the stream wrote (code and message), newest first.
    pub fn recent_errors(&self, limit: usize) -> Vec<crate::recent::ErrorSummary> {
        self.recent_errors.newest(limit)
    }

    /// The newest `limit` acknowledged records still in the log (delivered or not), oldest
    /// first. Retries when a commit reclaims a segment under the reader.
    pub async fn recent_records(&self, limit: usize) -> Result<Vec<lakehose_log::LogRecord>> {
        let mut attempt = 0;
        loop {
            let end = self.log.durable().borrow().next_seq;
            let start = end
                .saturating_sub(limit as u64)
                .max(self.log.oldest_retained_seq());
            let read = match self.log.reader(start.min(end)) {
                Ok(mut reader) => tokio::task::spawn_blocking(move || {
                    let mut records = Vec::new();
                    while records.len() < limit {
                        match reader.next()? {
                            Some(r) if r.seq < end => records.push(r),
                            _ => break,
                        }
                    }
                    Ok::<_, Error>(records)
                })
                .await
                .map_err(|e| Error::Internal(e.to_string()))?,
                Err(e) => Err(e.into()),
            };
            match read {
                Ok(records) => return Ok(records),
                Err(e) if attempt < 3 => {
                    tracing::debug!(error = %e, "recent records moved while read; retrying");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Commits the log up to `end` (a delivered flush).
    pub(crate) fn commit_delivery(&self, end: u64) -> Result<()> {
        let _announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        self.log
            .checkpoint(end.max(self.log.last_checkpoint().committed), &[])?;
        Ok(())
    }

    /// A reader at the committed position, and that position.
    pub(crate) fn delivery_snapshot(&self) -> Result<(lakehose_log::LogReader, u64)> {
        let _announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        let committed = self.log.last_checkpoint().committed;
        Ok((self.log.reader(committed)?, committed))
    }

    /// Whether `url` is a data object of a flush announced with records from `from` on.
    pub(crate) fn announced_since(&self, from: u64, url: &str) -> bool {
        self.announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|(start, urls)| *start >= from && urls.iter().any(|u| u == url))
    }

    async fn stop(&self) {
        let _ = self.shutdown.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.log.close();
    }
}

/// All streams of one Lakehose node. Implements the Firehose API's [`StreamService`].
pub struct Engine {
    root: PathBuf,
    catalog: Arc<dyn CatalogStore>,
    buckets: Arc<Buckets>,
    config: EngineConfig,
    /// Free space on the data dir's filesystem: records are refused below the reserve.
    disk: DiskSpace,
    streams: RwLock<BTreeMap<String, Arc<StreamRuntime>>>,
    /// Serialises control-plane changes (create, delete, modify).
    control: Mutex<()>,
}

fn stream_dir(root: &Path, name: &str) -> PathBuf {
    root.join(format!("{name}.stream"))
}

/// Writes `bytes` to `path` atomically and durably (temp file, fsync, rename, fsync folder).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Says what opening a stream's log found: a log line and the `LogRecovery.*` gauges (so a
/// restart that had to truncate or skip anything is visible in `/metrics`, not only in logs).
fn report_recovery(stream: &str, r: &lakehose_log::Recovery, took: std::time::Duration) {
    let undelivered = r.next_seq.saturating_sub(r.committed);
    let damaged = r.torn_tail_bytes > 0 || r.corrupt_records > 0 || r.corrupt_segments > 0;
    tracing::info!(
        stream,
        records = r.records,
        bytes = r.bytes,
        segments = r.segments,
        undelivered,
        reclaimed_segments = r.reclaimed_segments,
        encrypted_segments = r.encrypted_segments,
        committed = r.committed,
        next_seq = r.next_seq,
        took_ms = took.as_millis() as u64,
        "stream log recovered"
    );
    if damaged {
        tracing::warn!(
            stream,
            torn_tail_bytes = r.torn_tail_bytes,
            corrupt_records = r.corrupt_records,
            corrupt_segments = r.corrupt_segments,
            "the stream's log was damaged: torn data was truncated, corrupt records skipped"
        );
    }
    let s = stream.to_string();
    metrics::gauge!("LogRecovery.Records", "stream" => s.clone()).set(r.records as f64);
    metrics::gauge!("LogRecovery.Bytes", "stream" => s.clone()).set(r.bytes as f64);
    metrics::gauge!("LogRecovery.UndeliveredRecords", "stream" => s.clone())
        .set(undelivered as f64);
    metrics::gauge!("LogRecovery.TornTailBytes", "stream" => s.clone())
        .set(r.torn_tail_bytes as f64);
    metrics::gauge!("LogRecovery.CorruptRecords", "stream" => s.clone())
        .set(r.corrupt_records as f64);
    metrics::gauge!("LogRecovery.CorruptSegments", "stream" => s.clone())
        .set(r.corrupt_segments as f64);
    metrics::gauge!("LogRecovery.ReclaimedSegments", "stream" => s.clone())
        .set(r.reclaimed_segments as f64);
    metrics::gauge!("LogRecovery.EncryptedSegments", "stream" => s.clone())
        .set(r.encrypted_segments as f64);
    metrics::gauge!("LogRecovery.Milliseconds", "stream" => s).set(took.as_secs_f64() * 1e3);
}

fn api_error(e: Error) -> ApiError {
    match e {
        Error::Log(lakehose_log::Error::Poisoned(reason)) => ApiError::unavailable(format!(
            "The stream cannot accept records: its write-ahead log failed ({reason})."
        )),
        // The write or fsync of this very request failed: the records are not acknowledged and
        // the log is now poisoned (fail-stop, see `lakehose_log`).
        Error::Log(e @ lakehose_log::Error::Io { .. }) => {
            tracing::error!(error = %e, "the write-ahead log failed; the stream refuses records until restarted");
            ApiError::unavailable(format!(
                "The stream cannot accept records: its write-ahead log failed ({e})."
            ))
        }
        Error::Log(lakehose_log::Error::Closed) => {
            ApiError::new(ErrorKind::ResourceNotFound, "The stream was deleted.")
        }
        Error::Encryption(message) => kms_error(message),
        Error::Log(e @ lakehose_log::Error::Encryption { .. }) => kms_error(e.to_string()),
        other => ApiError::internal(other),
    }
}

impl Engine {
    /// Opens every stream under `data_dir/streams`, recovering their logs and starting delivery.
    pub async fn open(
        data_dir: &Path,
        buckets: Buckets,
        catalog: Arc<dyn CatalogStore>,
        config: EngineConfig,
    ) -> Result<Arc<Self>> {
        let root = data_dir.join("streams");
        std::fs::create_dir_all(&root)?;
        let engine = Arc::new(Self {
            root: root.clone(),
            catalog,
            buckets: Arc::new(buckets),
            disk: DiskSpace::new(root.clone(), config.min_free_disk_bytes),
            config,
            streams: RwLock::default(),
            control: Mutex::new(()),
        });
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "stream") && p.join("spec.json").is_file()
            })
            .collect();
        dirs.sort();
        for dir in dirs {
            let spec: StreamSpec = serde_json::from_slice(&std::fs::read(dir.join("spec.json"))?)?;
            let rt = engine.start_stream(spec, &dir)?;
            engine.finish_encryption_change(&rt, &dir)?;
            engine.insert(rt);
        }
        let weak = Arc::downgrade(&engine);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(engine) = weak.upgrade() else { return };
                let all = engine.all_streams();
                for rt in all {
                    rt.publish_freshness();
                }
            }
        });
        Ok(engine)
    }

    /// The keyring key that wraps the data keys of the stream's log segments (`None`: the log
    /// writes plaintext): the active key for `AWS_OWNED_CMK`, the key the `KeyARN` names for
    /// `CUSTOMER_MANAGED_CMK`. `InvalidKMSResourceException` when that key is not available.
    fn stream_master_key(&self, e: &StreamEncryption) -> lakehose_api::Result<Option<String>> {
        if !log_encrypted(e) {
            return Ok(None);
        }
        let Some(keyring) = &self.config.keyring else {
            return Err(kms_error(
                "No KMS key is available: encryption at rest needs a keyring ([encryption] \
                 keyring_file in lakehose.toml, or the LAKEHOSE_MASTER_KEY environment variable).",
            ));
        };
        match e.key_type.as_deref() {
            Some("CUSTOMER_MANAGED_CMK") => {
                let arn = e.key_arn.as_deref().unwrap_or_default();
                let id = lakehose_crypto::key_id_from_arn(arn).ok_or_else(|| {
                    kms_error(format!(
                        "KeyARN '{arn}' names no key (arn:aws:kms:<region>:<account>:key/<key id>)."
                    ))
                })?;
                if !keyring.contains(id) {
                    return Err(kms_error(format!(
                        "KMS key '{arn}' is not accessible: the keyring has no key '{id}'."
                    )));
                }
                Ok(Some(id.to_string()))
            }
            _ => Ok(Some(keyring.active_id().to_string())),
        }
    }

    /// The log settings of a stream: the engine's, with its encryption.
    fn log_config(&self, spec: &StreamSpec) -> lakehose_api::Result<LogConfig> {
        let write_key = self.stream_master_key(&spec.encryption)?;
        Ok(LogConfig {
            encryption: self.config.keyring.clone().map(|keyring| LogEncryption {
                keyring,
                write_key,
                context: format!("{}#{}", spec.arn, spec.created_ms).into_bytes(),
            }),
            ..self.config.log.clone()
        })
    }

    /// Finishes an `ENABLING`/`DISABLING` that a crash interrupted (the log was opened in the
    /// target mode).
    fn finish_encryption_change(&self, rt: &StreamRuntime, dir: &Path) -> Result<()> {
        let mut spec = rt.spec();
        let done = match spec.encryption.status.as_str() {
            "ENABLING" => "ENABLED",
            "DISABLING" => "DISABLED",
            _ => return Ok(()),
        };
        spec.encryption.status = done.into();
        write_atomic(&dir.join("spec.json"), &serde_json::to_vec_pretty(&spec)?)?;
        tracing::info!(stream = %spec.name, status = done, "finished an interrupted encryption change");
        *rt.spec.write().unwrap_or_else(|e| e.into_inner()) = spec;
        Ok(())
    }

    fn insert(&self, rt: Arc<StreamRuntime>) {
        let name = rt.spec().name;
        self.streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, rt);
    }

    /// Derives what a spec needs at run time: its processor chain and conversion settings.
    /// Errors are the user's (`InvalidArgumentException`).
    fn derive(&self, spec: &StreamSpec) -> lakehose_api::Result<Derived> {
        if let Some(tz) = spec
            .destination
            .custom_time_zone
            .as_deref()
            .filter(|s| !s.is_empty())
            && tz.parse::<chrono_tz::Tz>().is_err()
        {
            return Err(ApiError::invalid(format!(
                "CustomTimeZone '{tz}' is not a known time zone."
            )));
        }
        if let Some(url) = spec
            .http
            .as_ref()
            .and_then(|h| h.endpoint_configuration.as_ref())
            .and_then(|e| e.url.as_deref())
        {
            // Literal addresses and the scheme now; names are resolved (and pinned) at
            // every delivery attempt.
            self.config
                .egress
                .check_syntax(url)
                .map_err(|e| ApiError::invalid(format!("EndpointConfiguration.Url: {e}")))?;
        }
        // Each destination checks what only the engine knows (egress policy, lakehose.toml
        // mappings, COPY options).
        crate::splunk::check(&self.config, spec)?;
        crate::opensearch::check(&self.config, spec)?;
        crate::redshift::check(&self.config, spec)?;
        let processing = spec
            .destination
            .processing_configuration
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(ApiError::internal)?;
        let chain = ProcessorChain::from_config(
            processing.as_ref(),
            spec.dynamic_partitioning(),
            &self.config.lambdas,
            &spec.arn,
            &spec.region,
        )
        .map_err(|e| ApiError::invalid(e.0))?;
        let conversion = match &spec.destination.data_format_conversion_configuration {
            Some(v) => {
                let c =
                    ConversionConfig::from_json(v).map_err(|e| ApiError::invalid(e.to_string()))?;
                c.enabled.then_some(c)
            }
            None => None,
        };
        let kms = kms_arn(spec.destination.encryption_configuration.as_ref());
        if let Some(arn) = &kms
            && let Some(problem) = self.buckets.kms_problem(spec.bucket(), arn)
        {
            return Err(kms_error(problem));
        }
        let backup = spec.destination.s3_backup_configuration.as_ref();
        let backup_kms = backup.and_then(|b| kms_arn(b.encryption_configuration.as_ref()));
        if let (Some(arn), Some(b)) = (&backup_kms, backup) {
            let bucket = lakehose_api::stream::bucket_name(b.bucket_arn.as_deref().unwrap_or(""))?;
            if let Some(problem) = self.buckets.kms_problem(bucket, arn) {
                return Err(kms_error(problem));
            }
        }
        Ok(Derived {
            chain,
            conversion,
            kms,
            backup_kms,
        })
    }

    fn start_stream(&self, spec: StreamSpec, dir: &Path) -> Result<Arc<StreamRuntime>> {
        let derived = self.derive(&spec);
        // Fail closed: a stream whose encryption key is not available is not started (and its
        // log not opened, so nothing is written in plaintext).
        let log_config = self
            .log_config(&spec)
            .map_err(|e| Error::Encryption(format!("stream {}: {}", spec.name, e.message)))?;
        let opened = std::time::Instant::now();
        let (log, recovery) =
            Log::open_with_fs(&dir.join("log"), log_config, self.config.log_fs.clone())?;
        report_recovery(&spec.name, &recovery, opened.elapsed());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (derived, startable) = match derived {
            Ok(d) => (d, true),
            Err(e) => {
                tracing::error!(stream = %spec.name, error = %e.message,
                    "the stream's configuration cannot run here; its data stays in the log until it is fixed");
                (
                    Derived {
                        chain: ProcessorChain::identity(),
                        conversion: None,
                        kms: None,
                        backup_kms: None,
                    },
                    false,
                )
            }
        };
        let rt = Arc::new(StreamRuntime {
            spec: RwLock::new(spec),
            derived: RwLock::new(derived),
            catalog: self.catalog.clone(),
            log,
            inflight: ByteBudget::new(self.config.max_inflight_bytes),
            buckets: self.buckets.clone(),
            config: self.config.clone(),
            stats: StreamStats::default(),
            oldest_undelivered_ms: AtomicI64::new(0),
            shutdown,
            task: std::sync::Mutex::new(None),
            announced: std::sync::Mutex::default(),
            http_client: std::sync::OnceLock::new(),
            opensearch_client: std::sync::OnceLock::new(),
            splunk_client: std::sync::OnceLock::new(),
            recent_errors: Default::default(),
        });
        if startable {
            let task = tokio::spawn(crate::delivery::run(rt.clone(), shutdown_rx));
            *rt.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        }
        Ok(rt)
    }

    /// Every running stream.
    pub fn all_streams(&self) -> Vec<Arc<StreamRuntime>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The running stream `name`.
    pub fn runtime(&self, name: &str) -> Option<Arc<StreamRuntime>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The bucket resolver.
    pub fn buckets(&self) -> &Arc<Buckets> {
        &self.buckets
    }

    /// Stops every delivery loop (data stays in the logs) and closes the logs.
    pub async fn shutdown(&self) {
        let all = self.all_streams();
        for rt in all {
            rt.stop().await;
        }
    }
}

#[async_trait]
impl StreamService for Engine {
    async fn create_stream(&self, spec: StreamSpec) -> lakehose_api::Result<()> {
        let _guard = self.control.lock().await;
        if self.runtime(&spec.name).is_some() {
            return Err(ApiError::in_use(format!(
                "Firehose {} under account {} already exists with a different configuration.",
                spec.name,
                lakehose_api::stream::ACCOUNT_ID
            )));
        }
        if self.streams.read().unwrap_or_else(|e| e.into_inner()).len() >= self.config.max_streams {
            return Err(ApiError::new(
                ErrorKind::LimitExceeded,
                format!(
                    "You have already reached the limit of {} delivery streams.",
                    self.config.max_streams
                ),
            ));
        }
        self.derive(&spec)?;
        // Fails (InvalidKMSResourceException) before anything is created.
        self.stream_master_key(&spec.encryption)?;
        let dir = stream_dir(&self.root, &spec.name);
        if dir.exists() {
            // Left over from a delete that crashed half-way: its data belonged to a deleted stream.
            std::fs::remove_dir_all(&dir).map_err(ApiError::internal)?;
        }
        std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
        let bytes = serde_json::to_vec_pretty(&spec).map_err(ApiError::internal)?;
        let rt = self.start_stream(spec, &dir).map_err(api_error)?;
        if let Err(e) = write_atomic(&dir.join("spec.json"), &bytes) {
            // Not created after all: stop what was started and leave nothing behind.
            rt.stop().await;
            let _ = std::fs::remove_dir_all(&dir);
            return Err(ApiError::internal(e));
        }
        self.insert(rt);
        Ok(())
    }

    async fn delete_stream(&self, name: &str) -> lakehose_api::Result<()> {
        let _guard = self.control.lock().await;
        let rt = self
            .streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| ApiError::stream_not_found(name))?;
        let dir = stream_dir(&self.root, name);
        // The spec goes first, so a crash mid-delete never resurrects the stream.
        std::fs::remove_file(dir.join("spec.json")).map_err(ApiError::internal)?;
        rt.stop().await;
        std::fs::remove_dir_all(&dir).map_err(ApiError::internal)?;
        Ok(())
    }

    fn stream(&self, name: &str) -> Option<StreamSpec> {
        self.runtime(name).map(|rt| rt.spec())
    }

    fn stream_names(&self) -> Vec<String> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    async fn modify_stream(
        &self,
        name: &str,
        change: SpecChange<'_>,
    ) -> lakehose_api::Result<StreamSpec> {
        let _guard = self.control.lock().await;
        let rt = self
            .runtime(name)
            .ok_or_else(|| ApiError::stream_not_found(name))?;
        let before = rt.spec();
        let mut next = before.clone();
        change(&mut next)?;
        let derived = self.derive(&next)?;
        // An encryption change: the key must be available (else nothing changes), and the
        // transitional status is persisted before the log switches, so a crash in between is
        // finished by the next open.
        let switch = if encryption_changed(&before.encryption, &next.encryption) {
            let key = self.stream_master_key(&next.encryption)?;
            next.encryption.status = if key.is_some() {
                "ENABLING"
            } else {
                "DISABLING"
            }
            .into();
            Some(key)
        } else {
            None
        };
        let path = stream_dir(&self.root, name).join("spec.json");
        let persist = |spec: &StreamSpec| -> lakehose_api::Result<()> {
            let bytes = serde_json::to_vec_pretty(spec).map_err(ApiError::internal)?;
            write_atomic(&path, &bytes).map_err(ApiError::internal)?;
            *rt.spec.write().unwrap_or_else(|e| e.into_inner()) = spec.clone();
            Ok(())
        };
        persist(&next)?;
        *rt.derived.write().unwrap_or_else(|e| e.into_inner()) = derived;
        if let Some(key) = switch {
            let result = rt.log.set_encryption(key.as_deref()).await;
            let enabling = key.is_some();
            next.encryption.status = match (&result, enabling) {
                (Ok(()), true) => "ENABLED",
                (Ok(()), false) => "DISABLED",
                (Err(_), true) => "ENABLING_FAILED",
                (Err(_), false) => "DISABLING_FAILED",
            }
            .into();
            persist(&next)?;
            match result {
                Ok(()) => {
                    tracing::info!(stream = name, status = %next.encryption.status,
                        master_key_id = key.as_deref().unwrap_or(""), "stream encryption changed");
                    metrics::gauge!("Encryption.Enabled", "stream" => name.to_string())
                        .set(if enabling { 1.0 } else { 0.0 });
                }
                Err(e) => {
                    tracing::error!(stream = name, error = %e, "switching the stream's log encryption failed");
                    return Err(api_error(e.into()));
                }
            }
        }
        Ok(next)
    }

    async fn put_records(
        &self,
        name: &str,
        records: Vec<Bytes>,
    ) -> lakehose_api::Result<PutOutcome> {
        let rt = self
            .runtime(name)
            .ok_or_else(|| ApiError::stream_not_found(name))?;
        if let Some(reason) = rt.log.poisoned() {
            return Err(ApiError::unavailable(format!(
                "The stream cannot accept records: its write-ahead log failed ({reason})."
            )));
        }
        let total = records.len();
        let sizes: Vec<usize> = records.iter().map(Bytes::len).collect();
        let refuse_all = if rt.log.disk_bytes() > self.config.max_disk_bytes {
            Some("Slow down: the stream holds its maximum of undelivered data.")
        } else if self.disk.is_low() {
            Some("Slow down: the data dir's disk is full.")
        } else {
            None
        };
        let (admitted, reservation) = match refuse_all {
            Some(_) => (0, rt.inflight.reserve_prefix(&[]).1),
            None => rt.inflight.reserve_prefix(&sizes),
        };
        let throttled = total - admitted;
        let mut outcomes = Vec::with_capacity(total);
        // Whether the acknowledged records were written encrypted (`Encrypted` in the answer).
        let mut encrypted = false;
        if admitted > 0 {
            let mut records = records;
            records.truncate(admitted);
            let bytes: usize = sizes[..admitted].iter().sum();
            let range = rt.log.append(records, rt.now_ms()).await.map_err(|e| {
                if rt.log.poisoned().is_some() {
                    metrics::gauge!("WriteAheadLog.Failed", "stream" => name.to_string()).set(1.0);
                }
                api_error(e.into())
            })?;
            drop(reservation);
            // Read fields under the lock rather than cloning the whole spec per request.
            let (incarnation, encrypted_now) = {
                let spec = rt.spec.read().unwrap_or_else(|e| e.into_inner());
                (spec.created_ms, spec.encryption.status == "ENABLED")
            };
            encrypted = encrypted_now;
            outcomes.extend(range.map(|seq| RecordOutcome::Accepted(record_id(incarnation, seq))));
            rt.stats
                .incoming_records
                .fetch_add(admitted as u64, Ordering::Relaxed);
            metrics::counter!("IncomingRecords", "stream" => name.to_string())
                .increment(admitted as u64);
            metrics::counter!("IncomingBytes", "stream" => name.to_string())
                .increment(bytes as u64);
        }
        metrics::counter!("IncomingPutRequests", "stream" => name.to_string()).increment(1);
        if throttled > 0 {
            rt.stats
                .throttled_records
                .fetch_add(throttled as u64, Ordering::Relaxed);
            metrics::counter!("ThrottledRecords", "stream" => name.to_string())
                .increment(throttled as u64);
            let message = refuse_all.unwrap_or("Slow down.");
            outcomes.extend((0..throttled).map(|_| RecordOutcome::Failed {
                code: "ServiceUnavailableException",
                message: message.into(),
            }));
        }
        Ok(PutOutcome {
            records: outcomes,
            encrypted,
        })
    }
}

/// A record id: the stream's incarnation (creation time) and the record's log sequence number,
/// unique for the life of the data dir.
pub fn record_id(incarnation: i64, seq: u64) -> String {
    format!("{incarnation:016x}{seq:016x}")
}

/// Parses a [`record_id`] back into `(incarnation, seq)`.
pub fn parse_record_id(id: &str) -> Option<(i64, u64)> {
    if id.len() != 32 {
        return None;
    }
    let incarnation = i64::from_str_radix(&id[..16], 16).ok()?;
    let seq = u64::from_str_radix(&id[16..], 16).ok()?;
    Some((incarnation, seq))
}
