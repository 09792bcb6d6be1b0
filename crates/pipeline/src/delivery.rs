//! The delivery loop of one stream: log -> buffer -> object -> commit.
//!
//! ```text
//!   log (durable records) --reader--> Batch --(size | interval | 0 s)--> Plan --checkpoint-->
//!   put object (retries, backoff) --> checkpoint(committed = plan.end) --> segments reclaimed
//! ```
//!
//! Invariants:
//! - The loop reads only durable records, in sequence order, starting at the committed position.
//! - A batch is flushed when its bytes reach `SizeInMBs`, when its oldest record is
//!   `IntervalInSeconds` old, or (interval 0) as soon as no more durable records are waiting.
//! - Before an object is written, its [`Plan`] (sequence range, key, codec) is stored in the log's
//!   checkpoint. After a crash the same plan is replayed first: the same records under the same
//!   key, so the object is overwritten, never duplicated. Keys depend only on the plan (the
//!   timestamp is the oldest record's arrival time, the random parts are seeded by the range).
//! - The committed position moves past a range only after the sink confirmed the object, or
//!   after the range outlived the retention period (counted in `DeliveryToS3.RecordsExpired`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lakehose_api::stream::{CompressionFormat, DestinationKind};
use lakehose_log::{LogReader, LogRecord};
use lakehose_sinks::keys::{KeyContext, object_key};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::engine::StreamRuntime;
use crate::{Error, Result};

/// The flush being delivered, stored in the log checkpoint before the object is written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// First sequence number in the object.
    pub start: u64,
    /// One past the last sequence number in the object.
    pub end: u64,
    /// The object key.
    pub key: String,
    /// The compression the object is written with.
    pub compression: CompressionFormat,
    /// Seeds every random part of the keys this flush writes (data and error objects).
    pub seed: u64,
    /// Arrival time of the oldest record: the instant every `!{timestamp:...}` evaluates.
    pub oldest_ms: i64,
}

/// Records read from the log and not yet flushed.
#[derive(Default)]
struct Batch {
    records: Vec<LogRecord>,
    bytes: u64,
    /// A record read past the size limit, carried into the next batch.
    carry: Option<LogRecord>,
}

impl Plan {
    /// The file extension of error objects (the compression's; data objects may differ when
    /// records are converted).
    pub fn compression_extension(&self) -> &'static str {
        self.compression.extension()
    }
}

impl Batch {
    fn oldest_arrival_ms(&self) -> Option<i64> {
        self.records.first().map(|r| r.arrival_ms)
    }
}

/// FNV-1a: a stable hash for seeding the random parts of a key from its range.
fn stable_seed(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Fills `batch` from `reader` until the size limit or the durable end.
fn fill(reader: &mut LogReader, batch: &mut Batch, size_limit: u64) -> Result<()> {
    if let Some(r) = batch.carry.take() {
        batch.bytes += r.data.len() as u64;
        batch.records.push(r);
    }
    while batch.bytes < size_limit {
        let Some(record) = reader.next()? else { break };
        let len = record.data.len() as u64;
        if !batch.records.is_empty() && batch.bytes + len > size_limit {
            batch.carry = Some(record);
            break;
        }
        batch.bytes += len;
        batch.records.push(record);
    }
    Ok(())
}

/// Capped exponential backoff with ±20% jitter: 200 ms, 400 ms, ... up to 30 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 200u64.saturating_mul(1 << attempt.min(8)).min(30_000);
    let jitter = rand::random_range(0.8..1.2);
    Duration::from_millis((base as f64 * jitter) as u64)
}

/// Runs until `shutdown` turns true. An error restarts the loop (after a backoff) from the
/// committed position, replaying the pending plan; nothing is skipped.
pub(crate) async fn run(rt: Arc<StreamRuntime>, mut shutdown: watch::Receiver<bool>) {
    let name = rt.spec().name.clone();
    let mut attempt = 0;
    loop {
        match run_inner(&rt, &mut shutdown).await {
            Ok(()) => {
                tracing::debug!(stream = %name, "delivery stopped");
                return;
            }
            Err(e) => {
                // The data is in the log and the pending plan in the checkpoint: starting over
                // replays it. Back off so a persistent fault does not spin.
                let wait = backoff(attempt);
                attempt += 1;
                metrics::counter!("DeliveryToS3.LoopRestarts", "stream" => name.clone())
                    .increment(1);
                tracing::error!(stream = %name, error = %e, retry_in_ms = wait.as_millis() as u64,
                    "delivery failed; restarting from the committed position");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
                if *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

async fn run_inner(rt: &Arc<StreamRuntime>, shutdown: &mut watch::Receiver<bool>) -> Result<()> {
    let checkpoint = rt.log.last_checkpoint();
    if !checkpoint.pending.is_empty() {
        let plan: Plan = serde_json::from_slice(&checkpoint.pending)
            .map_err(|e| Error::Corrupt(format!("pending delivery plan: {e}")))?;
        tracing::info!(stream = %rt.spec().name, start = plan.start, end = plan.end, key = %plan.key,
            "replaying the delivery that was in flight at the last stop");
        let mut reader = rt.log.reader(plan.start)?;
        let mut records = Vec::new();
        while reader.position() < plan.end {
            match reader.next()? {
                Some(r) if r.seq < plan.end => records.push(r),
                Some(_) => break,
                None => {
                    return Err(Error::Corrupt(format!(
                        "the pending plan covers up to {} but the log ends at {}",
                        plan.end,
                        reader.position()
                    )));
                }
            }
        }
        if !deliver(rt, &plan, &records, shutdown).await? {
            return Ok(());
        }
    }
    let mut reader = rt.log.reader(rt.log.last_checkpoint().committed)?;
    let mut durable = rt.log.durable();
    let mut batch = Batch::default();
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let spec = rt.spec();
        let (size_limit, interval_s) = spec.buffering();
        let (r, b) = tokio::task::spawn_blocking(move || {
            let result = fill(&mut reader, &mut batch, size_limit);
            (result.map(|()| reader), batch)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        reader = r?;
        batch = b;
        let caught_up = batch.carry.is_none() && reader.position() >= durable.borrow().next_seq;
        rt.set_freshness(batch.oldest_arrival_ms());
        let due = batch
            .oldest_arrival_ms()
            .map(|oldest| oldest + (interval_s as i64) * 1000);
        let flush_now = batch.bytes >= size_limit
            || batch.carry.is_some()
            || due.is_some_and(|d| d <= rt.now_ms())
            || (interval_s == 0 && !batch.records.is_empty() && caught_up);
        if flush_now {
            let records = std::mem::take(&mut batch.records);
            batch.bytes = 0;
            let plan = plan_for(rt, &records);
            rt.log.checkpoint(
                rt.log.last_checkpoint().committed,
                &serde_json::to_vec(&plan)?,
            )?;
            if !deliver(rt, &plan, &records, shutdown).await? {
                return Ok(());
            }
            continue;
        }
        if !caught_up {
            continue;
        }
        let sleep = match due {
            Some(d) => Duration::from_millis((d - rt.now_ms()).max(1) as u64),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            changed = durable.changed() => { if changed.is_err() { return Ok(()); } }
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.changed() => {}
        }
    }
}

pub(crate) fn plan_for(rt: &StreamRuntime, records: &[LogRecord]) -> Plan {
    let spec = rt.spec();
    let start = records.first().map_or(0, |r| r.seq);
    let end = records.last().map_or(0, |r| r.seq + 1);
    let oldest = records
        .iter()
        .map(|r| r.arrival_ms)
        .min()
        .unwrap_or_else(|| rt.now_ms());
    let (prefix, _) = spec.prefixes();
    let seed = stable_seed(&[
        spec.name.as_bytes(),
        &spec.created_ms.to_le_bytes(),
        &start.to_le_bytes(),
    ]);
    let no_keys = BTreeMap::new();
    let ctx = KeyContext {
        stream_name: &spec.name,
        stream_version: spec.version,
        oldest_arrival_ms: oldest,
        time_zone: rt.time_zone(),
        seed,
        error_output_type: None,
        partition_keys: &no_keys,
    };
    // With dynamic partitioning each partition's key is evaluated when the flush is built;
    // this key only serves records without partition keys (which then fail there).
    let key = object_key(&prefix, &ctx, &rt.data_extension()).unwrap_or_else(|e| {
        if !spec.dynamic_partitioning() {
            tracing::error!(stream = %spec.name, error = %e, "prefix evaluation failed; using the default prefix");
        }
        object_key(&Default::default(), &ctx, &spec.file_extension()).unwrap_or_default()
    });
    Plan {
        start,
        end,
        key,
        compression: spec.compression(),
        seed,
        oldest_ms: oldest,
    }
}

/// Builds the plan's objects, writes them with retries, then commits. Returns `false` if
/// shutdown interrupted the retries (the plan stays pending and is replayed at the next start).
async fn deliver(
    rt: &Arc<StreamRuntime>,
    plan: &Plan,
    records: &[LogRecord],
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool> {
    match rt.spec().kind {
        DestinationKind::S3 | DestinationKind::ExtendedS3 => {}
        DestinationKind::HttpEndpoint => {
            let endpoint = crate::http::Endpoint::new(rt);
            return crate::remote::deliver(rt, &endpoint, plan, records, shutdown).await;
        }
        DestinationKind::Redshift => {
            return crate::redshift::deliver(rt, plan, records, shutdown).await;
        }
        DestinationKind::AmazonOpenSearchService | DestinationKind::Elasticsearch => {
            let cluster = crate::opensearch::Cluster::new(rt)?;
            return crate::remote::deliver(rt, &cluster, plan, records, shutdown).await;
        }
        DestinationKind::Splunk => {
            let collector = crate::splunk::Collector::new(rt)?;
            return crate::remote::deliver(rt, &collector, plan, records, shutdown).await;
        }
    }
    let flush = crate::flush::build(rt, plan, records).await?;
    rt.begin_delivery(plan.start, &flush);
    if !crate::flush::write(rt, plan, &flush, shutdown).await? {
        return Ok(false);
    }
    rt.commit_delivery(plan.end)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_stable_and_distinct() {
        assert_eq!(stable_seed(&[b"a", b"b"]), stable_seed(&[b"a", b"b"]));
        assert_ne!(stable_seed(&[b"a", b"b"]), stable_seed(&[b"ab"]));
    }

    #[test]
    fn backoff_is_capped() {
        assert!(backoff(0) <= Duration::from_millis(240));
        assert!(backoff(30) <= Duration::from_millis(36_000));
        assert!(backoff(30) >= Duration::from_millis(24_000));
    }
}
