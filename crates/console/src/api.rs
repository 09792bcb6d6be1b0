//! The console's JSON API under `/console/api/`: stream monitoring (overview, metric history,
//! recent errors, the tail of the write-ahead log, delivered objects) and saved dashboards.
//!
//! | Route | Answer | Permission (on) |
//! |---|---|---|
//! | `GET overview` | `{"streams":[...],"metrics":[...],"interval_s"}` | `firehose:ListDeliveryStreams` on `*`; a stream is listed only when `firehose:DescribeDeliveryStream` on it is allowed too |
//! | `GET streams/{name}/metrics?range=5m\|1h\|24h` | `{"stream","range","step_s","points"}` | `firehose:DescribeDeliveryStream` on the stream |
//! | `GET streams/{name}/errors?limit=50` (max 200) | `{"errors":[...]}` | same |
//! | `GET streams/{name}/tail?limit=20` (max 100) | `{"records":[...]}` | same (the tail shows record data: grant `DescribeDeliveryStream` accordingly) |
//! | `GET streams/{name}/objects?limit=100` (max 1000) | `{"objects":[...]}` | same |
//! | `GET dashboards` | `{"dashboards":[...]}` | `lakehose:GetDashboard` on `arn:aws:lakehose:REGION:000000000000:dashboard/*` |
//! | `PUT dashboards/{id}` | the stored dashboard | `lakehose:PutDashboard` on `.../dashboard/{id}` |
//! | `DELETE dashboards/{id}` | `{}` | `lakehose:DeleteDashboard` on `.../dashboard/{id}` |
//!
//! Invariants:
//! - Every route is mounted behind the same authentication layer as `/v1/query`; a request
//!   with a [`Caller`] is authorized before anything is read or changed. Without a caller
//!   (authentication off, loopback only) everything is allowed.
//! - Errors are AWS's shape, `{"__type": "...Exception", "message"}` with a 4xx/5xx status;
//!   an unknown stream or dashboard is `ResourceNotFoundException` with status 404 (after
//!   authorization, as AWS does); other client errors are 400 as in AWS's JSON APIs.
//! - Dashboard changes (allowed or refused) are recorded in the audit log with event source
//!   `lakehose.console`; reads are not (they are monitoring, like `/metrics`).
//! - Every answer is bounded: limits are clamped to their maxima, tail records cut at
//!   [`TAIL_DATA_BYTES`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lakehose_api::{ApiError, Caller};
use serde::Serialize;
use serde_json::{Value, json};

use crate::dashboards::{DashboardInput, Dashboards};
use crate::history::{Point, Range};

/// Bytes of a tail record's data shown; the rest is cut (`"truncated": true`).
pub const TAIL_DATA_BYTES: usize = 4096;
/// Most tail records answered.
pub const MAX_TAIL: usize = 100;
/// Most recent errors answered (and kept per stream by the pipeline).
pub const MAX_ERRORS: usize = 200;
/// Most objects answered.
pub const MAX_OBJECTS: usize = 1000;

/// One stream in the overview.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamOverview {
    pub name: String,
    pub status: String,
    /// `S3`, `ExtendedS3`, `HttpEndpoint`, `Redshift`, `AmazonOpenSearchService`,
    /// `Elasticsearch` or `Splunk`.
    pub destination: String,
    pub created_ms: i64,
    /// The last sampling interval: increases of counters, values of gauges.
    pub latest: BTreeMap<String, f64>,
}

/// `GET /console/api/overview`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Overview {
    pub streams: Vec<StreamOverview>,
    pub metrics: Vec<String>,
    pub interval_s: f64,
}

/// `GET /console/api/streams/{name}/metrics`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricSeries {
    pub stream: String,
    pub range: String,
    pub step_s: f64,
    pub points: Vec<Point>,
}

/// One error document the stream wrote (its code and message only, never the record).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorEntry {
    pub time_ms: i64,
    pub error_output_type: String,
    pub key: String,
    pub error_code: String,
    pub error_message: String,
}

/// One record of the tail.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TailRecord {
    pub seq: u64,
    pub arrival_ms: i64,
    /// UTF-8 text, or base64 when `encoding` is `base64`.
    pub data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
    /// The record's full size.
    pub bytes: usize,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl TailRecord {
    /// The record as shown: at most [`TAIL_DATA_BYTES`], as text when those bytes are UTF-8
    /// (a character cut at the limit is dropped), else base64.
    pub fn new(seq: u64, arrival_ms: i64, data: &[u8]) -> Self {
        use base64::Engine as _;
        let truncated = data.len() > TAIL_DATA_BYTES;
        let shown = &data[..data.len().min(TAIL_DATA_BYTES)];
        let text = match std::str::from_utf8(shown) {
            Ok(s) => Some(s),
            // Only an incomplete last character, cut by the limit.
            Err(e) if truncated && e.error_len().is_none() => {
                std::str::from_utf8(&shown[..e.valid_up_to()]).ok()
            }
            Err(_) => None,
        };
        let (data_shown, encoding) = match text {
            Some(s) => (s.to_string(), None),
            None => (
                base64::engine::general_purpose::STANDARD.encode(shown),
                Some("base64"),
            ),
        };
        Self {
            seq,
            arrival_ms,
            data: data_shown,
            encoding,
            bytes: data.len(),
            truncated,
        }
    }
}

/// One delivered object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObjectEntry {
    pub key: String,
    pub size: u64,
    pub last_modified_ms: i64,
    /// `data`, `error` or `backup`.
    pub kind: &'static str,
}

/// What the console shows of the streams; implemented by the server over its engine.
/// Methods answer `ResourceNotFoundException` for an unknown stream.
#[async_trait]
pub trait ConsoleData: Send + Sync + 'static {
    /// Every stream with its last interval's metrics.
    async fn overview(&self) -> Result<Overview, ApiError>;
    /// The metric history of `stream`.
    async fn metrics(&self, stream: &str, range: Range) -> Result<MetricSeries, ApiError>;
    /// The newest `limit` error documents `stream` wrote, newest first.
    async fn errors(&self, stream: &str, limit: usize) -> Result<Vec<ErrorEntry>, ApiError>;
    /// The newest `limit` acknowledged records of `stream` still in its log, newest last.
    async fn tail(&self, stream: &str, limit: usize) -> Result<Vec<TailRecord>, ApiError>;
    /// The newest `limit` objects of `stream`, newest first.
    async fn objects(&self, stream: &str, limit: usize) -> Result<Vec<ObjectEntry>, ApiError>;
}

#[derive(Clone)]
struct ApiState {
    data: Arc<dyn ConsoleData>,
    dashboards: Arc<Dashboards>,
    audit: Option<Arc<lakehose_api::audit::AuditLog>>,
    /// The region of dashboard ARNs when the request has no caller.
    region: String,
}

/// The routes above, for merging behind the authentication layer. `region` names the
/// dashboards' ARNs when authentication is off.
pub fn router(
    data: Arc<dyn ConsoleData>,
    dashboards: Arc<Dashboards>,
    audit: Option<Arc<lakehose_api::audit::AuditLog>>,
    region: String,
) -> axum::Router {
    let state = ApiState {
        data,
        dashboards,
        audit,
        region,
    };
    axum::Router::new()
        .route("/console/api/overview", get(overview))
        .route("/console/api/streams/{name}/metrics", get(metrics))
        .route("/console/api/streams/{name}/errors", get(errors))
        .route("/console/api/streams/{name}/tail", get(tail))
        .route("/console/api/streams/{name}/objects", get(objects))
        .route("/console/api/dashboards", get(list_dashboards))
        .route(
            "/console/api/dashboards/{id}",
            axum::routing::put(put_dashboard).delete(delete_dashboard),
        )
        .with_state(state)
        .layer(axum::middleware::map_response(security_headers))
}

/// `nosniff` and `no-store` on every answer (errors included): JSON only, never cached.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

type MaybeCaller = Option<Extension<Caller>>;
type Peer = Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>;

fn ok(body: impl Serialize) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// An error in AWS's shape; a missing stream or dashboard is answered 404 (AWS's JSON APIs
/// say 400), as REST routes do.
fn error(e: ApiError) -> Response {
    let not_found = e.kind == lakehose_api::ErrorKind::ResourceNotFound;
    let mut response = e.into_response();
    if not_found {
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    response
}

fn answer<T: Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(body) => ok(body),
        Err(e) => error(e),
    }
}

/// The value of `name` in a query string (`None` when absent).
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `limit` from the query: `default` when absent, clamped to `max` when larger, an error
/// when not a positive integer.
fn limit(query: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    match query_param(query, "limit") {
        None | Some("") => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(max)),
            _ => Err(ApiError::invalid(format!(
                "'limit' must be an integer between 1 and {max}."
            ))),
        },
    }
}

fn authorize_stream(caller: Option<&Caller>, name: &str) -> Result<(), ApiError> {
    let Some(caller) = caller else { return Ok(()) };
    let arn = lakehose_api::authz::firehose_stream_arn(caller.region(), name);
    caller.authorize("firehose:DescribeDeliveryStream", &[arn])
}

async fn overview(State(state): State<ApiState>, caller: MaybeCaller) -> Response {
    let caller = caller.as_deref();
    if let Some(c) = caller
        && let Err(e) = c.authorize("firehose:ListDeliveryStreams", &["*".to_string()])
    {
        return error(e);
    }
    answer(state.data.overview().await.map(|mut o| {
        o.streams
            .retain(|s| authorize_stream(caller, &s.name).is_ok());
        o
    }))
}

async fn metrics(
    State(state): State<ApiState>,
    caller: MaybeCaller,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(e) = authorize_stream(caller.as_deref(), &name) {
        return error(e);
    }
    let range = match query_param(query.as_deref(), "range") {
        None | Some("") => Range::FiveMinutes,
        Some(r) => match Range::parse(r) {
            Some(r) => r,
            None => {
                return error(ApiError::invalid("'range' must be 5m, 1h or 24h."));
            }
        },
    };
    answer(state.data.metrics(&name, range).await)
}

/// The stream's authorization and the `limit` query parameter of a listing route.
fn listing(
    caller: &MaybeCaller,
    name: &str,
    query: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    authorize_stream(caller.as_deref(), name)?;
    limit(query, default, max)
}

async fn errors(
    State(state): State<ApiState>,
    caller: MaybeCaller,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    match listing(&caller, &name, query.as_deref(), 50, MAX_ERRORS) {
        Ok(limit) => answer(
            state
                .data
                .errors(&name, limit)
                .await
                .map(|errors| json!({ "errors": errors })),
        ),
        Err(e) => error(e),
    }
}

async fn tail(
    State(state): State<ApiState>,
    caller: MaybeCaller,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    match listing(&caller, &name, query.as_deref(), 20, MAX_TAIL) {
        Ok(limit) => answer(
            state
                .data
                .tail(&name, limit)
                .await
                .map(|records| json!({ "records": records })),
        ),
        Err(e) => error(e),
    }
}

async fn objects(
    State(state): State<ApiState>,
    caller: MaybeCaller,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    match listing(&caller, &name, query.as_deref(), 100, MAX_OBJECTS) {
        Ok(limit) => answer(
            state
                .data
                .objects(&name, limit)
                .await
                .map(|objects| json!({ "objects": objects })),
        ),
        Err(e) => error(e),
    }
}

/// The ARN of dashboard `id` (`*` for all).
pub fn dashboard_arn(region: &str, id: &str) -> String {
    lakehose_api::authz::arn("lakehose", region, &format!("dashboard/{id}"))
}

/// Authorizes a dashboard call; with `audit`, records it (mutating calls only).
fn authorize_dashboard(
    state: &ApiState,
    caller: Option<&Caller>,
    peer: Option<std::net::IpAddr>,
    operation: &str,
    id: &str,
    audited: bool,
) -> Result<(), ApiError> {
    let region = caller.map_or(state.region.as_str(), |c| c.region());
    let resource = dashboard_arn(region, id);
    let result = match caller {
        Some(c) => c.authorize(
            &format!("lakehose:{operation}"),
            std::slice::from_ref(&resource),
        ),
        None => Ok(()),
    };
    if audited && let Some(audit) = &state.audit {
        let request_id = uuid::Uuid::new_v4().to_string();
        audit.record(&lakehose_api::audit::AuditEvent {
            event_source: "lakehose.console",
            event_name: operation,
            region,
            access_key_id: caller.map(|c| c.access_key_id()),
            source_ip: peer,
            resources: vec![resource],
            request_id: &request_id,
            read_only: false,
            outcome: match &result {
                Ok(()) => lakehose_api::audit::Outcome::Success,
                Err(e) => lakehose_api::audit::Outcome::Failure {
                    code: e.kind.aws_type().to_string(),
                    message: e.message.clone(),
                },
            },
        });
    }
    result
}

async fn list_dashboards(State(state): State<ApiState>, caller: MaybeCaller) -> Response {
    if let Err(e) = authorize_dashboard(&state, caller.as_deref(), None, "GetDashboard", "*", false)
    {
        return error(e);
    }
    ok(json!({ "dashboards": state.dashboards.list().await }))
}

async fn put_dashboard(
    State(state): State<ApiState>,
    caller: MaybeCaller,
    peer: Peer,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let peer = peer.map(|p| p.0.0.ip());
    if let Err(e) = authorize_dashboard(&state, caller.as_deref(), peer, "PutDashboard", &id, true)
    {
        return error(e);
    }
    let input: DashboardInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => {
            return error(ApiError::invalid(format!(
                "The dashboard is not valid: {e}"
            )));
        }
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let dashboard = match crate::dashboards::validate(&id, input, now_ms) {
        Ok(d) => d,
        Err(e) => return error(e),
    };
    answer(state.dashboards.put(dashboard).await)
}

async fn delete_dashboard(
    State(state): State<ApiState>,
    caller: MaybeCaller,
    peer: Peer,
    Path(id): Path<String>,
) -> Response {
    let peer = peer.map(|p| p.0.0.ip());
    if let Err(e) = authorize_dashboard(
        &state,
        caller.as_deref(),
        peer,
        "DeleteDashboard",
        &id,
        true,
    ) {
        return error(e);
    }
    answer(
        state
            .dashboards
            .delete(&id)
            .await
            .map(|()| Value::Object(Default::default())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_records_are_text_or_base64_and_cut() {
        let text = TailRecord::new(1, 2, b"hello");
        assert_eq!(
            (text.data.as_str(), text.encoding, text.truncated),
            ("hello", None, false)
        );
        let binary = TailRecord::new(1, 2, &[0xff, 0x00]);
        assert_eq!(
            (binary.data.as_str(), binary.encoding),
            ("/wA=", Some("base64"))
        );
        let long = "é".repeat(3000); // 6000 bytes; the limit falls inside a character
        let cut = TailRecord::new(1, 2, long.as_bytes());
        assert!(cut.truncated);
        assert_eq!(cut.bytes, 6000);
        assert_eq!(cut.encoding, None);
        assert_eq!(cut.data, "é".repeat(2048));
        let body = serde_json::to_value(&text).unwrap();
        assert!(body.get("encoding").is_none() && body.get("truncated").is_none());
        assert_eq!(serde_json::to_value(&cut).unwrap()["truncated"], true);
    }

    #[test]
    fn limits_are_checked_and_clamped() {
        assert_eq!(limit(None, 20, 100).unwrap(), 20);
        assert_eq!(limit(Some("limit=5&x=1"), 20, 100).unwrap(), 5);
        assert_eq!(limit(Some("x=1&limit=500"), 20, 100).unwrap(), 100);
        for bad in ["limit=0", "limit=-1", "limit=abc"] {
            assert_eq!(
                limit(Some(bad), 20, 100).unwrap_err().kind,
                lakehose_api::ErrorKind::InvalidArgument
            );
        }
        assert_eq!(query_param(Some("range=1h"), "range"), Some("1h"));
        assert_eq!(query_param(Some("flag"), "flag"), Some(""));
    }
}
