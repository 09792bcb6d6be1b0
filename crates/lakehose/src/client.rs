//! A small Firehose client for the CLI: AWS JSON 1.1 over HTTP/1.1 keep-alive connections.
//! It speaks exactly what the AWS SDKs send (`X-Amz-Target`, `application/x-amz-json-1.1`) and
//! parses AWS error bodies, so `lakehose put` and `lakehose streams` work against Lakehose and
//! any Firehose-compatible endpoint that does not require signatures.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A Firehose endpoint.
#[derive(Clone, Debug)]
pub struct FirehoseClient {
    endpoint: hyper::Uri,
    http: Client<HttpConnector, Full<Bytes>>,
}

/// A failed call: an AWS error (`__type`, message) or a transport failure.
#[derive(Debug)]
pub enum CallError {
    /// The server answered with an AWS error body.
    Aws {
        /// HTTP status.
        status: u16,
        /// `__type`, e.g. `ResourceNotFoundException`.
        kind: String,
        /// The message.
        message: String,
    },
    /// The request did not complete.
    Transport(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Aws {
                kind,
                message,
                status,
            } => write!(f, "{kind} ({status}): {message}"),
            CallError::Transport(m) => write!(f, "cannot reach the endpoint: {m}"),
        }
    }
}

impl std::error::Error for CallError {}

impl CallError {
    /// Whether retrying the call may help (throttling, 5xx, connection trouble).
    pub fn retryable(&self) -> bool {
        match self {
            CallError::Aws { status, .. } => *status >= 500,
            CallError::Transport(_) => true,
        }
    }
}

impl FirehoseClient {
    /// A client for `endpoint` (`http://host:port`).
    pub fn new(endpoint: &str) -> anyhow::Result<Self> {
        let endpoint: hyper::Uri = endpoint.parse()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .build(connector);
        Ok(Self { endpoint, http })
    }

    /// Calls `op` with a JSON body already serialised.
    pub async fn call_raw(&self, op: &str, body: Bytes) -> Result<Value, CallError> {
        let request = hyper::Request::post(self.endpoint.clone())
            .header("x-amz-target", format!("Firehose_20150804.{op}"))
            .header("content-type", "application/x-amz-json-1.1")
            .body(Full::new(body))
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let (status, _, bytes) = self.send(request).await?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status == 200 {
            return Ok(value);
        }
        let kind = value["__type"].as_str().unwrap_or("UnknownError");
        let kind = kind.rsplit('#').next().unwrap_or(kind).to_string();
        let message = value["message"]
            .as_str()
            .or(value["Message"].as_str())
            .unwrap_or("")
            .to_string();
        Err(CallError::Aws {
            status,
            kind,
            message,
        })
    }

    /// POSTs `body` to `path` on the endpoint (the non-AWS routes such as `/v1/query`):
    /// the status, the headers and the whole body.
    pub async fn post(
        &self,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, hyper::HeaderMap, Bytes), CallError> {
        let base = self.endpoint.to_string();
        let uri = format!("{}{path}", base.trim_end_matches('/'));
        let request = hyper::Request::post(uri)
            .header("content-type", "application/json")
            .body(Full::new(body))
            .map_err(|e| CallError::Transport(e.to_string()))?;
        self.send(request).await
    }

    /// Sends `request` and reads the whole answer.
    async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<(u16, hyper::HeaderMap, Bytes), CallError> {
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?
            .to_bytes();
        Ok((status, headers, bytes))
    }

    /// Calls `op` with a JSON body.
    pub async fn call(&self, op: &str, body: &Value) -> Result<Value, CallError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CallError::Transport(e.to_string()))?;
        self.call_raw(op, Bytes::from(bytes)).await
    }
}

/// Serialises a PutRecordBatch body (records base64-encoded).
pub fn put_record_batch_body(stream: &str, records: &[&[u8]]) -> Bytes {
    use base64::Engine;
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut out =
        String::with_capacity(64 + records.iter().map(|r| r.len() * 4 / 3 + 16).sum::<usize>());
    out.push_str("{\"DeliveryStreamName\":");
    out.push_str(&serde_json::to_string(stream).unwrap_or_default());
    out.push_str(",\"Records\":[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"Data\":\"");
        engine.encode_string(r, &mut out);
        out.push_str("\"}");
    }
    out.push_str("]}");
    Bytes::from(out)
}
