//! Shared test helpers: a real Lambda-compatible function server (the AWS Lambda Invoke API
//! path, handlers written like Firehose transformation functions), record builders, and the
//! accounting check every test runs.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use lakehose_process::{InputRecord, LambdaEndpoints, ProcessedBatch, ProcessorChain};
use serde_json::{Value, json};

pub const STREAM_ARN: &str = "arn:aws:firehose:us-east-1:123456789012:deliverystream/test";
pub const REGION: &str = "us-east-1";
pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Functions the server knows.
pub const FUNCTIONS: &[&str] = &[
    "upper",
    "mixed",
    "crash",
    "raise",
    "slow",
    "missing",
    "duplicate",
    "badjson",
    "wrongshape",
    "flaky",
    "partition",
    "nodata",
    "echo",
    "tracked",
];

pub fn lambda_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:{name}")
}

/// The key a signing server expects every invocation to be signed with (SigV4, service
/// `lambda`).
#[derive(Clone)]
pub struct ExpectedKey {
    pub access_key_id: &'static str,
    pub secret_access_key: &'static str,
    pub session_token: Option<&'static str>,
    pub region: &'static str,
}

#[derive(Default)]
struct State {
    /// When set, every request must carry this key's signature (else 403).
    key: Option<ExpectedKey>,
    /// Requests whose signature was checked and right.
    verified: AtomicUsize,
    /// The query string of every invocation (the qualifier).
    queries: Mutex<Vec<Option<String>>>,
    calls: Mutex<HashMap<String, u32>>,
    events: Mutex<Vec<(String, Value)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A Lambda Invoke API server on 127.0.0.1 running Firehose-style transformation handlers.
pub struct FunctionServer {
    pub url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FunctionServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FunctionServer {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A server that answers 403 to every request not signed with `key`, as AWS Lambda does.
    pub async fn start_signed(key: ExpectedKey) -> Self {
        Self::start_with(Some(key)).await
    }

    async fn start_with(key: Option<ExpectedKey>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            key,
            ..State::default()
        });
        let s = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&s), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FunctionServer { url, state, task }
    }

    /// Endpoints mapping every known function name to this server.
    pub fn endpoints(&self) -> LambdaEndpoints {
        let mut e = LambdaEndpoints::new()
            .with_timeout(Duration::from_secs(10))
            .with_retry_backoff(Duration::from_millis(5));
        for f in FUNCTIONS.iter().chain(&["unknown-function"]) {
            e.insert(*f, self.url.clone());
        }
        e
    }

    pub fn calls(&self, function: &str) -> u32 {
        self.state
            .calls
            .lock()
            .unwrap()
            .get(function)
            .copied()
            .unwrap_or(0)
    }

    pub fn events(&self, function: &str) -> Vec<Value> {
        self.state
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|(f, _)| f == function)
            .map(|(_, e)| e.clone())
            .collect()
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// The query string of every invocation, in order.
    pub fn queries(&self) -> Vec<Option<String>> {
        self.state.queries.lock().unwrap().clone()
    }

    /// Requests whose signature was checked and found right.
    pub fn verified(&self) -> usize {
        self.state.verified.load(Ordering::SeqCst)
    }
}

/// Checks the request's SigV4 signature the independent way: signs the same request again
/// with the AWS SDK's signer (`aws-sigv4`), at the time in its `X-Amz-Date`, over the headers
/// Lakehose signs (`host`, `content-type`, `x-amz-*`), and compares the `Authorization`
/// headers.
fn check_signature(
    key: &ExpectedKey,
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Result<(), String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let authorization = header("authorization").ok_or("no Authorization header")?;
    let amz_date = header("x-amz-date").ok_or("no X-Amz-Date header")?;
    let time = lakehose_auth::sigv4::parse_amz_date(&amz_date).ok_or("bad X-Amz-Date")?;
    if header("x-amz-security-token").as_deref() != key.session_token {
        return Err(format!(
            "X-Amz-Security-Token is {:?}, expected {:?}",
            header("x-amz-security-token"),
            key.session_token
        ));
    }
    let signed: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(n, _)| {
            let n = n.as_str();
            (n == "host" || n == "content-type" || n.starts_with("x-amz-"))
                && n != "x-amz-date"
                && n != "x-amz-security-token"
        })
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    let identity = aws_credential_types::Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        key.session_token.map(str::to_owned),
        None,
        "test",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(key.region)
        .name("lambda")
        .time(std::time::UNIX_EPOCH + Duration::from_secs(time as u64))
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let uri = format!(
        "http://{}{}",
        header("host").ok_or("no Host header")?,
        parts.uri
    );
    let request = SignableRequest::new(
        parts.method.as_str(),
        &uri,
        signed.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let expected = instructions
        .headers()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_owned())
        .ok_or("aws-sigv4 made no Authorization header")?;
    if authorization != expected {
        return Err(format!(
            "signature mismatch: got {authorization}, expected {expected}"
        ));
    }
    Ok(())
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap()
}

fn json_response(v: &Value) -> Response<Full<Bytes>> {
    respond(StatusCode::OK, serde_json::to_vec(v).unwrap())
}

/// A transformation function in Firehose's style: decode each record's base64 data, decide,
/// answer `{"records":[{"recordId","result","data"(base64),"metadata"?}]}`.
fn firehose_function(
    event: &Value,
    f: impl Fn(&[u8]) -> (&'static str, Option<Vec<u8>>, Option<Value>),
) -> Value {
    let records: Vec<Value> = event["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let data = B64.decode(r["data"].as_str().unwrap()).unwrap();
            let (result, out, metadata) = f(&data);
            let mut rec = json!({"recordId": r["recordId"], "result": result});
            if let Some(out) = out {
                rec["data"] = json!(B64.encode(out));
            }
            if let Some(m) = metadata {
                rec["metadata"] = m;
            }
            rec
        })
        .collect();
    json!({ "records": records })
}

fn upper(data: &[u8]) -> (&'static str, Option<Vec<u8>>, Option<Value>) {
    ("Ok", Some(data.to_ascii_uppercase()), None)
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let name = match segments.as_slice() {
        ["2015-03-31", "functions", name, "invocations"] if req.method() == hyper::Method::POST => {
            (*name).to_owned()
        }
        _ => {
            return Ok(respond(
                StatusCode::NOT_FOUND,
                r#"{"message":"no such route"}"#,
            ));
        }
    };
    let (parts, body) = req.into_parts();
    state
        .queries
        .lock()
        .unwrap()
        .push(parts.uri.query().map(str::to_owned));
    let body = body.collect().await.unwrap().to_bytes();
    if let Some(key) = &state.key {
        if let Err(e) = check_signature(key, &parts, &body) {
            let message = json!({ "message": e }).to_string();
            return Ok(respond(StatusCode::FORBIDDEN, message));
        }
        state.verified.fetch_add(1, Ordering::SeqCst);
    }
    let event: Value = serde_json::from_slice(&body).unwrap();
    let n = {
        let mut calls = state.calls.lock().unwrap();
        let c = calls.entry(name.clone()).or_default();
        *c += 1;
        *c
    };
    state
        .events
        .lock()
        .unwrap()
        .push((name.clone(), event.clone()));

    let response = match name.as_str() {
        "upper" => json_response(&firehose_function(&event, upper)),
        "echo" => json_response(&firehose_function(&event, |d| {
            ("Ok", Some(d.to_vec()), None)
        })),
        "mixed" => json_response(&firehose_function(&event, |d| {
            if d.starts_with(b"drop") {
                ("Dropped", None, None)
            } else if d.starts_with(b"fail") {
                ("ProcessingFailed", Some(d.to_vec()), None)
            } else {
                upper(d)
            }
        })),
        "crash" => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"message":"internal error"}"#,
        ),
        "raise" => Response::builder()
            .status(StatusCode::OK)
            .header("X-Amz-Function-Error", "Unhandled")
            .body(Full::new(Bytes::from_static(
                br#"{"errorMessage":"boom","errorType":"RuntimeError"}"#,
            )))
            .unwrap(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            json_response(&firehose_function(&event, upper))
        }
        "missing" => {
            let mut v = firehose_function(&event, upper);
            v["records"].as_array_mut().unwrap().remove(0);
            json_response(&v)
        }
        "duplicate" => {
            let mut v = firehose_function(&event, upper);
            let first = v["records"][0].clone();
            v["records"].as_array_mut().unwrap().push(first);
            json_response(&v)
        }
        "badjson" => respond(StatusCode::OK, "{\"records\": [ not json"),
        "wrongshape" => json_response(&json!({"records": "nope"})),
        "flaky" if n <= 2 => respond(StatusCode::INTERNAL_SERVER_ERROR, "try again"),
        "flaky" => json_response(&firehose_function(&event, upper)),
        "partition" => json_response(&firehose_function(&event, |d| {
            let v: Value = serde_json::from_slice(d).unwrap();
            let keys = json!({"partitionKeys": {"customer": v["customer"], "static": "lambda"}});
            ("Ok", Some(d.to_vec()), Some(keys))
        })),
        "nodata" => json_response(&firehose_function(&event, |_| ("Ok", None, None))),
        "tracked" => {
            let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            state.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            state.in_flight.fetch_sub(1, Ordering::SeqCst);
            json_response(&firehose_function(&event, upper))
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            r#"{"Type":"User","message":"Function not found"}"#,
        ),
    };
    Ok(response)
}

/// Records with ids 100, 101, ... and arrival times 1_700_000_000_000 + id.
pub fn inputs<T: AsRef<[u8]>>(data: &[T]) -> Vec<InputRecord> {
    data.iter()
        .enumerate()
        .map(|(i, d)| InputRecord {
            id: 100 + i as u64,
            arrival_ms: 1_700_000_000_000 + 100 + i as i64,
            data: Bytes::copy_from_slice(d.as_ref()),
        })
        .collect()
}

/// `{Enabled: true, Processors: [...]}` from `(Type, [(ParameterName, ParameterValue)])`.
pub fn processing(processors: &[(&str, &[(&str, &str)])]) -> Value {
    json!({
        "Enabled": true,
        "Processors": processors.iter().map(|(kind, params)| json!({
            "Type": kind,
            "Parameters": params.iter().map(|(n, v)| json!({"ParameterName": n, "ParameterValue": v})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub fn chain(
    config: &Value,
    dynamic_partitioning: bool,
    endpoints: &LambdaEndpoints,
) -> ProcessorChain {
    ProcessorChain::from_config(
        Some(config),
        dynamic_partitioning,
        endpoints,
        STREAM_ARN,
        REGION,
    )
    .unwrap()
}

/// Every input id ends somewhere, nothing comes from nowhere, and arrival times are kept.
pub fn assert_accounted(input: &[InputRecord], batch: &ProcessedBatch) {
    let ids: BTreeSet<u64> = input.iter().map(|r| r.id).collect();
    let arrival: HashMap<u64, i64> = input.iter().map(|r| (r.id, r.arrival_ms)).collect();
    let mut seen = BTreeSet::new();
    for r in &batch.records {
        assert!(
            ids.contains(&r.source_id),
            "output from unknown id {}",
            r.source_id
        );
        assert_eq!(arrival[&r.source_id], r.arrival_ms);
        seen.insert(r.source_id);
    }
    for id in &batch.dropped {
        assert!(ids.contains(id), "dropped unknown id {id}");
        seen.insert(*id);
    }
    for f in &batch.failed {
        assert!(
            ids.contains(&f.source_id),
            "failed unknown id {}",
            f.source_id
        );
        assert_eq!(arrival[&f.source_id], f.arrival_ms);
        seen.insert(f.source_id);
    }
    assert_eq!(seen, ids, "every input record must be accounted for");
    // Outputs keep input order.
    let order: Vec<u64> = batch.records.iter().map(|r| r.source_id).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "outputs keep input order");
}

pub fn strings(batch: &ProcessedBatch) -> Vec<String> {
    batch
        .records
        .iter()
        .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
        .collect()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}
