//! The query endpoint for the console and the CLI, next to the AWS APIs on the same listener.
//!
//! - `POST /v1/query` with `{"sql": "...", "database": "default", "fresh": true, "limit": 1000,
//!   "format": "json" | "arrow", "query_id": "..."}`.
//!   - `json` (default) answers `{"query_id", "columns": [{"name", "type"}], "rows": [[...]],
//!     "truncated", "stats": {"rows", "bytes_scanned", "elapsed_ms"}}`: values are JSON
//!     (numbers, strings, booleans, null; lists and structs nested), at most `limit` rows
//!     (default [`DEFAULT_JSON_ROWS`]).
//!   - `arrow` answers the rows as an Arrow IPC stream (`application/vnd.apache.arrow.stream`),
//!     with the figures in `x-lakehose-rows`, `x-lakehose-bytes-scanned`,
//!     `x-lakehose-elapsed-ms` and `x-lakehose-truncated` headers; no default limit.
//!   - Errors: `{"error": {"type": "USER_ERROR" | "CANCELLED" | "INTERNAL_ERROR", "message",
//!     "line", "column"}}` with status 400, 409 or 500.
//! - `DELETE /v1/query/{query_id}` cancels a running query (204; 404 when none runs under that
//!   id). A client that disconnects cancels its query too (the handler's future is dropped).
//!
//! - With authentication on, both routes are behind the SigV4 layer (scope service `athena` or
//!   `lakehose`), and the caller's policy must allow `athena:StartQueryExecution` (run) or
//!   `athena:StopQueryExecution` (cancel) on `arn:aws:athena:REGION:ACCOUNT:workgroup/primary`;
//!   otherwise `AccessDeniedException` (AWS's error shape, status 400).
//!
//! Invariant: a query id is registered only while its query runs; the registry never grows
//! with finished queries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Extension, Json};
use lakehose_api::Caller;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{QueryEngine, QueryError, QueryOptions, QueryOutput};

/// Rows a JSON answer carries when the request sets no `limit`.
pub const DEFAULT_JSON_ROWS: usize = 10_000;

/// A `POST /v1/query` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub sql: String,
    #[serde(default)]
    pub database: Option<String>,
    /// Include acknowledged, undelivered records (default true).
    #[serde(default)]
    pub fresh: Option<bool>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub query_id: Option<String>,
}

#[derive(Clone, Debug)]
struct HttpState {
    engine: QueryEngine,
    running: Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>,
    audit: Option<Arc<lakehose_api::audit::AuditLog>>,
}

/// The routes above, for merging into the server's router. With `audit`, every run and cancel
/// is recorded (as Athena's `StartQueryExecution` / `StopQueryExecution`, with whether it was
/// allowed; not the SQL, which may hold data).
pub fn router(
    engine: QueryEngine,
    audit: Option<Arc<lakehose_api::audit::AuditLog>>,
) -> axum::Router {
    let state = HttpState {
        engine,
        running: Arc::default(),
        audit,
    };
    axum::Router::new()
        .route("/v1/query", post(run_query))
        .route("/v1/query/{id}", delete(cancel_query))
        .with_state(state)
}

fn error_response(e: &QueryError) -> Response {
    let (status, kind) = match e {
        QueryError::User { .. } => (StatusCode::BAD_REQUEST, "USER_ERROR"),
        QueryError::Cancelled => (StatusCode::CONFLICT, "CANCELLED"),
        QueryError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
    };
    let (line, column) = match e {
        QueryError::User {
            position: Some(p), ..
        } => (json!(p.line), json!(p.column)),
        _ => (Value::Null, Value::Null),
    };
    let message = match e {
        QueryError::User { message, .. } => message.clone(),
        other => other.to_string(),
    };
    (
        status,
        Json(json!({"error": {"type": kind, "message": message, "line": line, "column": column}})),
    )
        .into_response()
}

/// Removes a query from the registry when its handler ends, however it ends.
struct Registration {
    running: Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>,
    id: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(handle) = running.remove(&self.id) {
            // The client went away: stop the work too.
            handle.abort();
        }
    }
}

/// Authorizes a `/v1/query` call when authentication is on: running SQL is Athena's
/// `StartQueryExecution` in workgroup `primary`, cancelling it `StopQueryExecution`. A refusal
/// is `AccessDeniedException`, answered in AWS's error shape like the authentication layer's
/// own errors on this route.
fn authorize(caller: Option<&Caller>, action: &str) -> Result<(), lakehose_api::ApiError> {
    let Some(caller) = caller else {
        return Ok(());
    };
    let resource =
        crate::athena::work_group_arn(caller.region(), crate::athena::PRIMARY_WORK_GROUP);
    caller.authorize(action, &[resource])
}

/// [`authorize`], recording the call in the audit log.
fn authorize_audited(
    state: &HttpState,
    caller: Option<&Caller>,
    peer: Option<std::net::IpAddr>,
    operation: &str,
) -> Result<(), lakehose_api::ApiError> {
    let result = authorize(caller, &format!("athena:{operation}"));
    if let Some(audit) = &state.audit {
        let region = caller.map_or("", |c| c.region());
        let request_id = uuid::Uuid::new_v4().to_string();
        audit.record(&lakehose_api::audit::AuditEvent {
            event_source: "athena.amazonaws.com",
            event_name: operation,
            region,
            access_key_id: caller.map(|c| c.access_key_id()),
            source_ip: peer,
            resources: vec![crate::athena::work_group_arn(
                region,
                crate::athena::PRIMARY_WORK_GROUP,
            )],
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

type Peer = Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>;

async fn run_query(
    State(state): State<HttpState>,
    caller: Option<Extension<Caller>>,
    peer: Peer,
    body: axum::body::Bytes,
) -> Response {
    let peer = peer.map(|p| p.0.0.ip());
    if let Err(denied) = authorize_audited(&state, caller.as_deref(), peer, "StartQueryExecution") {
        return denied.into_response();
    }
    let request: QueryRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_response(&QueryError::user(format!("invalid request body: {e}")));
        }
    };
    let arrow = match request.format.as_deref() {
        None | Some("json") => false,
        Some("arrow") => true,
        Some(other) => {
            return error_response(&QueryError::user(format!(
                "unknown format '{other}' (json or arrow)"
            )));
        }
    };
    let options = QueryOptions {
        database: request.database.clone().unwrap_or_else(|| "default".into()),
        include_fresh: request.fresh.unwrap_or(true),
        row_limit: request.limit.or((!arrow).then_some(DEFAULT_JSON_ROWS)),
    };
    let id = request
        .query_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let engine = state.engine.clone();
    let sql = request.sql;
    let task = tokio::spawn(async move { engine.execute(&sql, &options).await });
    {
        let mut running = state.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.contains_key(&id) {
            task.abort();
            return error_response(&QueryError::user(format!(
                "a query with id '{id}' is already running"
            )));
        }
        running.insert(id.clone(), task.abort_handle());
    }
    let _registration = Registration {
        running: state.running.clone(),
        id: id.clone(),
    };
    let output = match task.await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return error_response(&e),
        Err(e) if e.is_cancelled() => return error_response(&QueryError::Cancelled),
        Err(e) => return error_response(&QueryError::Internal(e.to_string())),
    };
    if arrow {
        arrow_response(&id, &output)
    } else {
        match json_body(&id, &output) {
            Ok(body) => Json(body).into_response(),
            Err(e) => error_response(&e),
        }
    }
}

async fn cancel_query(
    State(state): State<HttpState>,
    caller: Option<Extension<Caller>>,
    peer: Peer,
    Path(id): Path<String>,
) -> Response {
    let peer = peer.map(|p| p.0.0.ip());
    if let Err(denied) = authorize_audited(&state, caller.as_deref(), peer, "StopQueryExecution") {
        return denied.into_response();
    }
    let handle = state
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    match handle {
        Some(h) => {
            h.abort();
            StatusCode::NO_CONTENT.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn arrow_response(id: &str, output: &QueryOutput) -> Response {
    let mut buf = Vec::new();
    let written = (|| {
        let mut writer =
            datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut buf, &output.schema)?;
        for b in &output.batches {
            writer.write(b)?;
        }
        writer.finish()
    })();
    if let Err(e) = written {
        return error_response(&QueryError::Internal(format!("encoding the result: {e}")));
    }
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("content-type", "application/vnd.apache.arrow.stream".into());
    set("x-lakehose-query-id", id.to_string());
    set("x-lakehose-rows", output.stats.rows.to_string());
    set(
        "x-lakehose-bytes-scanned",
        output.stats.bytes_scanned.to_string(),
    );
    set(
        "x-lakehose-elapsed-ms",
        output.stats.elapsed.as_millis().to_string(),
    );
    set("x-lakehose-truncated", output.truncated.to_string());
    (StatusCode::OK, headers, buf).into_response()
}

/// The result as JSON: one array per row, values in column order.
pub fn json_body(id: &str, output: &QueryOutput) -> Result<Value, QueryError> {
    let columns: Vec<Value> = output
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let mut rows = Vec::with_capacity(output.stats.rows as usize);
    for batch in &output.batches {
        rows.extend(batch_rows(batch)?);
    }
    Ok(json!({
        "query_id": id,
        "columns": columns,
        "rows": rows,
        "truncated": output.truncated,
        "stats": {
            "rows": output.stats.rows,
            "bytes_scanned": output.stats.bytes_scanned,
            "elapsed_ms": output.stats.elapsed.as_secs_f64() * 1000.0,
        },
    }))
}

/// Rows of `batch` as JSON arrays. Each column is encoded on its own by arrow-json (so
/// duplicate column names cannot collide), then the columns are zipped into rows.
fn batch_rows(batch: &RecordBatch) -> Result<Vec<Value>, QueryError> {
    use datafusion::arrow::json::writer::JsonArray;
    let internal = |e: &dyn std::fmt::Display| QueryError::Internal(format!("encoding: {e}"));
    let mut columns: Vec<Vec<Value>> = Vec::with_capacity(batch.num_columns());
    for (i, field) in batch.schema().fields().iter().enumerate() {
        let single = RecordBatch::try_new(
            Arc::new(arrow_schema::Schema::new(vec![
                field.as_ref().clone().with_name("v"),
            ])),
            vec![batch.column(i).clone()],
        )
        .map_err(|e| internal(&e))?;
        let mut writer = datafusion::arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, JsonArray>(Vec::new());
        writer.write(&single).map_err(|e| internal(&e))?;
        writer.finish().map_err(|e| internal(&e))?;
        let text = writer.into_inner();
        let values: Vec<Value> = if text.is_empty() {
            Vec::new()
        } else {
            serde_json::from_slice(&text).map_err(|e| internal(&e))?
        };
        columns.push(
            values
                .into_iter()
                .map(|mut v| v.get_mut("v").map(Value::take).unwrap_or(Value::Null))
                .collect(),
        );
    }
    Ok((0..batch.num_rows())
        .map(|r| {
            Value::Array(
                columns
                    .iter_mut()
                    .map(|c| c.get_mut(r).map(Value::take).unwrap_or(Value::Null))
                    .collect(),
            )
        })
        .collect())
}
