//! Record processors: the `process` step of a Lakehose delivery stream.
//!
//! A [`ProcessorChain`] is built once per stream configuration from the stream's
//! `ProcessingConfiguration` (the AWS JSON shape), the dynamic-partitioning flag and the
//! `[lambdas]` table of `lakehose.toml` ([`LambdaEndpoints`]). [`ProcessorChain::process`]
//! then transforms one buffered batch of log records.
//!
//! # Order
//!
//! Processors always run in Firehose's order, whatever order the configuration lists them in:
//!
//! 1. `Decompression` (`CompressionFormat=GZIP`) and `CloudWatchLogProcessing`
//!    (`DataMessageExtraction=true|false`): gunzip the CloudWatch Logs subscription payload;
//!    `CONTROL_MESSAGE` payloads are dropped; with extraction every log event's `message`
//!    becomes one record, without it the decompressed JSON document is the record.
//! 2. `RecordDeAggregation`: KPL aggregated records (magic `F3 89 9A C2`, protobuf, MD5
//!    trailer) are split first; then `SubRecordType=JSON` (concatenated or newline separated
//!    JSON objects) or `DELIMITED` (split on the base64-encoded `Delimiter`).
//! 3. `Lambda`: the Firehose transformation contract over the AWS Lambda Invoke API.
//! 4. `Lakehose.Jq` (a Lakehose extension, parameter `MetadataExtractionQuery` holding the jq
//!    program): every JSON record is mapped to zero, one or many records; each output value is
//!    written as compact JSON **without** a delimiter (add `AppendDelimiterToRecord` for
//!    JSON lines, as with Firehose's own processors). Zero outputs count as a drop.
//! 5. `MetadataExtraction` (`JsonParsingEngine=JQ-1.6`), only when dynamic partitioning is
//!    enabled: the query must produce exactly one object; each key becomes a
//!    `partitionKeyFromQuery` key. Strings are used as is, numbers as JSON text, booleans as
//!    `true`/`false`; `null`, arrays and objects fail the record.
//! 6. `AppendDelimiterToRecord`: appends `\n` to each record.
//!
//! # Invariants
//!
//! - **No record is lost.** Every input record ends as one or more [`OutputRecord`]s, as
//!   entries of [`ProcessedBatch::dropped`], or as [`FailedRecord`]s. When a record fans out
//!   (CloudWatch Logs events, de-aggregation, `Lakehose.Jq`), each derived record ends in
//!   exactly one of the three lists, tagged with the input's id (`source_id`); an input
//!   that yields nothing at all (an empty aggregate, a control message, a jq program with no
//!   output) is listed once in `dropped`. So every input id appears in at least one list.
//! - **Order is kept.** Output records appear in input order, sub-records in their order
//!   inside the input record, whatever the Lambda invocations' completion order.
//! - **Failures carry what entered the failing step** ([`FailedRecord::raw_data`]) and
//!   Firehose's error document ([`FailedRecord::to_error_document`]). Error output folders
//!   are [`error_output::PROCESSING_FAILED`] and [`error_output::DECOMPRESSION_FAILED`];
//!   error codes are listed in [`codes`].
//! - **Bounded work.** Decompression stops at [`MAX_DECOMPRESSED_BYTES`] per record and
//!   [`MAX_BATCH_DECOMPRESSED_BYTES`] per batch; JSON and
//!   delimited de-aggregation at [`MAX_SUB_RECORDS`] sub-records; `Lakehose.Jq` at
//!   [`MAX_JQ_OUTPUTS`] outputs per record; Lambda responses are read up to the 6 MB
//!   invocation payload limit, at most [`MAX_LAMBDA_IN_FLIGHT`] invocations are in flight and
//!   each attempt is bounded by the endpoint's timeout.
//! - **Configuration is validated once** ([`ProcessorChain::from_config`]): jq programs are
//!   compiled there and reused for every record; [`ConfigError`] messages are meant for API
//!   users (`InvalidArgumentException`).
//! - CPU-bound steps run on Tokio's blocking pool, so a large batch does not stall the
//!   runtime's workers. The jq environment is sandboxed: `env`/`$ENV` see nothing, `debug`
//!   and `stderr` print nothing, `halt` fails the record instead of exiting.
//!
//! # Dynamic partitioning errors
//!
//! Records whose keys cannot be extracted (not JSON, query error, non-object result, `null`
//! value, more than 50 keys) fail with `DynamicPartitioning.MetadataExtractionFailed`; key
//! values that are not safe object-key segments ([`validate_partition_value`]) fail with
//! `DynamicPartitioning.InvalidPartitionKey` (a Lakehose code; Firehose accepts any value).
//! Both go to the `processing-failed` error folder (UNCONFIRMED which folder Firehose uses).

mod config;
mod cwl;
mod deagg;
mod jq;
mod lambda;
mod partition;
pub mod sandbox;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;

pub use config::ConfigError;
pub use lambda::{Credentials, LambdaEndpoint, LambdaEndpoints, Signing};
pub use partition::validate_partition_value;

/// Largest decompressed size of one record (decompression-bomb guard).
pub const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;
/// Largest decompressed size of all the records of one processed batch (decompression-bomb
/// guard: without it a 4 MiB PutRecordBatch of 60 KiB bombs would become 4 GiB in memory and
/// in the bucket). Records past it fail like records past [`MAX_DECOMPRESSED_BYTES`].
pub const MAX_BATCH_DECOMPRESSED_BYTES: usize = 512 * 1024 * 1024;
/// Most sub-records JSON or DELIMITED de-aggregation takes from one record (Firehose: 500).
pub const MAX_SUB_RECORDS: usize = 500;
/// Most records `Lakehose.Jq` may produce from one input record.
pub const MAX_JQ_OUTPUTS: usize = 10_000;
/// Most partition keys per record (Firehose: 50), counted per namespace.
pub const MAX_PARTITION_KEYS: usize = 50;
/// Lambda invocations in flight per batch (Firehose: 5 per shard).
pub const MAX_LAMBDA_IN_FLIGHT: usize = 5;
/// Synchronous Lambda invocation payload limit, each way (6 MB).
pub const MAX_LAMBDA_PAYLOAD: usize = 6 * 1024 * 1024;

/// Processor type names, as they appear in `Processors[].Type`.
pub mod processor_types {
    /// AWS: record de-aggregation (KPL, JSON, DELIMITED).
    pub const RECORD_DE_AGGREGATION: &str = "RecordDeAggregation";
    /// AWS: gunzip (CloudWatch Logs subscriptions).
    pub const DECOMPRESSION: &str = "Decompression";
    /// AWS: CloudWatch Logs message extraction.
    pub const CLOUDWATCH_LOG_PROCESSING: &str = "CloudWatchLogProcessing";
    /// AWS: Lambda transformation.
    pub const LAMBDA: &str = "Lambda";
    /// AWS: jq partition-key extraction.
    pub const METADATA_EXTRACTION: &str = "MetadataExtraction";
    /// AWS: newline after each record.
    pub const APPEND_DELIMITER_TO_RECORD: &str = "AppendDelimiterToRecord";
    /// Lakehose extension: a jq transformation (program in `MetadataExtractionQuery`).
    pub const LAKEHOSE_JQ: &str = "Lakehose.Jq";
    /// Every type [`crate::ProcessorChain::from_config`] accepts.
    pub const ALL: &[&str] = &[
        RECORD_DE_AGGREGATION,
        DECOMPRESSION,
        CLOUDWATCH_LOG_PROCESSING,
        LAMBDA,
        METADATA_EXTRACTION,
        APPEND_DELIMITER_TO_RECORD,
        LAKEHOSE_JQ,
    ];
}

/// Error output folder names (`!{firehose:error-output-type}`).
pub mod error_output {
    /// Records a processor (Lambda, jq, de-aggregation, partitioning) could not process.
    pub const PROCESSING_FAILED: &str = "processing-failed";
    /// Records that are not valid gzip (or decompress beyond the size cap).
    pub const DECOMPRESSION_FAILED: &str = "decompression-failed";
}

/// Error codes written to [`FailedRecord::error_code`]. `Lambda.MissingRecordId`,
/// `Lambda.DuplicatedRecordId`, `Lambda.JsonProcessingException`, `Lambda.InvokeAccessDenied`,
/// `Lambda.InvokeLimitExceeded`, `Lambda.ResourceNotFound`, `Lambda.FunctionError` and
/// `DynamicPartitioning.MetadataExtractionFailed` are Firehose's; the others are Lakehose's
/// names for cases whose Firehose code is not documented.
pub mod codes {
    /// A recordId sent to the function did not come back.
    pub const LAMBDA_MISSING_RECORD_ID: &str = "Lambda.MissingRecordId";
    /// A recordId came back more than once.
    pub const LAMBDA_DUPLICATED_RECORD_ID: &str = "Lambda.DuplicatedRecordId";
    /// The response is not the expected JSON (whole invocation), or an `Ok` record has no
    /// valid base64 `data` (that record).
    pub const LAMBDA_JSON_PROCESSING: &str = "Lambda.JsonProcessingException";
    /// The function returned `result: ProcessingFailed` for the record.
    pub const LAMBDA_PROCESSING_FAILED: &str = "Lambda.ProcessingFailed";
    /// The function raised (`X-Amz-Function-Error`) or its response exceeded 6 MB.
    pub const LAMBDA_FUNCTION_ERROR: &str = "Lambda.FunctionError";
    /// The invocation did not complete within the endpoint's timeout.
    pub const LAMBDA_TIMEOUT: &str = "Lambda.InvocationTimeout";
    /// Connection failure or an unexpected HTTP status from the endpoint.
    pub const LAMBDA_INVOCATION_FAILED: &str = "Lambda.InvocationFailed";
    /// HTTP 404 from the endpoint.
    pub const LAMBDA_RESOURCE_NOT_FOUND: &str = "Lambda.ResourceNotFound";
    /// HTTP 401/403 from the endpoint.
    pub const LAMBDA_INVOKE_ACCESS_DENIED: &str = "Lambda.InvokeAccessDenied";
    /// HTTP 429 from the endpoint.
    pub const LAMBDA_INVOKE_LIMIT_EXCEEDED: &str = "Lambda.InvokeLimitExceeded";
    /// A single record is too large for a 6 MB invocation payload.
    pub const LAMBDA_REQUEST_TOO_LARGE: &str = "Lambda.RequestEntityTooLarge";
    /// The record is not valid gzip.
    pub const DECOMPRESSION_FAILED: &str = "Decompression.Failed";
    /// The record decompresses to more than [`crate::MAX_DECOMPRESSED_BYTES`].
    pub const DECOMPRESSION_TOO_LARGE: &str = "Decompression.SizeLimitExceeded";
    /// The decompressed record is not a CloudWatch Logs subscription payload.
    pub const CLOUDWATCH_LOGS_INVALID: &str = "CloudWatchLogs.InvalidPayload";
    /// JSON de-aggregation found something other than consecutive JSON objects.
    pub const DEAGGREGATION_INVALID_JSON: &str = "RecordDeAggregation.InvalidJson";
    /// More than [`crate::MAX_SUB_RECORDS`] sub-records in one record.
    pub const DEAGGREGATION_TOO_MANY: &str = "RecordDeAggregation.TooManySubRecords";
    /// Partition keys could not be extracted.
    pub const METADATA_EXTRACTION_FAILED: &str = "DynamicPartitioning.MetadataExtractionFailed";
    /// A partition key value is not a safe object-key segment.
    pub const INVALID_PARTITION_KEY: &str = "DynamicPartitioning.InvalidPartitionKey";
    /// The `Lakehose.Jq` program failed on the record (not JSON, jq error, output not JSON).
    pub const JQ_TRANSFORM_FAILED: &str = "Lakehose.JqTransformFailed";
    /// The jq program exceeded the sandbox's time or memory limit, or crashed its worker.
    pub const JQ_RESOURCE_LIMIT: &str = "Lakehose.JqResourceLimit";
}

/// One record of the batch, as read from the stream's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputRecord {
    /// The log sequence number.
    pub id: u64,
    /// Approximate arrival time, epoch milliseconds.
    pub arrival_ms: i64,
    /// The record as the producer sent it.
    pub data: Bytes,
}

/// The partition keys of one namespace (name -> value): a map that is cheap to clone and
/// share. Records with the same keys share one map (built once per distinct key set of a
/// batch), so per-record keys cost no allocation. Reads go through `Deref` to the map;
/// writes (`DerefMut`) copy a shared map first. Equality, order and hash are the map's.
#[derive(Clone, Default)]
pub struct KeyMap(Option<Arc<BTreeMap<String, String>>>);

static NO_KEYS: BTreeMap<String, String> = BTreeMap::new();

impl KeyMap {
    /// The map, copied only if it is still shared.
    pub fn into_map(self) -> BTreeMap<String, String> {
        match self.0 {
            None => BTreeMap::new(),
            Some(map) => Arc::try_unwrap(map).unwrap_or_else(|shared| (*shared).clone()),
        }
    }
}

impl From<BTreeMap<String, String>> for KeyMap {
    fn from(map: BTreeMap<String, String>) -> Self {
        KeyMap((!map.is_empty()).then(|| Arc::new(map)))
    }
}

impl std::ops::Deref for KeyMap {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        self.0.as_deref().unwrap_or(&NO_KEYS)
    }
}

impl std::ops::DerefMut for KeyMap {
    fn deref_mut(&mut self) -> &mut Self::Target {
        Arc::make_mut(self.0.get_or_insert_with(Default::default))
    }
}

impl PartialEq for KeyMap {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) => true,
            _ => **self == **other,
        }
    }
}

impl Eq for KeyMap {}

impl PartialOrd for KeyMap {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyMap {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl std::hash::Hash for KeyMap {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl std::fmt::Debug for KeyMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// Partition keys of one output record, per `!{namespace:key}` namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionKeys {
    /// From `MetadataExtraction` (`!{partitionKeyFromQuery:key}`).
    pub from_query: KeyMap,
    /// From the Lambda response's `metadata.partitionKeys` (`!{partitionKeyFromLambda:key}`).
    pub from_lambda: KeyMap,
}

impl PartitionKeys {
    /// Namespace of [`Self::from_query`] in prefix expressions.
    pub const QUERY_NAMESPACE: &str = "partitionKeyFromQuery";
    /// Namespace of [`Self::from_lambda`] in prefix expressions.
    pub const LAMBDA_NAMESPACE: &str = "partitionKeyFromLambda";

    /// The value of `!{namespace:key}`, if the record has it.
    pub fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        let map = match namespace {
            Self::QUERY_NAMESPACE => &self.from_query,
            Self::LAMBDA_NAMESPACE => &self.from_lambda,
            _ => return None,
        };
        map.get(key).map(String::as_str)
    }

    /// No key in either namespace.
    pub fn is_empty(&self) -> bool {
        self.from_query.is_empty() && self.from_lambda.is_empty()
    }
}

/// A record that went through every processor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    /// Id of the input record it came from.
    pub source_id: u64,
    /// The input record's arrival time.
    pub arrival_ms: i64,
    /// The processed data (with the delimiter when `AppendDelimiterToRecord` is on).
    pub data: Bytes,
    /// Dynamic partition keys (empty unless dynamic partitioning is enabled).
    pub partition_keys: PartitionKeys,
}

/// A record a processor failed; it belongs in the error output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedRecord {
    /// Id of the input record it came from.
    pub source_id: u64,
    /// The input record's arrival time.
    pub arrival_ms: i64,
    /// The record as it entered the failing step.
    pub raw_data: Bytes,
    /// Error output folder: [`error_output::PROCESSING_FAILED`] or
    /// [`error_output::DECOMPRESSION_FAILED`].
    pub error_output_type: &'static str,
    /// One of [`codes`].
    pub error_code: String,
    /// Human-readable detail.
    pub error_message: String,
    /// Attempts made (Lambda invocations including retries; 1 for the built-in processors).
    pub attempts_made: u32,
    /// The function's ARN when the Lambda step failed the record.
    pub lambda_arn: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDocument<'a> {
    attempts_made: u32,
    arrival_timestamp: i64,
    error_code: &'a str,
    error_message: &'a str,
    attempt_ending_timestamp: i64,
    raw_data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    lambda_arn: Option<&'a str>,
}

impl FailedRecord {
    /// Firehose's error document for this record, one JSON line without the newline:
    /// `{"attemptsMade","arrivalTimestamp","errorCode","errorMessage",
    /// "attemptEndingTimestamp","rawData"(base64),"lambdaArn"?}`.
    pub fn to_error_document(&self, attempt_ending_ms: i64) -> String {
        let doc = ErrorDocument {
            attempts_made: self.attempts_made,
            arrival_timestamp: self.arrival_ms,
            error_code: &self.error_code,
            error_message: &self.error_message,
            attempt_ending_timestamp: attempt_ending_ms,
            raw_data: base64::engine::general_purpose::STANDARD.encode(&self.raw_data),
            lambda_arn: self.lambda_arn.as_deref(),
        };
        serde_json::to_string(&doc).expect("error document serialises")
    }
}

/// Counters of one [`ProcessorChain::process`] call, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessingStats {
    /// Lambda invocation attempts (including retries).
    pub lambda_attempts: u32,
    /// Lambda invocations that failed every attempt.
    pub lambda_failed_invocations: u32,
    /// Time spent in Lambda invocations (wall clock of the Lambda step).
    pub lambda_duration: Duration,
    /// Time spent running jq (`Lakehose.Jq` and `MetadataExtraction`).
    pub jq_duration: Duration,
}

/// The outcome of processing one batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessedBatch {
    /// Records to deliver, in input order.
    pub records: Vec<OutputRecord>,
    /// Input ids of dropped records: one entry per dropped (sub-)record, and one for an input
    /// that produced nothing.
    pub dropped: Vec<u64>,
    /// Records for the error output.
    pub failed: Vec<FailedRecord>,
    /// Counters for metrics.
    pub stats: ProcessingStats,
}

/// Lambda buffering hints of the chain (`BufferSizeInMBs`, `BufferIntervalInSeconds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LambdaBuffering {
    /// Most bytes of record data per invocation.
    pub size_bytes: usize,
    /// Longest time records should wait before being sent to the function.
    pub interval: Duration,
}

/// A record in flight between processors.
#[derive(Clone, Debug)]
pub(crate) struct Work {
    pub(crate) source_id: u64,
    pub(crate) arrival_ms: i64,
    pub(crate) data: Bytes,
    pub(crate) keys: PartitionKeys,
}

impl Work {
    pub(crate) fn with_data(&self, data: Bytes) -> Work {
        Work {
            source_id: self.source_id,
            arrival_ms: self.arrival_ms,
            data,
            keys: self.keys.clone(),
        }
    }
}

/// Dropped and failed records collected by the steps.
#[derive(Debug, Default)]
pub(crate) struct Outcomes {
    pub(crate) dropped: Vec<u64>,
    pub(crate) failed: Vec<FailedRecord>,
}

impl Outcomes {
    pub(crate) fn drop_record(&mut self, w: &Work) {
        self.dropped.push(w.source_id);
    }

    /// Fails `w` (as it entered the failing step) with attempts 1 and no Lambda ARN.
    pub(crate) fn fail(
        &mut self,
        w: &Work,
        error_output_type: &'static str,
        code: &str,
        message: impl Into<String>,
    ) {
        self.failed.push(FailedRecord {
            source_id: w.source_id,
            arrival_ms: w.arrival_ms,
            raw_data: w.data.clone(),
            error_output_type,
            error_code: code.to_owned(),
            error_message: message.into(),
            attempts_made: 1,
            lambda_arn: None,
        });
    }

    fn merge(&mut self, other: Outcomes) {
        self.dropped.extend(other.dropped);
        self.failed.extend(other.failed);
    }
}

/// The record processors of one delivery stream. Cheap to clone (shared inner state).
#[derive(Clone)]
pub struct ProcessorChain {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProcessorChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.inner;
        f.debug_struct("ProcessorChain")
            .field("decompression", &i.decompression)
            .field("cloudwatch_logs", &i.cloudwatch_logs)
            .field("deaggregation", &i.deaggregation)
            .field("lambda", &i.lambda.as_ref().map(|l| l.arn()))
            .field("jq_transform", &i.jq_transform.as_ref().map(|p| p.source()))
            .field("metadata_query", &i.metadata.as_ref().map(|p| p.source()))
            .field("append_delimiter", &i.append_delimiter)
            .field("dynamic_partitioning", &i.dynamic_partitioning)
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) decompression: bool,
    /// `Some(extract)` when `CloudWatchLogProcessing` is on.
    pub(crate) cloudwatch_logs: Option<bool>,
    pub(crate) deaggregation: Option<deagg::SubRecordType>,
    pub(crate) lambda: Option<lambda::LambdaProcessor>,
    pub(crate) jq_transform: Option<jq::JqProgram>,
    /// Only set when dynamic partitioning is enabled.
    pub(crate) metadata: Option<jq::JqProgram>,
    pub(crate) append_delimiter: bool,
    pub(crate) dynamic_partitioning: bool,
}

impl ProcessorChain {
    /// A chain that does nothing.
    pub fn identity() -> Self {
        ProcessorChain {
            inner: Arc::new(Inner {
                decompression: false,
                cloudwatch_logs: None,
                deaggregation: None,
                lambda: None,
                jq_transform: None,
                metadata: None,
                append_delimiter: false,
                dynamic_partitioning: false,
            }),
        }
    }

    /// Builds the chain from the stream's `ProcessingConfiguration` (AWS JSON shape:
    /// `{Enabled, Processors:[{Type, Parameters:[{ParameterName, ParameterValue}]}]}`),
    /// `DynamicPartitioningConfiguration.Enabled`, and Lakehose's Lambda endpoint map.
    ///
    /// The configuration is validated even when `Enabled` is false or absent (then the chain
    /// is the identity: AWS's boolean defaults to false), except that a disabled chain's
    /// `LambdaArn` need not be mapped in `lambdas`. `MetadataExtraction` runs only when
    /// `dynamic_partitioning` is true, and Lambda partition keys are kept only then.
    pub fn from_config(
        processing: Option<&serde_json::Value>,
        dynamic_partitioning: bool,
        lambdas: &LambdaEndpoints,
        stream_arn: &str,
        region: &str,
    ) -> Result<Self, ConfigError> {
        let plan = config::parse(processing)?;
        let metadata = plan
            .metadata_query
            .as_deref()
            .map(jq::JqProgram::compile)
            .transpose()
            .map_err(|e| {
                ConfigError(format!(
                    "MetadataExtractionQuery is not a valid jq program: {e}"
                ))
            })?;
        let jq_transform = plan
            .jq_transform
            .as_deref()
            .map(jq::JqProgram::compile)
            .transpose()
            .map_err(|e| {
                ConfigError(format!(
                    "The {} program (MetadataExtractionQuery) is not a valid jq program: {e}",
                    processor_types::LAKEHOSE_JQ
                ))
            })?;
        if !plan.enabled {
            return Ok(Self::identity());
        }
        let lambda = plan
            .lambda
            .as_ref()
            .map(|p| lambda::LambdaProcessor::new(p, lambdas, stream_arn, region))
            .transpose()?;
        Ok(ProcessorChain {
            inner: Arc::new(Inner {
                decompression: plan.decompression,
                cloudwatch_logs: plan.cloudwatch_logs,
                deaggregation: plan.deaggregation,
                lambda,
                jq_transform,
                metadata: if dynamic_partitioning { metadata } else { None },
                append_delimiter: plan.append_delimiter,
                dynamic_partitioning,
            }),
        })
    }

    /// Nothing to do: the delivery loop can skip processing.
    pub fn is_identity(&self) -> bool {
        let i = &self.inner;
        !i.decompression
            && i.cloudwatch_logs.is_none()
            && i.deaggregation.is_none()
            && i.lambda.is_none()
            && i.jq_transform.is_none()
            && i.metadata.is_none()
            && !i.append_delimiter
    }

    /// Whether output records carry partition keys (dynamic partitioning with a key source).
    pub fn produces_partition_keys(&self) -> bool {
        self.inner.dynamic_partitioning
            && (self.inner.metadata.is_some() || self.inner.lambda.is_some())
    }

    /// The Lambda processor's buffering hints, when a Lambda processor is configured.
    pub fn lambda_buffering(&self) -> Option<LambdaBuffering> {
        self.inner.lambda.as_ref().map(|l| l.buffering())
    }

    /// Processes a batch. Never loses a record: every input ends as output record(s),
    /// dropped, or failed (see the crate docs for the exact accounting).
    pub async fn process(&self, input: &[InputRecord]) -> ProcessedBatch {
        let inner = &self.inner;
        let mut outcomes = Outcomes::default();
        let mut stats = ProcessingStats::default();
        let mut work: Vec<Work> = input
            .iter()
            .map(|r| Work {
                source_id: r.id,
                arrival_ms: r.arrival_ms,
                data: r.data.clone(),
                keys: PartitionKeys::default(),
            })
            .collect();

        if inner.has_pre_lambda_steps() && !work.is_empty() {
            let shared = Arc::clone(inner);
            let (w, o) = blocking(move || {
                let mut o = Outcomes::default();
                let w = shared.pre_lambda(work, &mut o);
                (w, o)
            })
            .await;
            work = w;
            outcomes.merge(o);
        }

        if let Some(l) = &inner.lambda
            && !work.is_empty()
        {
            let started = std::time::Instant::now();
            work = l
                .run(work, inner.dynamic_partitioning, &mut outcomes, &mut stats)
                .await;
            stats.lambda_duration = started.elapsed();
        }

        if inner.has_post_lambda_steps() && !work.is_empty() {
            let shared = Arc::clone(inner);
            let (w, o, jq_duration) = blocking(move || {
                let mut o = Outcomes::default();
                let mut jq_duration = Duration::ZERO;
                let w = shared.post_lambda(work, &mut o, &mut jq_duration);
                (w, o, jq_duration)
            })
            .await;
            work = w;
            outcomes.merge(o);
            stats.jq_duration = jq_duration;
        }

        ProcessedBatch {
            records: work
                .into_iter()
                .map(|w| OutputRecord {
                    source_id: w.source_id,
                    arrival_ms: w.arrival_ms,
                    data: w.data,
                    partition_keys: w.keys,
                })
                .collect(),
            dropped: outcomes.dropped,
            failed: outcomes.failed,
            stats,
        }
    }
}

/// Runs CPU-bound work on the blocking pool; a panic there resumes in the caller.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("record processing task did not complete: {e}"),
    }
}

impl Inner {
    fn has_pre_lambda_steps(&self) -> bool {
        self.decompression || self.cloudwatch_logs.is_some() || self.deaggregation.is_some()
    }

    fn has_post_lambda_steps(&self) -> bool {
        self.jq_transform.is_some() || self.metadata.is_some() || self.append_delimiter
    }

    /// Decompression, CloudWatch Logs processing, de-aggregation.
    fn pre_lambda(&self, work: Vec<Work>, o: &mut Outcomes) -> Vec<Work> {
        let mut work = work;
        if self.decompression || self.cloudwatch_logs.is_some() {
            let mut budget = MAX_BATCH_DECOMPRESSED_BYTES;
            work = fan_out(work, o, |w, out, o| {
                cwl::process(
                    w,
                    self.decompression,
                    self.cloudwatch_logs,
                    &mut budget,
                    out,
                    o,
                )
            });
        }
        if let Some(kind) = &self.deaggregation {
            work = fan_out(work, o, |w, out, o| deagg::process(w, kind, out, o));
        }
        work
    }

    /// `Lakehose.Jq`, metadata extraction, delimiter.
    fn post_lambda(&self, work: Vec<Work>, o: &mut Outcomes, jq_time: &mut Duration) -> Vec<Work> {
        let mut work = work;
        // With a sandbox installed (the server), programs run in its worker processes;
        // plain projections never run jq at all.
        let sandbox = sandbox::installed();
        if let Some(program) = &self.jq_transform {
            let started = std::time::Instant::now();
            work = match sandbox {
                Some(sb) => {
                    let data: Vec<&[u8]> = work.iter().map(|w| &w.data[..]).collect();
                    let mut results = sb.transform(program.source(), &data).into_iter();
                    fan_out(work, o, |w, out, o| {
                        let result = results.next().expect("one result per record");
                        jq::apply_transform(w, result, out, o)
                    })
                }
                None => fan_out(work, o, |w, out, o| jq::transform(program, w, out, o)),
            };
            *jq_time += started.elapsed();
        }
        if let Some(query) = &self.metadata {
            let started = std::time::Instant::now();
            // Records with the same keys share one map, built once per batch. Each record
            // keeps its place or fails: `work` is updated in place.
            let mut cache = jq::KeyCache::default();
            match sandbox.filter(|_| !jq::is_projection(query)) {
                Some(sb) => {
                    let data: Vec<&[u8]> = work.iter().map(|w| &w.data[..]).collect();
                    let mut results = sb.keys(query.source(), &data).into_iter();
                    work.retain_mut(|w| {
                        let result = results.next().expect("one result per record");
                        let result = result.map(|keys| cache.intern(keys));
                        jq::apply_keys(w, result, o)
                    });
                }
                None => work.retain_mut(|w| jq::extract_keys(query, &mut cache, w, o)),
            }
            *jq_time += started.elapsed();
        }
        if self.append_delimiter {
            for w in &mut work {
                let mut data = Vec::with_capacity(w.data.len() + 1);
                data.extend_from_slice(&w.data);
                data.push(b'\n');
                w.data = Bytes::from(data);
            }
        }
        work
    }
}

/// Applies a one-to-many step to every record; an input that ends nowhere (no output, no
/// drop, no failure) is counted as dropped, so the accounting invariant holds by construction.
fn fan_out(
    work: Vec<Work>,
    o: &mut Outcomes,
    mut step: impl FnMut(Work, &mut Vec<Work>, &mut Outcomes),
) -> Vec<Work> {
    let mut out = Vec::with_capacity(work.len());
    for w in work {
        let (before_out, before_dropped, before_failed) =
            (out.len(), o.dropped.len(), o.failed.len());
        let source_id = w.source_id;
        step(w, &mut out, o);
        if out.len() == before_out
            && o.dropped.len() == before_dropped
            && o.failed.len() == before_failed
        {
            o.dropped.push(source_id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_document_shape() {
        let f = FailedRecord {
            source_id: 7,
            arrival_ms: 1_700_000_000_000,
            raw_data: Bytes::from_static(b"hello"),
            error_output_type: error_output::PROCESSING_FAILED,
            error_code: codes::LAMBDA_PROCESSING_FAILED.into(),
            error_message: "nope".into(),
            attempts_made: 4,
            lambda_arn: Some("arn:aws:lambda:us-east-1:123456789012:function:f".into()),
        };
        let doc = f.to_error_document(1_700_000_000_500);
        assert_eq!(
            doc,
            r#"{"attemptsMade":4,"arrivalTimestamp":1700000000000,"errorCode":"Lambda.ProcessingFailed","errorMessage":"nope","attemptEndingTimestamp":1700000000500,"rawData":"aGVsbG8=","lambdaArn":"arn:aws:lambda:us-east-1:123456789012:function:f"}"#
        );
        let no_arn = FailedRecord {
            lambda_arn: None,
            ..f
        };
        assert!(!no_arn.to_error_document(0).contains("lambdaArn"));
    }

    #[test]
    fn chain_is_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<ProcessorChain>();
        fn assert_send<T: Send>(_: &T) {}
        let chain = ProcessorChain::identity();
        let fut = chain.process(&[]);
        assert_send(&fut);
    }

    #[test]
    fn partition_keys_namespaces() {
        let mut k = PartitionKeys::default();
        k.from_query.insert("a".into(), "q".into());
        k.from_lambda.insert("a".into(), "l".into());
        assert_eq!(k.get("partitionKeyFromQuery", "a"), Some("q"));
        assert_eq!(k.get("partitionKeyFromLambda", "a"), Some("l"));
        assert_eq!(k.get("other", "a"), None);
    }
}
