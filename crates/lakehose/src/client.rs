//! A small Firehose client for the CLI: AWS JSON 1.1 over HTTP/1.1 keep-alive connections.
//! It speaks exactly what the AWS SDKs send (`X-Amz-Target`, `application/x-amz-json-1.1`) and
//! parses AWS error bodies, so `lakehose put` and `lakehose streams` work against Lakehose and
//! any Firehose-compatible endpoint.
//!
//! When `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are set, every request is signed with
//! SigV4 (region `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`; service `firehose`
//! for the AWS API, `lakehose` for `/v1/query`), as a server with `[auth]` keys requires.

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
    credentials: Option<Credentials>,
}

/// The access key requests are signed with (from the environment).
#[derive(Clone)]
struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    region: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (both set and not empty), with the region
    /// of `AWS_REGION`, `AWS_DEFAULT_REGION` or `us-east-1`.
    fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Some(Self {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
        })
    }
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
        Ok(Self {
            endpoint,
            http,
            credentials: Credentials::from_env(),
        })
    }

    /// Signs every request with this key (instead of the environment's).
    pub fn with_credentials(mut self, access_key_id: &str, secret_access_key: &str) -> Self {
        self.credentials = Some(Credentials {
            access_key_id: access_key_id.to_string(),
            secret_access_key: secret_access_key.to_string(),
            region: "us-east-1".into(),
        });
        self
    }

    /// Calls `op` with a JSON body already serialised.
    pub async fn call_raw(&self, op: &str, body: Bytes) -> Result<Value, CallError> {
        let request = hyper::Request::post(self.endpoint.clone())
            .header("x-amz-target", format!("Firehose_20150804.{op}"))
            .header("content-type", "application/x-amz-json-1.1")
            .body(body)
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
            .body(body)
            .map_err(|e| CallError::Transport(e.to_string()))?;
        self.send(request).await
    }

    /// Signs `request` (when there are credentials), sends it and reads the whole answer.
    async fn send(
        &self,
        mut request: hyper::Request<Bytes>,
    ) -> Result<(u16, hyper::HeaderMap, Bytes), CallError> {
        if let Some(creds) = &self.credentials {
            let service = if request.headers().contains_key("x-amz-target") {
                "firehose"
            } else {
                "lakehose"
            };
            if let Some(authority) = request.uri().authority().cloned()
                && let Ok(host) = hyper::header::HeaderValue::from_str(authority.as_str())
            {
                request.headers_mut().insert(hyper::header::HOST, host);
            }
            let (mut parts, body) = request.into_parts();
            lakehose_auth::sigv4::sign(
                parts.method.as_str(),
                parts.uri.path(),
                parts.uri.query().unwrap_or_default(),
                &mut parts.headers,
                &body,
                &creds.access_key_id,
                &creds.secret_access_key,
                &creds.region,
                service,
                lakehose_auth::sigv4::unix_now(),
            );
            request = hyper::Request::from_parts(parts, body);
        }
        let response = self
            .http
            .request(request.map(Full::new))
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
