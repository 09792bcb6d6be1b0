//! Delivery of one plan to an HTTP endpoint destination (Firehose's protocol v1.0, in
//! `lakehose_sinks::http`).
//!
//! The plan's records go through the stream's processors, then are POSTed in requests whose
//! bodies fit the buffer size. Each request's id is derived from the plan's seed and the
//! request's index, so retries and a replay after a crash send the same id. A request is
//! retried (1 s doubling, ±15% jitter, capped at 120 s) until `RetryOptions.DurationInSeconds`
//! has passed since its first failure; a 413 is not retried. The records of a request that
//! failed become `http-endpoint-failed` error documents in the `S3Configuration` bucket; with
//! `S3BackupMode: AllData` the source records are also written there under its prefix. The
//! caller commits the log position only after this returns `true`: after every request was
//! answered or its failure documents (and the backup) were stored.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use lakehose_log::LogRecord;
use lakehose_sinks::http::{self, EndpointSettings, Failure};
use tokio::sync::watch;

use crate::delivery::Plan;
use crate::engine::StreamRuntime;
use crate::flush::{ErrorRecord, Flush, Output, OutputKind};
use crate::{Error, Result};

/// The request settings of the stream's HTTP endpoint destination.
pub(crate) fn settings(spec: &lakehose_api::StreamSpec) -> EndpointSettings {
    let Some(h) = &spec.http else {
        return EndpointSettings::default();
    };
    let endpoint = h.endpoint_configuration.clone().unwrap_or_default();
    let request = h.request_configuration.clone().unwrap_or_default();
    EndpointSettings {
        url: endpoint.url.unwrap_or_default(),
        access_key: endpoint.access_key,
        common_attributes: request
            .common_attributes
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.name, a.value))
            .collect(),
        gzip: request.content_encoding.as_deref() == Some("GZIP"),
        source_arn: spec.arn.clone(),
    }
}

/// How one request ended.
enum Sent {
    Delivered,
    Failed { failure: Failure, attempts: u32 },
    Shutdown,
}

/// Sends one request, retrying as the protocol says.
async fn send_with_retries(
    rt: &StreamRuntime,
    url: &str,
    request: &http::Request,
    retry_ms: i64,
    shutdown: &mut watch::Receiver<bool>,
) -> Sent {
    let client = rt.http_client();
    let stream = rt.spec().name;
    let mut attempts = 0u32;
    let mut first_failure_ms = None;
    loop {
        attempts += 1;
        match client.send(url, request).await {
            Ok(()) => return Sent::Delivered,
            Err(failure) => {
                metrics::counter!("DeliveryToHttpEndpoint.Failures", "stream" => stream.clone())
                    .increment(1);
                if failure.permanent {
                    return Sent::Failed { failure, attempts };
                }
                let now = rt.now_ms();
                let first = *first_failure_ms.get_or_insert(now);
                let Some(wait) =
                    http::next_wait(attempts - 1, now - first, retry_ms, http::random_jitter())
                else {
                    return Sent::Failed { failure, attempts };
                };
                if attempts <= 3 || attempts.is_power_of_two() {
                    tracing::warn!(stream = %stream, attempt = attempts, request_id = %request.request_id,
                        code = failure.code, error = %failure.message, retry_in_ms = wait.as_millis() as u64,
                        "delivery to the HTTP endpoint failed; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
                    _ = shutdown.changed() => { if *shutdown.borrow() { return Sent::Shutdown; } }
                }
            }
        }
    }
}

/// The `http-endpoint-failed` document of one record.
fn error_document(
    record: &LogRecord,
    failure: &Failure,
    attempts: u32,
    ending_ms: i64,
    url: &str,
) -> String {
    serde_json::json!({
        "attemptsMade": attempts,
        "arrivalTimestamp": record.arrival_ms,
        "errorCode": failure.code,
        "errorMessage": failure.message,
        "attemptEndingTimestamp": ending_ms,
        "rawData": base64::engine::general_purpose::STANDARD.encode(&record.data),
        "subsequenceNumber": 0,
        "dataId": record.seq.to_string(),
        "EndpointUrl": url,
    })
    .to_string()
}

/// Delivers `plan` to the stream's endpoint, then writes its failures and backup. Returns
/// `false` if shutdown interrupted (the plan stays pending and is replayed at the next start).
pub(crate) async fn deliver(
    rt: &Arc<StreamRuntime>,
    plan: &Plan,
    records: &[LogRecord],
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool> {
    let spec = rt.spec();
    let settings = settings(&spec);
    let all_data = spec.http.as_ref().and_then(|h| h.s3_backup_mode.as_deref()) == Some("AllData");
    let retry_ms = (spec.http_retry_seconds() * 1000) as i64;
    let (size_limit, _) = spec.buffering();
    let name = spec.name.clone();
    let mut errors: Vec<ErrorRecord> = Vec::new();
    let groups = crate::flush::process(rt, records, &mut errors, true).await?;
    let mut processed: Vec<LogRecord> = groups.into_iter().flat_map(|g| g.records).collect();
    processed.sort_by_key(|r| r.seq);
    let data: Vec<Bytes> = processed.iter().map(|r| r.data.clone()).collect();
    for (i, range) in http::split(&data, size_limit as usize)
        .into_iter()
        .enumerate()
    {
        let request_id = http::request_id(plan.seed, i as u32);
        let request =
            http::build_request(&settings, &request_id, rt.now_ms(), &data[range.clone()])
                .map_err(Error::Io)?;
        let count = range.len() as u64;
        let bytes: u64 = data[range.clone()].iter().map(|d| d.len() as u64).sum();
        match send_with_retries(rt, &settings.url, &request, retry_ms, shutdown).await {
            Sent::Delivered => {
                metrics::counter!("DeliveryToHttpEndpoint.Success", "stream" => name.clone())
                    .increment(1);
                metrics::counter!("DeliveryToHttpEndpoint.Records", "stream" => name.clone())
                    .increment(count);
                metrics::counter!("DeliveryToHttpEndpoint.Bytes", "stream" => name.clone())
                    .increment(bytes);
                rt.stats.delivered(count, bytes);
            }
            Sent::Failed { failure, attempts } => {
                tracing::error!(stream = %name, request_id = %request_id, records = count,
                    code = failure.code, error = %failure.message, attempts,
                    "delivery to the HTTP endpoint failed; the records go to the backup bucket");
                metrics::counter!("DeliveryToHttpEndpoint.ProcessingFailed", "stream" => name.clone())
                    .increment(count);
                let ending = rt.now_ms();
                for r in &processed[range] {
                    errors.push(ErrorRecord {
                        error_output_type: http::ERROR_OUTPUT_TYPE,
                        document: error_document(r, &failure, attempts, ending, &settings.url),
                    });
                }
            }
            Sent::Shutdown => return Ok(false),
        }
    }
    let mut flush = Flush {
        outputs: crate::flush::error_outputs(rt, plan, errors).await?,
        partitions: Vec::new(),
    };
    if all_data && !records.is_empty() {
        let parts: Vec<Bytes> = records.iter().map(|r| r.data.clone()).collect();
        let bytes = parts.iter().map(|p| p.len() as u64).sum();
        let parts =
            crate::flush::compress(crate::flush::codec(plan.compression), parts, &plan.key).await?;
        flush.outputs.push(Output {
            key: plan.key.clone(),
            parts,
            records: records.len() as u64,
            bytes,
            kind: OutputKind::AllDataBackup,
        });
    }
    if !crate::flush::write(rt, plan, &flush, shutdown).await? {
        return Ok(false);
    }
    rt.commit_delivery(plan.end)?;
    Ok(true)
}
