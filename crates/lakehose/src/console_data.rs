//! The console's view of the engine ([`lakehose_console::api::ConsoleData`]) and the sampler
//! that feeds its metric history.
//!
//! - The sampler renders the Prometheus registry `/metrics` serves every sampling interval
//!   (default 10 s; `[console] sample_interval_ms` in lakehose.toml, meant for tests) and
//!   records the streams' samples ([`lakehose_console::history`]); streams that no longer exist
//!   are dropped from the history at the next tick.
//! - Errors come from each stream's bounded ring of recent error documents
//!   ([`lakehose_pipeline::recent`]), the tail from its write-ahead log (only records still
//!   retained there: the active segment and undelivered ones), objects from listing the
//!   stream's bucket under the literal start of its prefixes.
//!
//! Invariants: every answer is bounded by its limit; listing scans at most [`MAX_SCANNED`]
//! objects per prefix and keeps only the newest `limit` while scanning (no full listing held
//! in memory).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lakehose_api::stream::DestinationKind;
use lakehose_api::{ApiError, StreamSpec};
use lakehose_console::api::{
    ConsoleData, ErrorEntry, MetricSeries, ObjectEntry, Overview, StreamOverview, TailRecord,
};
use lakehose_console::history::{History, Range};
use lakehose_pipeline::{Engine, StreamRuntime};

/// Objects listed per prefix at most (the newest `limit` among them are answered).
pub const MAX_SCANNED: usize = 100_000;

/// The engine as the console sees it.
pub struct EngineConsole {
    engine: Arc<Engine>,
    history: Arc<History>,
}

impl EngineConsole {
    /// A view of `engine` whose metric history is sampled every `interval`.
    pub fn new(engine: Arc<Engine>, interval: Duration) -> Self {
        Self {
            engine,
            history: Arc::new(History::new(interval)),
        }
    }

    /// Starts the sampler: every interval, the registry `metrics` renders is recorded.
    pub fn start_sampler(&self, metrics: metrics_exporter_prometheus::PrometheusHandle) {
        let (engine, history) = (Arc::downgrade(&self.engine), self.history.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(history.interval());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                let live: Vec<String> = engine
                    .all_streams()
                    .iter()
                    .map(|rt| rt.spec().name)
                    .collect();
                drop(engine);
                let (metrics, history) = (metrics.clone(), history.clone());
                let recorded = tokio::task::spawn_blocking(move || {
                    let samples = lakehose_console::history::parse_prometheus(&metrics.render());
                    history.record(lakehose_pipeline::now_ms(), &samples, &live);
                })
                .await;
                if let Err(e) = recorded {
                    tracing::warn!(error = %e, "console metric sampling failed");
                }
            }
        });
    }

    fn runtime(&self, name: &str) -> Result<Arc<StreamRuntime>, ApiError> {
        self.engine
            .runtime(name)
            .ok_or_else(|| ApiError::stream_not_found(name))
    }
}

/// The destination kind as the console names it (the `DestinationKind` variant).
fn destination(kind: DestinationKind) -> &'static str {
    match kind {
        DestinationKind::S3 => "S3",
        DestinationKind::ExtendedS3 => "ExtendedS3",
        DestinationKind::HttpEndpoint => "HttpEndpoint",
        DestinationKind::Redshift => "Redshift",
        DestinationKind::AmazonOpenSearchService => "AmazonOpenSearchService",
        DestinationKind::Elasticsearch => "Elasticsearch",
        DestinationKind::Splunk => "Splunk",
    }
}

#[async_trait]
impl ConsoleData for EngineConsole {
    async fn overview(&self) -> Result<Overview, ApiError> {
        let streams = self
            .engine
            .all_streams()
            .iter()
            .map(|rt| {
                let spec = rt.spec();
                StreamOverview {
                    latest: self.history.latest(&spec.name),
                    name: spec.name,
                    status: "ACTIVE".into(),
                    destination: destination(spec.kind).into(),
                    created_ms: spec.created_ms,
                }
            })
            .collect();
        Ok(Overview {
            streams,
            metrics: self.history.metric_names(),
            interval_s: self.history.interval().as_secs_f64(),
        })
    }

    async fn metrics(&self, stream: &str, range: Range) -> Result<MetricSeries, ApiError> {
        self.runtime(stream)?;
        Ok(MetricSeries {
            stream: stream.to_string(),
            range: range.as_str().to_string(),
            step_s: self.history.step_s(range),
            // A stream created since the last tick has no history yet.
            points: self.history.series(stream, range).unwrap_or_default(),
        })
    }

    async fn errors(&self, stream: &str, limit: usize) -> Result<Vec<ErrorEntry>, ApiError> {
        let rt = self.runtime(stream)?;
        Ok(rt
            .recent_errors(limit)
            .into_iter()
            .map(|e| ErrorEntry {
                time_ms: e.time_ms,
                error_output_type: e.error_output_type,
                key: e.key,
                error_code: e.error_code,
                error_message: e.error_message,
            })
            .collect())
    }

    async fn tail(&self, stream: &str, limit: usize) -> Result<Vec<TailRecord>, ApiError> {
        let rt = self.runtime(stream)?;
        let records = rt.recent_records(limit).await.map_err(ApiError::internal)?;
        Ok(records
            .iter()
            .map(|r| TailRecord::new(r.seq, r.arrival_ms, &r.data))
            .collect())
    }

    async fn objects(&self, stream: &str, limit: usize) -> Result<Vec<ObjectEntry>, ApiError> {
        let spec = self.runtime(stream)?.spec();
        let plan = ListingPlan::of(&spec);
        // Newest `limit`, by (last modified, key): a min-heap of the best so far.
        let mut best: BinaryHeap<Reverse<(i64, String, u64, &'static str)>> = BinaryHeap::new();
        for (bucket, prefixes, backup) in &plan.listings {
            let store = match self.engine.buckets().sink(bucket) {
                Ok(sink) => sink.store(),
                Err(e) => {
                    tracing::debug!(bucket, error = %e, "console: bucket not available");
                    continue;
                }
            };
            for literal in prefixes {
                // List from the folder the literal is in, keeping keys that start with it.
                let folder = literal.rsplit_once('/').map_or("", |(dir, _)| dir);
                let path = (!folder.is_empty()).then(|| object_store::path::Path::from(folder));
                let mut listing = store.list(path.as_ref()).take(MAX_SCANNED);
                while let Some(meta) = listing.next().await {
                    let meta = match meta {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::debug!(bucket, error = %e, "console: listing failed");
                            break;
                        }
                    };
                    let key = meta.location.to_string();
                    if !key.starts_with(literal.as_str()) || !plan.belongs(&key) {
                        continue;
                    }
                    let kind = if *backup { "backup" } else { plan.kind(&key) };
                    let entry = (meta.last_modified.timestamp_millis(), key, meta.size, kind);
                    if best.len() < limit {
                        best.push(Reverse(entry));
                    } else if best.peek().is_some_and(|Reverse(worst)| entry > *worst) {
                        best.pop();
                        best.push(Reverse(entry));
                    }
                }
            }
        }
        let mut objects: Vec<ObjectEntry> = best
            .into_iter()
            .map(|Reverse((last_modified_ms, key, size, kind))| ObjectEntry {
                key,
                size,
                last_modified_ms,
                kind,
            })
            .collect();
        objects.sort_by(|a, b| (b.last_modified_ms, &b.key).cmp(&(a.last_modified_ms, &a.key)));
        Ok(objects)
    }
}

/// Where a stream's objects are and how to tell them apart.
struct ListingPlan {
    /// (bucket, literal key prefixes, whether everything there is backup).
    listings: Vec<(String, Vec<String>, bool)>,
    /// Object file names start with `<stream>-` (the key suffix of every object).
    file_prefix: String,
    data_literal: String,
    error_literal: String,
    /// Non-error objects in the stream's bucket are source-record backups (destinations
    /// outside the object store, except Redshift whose bucket stages the data).
    bucket_is_backup: bool,
}

/// The literal text a prefix template starts with (before its first expression).
fn leading_literal(t: &lakehose_api::prefix::PrefixTemplate) -> String {
    match t.segments.first() {
        Some(lakehose_api::prefix::Segment::Literal(text)) => text.clone(),
        _ => String::new(),
    }
}

/// `prefixes` without those another one already covers.
fn covering(mut prefixes: Vec<String>) -> Vec<String> {
    prefixes.sort();
    prefixes.dedup();
    let all = prefixes.clone();
    prefixes.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q.as_str())));
    prefixes
}

impl ListingPlan {
    fn of(spec: &StreamSpec) -> Self {
        let (prefix, error_prefix) = spec.prefixes();
        let data_literal = leading_literal(&prefix);
        let error_literal = match &error_prefix {
            Some(t) => leading_literal(t),
            // Remote destinations write errors at the bucket's root by default.
            None if spec.is_remote() => String::new(),
            None => prefix.literal_text(),
        };
        let mut listings = vec![(
            spec.bucket().to_string(),
            covering(vec![data_literal.clone(), error_literal.clone()]),
            false,
        )];
        if let Some(backup) = &spec.destination.s3_backup_configuration
            && spec.destination.s3_backup_mode.as_deref() == Some("Enabled")
            && let Ok(bucket) =
                lakehose_api::stream::bucket_name(backup.bucket_arn.as_deref().unwrap_or(""))
        {
            let literal =
                lakehose_api::prefix::PrefixTemplate::parse(backup.prefix.as_deref().unwrap_or(""))
                    .map(|t| leading_literal(&t))
                    .unwrap_or_default();
            listings.push((bucket.to_string(), vec![literal], true));
        }
        Self {
            listings,
            file_prefix: format!("{}-", spec.name),
            data_literal,
            error_literal,
            bucket_is_backup: spec.is_remote() && spec.kind != DestinationKind::Redshift,
        }
    }

    fn belongs(&self, key: &str) -> bool {
        key.rsplit('/')
            .next()
            .unwrap_or(key)
            .starts_with(&self.file_prefix)
    }

    fn kind(&self, key: &str) -> &'static str {
        let folders = key.rsplit_once('/').map_or("", |(dir, _)| dir);
        let under_error_prefix = !self.error_literal.is_empty()
            && key.starts_with(&self.error_literal)
            && (self.error_literal.len() > self.data_literal.len()
                || !key.starts_with(&self.data_literal));
        if folders.split('/').any(|f| f.ends_with("-failed")) || under_error_prefix {
            "error"
        } else if self.bucket_is_backup {
            "backup"
        } else {
            "data"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covering_prefixes() {
        assert_eq!(
            covering(vec!["a/".into(), "a/b/".into(), "c".into(), "a/".into()]),
            ["a/", "c"]
        );
        assert_eq!(covering(vec!["".into(), "errors/".into()]), [""]);
    }

    #[test]
    fn objects_are_classified() {
        let plan = ListingPlan {
            listings: Vec::new(),
            file_prefix: "s-".into(),
            data_literal: "data/".into(),
            error_literal: "errors/".into(),
            bucket_is_backup: false,
        };
        assert!(plan.belongs("data/2024/01/01/00/s-1-2024-01-01-00-00-00-x"));
        assert!(!plan.belongs("data/2024/01/01/00/other-1-2024"));
        assert_eq!(plan.kind("data/2024/s-1"), "data");
        assert_eq!(plan.kind("errors/2024/s-1"), "error");
        assert_eq!(plan.kind("data/processing-failed/2024/s-1"), "error");
        let remote = ListingPlan {
            bucket_is_backup: true,
            ..plan
        };
        assert_eq!(remote.kind("data/2024/s-1"), "backup");
        assert_eq!(remote.kind("http-endpoint-failed/2024/s-1"), "error");
    }
}
