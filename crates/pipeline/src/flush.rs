//! One flush: the objects a [`Plan`] produces from its records, and writing them.
//!
//! Invariants: building is deterministic — the same plan and records give the same objects
//! under the same keys (keys are seeded by the plan), so a flush replayed after a crash
//! overwrites what the interrupted one wrote. Every record of the plan ends in exactly one
//! place: the data object, or an error object under the error-output prefix.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use lakehose_api::stream::CompressionFormat;
use lakehose_formats::Codec;
use lakehose_log::LogRecord;
use lakehose_process::{
    InputRecord, KeyMap, OutputRecord, PartitionKeys, validate_partition_value,
};
use lakehose_sinks::keys::{KeyContext, error_object_key, object_key};
use lakehose_sinks::{ObjectSink, SinkError};
use tokio::sync::watch;

use crate::delivery::{Plan, backoff};
use crate::engine::StreamRuntime;
use crate::{Error, Result};

/// One object to write.
#[derive(Debug)]
pub(crate) struct Output {
    /// Object key in the stream's bucket.
    pub key: String,
    /// The object's bytes, in parts.
    pub parts: Vec<Bytes>,
    /// Records it holds (for metrics).
    pub records: u64,
    /// Bytes of the records it holds, before formatting.
    pub bytes: u64,
    /// What the object is (decides its bucket and its metrics).
    pub kind: OutputKind,
}

/// What an [`Output`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OutputKind {
    /// Delivered records, in the destination bucket.
    Data,
    /// Error documents, in the destination bucket under the error-output prefix.
    Error,
    /// Untransformed source records (`S3BackupMode: Enabled`), in the backup bucket.
    Backup(String),
    /// Source records of an HTTP endpoint stream with `S3BackupMode: AllData`, in its
    /// `S3Configuration` bucket (the stream's own bucket).
    AllDataBackup,
}

/// A record that could not be delivered as data and goes to the error output.
#[derive(Debug)]
pub(crate) struct ErrorRecord {
    /// Folder name for `!{firehose:error-output-type}`, e.g. `format-conversion-failed`.
    pub error_output_type: &'static str,
    /// The record's error document, one JSON line.
    pub document: String,
}

/// What a flush writes.
#[derive(Debug, Default)]
pub(crate) struct Flush {
    /// Objects: data, error output and backup (written concurrently; committed together).
    pub outputs: Vec<Output>,
    /// Catalog partitions (database, partition) the data objects belong to, registered after
    /// the objects are written.
    pub partitions: Vec<(String, String, lakehose_catalog::Partition)>,
}

pub(crate) fn codec(c: CompressionFormat) -> Codec {
    match c {
        CompressionFormat::Uncompressed => Codec::None,
        CompressionFormat::Gzip => Codec::Gzip,
        CompressionFormat::Zip => Codec::Zip,
        CompressionFormat::Snappy => Codec::Snappy,
        CompressionFormat::HadoopSnappy => Codec::HadoopSnappy,
    }
}

/// Compresses `parts` with `codec` on a blocking thread (no copy for uncompressed output).
pub(crate) async fn compress(codec: Codec, parts: Vec<Bytes>, key: &str) -> Result<Vec<Bytes>> {
    if codec == Codec::None {
        return Ok(parts);
    }
    let entry = key.rsplit('/').next().unwrap_or("records").to_string();
    let packed = tokio::task::spawn_blocking(move || {
        let slices: Vec<&[u8]> = parts.iter().map(|p| p.as_ref()).collect();
        lakehose_formats::compress(codec, &slices, &entry)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
    .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(vec![Bytes::from(packed)])
}

/// Records after processing, grouped by destination partition.
pub(crate) struct Group {
    /// `partitionKeyFromQuery` and `partitionKeyFromLambda` values (merged) of this group.
    pub keys: BTreeMap<String, String>,
    pub records: Vec<LogRecord>,
}

/// The data object key of `group` in a flush whose oldest record arrived at `oldest_ms`:
/// the plan's own key without dynamic partitioning, else the prefix evaluated with the
/// group's partition keys (an error when the prefix needs a key the group lacks).
pub(crate) fn group_key(
    rt: &StreamRuntime,
    plan_key: &str,
    seed: u64,
    oldest_ms: i64,
    group: &Group,
) -> std::result::Result<String, lakehose_sinks::keys::KeyError> {
    let spec = rt.spec();
    if group.keys.is_empty() && !spec.dynamic_partitioning() {
        return Ok(plan_key.to_string());
    }
    let (prefix, _) = spec.prefixes();
    let ctx = KeyContext {
        stream_name: &spec.name,
        stream_version: spec.version,
        oldest_arrival_ms: oldest_ms,
        time_zone: rt.time_zone(),
        seed: partition_seed(seed, &group.keys),
        error_output_type: None,
        partition_keys: &group.keys,
    };
    object_key(&prefix, &ctx, &rt.data_extension())
}

/// FNV-1a of the partition values, to seed each partition's key differently but stably.
fn partition_seed(seed: u64, keys: &BTreeMap<String, String>) -> u64 {
    let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
    for (k, v) in keys {
        for b in k.bytes().chain([0]).chain(v.bytes()).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A record that failed dynamic partitioning, as a `processing-failed` error document.
fn partitioning_failure(
    seq: u64,
    arrival_ms: i64,
    raw_data: Bytes,
    code: &str,
    message: String,
    ending_ms: i64,
) -> ErrorRecord {
    let failed = lakehose_process::FailedRecord {
        source_id: seq,
        arrival_ms,
        raw_data,
        error_output_type: lakehose_process::error_output::PROCESSING_FAILED,
        error_code: code.into(),
        error_message: message,
        attempts_made: 1,
        lambda_arn: None,
    };
    ErrorRecord {
        error_output_type: failed.error_output_type,
        document: failed.to_error_document(ending_ms),
    }
}

/// The data of the source record `seq` (`records` are in sequence order).
fn source_data(records: &[LogRecord], seq: u64) -> Option<Bytes> {
    let i = records.binary_search_by_key(&seq, |r| r.seq).ok()?;
    Some(records[i].data.clone())
}

/// Runs the stream's processors over `records`: outputs grouped by partition, failures as
/// error records. Dropped records simply leave the batch (counted in metrics when `count`;
/// a query's look at undelivered records counts nothing).
pub(crate) async fn process(
    rt: &StreamRuntime,
    records: &[LogRecord],
    errors: &mut Vec<ErrorRecord>,
    count: bool,
) -> Result<Vec<Group>> {
    let chain = rt.chain();
    let dynamic = rt.spec().dynamic_partitioning();
    if chain.is_identity() {
        return Ok(vec![Group {
            keys: BTreeMap::new(),
            records: records.to_vec(),
        }]);
    }
    let input: Vec<InputRecord> = records
        .iter()
        .map(|r| InputRecord {
            id: r.seq,
            arrival_ms: r.arrival_ms,
            data: r.data.clone(),
        })
        .collect();
    let processed = chain.process(&input).await;
    if count {
        let stream = rt.spec().name;
        metrics::counter!("SucceedProcessing.Records", "stream" => stream.clone())
            .increment(processed.records.len() as u64);
        metrics::counter!("DroppedProcessing.Records", "stream" => stream.clone())
            .increment(processed.dropped.len() as u64);
        metrics::counter!("FailedProcessing.Records", "stream" => stream.clone())
            .increment(processed.failed.len() as u64);
    }
    let ending = rt.now_ms();
    for failed in &processed.failed {
        errors.push(ErrorRecord {
            error_output_type: failed.error_output_type,
            document: failed.to_error_document(ending),
        });
    }
    let max_partitions = rt.max_active_partitions();
    let groups = group_records(
        processed.records,
        dynamic,
        max_partitions,
        |record, code, message| {
            // The record as it arrived (processors may have appended a delimiter).
            let raw = source_data(records, record.seq).unwrap_or(record.data);
            errors.push(partitioning_failure(
                record.seq,
                record.arrival_ms,
                raw,
                code,
                message,
                ending,
            ));
        },
    );
    Ok(groups)
}

/// The keys a record is grouped by: the query's, with the Lambda's added (the query's win
/// on a name both have). Shared, not copied, in the usual case of one source.
fn merged_keys(keys: PartitionKeys) -> KeyMap {
    let PartitionKeys {
        from_query,
        from_lambda,
    } = keys;
    if from_lambda.is_empty() {
        return from_query;
    }
    if from_query.is_empty() {
        return from_lambda;
    }
    let mut merged = from_lambda.into_map();
    merged.extend(from_query.iter().map(|(k, v)| (k.clone(), v.clone())));
    KeyMap::from(merged)
}

/// Groups processed records by partition keys (none without dynamic partitioning), in
/// record order within a group and key order between groups. A record whose keys are not a
/// safe object-key segment, or that would open a partition beyond `max_partitions`, goes to
/// `reject` with its error code and message instead.
///
/// Records with equal keys usually share one [`KeyMap`]: finding a record's group hashes
/// its few short values, and a group's owned map is made once.
fn group_records(
    processed: Vec<OutputRecord>,
    dynamic: bool,
    max_partitions: usize,
    mut reject: impl FnMut(LogRecord, &'static str, String),
) -> Vec<Group> {
    // Groups in the order they opened; `index` finds one by its keys.
    let mut groups: Vec<(KeyMap, Vec<LogRecord>)> = Vec::new();
    let mut index: HashMap<KeyMap, usize> = HashMap::new();
    for out in processed {
        let keys = if dynamic {
            merged_keys(out.partition_keys)
        } else {
            KeyMap::default()
        };
        let record = LogRecord {
            seq: out.source_id,
            arrival_ms: out.arrival_ms,
            data: out.data,
        };
        // An open group's keys were checked when it opened.
        if let Some(&g) = index.get(&keys) {
            groups[g].1.push(record);
            continue;
        }
        let reason = match keys
            .values()
            .find_map(|v| validate_partition_value(v).err())
        {
            None if groups.len() < max_partitions => {
                index.insert(keys.clone(), groups.len());
                groups.push((keys, vec![record]));
                continue;
            }
            None => (
                "DynamicPartitioning.ActivePartitionsLimitExceeded",
                format!(
                    "More than {max_partitions} active partitions in one buffer; raise the limit in lakehose.toml."
                ),
            ),
            Some(invalid) => ("DynamicPartitioning.InvalidPartitionKey", invalid),
        };
        reject(record, reason.0, reason.1);
    }
    drop(index);
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    groups
        .into_iter()
        .map(|(keys, records)| Group {
            keys: keys.into_map(),
            records,
        })
        .collect()
}

/// Builds the objects of `plan` from `records`: processing, partitioning, conversion or
/// compression, error output. Also returns the partitions to register after the write.
pub(crate) async fn build(
    rt: &Arc<StreamRuntime>,
    plan: &Plan,
    records: &[LogRecord],
) -> Result<Flush> {
    let spec = rt.spec();
    let mut flush = Flush::default();
    let mut errors = Vec::new();
    let groups = process(rt, records, &mut errors, true).await?;
    let conversion = rt.conversion();
    let prefix_text = spec.destination.prefix.clone().unwrap_or_default();
    let mut data = Vec::new();
    for group in groups {
        if group.records.is_empty() {
            continue;
        }
        let key = {
            match group_key(rt, &plan.key, plan.seed, plan.oldest_ms, &group) {
                Ok(key) => key,
                Err(e) => {
                    // A record without a key the prefix needs: to the error output.
                    let ending = rt.now_ms();
                    for r in &group.records {
                        errors.push(partitioning_failure(
                            r.seq,
                            r.arrival_ms,
                            r.data.clone(),
                            "DynamicPartitioning.MissingPartitionKey",
                            e.to_string(),
                            ending,
                        ));
                    }
                    continue;
                }
            }
        };
        let bytes: u64 = group.records.iter().map(|r| r.data.len() as u64).sum();
        match &conversion {
            Some(config) => {
                let outcome = crate::convert::convert_batch(
                    &rt.catalog(),
                    config,
                    &group.records,
                    spec.bucket(),
                    &prefix_text,
                    &spec.name,
                    &spec.region,
                )
                .await?;
                let failed = outcome.errors.len() as u64;
                metrics::counter!("SucceedConversion.Records", "stream" => spec.name.clone())
                    .increment(outcome.rows as u64);
                metrics::counter!("FailedConversion.Records", "stream" => spec.name.clone())
                    .increment(failed);
                errors.extend(outcome.errors);
                if outcome.rows > 0 {
                    if let Some((values, location)) =
                        crate::convert::partition_of(&outcome.table, spec.bucket(), &key)
                    {
                        flush.partitions.push((
                            config.database.to_ascii_lowercase(),
                            outcome.table.name.clone(),
                            outcome.table.partition_for(values, location),
                        ));
                    }
                    data.push(Output {
                        key,
                        parts: vec![Bytes::from(outcome.file)],
                        records: group.records.len() as u64 - failed,
                        bytes,
                        kind: OutputKind::Data,
                    });
                }
            }
            None => {
                let parts: Vec<Bytes> = group.records.iter().map(|r| r.data.clone()).collect();
                let body = compress(codec(plan.compression), parts, &key).await?;
                data.push(Output {
                    key,
                    parts: body,
                    records: group.records.len() as u64,
                    bytes,
                    kind: OutputKind::Data,
                });
            }
        }
    }
    flush.outputs = error_outputs(rt, plan, errors).await?;
    if let Some(backup) = backup_output(rt, plan, records).await? {
        flush.outputs.push(backup);
    }
    flush.outputs.extend(data);
    Ok(flush)
}

/// With `S3BackupMode: Enabled`, the source records as they arrived (before any processor)
/// go to the backup bucket under its own prefix and compression.
async fn backup_output(
    rt: &StreamRuntime,
    plan: &Plan,
    records: &[LogRecord],
) -> Result<Option<Output>> {
    let spec = rt.spec();
    let Some(backup) = spec.destination.s3_backup_configuration.as_ref() else {
        return Ok(None);
    };
    if spec.destination.s3_backup_mode.as_deref() != Some("Enabled") || records.is_empty() {
        return Ok(None);
    }
    let bucket =
        lakehose_api::stream::bucket_name(backup.bucket_arn.as_deref().unwrap_or_default())
            .map_err(|e| Error::Internal(e.message))?
            .to_string();
    let (prefix, _) = lakehose_api::prefix::validate_prefixes(
        backup.prefix.as_deref(),
        backup.error_output_prefix.as_deref(),
        false,
    )
    .map_err(|e| Error::Internal(e.to_string()))?;
    let compression = backup
        .compression_format
        .as_deref()
        .and_then(|c| CompressionFormat::parse(c).ok())
        .unwrap_or(CompressionFormat::Uncompressed);
    let no_keys = BTreeMap::new();
    let ctx = KeyContext {
        stream_name: &spec.name,
        stream_version: spec.version,
        oldest_arrival_ms: plan.oldest_ms,
        time_zone: rt.time_zone(),
        seed: plan.seed ^ 0xb4c0_0b4c_0b4c_0b4c,
        error_output_type: None,
        partition_keys: &no_keys,
    };
    let key = object_key(&prefix, &ctx, compression.extension())
        .map_err(|e| Error::Internal(format!("backup key: {e}")))?;
    let parts: Vec<Bytes> = records.iter().map(|r| r.data.clone()).collect();
    let bytes = parts.iter().map(|p| p.len() as u64).sum();
    let parts = compress(codec(compression), parts, &key).await?;
    Ok(Some(Output {
        key,
        parts,
        records: records.len() as u64,
        bytes,
        kind: OutputKind::Backup(bucket),
    }))
}

/// Groups error records by error-output type into one object per type, named by the stream's
/// error-output prefix, written with the stream's compression.
pub(crate) async fn error_outputs(
    rt: &StreamRuntime,
    plan: &Plan,
    errors: Vec<ErrorRecord>,
) -> Result<Vec<Output>> {
    let spec = rt.spec();
    let (mut prefix, error_prefix) = spec.prefixes();
    if spec.is_remote() {
        // Streams with a destination outside the object store: without an ErrorOutputPrefix,
        // errors go to
        // `<error-output-type>/YYYY/MM/dd/HH/` at the bucket's root, not under the Prefix.
        prefix = Default::default();
    }
    let mut by_type: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for e in errors {
        by_type
            .entry(e.error_output_type)
            .or_default()
            .push(e.document);
    }
    let no_keys = BTreeMap::new();
    let mut out = Vec::new();
    for (i, (error_type, docs)) in by_type.into_iter().enumerate() {
        let ctx = KeyContext {
            stream_name: &spec.name,
            stream_version: spec.version,
            oldest_arrival_ms: plan.oldest_ms,
            time_zone: rt.time_zone(),
            seed: plan.seed.wrapping_add(0x9e37_79b9 * (i as u64 + 1)),
            error_output_type: Some(error_type),
            partition_keys: &no_keys,
        };
        let ext = plan.compression_extension();
        let key = error_object_key(&prefix, error_prefix.as_ref(), &ctx, ext)
            .map_err(|e| Error::Internal(format!("error-output key: {e}")))?;
        let records = docs.len() as u64;
        rt.recent_errors.stage(&key, error_type, &docs);
        let mut text = String::with_capacity(docs.iter().map(|d| d.len() + 1).sum());
        for d in docs {
            text.push_str(&d);
            text.push('\n');
        }
        let bytes = text.len() as u64;
        let parts = compress(codec(plan.compression), vec![Bytes::from(text)], &key).await?;
        out.push(Output {
            key,
            parts,
            records,
            bytes,
            kind: OutputKind::Error,
        });
    }
    Ok(out)
}

/// Writes every output with retries (capped exponential backoff with jitter) until it is
/// stored or its records outlive the retention period. Returns `false` if shutdown interrupted.
pub(crate) async fn write(
    rt: &Arc<StreamRuntime>,
    plan: &Plan,
    flush: &Flush,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool> {
    let stream = rt.spec().name;
    // Objects are independent: write up to 16 at once (many partitions, slow stores).
    let writes: Vec<_> = flush
        .outputs
        .iter()
        .map(|output| Box::pin(write_one(rt, plan, output, &stream, shutdown.clone())))
        .collect();
    let results: Vec<bool> = futures::stream::iter(writes)
        .buffer_unordered(16)
        .collect()
        .await;
    if results.iter().any(|done| !done) {
        return Ok(false);
    }
    for (db, table, partition) in &flush.partitions {
        if let Err(e) = rt
            .catalog()
            .ensure_partition(db, table, partition.clone())
            .await
        {
            tracing::warn!(stream = %stream, database = %db, table = %table, error = %e.message(),
                "could not register the partition in the catalog");
        }
    }
    Ok(true)
}

/// Writes one object with retries until it is stored, or its records outlived the retention
/// period (counted). Returns `false` if shutdown interrupted.
async fn write_one(
    rt: &Arc<StreamRuntime>,
    plan: &Plan,
    output: &Output,
    stream: &str,
    mut shutdown: watch::Receiver<bool>,
) -> bool {
    let stream = stream.to_string();
    let mut attempt = 0u32;
    loop {
        let sink = match &output.kind {
            OutputKind::Backup(bucket) => rt.sink_for(bucket),
            _ => rt.sink(),
        };
        let result = match sink {
            Ok(sink) => sink.put(&output.key, output.parts.clone()).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                let s = stream.clone();
                metrics::counter!("DeliveryToS3.ObjectCount", "stream" => s.clone()).increment(1);
                metrics::counter!("DeliveryToS3.Success", "stream" => s.clone()).increment(1);
                match output.kind {
                    OutputKind::Error => {
                        metrics::counter!("DeliveryToS3.ErrorRecords", "stream" => s)
                            .increment(output.records);
                        rt.recent_errors.written(&output.key, rt.now_ms());
                    }
                    OutputKind::Backup(_) | OutputKind::AllDataBackup => {
                        metrics::counter!("BackupToS3.Records", "stream" => s.clone())
                            .increment(output.records);
                        metrics::counter!("BackupToS3.Bytes", "stream" => s)
                            .increment(output.bytes);
                    }
                    OutputKind::Data => {
                        metrics::counter!("DeliveryToS3.Records", "stream" => s.clone())
                            .increment(output.records);
                        metrics::counter!("DeliveryToS3.Bytes", "stream" => s)
                            .increment(output.bytes);
                        rt.stats.delivered(output.records, output.bytes);
                    }
                }
                tracing::debug!(stream = %stream, key = %output.key, records = output.records, "delivered");
                return true;
            }
            Err(e) => {
                metrics::counter!("DeliveryToS3.Failures", "stream" => stream.clone()).increment(1);
                rt.set_freshness(Some(plan.oldest_ms));
                // The batch is kept while its oldest record is younger than the retention
                // period; the last attempt is made when that period ends, not a backoff later.
                let expires_ms = plan.oldest_ms.saturating_add(rt.retention_ms());
                let left_ms = expires_ms - rt.now_ms();
                if left_ms <= 0 {
                    tracing::error!(stream = %stream, key = %output.key, records = output.records, error = %e,
                        "undelivered records outlived the retention period and are dropped");
                    metrics::counter!("DeliveryToS3.RecordsExpired", "stream" => stream.clone())
                        .increment(output.records);
                    rt.stats.expired(output.records);
                    return true;
                }
                let wait = backoff(attempt).min(Duration::from_millis(left_ms as u64));
                attempt += 1;
                log_failure(&stream, &output.key, attempt, &e, wait);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => { if *shutdown.borrow() { return false; } }
                }
            }
        }
    }
}

fn log_failure(stream: &str, key: &str, attempt: u32, e: &SinkError, wait: Duration) {
    if attempt <= 3 || attempt.is_power_of_two() {
        tracing::warn!(stream, key, attempt, retry_in_ms = wait.as_millis() as u64, error = %e,
            "delivery to the bucket failed; retrying");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> KeyMap {
        KeyMap::from(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    fn out(seq: u64, from_query: KeyMap, from_lambda: KeyMap) -> OutputRecord {
        OutputRecord {
            source_id: seq,
            arrival_ms: 1000 + seq as i64,
            data: Bytes::from(format!("r{seq}")),
            partition_keys: PartitionKeys {
                from_query,
                from_lambda,
            },
        }
    }

    /// (keys, seqs) of each group, and (seq, code) of each rejected record.
    type Grouped = (
        Vec<(BTreeMap<String, String>, Vec<u64>)>,
        Vec<(u64, String)>,
    );

    fn group(records: Vec<OutputRecord>, dynamic: bool, max: usize) -> Grouped {
        let mut rejected = Vec::new();
        let groups = group_records(records, dynamic, max, |r, code, _| {
            rejected.push((r.seq, code.to_string()))
        });
        let groups = groups
            .into_iter()
            .map(|g| (g.keys, g.records.iter().map(|r| r.seq).collect()))
            .collect();
        (groups, rejected)
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        keys(pairs).into_map()
    }

    #[test]
    fn groups_in_key_order_with_records_in_order() {
        let b = keys(&[("c", "b")]);
        let records = vec![
            out(1, b.clone(), KeyMap::default()),
            // Equal keys in a map of their own (not shared) join the same group.
            out(2, keys(&[("c", "a")]), KeyMap::default()),
            out(3, b.clone(), KeyMap::default()),
            out(4, keys(&[("c", "a")]), KeyMap::default()),
            out(5, keys(&[("c", "b")]), KeyMap::default()),
        ];
        let (groups, rejected) = group(records, true, 10);
        assert!(rejected.is_empty());
        assert_eq!(
            groups,
            vec![
                (map(&[("c", "a")]), vec![2, 4]),
                (map(&[("c", "b")]), vec![1, 3, 5]),
            ]
        );
    }

    #[test]
    fn without_dynamic_partitioning_one_group_without_keys() {
        let records = vec![
            out(1, keys(&[("c", "a")]), KeyMap::default()),
            out(2, KeyMap::default(), keys(&[("c", "b")])),
        ];
        let (groups, rejected) = group(records, false, 1);
        assert!(rejected.is_empty());
        assert_eq!(groups, vec![(BTreeMap::new(), vec![1, 2])]);
    }

    #[test]
    fn lambda_and_query_keys_merge_with_the_query_winning() {
        let records = vec![
            out(1, keys(&[("a", "q")]), keys(&[("a", "l"), ("b", "l")])),
            out(2, KeyMap::default(), keys(&[("a", "q"), ("b", "l")])),
            out(3, keys(&[("a", "q"), ("b", "l")]), KeyMap::default()),
            out(4, KeyMap::default(), KeyMap::default()),
        ];
        let (groups, rejected) = group(records, true, 10);
        assert!(rejected.is_empty());
        assert_eq!(
            groups,
            vec![
                (BTreeMap::new(), vec![4]),
                (map(&[("a", "q"), ("b", "l")]), vec![1, 2, 3]),
            ]
        );
    }

    #[test]
    fn unsafe_keys_and_partitions_beyond_the_limit_are_rejected() {
        let records = vec![
            out(1, keys(&[("c", "x")]), KeyMap::default()),
            out(2, keys(&[("c", "a/b")]), KeyMap::default()),
            out(3, keys(&[("c", "y")]), KeyMap::default()),
            out(4, keys(&[("c", "z")]), KeyMap::default()),
            // Open groups still take records once the limit is reached.
            out(5, keys(&[("c", "y")]), KeyMap::default()),
            out(6, keys(&[("c", "..")]), KeyMap::default()),
            out(7, keys(&[("c", "x")]), KeyMap::default()),
        ];
        let (groups, rejected) = group(records, true, 2);
        assert_eq!(
            groups,
            vec![
                (map(&[("c", "x")]), vec![1, 7]),
                (map(&[("c", "y")]), vec![3, 5]),
            ]
        );
        assert_eq!(
            rejected,
            vec![
                (2, "DynamicPartitioning.InvalidPartitionKey".to_string()),
                (
                    4,
                    "DynamicPartitioning.ActivePartitionsLimitExceeded".to_string()
                ),
                (6, "DynamicPartitioning.InvalidPartitionKey".to_string()),
            ]
        );
    }
}
