//! The HTTP face of the Firehose API: `POST /` with `X-Amz-Target: Firehose_20150804.<Op>`,
//! AWS JSON 1.1 bodies, one function per operation.
//!
//! Invariants: every answer carries `x-amzn-RequestId`; a request that fails validation changes
//! nothing; PutRecordBatch either rejects the whole request (malformed, over a limit) or answers
//! one entry per record in request order; a request carrying a [`Caller`] (authentication on)
//! is authorized for its action and resources before the operation runs (`crate::authz`).

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::authz::{self, Caller};
use crate::error::{ApiError, ErrorKind, Result};
use crate::model::*;
use crate::service::{JsonService, StreamService};
use crate::stream::{StreamSpec, validate_stream_name};

/// Largest record, before base64.
pub const MAX_RECORD_BYTES: usize = 1_024_000;
/// Most records in one PutRecordBatch.
pub const MAX_BATCH_RECORDS: usize = 500;
/// Most raw bytes in one PutRecordBatch.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Largest request body accepted (4 MiB of data as base64 plus JSON framing).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// The `X-Amz-Target` prefix of Firehose operations.
pub const TARGET_PREFIX: &str = "Firehose_20150804.";

/// The shared state handlers use.
#[derive(Clone)]
pub struct ApiState {
    /// The engine.
    pub service: Arc<dyn StreamService>,
    /// Region used in ARNs when the request does not name one in its SigV4 scope.
    pub default_region: String,
    /// Other AWS JSON 1.1 services on the same endpoint (Glue, Athena, ...), by target prefix.
    pub services: Vec<Arc<dyn JsonService>>,
    /// Where control-plane calls are recorded (`None`: not recorded).
    pub audit: Option<Arc<crate::audit::AuditLog>>,
}

/// The API router: `POST /` dispatched on `X-Amz-Target`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", post(dispatch))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn dispatch(State(state): State<ApiState>, request: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut response = answer(&state, request, &request_id).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

async fn answer(state: &ApiState, request: Request, request_id: &str) -> Response {
    let source_ip = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let headers = request.headers();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let region = region_of(headers)
        .unwrap_or(&state.default_region)
        .to_string();
    let caller = request.extensions().get::<Caller>().cloned();
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(e) => {
            tracing::debug!(target, error = %e, "request body refused");
            return e.into_response();
        }
    };
    let target = target.as_str();
    let other = || {
        state.services.iter().find_map(|s| {
            let op = target.strip_prefix(s.target_prefix())?.strip_prefix('.')?;
            Some((s.clone(), op))
        })
    };
    // Authorization (when authenticated) comes before the operation reads or changes anything;
    // see `crate::authz`.
    let result = match target.strip_prefix(TARGET_PREFIX) {
        Some(op) => {
            let allowed = match &caller {
                // The puts authorize on the stream name they parse themselves: their bodies are
                // the large ones, and are parsed once.
                Some(caller) if !matches!(op, "PutRecord" | "PutRecordBatch") => caller.authorize(
                    &format!("firehose:{op}"),
                    &[authz::firehose_resource(op, &region, &body)],
                ),
                _ => Ok(()),
            };
            match allowed {
                Ok(()) => operation(state, op, &region, &body, caller.as_ref()).await,
                Err(e) => Err(e),
            }
        }
        None => match other() {
            Some((service, op)) => {
                let allowed = match &caller {
                    Some(caller) => caller.authorize(
                        &format!("{}:{op}", service.iam_prefix()),
                        &service.resources(op, &region, &body),
                    ),
                    None => Ok(()),
                };
                match allowed {
                    Ok(()) => service.call(op, &region, &body).await,
                    Err(e) => Err(e),
                }
            }
            None => Err(ApiError::new(
                ErrorKind::UnknownOperation,
                format!("Unknown operation target '{target}'."),
            )),
        },
    };
    if let Some(audit) = &state.audit {
        let call = match target.strip_prefix(TARGET_PREFIX) {
            Some(op) if !crate::audit::is_data_plane(op) => Some((
                "firehose.amazonaws.com".to_string(),
                op,
                vec![authz::firehose_resource(op, &region, &body)],
            )),
            Some(_) => None,
            None => other().map(|(service, op)| {
                (
                    format!("{}.amazonaws.com", service.iam_prefix()),
                    op,
                    service.resources(op, &region, &body),
                )
            }),
        };
        if let Some((event_source, op, resources)) = call {
            audit.record(&crate::audit::AuditEvent {
                event_source: &event_source,
                event_name: op,
                region: &region,
                access_key_id: caller.as_ref().map(|c| c.access_key_id()),
                source_ip,
                resources,
                request_id,
                read_only: crate::audit::is_read_only(op),
                outcome: match &result {
                    Ok(_) => crate::audit::Outcome::Success,
                    Err(e) => crate::audit::Outcome::Failure {
                        code: e.kind.aws_type().to_string(),
                        message: e.message.clone(),
                    },
                },
            });
        }
    }
    match result {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(e) => {
            tracing::debug!(target, error = %e, "request rejected");
            e.into_response()
        }
    }
}

/// The whole request body, at most [`MAX_BODY_BYTES`]: a `Content-Length` over the limit is
/// refused before any of the body is read; a longer chunked body is cut off at the limit.
async fn read_body(request: Request) -> Result<Bytes> {
    let (parts, body) = request.into_parts();
    read_body_parts(&parts, body).await
}

/// [`read_body`] for a request taken apart: the limit, the request budget's [`Meter`] (found in
/// `parts`) and the errors (`RequestEntityTooLargeException` 413, `RequestTimeoutException`
/// 408, ...) of the API handlers. Public for layers that need the body before the handler
/// (SigV4 authentication): they read it exactly as the handler would.
///
/// [`Meter`]: crate::shed::Meter
pub async fn read_body_parts(parts: &axum::http::request::Parts, body: Body) -> Result<Bytes> {
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    // A body known to be empty (`Content-Length: 0`, an HTTP/2 HEADERS frame with
    // END_STREAM) is not read: on an HTTP/2 stream the client has reset, reading would wait
    // for the body timeout.
    if axum::body::HttpBody::size_hint(&body).exact() == Some(0) {
        return Ok(Bytes::new());
    }
    if let Some(meter) = parts.extensions.get::<crate::shed::Meter>() {
        return read_metered(body, meter).await;
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| body_error(&e))
}

/// Reads a body of unknown length, reserving each chunk from the request budget before
/// keeping it ([`crate::shed::Meter`]).
async fn read_metered(mut body: Body, meter: &crate::shed::Meter) -> Result<Bytes> {
    use http_body_util::BodyExt;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| body_read_error(&e))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        if !meter.take(data.len()) {
            return Err(ApiError::unavailable("Slow down."));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorKind::RequestTooLarge,
        format!("The request body is larger than the {MAX_BODY_BYTES}-byte limit."),
    )
}

/// The AWS-shaped answer to a body that could not be read: over [`MAX_BODY_BYTES`] (413,
/// nothing read past the limit), or see [`body_read_error`].
fn body_error(error: &axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return too_large();
        }
        source = e.source();
    }
    body_read_error(error)
}

/// A body read that failed: not received within the server's body read timeout (408: the
/// server's body wrapper fails with an `io::ErrorKind::TimedOut` error), or broken framing or
/// a vanished client (400).
fn body_read_error(error: &(dyn std::error::Error + 'static)) -> ApiError {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return ApiError::new(
                ErrorKind::RequestTimeout,
                "The request body was not received within the server's body read timeout.",
            );
        }
        source = e.source();
    }
    ApiError::new(
        ErrorKind::Serialization,
        format!("Could not read the request body: {error}"),
    )
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", crate::CONTENT_TYPE)
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The region of the request's SigV4 credential scope (`Credential=AKID/date/REGION/service/...`).
fn region_of(headers: &HeaderMap) -> Option<&str> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?;
    let region = scope.split('/').nth(2)?;
    (!region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    .then_some(region)
}

/// Parses an AWS JSON 1.1 request body (an empty or blank body is `{}`); malformed JSON or
/// unknown members answer `SerializationException`, as AWS does. Shared by every service on
/// the endpoint. The body must be a JSON object: serde would otherwise also read a struct
/// from an array, member by member.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    T::deserialize(crate::model::ObjectOnly(&mut de))
        .and_then(|value| de.end().map(|()| value))
        .map_err(|e| {
            ApiError::new(
                ErrorKind::Serialization,
                format!("Could not parse request body: {e}"),
            )
        })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str> {
    value
        .as_deref()
        .ok_or_else(|| ApiError::invalid(format!("{name} is required.")))
}

/// The required `DeliveryStreamName`, checked against `[a-zA-Z0-9_.-]{1,64}` (every operation
/// answers `InvalidArgumentException` for a malformed name, before looking the stream up).
fn stream_name(value: &Option<String>) -> Result<&str> {
    let name = required(value, "DeliveryStreamName")?;
    validate_stream_name(name)?;
    Ok(name)
}

fn existing(state: &ApiState, name: &str) -> Result<StreamSpec> {
    state
        .service
        .stream(name)
        .ok_or_else(|| ApiError::stream_not_found(name))
}

/// Asks `caller` (when authenticated) whether it may run Firehose operation `op` on stream
/// `name` in `region`.
fn authorize_stream(caller: Option<&Caller>, op: &str, region: &str, name: &str) -> Result<()> {
    match caller {
        Some(caller) => caller.authorize(
            &format!("firehose:{op}"),
            &[authz::firehose_stream_arn(region, name)],
        ),
        None => Ok(()),
    }
}

/// The stream a `CreateDeliveryStream` request body describes, checked as the API checks it
/// (unknown members, limits, destination rules): for the API, and for streams declared in
/// `lakehose.toml`.
pub fn create_request_spec(body: &[u8], region: &str) -> Result<StreamSpec> {
    let input: CreateDeliveryStreamInput = parse(body)?;
    StreamSpec::from_create(input, region, now_ms())
}

async fn operation(
    state: &ApiState,
    op: &str,
    region: &str,
    body: &[u8],
    caller: Option<&Caller>,
) -> Result<Value> {
    match op {
        "PutRecordBatch" => put_record_batch(state, body, region, caller).await,
        "PutRecord" => put_record(state, body, region, caller).await,
        "CreateDeliveryStream" => {
            let spec = create_request_spec(body, region)?;
            let arn = spec.arn.clone();
            state.service.create_stream(spec).await?;
            Ok(json!({ "DeliveryStreamARN": arn }))
        }
        "DeleteDeliveryStream" => {
            let input: DeleteDeliveryStreamInput = parse(body)?;
            let name = stream_name(&input.delivery_stream_name)?;
            existing(state, name)?;
            state.service.delete_stream(name).await?;
            Ok(json!({}))
        }
        "DescribeDeliveryStream" => {
            let input: DescribeDeliveryStreamInput = parse(body)?;
            let name = stream_name(&input.delivery_stream_name)?;
            if let Some(limit) = input.limit
                && !(1..=10_000).contains(&limit)
            {
                return Err(ApiError::invalid("Limit must be between 1 and 10000."));
            }
            let spec = existing(state, name)?;
            let mut description = spec.describe();
            if input.exclusive_start_destination_id.is_some() {
                description["Destinations"] = json!([]);
            }
            Ok(json!({ "DeliveryStreamDescription": description }))
        }
        "ListDeliveryStreams" => list_streams(state, body),
        "UpdateDestination" => {
            let input: UpdateDestinationInput = parse(body)?;
            let name = stream_name(&input.delivery_stream_name)?.to_string();
            let now = now_ms();
            state
                .service
                .modify_stream(&name, &mut |spec| spec.apply_update(&input, now))
                .await?;
            Ok(json!({}))
        }
        "TagDeliveryStream" => {
            let input: TagDeliveryStreamInput = parse(body)?;
            let name = stream_name(&input.delivery_stream_name)?;
            let tags = input.tags.clone().unwrap_or_default();
            state
                .service
                .modify_stream(name, &mut |spec| spec.tag(&tags))
                .await?;
            Ok(json!({}))
        }
        "UntagDeliveryStream" => {
            let input: UntagDeliveryStreamInput = parse(body)?;
            let name = stream_name(&input.delivery_stream_name)?;
            let keys = input.tag_keys.clone().unwrap_or_default();
            state
                .service
                .modify_stream(name, &mut |spec| spec.untag(&keys))
                .await?;
            Ok(json!({}))
        }
        "ListTagsForDeliveryStream" => {
            let input: ListTagsForDeliveryStreamInput = parse(body)?;
            let name = stream_name(&input.delivery_stream_name)?;
            let limit = input.limit.unwrap_or(50);
            if !(1..=50).contains(&limit) {
                return Err(ApiError::invalid("Limit must be between 1 and 50."));
            }
            let spec = existing(state, name)?;
            let start = match &input.exclusive_start_tag_key {
                Some(key) => spec
                    .tags
                    .iter()
                    .position(|t| &t.key == key)
                    .map_or(0, |i| i + 1),
                None => 0,
            };
            let rest = &spec.tags[start.min(spec.tags.len())..];
            let page: Vec<&Tag> = rest.iter().take(limit as usize).collect();
            Ok(json!({ "Tags": page, "HasMoreTags": rest.len() > page.len() }))
        }
        "StartDeliveryStreamEncryption" => {
            let input: StartEncryptionInput = parse(body)?;
            let name = stream_name(&input.delivery_stream_name)?;
            let enc = input
                .delivery_stream_encryption_configuration_input
                .clone()
                .unwrap_or(EncryptionInput {
                    key_arn: None,
                    key_type: Some("AWS_OWNED_CMK".into()),
                });
            let now = now_ms();
            state
                .service
                .modify_stream(name, &mut |spec| spec.set_encryption(Some(&enc), now))
                .await?;
            Ok(json!({}))
        }
        "StopDeliveryStreamEncryption" => {
            let input: StopEncryptionInput = parse(body)?;
            let name = stream_name(&input.delivery_stream_name)?;
            let now = now_ms();
            state
                .service
                .modify_stream(name, &mut |spec| spec.set_encryption(None, now))
                .await?;
            Ok(json!({}))
        }
        other => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!("Unknown operation '{other}'."),
        )),
    }
}

fn list_streams(state: &ApiState, body: &[u8]) -> Result<Value> {
    let input: ListDeliveryStreamsInput = parse(body)?;
    let limit = input.limit.unwrap_or(10);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("Limit must be between 1 and 10000."));
    }
    if let Some(t) = &input.delivery_stream_type
        && ![
            "DirectPut",
            "KinesisStreamAsSource",
            "MSKAsSource",
            "DatabaseAsSource",
        ]
        .contains(&t.as_str())
    {
        return Err(ApiError::invalid(format!(
            "Invalid DeliveryStreamType '{t}'."
        )));
    }
    let names: Vec<String> = state
        .service
        .stream_names()
        .into_iter()
        .filter(|n| {
            input
                .exclusive_start_delivery_stream_name
                .as_ref()
                .is_none_or(|s| n > s)
        })
        .filter(|n| match &input.delivery_stream_type {
            Some(t) => state.service.stream(n).is_some_and(|s| &s.stream_type == t),
            None => true,
        })
        .collect();
    let page: Vec<&String> = names.iter().take(limit as usize).collect();
    Ok(json!({ "DeliveryStreamNames": page, "HasMoreDeliveryStreams": names.len() > page.len() }))
}

/// The PutRecordBatch body, borrowing from the request (`Data` is base64 text).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
struct PutRecordBatchBody<'a> {
    #[serde(rename = "DeliveryStreamName", borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "Records", borrow)]
    records: Option<Vec<RecordBody<'a>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
struct RecordBody<'a> {
    #[serde(rename = "Data", borrow)]
    data: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
struct PutRecordBody<'a> {
    #[serde(rename = "DeliveryStreamName", borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "Record", borrow)]
    record: Option<RecordBody<'a>>,
}

/// The put bodies are read only from JSON objects, like the model's shapes.
macro_rules! object_only_borrowed {
    ($($name:ident),*) => {$(
        impl<'de: 'a, 'a> Deserialize<'de> for $name<'a> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $name::deserialize(crate::model::ObjectOnly(d))
            }
        }
    )*};
}
object_only_borrowed!(PutRecordBatchBody, RecordBody, PutRecordBody);

fn parse_borrowed<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T> {
    // As in `parse`: an empty or blank body is `{}`.
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::Serialization,
            format!("Could not parse request body: {e}"),
        )
    })
}

/// The decoded size of base64 text: exact for canonical padded base64 (what the decoder
/// accepts), a close estimate otherwise (such text fails decoding anyway).
fn decoded_len(text: &str) -> usize {
    let b = text.as_bytes();
    let pad = b.iter().rev().take(2).take_while(|&&c| c == b'=').count();
    (b.len() / 4 * 3).saturating_sub(pad)
}

fn too_big_record(field: &str, i: usize) -> ApiError {
    ApiError::invalid(format!(
        "1 validation error detected: Value at '{field}{}.member.data' failed to satisfy \
         constraint: Member must have length less than or equal to {MAX_RECORD_BYTES}",
        i + 1
    ))
}

fn too_big_batch() -> ApiError {
    ApiError::invalid("Records size exceeds 4 MB limit")
}

/// Decodes each record's base64 into one shared buffer, checking the per-record and batch
/// limits before anything is stored. The limits are checked on the base64 lengths first, so
/// an oversize request is refused without decoding any of it.
fn decode_records(records: &[RecordBody<'_>], field: &str) -> Result<Vec<Bytes>> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut total = 0usize;
    for (i, record) in records.iter().enumerate() {
        let data = record.data.as_deref().ok_or_else(|| {
            ApiError::invalid(format!(
                "1 validation error detected: Value null at '{field}{}.member.data' failed to satisfy \
                 constraint: Member must not be null",
                i + 1
            ))
        })?;
        let len = decoded_len(data);
        if len > MAX_RECORD_BYTES {
            return Err(too_big_record(field, i));
        }
        total += len;
        if total > MAX_BATCH_BYTES {
            return Err(too_big_batch());
        }
    }
    // Room for the decoder's slack past the last record (padding, partial quantum).
    let mut buf = BytesMut::with_capacity(total + 8);
    let mut ends = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let data = record.data.as_deref().unwrap_or_default();
        let start = buf.len();
        buf.resize(start + data.len() / 4 * 3 + 3, 0);
        let written = engine
            .decode_slice(data.as_bytes(), &mut buf[start..])
            .map_err(|e| {
                ApiError::new(
                    ErrorKind::Serialization,
                    format!("Record {} Data is not valid base64: {e}", i + 1),
                )
            })?;
        buf.truncate(start + written);
        if written > MAX_RECORD_BYTES {
            return Err(too_big_record(field, i));
        }
        if buf.len() > MAX_BATCH_BYTES {
            return Err(too_big_batch());
        }
        ends.push(buf.len());
    }
    let mut all = buf.freeze();
    let mut out = Vec::with_capacity(ends.len());
    let mut taken = 0;
    for end in ends {
        out.push(all.split_to(end - taken));
        taken = end;
    }
    Ok(out)
}

async fn put_record_batch(
    state: &ApiState,
    body: &[u8],
    region: &str,
    caller: Option<&Caller>,
) -> Result<Value> {
    let input: PutRecordBatchBody<'_> = parse_borrowed(body)?;
    let name = input
        .name
        .ok_or_else(|| ApiError::invalid("DeliveryStreamName is required."))?;
    validate_stream_name(&name)?;
    authorize_stream(caller, "PutRecordBatch", region, &name)?;
    let records = input.records.unwrap_or_default();
    if records.is_empty() || records.len() > MAX_BATCH_RECORDS {
        return Err(ApiError::invalid(format!(
            "1 validation error detected: Value at 'records' failed to satisfy constraint: Member \
             must have length between 1 and {MAX_BATCH_RECORDS} (got {})",
            records.len()
        )));
    }
    let data = decode_records(&records, "records.")?;
    let outcome = state.service.put_records(&name, data).await?;
    let mut failed = 0;
    let responses: Vec<Value> = outcome
        .records
        .into_iter()
        .map(|r| match r {
            RecordOutcome::Accepted(id) => json!({ "RecordId": id }),
            RecordOutcome::Failed { code, message } => {
                failed += 1;
                json!({ "ErrorCode": code, "ErrorMessage": message })
            }
        })
        .collect();
    Ok(json!({
        "FailedPutCount": failed,
        "Encrypted": outcome.encrypted,
        "RequestResponses": responses,
    }))
}

async fn put_record(
    state: &ApiState,
    body: &[u8],
    region: &str,
    caller: Option<&Caller>,
) -> Result<Value> {
    let input: PutRecordBody<'_> = parse_borrowed(body)?;
    let name = input
        .name
        .ok_or_else(|| ApiError::invalid("DeliveryStreamName is required."))?;
    validate_stream_name(&name)?;
    authorize_stream(caller, "PutRecord", region, &name)?;
    let record = input
        .record
        .ok_or_else(|| ApiError::invalid("Record is required."))?;
    let data = decode_records(std::slice::from_ref(&record), "record")?;
    let outcome = state.service.put_records(&name, data).await?;
    match outcome.records.into_iter().next() {
        Some(RecordOutcome::Accepted(id)) => {
            Ok(json!({ "RecordId": id, "Encrypted": outcome.encrypted }))
        }
        Some(RecordOutcome::Failed { code, message }) => Err(ApiError::new(
            if code == "ServiceUnavailableException" {
                ErrorKind::ServiceUnavailable
            } else {
                ErrorKind::Internal
            },
            message,
        )),
        None => Err(ApiError::internal("put_records returned no outcome")),
    }
}
