//! The OpenSearch Service / Elasticsearch destination: documents indexed with the `_bulk` API
//! (NDJSON: an action line `{"index":{"_index":...,"_id":...}}`, then the document).
//!
//! - [`Rotation`] appends the record's arrival time (UTC) to the index name: `NoRotation`
//!   `name`, `OneHour` `name-2016-02-25-13`, `OneDay` `name-2016-02-25`, `OneWeek`
//!   `name-2016-w08` (weeks start on Sunday, `%U`), `OneMonth` `name-2016-02`.
//! - [`document_id`] (`FIREHOSE_DEFAULT`) is `<16 hex: stream seed><16 hex: sequence
//!   number>.<n>`, where `n` counts the records a processor made from the same source record;
//!   it depends only on the stream's identity and the record, so retries and crash replays
//!   overwrite instead of duplicating. `NO_DOCUMENT_ID` sends no `_id` (a retried document may
//!   then be indexed twice, as in Firehose).
//! - [`parse_document`]: a record must be one line of UTF-8 JSON holding an object (surrounding
//!   whitespace, such as a trailing newline, is trimmed). Any other record fails for good with
//!   [`INVALID_DOCUMENT`] and is never sent.
//! - [`split`] cuts a round's documents into bulk requests whose bodies fit the buffer size
//!   (and at most [`MAX_DOCUMENTS_PER_REQUEST`] documents); a larger document goes alone.
//! - [`check_response`] gives one result per document: a 2xx item is delivered, a 429 or 5xx
//!   item is retried, any other item fails for good (its code is the item's `error.type`).
//!   When the request as a whole fails (no answer, a non-2xx status, a malformed body, an
//!   item count that differs from the request's) every document of it is retried, except on
//!   413, which no retry can fix.
//! - [`BulkClient`] POSTs a body over the shared [`crate::transport`] (egress policy, TLS, no
//!   redirects) with `Content-Type: application/x-ndjson`.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use chrono::{TimeZone, Utc};

use crate::egress::EgressPolicy;
pub use crate::retry::Failure;
use crate::transport::{HttpClient, TransportError};

/// Error output type (folder) of an OpenSearch Service destination.
pub const ERROR_OUTPUT_OPENSEARCH: &str = "AmazonOpenSearchService-failed";
/// Error output type (folder) of an Elasticsearch destination.
pub const ERROR_OUTPUT_ELASTICSEARCH: &str = "elasticsearch-failed";
/// How long the cluster has to answer one bulk request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(180);
/// The largest bulk response accepted (items of [`MAX_DOCUMENTS_PER_REQUEST`] documents).
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// Most documents in one bulk request.
pub const MAX_DOCUMENTS_PER_REQUEST: usize = 10_000;

/// A record that is not single-line UTF-8 JSON holding an object (permanent, never sent).
pub const INVALID_DOCUMENT: &str = "OS.InvalidDocument";
/// No connection to the cluster (refused, unreachable, TLS, not allowed by the egress policy).
pub const CONNECTION_FAILED: &str = "OS.ConnectionFailed";
/// The connection broke while sending or reading.
pub const CONNECTION_RESET: &str = "OS.ConnectionReset";
/// No complete answer within [`REQUEST_TIMEOUT`].
pub const REQUEST_TIMEOUT_CODE: &str = "OS.RequestTimeout";
/// The response body exceeded [`MAX_RESPONSE_BYTES`].
pub const RESPONSE_TOO_LARGE: &str = "OS.ResponseTooLarge";
/// The response is not a bulk response for the request (bad JSON, wrong item count).
pub const INVALID_RESPONSE: &str = "OS.InvalidResponse";
/// The cluster answered 429 to the whole request.
pub const TOO_MANY_REQUESTS: &str = "OS.TooManyRequests";
/// The cluster answered 5xx to the whole request.
pub const SERVER_ERROR: &str = "OS.ServerError";
/// The cluster answered 401 or 403 to the whole request (retried: access can be granted).
pub const ACCESS_DENIED: &str = "OS.AccessDenied";
/// The cluster answered 413 to the whole request (not retried).
pub const REQUEST_TOO_LARGE: &str = "OS.RequestEntityTooLarge";
/// The cluster answered another non-2xx status to the whole request.
pub const REQUEST_FAILED: &str = "OS.RequestFailed";
/// An item failed without an `error.type`.
pub const DOCUMENT_FAILED: &str = "OS.DocumentFailed";

/// `IndexRotationPeriod`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rotation {
    /// `NoRotation`: the index name as configured.
    NoRotation,
    /// `OneHour`: `-YYYY-MM-DD-HH`.
    OneHour,
    /// `OneDay` (Firehose's default): `-YYYY-MM-DD`.
    #[default]
    OneDay,
    /// `OneWeek`: `-YYYY-wWW`, weeks starting on Sunday.
    OneWeek,
    /// `OneMonth`: `-YYYY-MM`.
    OneMonth,
}

impl Rotation {
    /// Parses `IndexRotationPeriod`; `None` is Firehose's default (`OneDay`).
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        Ok(match value {
            None => Self::OneDay,
            Some("NoRotation") => Self::NoRotation,
            Some("OneHour") => Self::OneHour,
            Some("OneDay") => Self::OneDay,
            Some("OneWeek") => Self::OneWeek,
            Some("OneMonth") => Self::OneMonth,
            Some(other) => return Err(format!("unknown IndexRotationPeriod '{other}'")),
        })
    }

    /// The index of a record that arrived at `arrival_ms` (UTC).
    pub fn index_name(self, base: &str, arrival_ms: i64) -> String {
        let format = match self {
            Self::NoRotation => return base.to_string(),
            Self::OneHour => "%Y-%m-%d-%H",
            Self::OneDay => "%Y-%m-%d",
            Self::OneWeek => "%Y-w%U",
            Self::OneMonth => "%Y-%m",
        };
        let at = Utc
            .timestamp_millis_opt(arrival_ms)
            .single()
            .unwrap_or_default();
        format!("{base}-{}", at.format(format))
    }
}

/// FNV-1a of the stream's ARN and creation time: the stream part of [`document_id`], so two
/// streams (or a stream re-created under the same name) never share ids.
pub fn stream_seed(arn: &str, created_ms: i64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in arn
        .as_bytes()
        .iter()
        .chain([0u8].iter())
        .chain(created_ms.to_le_bytes().iter())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The `FIREHOSE_DEFAULT` id of the `sub`-th document made from source record `seq`.
pub fn document_id(stream_seed: u64, seq: u64, sub: u32) -> String {
    format!("{stream_seed:016x}{seq:016x}.{sub}")
}

/// Checks that `data` is one line of UTF-8 JSON holding an object and returns it without the
/// surrounding whitespace; otherwise a permanent [`INVALID_DOCUMENT`] failure.
pub fn parse_document(data: &Bytes) -> Result<Bytes, Failure> {
    let invalid = |why: String| Failure::permanent(INVALID_DOCUMENT, why);
    let text =
        std::str::from_utf8(data).map_err(|e| invalid(format!("the record is not UTF-8: {e}")))?;
    let trimmed = text.trim();
    if trimmed.contains(['\n', '\r']) {
        return Err(invalid(
            "the record spans several lines; documents must be single-line JSON".into(),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(trimmed)
        .map_err(|e| invalid(format!("the record is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(invalid(
            "the record is JSON but not an object; a document must be a JSON object".into(),
        ));
    }
    let start = trimmed.as_ptr() as usize - text.as_ptr() as usize;
    Ok(data.slice(start..start + trimmed.len()))
}

/// One document of a bulk request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// `_index` (rotated).
    pub index: String,
    /// `_id`; `None` with `NO_DOCUMENT_ID`.
    pub id: Option<String>,
    /// `_type` (Elasticsearch 6 and older), when `TypeName` is not empty.
    pub type_name: Option<String>,
    /// The document: single-line JSON (see [`parse_document`]).
    pub source: Bytes,
}

impl Document {
    /// The action line, without its newline.
    pub fn action_line(&self) -> String {
        let quote = |s: &str| serde_json::Value::from(s).to_string();
        let mut out = String::with_capacity(48 + self.index.len());
        out.push_str("{\"index\":{\"_index\":");
        out.push_str(&quote(&self.index));
        if let Some(t) = &self.type_name {
            out.push_str(",\"_type\":");
            out.push_str(&quote(t));
        }
        if let Some(id) = &self.id {
            out.push_str(",\"_id\":");
            out.push_str(&quote(id));
        }
        out.push_str("}}");
        out
    }

    /// Bytes the document adds to a bulk body (both lines and their newlines).
    pub fn bulk_len(&self) -> usize {
        self.action_line().len() + self.source.len() + 2
    }
}

/// The NDJSON body of a bulk request (every line ends with a newline, as `_bulk` requires).
pub fn bulk_body(documents: &[&Document]) -> Bytes {
    let size = documents.iter().map(|d| d.bulk_len()).sum();
    let mut out = Vec::with_capacity(size);
    for d in documents {
        out.extend_from_slice(d.action_line().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&d.source);
        out.push(b'\n');
    }
    Bytes::from(out)
}

/// Splits documents of `sizes` ([`Document::bulk_len`]) into consecutive ranges whose bodies
/// stay within `max_body` bytes and [`MAX_DOCUMENTS_PER_REQUEST`] documents; a document larger
/// than `max_body` is a range of its own.
pub fn split(sizes: &[usize], max_body: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, cost) in sizes.iter().enumerate() {
        if i > start && (size + cost > max_body || i - start >= MAX_DOCUMENTS_PER_REQUEST) {
            out.push(start..i);
            start = i;
            size = 0;
        }
        size += cost;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// The failure of every document of a request that failed as a whole with HTTP `status`.
fn request_failure(status: u16, body: &[u8]) -> Failure {
    let detail = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
    let message = format!("the cluster answered HTTP {status} to the bulk request: {detail}");
    match status {
        413 => Failure::permanent(REQUEST_TOO_LARGE, message),
        429 => Failure::retry(TOO_MANY_REQUESTS, message),
        401 | 403 => Failure::retry(ACCESS_DENIED, message),
        500..=599 => Failure::retry(SERVER_ERROR, message),
        _ => Failure::retry(REQUEST_FAILED, message),
    }
}

/// The result of one bulk response item.
fn item_result(item: &serde_json::Value) -> Result<(), Failure> {
    let Some((action, result)) = item.as_object().and_then(|o| o.iter().next()) else {
        return Err(Failure::retry(
            INVALID_RESPONSE,
            format!("a bulk response item is not an action object: {item}"),
        ));
    };
    let Some(status) = result.get("status").and_then(|s| s.as_u64()) else {
        return Err(Failure::retry(
            INVALID_RESPONSE,
            format!("the bulk response item has no status: {item}"),
        ));
    };
    if (200..300).contains(&status) {
        return Ok(());
    }
    let error = result.get("error");
    let kind = error.and_then(|e| e.get("type")).and_then(|t| t.as_str());
    let reason = match error {
        Some(e) => e
            .get("reason")
            .and_then(|r| r.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string()),
        None => "no error given".to_string(),
    };
    let code = kind.unwrap_or(DOCUMENT_FAILED).to_string();
    let message = format!("{action} failed with status {status}: {reason}");
    if status == 429 || status >= 500 {
        Err(Failure::retry(code, message))
    } else {
        Err(Failure::permanent(code, message))
    }
}

/// Applies the bulk response contract to a complete response for a request of `count`
/// documents: one result per document, in request order.
pub fn check_response(status: u16, body: &[u8], count: usize) -> Vec<Result<(), Failure>> {
    let all = |f: Failure| vec![Err(f); count];
    if !(200..300).contains(&status) {
        return all(request_failure(status, body));
    }
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return all(Failure::retry(
                INVALID_RESPONSE,
                format!("the bulk response is not JSON: {e}"),
            ));
        }
    };
    let Some(items) = value.get("items").and_then(|i| i.as_array()) else {
        return all(Failure::retry(
            INVALID_RESPONSE,
            "the bulk response has no items array",
        ));
    };
    if items.len() != count {
        return all(Failure::retry(
            INVALID_RESPONSE,
            format!(
                "the bulk response has {} items for {count} documents",
                items.len()
            ),
        ));
    }
    items.iter().map(item_result).collect()
}

/// The `_bulk` URL of a cluster endpoint (`https://host[:port][/path]`).
pub fn bulk_url(endpoint: &str) -> Result<String, String> {
    let mut url = url::Url::parse(endpoint)
        .map_err(|e| format!("the cluster endpoint '{endpoint}' is not a URL: {e}"))?;
    let path = format!("{}/_bulk", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url.to_string())
}

/// Sends bulk requests within the egress policy.
#[derive(Clone, Debug)]
pub struct BulkClient {
    http: HttpClient,
}

impl BulkClient {
    /// A client under `policy`, trusting the system's root certificates.
    pub fn new(policy: EgressPolicy) -> Self {
        Self {
            http: HttpClient::new(policy),
        }
    }

    /// POSTs `documents` to `bulk_url` as one bulk request; one result per document.
    pub async fn bulk(&self, bulk_url: &str, documents: &[&Document]) -> Vec<Result<(), Failure>> {
        let headers = [("content-type", "application/x-ndjson".to_string())];
        let response = self
            .http
            .post(
                bulk_url,
                &headers,
                bulk_body(documents),
                MAX_RESPONSE_BYTES,
                REQUEST_TIMEOUT,
            )
            .await;
        match response {
            Ok(r) => check_response(r.status, &r.body, documents.len()),
            Err(TransportError::TooLarge { status, .. }) if !(200..300).contains(&status) => {
                check_response(status, b"", documents.len())
            }
            Err(e) => vec![Err(Failure::retry(transport_code(&e), e.to_string())); documents.len()],
        }
    }
}

/// The error code of a request that got no usable answer.
fn transport_code(e: &TransportError) -> &'static str {
    match e {
        TransportError::NotAllowed(_) | TransportError::Connect(_) | TransportError::Tls(_) => {
            CONNECTION_FAILED
        }
        TransportError::Reset(_) => CONNECTION_RESET,
        TransportError::Timeout(_) => REQUEST_TIMEOUT_CODE,
        TransportError::TooLarge { .. } => RESPONSE_TOO_LARGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2016-02-25T13:45:10Z, Firehose's documented example.
    const ARRIVAL: i64 = 1_456_407_910_000;

    fn doc(index: &str, id: Option<&str>, type_name: Option<&str>, source: &str) -> Document {
        Document {
            index: index.into(),
            id: id.map(str::to_string),
            type_name: type_name.map(str::to_string),
            source: Bytes::from(source.to_string()),
        }
    }

    #[test]
    fn rotation_appends_the_arrival_time() {
        let name = |r: &str| {
            Rotation::parse(Some(r))
                .unwrap()
                .index_name("logs", ARRIVAL)
        };
        assert_eq!(name("NoRotation"), "logs");
        assert_eq!(name("OneHour"), "logs-2016-02-25-13");
        assert_eq!(name("OneDay"), "logs-2016-02-25");
        assert_eq!(name("OneWeek"), "logs-2016-w08");
        assert_eq!(name("OneMonth"), "logs-2016-02");
        assert_eq!(Rotation::parse(None).unwrap(), Rotation::OneDay);
        assert!(Rotation::parse(Some("OneYear")).is_err());
        // Weeks start on Sunday: Saturday 2016-01-02 is week 00, Sunday 2016-01-03 week 01.
        let day = |d: u32| {
            Utc.with_ymd_and_hms(2016, 1, d, 12, 0, 0)
                .unwrap()
                .timestamp_millis()
        };
        assert_eq!(Rotation::OneWeek.index_name("w", day(2)), "w-2016-w00");
        assert_eq!(Rotation::OneWeek.index_name("w", day(3)), "w-2016-w01");
        // UTC, whatever the hour boundary.
        assert_eq!(
            Rotation::OneHour.index_name("h", day(2) + 12 * 3_600_000 - 1),
            "h-2016-01-02-23"
        );
        assert_eq!(
            Rotation::OneDay.index_name("h", day(2) + 12 * 3_600_000),
            "h-2016-01-03"
        );
    }

    #[test]
    fn document_ids_depend_only_on_the_stream_and_the_record() {
        let seed = stream_seed(
            "arn:aws:firehose:us-east-1:000000000000:deliverystream/s",
            1,
        );
        assert_eq!(
            seed,
            stream_seed(
                "arn:aws:firehose:us-east-1:000000000000:deliverystream/s",
                1
            )
        );
        assert_ne!(
            seed,
            stream_seed(
                "arn:aws:firehose:us-east-1:000000000000:deliverystream/s",
                2
            )
        );
        assert_ne!(
            seed,
            stream_seed(
                "arn:aws:firehose:us-east-1:000000000000:deliverystream/t",
                1
            )
        );
        let id = document_id(seed, 255, 0);
        assert_eq!(id, format!("{seed:016x}00000000000000ff.0"));
        assert_eq!(id.len(), 34);
        assert_eq!(id, document_id(seed, 255, 0));
        assert_ne!(id, document_id(seed, 255, 1));
        assert_ne!(id, document_id(seed, 256, 0));
    }

    #[test]
    fn only_single_line_json_objects_are_documents() {
        let ok = Bytes::from_static(b"  {\"a\":1,\"b\":\"x\\ny\"}\r\n");
        assert_eq!(
            &parse_document(&ok).unwrap()[..],
            b"{\"a\":1,\"b\":\"x\\ny\"}"
        );
        for bad in [
            &b"{\"a\":\n1}"[..],
            b"not json",
            b"[1,2]",
            b"42",
            b"{\"a\":1} {\"b\":2}",
            b"{\"a\":\"\xff\"}",
            b"",
        ] {
            let f = parse_document(&Bytes::copy_from_slice(bad)).unwrap_err();
            assert_eq!(f.code, INVALID_DOCUMENT, "{bad:?}");
            assert!(f.permanent, "{bad:?}");
            assert!(!f.message.is_empty());
        }
    }

    #[test]
    fn bulk_bodies_are_action_and_document_pairs() {
        let a = doc("logs-2016-02-25", Some("id\"1"), None, "{\"a\":1}");
        let b = doc("logs", None, Some("_doc"), "{\"b\":2}");
        let body = bulk_body(&[&a, &b]);
        let text = std::str::from_utf8(&body).unwrap();
        assert_eq!(
            text,
            "{\"index\":{\"_index\":\"logs-2016-02-25\",\"_id\":\"id\\\"1\"}}\n{\"a\":1}\n\
             {\"index\":{\"_index\":\"logs\",\"_type\":\"_doc\"}}\n{\"b\":2}\n"
        );
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["index"]["_id"], "id\"1");
        assert!(lines[2]["index"].get("_id").is_none());
        assert_eq!(a.bulk_len() + b.bulk_len(), body.len());
    }

    #[test]
    fn requests_are_split_to_fit_the_buffer() {
        assert_eq!(split(&[10, 10, 10, 10, 10], 25), vec![0..2, 2..4, 4..5]);
        assert_eq!(split(&[10, 100, 10], 25), vec![0..1, 1..2, 2..3]);
        assert_eq!(split(&[5, 5, 5], 1000), vec![0..3]);
        assert!(split(&[], 10).is_empty());
        let many = vec![1; MAX_DOCUMENTS_PER_REQUEST * 2 + 1];
        let ranges = split(&many, usize::MAX / 2);
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges[0].len(), MAX_DOCUMENTS_PER_REQUEST);
        assert_eq!(
            ranges[2],
            MAX_DOCUMENTS_PER_REQUEST * 2..MAX_DOCUMENTS_PER_REQUEST * 2 + 1
        );
    }

    #[test]
    fn response_items_decide_each_document() {
        let body = serde_json::json!({
            "took": 3, "errors": true,
            "items": [
                {"index": {"_index": "i", "_id": "1", "status": 201}},
                {"index": {"_index": "i", "_id": "2", "status": 200}},
                {"index": {"_index": "i", "_id": "3", "status": 400,
                    "error": {"type": "mapper_parsing_exception", "reason": "failed to parse field [a]"}}},
                {"index": {"_index": "i", "_id": "4", "status": 429,
                    "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
                {"index": {"_index": "i", "_id": "5", "status": 503,
                    "error": {"type": "unavailable_shards_exception", "reason": "primary shard is not active"}}},
                {"create": {"_index": "i", "_id": "6", "status": 409}}
            ]
        })
        .to_string();
        let results = check_response(200, body.as_bytes(), 6);
        assert_eq!(results.len(), 6);
        assert!(results[0].is_ok() && results[1].is_ok());
        let f = results[2].clone().unwrap_err();
        assert_eq!(f.code, "mapper_parsing_exception");
        assert!(f.permanent);
        assert!(
            f.message.contains("failed to parse field [a]"),
            "{}",
            f.message
        );
        assert!(f.message.contains("400"), "{}", f.message);
        let f = results[3].clone().unwrap_err();
        assert_eq!(f.code, "es_rejected_execution_exception");
        assert!(!f.permanent);
        let f = results[4].clone().unwrap_err();
        assert_eq!(f.code, "unavailable_shards_exception");
        assert!(!f.permanent);
        let f = results[5].clone().unwrap_err();
        assert_eq!(f.code, DOCUMENT_FAILED);
        assert!(f.permanent);
    }

    #[test]
    fn whole_request_failures_apply_to_every_document() {
        let check = |status: u16, body: &[u8], count: usize| -> Failure {
            let results = check_response(status, body, count);
            assert_eq!(results.len(), count);
            let first = results[0].clone().unwrap_err();
            assert!(results.iter().all(|r| r.as_ref().unwrap_err() == &first));
            first
        };
        let f = check(500, b"boom", 3);
        assert_eq!((f.code.as_str(), f.permanent), (SERVER_ERROR, false));
        assert!(f.message.contains("500") && f.message.contains("boom"));
        let f = check(429, b"", 2);
        assert_eq!((f.code.as_str(), f.permanent), (TOO_MANY_REQUESTS, false));
        let f = check(403, b"", 1);
        assert_eq!((f.code.as_str(), f.permanent), (ACCESS_DENIED, false));
        let f = check(413, b"", 2);
        assert_eq!((f.code.as_str(), f.permanent), (REQUEST_TOO_LARGE, true));
        let f = check(400, b"", 2);
        assert_eq!((f.code.as_str(), f.permanent), (REQUEST_FAILED, false));
        let f = check(200, b"<html>", 2);
        assert_eq!((f.code.as_str(), f.permanent), (INVALID_RESPONSE, false));
        let f = check(200, b"{\"took\":1}", 2);
        assert_eq!(f.code, INVALID_RESPONSE);
        let one = br#"{"took":1,"errors":false,"items":[{"index":{"status":201}}]}"#;
        let f = check(200, one, 2);
        assert_eq!(f.code, INVALID_RESPONSE);
        assert!(f.message.contains("1 items for 2"), "{}", f.message);
        assert!(check_response(200, one, 1)[0].is_ok());
    }

    #[test]
    fn bulk_urls_append_the_endpoint() {
        assert_eq!(
            bulk_url("https://search.example.com").unwrap(),
            "https://search.example.com/_bulk"
        );
        assert_eq!(
            bulk_url("http://127.0.0.1:9200/prefix/").unwrap(),
            "http://127.0.0.1:9200/prefix/_bulk"
        );
        assert!(bulk_url("not a url").is_err());
    }

    /// Serves one request on 127.0.0.1 with `response`; the URL and the raw request.
    async fn serve_once(response: Vec<u8>) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map(|v| v.trim().parse().unwrap())
                        .unwrap_or(0);
                    if got.len() >= end + 4 + length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            socket.write_all(&response).await.unwrap();
            got
        });
        (url, task)
    }

    fn local_client() -> BulkClient {
        BulkClient::new(EgressPolicy {
            allow_http_hosts: vec!["127.0.0.1".into()],
            allow_private: vec!["127.0.0.0/8".into()],
        })
    }

    #[tokio::test]
    async fn the_client_posts_ndjson_and_maps_items() {
        let answer = r#"{"took":1,"errors":true,"items":[{"index":{"status":201}},{"index":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}]}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        let (url, task) = serve_once(response.into_bytes()).await;
        let client = local_client();
        let a = doc("i", Some("x.0"), None, "{\"a\":1}");
        let b = doc("i", Some("x.1"), None, "{\"b\":2}");
        let results = client.bulk(&bulk_url(&url).unwrap(), &[&a, &b]).await;
        assert!(results[0].is_ok());
        assert_eq!(
            results[1].clone().unwrap_err().code,
            "mapper_parsing_exception"
        );
        let request = String::from_utf8(task.await.unwrap()).unwrap();
        assert!(request.starts_with("POST /_bulk HTTP/1.1\r\n"), "{request}");
        assert!(
            request.contains("content-type: application/x-ndjson\r\n"),
            "{request}"
        );
        assert!(request.ends_with(&String::from_utf8(bulk_body(&[&a, &b]).to_vec()).unwrap()));
    }

    #[tokio::test]
    async fn unreachable_clusters_are_retried_connection_failures() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = local_client();
        let a = doc("i", None, None, "{}");
        let results = client
            .bulk(&format!("http://127.0.0.1:{port}/_bulk"), &[&a, &a])
            .await;
        assert_eq!(results.len(), 2);
        for r in results {
            let f = r.unwrap_err();
            assert_eq!(f.code, CONNECTION_FAILED);
            assert!(f.message.contains("could not connect"), "{}", f.message);
            assert!(!f.permanent);
        }
    }
}
