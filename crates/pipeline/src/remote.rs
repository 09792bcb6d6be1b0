//! Delivery to destinations outside the object store (HTTP endpoint, OpenSearch, Splunk; the
//! retry loop is also Redshift's). What they share:
//!
//! ```text
//!   plan records --processors--> items (requests, documents, batches) --send, retry pending-->
//!   delivered | failed for good --> error documents (+ AllData backup) in the backing bucket
//!   --> commit
//! ```
//!
//! Invariants:
//! - Items are derived only from the plan and its records, so a retry or a replay after a
//!   crash sends the same items with the same ids (request ids, document ids).
//! - Each round sends only the items still pending; an item is pending until it is delivered,
//!   fails permanently, or the destination's retry duration has passed since the first
//!   failure (the last attempt is made when it ends). The wait between rounds is the shared
//!   schedule of [`lakehose_sinks::retry`].
//! - Every record of the plan ends delivered or in an error document; the caller commits the
//!   log position only after [`deliver`] wrote those documents (and the backup).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lakehose_log::LogRecord;
use lakehose_sinks::retry::{self, Failure};
use tokio::sync::watch;

use crate::Result;
use crate::delivery::Plan;
use crate::engine::StreamRuntime;
use crate::flush::{ErrorRecord, Flush, Output, OutputKind};

/// Sends one round of items to a destination.
pub(crate) trait Sender: Sync {
    /// The unit of sending and retrying (a request, a document, a batch).
    type Item: Send + Sync;

    /// Sends the pending items; one result per item, in order.
    fn send(
        &self,
        items: &[&Self::Item],
    ) -> impl Future<Output = Vec<std::result::Result<(), Failure>>> + Send;
}

/// One destination, as [`deliver`] drives it.
pub(crate) trait Destination: Sender {
    /// The error-output folder of records that could not be delivered.
    fn error_output_type(&self) -> &'static str;

    /// Builds the items of `records` (processed, in sequence order).
    fn items(&self, plan: &Plan, records: &[LogRecord]) -> Result<Vec<Self::Item>>;

    /// `(records, bytes)` an item carries.
    fn size(&self, item: &Self::Item) -> (u64, u64);

    /// The error documents of an item that failed for good.
    fn error_documents(
        &self,
        item: &Self::Item,
        failure: &Failure,
        attempts: u32,
        ending_ms: i64,
    ) -> Vec<String>;

    /// Whether the source records are also backed up (`AllData`, `AllDocuments`, `AllEvents`).
    fn backs_up_all(&self) -> bool;
}

/// An item that failed for good.
pub(crate) struct Failed<T> {
    pub item: T,
    pub failure: Failure,
    pub attempts: u32,
}

/// What the retry loop ended with; `None` when shutdown interrupted it.
pub(crate) type Retried<T> = Option<Vec<Failed<T>>>;

/// Sends `items` through `sender` until each is delivered or failed for good (see the
/// module's invariants). `delivered` is called once per delivered item.
pub(crate) async fn send_with_retries<S: Sender>(
    rt: &StreamRuntime,
    sender: &S,
    items: Vec<S::Item>,
    retry_ms: i64,
    shutdown: &mut watch::Receiver<bool>,
    mut delivered: impl FnMut(&S::Item) + Send,
) -> Retried<S::Item> {
    let spec = rt.spec();
    let metric = spec.kind.metric_name();
    let mut pending: Vec<(S::Item, u32)> = items.into_iter().map(|i| (i, 0)).collect();
    let mut failed = Vec::new();
    let mut first_failure_ms = None;
    let mut round = 0u32;
    while !pending.is_empty() {
        let refs: Vec<&S::Item> = pending.iter().map(|(i, _)| i).collect();
        let results = sender.send(&refs).await;
        let mut still = Vec::new();
        let mut last_failure = None;
        for ((item, attempts), result) in pending.into_iter().zip(results) {
            let attempts = attempts + 1;
            match result {
                Ok(()) => delivered(&item),
                Err(failure) => {
                    metrics::counter!(format!("DeliveryTo{metric}.Failures"), "stream" => spec.name.clone())
                        .increment(1);
                    last_failure = Some(failure.clone());
                    if failure.permanent {
                        failed.push(Failed {
                            item,
                            failure,
                            attempts,
                        });
                    } else {
                        still.push((item, attempts, failure));
                    }
                }
            }
        }
        if still.is_empty() {
            break;
        }
        let now = rt.now_ms();
        let first = *first_failure_ms.get_or_insert(now);
        let wait = retry::next_wait(round, now - first, retry_ms, retry::random_jitter());
        round += 1;
        let Some(wait) = wait else {
            failed.extend(still.into_iter().map(|(item, attempts, failure)| Failed {
                item,
                failure,
                attempts,
            }));
            break;
        };
        if let Some(f) = last_failure
            && (round <= 3 || round.is_power_of_two())
        {
            tracing::warn!(stream = %spec.name, destination = metric, round, pending = still.len(),
                code = %f.code, error = %f.message, retry_in_ms = wait.as_millis() as u64,
                "delivery failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
            _ = shutdown.changed() => { if *shutdown.borrow() { return None; } }
        }
        pending = still.into_iter().map(|(i, a, _)| (i, a)).collect();
    }
    Some(failed)
}

/// Delivers `plan` through `dest`, then writes its failures and backup, then commits. Returns
/// `false` if shutdown interrupted (the plan stays pending and is replayed at the next start).
pub(crate) async fn deliver<D: Destination>(
    rt: &Arc<StreamRuntime>,
    dest: &D,
    plan: &Plan,
    records: &[LogRecord],
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool> {
    let spec = rt.spec();
    let metric = spec.kind.metric_name();
    let name = spec.name.clone();
    let mut errors: Vec<ErrorRecord> = Vec::new();
    let groups = crate::flush::process(rt, records, &mut errors, true).await?;
    let mut processed: Vec<LogRecord> = groups.into_iter().flat_map(|g| g.records).collect();
    processed.sort_by_key(|r| r.seq);
    let items = dest.items(plan, &processed)?;
    let retry_ms = (spec.retry_seconds() * 1000) as i64;
    let failed = send_with_retries(rt, dest, items, retry_ms, shutdown, |item| {
        let (count, bytes) = dest.size(item);
        metrics::counter!(format!("DeliveryTo{metric}.Success"), "stream" => name.clone())
            .increment(1);
        metrics::counter!(format!("DeliveryTo{metric}.Records"), "stream" => name.clone())
            .increment(count);
        metrics::counter!(format!("DeliveryTo{metric}.Bytes"), "stream" => name.clone())
            .increment(bytes);
        rt.stats.delivered(count, bytes);
    })
    .await;
    let Some(failed) = failed else {
        return Ok(false);
    };
    let ending = rt.now_ms();
    if let Some(first) = failed.first() {
        let records: u64 = failed.iter().map(|f| dest.size(&f.item).0).sum();
        tracing::error!(stream = %name, destination = metric, records, items = failed.len(),
            code = %first.failure.code, error = %first.failure.message, attempts = first.attempts,
            "delivery failed for good; the records go to the error output (first failure shown)");
    }
    for f in failed {
        let (count, _) = dest.size(&f.item);
        metrics::counter!(format!("DeliveryTo{metric}.ProcessingFailed"), "stream" => name.clone())
            .increment(count);
        for document in dest.error_documents(&f.item, &f.failure, f.attempts, ending) {
            errors.push(ErrorRecord {
                error_output_type: dest.error_output_type(),
                document,
            });
        }
    }
    let mut flush = Flush {
        outputs: crate::flush::error_outputs(rt, plan, errors).await?,
        partitions: Vec::new(),
    };
    if dest.backs_up_all() && !records.is_empty() {
        flush.outputs.push(all_data_backup(plan, records).await?);
    }
    if !crate::flush::write(rt, plan, &flush, shutdown).await? {
        return Ok(false);
    }
    rt.commit_delivery(plan.end)?;
    Ok(true)
}

/// The plan's source records under its key in the backing bucket (`AllData` modes).
pub(crate) async fn all_data_backup(plan: &Plan, records: &[LogRecord]) -> Result<Output> {
    let parts: Vec<Bytes> = records.iter().map(|r| r.data.clone()).collect();
    let bytes = parts.iter().map(|p| p.len() as u64).sum();
    let parts =
        crate::flush::compress(crate::flush::codec(plan.compression), parts, &plan.key).await?;
    Ok(Output {
        key: plan.key.clone(),
        parts,
        records: records.len() as u64,
        bytes,
        kind: OutputKind::AllDataBackup,
    })
}

/// The base64 of a record, for `rawData` in error documents.
pub(crate) fn raw_data(record: &LogRecord) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(&record.data)
}
