//! The HTTP endpoint destination: Firehose's HTTP endpoint delivery protocol v1.0.
//!
//! - [`build_request`] makes one request of a batch: the JSON body
//!   `{"requestId", "timestamp", "records": [{"data": base64}]}` (gzipped with
//!   `Content-Encoding: gzip` when asked) and the `X-Amz-Firehose-*` headers.
//! - [`request_id`] derives the request id from the batch's durable seed, so a retried or
//!   replayed batch carries the same id.
//! - [`check_response`] applies the response contract: only a 200 whose JSON body (at most
//!   1 MiB) echoes the `requestId` is a success; 413 is permanent; anything else is retried.
//! - [`backoff`] and [`next_wait`] are the retry schedule: 1 s doubling, ±15% jitter, capped
//!   at 120 s, until the retry duration has passed since the first failure.
//! - [`HttpEndpointClient`] sends a request over the shared [`crate::transport`] (egress
//!   policy, TLS, no redirects) and applies the contract.

use std::io::Write;
use std::ops::Range;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;

use crate::egress::EgressPolicy;
pub use crate::retry::{
    BACKOFF_CAP, BACKOFF_INITIAL, BACKOFF_JITTER, Failure, backoff, next_wait, random_jitter,
};
use crate::transport::{HttpClient, TransportError};

/// `X-Amz-Firehose-Protocol-Version`.
pub const PROTOCOL_VERSION: &str = "1.0";
/// How long the endpoint has to answer one request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(180);
/// The largest response body accepted.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Most records in one request.
pub const MAX_RECORDS_PER_REQUEST: usize = 10_000;
/// Error output type (folder) of records that could not be delivered.
pub const ERROR_OUTPUT_TYPE: &str = "http-endpoint-failed";

/// What a stream's configuration says about its requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointSettings {
    /// The endpoint's URL.
    pub url: String,
    /// `X-Amz-Firehose-Access-Key`, when configured.
    pub access_key: Option<String>,
    /// `X-Amz-Firehose-Common-Attributes`, in configuration order.
    pub common_attributes: Vec<(String, String)>,
    /// `ContentEncoding: GZIP`.
    pub gzip: bool,
    /// `X-Amz-Firehose-Source-Arn`: the stream's ARN.
    pub source_arn: String,
}

/// One request, ready to send.
#[derive(Clone, Debug)]
pub struct Request {
    /// `requestId` and `X-Amz-Firehose-Request-Id`.
    pub request_id: String,
    /// Headers besides `Host` and `Content-Length`.
    pub headers: Vec<(&'static str, String)>,
    /// The body, gzipped when `Content-Encoding: gzip` is among the headers.
    pub body: Bytes,
}

/// The request id of part `part` of the batch seeded by `seed`: a UUID (version 4 layout)
/// that depends only on its arguments, so retries and crash replays send the same id.
pub fn request_id(seed: u64, part: u32) -> String {
    let a = splitmix(seed ^ u64::from(part).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let b = splitmix(a ^ 0x5851_f42d_4c95_7f2d);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Bytes a body spends on its envelope (request id, timestamp, brackets), generously.
const BODY_OVERHEAD: usize = 128;

/// Bytes one record adds to a body: `{"data":"<base64>"},`.
fn record_cost(len: usize) -> usize {
    len.div_ceil(3) * 4 + 12
}

/// Splits `records` into consecutive ranges whose bodies (before compression) stay within
/// `max_body` bytes and [`MAX_RECORDS_PER_REQUEST`] records; a record larger than that alone
/// is a range of its own.
pub fn split(records: &[Bytes], max_body: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = BODY_OVERHEAD;
    for (i, r) in records.iter().enumerate() {
        let cost = record_cost(r.len());
        if i > start && (size + cost > max_body || i - start >= MAX_RECORDS_PER_REQUEST) {
            out.push(start..i);
            start = i;
            size = BODY_OVERHEAD;
        }
        size += cost;
    }
    if start < records.len() {
        out.push(start..records.len());
    }
    out
}

/// The JSON body of a request.
pub fn body_json(request_id: &str, timestamp_ms: i64, records: &[Bytes]) -> Vec<u8> {
    let size = BODY_OVERHEAD + records.iter().map(|r| record_cost(r.len())).sum::<usize>();
    let mut out = String::with_capacity(size);
    out.push_str("{\"requestId\":");
    out.push_str(&serde_json::Value::from(request_id).to_string());
    out.push_str(",\"timestamp\":");
    out.push_str(&timestamp_ms.to_string());
    out.push_str(",\"records\":[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"data\":\"");
        base64::engine::general_purpose::STANDARD.encode_string(r, &mut out);
        out.push_str("\"}");
    }
    out.push_str("]}");
    out.into_bytes()
}

/// The request carrying `records` under `request_id`.
pub fn build_request(
    settings: &EndpointSettings,
    request_id: &str,
    timestamp_ms: i64,
    records: &[Bytes],
) -> std::io::Result<Request> {
    let json = body_json(request_id, timestamp_ms, records);
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        (
            "x-amz-firehose-protocol-version",
            PROTOCOL_VERSION.to_string(),
        ),
        ("x-amz-firehose-request-id", request_id.to_string()),
    ];
    if !settings.source_arn.is_empty() {
        headers.push(("x-amz-firehose-source-arn", settings.source_arn.clone()));
    }
    if let Some(key) = &settings.access_key {
        headers.push(("x-amz-firehose-access-key", key.clone()));
    }
    if !settings.common_attributes.is_empty() {
        let attrs: serde_json::Map<String, serde_json::Value> = settings
            .common_attributes
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
            .collect();
        let value = serde_json::json!({ "commonAttributes": attrs });
        headers.push(("x-amz-firehose-common-attributes", value.to_string()));
    }
    let body = if settings.gzip {
        headers.push(("content-encoding", "gzip".to_string()));
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(json.len() / 4),
            flate2::Compression::default(),
        );
        enc.write_all(&json)?;
        enc.finish()?
    } else {
        json
    };
    Ok(Request {
        request_id: request_id.to_string(),
        headers,
        body: Bytes::from(body),
    })
}

/// Applies the response contract to a complete response.
pub fn check_response(status: u16, body: &[u8], request_id: &str) -> Result<(), Failure> {
    if status == 413 {
        return Err(Failure {
            code: "HttpEndpoint.DestinationException".into(),
            message: "the endpoint answered 413 Request Entity Too Large (not retried)".into(),
            permanent: true,
        });
    }
    if status != 200 {
        return Err(Failure::retry(
            "HttpEndpoint.DestinationException",
            format!("the endpoint answered HTTP {status}"),
        ));
    }
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(Failure::retry(
            "HttpEndpoint.ResponseTooLarge",
            format!("the response body is larger than {MAX_RESPONSE_BYTES} bytes"),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        Failure::retry(
            "HttpEndpoint.InvalidResponseFromDestination",
            format!("the response body is not JSON: {e}"),
        )
    })?;
    match value.get("requestId").and_then(|v| v.as_str()) {
        Some(id) if id == request_id => Ok(()),
        Some(id) => Err(Failure::retry(
            "HttpEndpoint.InvalidResponseFromDestination",
            format!("the response's requestId {id:?} is not the request's {request_id:?}"),
        )),
        None => Err(Failure::retry(
            "HttpEndpoint.InvalidResponseFromDestination",
            "the response has no requestId",
        )),
    }
}

/// Sends requests to HTTP endpoints within the egress policy.
#[derive(Clone, Debug)]
pub struct HttpEndpointClient {
    http: HttpClient,
}

impl HttpEndpointClient {
    /// A client under `policy`, trusting the system's root certificates.
    pub fn new(policy: EgressPolicy) -> Self {
        Self {
            http: HttpClient::new(policy),
        }
    }

    /// The egress policy.
    pub fn policy(&self) -> &EgressPolicy {
        self.http.policy()
    }

    /// Sends `request` to `url` and applies the response contract, within
    /// [`REQUEST_TIMEOUT`].
    pub async fn send(&self, url: &str, request: &Request) -> Result<(), Failure> {
        let response = self
            .http
            .post(
                url,
                &request.headers,
                request.body.clone(),
                MAX_RESPONSE_BYTES,
                REQUEST_TIMEOUT,
            )
            .await;
        match response {
            Ok(r) => check_response(r.status, &r.body, &request.request_id),
            Err(TransportError::TooLarge { status, .. }) if status != 200 => {
                check_response(status, b"", &request.request_id)
            }
            Err(e) => Err(Failure::retry(transport_code(&e), e.to_string())),
        }
    }
}

/// Firehose's error code for a request that got no usable answer.
fn transport_code(e: &TransportError) -> &'static str {
    match e {
        TransportError::NotAllowed(_) | TransportError::Connect(_) | TransportError::Tls(_) => {
            "HttpEndpoint.ConnectionFailed"
        }
        TransportError::Reset(_) => "HttpEndpoint.ConnectionReset",
        TransportError::Timeout(_) => "HttpEndpoint.RequestTimeout",
        TransportError::TooLarge { .. } => "HttpEndpoint.ResponseTooLarge",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn settings() -> EndpointSettings {
        EndpointSettings {
            url: "https://example.com/in".into(),
            access_key: Some("secret-key".into()),
            common_attributes: vec![
                ("env".into(), "prod".into()),
                ("team".into(), "a\"b".into()),
            ],
            gzip: false,
            source_arn: "arn:aws:firehose:us-east-1:000000000000:deliverystream/s".into(),
        }
    }

    fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn body_and_headers_follow_protocol_1_0() {
        let records = vec![
            Bytes::from_static(b"hello"),
            Bytes::from_static(b"{\"a\":1}\n"),
        ];
        let id = request_id(42, 0);
        let r = build_request(&settings(), &id, 1_578_090_901_599, &records).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["requestId"], id.as_str());
        assert_eq!(body["timestamp"], 1_578_090_901_599i64);
        assert_eq!(body["records"][0]["data"], "aGVsbG8=");
        assert_eq!(body["records"].as_array().unwrap().len(), 2);
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        assert_eq!(header(&r, "x-amz-firehose-protocol-version"), Some("1.0"));
        assert_eq!(header(&r, "x-amz-firehose-request-id"), Some(id.as_str()));
        assert_eq!(header(&r, "x-amz-firehose-access-key"), Some("secret-key"));
        assert_eq!(header(&r, "content-encoding"), None);
        let attrs: serde_json::Value =
            serde_json::from_str(header(&r, "x-amz-firehose-common-attributes").unwrap()).unwrap();
        assert_eq!(
            attrs,
            serde_json::json!({"commonAttributes": {"env": "prod", "team": "a\"b"}})
        );
        let mut bare = settings();
        bare.access_key = None;
        bare.common_attributes.clear();
        let r = build_request(&bare, &id, 1, &records).unwrap();
        assert_eq!(header(&r, "x-amz-firehose-access-key"), None);
        assert_eq!(header(&r, "x-amz-firehose-common-attributes"), None);
    }

    #[test]
    fn gzip_bodies_round_trip() {
        let mut s = settings();
        s.gzip = true;
        let records: Vec<Bytes> = (0..100)
            .map(|i| Bytes::from(format!("record {i}\n")))
            .collect();
        let id = request_id(7, 3);
        let r = build_request(&s, &id, 5, &records).unwrap();
        assert_eq!(header(&r, "content-encoding"), Some("gzip"));
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&r.body[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, body_json(&id, 5, &records));
    }

    #[test]
    fn request_ids_depend_only_on_the_plan() {
        assert_eq!(request_id(99, 0), request_id(99, 0));
        assert_ne!(request_id(99, 0), request_id(99, 1));
        assert_ne!(request_id(99, 0), request_id(100, 0));
        let id = uuid::Uuid::parse_str(&request_id(1, 0)).unwrap();
        assert_eq!(id.get_version_num(), 4);
    }

    #[test]
    fn bodies_are_split_to_fit_the_buffer() {
        let records: Vec<Bytes> = (0..100).map(|_| Bytes::from(vec![b'x'; 3000])).collect();
        let ranges = split(&records, 64 * 1024);
        assert!(ranges.len() > 1);
        assert_eq!(ranges.first().unwrap().start, 0);
        assert_eq!(ranges.last().unwrap().end, 100);
        for w in ranges.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for r in &ranges {
            let body = body_json(&request_id(1, 0), 1_700_000_000_000, &records[r.clone()]);
            assert!(body.len() <= 64 * 1024, "{} bytes", body.len());
        }
        // A record larger than the limit goes alone.
        let big = vec![Bytes::from(vec![0u8; 100]), Bytes::from(vec![0u8; 10_000])];
        assert_eq!(split(&big, 1000), vec![0..1, 1..2]);
        assert!(split(&[], 1000).is_empty());
    }

    #[test]
    fn response_contract() {
        let id = "abc";
        assert!(check_response(200, br#"{"requestId":"abc","timestamp":1}"#, id).is_ok());
        let wrong = check_response(200, br#"{"requestId":"xyz","timestamp":1}"#, id).unwrap_err();
        assert_eq!(wrong.code, "HttpEndpoint.InvalidResponseFromDestination");
        assert!(!wrong.permanent);
        let not_json = check_response(200, b"OK", id).unwrap_err();
        assert_eq!(not_json.code, "HttpEndpoint.InvalidResponseFromDestination");
        assert!(check_response(200, b"{}", id).is_err());
        let mut huge = br#"{"requestId":"abc","pad":""#.to_vec();
        huge.resize(MAX_RESPONSE_BYTES + 10, b'x');
        let too_large = check_response(200, &huge, id).unwrap_err();
        assert_eq!(too_large.code, "HttpEndpoint.ResponseTooLarge");
        let e413 = check_response(413, b"", id).unwrap_err();
        assert!(e413.permanent);
        for status in [500, 503, 400, 404, 301, 201] {
            let e = check_response(status, br#"{"requestId":"abc"}"#, id).unwrap_err();
            assert!(!e.permanent, "{status}");
        }
    }

    #[test]
    fn backoff_schedule() {
        for (attempt, secs) in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 32.0), (6, 64.0)] {
            assert_eq!(backoff(attempt, 0.0), Duration::from_secs_f64(secs));
            assert_eq!(backoff(attempt, 0.15), Duration::from_secs_f64(secs * 1.15));
            assert_eq!(
                backoff(attempt, -0.15),
                Duration::from_secs_f64(secs * 0.85)
            );
        }
        assert_eq!(backoff(7, 0.0), BACKOFF_CAP);
        assert_eq!(backoff(40, 0.15), BACKOFF_CAP);
        assert_eq!(backoff(0, 0.9), Duration::from_secs_f64(1.15));
        for _ in 0..1000 {
            let j = random_jitter();
            assert!((-0.15..=0.15).contains(&j));
            let d = backoff(3, j).as_secs_f64();
            assert!((8.0 * 0.85..=8.0 * 1.15).contains(&d));
        }
        // Stops once the retry duration has passed; the last wait ends at the deadline.
        assert_eq!(next_wait(0, 0, 0, 0.0), None);
        assert_eq!(next_wait(0, 0, 300_000, 0.0), Some(Duration::from_secs(1)));
        assert_eq!(
            next_wait(8, 250_000, 300_000, 0.0),
            Some(Duration::from_secs(50))
        );
        assert_eq!(next_wait(2, 300_000, 300_000, 0.0), None);
        assert_eq!(next_wait(2, 300_001, 300_000, 0.0), None);
    }

    /// A one-connection HTTP server on 127.0.0.1 that answers `response` (or nothing, when
    /// `None`) and hands back the raw request it read.
    async fn serve_once(response: Option<Vec<u8>>) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/in?x=1", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = sock.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if req.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            match response {
                Some(r) => {
                    sock.write_all(&r).await.unwrap();
                    sock.shutdown().await.ok();
                }
                None => std::future::pending::<()>().await,
            }
            req
        });
        (url, task)
    }

    fn answer(status: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    fn local_client() -> HttpEndpointClient {
        HttpEndpointClient::new(EgressPolicy {
            allow_http_hosts: vec!["127.0.0.1".into()],
            allow_private: vec!["127.0.0.0/8".into()],
        })
    }

    #[tokio::test]
    async fn client_sends_the_request_and_checks_the_answer() {
        let records = [Bytes::from_static(b"hello")];
        let r = build_request(&settings(), "rid-1", 7, &records).unwrap();
        let (url, server) = serve_once(Some(answer(
            "200 OK",
            br#"{"requestId":"rid-1","timestamp":1}"#,
        )))
        .await;
        local_client().send(&url, &r).await.unwrap();
        let req = String::from_utf8(server.await.unwrap()).unwrap();
        assert!(req.starts_with("POST /in?x=1 HTTP/1.1\r\n"), "{req}");
        let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
        assert!(
            req.contains(&format!("host: 127.0.0.1:{port}\r\n")),
            "{req}"
        );
        assert!(req.contains("x-amz-firehose-request-id: rid-1\r\n"));
        assert!(req.contains("x-amz-firehose-access-key: secret-key\r\n"));
        assert!(
            req.ends_with(r#""records":[{"data":"aGVsbG8="}]}"#),
            "{req}"
        );
    }

    #[tokio::test]
    async fn client_failures_are_classified() {
        let records = [Bytes::from_static(b"x")];
        let r = build_request(&settings(), "rid-2", 7, &records).unwrap();
        let cases: Vec<(Vec<u8>, &str, bool)> = vec![
            (
                answer("200 OK", br#"{"requestId":"other","timestamp":1}"#),
                "HttpEndpoint.InvalidResponseFromDestination",
                false,
            ),
            (
                answer("200 OK", b"not json"),
                "HttpEndpoint.InvalidResponseFromDestination",
                false,
            ),
            (
                answer("200 OK", &vec![b' '; MAX_RESPONSE_BYTES + 1]),
                "HttpEndpoint.ResponseTooLarge",
                false,
            ),
            (
                answer("500 Internal Server Error", b"{}"),
                "HttpEndpoint.DestinationException",
                false,
            ),
            (
                answer("302 Found", b""),
                "HttpEndpoint.DestinationException",
                false,
            ),
            (
                answer("413 Payload Too Large", b""),
                "HttpEndpoint.DestinationException",
                true,
            ),
        ];
        for (response, code, permanent) in cases {
            let (url, _server) = serve_once(Some(response)).await;
            let e = local_client().send(&url, &r).await.unwrap_err();
            assert_eq!(
                (e.code.as_str(), e.permanent),
                (code, permanent),
                "{}",
                e.message
            );
        }
        // Nobody listening.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = local_client()
            .send(&format!("http://127.0.0.1:{port}/"), &r)
            .await
            .unwrap_err();
        assert_eq!(e.code, "HttpEndpoint.ConnectionFailed");
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_that_never_answers_times_out() {
        let records = [Bytes::from_static(b"x")];
        let r = build_request(&settings(), "rid-3", 7, &records).unwrap();
        let (url, _server) = serve_once(None).await;
        let started = tokio::time::Instant::now();
        let e = local_client().send(&url, &r).await.unwrap_err();
        assert_eq!(e.code, "HttpEndpoint.RequestTimeout");
        assert!(started.elapsed() >= REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn refused_addresses_are_never_contacted() {
        let client = HttpEndpointClient::new(EgressPolicy::default());
        let r = build_request(&settings(), "id", 1, &[Bytes::from_static(b"x")]).unwrap();
        let e = client.send("https://localhost:9/", &r).await.unwrap_err();
        assert_eq!(e.code, "HttpEndpoint.ConnectionFailed");
        assert!(e.message.contains("not allowed"), "{}", e.message);
    }
}
