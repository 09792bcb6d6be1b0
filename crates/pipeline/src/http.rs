//! Delivery of one plan to an HTTP endpoint destination (Firehose's protocol v1.0, in
//! `lakehose_sinks::http`).
//!
//! The plan's records (after the stream's processors) are POSTed in requests whose bodies fit
//! the buffer size. Each request's id is derived from the plan's seed and the request's index,
//! so retries and a replay after a crash send the same id. Retries, error documents
//! (`http-endpoint-failed`, in the `S3Configuration` bucket), the `AllData` backup and the
//! commit are [`crate::remote`]'s; a 413 is not retried.

use std::sync::Arc;

use bytes::Bytes;
use lakehose_log::LogRecord;
use lakehose_sinks::http::{self, EndpointSettings, Failure};

use crate::delivery::Plan;
use crate::engine::StreamRuntime;
use crate::remote::{self, Destination, Sender};
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

/// The HTTP endpoint as a [`Destination`]: an item is one request (its records all succeed
/// or fail together).
pub(crate) struct Endpoint {
    settings: EndpointSettings,
    client: Arc<http::HttpEndpointClient>,
    size_limit: usize,
    now_ms: i64,
    all_data: bool,
}

/// One request and the records it carries.
pub(crate) struct Part {
    request: http::Request,
    records: Vec<LogRecord>,
}

impl Endpoint {
    pub(crate) fn new(rt: &StreamRuntime) -> Self {
        let spec = rt.spec();
        Self {
            settings: settings(&spec),
            client: rt.http_client(),
            size_limit: spec.buffering().0 as usize,
            now_ms: rt.now_ms(),
            all_data: spec.http.as_ref().and_then(|h| h.s3_backup_mode.as_deref())
                == Some("AllData"),
        }
    }
}

impl Sender for Endpoint {
    type Item = Part;

    async fn send(&self, parts: &[&Part]) -> Vec<std::result::Result<(), Failure>> {
        let mut out = Vec::with_capacity(parts.len());
        for part in parts {
            out.push(self.client.send(&self.settings.url, &part.request).await);
        }
        out
    }
}

impl Destination for Endpoint {
    fn error_output_type(&self) -> &'static str {
        http::ERROR_OUTPUT_TYPE
    }

    fn items(&self, plan: &Plan, records: &[LogRecord]) -> Result<Vec<Part>> {
        let data: Vec<Bytes> = records.iter().map(|r| r.data.clone()).collect();
        http::split(&data, self.size_limit)
            .into_iter()
            .enumerate()
            .map(|(i, range)| {
                let request_id = http::request_id(plan.seed, i as u32);
                let request = http::build_request(
                    &self.settings,
                    &request_id,
                    self.now_ms,
                    &data[range.clone()],
                )
                .map_err(Error::Io)?;
                Ok(Part {
                    request,
                    records: records[range].to_vec(),
                })
            })
            .collect()
    }

    fn size(&self, part: &Part) -> (u64, u64) {
        let bytes = part.records.iter().map(|r| r.data.len() as u64).sum();
        (part.records.len() as u64, bytes)
    }

    fn error_documents(
        &self,
        part: &Part,
        failure: &Failure,
        attempts: u32,
        ending_ms: i64,
    ) -> Vec<String> {
        part.records
            .iter()
            .map(|record| {
                serde_json::json!({
                    "attemptsMade": attempts,
                    "arrivalTimestamp": record.arrival_ms,
                    "errorCode": failure.code,
                    "errorMessage": failure.message,
                    "attemptEndingTimestamp": ending_ms,
                    "rawData": remote::raw_data(record),
                    "subsequenceNumber": 0,
                    "dataId": record.seq.to_string(),
                    "EndpointUrl": self.settings.url,
                })
                .to_string()
            })
            .collect()
    }

    fn backs_up_all(&self) -> bool {
        self.all_data
    }
}
