//! Delivery of one plan to an OpenSearch Service or Elasticsearch destination (the `_bulk`
//! protocol is in `lakehose_sinks::opensearch`).
//!
//! Every processed record is one document: its index is `IndexName` rotated by the record's
//! arrival time, its id (`FIREHOSE_DEFAULT`) is derived from the stream's ARN and creation time,
//! the record's sequence number and its rank among the records a processor made from the same
//! source record. Documents are items of [`crate::remote`]: each round groups the pending
//! documents into bulk requests bounded by the buffer size, and each document is retried,
//! delivered or failed on its own (bulk responses answer per document).
//!
//! Invariants:
//! - A document is derived only from its record and the stream's spec, so a retry or a crash
//!   replay sends the same index and id (with `NO_DOCUMENT_ID` no id is sent and a retried
//!   document may be indexed twice, as in Firehose).
//! - A record that is not single-line JSON holding an object is never sent: it fails for good
//!   (`OS.InvalidDocument`, `attemptsMade` 0).
//! - The cluster URL is `ClusterEndpoint` or the `[opensearch_domains]` mapping of
//!   `DomainARN`; [`check`] refuses streams without one at create and update, and the engine
//!   does not start a stream whose mapping disappeared from lakehose.toml (its data stays in
//!   the log until the mapping is back). Should a plan still be delivered without a URL, every
//!   document fails with `OS.DomainNotMapped` (retried, then error documents).
//! - Failures go to `AmazonOpenSearchService-failed` (OpenSearch Service) or
//!   `elasticsearch-failed` (Elasticsearch) in the `S3Configuration` bucket; `AllDocuments`
//!   also backs up every source record.

use std::sync::Arc;

use lakehose_api::stream::DestinationKind;
use lakehose_api::{ApiError, StreamSpec};
use lakehose_log::LogRecord;
use lakehose_sinks::opensearch::{self, BulkClient, Document, Failure, Rotation};

use crate::delivery::Plan;
use crate::engine::{EngineConfig, StreamRuntime};
use crate::remote::{self, Destination, Sender};
use crate::{Error, Result};

/// The error code of a `DomainARN` that lakehose.toml no longer maps.
const DOMAIN_NOT_MAPPED: &str = "OS.DomainNotMapped";

/// The cluster URL of the stream's destination, as configured (not yet `/_bulk`).
fn cluster_url(config: &EngineConfig, spec: &StreamSpec) -> std::result::Result<String, String> {
    let o = spec.opensearch.clone().unwrap_or_default();
    match (o.cluster_endpoint.as_deref(), o.domain_arn.as_deref()) {
        (Some(url), _) => Ok(url.to_string()),
        (None, Some(arn)) => config.opensearch_domains.get(arn).cloned().ok_or_else(|| {
            format!("DomainARN '{arn}' is not mapped to a cluster URL in [opensearch_domains] of lakehose.toml.")
        }),
        (None, None) => Err("Either DomainARN or ClusterEndpoint is required.".to_string()),
    }
}

/// Refuses an OpenSearch / Elasticsearch stream whose cluster the engine cannot reach by
/// configuration: a `DomainARN` without a `[opensearch_domains]` mapping, or a URL the egress
/// policy refuses (scheme, literal addresses; names are resolved at every request).
pub(crate) fn check(config: &EngineConfig, spec: &StreamSpec) -> lakehose_api::Result<()> {
    if !matches!(
        spec.kind,
        DestinationKind::AmazonOpenSearchService | DestinationKind::Elasticsearch
    ) || spec.opensearch.is_none()
    {
        return Ok(());
    }
    let url = cluster_url(config, spec).map_err(ApiError::invalid)?;
    let what = if spec
        .opensearch
        .as_ref()
        .is_some_and(|o| o.cluster_endpoint.is_some())
    {
        "ClusterEndpoint".to_string()
    } else {
        format!("The cluster URL of DomainARN in [opensearch_domains] ({url})")
    };
    config
        .egress
        .check_syntax(&url)
        .map_err(|e| ApiError::invalid(format!("{what}: {e}")))?;
    Ok(())
}

/// The OpenSearch / Elasticsearch cluster as a [`Destination`]: an item is one document.
pub(crate) struct Cluster {
    client: Arc<BulkClient>,
    /// The `_bulk` URL, or why there is none.
    bulk_url: std::result::Result<String, Failure>,
    base_index: String,
    rotation: Rotation,
    type_name: Option<String>,
    /// `None` with `NO_DOCUMENT_ID`.
    id_seed: Option<u64>,
    size_limit: usize,
    error_output_type: &'static str,
    all_documents: bool,
}

/// One document and the record it came from.
pub(crate) struct Doc {
    document: Document,
    record: LogRecord,
    /// Set when the record is not a valid document: it is never sent.
    invalid: Option<Failure>,
}

impl Cluster {
    pub(crate) fn new(rt: &StreamRuntime) -> Result<Self> {
        let spec = rt.spec();
        let o = spec.opensearch.clone().ok_or_else(|| {
            Error::Internal(format!(
                "stream {} has no OpenSearch destination configuration",
                spec.name
            ))
        })?;
        let rotation = Rotation::parse(o.index_rotation_period.as_deref())
            .map_err(|e| Error::Internal(format!("stream {}: {e}", spec.name)))?;
        let bulk_url = cluster_url(rt.config(), &spec)
            .map_err(|e| Failure::retry(DOMAIN_NOT_MAPPED, e))
            .and_then(|url| {
                opensearch::bulk_url(&url)
                    .map_err(|e| Failure::retry(opensearch::CONNECTION_FAILED, e))
            });
        let no_id = o
            .document_id_options
            .as_ref()
            .and_then(|d| d.default_document_id_format.as_deref())
            == Some("NO_DOCUMENT_ID");
        Ok(Self {
            client: rt.opensearch_client(),
            bulk_url,
            base_index: o.index_name.clone().unwrap_or_default(),
            rotation,
            type_name: o.type_name.clone().filter(|t| !t.is_empty()),
            id_seed: (!no_id).then(|| opensearch::stream_seed(&spec.arn, spec.created_ms)),
            size_limit: spec.buffering().0 as usize,
            error_output_type: if spec.kind == DestinationKind::Elasticsearch {
                opensearch::ERROR_OUTPUT_ELASTICSEARCH
            } else {
                opensearch::ERROR_OUTPUT_OPENSEARCH
            },
            all_documents: o.s3_backup_mode.as_deref() == Some("AllDocuments"),
        })
    }
}

impl Sender for Cluster {
    type Item = Doc;

    async fn send(&self, docs: &[&Doc]) -> Vec<std::result::Result<(), Failure>> {
        let mut out: Vec<Option<std::result::Result<(), Failure>>> =
            docs.iter().map(|d| d.invalid.clone().map(Err)).collect();
        let valid: Vec<usize> = (0..docs.len()).filter(|&i| out[i].is_none()).collect();
        if !valid.is_empty() {
            match &self.bulk_url {
                Err(f) => {
                    for &i in &valid {
                        out[i] = Some(Err(f.clone()));
                    }
                }
                Ok(url) => {
                    let sizes: Vec<usize> =
                        valid.iter().map(|&i| docs[i].document.bulk_len()).collect();
                    for range in opensearch::split(&sizes, self.size_limit) {
                        let positions = &valid[range];
                        let batch: Vec<&Document> =
                            positions.iter().map(|&i| &docs[i].document).collect();
                        let results = self.client.bulk(url, &batch).await;
                        for (&i, result) in positions.iter().zip(results) {
                            out[i] = Some(result);
                        }
                    }
                }
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Failure::retry(
                        opensearch::INVALID_RESPONSE,
                        "no result for the document",
                    ))
                })
            })
            .collect()
    }
}

impl Destination for Cluster {
    fn error_output_type(&self) -> &'static str {
        self.error_output_type
    }

    fn items(&self, _plan: &Plan, records: &[LogRecord]) -> Result<Vec<Doc>> {
        let mut out = Vec::with_capacity(records.len());
        let mut previous: Option<(u64, u32)> = None;
        for record in records {
            // Records are in sequence order; a processor's outputs share their source's seq.
            let sub = match previous {
                Some((seq, n)) if seq == record.seq => n + 1,
                _ => 0,
            };
            previous = Some((record.seq, sub));
            let (source, invalid) = match opensearch::parse_document(&record.data) {
                Ok(source) => (source, None),
                Err(f) => (record.data.clone(), Some(f)),
            };
            out.push(Doc {
                document: Document {
                    index: self
                        .rotation
                        .index_name(&self.base_index, record.arrival_ms),
                    id: self
                        .id_seed
                        .map(|seed| opensearch::document_id(seed, record.seq, sub)),
                    type_name: self.type_name.clone(),
                    source,
                },
                record: record.clone(),
                invalid,
            });
        }
        Ok(out)
    }

    fn size(&self, doc: &Doc) -> (u64, u64) {
        (1, doc.record.data.len() as u64)
    }

    fn error_documents(
        &self,
        doc: &Doc,
        failure: &Failure,
        attempts: u32,
        ending_ms: i64,
    ) -> Vec<String> {
        let attempts = if doc.invalid.is_some() { 0 } else { attempts };
        vec![
            serde_json::json!({
                "attemptsMade": attempts,
                "arrivalTimestamp": doc.record.arrival_ms,
                "errorCode": failure.code,
                "errorMessage": failure.message,
                "attemptEndingTimestamp": ending_ms,
                "esDocumentId": doc.document.id,
                "esIndexName": doc.document.index,
                "esTypeName": doc.document.type_name.as_deref().unwrap_or_default(),
                "rawData": remote::raw_data(&doc.record),
            })
            .to_string(),
        ]
    }

    fn backs_up_all(&self) -> bool {
        self.all_documents
    }
}
