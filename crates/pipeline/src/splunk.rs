//! Delivery of one plan to a Splunk destination (the HTTP Event Collector protocol with
//! indexer acknowledgement, in `lakehose_sinks::splunk`).
//!
//! The plan's records (after the stream's processors) are encoded for the stream's
//! `HECEndpointType` and sent in requests whose bodies fit the buffer size. A request is
//! delivered only once the indexers acknowledge its `ackId` within
//! `HECAcknowledgmentTimeoutInSeconds` (capped by `EngineConfig::splunk_ack_timeout_cap`, a
//! test setting); otherwise it fails with `Splunk.AckTimeout` and is retried like any failure.
//!
//! Invariants:
//! - Requests are derived only from the plan's records (their bytes and arrival stamps), so a
//!   retry or a replay after a crash sends the same bodies on the stream's one channel.
//! - Retries, error documents (`splunk-failed`, in the `S3Configuration` bucket), the
//!   `AllEvents` backup and the commit are [`crate::remote`]'s. Each error document carries an
//!   `EventId` derived from the stream, the record's sequence number and its index in the plan.
//! - The time from a request's send to its acknowledgement is recorded in milliseconds as the
//!   `DeliveryToSplunk.DataAckLatency` histogram.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lakehose_api::{ApiError, StreamSpec};
use lakehose_log::LogRecord;
use lakehose_sinks::splunk::{self, EndpointType, Failure, HecClient, HecSettings};

use crate::delivery::Plan;
use crate::engine::{EngineConfig, StreamRuntime};
use crate::remote::{self, Destination, Sender};
use crate::{Error, Result};

/// Rejects what only the engine can judge: a `HECEndpoint` the egress policy refuses (literal
/// addresses and the scheme; names are resolved at every delivery attempt).
pub(crate) fn check(config: &EngineConfig, spec: &StreamSpec) -> lakehose_api::Result<()> {
    let Some(url) = spec.splunk.as_ref().and_then(|s| s.hec_endpoint.as_deref()) else {
        return Ok(());
    };
    config
        .egress
        .check_syntax(url)
        .map_err(|e| ApiError::invalid(format!("HECEndpoint: {e}")))?;
    Ok(())
}

/// The HEC settings of the stream's Splunk destination.
fn settings(config: &EngineConfig, spec: &StreamSpec) -> Result<HecSettings> {
    let s = spec
        .splunk
        .as_ref()
        .ok_or_else(|| Error::Corrupt(format!("stream {} has no Splunk destination", spec.name)))?;
    let kind = s.hec_endpoint_type.as_deref().unwrap_or_default();
    let endpoint_type = EndpointType::parse(kind).ok_or_else(|| {
        Error::Corrupt(format!(
            "stream {}: HECEndpointType {kind:?} is neither Raw nor Event",
            spec.name
        ))
    })?;
    let timeout_s = s
        .hec_acknowledgment_timeout_in_seconds
        .unwrap_or(180) // the API's default, filled in at create
        .max(1) as u64;
    let mut ack_timeout = Duration::from_secs(timeout_s);
    if let Some(cap) = config.splunk_ack_timeout_cap {
        ack_timeout = ack_timeout.min(cap);
    }
    Ok(HecSettings {
        endpoint: s.hec_endpoint.clone().unwrap_or_default(),
        endpoint_type,
        token: s.hec_token.clone().unwrap_or_default(),
        channel: splunk::channel_id(&spec.arn),
        ack_timeout,
    })
}

/// The Splunk destination as a [`Destination`]: an item is one request (its records are
/// acknowledged, or fail, together).
pub(crate) struct Collector {
    settings: HecSettings,
    client: Arc<HecClient>,
    size_limit: usize,
    all_events: bool,
    stream: String,
    arn: String,
}

/// One request and the records it carries, with their indexes in the plan.
pub(crate) struct Batch {
    body: Bytes,
    records: Vec<(usize, LogRecord)>,
}

impl Collector {
    pub(crate) fn new(rt: &StreamRuntime) -> Result<Self> {
        let spec = rt.spec();
        Ok(Self {
            settings: settings(rt.config(), &spec)?,
            client: rt.splunk_client(),
            size_limit: spec.buffering().0 as usize,
            all_events: spec
                .splunk
                .as_ref()
                .and_then(|s| s.s3_backup_mode.as_deref())
                == Some("AllEvents"),
            stream: spec.name.clone(),
            arn: spec.arn.clone(),
        })
    }
}

impl Sender for Collector {
    type Item = Batch;

    async fn send(&self, batches: &[&Batch]) -> Vec<std::result::Result<(), Failure>> {
        let mut out: Vec<Option<std::result::Result<(), Failure>>> = vec![None; batches.len()];
        let mut sent = Vec::new();
        for (i, batch) in batches.iter().enumerate() {
            match self.client.send(&self.settings, batch.body.clone()).await {
                Ok(ack_id) => sent.push((i, ack_id, tokio::time::Instant::now())),
                Err(f) => out[i] = Some(Err(f)),
            }
        }
        let waiting: Vec<(u64, tokio::time::Instant)> =
            sent.iter().map(|(_, id, at)| (*id, *at)).collect();
        let acked = self.client.wait_for_acks(&self.settings, &waiting).await;
        for ((i, _, _), result) in sent.into_iter().zip(acked) {
            out[i] = Some(result.map(|latency| {
                metrics::histogram!("DeliveryToSplunk.DataAckLatency", "stream" => self.stream.clone())
                    .record(latency.as_secs_f64() * 1000.0);
            }));
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Failure::retry(
                        "Splunk.AckTimeout",
                        "the request was neither answered nor acknowledged",
                    ))
                })
            })
            .collect()
    }
}

impl Destination for Collector {
    fn error_output_type(&self) -> &'static str {
        splunk::ERROR_OUTPUT_TYPE
    }

    fn items(&self, _plan: &Plan, records: &[LogRecord]) -> Result<Vec<Batch>> {
        let encoded: Vec<Bytes> = records
            .iter()
            .map(|r| splunk::encode(self.settings.endpoint_type, &r.data, r.arrival_ms))
            .collect();
        Ok(splunk::split(&encoded, self.size_limit)
            .into_iter()
            .map(|range| Batch {
                body: splunk::body(&encoded[range.clone()]),
                records: range.map(|i| (i, records[i].clone())).collect(),
            })
            .collect())
    }

    fn size(&self, batch: &Batch) -> (u64, u64) {
        let bytes = batch.records.iter().map(|(_, r)| r.data.len() as u64).sum();
        (batch.records.len() as u64, bytes)
    }

    fn error_documents(
        &self,
        batch: &Batch,
        failure: &Failure,
        attempts: u32,
        ending_ms: i64,
    ) -> Vec<String> {
        batch
            .records
            .iter()
            .map(|(index, record)| {
                serde_json::json!({
                    "attemptsMade": attempts,
                    "arrivalTimestamp": record.arrival_ms,
                    "errorCode": failure.code,
                    "errorMessage": failure.message,
                    "attemptEndingTimestamp": ending_ms,
                    "rawData": remote::raw_data(record),
                    "EventId": splunk::event_id(&self.arn, record.seq, *index),
                })
                .to_string()
            })
            .collect()
    }

    fn backs_up_all(&self) -> bool {
        self.all_events
    }
}
