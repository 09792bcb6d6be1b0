//! The `Lambda` processor: Firehose's data transformation contract over the AWS Lambda Invoke
//! API (`POST {endpoint}/2015-03-31/functions/{FunctionName}/invocations`).
//!
//! Invariants:
//! - Every record handed to [`LambdaProcessor::run`] ends exactly once: as a transformed
//!   record (`Ok`), in `dropped` (`Dropped`), or failed (`ProcessingFailed`, a response fault,
//!   or an invocation that failed every attempt). Outputs keep the input order.
//! - An invocation carries at most `BufferSizeInMBs` of record data (a record larger than that
//!   goes alone) and its request body stays under the 6 MB payload limit; a record that cannot
//!   fit even alone fails with `Lambda.RequestEntityTooLarge` without being sent.
//! - At most [`crate::MAX_LAMBDA_IN_FLIGHT`] invocations are in flight; each attempt is bounded
//!   by the endpoint's timeout and its response body by 6 MB.
//! - An attempt fails on a transport error, a timeout, a non-2xx status, a 200 with
//!   `X-Amz-Function-Error`, or a body that is not the response JSON; it is retried
//!   `NumberOfRetries` times with exponential backoff, and the same request body (same
//!   `invocationId` and `recordId`s) is sent each time. When every attempt failed, every record
//!   of the invocation fails with the last attempt's error code and
//!   `attemptsMade = NumberOfRetries + 1`.
//! - Per-record faults of a well-formed response do not fail the other records: a `recordId`
//!   missing from the response (`Lambda.MissingRecordId`), returned twice
//!   (`Lambda.DuplicatedRecordId`), or an `Ok` record without valid base64 `data`
//!   (`Lambda.JsonProcessingException`). `recordId`s the request did not contain are ignored.
//! - Endpoints are `http://` or `https://` (rustls on the ring provider, verified against the
//!   system's roots; `SSL_CERT_FILE` names another bundle). An endpoint with `sigv4 = true`
//!   (AWS Lambda itself) gets every attempt signed anew with AWS Signature Version 4 for the
//!   `lambda` service, in the function's region; the others (local runtimes such as
//!   `sam local start-lambda`, which check no signature) are sent unsigned.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use crate::config::LambdaParams;
use crate::{
    ConfigError, FailedRecord, LambdaBuffering, MAX_LAMBDA_IN_FLIGHT, MAX_LAMBDA_PAYLOAD,
    MAX_PARTITION_KEYS, Outcomes, ProcessingStats, Work, codes, error_output,
    validate_partition_value,
};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Default time one invocation attempt may take (Firehose allows functions up to 5 minutes;
/// Lakehose's default is shorter and configurable).
pub const DEFAULT_LAMBDA_TIMEOUT: Duration = Duration::from_secs(60);
/// Default base delay between invocation attempts (doubles per retry, capped at 8 s).
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(500);
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(8);

/// JSON bytes of the event besides its records (ids, ARN, region, braces).
const EVENT_OVERHEAD: usize = 1024;
/// JSON bytes of one event record besides its base64 data.
const RECORD_OVERHEAD: usize = 128;

/// One function endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LambdaEndpoint {
    /// Base URL of the Lambda-compatible API, e.g. `http://127.0.0.1:9001` or
    /// `https://lambda.eu-west-1.amazonaws.com`.
    pub url: String,
    /// `FunctionName` for the invoke path; default: the name in the ARN (or the key itself).
    pub function_name: Option<String>,
    /// Per-attempt timeout for this function; default: [`LambdaEndpoints::timeout`].
    pub timeout: Option<Duration>,
    /// How invocations are signed; `None`: unsigned.
    pub signing: Option<Signing>,
}

/// SigV4 signing of an endpoint's invocations (service `lambda`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signing {
    /// The signing region; default: the region of the `LambdaArn`, else the server's region.
    pub region: Option<String>,
    /// The key that signs.
    pub credentials: Credentials,
}

/// An AWS access key (and the session token of temporary credentials). `Debug` shows only the
/// access key id.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token, sent as `X-Amz-Security-Token`.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The key in the environment, as the AWS CLI reads it: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and, when set, `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Self {
                access_key_id,
                secret_access_key,
                session_token: var("AWS_SESSION_TOKEN"),
            }),
            _ => Err(
                "sigv4 = true needs access_key_id and secret_access_key, in the table or \
                 in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                    .to_owned(),
            ),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EndpointSpec {
    Url(String),
    Table {
        url: String,
        #[serde(default)]
        function_name: Option<String>,
        #[serde(default)]
        timeout_seconds: Option<f64>,
        #[serde(default)]
        sigv4: bool,
        #[serde(default)]
        region: Option<String>,
        #[serde(default)]
        access_key_id: Option<String>,
        #[serde(default)]
        secret_access_key: Option<String>,
        #[serde(default)]
        session_token: Option<String>,
    },
}

/// The `[lambdas]` table of `lakehose.toml`: Lambda ARN (exact, or function name) -> endpoint.
///
/// ```toml
/// [lambdas]
/// "arn:aws:lambda:us-east-1:123456789012:function:xform" = "http://127.0.0.1:9001"
/// enrich = { url = "http://127.0.0.1:3001", function_name = "Enrich", timeout_seconds = 30 }
/// # AWS Lambda itself: HTTPS, SigV4 with the key in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
/// # (or access_key_id/secret_access_key/session_token here), region from the ARN.
/// "arn:aws:lambda:eu-west-1:123456789012:function:clean" = { url = "https://lambda.eu-west-1.amazonaws.com", sigv4 = true }
/// ```
///
/// A `LambdaArn` is looked up by the exact ARN first, then by `name:qualifier`, then by
/// function name.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "BTreeMap<String, EndpointSpec>")]
pub struct LambdaEndpoints {
    entries: BTreeMap<String, LambdaEndpoint>,
    timeout: Duration,
    retry_backoff: Duration,
}

impl Default for LambdaEndpoints {
    fn default() -> Self {
        LambdaEndpoints {
            entries: BTreeMap::new(),
            timeout: DEFAULT_LAMBDA_TIMEOUT,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
        }
    }
}

impl TryFrom<BTreeMap<String, EndpointSpec>> for LambdaEndpoints {
    type Error = String;

    fn try_from(map: BTreeMap<String, EndpointSpec>) -> Result<Self, String> {
        let mut endpoints = LambdaEndpoints::default();
        for (key, spec) in map {
            let endpoint = match spec {
                EndpointSpec::Url(url) => LambdaEndpoint {
                    url,
                    function_name: None,
                    timeout: None,
                    signing: None,
                },
                EndpointSpec::Table {
                    url,
                    function_name,
                    timeout_seconds,
                    sigv4,
                    region,
                    access_key_id,
                    secret_access_key,
                    session_token,
                } => LambdaEndpoint {
                    url,
                    function_name,
                    signing: signing(
                        sigv4,
                        region,
                        access_key_id,
                        secret_access_key,
                        session_token,
                    )
                    .map_err(|e| format!("lambdas.{key:?}: {e}"))?,
                    timeout: match timeout_seconds {
                        None => None,
                        Some(s) if s.is_finite() && s > 0.0 && s <= 900.0 => {
                            Some(Duration::from_secs_f64(s))
                        }
                        Some(s) => {
                            return Err(format!(
                                "lambdas.{key:?}: timeout_seconds must be in (0, 900], got {s}"
                            ));
                        }
                    },
                },
            };
            endpoints
                .try_insert(key.clone(), endpoint)
                .map_err(|e| format!("lambdas.{key:?}: {e}"))?;
        }
        Ok(endpoints)
    }
}

/// The signing of a `[lambdas]` table entry: `None` without `sigv4 = true`, whose key comes
/// from the entry or else from the environment.
fn signing(
    sigv4: bool,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
) -> Result<Option<Signing>, String> {
    if !sigv4 {
        if region.is_some()
            || access_key_id.is_some()
            || secret_access_key.is_some()
            || session_token.is_some()
        {
            return Err(
                "region and keys are for signing: set sigv4 = true, or remove them".to_owned(),
            );
        }
        return Ok(None);
    }
    let credentials = match (access_key_id, secret_access_key) {
        (Some(access_key_id), Some(secret_access_key)) => Credentials {
            access_key_id,
            secret_access_key,
            session_token,
        },
        (None, None) if session_token.is_none() => Credentials::from_env()?,
        _ => {
            return Err(
                "access_key_id and secret_access_key go together (a session_token needs both)"
                    .to_owned(),
            );
        }
    };
    Ok(Some(Signing {
        region,
        credentials,
    }))
}

fn check_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid endpoint URL {url:?}: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!(
            "endpoint URL {url:?} must be http://host[:port] or https://host[:port]"
        ));
    }
    if uri.query().is_some() {
        return Err(format!("endpoint URL {url:?} must not have a query"));
    }
    Ok(uri)
}

impl LambdaEndpoints {
    /// An empty map with default timeout and backoff.
    pub fn new() -> Self {
        Self::default()
    }

    fn try_insert(&mut self, key: String, endpoint: LambdaEndpoint) -> Result<(), String> {
        check_url(&endpoint.url)?;
        self.entries.insert(key, endpoint);
        Ok(())
    }

    /// Maps `arn_or_name` to the endpoint at `url`. Panics on a URL that is not `http://` or
    /// `https://`.
    pub fn insert(&mut self, arn_or_name: impl Into<String>, url: impl Into<String>) -> &mut Self {
        let endpoint = LambdaEndpoint {
            url: url.into(),
            function_name: None,
            timeout: None,
            signing: None,
        };
        self.try_insert(arn_or_name.into(), endpoint)
            .expect("valid Lambda endpoint URL");
        self
    }

    /// Maps `arn_or_name` to `endpoint`, checking its URL.
    pub fn insert_endpoint(
        &mut self,
        arn_or_name: impl Into<String>,
        endpoint: LambdaEndpoint,
    ) -> Result<&mut Self, String> {
        self.try_insert(arn_or_name.into(), endpoint)?;
        Ok(self)
    }

    /// Sets the default per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the base delay between attempts (doubling per retry, capped at 8 s).
    pub fn with_retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// The default per-attempt timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// No function mapped.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The endpoint for `arn` and the function name (and qualifier) to invoke.
    pub fn resolve(&self, arn: &str) -> Option<(&LambdaEndpoint, String, Option<String>)> {
        let (name, qualifier) = split_function(arn);
        let qualified = qualifier.as_ref().map(|q| format!("{name}:{q}"));
        let endpoint = self
            .entries
            .get(arn)
            .or_else(|| qualified.as_ref().and_then(|q| self.entries.get(q)))
            .or_else(|| self.entries.get(&name))?;
        let function = endpoint.function_name.clone().unwrap_or(name);
        Some((endpoint, function, qualifier))
    }
}

/// The region of `arn:aws:lambda:REGION:...` (`None` for a bare function name).
fn arn_region(arn: &str) -> Option<String> {
    match arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "lambda", region, ..] if !region.is_empty() => Some((*region).to_owned()),
        _ => None,
    }
}

/// The client's connector: HTTPS (rustls, ring, the system's roots) when `uri` is `https://`;
/// plain `http://` URIs never load the roots.
fn https_connector(uri: &http::Uri, http: HttpConnector) -> HttpsConnector<HttpConnector> {
    let provider = || Arc::new(rustls::crypto::ring::default_provider());
    let no_roots = || {
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    };
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = if uri.scheme_str() == Some("https") {
        builder
            .with_provider_and_native_roots(provider())
            .unwrap_or_else(|e| {
                tracing::warn!(
                    error = %e,
                    "no system root certificates; https Lambda endpoints will fail verification"
                );
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(no_roots())
            })
    } else {
        builder.with_tls_config(no_roots())
    };
    builder.https_or_http().enable_http1().wrap_connector(http)
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]` or `NAME[:QUALIFIER]`.
fn split_function(arn: &str) -> (String, Option<String>) {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "lambda", _, _, "function", name] => ((*name).to_owned(), None),
        ["arn", _, "lambda", _, _, "function", name, q] => {
            ((*name).to_owned(), Some((*q).to_owned()))
        }
        [name, q] if !name.is_empty() && !q.is_empty() && *name != "arn" => {
            ((*name).to_owned(), Some((*q).to_owned()))
        }
        _ => (arn.to_owned(), None),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    invocation_id: String,
    delivery_stream_arn: &'a str,
    region: &'a str,
    records: Vec<EventRecord>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventRecord {
    record_id: String,
    approximate_arrival_timestamp: i64,
    data: String,
}

#[derive(Deserialize)]
struct Response {
    records: Vec<ResponseRecord>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseRecord {
    record_id: String,
    result: ResultKind,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    metadata: Option<ResponseMetadata>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
enum ResultKind {
    Ok,
    Dropped,
    ProcessingFailed,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseMetadata {
    #[serde(default)]
    partition_keys: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A failed attempt.
#[derive(Debug)]
struct AttemptError {
    code: &'static str,
    message: String,
}

/// What happened to one record of an invocation.
enum RecordOutcome {
    Ok(Work),
    Dropped,
    Failed { code: &'static str, message: String },
}

/// The configured Lambda processor.
pub(crate) struct LambdaProcessor {
    arn: String,
    invoke_uri: http::Uri,
    retries: u32,
    buffer_bytes: usize,
    interval: Duration,
    timeout: Duration,
    backoff: Duration,
    stream_arn: String,
    region: String,
    /// The key and region that sign each attempt, when the endpoint wants SigV4.
    signing: Option<(Credentials, String)>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl LambdaProcessor {
    pub(crate) fn new(
        params: &LambdaParams,
        endpoints: &LambdaEndpoints,
        stream_arn: &str,
        region: &str,
    ) -> Result<Self, ConfigError> {
        let Some((endpoint, function, qualifier)) = endpoints.resolve(&params.arn) else {
            return Err(ConfigError(format!(
                "LambdaArn {:?} is not mapped to a function endpoint; add it (or its function name) to the [lambdas] table of lakehose.toml.",
                params.arn
            )));
        };
        let base = endpoint.url.trim_end_matches('/');
        let mut uri = format!(
            "{base}/2015-03-31/functions/{}/invocations",
            encode_segment(&function)
        );
        if let Some(q) = qualifier {
            uri.push_str(&format!("?Qualifier={}", encode_segment(&q)));
        }
        // The base URL was checked when the endpoint was mapped; the path and the qualifier's
        // query are percent-encoded here.
        let invoke_uri: http::Uri = uri
            .parse()
            .map_err(|e| ConfigError(format!("invalid Lambda invoke URL {uri:?}: {e}")))?;
        let signing = endpoint.signing.as_ref().map(|s| {
            let region = s
                .region
                .clone()
                .or_else(|| arn_region(&params.arn))
                .unwrap_or_else(|| region.to_owned());
            (s.credentials.clone(), region)
        });
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        connector.enforce_http(false);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https_connector(&invoke_uri, connector));
        Ok(LambdaProcessor {
            arn: params.arn.clone(),
            invoke_uri,
            retries: params.retries,
            buffer_bytes: params.buffer_bytes,
            interval: Duration::from_secs(u64::from(params.interval_seconds)),
            timeout: endpoint.timeout.unwrap_or(endpoints.timeout),
            backoff: endpoints.retry_backoff,
            stream_arn: stream_arn.to_owned(),
            region: region.to_owned(),
            signing,
            client,
        })
    }

    pub(crate) fn arn(&self) -> &str {
        &self.arn
    }

    pub(crate) fn buffering(&self) -> LambdaBuffering {
        LambdaBuffering {
            size_bytes: self.buffer_bytes,
            interval: self.interval,
        }
    }

    /// Sends `work` through the function; see the module invariants.
    pub(crate) async fn run(
        &self,
        work: Vec<Work>,
        dynamic_partitioning: bool,
        outcomes: &mut Outcomes,
        stats: &mut ProcessingStats,
    ) -> Vec<Work> {
        let mut results: Vec<Option<(RecordOutcome, u32)>> =
            (0..work.len()).map(|_| None).collect();
        let mut chunks: Vec<Vec<usize>> = Vec::new();
        let (mut current, mut raw, mut encoded) = (Vec::new(), 0usize, EVENT_OVERHEAD);
        for (i, w) in work.iter().enumerate() {
            let size = w.data.len().div_ceil(3) * 4 + RECORD_OVERHEAD;
            if EVENT_OVERHEAD + size > MAX_LAMBDA_PAYLOAD {
                results[i] = Some((
                    RecordOutcome::Failed {
                        code: codes::LAMBDA_REQUEST_TOO_LARGE,
                        message: format!(
                            "The record ({} bytes) does not fit in a {MAX_LAMBDA_PAYLOAD}-byte Lambda invocation payload.",
                            w.data.len()
                        ),
                    },
                    0,
                ));
                continue;
            }
            if !current.is_empty()
                && (raw + w.data.len() > self.buffer_bytes || encoded + size > MAX_LAMBDA_PAYLOAD)
            {
                chunks.push(std::mem::take(&mut current));
                (raw, encoded) = (0, EVENT_OVERHEAD);
            }
            current.push(i);
            raw += w.data.len();
            encoded += size;
        }
        if !current.is_empty() {
            chunks.push(current);
        }

        let work_ref = &work;
        let mut invocations = futures::stream::iter(chunks)
            .map(|chunk| async move {
                let r = self.invoke(work_ref, &chunk, dynamic_partitioning).await;
                (chunk, r)
            })
            .buffer_unordered(MAX_LAMBDA_IN_FLIGHT);
        while let Some((chunk, (per_record, attempts, failed_invocation))) =
            invocations.next().await
        {
            stats.lambda_attempts += attempts;
            if failed_invocation {
                stats.lambda_failed_invocations += 1;
            }
            for (i, outcome) in chunk.into_iter().zip(per_record) {
                results[i] = Some((outcome, attempts));
            }
        }
        drop(invocations);

        let mut out = Vec::with_capacity(work.len());
        for (w, result) in work.into_iter().zip(results) {
            let (outcome, attempts) = result.expect("every record has an outcome");
            match outcome {
                RecordOutcome::Ok(new) => out.push(new),
                RecordOutcome::Dropped => outcomes.drop_record(&w),
                RecordOutcome::Failed { code, message } => outcomes.failed.push(FailedRecord {
                    source_id: w.source_id,
                    arrival_ms: w.arrival_ms,
                    raw_data: w.data,
                    error_output_type: error_output::PROCESSING_FAILED,
                    error_code: code.to_owned(),
                    error_message: message,
                    attempts_made: attempts,
                    lambda_arn: Some(self.arn.clone()),
                }),
            }
        }
        out
    }

    /// One invocation with retries: per-record outcomes (in `chunk` order), attempts made,
    /// and whether the invocation failed as a whole.
    async fn invoke(
        &self,
        work: &[Work],
        chunk: &[usize],
        dynamic_partitioning: bool,
    ) -> (Vec<RecordOutcome>, u32, bool) {
        let record_ids: Vec<String> = chunk
            .iter()
            .map(|&i| format!("{:020}{:010}", work[i].source_id, i))
            .collect();
        let event = Event {
            invocation_id: uuid::Uuid::new_v4().to_string(),
            delivery_stream_arn: &self.stream_arn,
            region: &self.region,
            records: chunk
                .iter()
                .zip(&record_ids)
                .map(|(&i, id)| EventRecord {
                    record_id: id.clone(),
                    approximate_arrival_timestamp: work[i].arrival_ms,
                    data: B64.encode(&work[i].data),
                })
                .collect(),
        };
        let body = Bytes::from(serde_json::to_vec(&event).expect("event serialises"));
        drop(event);

        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let error = match self.attempt(body.clone()).await {
                Ok(response) => {
                    let outcomes =
                        apply_response(response, work, chunk, &record_ids, dynamic_partitioning);
                    return (outcomes, attempts, false);
                }
                Err(e) => e,
            };
            if attempts > self.retries {
                tracing::warn!(
                    lambda = %self.arn,
                    attempts,
                    code = error.code,
                    error = %error.message,
                    "Lambda invocation failed; its records go to the error output"
                );
                let outcomes = chunk
                    .iter()
                    .map(|_| RecordOutcome::Failed {
                        code: error.code,
                        message: error.message.clone(),
                    })
                    .collect();
                return (outcomes, attempts, true);
            }
            tracing::debug!(lambda = %self.arn, attempts, error = %error.message, "retrying Lambda invocation");
            let exp = 2u32.saturating_pow(attempts - 1);
            tokio::time::sleep(self.backoff.saturating_mul(exp).min(MAX_RETRY_BACKOFF)).await;
        }
    }

    /// The invocation request for `body`, signed when the endpoint wants SigV4 (afresh for
    /// each attempt: a signature holds its time).
    fn request(&self, body: Bytes) -> http::Request<Full<Bytes>> {
        let mut request = http::Request::post(self.invoke_uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-amz-invocation-type", "RequestResponse")
            .body(Full::new(body.clone()))
            .expect("valid request");
        let Some((credentials, region)) = &self.signing else {
            return request;
        };
        let uri = &self.invoke_uri;
        let headers = request.headers_mut();
        if let Some(host) = uri.authority().and_then(|a| a.as_str().parse().ok()) {
            headers.insert(http::header::HOST, host);
        }
        if let Some(token) = credentials
            .session_token
            .as_deref()
            .and_then(|t| t.parse().ok())
        {
            headers.insert("x-amz-security-token", token);
        }
        lakehose_auth::sigv4::sign(
            "POST",
            uri.path(),
            uri.query().unwrap_or(""),
            headers,
            &body,
            &credentials.access_key_id,
            &credentials.secret_access_key,
            region,
            "lambda",
            lakehose_auth::sigv4::unix_now(),
        );
        request
    }

    /// One HTTP round trip, bounded by the timeout.
    async fn attempt(&self, body: Bytes) -> Result<Response, AttemptError> {
        let request = self.request(body);
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| AttemptError {
                    code: codes::LAMBDA_INVOCATION_FAILED,
                    message: format!("Could not invoke the Lambda function: {}", error_chain(&e)),
                })?;
            let status = response.status();
            let function_error = response
                .headers()
                .get("x-amz-function-error")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let body = Limited::new(response.into_body(), MAX_LAMBDA_PAYLOAD)
                .collect()
                .await
                .map_err(|e| AttemptError {
                    code: codes::LAMBDA_FUNCTION_ERROR,
                    message: format!(
                        "Could not read the Lambda response (the limit is {MAX_LAMBDA_PAYLOAD} bytes): {e}"
                    ),
                })?
                .to_bytes();
            Ok::<_, AttemptError>((status, function_error, body))
        };
        let (status, function_error, body) = match tokio::time::timeout(self.timeout, exchange)
            .await
        {
            Ok(r) => r?,
            Err(_) => {
                return Err(AttemptError {
                    code: codes::LAMBDA_TIMEOUT,
                    message: format!(
                        "Firehose encountered timeout errors when calling AWS Lambda (no response within {:?}).",
                        self.timeout
                    ),
                });
            }
        };
        if !status.is_success() {
            let code = match status.as_u16() {
                401 | 403 => codes::LAMBDA_INVOKE_ACCESS_DENIED,
                404 => codes::LAMBDA_RESOURCE_NOT_FOUND,
                429 => codes::LAMBDA_INVOKE_LIMIT_EXCEEDED,
                _ => codes::LAMBDA_INVOCATION_FAILED,
            };
            return Err(AttemptError {
                code,
                message: format!(
                    "The Lambda endpoint answered HTTP {status}: {}",
                    snippet(&body)
                ),
            });
        }
        if let Some(kind) = function_error {
            return Err(AttemptError {
                code: codes::LAMBDA_FUNCTION_ERROR,
                message: format!(
                    "The Lambda function was invoked but returned an error ({kind}): {}",
                    snippet(&body)
                ),
            });
        }
        serde_json::from_slice::<Response>(&body).map_err(|e| AttemptError {
            code: codes::LAMBDA_JSON_PROCESSING,
            message: format!("The Lambda response is not a valid transformation response: {e}"),
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    text.trim().to_owned()
}

/// Matches a well-formed response to the invocation's records.
fn apply_response(
    response: Response,
    work: &[Work],
    chunk: &[usize],
    record_ids: &[String],
    dynamic_partitioning: bool,
) -> Vec<RecordOutcome> {
    let position: HashMap<&str, usize> = record_ids
        .iter()
        .enumerate()
        .map(|(p, id)| (id.as_str(), p))
        .collect();
    let mut answers: Vec<Vec<ResponseRecord>> = (0..chunk.len()).map(|_| Vec::new()).collect();
    let mut unknown = 0usize;
    for r in response.records {
        match position.get(r.record_id.as_str()) {
            Some(&p) => answers[p].push(r),
            None => unknown += 1,
        }
    }
    if unknown > 0 {
        tracing::warn!(
            unknown,
            "the Lambda response has recordIds that were not sent; ignored"
        );
    }
    answers
        .into_iter()
        .zip(chunk)
        .zip(record_ids)
        .map(|((mut answer, &i), id)| {
            if answer.len() > 1 {
                return RecordOutcome::Failed {
                    code: codes::LAMBDA_DUPLICATED_RECORD_ID,
                    message: format!(
                        "recordId {id} appears {} times in the Lambda response.",
                        answer.len()
                    ),
                };
            }
            let Some(r) = answer.pop() else {
                return RecordOutcome::Failed {
                    code: codes::LAMBDA_MISSING_RECORD_ID,
                    message: format!("recordId {id} is missing from the Lambda response."),
                };
            };
            match r.result {
                ResultKind::Dropped => RecordOutcome::Dropped,
                ResultKind::ProcessingFailed => RecordOutcome::Failed {
                    code: codes::LAMBDA_PROCESSING_FAILED,
                    message: "The Lambda function returned result ProcessingFailed for the record."
                        .into(),
                },
                ResultKind::Ok => ok_record(&work[i], r, id, dynamic_partitioning),
            }
        })
        .collect()
}

fn ok_record(w: &Work, r: ResponseRecord, id: &str, dynamic_partitioning: bool) -> RecordOutcome {
    let json_fault = |message: String| RecordOutcome::Failed {
        code: codes::LAMBDA_JSON_PROCESSING,
        message,
    };
    let Some(data) = r.data else {
        return json_fault(format!("recordId {id} has result Ok but no data."));
    };
    let data = match B64.decode(data.as_bytes()) {
        Ok(d) => d,
        Err(e) => return json_fault(format!("recordId {id}: data is not valid base64: {e}")),
    };
    let mut new = w.with_data(Bytes::from(data));
    if dynamic_partitioning && let Some(keys) = r.metadata.and_then(|m| m.partition_keys) {
        if keys.len() > MAX_PARTITION_KEYS {
            return RecordOutcome::Failed {
                code: codes::METADATA_EXTRACTION_FAILED,
                message: format!(
                    "recordId {id}: {} partition keys; the limit is {MAX_PARTITION_KEYS}.",
                    keys.len()
                ),
            };
        }
        let mut from_lambda = BTreeMap::new();
        for (k, v) in keys {
            let value = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return RecordOutcome::Failed {
                        code: codes::METADATA_EXTRACTION_FAILED,
                        message: format!(
                            "recordId {id}: partition key {k:?} must be a string, got {other}."
                        ),
                    };
                }
            };
            if let Err(e) = validate_partition_value(&value) {
                return RecordOutcome::Failed {
                    code: codes::INVALID_PARTITION_KEY,
                    message: format!("recordId {id}: partition key {k:?}: {e}."),
                };
            }
            from_lambda.insert(k, value);
        }
        new.keys.from_lambda = from_lambda.into();
    }
    RecordOutcome::Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names() {
        assert_eq!(
            split_function("arn:aws:lambda:us-east-1:123456789012:function:xform"),
            ("xform".into(), None)
        );
        assert_eq!(
            split_function("arn:aws:lambda:us-east-1:123456789012:function:xform:live"),
            ("xform".into(), Some("live".into()))
        );
        assert_eq!(split_function("xform"), ("xform".into(), None));
        assert_eq!(
            split_function("xform:3"),
            ("xform".into(), Some("3".into()))
        );
        assert_eq!(encode_segment("a b:c"), "a%20b%3Ac");
    }

    #[test]
    fn resolve_order() {
        let mut e = LambdaEndpoints::new();
        e.insert("xform", "http://127.0.0.1:1");
        e.insert(
            "arn:aws:lambda:us-east-1:1:function:other",
            "http://127.0.0.1:2",
        );
        let (ep, name, q) = e
            .resolve("arn:aws:lambda:us-east-1:1:function:xform:live")
            .unwrap();
        assert_eq!(
            (ep.url.as_str(), name.as_str(), q.as_deref()),
            ("http://127.0.0.1:1", "xform", Some("live"))
        );
        let (ep, name, _) = e
            .resolve("arn:aws:lambda:us-east-1:1:function:other")
            .unwrap();
        assert_eq!(
            (ep.url.as_str(), name.as_str()),
            ("http://127.0.0.1:2", "other")
        );
        assert!(
            e.resolve("arn:aws:lambda:us-east-1:1:function:none")
                .is_none()
        );
    }

    #[test]
    fn deserialises_from_toml_shapes() {
        let v = serde_json::json!({
            "arn:aws:lambda:us-east-1:123456789012:function:xform": "http://127.0.0.1:9001",
            "enrich": {"url": "http://127.0.0.1:3001/", "function_name": "Enrich", "timeout_seconds": 2.5}
        });
        let e: LambdaEndpoints = serde_json::from_value(v).unwrap();
        assert_eq!(e.timeout(), DEFAULT_LAMBDA_TIMEOUT);
        let (ep, name, _) = e.resolve("enrich").unwrap();
        assert_eq!(name, "Enrich");
        assert_eq!(ep.timeout, Some(Duration::from_millis(2500)));
        let bad = serde_json::json!({"x": "ftp://example.com"});
        assert!(serde_json::from_value::<LambdaEndpoints>(bad).is_err());
        let bad = serde_json::json!({"x": {"url": "http://127.0.0.1:1", "timeout_seconds": 0}});
        assert!(serde_json::from_value::<LambdaEndpoints>(bad).is_err());
    }

    #[test]
    fn signing_is_configured_per_endpoint() {
        let v = serde_json::json!({
            "plain": "https://lambda.eu-west-1.amazonaws.com",
            "signed": {"url": "https://lambda.eu-west-1.amazonaws.com", "sigv4": true,
                       "region": "eu-west-1", "access_key_id": "AKID",
                       "secret_access_key": "SECRET", "session_token": "TOKEN"}
        });
        let e: LambdaEndpoints = serde_json::from_value(v).unwrap();
        assert_eq!(e.resolve("plain").unwrap().0.signing, None);
        let signing = e.resolve("signed").unwrap().0.signing.clone().unwrap();
        assert_eq!(signing.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            signing.credentials,
            Credentials {
                access_key_id: "AKID".into(),
                secret_access_key: "SECRET".into(),
                session_token: Some("TOKEN".into()),
            }
        );
        let shown = format!("{:?}", e);
        assert!(shown.contains("AKID") && !shown.contains("SECRET") && !shown.contains("TOKEN"));

        for (bad, why) in [
            (
                serde_json::json!({"url": "http://127.0.0.1:1", "region": "eu-west-1"}),
                "set sigv4 = true",
            ),
            (
                serde_json::json!({"url": "http://127.0.0.1:1", "session_token": "T"}),
                "set sigv4 = true",
            ),
            (
                serde_json::json!({"url": "http://127.0.0.1:1", "sigv4": true, "access_key_id": "AKID"}),
                "go together",
            ),
            (
                serde_json::json!({"url": "http://127.0.0.1:1", "sigv4": true, "session_token": "T"}),
                "go together",
            ),
        ] {
            let e = serde_json::from_value::<LambdaEndpoints>(serde_json::json!({ "f": bad }))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn the_signing_region_defaults_to_the_arns() {
        assert_eq!(
            arn_region("arn:aws:lambda:eu-west-1:123456789012:function:f:live").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("f"), None);
        assert_eq!(arn_region("f:live"), None);
    }
}
